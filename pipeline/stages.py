"""One way to run a stage: resolved settings -> the stage's call -> its events.

`docpipe <stage>`, `docpipe run` and `docpipe lab up <doc link>` all come through here, so a stage
gets the same arguments from the same settings whoever starts it, and every stage fires its
events (README, Hooks) also when run alone. Settings reach a stage as the folder's resolved
settings, never through the environment. Events go through pipeline.hooks' public API only.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from pipeline.config import FolderSettings
from pipeline.hooks import HookResult, HookRunner, default_dirs


class Summary(Protocol):
    def to_json(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class Stage:
    name: str
    # Fired once after the stage changed something, with its summary; None: the stage fires none
    # after it (provision fires `workshop` itself, once per workshop, as it goes).
    event: str | None
    call: Callable[[FolderSettings, Mapping[str, Any], HookRunner], Summary]


def _path(value: str | None) -> Path | None:
    return Path(value) if value else None


def _pull(f: FolderSettings, opts: Mapping[str, Any], hooks: HookRunner) -> Summary:
    from pipeline.errors import BadInput
    from pipeline.pull import pull

    only = opts.get("only_file_ids")
    if not f.id and not only:  # named docs need no folder: `lab up <doc link>`
        # Worded as tests/test_pull.py pins it (DOCPIPE_FOLDER is an alias of DOCPIPE_DRIVE_FOLDER).
        raise BadInput("no Drive folder: pass --folder, set DOCPIPE_FOLDER, or set [drive] folder in docpipe.toml")
    d = f.drive
    return pull(str(f.id or ""), workdir=f.workdir, endpoint=d.endpoint, credentials=_path(d.credentials),
                jobs=d.jobs, max_qps=d.max_qps, quiet=bool(opts.get("quiet")), full=bool(opts.get("full")),
                reconcile_every=d.reconcile_every, only_file_ids=list(only) if only else None)


def _replay(f: FolderSettings, opts: Mapping[str, Any], hooks: HookRunner) -> Summary:
    from pipeline.replay import replay

    return replay(f.workdir, authors=_path(f.replay.authors), quiet=bool(opts.get("quiet")))


def _push(f: FolderSettings, opts: Mapping[str, Any], hooks: HookRunner) -> Summary:
    from pipeline.push import push

    # push() itself refuses a missing URL, owner or token, with the same words for every caller.
    g = f.gitea
    return push(f.workdir, gitea_url=g.url, owner=g.owner, repo=g.repo, token=g.token, private=g.private,
                force=bool(opts.get("force")))


def _render(f: FolderSettings, opts: Mapping[str, Any], hooks: HookRunner) -> Summary:
    from pipeline.render import render

    return render(f.workdir, templates=_path(f.render.templates), allowed_bases=f.lab.allowed_bases,
                  allow_setup=bool(f.lab.allow_shell_steps), lab_url=f.lab.public_url or "")


def _publish(f: FolderSettings, opts: Mapping[str, Any], hooks: HookRunner) -> Summary:
    from pipeline.publish import publish

    return publish(f.workdir, site_branch=bool(f.publish.site_branch))


def _provision(f: FolderSettings, opts: Mapping[str, Any], hooks: HookRunner) -> Summary:
    """Stage 6: plan or build every workshop's image, then fire `workshop` for it.

    The image builder is docpipe's built-in `workshop` hook, run here in-process before the
    user's hooks (which find its result in the event's `image`); where built-in hooks are off
    ([hooks] builtin = false, [hooks] enabled = false, `--no-hooks`) the images are only planned.
    `unchanged`: workshop -> the key of its last success (`docpipe run` skips those)."""
    from pipeline.lab.image.provision import provision
    from pipeline.lab.settings import lab_settings
    from pipeline.render import event_docs

    settings = lab_settings(f)
    dry_run = bool(opts.get("dry_run")) or settings.dry_run or not (hooks.enabled and f.hooks.builtin)
    # What user hooks are told of the settings (README, Hooks): plain values, never read back.
    told = {"registry": f.lab.registry, "prefix": f.lab.prefix, "allowed_bases": f.lab.allowed_bases,
            "dry_run": dry_run, "allow_shell_steps": f.lab.allow_shell_steps, "build_timeout": f.lab.build_timeout,
            "templates": f.render.templates, "gitea_url": f.gitea.url, "gitea_owner": f.gitea.owner,
            "gitea_repo": f.gitea.repo}

    def after(workshop: Any, image: Mapping[str, Any], lab: Mapping[str, Any]) -> list[dict[str, Any]]:
        found = event_docs(f.workdir, [workshop.doc_id]).get(workshop.doc_id, {})
        doc = {**found, "workshop": workshop.name, "lab": dict(lab)}
        return [r.to_json() for r in fire(hooks, "workshop", f, {"doc": doc, "settings": told, "image": dict(image)})]

    return provision(f.workdir, settings, dry_run=dry_run, unchanged=opts.get("unchanged") or {}, after=after,
                     on_step=hooks.on_progress)


STAGES: dict[str, Stage] = {s.name: s for s in (
    Stage("pull", "pulled", _pull),
    Stage("replay", "replayed", _replay),
    Stage("push", "pushed", _push),
    Stage("render", "rendered", _render),
    Stage("publish", None, _publish),
    Stage("provision", None, _provision),
)}


def hook_runner(f: FolderSettings, *, enabled: bool = True, extra_dirs: Iterable[Path] = ()) -> HookRunner:
    """The hooks of one folder, as its settings say."""
    h = f.hooks
    return HookRunner(dirs=default_dirs(f.workdir, [*(Path(d) for d in h.dirs), *extra_dirs]),
                      timeout=h.timeout, enabled=enabled and h.enabled, pass_env=tuple(h.pass_env))


def fire(hooks: HookRunner, event: str, f: FolderSettings, payload: Mapping[str, Any]) -> list[HookResult]:
    """Fire `event` with the fields every event carries (Contract 4) plus `payload`."""
    from pipeline.archive import head

    base = {"workdir": str(f.workdir.resolve()), "folder": f.id, "commit": head(f.workdir)}
    return hooks.fire(event, {**base, **payload})


def call(name: str, f: FolderSettings, hooks: HookRunner, **options: Any) -> Summary:
    """Run one stage for one folder; no event after it (`docpipe run` fires only when something
    changed). Provision's `workshop` events are part of its call."""
    return STAGES[name].call(f, options, hooks)


def run_stage(name: str, f: FolderSettings, hooks: HookRunner | None = None,
              **options: Any) -> tuple[Summary, list[HookResult]]:
    """Run one stage and fire its event: what `docpipe <stage>` does."""
    stage = STAGES[name]
    hooks = hooks or hook_runner(f)
    summary = stage.call(f, options, hooks)
    results: list[HookResult] = []
    if stage.event:
        results = fire(hooks, stage.event, f, {"summary": summary.to_json()})
    return summary, results


def fetch_doc(f: FolderSettings, file_id: str) -> None:
    """Pull one doc and replay it (`docpipe lab up <doc link>`): under the workdir's run lock, as
    `docpipe run` would hold it, each stage firing its event as `docpipe pull` and `replay` do."""
    from pipeline.lock import workdir_lock

    with workdir_lock(f.workdir, what="run or lab up"):
        hooks = hook_runner(f)
        run_stage("pull", f, hooks, only_file_ids=[file_id], quiet=True)
        run_stage("replay", f, hooks, quiet=True)
