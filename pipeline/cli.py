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
