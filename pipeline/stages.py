"""One way to run a stage: resolved settings -> the stage's call -> its event.

`docpipe <stage>` and `docpipe run` both come through here, so a stage gets the same arguments
from the same settings whoever starts it, and every stage fires its event (README, Hooks) also
when run alone. Events go through pipeline.hooks' public API only.
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
    event: str | None  # fired after the stage changed something; None: the stage fires none
    call: Callable[[FolderSettings, Mapping[str, Any]], Summary]


def _path(value: str | None) -> Path | None:
    return Path(value) if value else None


def _pull(f: FolderSettings, opts: Mapping[str, Any]) -> Summary:
    from pipeline.errors import BadInput
    from pipeline.pull import pull

    if not f.id:
        # Worded as tests/test_pull.py pins it (DOCPIPE_FOLDER is an alias of DOCPIPE_DRIVE_FOLDER).
        raise BadInput("no Drive folder: pass --folder, set DOCPIPE_FOLDER, or set [drive] folder in docpipe.toml")
    d = f.drive
    return pull(str(f.id), workdir=f.workdir, endpoint=d.endpoint, credentials=_path(d.credentials), jobs=d.jobs,
                max_qps=d.max_qps, quiet=bool(opts.get("quiet")), full=bool(opts.get("full")),
                reconcile_every=d.reconcile_every)


def _replay(f: FolderSettings, opts: Mapping[str, Any]) -> Summary:
    from pipeline.replay import replay

    return replay(f.workdir, authors=_path(f.replay.authors), quiet=bool(opts.get("quiet")))


def _push(f: FolderSettings, opts: Mapping[str, Any]) -> Summary:
    from pipeline.push import push

    # push() itself refuses a missing URL, owner or token, with the same words for every caller.
    g = f.gitea
    return push(f.workdir, gitea_url=g.url, owner=g.owner, repo=g.repo, token=g.token, private=g.private,
                force=bool(opts.get("force")))


def _render(f: FolderSettings, opts: Mapping[str, Any]) -> Summary:
    from pipeline.render import render

    return render(f.workdir, templates=_path(f.render.templates), allowed_bases=f.lab.allowed_bases,
                  allow_setup=bool(f.lab.allow_shell_steps))


def _publish(f: FolderSettings, opts: Mapping[str, Any]) -> Summary:
    from pipeline.publish import publish

    return publish(f.workdir, site_branch=bool(f.publish.site_branch))


STAGES: dict[str, Stage] = {s.name: s for s in (
    Stage("pull", "pulled", _pull),
    Stage("replay", "replayed", _replay),
    Stage("push", "pushed", _push),
    Stage("render", "rendered", _render),
    Stage("publish", None, _publish),
)}


def hook_runner(f: FolderSettings, *, enabled: bool = True, extra_dirs: Iterable[Path] = ()) -> HookRunner:
    """The hooks of one folder, as its settings say."""
    h = f.hooks
    return HookRunner(dirs=default_dirs(f.workdir, [*(Path(d) for d in h.dirs), *extra_dirs], builtin=h.builtin),
                      timeout=h.timeout, enabled=enabled and h.enabled, pass_env=tuple(h.pass_env))


def fire(hooks: HookRunner, event: str, f: FolderSettings, payload: Mapping[str, Any]) -> list[HookResult]:
    """Fire `event` with the fields every event carries (Contract 4) plus `payload`."""
    from pipeline.archive import head

    base = {"workdir": str(f.workdir.resolve()), "folder": f.id, "commit": head(f.workdir)}
    return hooks.fire(event, {**base, **payload})


def call(name: str, f: FolderSettings, **options: Any) -> Summary:
    """Run one stage for one folder; no event (`docpipe run` fires only when something changed)."""
    return STAGES[name].call(f, options)


def run_stage(name: str, f: FolderSettings, hooks: HookRunner | None = None,
              **options: Any) -> tuple[Summary, list[HookResult]]:
    """Run one stage and fire its event: what `docpipe <stage>` does."""
    stage = STAGES[name]
    summary = stage.call(f, options)
    results: list[HookResult] = []
    if stage.event:
        results = fire(hooks or hook_runner(f), stage.event, f, {"summary": summary.to_json()})
    return summary, results
