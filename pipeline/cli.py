"""The docpipe command line: parse, call one stage, print, set the exit status.

Each command owns only argument handling and output; the work lives in the stage modules.
Errors reach the user once, here, as one line (see `main`).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Optional

import typer

from pipeline.errors import EXIT_BAD_INPUT, EXIT_FAILURE, DocpipeError

app = typer.Typer(
    name="docpipe",
    help="Keep Google Docs as git history and publish them as workshops with lab desktops.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root() -> None:
    """Keep Google Docs as git history and publish them as workshops with lab desktops."""

WorkdirOpt = typer.Option(None, "--workdir", envvar="DOCPIPE_WORKDIR", help="Working directory [default: .docpipe].")
JsonOpt = typer.Option(False, "--json", help="Print one JSON summary object on stdout.")


def emit(summary: dict[str, Any], as_json: bool, text: str) -> None:
    """Print a stage summary: JSON for machines, `text` for people."""
    if as_json:
        print(json.dumps(summary, sort_keys=True))
    else:
        print(text)


def workdir_of(value: Optional[Path]) -> Path:
    from pipeline import config

    return config.workdir(value)


# ---------------------------------------------------------------- commands
# Each stage's command lives below; its body calls into pipeline.<stage>.


@app.command()
def version() -> None:
    """Print docpipe's version."""
    from pipeline import __version__

    print(__version__)


config_app = typer.Typer(help="Check docpipe.toml.", no_args_is_help=True)
app.add_typer(config_app, name="config")


@config_app.command("check")
def config_check(
    config: Optional[Path] = typer.Option(None, "--config", envvar="DOCPIPE_CONFIG", help="Config file [default: ./docpipe.toml]."),
) -> None:
    """Validate the configuration and report every problem at once."""
    from pipeline.config import load_settings
    from pipeline.errors import BadInput

    settings, problems = load_settings(config, strict=False)
    for p in problems:
        print(p, file=sys.stderr)
    if problems:
        raise BadInput(f"{len(problems)} problem(s) in the configuration")
    where = settings.path or "defaults and environment (no docpipe.toml)"
    print(f"{where}: ok, {len(settings.folders)} folder(s): "
          + ", ".join(f"{f.id or '(no folder id)'} -> {f.workdir}" for f in settings.folders))


@app.command()
def init(
    path: Path = typer.Argument(Path("docpipe.toml"), help="Where to write the starter config."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing file."),
) -> None:
    """Write a commented starter docpipe.toml."""
    from pipeline.config import STARTER
    from pipeline.errors import BadInput
    from pipeline.store import atomic_write

    if path.exists() and not force:
        raise BadInput(f"{path} already exists (use --force to overwrite)")
    atomic_write(path, STARTER.encode())
    print(f"wrote {path}: set [drive] folder, then run `docpipe config check` and `docpipe run`")


@app.command()
def run(
    config: Optional[Path] = typer.Option(None, "--config", envvar="DOCPIPE_CONFIG", help="Config file [default: ./docpipe.toml]."),
    only: Optional[str] = typer.Option(None, "--only", help="Comma-separated stages: pull,replay,push,render,publish,provision."),
    folder: Optional[str] = typer.Option(None, "--folder", help="Run only this Drive folder id (or the one folder if none is configured)."),
    workdir: Optional[Path] = typer.Option(None, "--workdir", help="Working directory [default: .docpipe]."),
    hooks_dir: list[Path] = typer.Option([], "--hooks", help="Another directory of hooks (repeatable)."),
    no_hooks: bool = typer.Option(False, "--no-hooks", help="Run no hooks (no lab images either)."),
    dry_run_lab: bool = typer.Option(False, "--dry-run-lab", help="Plan lab images without building them."),
    wait: bool = typer.Option(False, "--wait", help="Wait for another run on the same workdir instead of exiting."),
    as_json: bool = JsonOpt,
) -> None:
    """Run every stage for every configured folder, doing only what changed since the last run."""
    from pipeline.config import load_settings
    from pipeline.run import run as run_all

    cli_values: dict[tuple[str, str], object] = {("drive", "folder"): folder}
    if workdir is not None:
        cli_values[("", "workdir")] = str(workdir)
    settings, _ = load_settings(config, cli=cli_values)
    stages = {s.strip() for s in only.split(",") if s.strip()} if only else None
    result = run_all(settings, only=stages, hooks_enabled=not no_hooks, extra_hook_dirs=hooks_dir,
                     wait=wait, dry_run_lab=dry_run_lab)
    emit(result.to_json(), as_json, result.text())
    if not result.ok:
        raise typer.Exit(EXIT_FAILURE)


@app.command()
def demo(
    workdir: Path = typer.Option(Path("docpipe-demo"), "--workdir", help="Where the demo writes everything."),
    dry_run_lab: Optional[bool] = typer.Option(None, "--dry-run-lab/--build-lab", help="Plan or build lab images [default: build when a Docker Engine answers]."),
    as_json: bool = JsonOpt,
) -> None:
    """The whole job on the shipped sample data: no credentials, no servers needed."""
    from pipeline.demo import demo as run_demo

    result = run_demo(workdir, dry_run_lab=dry_run_lab)
    emit(result.to_json(), as_json, result.text())
    if not result.run.ok:
        raise typer.Exit(EXIT_FAILURE)


def main() -> None:
    """Console entry point: the single place user-facing errors become one line and an exit status."""
    try:
        app(standalone_mode=False)
    except DocpipeError as exc:
        print(f"docpipe: error: {exc.message}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        print("docpipe: interrupted", file=sys.stderr)
        sys.exit(130)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.TyperException as exc:  # usage errors (bad flags, missing arguments)
        fmt = getattr(exc, "format_message", None)
        text = fmt() if fmt else str(exc)
        print(f"docpipe: error: {' '.join(text.split())}", file=sys.stderr)
        sys.exit(getattr(exc, "exit_code", EXIT_BAD_INPUT) or EXIT_BAD_INPUT)

if __name__ == "__main__":
    main()
