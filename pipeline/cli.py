"""The docpipe command line: parse, call one stage, print, set the exit status.

Each command owns only argument handling and output; the work lives in the stage modules.
Errors reach the user once, here, as one line (see `main`).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from pipeline.errors import EXIT_BAD_INPUT, EXIT_FAILURE, EXIT_INTERNAL, DocpipeError
from pipeline.output import emit

if TYPE_CHECKING:
    from pipeline.config import FolderSettings

app = typer.Typer(
    name="docpipe",
    help="Keep Google Docs as git history and publish them as workshops with lab desktops.\n\n"
         "Exit status: 0 ok; 1 a failure elsewhere (network, server, engine, hook); 2 bad input or "
         "configuration; 3 a bug in docpipe (the traceback is in the log file it names); "
         "4 another docpipe process holds the workdir.",
    no_args_is_help=False,  # handled in _root: help on stdout, exit 0, nothing on stderr
    add_completion=False,
    pretty_exceptions_enable=False,
    # Plain click help: rich markup would swallow every "[default: ...]" and show flags as <bool>.
    rich_markup_mode=None,
)


def _print_version(value: bool) -> None:
    if value:
        from pipeline import __version__

        print(f"docpipe {__version__}")
        raise typer.Exit(0)


@app.callback(invoke_without_command=True)
def _root(ctx: typer.Context,
          _version: bool = typer.Option(False, "--version", "-V", is_eager=True, callback=_print_version,
                                        help="Print docpipe's version and exit.")) -> None:
    """With no command: the help, on stdout, exit status 0."""
    if ctx.invoked_subcommand is None:
        print(ctx.get_help())
        raise typer.Exit(0)


def _env_help(section: str, key: str) -> str:
    from pipeline.config import SCHEMA, env_names

    default = SCHEMA[section][key].default
    shown = f"; default: {default}" if default not in (None, [], {}) else ""
    return f"[env var: {', '.join(env_names(section, key))}; docpipe.toml: {f'{section}.' if section else ''}{key}{shown}]"


WorkdirOpt = typer.Option(None, "--workdir", help=f"Working directory. {_env_help('', 'workdir')}")
ConfigOpt = typer.Option(None, "--config", envvar="DOCPIPE_CONFIG",
                         help="Config file [default: ./docpipe.toml when present].")
JsonOpt = typer.Option(False, "--json", help="Print one JSON summary object on stdout.")


def folder_settings(config: Path | None, workdir: Path | None,
                    cli: dict[tuple[str, str], Any] | None = None) -> FolderSettings:
    """The folder a single-stage command works on, resolved as `docpipe run` resolves it."""
    from pipeline.config import folder_for

    return folder_for(config, workdir, cli)


def run_stage(name: str, f: FolderSettings, as_json: bool, **options: Any) -> Any:
    """Run one stage through pipeline.stages (so it fires its events) and return its summary."""
    from pipeline import stages

    summary, _ = stages.run_stage(name, f, **options)
    return summary


# ---------------------------------------------------------------- commands
# Each stage's command lives below; its body calls into pipeline.<stage>.


@app.command(rich_help_panel="The whole job")
def init(
    path: Path = typer.Argument(Path("docpipe.toml"), help="Where to write the starter config."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing file."),
) -> None:
    """Write a commented starter docpipe.toml."""
    from pipeline.atomic import atomic_write
    from pipeline.config_docs import STARTER
    from pipeline.errors import BadInput

    if path.exists() and not force:
        raise BadInput(f"{path} already exists (use --force to overwrite)")
    atomic_write(path, STARTER.encode())
    print(f"wrote {path}: set [drive] folder, then run `docpipe config check` and `docpipe run`")


config_app = typer.Typer(help="Check docpipe.toml.", no_args_is_help=True)
app.add_typer(config_app, name="config", rich_help_panel="The whole job")


@config_app.command("check")
def config_check(config: Path | None = ConfigOpt) -> None:
    """Validate the configuration and report every problem at once."""
    from pipeline.config import PLACEHOLDER_FOLDER, load_settings
    from pipeline.errors import BadInput

    settings, problems = load_settings(config, strict=False)
    problems = list(problems)
    for f in settings.folders:
        if f.id == PLACEHOLDER_FOLDER:
            problems.append(f"{settings.path or 'configuration'}: drive.folder: still the placeholder "
                            f"{PLACEHOLDER_FOLDER!r} that `docpipe init` wrote; set the id of your Drive folder")
    for p in problems:
        print(p, file=sys.stderr)
    if problems:
        raise BadInput(f"{len(problems)} problem(s) in the configuration")
    where = settings.path or "defaults and environment (no docpipe.toml)"
    print(f"{where}: ok, {len(settings.folders)} folder(s): "
          + ", ".join(f"{f.id or '(no folder id)'} -> {f.workdir}" for f in settings.folders))


@app.command(rich_help_panel="The whole job")
def run(
    config: Path | None = ConfigOpt,
    only: str | None = typer.Option(None, "--only", help="Comma-separated stages: pull,replay,push,render,publish,provision."),
    folder: str | None = typer.Option(
        None, "--folder", help=f"Run only this Drive folder id (or the one folder if none is configured). {_env_help('drive', 'folder')}"),
    workdir: Path | None = WorkdirOpt,
    hooks_dir: list[Path] = typer.Option([], "--hooks", metavar="DIR", help="Another directory of hooks (repeatable)."),
    no_hooks: bool = typer.Option(False, "--no-hooks", help="Run no hooks: lab images are then planned, not built."),
    dry_run_lab: bool = typer.Option(False, "--dry-run-lab", help="Plan lab images without building them."),
    wait: bool = typer.Option(False, "--wait", help="Wait for another run on the same workdir instead of exiting with status 4."),
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
    if not result.ok:  # the highest status of what failed: a BadInput stays 2
        raise typer.Exit(result.exit_code or EXIT_FAILURE)


@app.command(rich_help_panel="The whole job")
def demo(
    workdir: Path = typer.Option(Path("docpipe-demo"), "--workdir", help="Where the demo writes everything."),
    dry_run_lab: bool | None = typer.Option(None, "--dry-run-lab/--build-lab", help="Plan or build lab images [default: build when a Docker Engine answers]."),
    as_json: bool = JsonOpt,
) -> None:
    """The whole job on the shipped sample data: no credentials, no servers needed."""
    from pipeline.demo import demo as run_demo

    result = run_demo(workdir, dry_run_lab=dry_run_lab)
    emit(result.to_json(), as_json, result.text())
    if not result.run.ok:
        raise typer.Exit(EXIT_FAILURE)


@app.command(rich_help_panel="Stages")
def pull(
    folder: str | None = typer.Option(None, "--folder", help=f"Drive folder id to pull. {_env_help('drive', 'folder')}"),
    endpoint: str | None = typer.Option(None, "--drive-endpoint", help=f"Drive API root URL. {_env_help('drive', 'endpoint')}"),
    workdir: Path | None = WorkdirOpt,
    config: Path | None = ConfigOpt,
    credentials: Path | None = typer.Option(
        None, "--credentials",
        help=f"Service-account or authorized-user JSON (unset: DOCPIPE_ACCESS_TOKEN, then ADC). {_env_help('drive', 'credentials')}"),
    jobs: int | None = typer.Option(None, "--jobs", help=f"Parallel requests. {_env_help('drive', 'jobs')}"),
    max_qps: float | None = typer.Option(
        None, "--max-qps", help=f"Client-side rate limit in requests/s (Drive allows 200 per user). {_env_help('drive', 'max_qps')}"),
    full: bool = typer.Option(False, "--full", help="Walk the whole folder tree instead of reading the changes feed."),
    as_json: bool = JsonOpt,
) -> None:
    """Pull every revision and comment of the Docs in a Drive folder into WORKDIR/store."""
    f = folder_settings(config, workdir, {
        ("drive", "folder"): folder, ("drive", "endpoint"): endpoint, ("drive", "jobs"): jobs,
        ("drive", "max_qps"): max_qps, ("drive", "credentials"): str(credentials) if credentials else None,
    })
    summary = run_stage("pull", f, as_json, quiet=as_json, full=full)
    emit(summary.to_json(), as_json, summary.text())


@app.command(rich_help_panel="Stages")
def replay(
    workdir: Path | None = WorkdirOpt,
    config: Path | None = ConfigOpt,
    authors: Path | None = typer.Option(
        None, "--authors", help=f'TOML map of Drive display name to "Name <email>". {_env_help("replay", "authors")}'),
    as_json: bool = JsonOpt,
) -> None:
    """Write the store's revisions and comment events as commits on main of WORKDIR/archive (bare git)."""
    f = folder_settings(config, workdir, {("replay", "authors"): str(authors) if authors else None})
    summary = run_stage("replay", f, as_json, quiet=as_json)
    emit(summary.to_json(), as_json, summary.text())


@app.command(rich_help_panel="Stages")
def push(
    gitea: str | None = typer.Option(None, "--gitea", help=f"Gitea base URL, e.g. https://git.example.org. {_env_help('gitea', 'url')}"),
    owner: str | None = typer.Option(None, "--owner", help=f"User or organisation that owns the repository. {_env_help('gitea', 'owner')}"),
    repo: str | None = typer.Option(None, "--repo", help=f"Repository name [default: slug of the Drive folder name]. {_env_help('gitea', 'repo')}"),
    private: bool | None = typer.Option(None, "--private/--public", help=f"Visibility of a repository docpipe creates. {_env_help('gitea', 'private')}"),
    force: bool = typer.Option(False, "--force", help="Overwrite a remote main (or site) that has commits the archive lacks."),
    workdir: Path | None = WorkdirOpt,
    config: Path | None = ConfigOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Create the Gitea repository if missing and push the archive's main to it (token: GITEA_TOKEN)."""
    f = folder_settings(config, workdir, {
        ("gitea", "url"): gitea, ("gitea", "owner"): owner, ("gitea", "repo"): repo, ("gitea", "private"): private,
    })
    summary = run_stage("push", f, as_json, force=force)
    emit(summary.to_json(), as_json, summary.text())


@app.command(rich_help_panel="Stages")
def render(
    workdir: Path | None = WorkdirOpt,
    config: Path | None = ConfigOpt,
    templates: Path | None = typer.Option(
        None, "--templates", help=f"Directory of templates that replace the shipped ones file by file. {_env_help('render', 'templates')}"),
    as_json: bool = JsonOpt,
) -> None:
    """Render the archive (branch main) as an MkDocs project in WORKDIR/site."""
    f = folder_settings(config, workdir, {("render", "templates"): str(templates) if templates else None})
    summary = run_stage("render", f, as_json)
    emit(summary.to_json(), as_json,
         f"rendered {len(summary.pages)} pages ({len(summary.workshops)} tutorials) into {summary.site}")


@app.command(rich_help_panel="Stages")
def publish(
    workdir: Path | None = WorkdirOpt,
    config: Path | None = ConfigOpt,
    site_branch: bool | None = typer.Option(
        None, "--site-branch/--no-site-branch",
        help=f"Also commit the site source to the archive's `site` branch. {_env_help('publish', 'site_branch')}"),
    as_json: bool = JsonOpt,
) -> None:
    """Build WORKDIR/site with `mkdocs build --strict` into WORKDIR/public."""
    f = folder_settings(config, workdir, {("publish", "site_branch"): site_branch})
    summary = run_stage("publish", f, as_json)
    extra = f"; site branch at {summary.site_commit[:12]}" if summary.site_commit else ""
    emit(summary.to_json(), as_json, f"published {summary.html_files} HTML files into {summary.public}{extra}")


@app.command(rich_help_panel="Stages")
def provision(
    workdir: Path | None = WorkdirOpt,
    config: Path | None = ConfigOpt,
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the plan and Dockerfiles; no engine needed."),
    registry: str | None = typer.Option(None, "--registry", help=f"Registry HOST:PORT to push lab images to. {_env_help('lab', 'registry')}"),
    as_json: bool = JsonOpt,
) -> None:
    """Build (and push) the lab desktop image of every workshop doc in the archive, then fire
    `workshop` for each (as `docpipe run` does)."""
    from pipeline import stages
    from pipeline.progress import steps

    f = folder_settings(config, workdir, {("lab", "registry"): registry})
    hooks = stages.hook_runner(f)
    with steps() as show:  # a live bar per build on a terminal, one line per Dockerfile step elsewhere
        hooks.on_progress = show
        summary: Any = stages.run_stage("provision", f, hooks, dry_run=dry_run)[0]
    emit(summary.to_json(), as_json, summary.text())
    failed = summary.failed
    if failed:  # exit 2 (bad input) only when every failure is an invalid spec
        raise DocpipeError(f"{len(failed)} of {len(summary.workshops)} workshops failed ({failed[0].result.error})",
                           exit_code=summary.exit_code)


def _fetch_doc(f: FolderSettings, file_id: str) -> None:
    from pipeline import stages

    stages.fetch_doc(f, file_id)


from pipeline.lab.classroom.commands import lab_app  # noqa: E402  (the lab's commands live with the lab)
from pipeline.lab.classroom.instructor import Pipeline  # noqa: E402

# `lab up <doc link>` pulls and replays through the stage runner; the lab may not import it.
app.add_typer(lab_app, name="lab", rich_help_panel="Lab desktops", context_settings={"obj": Pipeline(_fetch_doc)})


@app.command(rich_help_panel="Tools")
def convert(
    source: str = typer.Argument(..., metavar="FILE|-", help="A Google Docs HTML export, or - for stdin."),
    title: str | None = typer.Option(None, "--title", help="Title for the front matter when the doc has no Title: header."),
    comments_href: str | None = typer.Option(None, "--comments-href", help="Link comment marks ([a]) here; dropped if unset."),
) -> None:
    """Convert a Google Docs HTML export to Markdown (with YAML front matter) on stdout."""
    from pipeline.convert import convert_with_warnings, not_an_export_warning
    from pipeline.errors import BadInput

    if source == "-":
        data = sys.stdin.buffer.read()
    else:
        try:
            data = Path(source).read_bytes()
        except OSError as exc:
            raise BadInput(f"cannot read {source}: {exc.strerror or exc}") from None
    try:
        html = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise BadInput(f"{source} is not UTF-8 text; expected a Google Docs HTML export") from None
    if not html.strip():
        raise BadInput(f"{source} is empty; expected a Google Docs HTML export")
    markdown, warnings = convert_with_warnings(html, title=title, comments_href=comments_href)
    for warning in [w for w in [not_an_export_warning(html)] if w] + warnings:
        print(f"docpipe: warning: {warning}", file=sys.stderr)
    sys.stdout.write(markdown)


@app.command("drive-emulator", rich_help_panel="Tools")
def drive_emulator(
    data_dir: Path = typer.Argument(..., help="A folder in the sample-data format (see sample-data/README.md)."),
    port: int = typer.Option(8765, "--port", help="TCP port (0 picks a free one)."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to bind."),
    latency_ms: float = typer.Option(0.0, "--latency-ms", help="Delay added to every request."),
    fault_rate: float = typer.Option(0.0, "--fault-rate", help="Share of requests answered with a fault (0..1)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the fault sequence."),
    token: str | None = typer.Option(None, "--token", envvar="DOCPIPE_EMULATOR_TOKEN", help="The access token to accept (default: any bearer token)."),
) -> None:
    """Serve DATA_DIR as a Google Drive API v3 folder until interrupted."""
    from pipeline.emulator import Emulator, load_dataset
    from pipeline.errors import BadInput

    if not 0.0 <= fault_rate <= 1.0:
        raise BadInput(f"--fault-rate must be between 0 and 1, not {fault_rate}")
    if latency_ms < 0:
        raise BadInput("--latency-ms must not be negative")
    emu = Emulator(load_dataset(data_dir), latency=latency_ms / 1000, fault_rate=fault_rate, seed=seed, token=token, host=host, port=port)
    try:
        emu.start()
    except OSError as exc:
        raise DocpipeError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    print(f"Drive emulator serving {data_dir} at {emu.url} (API endpoint {emu.api_endpoint}, root folder {emu.root_folder_id})", flush=True)
    try:
        emu.serve_forever()  # stops the server however it returns
    except KeyboardInterrupt:  # Ctrl-C is how a user stops the server: a clean exit
        print("Drive emulator stopped", file=sys.stderr)


@app.command(rich_help_panel="Tools")
def version() -> None:
    """Print docpipe's version (as --version does)."""
    _print_version(True)


def log_path() -> Path:
    """Where an unexpected error's traceback goes (pre-commit's way: one line on stderr, the rest here)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "docpipe" / "docpipe.log"


def _log_crash(exc: BaseException) -> Path | None:
    import datetime
    import traceback

    from pipeline import __version__

    path = log_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        stamp = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(f"### {stamp} docpipe {__version__}: {' '.join(sys.argv[1:3])}\n")
            fh.write("".join(traceback.format_exception(exc)))
            fh.write("\n")
    except OSError:
        return None
    return path


def main() -> None:
    """Console entry point: the single place errors become one line and an exit status."""
    try:
        # Without standalone mode click hands back the exit status (e.g. 130 for Ctrl-C).
        status = app(standalone_mode=False)
        if isinstance(status, int) and status:
            sys.exit(status)
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
    except Exception as exc:  # a bug in docpipe: one line naming the log that holds the traceback
        where = _log_crash(exc)
        first = " ".join(str(exc).split())[:200]
        print(f"docpipe: error: unexpected {type(exc).__name__}{': ' + first if first else ''}; "
              + (f"the traceback is in {where}" if where else "no log could be written"), file=sys.stderr)
        sys.exit(EXIT_INTERNAL)


if __name__ == "__main__":
    main()
