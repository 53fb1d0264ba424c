"""Progress checks: how a doc lists them (parse), what the image gets (checks.json, never a
Dockerfile line), and the seat's runner (pipeline/lab/seat/check.py) stopping a hanging, a chatty
and a forking check at their timeouts, its output truncated, nothing left running."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from pipeline.lab.image import dockerfile
from pipeline.lab.image.parse import parse_lab_spec
from pipeline.lab.image.spec import LabSpecError
from pipeline.lab.seat import check

DOC = """# Hello workshop

## Lab desktop

base: debian-novnc
checks:

* Hello is built (timeout 30s): `test -x ~/hello && ~/hello | grep -q Hello`
* Notes written: test -s ~/notes.txt

memory: 1g
"""


def _spec(section: str) -> object:
    return parse_lab_spec("## Lab desktop\n\n" + section, doc="ws")


def test_checks_parse_in_doc_order_with_timeouts() -> None:
    spec = parse_lab_spec(DOC, doc="ws")
    assert spec is not None
    assert spec.checks == (("Hello is built", "test -x ~/hello && ~/hello | grep -q Hello", 30),
                           ("Notes written", "test -s ~/notes.txt", 10))
    assert spec.memory == 1024**3  # keys after the list still read
    one = _spec("checks: Done (2m): `true`\n")
    assert one.checks == (("Done", "true", 120),)  # type: ignore[attr-defined]


@pytest.mark.parametrize("items, message", [
    ("* : `true`", "expected 'step name: command'"),
    ("* Empty: ``", "must be one line"),
    ("* Twice: true\n* twice: false", "given twice"),
    ("* Slow (0s): true", "1s to 300s"),
    ("* Slow (400s): true", "1s to 300s"),
    ("* Slow (soon): true", "1s to 300s"),
    ("* " + "n" * 81 + ": true", "1 to 80 printable"),
    ("* Bell\x07: true", "control characters"),
    ("* Long: " + "x" * 501, "one line of 1 to 500"),
    ("".join(f"* Step {i}: true\n" for i in range(21)), "at most 20"),
])
def test_bad_checks_are_refused_in_one_line(items: str, message: str) -> None:
    with pytest.raises(LabSpecError) as err:
        _spec("checks:\n\n" + items + "\n")
    assert message in str(err.value) and "\n" not in str(err.value) and str(err.value).startswith("ws: lab desktop checks")


def test_checks_reach_the_image_as_a_file_only() -> None:
    spec = parse_lab_spec(DOC.replace("`test -x", "`rm -rf / ; echo \"$(id)\" && test -x"), doc="ws")
    assert spec is not None
    ctx = dockerfile.render(spec, workshop="ws")
    assert "rm -rf" not in ctx.dockerfile and "grep" not in ctx.dockerfile
    assert 'COPY ["checks.json", "/etc/docpipe/checks.json"]' in ctx.dockerfile
    data = json.loads(ctx.files["checks.json"])
    assert data["checks"][0] == {"name": "Hello is built", "timeout": 30,
                                 "command": "rm -rf / ; echo \"$(id)\" && test -x ~/hello && ~/hello | grep -q Hello"}
    assert ctx.files[dockerfile.RUNNER] == Path(check.__file__).read_bytes()
    # A spec without checks hashes as before checks existed (image tags unchanged).
    plain = parse_lab_spec(DOC.split("checks:")[0], doc="ws")
    assert plain is not None and "checks" not in plain.to_json()
    assert "checks.json" not in dockerfile.render(plain, workshop="ws").files


def _leftovers(marker: str) -> list[psutil.Process]:
    found = []
    for p in psutil.process_iter(["cmdline"]):
        try:
            if marker in " ".join(p.info["cmdline"] or []):
                found.append(p)
        except psutil.Error:
            continue
    return found


def test_runner_stops_hanging_chatty_and_forking_checks(tmp_path: Path) -> None:
    marker = f"{os.getpid()}{time.monotonic_ns() % 100000}"
    checks = tmp_path / "checks.json"
    checks.write_text(json.dumps({"checks": [
        {"name": "passes", "command": "echo fine", "timeout": 5},
        {"name": "fails", "command": "echo nope >&2; exit 3", "timeout": 5},
        {"name": "hangs", "command": f"sleep 1{marker}", "timeout": 1},
        {"name": "chatty", "command": f"head -c 20000000 /dev/zero | tr '\\0' x; sleep 2{marker}", "timeout": 2},
        {"name": "forks", "command": f"for i in 1 2 3 4; do (sleep 3{marker}; :) & done; sleep 3{marker}", "timeout": 1},
        {"name": "leaves a child", "command": f"(sleep 4{marker}; :) & echo started", "timeout": 5},
    ]}))
    start = time.monotonic()
    out = subprocess.run([sys.executable, check.__file__, str(checks)], capture_output=True, timeout=60,
                         cwd=tmp_path, check=True)
    took = time.monotonic() - start
    results = {c["name"]: c for c in json.loads(out.stdout)["checks"]}
    assert results["passes"]["ok"] and results["passes"]["output"] == "fine\n"
    assert not results["fails"]["ok"] and results["fails"]["exit"] == 3 and results["fails"]["output"] == "nope\n"
    for name in ("hangs", "chatty", "forks"):
        assert results[name]["timed_out"] and not results[name]["ok"], name
    assert len(results["chatty"]["output"]) == check.OUTPUT_LIMIT and results["chatty"]["truncated"]
    assert results["leaves a child"]["ok"] and results["leaves a child"]["output"] == "started\n"
    assert took < 15, took  # each stopped at its own timeout, not at the sleeps'
    assert _leftovers(marker) == []  # nothing any check started is still running
