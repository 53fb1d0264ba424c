"""Chaos soak: `docpipe run` SIGKILLed at random moments against a faulty Drive, then run to the end.

    python bench/chaos.py              # 50 kills, 20 % faults (429, 500, dropped connections)
    python bench/chaos.py --kills 5    # a quick look

A fault-free, uninterrupted `docpipe run` (pull, replay, render, publish; no push, no hooks) is
the baseline. Then, against an emulator answering 20 % of requests with a fault, the same run is
started again and again in one workdir and SIGKILLed at a random (seeded) moment until `--kills`
runs were really killed, and finally run to completion. A run that reaches the end before its
moment ends a round: that workdir is compared too, and the kills go on in a fresh one (else every
later kill would hit a run with nothing left to do). Compared with the baseline: the store's bytes, the archive (`git fsck --strict`,
same SHAs of every ref), the site and the published site. Also counted: processes of a killed run
still alive after it, lock files left (git's `*.lock`, or docpipe's lock files still held), and
temp files left. Goals: every difference, process and lock 0.
"""

from __future__ import annotations

import argparse
import fcntl
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import pygit2

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pipeline.emulator import Emulator, generate_dataset
from tests.support.files import file_digests, session_members

TOKEN = "chaos-token"
STAGES = ("pull", "replay", "render", "publish")
DOCPIPE_LOCKS = (".lock", ".pull.lock")  # flock()ed: the file stays, only a held lock is stale


@dataclass
class Soak:
    kills: int = 0  # runs really killed (still running at the chosen moment)
    finished_first: int = 0  # runs that ended before their moment came
    failed_runs: list[str] = field(default_factory=list)  # unkilled runs that exited non-zero
    killed_in: Counter[str] = field(default_factory=Counter)  # stage running at the kill
    processes_left: list[str] = field(default_factory=list)


def docpipe(config: Path, log: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCPIPE_")}
    env["DOCPIPE_ACCESS_TOKEN"] = TOKEN
    with open(log, "wb") as fh:
        # A session of its own, so whatever the run starts can be found after it is killed.
        return subprocess.Popen(
            [sys.executable, "-m", "pipeline.cli", "run", "--config", str(config), "--no-hooks",
             "--only", ",".join(STAGES)],
            stdout=subprocess.DEVNULL, stderr=fh, env=env, start_new_session=True, cwd=config.parent)


def write_config(path: Path, workdir: Path, emu: Emulator) -> Path:
    path.write_text(f'workdir = "{workdir}"\n[drive]\nfolder = "{emu.root_folder_id}"\n'
                    f'endpoint = "{emu.url}"\njobs = 8\nmax_qps = 200\n')
    return path


def stage_of(log: Path) -> str:
    """The stage a run was in: the last `<stage>: ...` line `docpipe run` logged."""
    stage = "start"
    for line in log.read_text(errors="replace").splitlines():
        word = line.split(":", 1)[0]
        if word in STAGES:
            stage = word
    return stage


def refs(workdir: Path) -> dict[str, str]:
    repo = pygit2.Repository(str(workdir / "archive"))
    return {name: str(repo.references[name].target) for name in repo.references}


def fsck(workdir: Path) -> list[str]:
    r = subprocess.run(["git", "--git-dir", str(workdir / "archive"), "fsck", "--strict", "--no-dangling"],
                       check=False, capture_output=True, text=True)
    return [] if r.returncode == 0 else [ln for ln in (r.stdout + r.stderr).splitlines() if ln.strip()] or ["fsck failed"]


def differences(ref: Path, got: Path) -> list[str]:
    diffs: list[str] = []
    for part in ("store", "site", "public"):
        a, b = file_digests(ref / part), file_digests(got / part)
        for name in sorted(set(a) | set(b)):
            if a.get(name) != b.get(name):
                state = "missing" if name not in b else "extra" if name not in a else "differs"
                diffs.append(f"{part}/{name} {state}")
    ra, rb = refs(ref), refs(got)
    diffs += [f"archive {name}: {ra.get(name)} vs {rb.get(name)}" for name in sorted(set(ra) | set(rb))
              if ra.get(name) != rb.get(name)]
    diffs += [f"git fsck --strict: {line}" for line in fsck(got)]
    return diffs


def locks_left(workdir: Path) -> list[str]:
    left = [p.relative_to(workdir).as_posix() for p in workdir.rglob("*.lock")
            if p.relative_to(workdir).as_posix() not in DOCPIPE_LOCKS]  # git's lock files: stale by existing
    for name in DOCPIPE_LOCKS:
        path = workdir / name
        if path.exists():
            with open(path, "rb") as fh:
                try:
                    fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    fcntl.flock(fh, fcntl.LOCK_UN)
                except BlockingIOError:
                    left.append(f"{name} (still held)")
    return left


def temps_left(workdir: Path) -> list[str]:
    return sorted(p.relative_to(workdir).as_posix() for pattern in (".tmp-*", "*.tmp", "tmp_pack_*")
                  for p in workdir.rglob(pattern))


def run_once(config: Path, log: Path) -> tuple[float, int]:
    start = time.perf_counter()
    proc = docpipe(config, log)
    code = proc.wait()
    return time.perf_counter() - start, code


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=50, help="runs to SIGKILL before the last one (default 50)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the kill moments and of the faults")
    parser.add_argument("--fault-rate", type=float, default=0.2)
    parser.add_argument("--docs", type=int, default=10)
    args = parser.parse_args()

    ds = generate_dataset(docs=args.docs, revisions=8, size=(2_000, 8_000), comments=2, replies=1, seed=7, subfolders=1)
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory(prefix="docpipe-chaos-") as tmp:
        root = Path(tmp)
        with Emulator(ds, token=TOKEN) as clean:
            ref_seconds, code = run_once(write_config(root / "ref.toml", root / "ref", clean), root / "ref.log")
        if code != 0:
            raise SystemExit(f"the fault-free run failed: {(root / 'ref.log').read_text()[-800:]}")
        print(f"fault-free run: {ref_seconds:.2f} s ({args.docs} docs x 8 revisions)")

        soak = Soak()
        diffs: list[str] = []
        locks: list[str] = []
        temps: list[str] = []
        rounds = 1
        wd = root / "chaos-1"
        with Emulator(ds, token=TOKEN, fault_rate=args.fault_rate, faults=("429", "500", "drop"), seed=args.seed) as emu:
            start = time.perf_counter()
            attempt = 0
            while soak.kills < args.kills and attempt < 4 * args.kills:
                config = write_config(root / "chaos.toml", wd, emu)
                log = root / f"run-{attempt}.log"
                proc = docpipe(config, log)
                deadline = time.monotonic() + rng.uniform(0.0, 1.2 * ref_seconds)
                while proc.poll() is None and time.monotonic() < deadline:
                    time.sleep(0.01)
                if proc.poll() is not None:
                    # It reached the end despite the kills before it: check that end, then start a
                    # fresh workdir so the next kills land in real work again.
                    soak.finished_first += 1
                    if proc.returncode != 0:
                        soak.failed_runs.append(f"run {attempt}: exit {proc.returncode}: {log.read_text()[-300:].strip()}")
                    diffs += [f"round {rounds}: {d}" for d in differences(root / "ref", wd)]
                    locks += [f"round {rounds}: {d}" for d in locks_left(wd)]
                    temps += [f"round {rounds}: {d}" for d in temps_left(wd)]
                    rounds += 1
                    wd = root / f"chaos-{rounds}"
                else:
                    os.kill(proc.pid, signal.SIGKILL)
                    proc.wait()
                    soak.kills += 1
                    soak.killed_in[stage_of(log)] += 1
                time.sleep(0.25)  # what dies with the run is gone by now
                alive = session_members(proc.pid)
                held = [lk for lk in locks_left(wd) if "held" in lk] if alive else []
                for p in alive:
                    try:
                        soak.processes_left.append(f"after run {attempt} ({stage_of(log)}): pid {p.pid} "
                                                   f"{' '.join(p.cmdline())}{' holding ' + ', '.join(held) if held else ''}")
                        p.kill()  # counted; out of the way of the next run
                    except psutil.NoSuchProcess:
                        pass
                attempt += 1
            config = write_config(root / "chaos.toml", wd, emu)
            final_seconds, code = run_once(config, root / "final.log")
            soak_seconds = time.perf_counter() - start
            faults = len(emu.faults_injected)
        if code != 0:
            soak.failed_runs.append(f"final run: exit {code}: {(root / 'final.log').read_text()[-500:].strip()}")
        diffs += [f"round {rounds}: {d}" for d in differences(root / "ref", wd)]
        locks += [f"round {rounds}: {d}" for d in locks_left(wd)]
        temps += [f"round {rounds}: {d}" for d in temps_left(wd)]

        print(f"chaos: {args.kills} runs at {args.fault_rate:.0%} faults (429, 500, dropped connections; "
              f"{faults} injected), seed {args.seed}")
        print(f"  kills survived:   {soak.kills} (killed in: "
              + ", ".join(f"{s} {soak.killed_in[s]}" for s in ("start", *STAGES) if soak.killed_in[s])
              + f"); {soak.finished_first} run(s) ended before their moment")
        print(f"  rounds:           {rounds} workdir(s) brought to the end through kills and compared")
        print(f"  final run:        {'ok' if code == 0 else f'FAILED (exit {code})'} in {final_seconds:.2f} s")
        print(f"  differences:      {len(diffs)} (store, archive refs + git fsck --strict, site, public; goal 0)")
        print(f"  processes left:   {len(soak.processes_left)} (goal 0)")
        print(f"  locks left:       {len(locks)} (goal 0)")
        print(f"  temp files left:  {len(temps)}")
        print(f"  failed runs:      {len(soak.failed_runs)}")
        print(f"  soak time:        {soak_seconds:.1f} s ({soak_seconds / ref_seconds:.1f}x the fault-free run)")
        for title, items in (("differences", diffs), ("processes left", soak.processes_left), ("locks left", locks),
                             ("temp files left", temps), ("failed runs", soak.failed_runs)):
            for item in items[:15]:
                print(f"    {title}: {item}")
            if len(items) > 15:
                print(f"    {title}: ... {len(items) - 15} more")
        if diffs or soak.processes_left or locks or soak.failed_runs:
            raise SystemExit(1)


if __name__ == "__main__":
    main()
