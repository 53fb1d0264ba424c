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
        codes += [EXIT_FAILURE for w in self.workshops if not w.get("ok", True)]
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
    from pipeline.store import atomic_write

    atomic_write(_state_path(workdir), (json.dumps(state, sort_keys=True, indent=1) + "\n").encode())


def _store_digest(workdir: Path) -> str:
    from pipeline.store import Store

    return Store.at(workdir).digest()


# ----------------------------------------------------------------------------- stages


def archive_head(workdir: Path) -> str | None:
    from pipeline.archive import head

    return head(workdir)


def _call(name: str, f: FolderSettings) -> Callable[[], dict[str, Any]]:
    return lambda: stages.call(name, f).to_json()


def _lab_settings(f: FolderSettings, dry_run: bool) -> dict[str, Any]:
    return {"registry": f.lab.registry, "prefix": f.lab.prefix,
            "allowed_bases": f.lab.allowed_bases, "dry_run": dry_run or f.lab.dry_run,
            "allow_shell_steps": f.lab.allow_shell_steps, "build_timeout": f.lab.build_timeout,
            "templates": f.render.templates, "gitea_url": f.gitea.url,
            "gitea_owner": f.gitea.owner, "gitea_repo": f.gitea.repo}


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
    stage("pull", _call("pull", f), lambda s: _store_digest(f.workdir) != store_before, "pulled")
    if failed():
        return result
    before = archive_head(f.workdir)
    stage("replay", _call("replay", f), lambda s: archive_head(f.workdir) != before, "replayed")
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
            res = stage("push", _call("push", f), lambda s: True, "pushed")
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
            res = stage("render", _call("render", f), lambda s: True, "rendered")
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
            res = stage("publish", _call("publish", f), lambda s: True, None)
            if res and res.status != "failed":
                state["published"] = site

    if "provision" in only and rendered is not None:
        _provision(f, rendered, result, fire, state, dry_run_lab)
    save_state(f.workdir, state)
    return result


def _provision(f: FolderSettings, rendered: dict[str, Any], result: FolderResult,
               fire: Callable[[str, dict[str, Any]], None], state: dict[str, Any], dry_run: bool) -> None:
    """One `workshop` event per workshop doc; the built-in hook builds its desktop image.
    A workshop whose spec is unchanged since its last successful event is not fired again."""
    from pipeline.render import EVENT_DOC_FIELDS

    start = time.monotonic()
    done = state.setdefault("workshops", {})
    settings = _lab_settings(f, dry_run)
    fired = 0
    for ws in rendered.get("workshops", []):
        name = ws.get("workshop_name") or ws.get("name") or ws.get("id")
        doc = {k: ws.get(k) for k in EVENT_DOC_FIELDS}
        doc["workshop"] = name
        doc["lab"] = ws.get("lab")
        key = json.dumps([ws.get("lab"), ws.get("lab_error"), settings], sort_keys=True)
        if done.get(name) == key:
            result.workshops.append({"name": name, "ok": True, "status": "unchanged"})
            continue
        entry: dict[str, Any] = {"name": name, "ok": True, "status": "changed"}
        try:
            if ws.get("lab_error"):
                raise DocpipeError(ws["lab_error"])
            before = len(result.hooks)
            fire("workshop", {"doc": doc, "settings": settings})
            entry["outputs"] = [h["output"] for h in result.hooks[before:]]
            fired += 1
            done[name] = key  # the key holds dry_run, so a plan never stands in for a build
        except DocpipeError as exc:
            log(f"workshop {name}: {exc.message}")
            entry.update(ok=False, error=exc.message)
        result.workshops.append(entry)
    status = "changed" if fired else "unchanged"
    if any(not w["ok"] for w in result.workshops):
        status = "failed"
    result.stages.append(StageResult("provision", status, time.monotonic() - start,
                                     summary={"workshops": len(result.workshops), "fired": fired}))


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
