"""`docpipe lab ...`: start, list, watch, reap and remove the seats of a class."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from pipeline.lab.classroom.backend import Backend, SeatInfo, now_rfc3339
from pipeline.output import emit

if TYPE_CHECKING:
    from pipeline.config import FolderSettings
    from pipeline.lab.settings import LabSettings

lab_app = typer.Typer(help="Lab desktops: start, list and remove seats of a workshop.", no_args_is_help=True)

WorkdirOpt = typer.Option(None, "--workdir", envvar="DOCPIPE_WORKDIR", help="Working directory [default: .docpipe].")
ConfigOpt = typer.Option(None, "--config", envvar="DOCPIPE_CONFIG", help="Config file [default: ./docpipe.toml].")
JsonOpt = typer.Option(False, "--json", help="Print one JSON object on stdout.")
BackendOpt = typer.Option(None, "--backend", help="Where seats run: docker or kubernetes [config: lab.backend].")


def _settings(workdir: Path | None, config: Path | None, **lab: Any) -> tuple[FolderSettings, LabSettings]:
    """The folder (the one whose workdir --workdir is) and its lab settings, flags included:
    config.py checks every value, a bad --ttl as a bad [lab] ttl."""
    from pipeline.config import SCHEMA, folder_for
    from pipeline.lab.settings import lab_settings

    f = folder_for(config, workdir, {("lab", k): v for k, v in lab.items() if k in SCHEMA["lab"]})
    return f, lab_settings(f, **{k: v for k, v in lab.items() if k not in SCHEMA["lab"] and v is not None})


def _setup(workdir: Path | None, config: Path | None, check: Callable[[LabSettings], None] | None = None,
           on_line: Callable[[str], None] | None = None, **lab: Any) -> tuple[FolderSettings, LabSettings, Backend]:
    """Settings, the backend, and a reap of expired seats first (every lab command does it)."""
    from pipeline.lab.classroom import instructor
    from pipeline.progress import log

    f, settings = _settings(workdir, config, **lab)
    if check is not None:
        check(settings)  # bad input is refused before any engine is asked
    backend = instructor.make_backend(f.workdir, settings, on_line=on_line)
    reaped = backend.reap(now_rfc3339())
    if reaped:
        log(f"docpipe: removed {reaped} expired seat(s)")
    return f, settings, backend


def _fetch(ctx: typer.Context, f: FolderSettings) -> Callable[[str], None]:
    """`lab up <doc link>`'s pull and replay of that doc, as pipeline.cli hands it in."""
    from pipeline.errors import DocpipeError
    from pipeline.lab.classroom.instructor import Pipeline

    pipeline = ctx.find_object(Pipeline)
    if pipeline is None:  # only when the lab's commands run without docpipe's own CLI around them
        raise DocpipeError("`docpipe lab` was started without docpipe's pipeline: it cannot pull a doc")
    return lambda file_id: pipeline.fetch_doc(f, file_id)


def build_lines(show: Callable[[str], None]) -> Callable[[str], None]:
    """The engine's `Step i/n : ...` lines, cut to one line each, to `show` (progress.steps)."""
    def on_line(line: str) -> None:
        if line.startswith("Step "):
            show(f"build {line[:160]}")
    return on_line


def _left(expires: str) -> str:
    try:
        end = dt.datetime.strptime(expires, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)
    except ValueError:
        return "?"
    seconds = int((end - dt.datetime.now(dt.UTC)).total_seconds())
    if seconds <= 0:
        return "expired"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def _table(seats: list[SeatInfo]) -> str:
    rows = [f"{'seat':<24} {'student':<24} {'left':<8} {'password':<10} url"]
    rows += [f"{s.seat:<24} {s.student[:24]:<24} {_left(s.expires):<8} {s.password:<10} {s.url}" for s in seats]
    for s in seats:
        for port, url in sorted(s.ports.items()):
            rows.append(f"  {s.seat} port {port}: {url}")
    return "\n".join(rows)


def _gateway_url(seats: list[SeatInfo]) -> str:
    return seats[0].gateway if seats else ""


@lab_app.command("up")
def lab_up(
    ctx: typer.Context,
    workshop: str = typer.Argument(..., help="Workshop Name: header or path slug, or a Google Docs link / file id."),
    seats: int = typer.Option(1, "--seats", help="How many desktops (without a roster)."),
    students: Path | None = typer.Option(None, "--students", help="Roster CSV (column name, optional email): one seat each."),
    ttl: str | None = typer.Option(None, "--ttl", help="Seat lifetime, e.g. 3h [config: lab.ttl, default 4h]."),
    listen: str | None = typer.Option(None, "--listen", help="Gateway HOST:PORT [default: 0.0.0.0:8443]."),
    public_url: str | None = typer.Option(None, "--public-url", help="Base of every link [default: https://<host>:<port>]."),
    insecure_http: bool = typer.Option(False, "--insecure-http", help="Serve plain HTTP (no TLS) at the gateway."),
    image: str | None = typer.Option(None, "--image", help="Start this image even if it is not the archive's."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print what would be applied (with -o yaml); start nothing."),
    output: str | None = typer.Option(None, "-o", "--output", help="With --dry-run: yaml (Kubernetes manifests)."),
    backend_name: str | None = BackendOpt,
    workdir: Path | None = WorkdirOpt,
    config: Path | None = ConfigOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Start a class of desktops behind the gateway and print each student's link and password."""
    from pipeline.errors import BadInput
    from pipeline.lab.classroom import instructor, roster
    from pipeline.lab.image import engine
    from pipeline.progress import log, steps
    from pipeline.slugs import workshop_slug

    roster_rows = roster.load(students) if students else None
    count = len(roster_rows) if roster_rows else seats

    def check(settings: LabSettings) -> None:
        if not 1 <= count <= settings.max_seats:
            raise BadInput(f"--seats must be between 1 and {settings.max_seats}")

    if dry_run or output:
        _dry_run(ctx, workshop, image, output, count, roster_rows, check, workdir, config, ttl=ttl, listen=listen,
                 public_url=public_url, backend=backend_name, insecure_http=insecure_http or None)
        return
    with steps() as show:  # a live bar per build on a terminal, one line per step elsewhere
        f, settings, backend = _setup(workdir, config, check, build_lines(show), ttl=ttl, listen=listen,
                                      public_url=public_url, backend=backend_name,
                                      insecure_http=insecure_http or None)
        wd = f.workdir
        client = engine.client()
        if image:
            name = workshop_slug(workshop)
            ref = image
            if not engine.image_exists(client, ref):
                raise BadInput(f"no image {ref} on this engine")
        else:
            name, ref = instructor.resolve_image(wd, workshop, settings, fetch=_fetch(ctx, f),
                                                 on_line=build_lines(show), client=client)
        info = instructor.image_info(client, ref)
        if settings.backend == "kubernetes":  # nodes pull the image by digest from the registry
            info = dataclasses.replace(info, ref=instructor.pinned(client, ref))
        log(f"docpipe: starting {info.ref} (revision {info.revision[:12] or 'unknown'})")
        request = instructor.class_request(name, info, settings, count=count, students=roster_rows,
                                           existing=backend.seat_requests(name), now=dt.datetime.now(dt.UTC),
                                           class_token=backend.class_token(name))
        started = backend.up(request)
    if roster_rows:
        out = wd / "lab" / f"{name}-seats.csv"
        roster.write_seats_csv(out, [(s.student, next((r.email for r in roster_rows if r.seat == s.seat), ""),
                                      s.url, s.expires) for s in started])
        log(f"docpipe: wrote {out}")
    ca = getattr(backend, "ca", None)
    if ca is not None and not as_json:
        from pipeline.lab.classroom.gateway import ca_hint

        log(f"docpipe: {ca_hint(ca)}")
    emit({"workshop": name, "gateway": request.public_url, "image": ref, "revision": info.revision,
           "class_url": backend.class_url(request),
           "seats": [s.to_json() for s in started]}, as_json, _table(started))


def _dry_run(ctx: typer.Context, workshop: str, image: str | None, output: str | None, count: int,
             roster_rows: Any, check: Callable[[LabSettings], None], workdir: Path | None, config: Path | None,
             **lab: Any) -> None:
    """`lab up --backend kubernetes --dry-run -o yaml`: every manifest as one YAML stream that
    `kubectl apply -f -` takes, without a cluster (and without an engine when --image is a digest)."""
    from pipeline.errors import BadInput
    from pipeline.lab.classroom import instructor
    from pipeline.lab.classroom.kube_seats import dry_run_yaml
    from pipeline.lab.image import engine
    from pipeline.progress import steps
    from pipeline.slugs import workshop_slug

    if output != "yaml":
        raise BadInput("--dry-run prints Kubernetes manifests: use it with -o yaml")
    f, settings = _settings(workdir, config, **lab)
    check(settings)
    if settings.backend != "kubernetes":
        raise BadInput("--dry-run -o yaml prints Kubernetes manifests: add --backend kubernetes")
    if image and "@sha256:" in image:
        name, info = workshop_slug(workshop), instructor.plain_image_info(image)
    else:
        if image:
            name, ref = workshop_slug(workshop), image
        else:  # a Docs link is pulled before the engine is asked
            with steps() as show:
                name, ref = instructor.resolve_image(f.workdir, workshop, settings, fetch=_fetch(ctx, f),
                                                     on_line=build_lines(show))
        client = engine.client()
        info = dataclasses.replace(instructor.image_info(client, ref), ref=instructor.pinned(client, ref))
    request = instructor.class_request(name, info, settings, count=count, students=roster_rows, existing=[],
                                       now=dt.datetime.now(dt.UTC))
    typer.echo(dry_run_yaml(request, settings), nl=False)


@lab_app.command("down")
def lab_down(
    workshop: str = typer.Argument(..., help="Workshop name (as `lab status` shows it)."),
    purge: bool = typer.Option(False, "--purge", help="Remove the students' homes too (their work is lost)."),
    backend_name: str | None = BackendOpt,
    workdir: Path | None = WorkdirOpt,
    config: Path | None = ConfigOpt,
) -> None:
    """Remove every seat of a workshop (and the gateway when no class is left); homes are kept
    unless --purge."""
    from pipeline.lab.classroom import homes
    from pipeline.slugs import workshop_slug

    _, _, backend = _setup(workdir, config, backend=backend_name)
    name = workshop_slug(workshop)
    print(f"removed {backend.down(name)} seat(s) of {name}")
    if purge:
        gone = homes.purge_backend(backend, name)
        print(f"removed {gone.homes} home(s) of {name}: {gone.bytes} bytes ({homes.human(gone.bytes)})")


def _seats(workshop: str | None, workdir: Path | None, config: Path | None, backend_name: str | None) -> list[SeatInfo]:
    """The running seats of WORKSHOP (of every workshop when None), after the reap."""
    from pipeline.slugs import workshop_slug

    _, _, backend = _setup(workdir, config, backend=backend_name)
    return backend.status(workshop_slug(workshop) if workshop else None)


@lab_app.command("status")
def lab_status(
    workshop: str | None = typer.Argument(None, help="Only this workshop."),
    backend_name: str | None = BackendOpt,
    workdir: Path | None = WorkdirOpt,
    config: Path | None = ConfigOpt,
    as_json: bool = JsonOpt,
) -> None:
    """List the running seats (with the time each has left)."""
    from pipeline.slugs import workshop_slug

    _, _, backend = _setup(workdir, config, backend=backend_name)
    name = workshop_slug(workshop) if workshop else None
    found = backend.status(name)
    workshops = sorted({s.workshop for s in found})
    acts = _activity(backend, name)
    emit({"workshop": workshops[0] if len(workshops) == 1 else "", "gateway": _gateway_url(found),
           "seats": [{**s.to_json(), **_active(acts, s)} for s in found]}, as_json,
         _table(found) if found else "no seats running")


def _activity(backend: Backend, workshop: str | None) -> dict[str, Any]:
    """container -> idle.Activity, on backends that see their viewers."""
    read = getattr(backend, "activity", None)
    return dict(read(workshop)) if read is not None else {}


def _active(acts: dict[str, Any], seat: SeatInfo) -> dict[str, Any]:
    a = acts.get(seat.container)
    return a.to_json() if a is not None else {"connected": None, "last_seen": None}


@lab_app.command("watch")
def lab_watch(
    workshop: str = typer.Argument(..., help="Workshop name."),
    backend_name: str | None = BackendOpt,
    workdir: Path | None = WorkdirOpt,
    config: Path | None = ConfigOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Print each seat's view-only link (it can watch, never type or click)."""
    found = _seats(workshop, workdir, config, backend_name)
    emit({"seats": [{"seat": s.seat, "student": s.student, "watch_url": s.watch_url} for s in found]}, as_json,
          "\n".join(f"{s.seat:<24} {s.watch_url}" for s in found) or "no seats running")


@lab_app.command("reap")
def lab_reap(
    idle: str | None = typer.Option(None, "--idle", help="Also stop seats nobody has been connected to for this long, e.g. 30m."),
    backend_name: str | None = BackendOpt,
    workdir: Path | None = WorkdirOpt,
    config: Path | None = ConfigOpt,
) -> None:
    """Remove every seat past its expiry (every lab command does this first); with --idle, also
    stop (not remove: homes and links are kept, `lab up` starts them again) seats nobody has been
    connected to for that long."""
    from pipeline.config import duration_seconds
    from pipeline.errors import BadInput

    seconds = duration_seconds(idle) if idle else None
    if idle and seconds is None:
        raise BadInput(f"--idle {idle!r} must be a duration like 30m or 1h")
    _, _, backend = _setup(workdir, config, backend=backend_name)
    if seconds is not None:
        stop = getattr(backend, "stop_idle", None)
        if stop is None:
            raise BadInput(f"`lab reap --idle` is not available on the {backend.name} backend")
        stopped: list[str] = stop(seconds)
        print(f"stopped {len(stopped)} idle seat(s)" + "".join(f"\n  {name}" for name in stopped))


@lab_app.command("collect")
def lab_collect(
    workshop: str = typer.Argument(..., help="Workshop name."),
    backend_name: str | None = BackendOpt,
    workdir: Path | None = WorkdirOpt,
    config: Path | None = ConfigOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Every seat's home as WORKDIR/lab/<workshop>-work/<seat>.tar.gz (a failing seat is reported,
    the rest still collected; exit 1 if any failed)."""
    from pipeline.lab.classroom import collect, homes
    from pipeline.slugs import workshop_slug

    f, _, backend = _setup(workdir, config, backend=backend_name)
    name = workshop_slug(workshop)
    collect_seats = getattr(backend, "collect", None)
    if collect_seats is None:
        from pipeline.errors import BadInput

        raise BadInput(f"`lab collect` is not available on the {backend.name} backend")
    done: list[collect.Collected] = collect_seats(name, collect.work_dir(f.workdir, name))
    rows = [f"{d.seat:<24} {homes.human(d.bytes):>10}  {d.path}" if not d.error else f"{d.seat:<24} {'FAILED':>10}  {d.error}"
            for d in done]
    emit({"workshop": name, "seats": [d.to_json() for d in done]}, as_json,
         "\n".join(rows) or f"no seats of {name}")
    if any(d.error for d in done):
        raise typer.Exit(1)


@lab_app.command("help")
def lab_help(
    workshop: str = typer.Argument(..., help="Workshop name."),
    who: str = typer.Argument(..., metavar="SEAT_OR_STUDENT", help="The seat name or the student's name."),
    backend_name: str | None = BackendOpt,
    workdir: Path | None = WorkdirOpt,
    config: Path | None = ConfigOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Print a full-control link to one student's desktop, shared with them (both type at once);
    every use is logged to WORKDIR/lab/<workshop>-audit.log."""
    from pipeline.lab.classroom import audit
    from pipeline.slugs import workshop_slug

    f, _, backend = _setup(workdir, config, backend=backend_name)
    name = workshop_slug(workshop)
    seat = audit.find_seat(backend.status(name), who)
    url = audit.help_url(seat.url)
    audit.record(f.workdir, name, seat.seat, seat.student, "command")
    emit({"workshop": name, "seat": seat.seat, "student": seat.student, "help_url": url}, as_json, url)


@lab_app.command("progress")
def lab_progress(
    workshop: str = typer.Argument(..., help="Workshop name (as `lab status` shows it)."),
    backend_name: str | None = BackendOpt,
    workdir: Path | None = WorkdirOpt,
    config: Path | None = ConfigOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Run the workshop's progress checks in every seat and print a student x step table."""
    from pipeline.errors import BadInput
    from pipeline.lab.classroom import progress
    from pipeline.slugs import workshop_slug

    f, _, backend = _setup(workdir, config, backend=backend_name)
    name = workshop_slug(workshop)
    found = backend.status(name)
    if not found:
        raise BadInput(f"no seats of {name} are running: `docpipe lab up {name}` first")
    rows = progress.gather(found, progress.runner_for(backend))
    progress.save(f.workdir, name, rows, now_rfc3339())
    refresh = getattr(backend, "refresh_pages", None)
    if refresh is not None:  # the class page shows each seat's line (Docker's gateway serves it)
        refresh()
    emit({"workshop": name, "steps": progress.steps(rows), "seats": [r.to_json() for r in rows]}, as_json,
         progress.table(rows))


@lab_app.command("serve")
def lab_serve(
    workshops: list[str] = typer.Argument(None, help="Only these workshops [default: every workshop of the archive]."),
    bind: str = typer.Option("", "--bind", help="unix:PATH or HOST:PORT [default: a socket in the workdir the "
                             "Docker gateway routes /start/ to]."),
    trust_proxy: bool = typer.Option(False, "--trust-proxy", help="Over TCP: take the client's address from "
                                     "X-Real-IP (set by the ingress in front)."),
    images: list[str] = typer.Option([], "--image", help="WORKSHOP=REF: serve this image for WORKSHOP, without "
                                     "the archive or an engine (Kubernetes: REGISTRY/REPO@sha256:...); repeatable."),
    listen: str | None = typer.Option(None, "--listen", help="Gateway HOST:PORT [default: 0.0.0.0:8443]."),
    public_url: str | None = typer.Option(None, "--public-url", help="Base of every link [default: https://<host>:<port>]."),
    insecure_http: bool = typer.Option(False, "--insecure-http", help="Serve plain HTTP (no TLS) at the gateway."),
    backend_name: str | None = BackendOpt,
    workdir: Path | None = WorkdirOpt,
    config: Path | None = ConfigOpt,
) -> None:
    """Serve /start/<workshop>/: a visitor presses "Start my desktop" and gets a seat of their own."""
    from pipeline.lab.launcher import serve
    from pipeline.slugs import workshop_slug

    served = serve.parse_images(images)  # bad flags are refused before any engine or cluster is asked
    if bind and not bind.startswith("unix:"):
        serve.parse_bind(bind, Path("."))
    f, settings, backend = _setup(workdir, config, listen=listen, public_url=public_url, backend=backend_name,
                                  insecure_http=insecure_http or None)
    serve.serve(backend, f.workdir, settings, bind=serve.parse_bind(bind, f.workdir),
                workshops=tuple(workshop_slug(w) for w in workshops or ()), trust_proxy=trust_proxy,
                images=served)
