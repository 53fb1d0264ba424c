"""A killed docpipe leaves nothing behind: each long stage, run as the real `docpipe` command, is
SIGKILLed mid-way; 5 s later no process of that run is alive, and the rerun gives exactly what an
uninterrupted run gives (same store bytes, same archive SHA, same site)."""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import pygit2
import pytest

from pipeline.emulator import Emulator, generate_dataset
from pipeline.publish import publish
from pipeline.render import render
from pipeline.replay import replay
from tests.support.files import file_digests, session_members
from tests.support.pull import cli

TOKEN = "hygiene-token"
ENV = {"DOCPIPE_ACCESS_TOKEN": TOKEN}


def main_sha(workdir: Path) -> str:
    repo = pygit2.Repository(str(workdir / "archive"))
    return str(repo.references["refs/heads/main"].target)


def _alive(p: psutil.Process) -> bool:
    try:
        return p.is_running() and p.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@dataclass
class Killed:
    children: list[str]  # command lines of the run's descendants when it was killed
    outlived: list[str]  # ... of those still alive a quarter second after it died
    leftovers: list[str]  # ... of the run's processes still alive 5 s after


def start(args: list[str], cwd: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCPIPE_")} | ENV
    # A session of its own: everything the run starts stays in it unless it asks otherwise.
    return subprocess.Popen([sys.executable, "-m", "pipeline.cli", *args], cwd=cwd, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)


def kill_when(args: list[str], cwd: Path, ready: Callable[[psutil.Process], bool], limit: float = 120) -> Killed:
    """Start docpipe, SIGKILL it the moment `ready(it)` holds, and see what of it is left 5 s later."""
    proc = start(args, cwd)
    me = psutil.Process(proc.pid)
    deadline = time.monotonic() + limit
    try:
        while not ready(me):
            assert proc.poll() is None, f"docpipe {args[0]} finished (exit {proc.returncode}) before the kill"
            assert time.monotonic() < deadline, f"docpipe {args[0]} never reached the moment to kill it"
            time.sleep(0.02)
        children = me.children(recursive=True)
        snapshot = [" ".join(c.cmdline()) for c in children]
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        # A child that dies *with* docpipe is gone at once; one that merely finishes its work
        # (a short MkDocs build, say) would pass the 5 s check by chance.
        time.sleep(0.25)
        outlived = [" ".join(c.cmdline()) for c in children if _alive(c)]
        time.sleep(4.75)
        left = {p.pid: p for p in session_members(proc.pid)}
        for c in children:  # a child that left the session still counts
            if _alive(c):
                left[c.pid] = c
        leftovers = [" ".join(p.cmdline()) for p in left.values()]
        return Killed(snapshot, outlived, leftovers)
    finally:
        for p in session_members(proc.pid):  # never leave them for the next test
            p.kill()
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def has_child(word: str) -> Callable[[psutil.Process], bool]:
    def ready(p: psutil.Process) -> bool:
        try:
            return any(word in " ".join(c.cmdline()) for c in p.children(recursive=True))
        except psutil.NoSuchProcess:
            return False
    return ready


def docs_written(workdir: Path, n: int) -> Callable[[psutil.Process], bool]:
    return lambda p: len(list((workdir / "store" / "docs").glob("*.json"))) >= n


@dataclass
class World:
    emu: Emulator
    root: Path
    reference: Path  # a workdir every stage ran through, uninterrupted
    docs: int


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    ds = generate_dataset(docs=24, revisions=12, size=(3_000, 12_000), comments=2, replies=1, seed=13, subfolders=1)
    with tempfile.TemporaryDirectory(prefix="docpipe-hygiene-") as tmp, Emulator(ds, token=TOKEN) as emu:
        root = Path(tmp)
        ref = root / "reference"
        r = cli(["pull", "--folder", emu.root_folder_id, "--drive-endpoint", emu.url, "--workdir", str(ref),
                 "--jobs", "8", "--max-qps", "200"], env=ENV)
        assert r.returncode == 0, r.stderr
        replay(ref, quiet=True)
        render(ref)
        publish(ref)
        yield World(emu, root, ref, 24)


def fresh(world: World, name: str, *, stages: tuple[str, ...] = ()) -> Path:
    """A workdir holding the reference's output of `stages` (nothing else)."""
    wd = world.root / name
    shutil.rmtree(wd, ignore_errors=True)
    wd.mkdir()
    for part in stages:
        shutil.copytree(world.reference / part, wd / part, symlinks=True)
    return wd


def test_killed_pull_leaves_nothing_and_resumes_to_the_same_store(world: World) -> None:
    wd = fresh(world, "pull")
    args = ["pull", "--folder", world.emu.root_folder_id, "--drive-endpoint", world.emu.url,
            "--workdir", str(wd), "--jobs", "2"]
    world.emu.latency = 0.03  # seconds of requests: time to kill it in the middle
    try:
        killed = kill_when(args, world.root, docs_written(wd, 3))
    finally:
        world.emu.latency = 0.0
    assert killed.outlived == [] and killed.leftovers == []
    # Really mid-way: the store is not yet what a finished pull leaves.
    assert file_digests(wd / "store") != file_digests(world.reference / "store")
    r = cli(args, env=ENV)
    assert r.returncode == 0, r.stderr
    assert file_digests(wd / "store") == file_digests(world.reference / "store")


def test_killed_replay_leaves_no_worker_and_replays_to_the_same_commits(world: World) -> None:
    wd = fresh(world, "replay", stages=("store",))
    args = ["replay", "--workdir", str(wd)]
    # Killed while its conversion workers are busy.
    killed = kill_when(args, world.root, lambda p: len(p.children()) >= 1)
    assert killed.children, "replay was killed before it started any worker"
    assert killed.outlived == [] and killed.leftovers == []
    shutil.rmtree(wd / "cache", ignore_errors=True)  # a worker still writing there would race the rerun
    r = cli(args)
    assert r.returncode == 0, r.stderr
    assert main_sha(wd) == main_sha(world.reference)


def test_killed_publish_takes_mkdocs_down_and_republishes_the_same_site(world: World) -> None:
    wd = fresh(world, "publish", stages=("archive", "site"))
    args = ["publish", "--workdir", str(wd)]
    killed = kill_when(args, world.root, has_child("mkdocs"))
    assert any("mkdocs build" in c for c in killed.children)
    assert killed.outlived == [] and killed.leftovers == []
    assert not (wd / "public").exists()
    r = cli(args)
    assert r.returncode == 0, r.stderr
    assert file_digests(wd / "public") == file_digests(world.reference / "public")
    assert not (wd / "public.tmp").exists()


def test_killed_run_leaves_nothing_and_the_rerun_matches(world: World) -> None:
    wd = fresh(world, "run")
    config = world.root / "run.toml"
    config.write_text(f'workdir = "{wd}"\n[drive]\nfolder = "{world.emu.root_folder_id}"\n'
                      f'endpoint = "{world.emu.url}"\njobs = 8\nmax_qps = 200\n')
    args = ["run", "--config", str(config), "--no-hooks", "--only", "pull,replay,render,publish"]
    # Killed in its last stage, with its MkDocs child building the site.
    killed = kill_when(args, world.root, has_child("mkdocs"))
    assert any("mkdocs build" in c for c in killed.children)
    assert killed.outlived == [] and killed.leftovers == []
    assert not (wd / "public").exists()
    r = cli(args, env=ENV)
    assert r.returncode == 0, r.stderr
    assert file_digests(wd / "store") == file_digests(world.reference / "store")
    assert main_sha(wd) == main_sha(world.reference)
    assert file_digests(wd / "public") == file_digests(world.reference / "public")


# ------------------------------------------------------------------ pipeline.children itself

def _gone_within(pid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.02)
    return False


def _parent_printing_child_pids(code: str) -> tuple[subprocess.Popen[str], list[int]]:
    """A Python process that starts children as `code` says and prints their pids."""
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, cwd=Path(__file__).parent.parent)
    assert parent.stdout is not None
    pids = [int(x) for x in parent.stdout.readline().split()]
    assert pids, "the parent started no child"
    return parent, pids


@pytest.mark.parametrize("how", ["children", "plain subprocess"])
def test_a_child_dies_with_its_sigkilled_parent(how: str) -> None:
    start = ("from pipeline import children; p = children.popen(['sleep', '1000'])" if how == "children"
             else "import subprocess; p = subprocess.Popen(['sleep', '1000'])")
    parent, [child] = _parent_printing_child_pids(f"import time\n{start}\nprint(p.pid, flush=True)\ntime.sleep(1000)")
    try:
        parent.kill()
        parent.wait()
        # The plain child is the control: it shows that without children.popen the sleep lives on.
        assert _gone_within(child, 1.0) == (how == "children")
    finally:
        if not _gone_within(child, 0):
            os.kill(child, signal.SIGKILL)


def test_pool_workers_die_with_their_parent() -> None:
    # Workers report their own pids; then the parent is SIGKILLed while they idle.
    code = ("import os, time\nfrom concurrent.futures import ProcessPoolExecutor\nfrom pipeline import children\n"
            "def pid(_):\n    time.sleep(0.2)\n    return os.getpid()\n"
            "if __name__ == '__main__':\n"
            "    pool = ProcessPoolExecutor(2, initializer=children.die_with_parent, initargs=(os.getpid(),))\n"
            "    print(*sorted(set(pool.map(pid, range(4)))), flush=True)\n    time.sleep(1000)\n")
    parent, workers = _parent_printing_child_pids(code)
    try:
        parent.kill()
        parent.wait()
        assert all(_gone_within(w, 2.0) for w in workers)
    finally:
        for w in workers:
            if not _gone_within(w, 0):
                os.kill(w, signal.SIGKILL)


def test_run_timeout_kills_the_whole_group(tmp_path: Path) -> None:
    from pipeline import children

    pidfile = tmp_path / "bg.pid"
    with pytest.raises(subprocess.TimeoutExpired):
        children.run(["sh", "-c", f"sleep 1000 & echo $! > {pidfile}; wait"], timeout=1, capture_output=True)
    assert _gone_within(int(pidfile.read_text()), 2.0)
