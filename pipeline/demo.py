"""`docpipe demo`: the whole job on the shipped sample data, with no credentials and no servers.

The Drive emulator serves sample-data/ in-process, a local bare repository stands in for Gitea,
and lab images are built for real when a Docker Engine answers (planned with --dry-run otherwise).
"""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.config import FolderSettings, load_settings
from pipeline.errors import DocpipeError
from pipeline.progress import log, steps


@dataclass
class DemoResult:
    workdir: Path
    run: Any
    standin: Path
    engine: bool
    seconds: float
    notes: list[str] = field(default_factory=list)
    why_planned: str = "no Docker Engine answered"  # why lab images were only planned (engine False)

    def to_json(self) -> dict[str, Any]:
        return {"workdir": str(self.workdir), "gitea_standin": str(self.standin), "docker_engine": self.engine,
                "seconds": round(self.seconds, 3), "run": self.run.to_json(), "notes": self.notes}

    def text(self) -> str:
        wd = self.workdir
        lines = [
            self.run.text(),
            "",
            "Where everything is:",
            f"  store (every revision and comment):  {wd / 'store'}",
            f"  git history:                         git -C {wd / 'archive'} log --stat --format=fuller main",
            f"  pushed copy (stands in for Gitea):   git clone {self.standin} /tmp/docpipe-demo-clone",
            f"  MkDocs project:                      {wd / 'site'}  (cd {wd / 'site'} && mkdocs serve)",
            f"  built site:                          python3 -m http.server -d {wd / 'public'} 8000",
            "  lab desktops:                        "
            # lab.localhost: browsers resolve every *.localhost to this machine, so each seat's
            # own host name (s-<id>.lab.localhost) works with no DNS record.
            + ("built; start seats with `docpipe lab up ws-go-promisegrid --seats 2 --listen 127.0.0.1:8443 "
               f"--public-url https://lab.localhost:8443 --workdir {wd}`" if self.engine else f"planned only ({self.why_planned}); "
               f"see `docpipe provision --dry-run --workdir {wd}`"),
        ]
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)


def docker_engine_answers() -> bool:
    try:
        import docker

        client = docker.from_env(timeout=3)
        client.ping()
        client.close()
        return True
    except Exception:  # any failure to reach an engine means "no engine" for the demo
        return False


def push_to_local(workdir: Path, standin: Path) -> tuple[str, bool]:
    """Push the archive's main to a local bare repository, as `docpipe push` does to Gitea.
    Returns main's SHA and whether the stand-in changed."""
    import pygit2

    from pipeline.archive import open_main

    if not standin.exists():
        pygit2.init_repository(str(standin), bare=True, initial_head="main")
    theirs = pygit2.Repository(str(standin)).references.get("refs/heads/main")
    before = str(theirs.target) if theirs is not None else None
    repo, tip = open_main(workdir)
    if before == str(tip.id):
        return before, False
    repo.remotes.create_anonymous(str(standin.resolve())).push(["+refs/heads/main:refs/heads/main"])
    return str(tip.id), True


# Exports name their images by the emulator's address, so a fixed port keeps the store of one
# demo byte-identical to the next; another port is taken only when this one is busy.
DEMO_PORT = 47615


@contextmanager
def _emulator(factory: Any, dataset: Any, token: str) -> Iterator[Any]:
    try:
        emu = factory(dataset, token=token, port=DEMO_PORT)
        emu.start()
    except OSError:
        emu = factory(dataset, token=token, port=0)
        emu.start()
    try:
        yield emu
    finally:
        emu.stop()


def demo(workdir: Path, *, dry_run_lab: bool | None = None) -> DemoResult:
    from pipeline.emulator import Emulator, load_dataset
    from pipeline.hooks import HookRunner, default_dirs
    from pipeline.lock import workdir_lock
    from pipeline.resources import shipped
    from pipeline.run import RunResult, StageResult, run_folder

    start = time.monotonic()
    notes: list[str] = []
    engine = docker_engine_answers() if dry_run_lab is None else not dry_run_lab
    why_planned = "no Docker Engine answered" if dry_run_lab is None else "--dry-run-lab was given"
    if not engine and dry_run_lab is None:
        notes.append("no Docker Engine answered, so lab images were planned (--dry-run), not built")
    token = secrets.token_urlsafe(24)
    dataset = load_dataset(shipped("sample-data"))
    with _emulator(Emulator, dataset, token) as emu:
        settings, _ = load_settings(None, env={}, cli={
            ("", "workdir"): str(workdir), ("drive", "folder"): emu.root_folder_id,
            ("drive", "endpoint"): emu.url, ("lab", "dry_run"): not engine,
        })
        folder: FolderSettings = settings.folders[0]
        previous = os.environ.get("DOCPIPE_ACCESS_TOKEN")
        os.environ["DOCPIPE_ACCESS_TOKEN"] = token
        try:
            hooks = HookRunner(dirs=default_dirs(workdir))
            with workdir_lock(workdir), steps() as show:
                hooks.on_progress = show
                # Gitea is not here: push runs against a local bare repository below instead.
                result = run_folder(folder, only={"pull", "replay", "render", "publish", "provision"},
                                    hooks=hooks, dry_run_lab=not engine)
        finally:
            if previous is None:
                os.environ.pop("DOCPIPE_ACCESS_TOKEN", None)
            else:
                os.environ["DOCPIPE_ACCESS_TOKEN"] = previous
    standin = workdir / "gitea-standin.git"
    if any(s.stage == "replay" and s.status != "failed" for s in result.stages):
        import pygit2

        t = time.monotonic()
        try:
            head, changed = push_to_local(workdir, standin)
        except pygit2.GitError as exc:
            raise DocpipeError(f"demo push to {standin} failed: {exc}") from None
        result.stages.insert(2, StageResult("push", "changed" if changed else "unchanged", time.monotonic() - t,
                                            summary={"remote": str(standin), "head": head}))
    log(f"demo finished in {time.monotonic() - start:.1f}s")

    return DemoResult(workdir=workdir, run=RunResult([result], time.monotonic() - start), standin=standin,
                      engine=engine, seconds=time.monotonic() - start, notes=notes, why_planned=why_planned)
