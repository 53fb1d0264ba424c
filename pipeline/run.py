"""`docpipe run`: every stage for every configured folder, doing only what changed.

Each stage still reads the previous one's output from disk; this module only decides what to
run, fires the events between stages, and gathers one summary. Nothing here knows a wire format.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline import stages
from pipeline.config import FolderSettings, Settings
from pipeline.errors import EXIT_FAILURE, BadInput, DocpipeError
from pipeline.hashing import tree_digest
from pipeline.hooks import HookRunner
from pipeline.lock import workdir_lock
from pipeline.progress import log, steps

STAGES = ("pull", "replay", "push", "render", "publish", "provision")


@dataclass
class StageResult:
    stage: str
    status: str  # "changed", "unchanged", "skipped", "failed"
    seconds: float = 0.0
    summary: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    exit_code: int = 0  # a failed stage's: 2 for bad input, 1 otherwise (pipeline.errors)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"stage": self.stage, "status": self.status, "seconds": round(self.seconds, 3)}
        if self.summary:
            out["summary"] = self.summary
        if self.error:
            out["error"] = self.error
        return out


@dataclass
class FolderResult:
    folder: str | None
    workdir: Path
    stages: list[StageResult] = field(default_factory=list)
    workshops: list[dict[str, Any]] = field(default_factory=list)
    hooks: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(s.status != "failed" for s in self.stages) and all(w.get("ok", True) for w in self.workshops)

    @property
    def exit_code(self) -> int:
        """The highest exit status of what failed (0 when nothing did)."""
        codes = [s.exit_code or EXIT_FAILURE for s in self.stages if s.status == "failed"]
        codes += [w.get("exit_code") or EXIT_FAILURE for w in self.workshops if not w.get("ok", True)]
        return max(codes, default=0)

    def to_json(self) -> dict[str, Any]:
        return {"folder": self.folder, "workdir": str(self.workdir), "ok": self.ok,
                "stages": [s.to_json() for s in self.stages], "workshops": self.workshops, "hooks": self.hooks}


@dataclass
class RunResult:
    folders: list[FolderResult]
    seconds: float

    @property
    def ok(self) -> bool:
        return all(f.ok for f in self.folders)

    @property
    def exit_code(self) -> int:
        return max((f.exit_code for f in self.folders), default=0)

    def to_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "seconds": round(self.seconds, 3), "folders": [f.to_json() for f in self.folders]}

    def text(self) -> str:
        lines = []
        for f in self.folders:
            lines.append(f"folder {f.folder} ({f.workdir}): {'ok' if f.ok else 'FAILED'}")
            for s in f.stages:
                detail = f" — {s.error}" if s.error else ""
                lines.append(f"  {s.stage:<9} {s.status:<9} {s.seconds:6.2f}s{detail}")
            for w in f.workshops:
                state = "ok" if w.get("ok", True) else f"FAILED — {w.get('error')}"
                lines.append(f"  workshop {w.get('name')}: {state}")
        lines.append(f"{'all good' if self.ok else 'some work failed'} in {self.seconds:.2f}s")
        return "\n".join(lines)


# ----------------------------------------------------------------------------- state and lock


def _state_path(workdir: Path) -> Path:
    return workdir / "run-state.json"


def load_state(workdir: Path) -> dict[str, Any]:
    try:
        state = json.loads(_state_path(workdir).read_text())
    except FileNotFoundError:
        return {}
    return state if isinstance(state, dict) else {}


def save_state(workdir: Path, state: dict[str, Any]) -> None:
    from pipeline.atomic import atomic_write

    atomic_write(_state_path(workdir), (json.dumps(state, sort_keys=True, indent=1) + "\n").encode())


def _store_digest(workdir: Path) -> str:
    from pipeline.store import Store

    return Store.at(workdir).digest()


# ----------------------------------------------------------------------------- stages


def archive_head(workdir: Path) -> str | None:
    from pipeline.archive import head

    return head(workdir)


def _call(name: str, f: FolderSettings, hooks: HookRunner) -> Callable[[], dict[str, Any]]:
    return lambda: stages.call(name, f, hooks).to_json()


def _timed(stage: str, fn: Callable[[], dict[str, Any]]) -> StageResult:
    start = time.monotonic()
    try:
        summary = fn()
    except DocpipeError as exc:
        log(f"{stage}: failed: {exc.message}")
        return StageResult(stage, "failed", time.monotonic() - start, error=exc.message, exit_code=exc.exit_code)
    return StageResult(stage, "changed", time.monotonic() - start, summary=summary)


def run_folder(f: FolderSettings, *, only: set[str], hooks: HookRunner, dry_run_lab: bool = False) -> FolderResult:
    result = FolderResult(folder=f.id, workdir=f.workdir)
    state = load_state(f.workdir)

    def fire(event: str, payload: dict[str, Any]) -> None:
        for r in stages.fire(hooks, event, f, payload):
            result.hooks.append(r.to_json())

    def stage(name: str, fn: Callable[[], dict[str, Any]], changed: Callable[[dict[str, Any]], bool],
              event: str | None) -> StageResult | None:
        if name not in only:
            return None
        log(f"{name}: {f.id or ''} {f.workdir}".rstrip())
        res = _timed(name, fn)
        if res.status == "changed" and not changed(res.summary):
            res.status = "unchanged"
        if res.status == "changed" and event:
            try:
                fire(event, {"summary": res.summary})
            except DocpipeError as exc:
                res.status, res.error, res.exit_code = "failed", exc.message, exc.exit_code
        result.stages.append(res)
        return res

    def failed() -> bool:
        return any(s.status == "failed" for s in result.stages)

    store_before = _store_digest(f.workdir)
    stage("pull", _call("pull", f, hooks), lambda s: _store_digest(f.workdir) != store_before, "pulled")
    if failed():
        return result
    before = archive_head(f.workdir)
    stage("replay", _call("replay", f, hooks), lambda s: archive_head(f.workdir) != before, "replayed")
    if failed():
        return result
    head = archive_head(f.workdir)

    if "push" in only:
        target = [f.gitea.url, f.gitea.owner, f.gitea.repo]
        if not f.gitea.url:
            result.stages.append(StageResult("push", "skipped", summary={"reason": "no [gitea] url configured"}))
        elif state.get("pushed") == {"head": head, "target": target}:
            result.stages.append(StageResult("push", "unchanged"))
        else:
            res = stage("push", _call("push", f, hooks), lambda s: True, "pushed")
            if res and res.status != "failed":
                state["pushed"] = {"head": head, "target": target}

    templates = f.render.templates
    # Everything render reads: the archive, the templates, and the lab settings specs are checked against.
    render_key = {"head": head, "templates": tree_digest(Path(templates)) if templates else None,
                  "allowed_bases": f.lab.allowed_bases, "allow_setup": f.lab.allow_shell_steps}
    rendered: dict[str, Any] | None = None
    if "render" in only or "provision" in only:
        if state.get("rendered", {}).get("key") == render_key and (f.workdir / "site").is_dir():
            result.stages.append(StageResult("render", "unchanged"))
            rendered = state["rendered"]["summary"]
        else:
            res = stage("render", _call("render", f, hooks), lambda s: True, "rendered")
            if res and res.status != "failed":
                rendered = res.summary
                state["rendered"] = {"key": render_key, "summary": rendered}
    if failed():
        save_state(f.workdir, state)
        return result

    if "publish" in only and f.publish.enabled:
        site = tree_digest(f.workdir / "site")
        if state.get("published") == site and (f.workdir / "public").is_dir():
            result.stages.append(StageResult("publish", "unchanged"))
        else:
            res = stage("publish", _call("publish", f, hooks), lambda s: True, None)
            if res and res.status != "failed":
                state["published"] = site

    if "provision" in only and rendered is not None:
        _provision(f, hooks, result, state, dry_run_lab)
    save_state(f.workdir, state)
    return result


def _provision(f: FolderSettings, hooks: HookRunner, result: FolderResult, state: dict[str, Any],
               dry_run: bool) -> None:
    """The provision stage as `docpipe provision` runs it (one `workshop` event per workshop),
    skipping each workshop whose spec and image settings are those of its last success."""
    from pipeline.lab.image.provision import ProvisionSummary

    log(f"provision: {f.id or ''} {f.workdir}".rstrip())
    start = time.monotonic()
    done = state.setdefault("workshops", {})
    try:
        summary = stages.call("provision", f, hooks, dry_run=dry_run, unchanged=dict(done))
    except DocpipeError as exc:
        log(f"provision: failed: {exc.message}")
        result.stages.append(StageResult("provision", "failed", time.monotonic() - start, error=exc.message,
                                         exit_code=exc.exit_code))
        return
    assert isinstance(summary, ProvisionSummary)
    for o in summary.workshops:
        if o.ok:
            done[o.workshop] = o.key  # the key holds dry_run, so a plan never stands in for a build
        else:
            log(f"workshop {o.workshop}: {o.result.error}")
        result.workshops.append(o.to_json())
        result.hooks.extend(o.hooks)
    fired = sum(1 for o in summary.workshops if o.ok and o.status == "changed")
    status = "failed" if summary.failed else "changed" if fired else "unchanged"
    result.stages.append(StageResult("provision", status, time.monotonic() - start, exit_code=summary.exit_code,
                                     summary={"workshops": len(summary.workshops), "fired": fired}))


def run(settings: Settings, *, only: set[str] | None = None, hooks_enabled: bool = True,
        extra_hook_dirs: list[Path] | None = None, wait: bool = False, dry_run_lab: bool = False) -> RunResult:
    only = set(only or STAGES)
    unknown = only - set(STAGES)
    if unknown:
        raise BadInput(f"--only: unknown stage(s) {', '.join(sorted(unknown))}; choose from {', '.join(STAGES)}")
    if "pull" in only and any(not f.id for f in settings.folders):
        raise BadInput("no Drive folder configured: set [drive] folder in docpipe.toml, "
                       "DOCPIPE_DRIVE_FOLDER, or pass --folder")
    start = time.monotonic()
    results = []
    for f in settings.folders:
        hooks = stages.hook_runner(f, enabled=hooks_enabled, extra_dirs=extra_hook_dirs or [])
        with workdir_lock(f.workdir, wait=wait), steps() as show:
            hooks.on_progress = show
            results.append(run_folder(f, only=only, hooks=hooks, dry_run_lab=dry_run_lab))
    return RunResult(results, time.monotonic() - start)
