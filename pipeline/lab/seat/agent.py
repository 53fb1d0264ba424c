#!/usr/bin/env python3
"""docpipe-agent: the seat's own small web app, run as the student inside docpipe's desktop base.

The Docker gateway routes a seat's files and progress links here (links.files_url,
links.progress_url: under the desktop's own key, so a forged key never reaches a seat), with the
seat's path prefix taken off, so this app serves

    GET  /files/?path=REL           the home (or a folder of it), folders navigable
    GET  /files/get?path=REL        one file
    GET  /files/download?path=REL   the home or a folder as a tar.gz, streamed
    POST /files/upload?path=REL     files from the browser into that folder (multipart, size-limited)
    GET  /progress[?format=json]    the workshop's progress checks, run now (docpipe-check)

On Kubernetes no proxy takes a prefix off (plain Ingress path rules, no controller's rewrite): the
Ingress sends every seat path of the desktop's host here, and with DOCPIPE_AGENT_PREFIX (the
seat's own path, its token filled in from the seat's Secret) the app serves the same pages under
that prefix only, compared in constant time, so the Ingress holds no secret and a forged key gets a
404 from the seat itself.

Every link it writes is relative, so it works under any prefix. Only the standard library and
aiohttp (Debian's python3-aiohttp in the image): a seat has no docpipe.

Path rules: a REL path is relative, has no `..` part, and resolves (symlinks followed) inside the
home; anything else is refused with a message and nothing is read or written. An upload goes to a
temporary file in the target folder, renamed over the target only once it is whole and within the
limit (a rename replaces a symlink, never writes through it). The agent runs as the student, so it
can never write what the student could not; these rules keep a link from reaching further.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import html
import json
import os
import queue
import secrets
import sys
import tarfile
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from aiohttp import BodyPartReader, web

PORT = 6081
DEFAULT_UPLOAD_LIMIT = 100 * 1000 * 1000
RUNNER = "/usr/local/bin/docpipe-check"
CHECKS = "/etc/docpipe/checks.json"
TOKEN_AGE = 12 * 3600  # seconds an upload form's CSRF token stays good
_CHUNK = 256 * 1024
POLICY = ("default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; base-uri 'none'; "
          "frame-ancestors 'self'")
_STYLE = ("body{font-family:sans-serif;margin:1.5em;max-width:60em}table{border-collapse:collapse}"
          "td,th{padding:.2em .8em;text-align:left;border-bottom:1px solid #ddd}.ok{color:#070}.no{color:#a00}"
          "pre{white-space:pre-wrap;background:#f4f4f4;padding:.4em;margin:0}")


class Refused(Exception):
    """A request the path rules or the limits refuse: the message is shown to the student."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


# ------------------------------------------------------------------ path rules


def inside(home: Path, rel: str) -> Path:
    """The real path of REL in `home`; Refused when it is absolute, has `..`, or resolves outside."""
    if "\x00" in rel or any(ord(c) < 32 for c in rel):
        raise Refused("a path may not hold control characters")
    if rel.startswith("/") or rel.startswith("~"):
        raise Refused(f"{rel[:200]!r}: only paths inside your home, relative to it, are allowed")
    parts = [p for p in rel.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise Refused(f"{rel[:200]!r}: '..' is not allowed in a path")
    root = home.resolve()
    real = Path(os.path.realpath(root.joinpath(*parts)))
    if real != root and root not in real.parents:
        raise Refused(f"{rel[:200]!r} leads outside your home (a symbolic link?)", 403)
    return real


def relative(home: Path, real: Path) -> str:
    return real.relative_to(home.resolve()).as_posix() if real != home.resolve() else ""


def upload_name(name: str) -> str:
    """A file name from the browser: one plain name, nothing that can climb or hide a path."""
    name = name.replace("\\", "/").rsplit("/", 1)[-1] if name else ""
    if not name or name in (".", "..") or any(ord(c) < 32 for c in name) or len(name.encode()) > 255:
        raise Refused(f"{name[:100]!r} is not a file name that can be saved")
    return name


# ------------------------------------------------------------------ CSRF: a signed, dated token per page


def csrf_token(secret: bytes, now: float | None = None) -> str:
    stamp = str(int(now if now is not None else time.time()))
    return stamp + "." + hmac.new(secret, stamp.encode(), hashlib.sha256).hexdigest()[:32]


def csrf_ok(secret: bytes, token: str, now: float | None = None) -> bool:
    stamp, _, mac = token.partition(".")
    if not stamp.isdigit() or not hmac.compare_digest(csrf_token(secret, int(stamp))[len(stamp) + 1:], mac):
        return False
    return 0 <= (now if now is not None else time.time()) - int(stamp) <= TOKEN_AGE


def same_origin(request: web.Request) -> bool:
    """A POST from a page of this seat's own origin (the origin is the seat's: one per seat)."""
    site = request.headers.get("Sec-Fetch-Site")
    if site is not None and site != "same-origin":
        return False
    origin = request.headers.get("Origin")
    if origin is None:
        return site == "same-origin"
    return origin != "null" and urlsplit(origin).netloc.lower() == request.host.lower()


# ------------------------------------------------------------------ pages


def _page(title: str, body: str) -> str:
    return (f'<!doctype html>\n<html><head><meta charset="utf-8"><meta name="referrer" content="no-referrer">'
            f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head>\n<body>\n{body}\n</body></html>\n")


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000  # type: ignore[assignment]
    return str(n)


def _q(rel: str) -> str:
    return quote(rel, safe="/")


def listing(home: Path, folder: Path, token: str, limit: int) -> str:
    rel = relative(home, folder)
    crumbs = ['<a href="./">home</a>']
    acc = []
    for part in rel.split("/") if rel else []:
        acc.append(part)
        crumbs.append(f'<a href="./?path={_q("/".join(acc))}">{html.escape(part)}</a>')
    rows = []
    entries = sorted(os.scandir(folder), key=lambda e: (not e.is_dir(), e.name.lower(), e.name))
    for e in entries:
        child = f"{rel}/{e.name}" if rel else e.name
        name = html.escape(e.name)
        try:
            target = inside(home, child)
        except Refused:
            rows.append(f"<tr><td>{name}</td><td>link out of your home, not followed</td><td></td></tr>")
            continue
        if target.is_dir():
            rows.append(f'<tr><td><a href="./?path={_q(child)}">{name}/</a></td><td>folder</td>'
                        f'<td><a href="download?path={_q(child)}">download .tar.gz</a></td></tr>')
        elif target.is_file():
            rows.append(f'<tr><td><a href="get?path={_q(child)}">{name}</a></td>'
                        f"<td>{_size(target.stat().st_size)}</td><td></td></tr>")
        else:
            rows.append(f"<tr><td>{name}</td><td>special file</td><td></td></tr>")
    table = "<table><tr><th>name</th><th>size</th><th></th></tr>" + "".join(rows) + "</table>" if rows \
        else "<p>This folder is empty.</p>"
    return _page("Your files", (
        f"<h1>Your files</h1><p>{' / '.join(crumbs)}</p>"
        f'<p><a href="download?path={_q(rel)}">Download this folder as .tar.gz</a> · <a href="../progress">My progress</a></p>'
        f"{table}"
        f'<h2>Upload into this folder</h2><form method="post" action="upload?path={_q(rel)}" enctype="multipart/form-data">'
        f'<input type="hidden" name="csrf" value="{html.escape(token)}">'
        '<input type="file" name="file" multiple required> <button type="submit">Upload</button></form>'
        f"<p>At most {_size(limit)} per upload. A file of the same name is replaced.</p>"))


def progress_page(results: dict[str, Any]) -> str:
    checks = results.get("checks", [])
    if not checks:
        body = "<p>This workshop lists no checks.</p>"
    else:
        done = sum(1 for c in checks if c.get("ok"))
        rows = []
        for c in checks:
            state = ('<td class="ok">done</td>' if c.get("ok") else
                     '<td class="no">timed out</td>' if c.get("timed_out") else '<td class="no">not yet</td>')
            out = c.get("output") or ""
            rows.append(f"<tr><td>{html.escape(str(c.get('name', '')))}</td>{state}"
                        f"<td>{'<pre>' + html.escape(out[-600:]) + '</pre>' if out and not c.get('ok') else ''}</td></tr>")
        body = (f"<p>{done} of {len(checks)} steps done.</p><table><tr><th>step</th><th></th><th>output</th></tr>"
                + "".join(rows) + "</table>")
    return _page("My progress", f'<h1>My progress</h1>{body}<p><a href="progress">Check again</a> · '
                                f'<a href="files/">My files</a></p>')


# ------------------------------------------------------------------ the archive, streamed


def _walk(root: Path) -> Iterator[Path]:
    """Everything under root, symlinks as links (never followed), in a stable order."""
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames.sort()
        base = Path(dirpath)
        for name in sorted(dirnames + filenames):
            yield base / name


class _QueueWriter:
    """A file object tarfile writes to; the chunks go to the event loop through a bounded queue."""

    def __init__(self, q: queue.Queue[bytes | None]) -> None:
        self.q = q
        self.buf = bytearray()

    def write(self, data: bytes) -> int:
        self.buf += data
        if len(self.buf) >= _CHUNK:
            self.q.put(bytes(self.buf))
            self.buf.clear()
        return len(data)

    def flush(self) -> None:
        if self.buf:
            self.q.put(bytes(self.buf))
            self.buf.clear()


def _tar_into(root: Path, top: str, q: queue.Queue[bytes | None], stop: threading.Event) -> None:
    writer = _QueueWriter(q)
    try:
        with tarfile.open(fileobj=writer, mode="w|gz", format=tarfile.PAX_FORMAT) as tar:  # type: ignore[call-overload]
            tar.add(str(root), arcname=top, recursive=False)
            for path in _walk(root):
                if stop.is_set():
                    return
                try:
                    tar.add(str(path), arcname=f"{top}/{path.relative_to(root).as_posix()}", recursive=False)
                except (PermissionError, FileNotFoundError):
                    continue  # gone or unreadable since the walk saw it: the rest still goes
        writer.flush()
    finally:
        q.put(None)


async def _stream_tar(request: web.Request, root: Path, top: str) -> web.StreamResponse:
    resp = web.StreamResponse(headers={"Content-Type": "application/gzip",
                                       "Content-Disposition": f'attachment; filename="{top}.tar.gz"'})
    await resp.prepare(request)
    q: queue.Queue[bytes | None] = queue.Queue(maxsize=16)
    stop = threading.Event()
    loop = asyncio.get_running_loop()
    worker = threading.Thread(target=_tar_into, args=(root, top, q, stop), daemon=True)
    worker.start()
    try:
        while True:
            chunk = await loop.run_in_executor(None, q.get)
            if chunk is None:
                break
            await resp.write(chunk)
    finally:
        stop.set()
        while worker.is_alive():  # let a stopped writer finish its put()
            try:
                q.get_nowait()
            except queue.Empty:
                await asyncio.sleep(0.01)
    await resp.write_eof()
    return resp


def _archive_name(home: Path, real: Path) -> str:
    name = "home" if real == home.resolve() else real.name
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in name)[:80] or "home"


# ------------------------------------------------------------------ the app


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def make_app(home: Path, upload_limit: int = DEFAULT_UPLOAD_LIMIT, runner: list[str] | None = None,
             prefix: str = "") -> web.Application:
    """The pages at /files/ and /progress, or under `prefix` (a path like /a/b: its parts are
    matched as variables, then compared whole in constant time, so a forged one gets a 404)."""
    secret = secrets.token_bytes(32)
    parts = [p for p in prefix.split("/") if p]
    if prefix and (not parts or "$(" in prefix or prefix != "/" + "/".join(parts)):
        raise ValueError("DOCPIPE_AGENT_PREFIX must be a path like /a/b with its variables filled in")
    route = "".join(f"/{{p{i}}}" for i in range(len(parts)))
    check_lock = asyncio.Lock()
    run = runner or [sys.executable, RUNNER, CHECKS]

    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            asked = "".join("/" + request.match_info.get(f"p{i}", "") for i in range(len(parts)))
            if prefix and not hmac.compare_digest(asked.encode(), prefix.encode()):
                raise web.HTTPNotFound()
            resp = await handler(request)
        except Refused as exc:
            resp = web.Response(status=exc.status, text=f"{exc}\n", content_type="text/plain")
        except web.HTTPException as exc:
            resp = web.Response(status=exc.status, text=f"{exc.reason}\n", content_type="text/plain")
        if not resp.prepared:
            resp.headers["Cache-Control"] = "no-store"
            resp.headers["Content-Security-Policy"] = POLICY
            resp.headers["X-Content-Type-Options"] = "nosniff"
            resp.headers["Referrer-Policy"] = "no-referrer"
        return resp

    def folder(request: web.Request) -> Path:
        real = inside(home, request.query.get("path", ""))
        if not real.exists():
            raise Refused("no such file or folder in your home", 404)
        return real

    async def files(request: web.Request) -> web.StreamResponse:
        real = folder(request)
        if not real.is_dir():
            raise Refused("not a folder", 404)
        return web.Response(text=listing(home, real, csrf_token(secret), upload_limit), content_type="text/html")

    async def get(request: web.Request) -> web.StreamResponse:
        real = folder(request)
        if not real.is_file():
            raise Refused("not a file", 404)
        return web.FileResponse(real, headers={"Content-Disposition": "attachment",
                                               "Content-Type": "application/octet-stream"})

    async def download(request: web.Request) -> web.StreamResponse:
        real = folder(request)
        if not real.is_dir():
            raise Refused("only a folder downloads as an archive", 404)
        return await _stream_tar(request, real, _archive_name(home, real))

    async def upload(request: web.Request) -> web.StreamResponse:
        if not same_origin(request):
            raise Refused("uploads are taken only from this seat's own page", 403)
        target = folder(request)
        if not target.is_dir():
            raise Refused("uploads go into a folder", 404)
        if request.content_length is not None and request.content_length > upload_limit + 64 * 1024:
            raise Refused(f"this upload is larger than the limit of {_size(upload_limit)}", 413)
        reader = await request.multipart()
        part = await reader.next()
        if not isinstance(part, BodyPartReader) or part.name != "csrf" or not csrf_ok(secret, (await part.text())[:200]):
            raise Refused("this form is stale: reload the page and upload again", 403)
        done: list[tuple[Path, Path]] = []
        total = 0
        try:
            while (part := await reader.next()) is not None:
                if not isinstance(part, BodyPartReader) or part.name != "file" or not part.filename:
                    continue
                name = upload_name(part.filename)
                dest = target / name
                if dest.is_dir() and not dest.is_symlink():
                    raise Refused(f"{name!r} is a folder here: not replaced")
                fd, tmp = tempfile.mkstemp(dir=target, prefix=".docpipe-upload-")
                done.append((Path(tmp), dest))
                with os.fdopen(fd, "wb") as out:
                    while chunk := await part.read_chunk(_CHUNK):
                        total += len(chunk)
                        if total > upload_limit:
                            raise Refused(f"this upload is larger than the limit of {_size(upload_limit)}", 413)
                        out.write(chunk)
            if not done:
                raise Refused("no file was chosen")
            for tmp_path, dest in done:
                os.chmod(tmp_path, 0o644)
                os.replace(tmp_path, dest)  # a symlink at dest is replaced, never written through
        finally:
            for tmp_path, _dest in done:
                tmp_path.unlink(missing_ok=True)
        # An absolute path: the gateway puts the seat's prefix in front (proxy_redirect).
        return web.Response(status=303, headers={"Location": f"{prefix}/files/?path={_q(relative(home, target))}"})

    async def progress(request: web.Request) -> web.StreamResponse:
        async with check_lock:  # one run at a time, however often the page is reloaded
            proc = await asyncio.create_subprocess_exec(*run, stdout=asyncio.subprocess.PIPE,
                                                        stderr=asyncio.subprocess.DEVNULL, cwd=str(home))
            out, _ = await proc.communicate()
        try:
            results = json.loads(out.decode("utf-8", errors="replace") or "{}")
        except ValueError:
            results = {"checks": [], "error": "the check runner failed"}
        if request.query.get("format") == "json" or "application/json" in request.headers.get("Accept", ""):
            return web.json_response(results)
        return web.Response(text=progress_page(results), content_type="text/html")

    app = web.Application(middlewares=[guard])
    app.router.add_get(f"{route}/files/", files)
    app.router.add_get(f"{route}/files/get", get)
    app.router.add_get(f"{route}/files/download", download)
    app.router.add_post(f"{route}/files/upload", upload)
    app.router.add_get(f"{route}/progress", progress)
    return app


def main() -> None:
    home = Path(os.environ.get("HOME") or "/home/student")
    limit = int(os.environ.get("DOCPIPE_UPLOAD_LIMIT") or DEFAULT_UPLOAD_LIMIT)
    port = int(os.environ.get("DOCPIPE_AGENT_PORT") or PORT)
    prefix = os.environ.get("DOCPIPE_AGENT_PREFIX", "")  # set on Kubernetes seats only (kube_manifests)
    web.run_app(make_app(home, limit, prefix=prefix), host="0.0.0.0", port=port, access_log=None, print=None)


if __name__ == "__main__":
    main()
