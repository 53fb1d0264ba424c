from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.config import load_settings
from pipeline.config_docs import STARTER
from pipeline.errors import BadInput


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "docpipe.toml"
    path.write_text(text)
    return path


def test_precedence_flag_over_env_over_file_over_default(tmp_path: Path) -> None:
    path = write(tmp_path, '[drive]\nfolder = "F1"\njobs = 4\nmax_qps = 20\n')
    settings, problems = load_settings(path, env={"DOCPIPE_DRIVE_JOBS": "6", "DOCPIPE_MAX_QPS": "30"},
                                       cli={("drive", "jobs"): 12})
    folder = settings.folders[0]
    assert problems == []
    assert folder.get("drive", "jobs") == 12          # flag
    assert folder.get("drive", "max_qps") == 30.0     # environment (alias)
    assert folder.get("drive", "folder") == "F1"      # file
    assert folder.get("drive", "endpoint") == "https://www.googleapis.com/"  # default
    assert folder.workdir == Path(".docpipe")


def test_every_problem_reported_at_once_with_line_and_hint(tmp_path: Path) -> None:
    path = write(tmp_path, "\n".join([
        "workdir = 'w'",
        "[drive]",
        "folder = 'F'",
        "jobz = 3",             # line 4: typo
        "max_qps = 'fast'",     # line 5: wrong type
        "[gita]",               # line 6: unknown section
        "url = 'x'",
        "[lab]",
        "max_seats = 0",        # line 9: out of range
    ]) + "\n")
    with pytest.raises(BadInput) as err:
        load_settings(path, env={})
    msg = err.value.message
    assert "4 problem(s)" in msg
    assert f"{path}:4: drive.jobz: unknown key (did you mean 'jobs'?)" in msg
    assert f"{path}:5: drive.max_qps: must be a number" in msg
    assert f"{path}:6: gita: unknown key (did you mean 'gitea'?)" in msg
    assert f"{path}:9: lab.max_seats: must be between 1 and 500" in msg


def test_several_folders_each_with_overrides_and_own_workdir(tmp_path: Path) -> None:
    path = write(tmp_path, """
workdir = "wd"
[gitea]
url = "https://git.example.org"
owner = "cswg"
[[folders]]
id = "AAA"
name = "Design docs"
[folders.gitea]
repo = "design"
[[folders]]
id = "BBB"
name = "Workshops"
[folders.lab]
registry = "127.0.0.1:5000"
""")
    settings, _ = load_settings(path, env={})
    a, b = settings.folders
    assert (a.id, a.workdir, a.get("gitea", "repo"), a.get("gitea", "owner")) == ("AAA", Path("wd/design-docs"), "design", "cswg")
    assert (b.id, b.workdir, b.get("gitea", "repo"), b.get("lab", "registry")) == ("BBB", Path("wd/workshops"), None, "127.0.0.1:5000")
    assert a.get("lab", "registry") is None


def test_folder_without_id_and_unknown_folder_key(tmp_path: Path) -> None:
    path = write(tmp_path, "[[folders]]\nname = 'x'\nworkdri = 'y'\n")
    _, problems = load_settings(path, env={}, strict=False)
    assert any("folders[0]: needs an id" in p for p in problems)
    assert any("folders[0].workdri: unknown key (did you mean 'workdir'?)" in p for p in problems)


def test_bad_environment_value_is_reported(tmp_path: Path) -> None:
    _, problems = load_settings(None, env={"DOCPIPE_DRIVE_JOBS": "many"}, strict=False)
    assert problems == ["environment: DOCPIPE_DRIVE_JOBS: must be a whole number"]


def test_starter_config_is_valid(tmp_path: Path) -> None:
    settings, problems = load_settings(write(tmp_path, STARTER), env={})
    assert problems == []
    assert settings.folders[0].id == "REPLACE-WITH-FOLDER-ID"


def test_invalid_toml_is_one_line_bad_input(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="not valid TOML"):
        load_settings(write(tmp_path, "[drive\n"), env={})


BAD_LAB_VALUES = [
    ('ttl = "forever"', "lab.ttl: must be a duration like 90m, 3h or 2d (at most 30d) (got 'forever')"),
    ('backend = "k8s"', "lab.backend: must be one of: docker, kubernetes (got 'k8s')"),
    ('listen = "nope"', "lab.listen: must be HOST:PORT with a port 1-65535, e.g. 0.0.0.0:8443 (got 'nope')"),
    ('registry = "http://bad registry"',
     "lab.registry: must be HOST or HOST:PORT, e.g. registry.example.org:5000 (got 'http://bad registry')"),
    ('prefix = "UPPER"', "lab.prefix: must be lowercase path components like 'docpipe' or 'cswg/labs' "
                         "(a-z, 0-9, '.', '_', '-') (got 'UPPER')"),
    ('egress = "open"', "lab.egress: must be one of: none, internet (got 'open')"),
    ('subnet_pool = "10.213.0.1/16"', "lab.subnet_pool: must be an IPv4 network like 10.213.0.0/16 "
                                      "(prefix /8 to /26, no host bits) (got '10.213.0.1/16')"),
    ("warm = 500", "lab.warm: must be between 0 and 100 (got 500)"),
    ("starts_per_hour = 0", "lab.starts_per_hour: must be between 1 and 10000 (got 0)"),
    ('keep_home = "always"', "lab.keep_home: must be a duration like 90m, 3h or 2d (at most 30d) (got 'always')"),
    ('public_url = "https://lab.example.org/lab"', "lab.public_url: must look like https://host[:port] "
                                                   "(no path: every seat gets a host or a port of its own) "
                                                   "(got 'https://lab.example.org/lab')"),
]


@pytest.mark.parametrize("line,problem", BAD_LAB_VALUES)
def test_config_check_refuses_a_bad_lab_value_on_one_line_with_its_line_number(
        tmp_path: Path, line: str, problem: str) -> None:
    from tests.support.pull import cli

    path = write(tmp_path, f'[drive]\nfolder = "F1"\n\n[lab]\nmax_seats = 10\n{line}\n')
    r = cli(["config", "check", "--config", str(path)])
    assert r.returncode == 2
    assert r.stderr.splitlines() == [f"{path}:6: {problem}", "docpipe: error: 1 problem(s) in the configuration"]


def test_every_bad_lab_value_at_once_and_the_same_words_for_flags_and_environment(tmp_path: Path) -> None:
    path = write(tmp_path, "[lab]\n" + "\n".join(line for line, _ in BAD_LAB_VALUES) + "\n")
    _, problems = load_settings(path, env={}, strict=False)
    assert problems == [f"{path}:{no}: {problem}" for no, (_, problem) in enumerate(BAD_LAB_VALUES, 2)]
    _, problems = load_settings(None, env={"DOCPIPE_LAB_TTL": "forever"}, cli={("lab", "backend"): "k8s"},
                                strict=False)
    assert problems == ["environment: DOCPIPE_LAB_TTL: must be a duration like 90m, 3h or 2d (at most 30d)",
                        "command line: lab.backend: must be one of: docker, kubernetes (got 'k8s')"]
    good = write(tmp_path, '[lab]\nttl = "90m"\nbackend = "kubernetes"\nlisten = "[::]:443"\n'
                           'registry = "127.0.0.1:5000"\nprefix = "cswg/labs"\npublic_url = "https://lab.example.org:8443/"\n')
    assert load_settings(good, env={})[1] == []


def test_folder_for_picks_the_folder_whose_workdir_it_is(tmp_path: Path) -> None:
    from pipeline.config import folder_for

    path = write(tmp_path, f'workdir = "{tmp_path / "wd"}"\n[[folders]]\nid = "AAA"\nname = "a"\n'
                           '[[folders]]\nid = "BBB"\nname = "b"\n[folders.lab]\nprefix = "bee"\n')
    b = folder_for(path, tmp_path / "wd" / "b")
    assert (b.id, b.lab.prefix, b.workdir) == ("BBB", "bee", tmp_path / "wd" / "b")
    elsewhere = folder_for(path, tmp_path / "other")
    assert (elsewhere.id, elsewhere.workdir) == ("AAA", tmp_path / "other")
    assert folder_for(path).id == "AAA"
