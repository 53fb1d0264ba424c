"""The launcher's web app (Starlette): `/start/<workshop>/`, a page with a "Start my desktop"
button; pressing it (a POST with a CSRF token) gives the visitor a seat and redirects (303) to it.

The visitor cookie is SameSite=Strict, so the browser does not send it on the navigation from
the tutorial site (another site): the GET page works without it, and the POST its button makes
(same site) carries it. Nothing a visitor sends names a seat: the seat comes from the cookie's
visitor, through the store. Every answer is a small page, escaped, with no script.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import html
import re
from dataclasses import dataclass
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from pipeline.lab.classroom.backend import SeatInfo
from pipeline.lab.launcher import tokens
from pipeline.lab.launcher.pool import Launcher, Refused

_WORKSHOP = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")
MAX_BODY = 4096
START_TIMEOUT = 300.0
POLICY = "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; frame-ancestors 'none'"
_STYLE = ("body{font-family:system-ui,sans-serif;max-width:40rem;margin:4rem auto;padding:0 1rem;color:#222}"
          "button,.button{font-size:1.2rem;padding:.6rem 1.4rem;border:0;border-radius:.4rem;background:#1565c0;"
          "color:#fff;cursor:pointer;text-decoration:none;display:inline-block}"
          ".secondary{background:#555}")


@dataclass(frozen=True)
class Options:
    secure: bool = True  # https: Secure cookies with the __Host- prefix
    trust_proxy: bool = False  # the client's address from X-Real-IP (the gateway sets it) over TCP too
    keep_home_seconds: int = 7 * 86400


def _names(secure: bool) -> tuple[str, str]:
    prefix = "__Host-" if secure else ""
    return f"{prefix}docpipe-visitor", f"{prefix}docpipe-csrf"


def _page(title: str, body: str, status: int = 200, headers: dict[str, str] | None = None) -> HTMLResponse:
    text = (f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            f'<meta name="viewport" content="width=device-width, initial-scale=1"><style>{_STYLE}</style></head>'
            f"<body>\n{body}\n</body></html>\n")
    return HTMLResponse(text, status, headers=_headers(headers))


def _headers(extra: dict[str, str] | None = None) -> dict[str, str]:
    return {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer", "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": POLICY, **(extra or {})}


def _when(seconds: int) -> str:
    if seconds < 120:
        return f"{seconds} seconds"
    if seconds < 7200:
        return f"{seconds // 60} minutes"
    return f"{seconds // 3600} hours"


def make_app(launcher: Launcher, key: bytes, options: Options) -> Starlette:
    visitor_cookie, csrf_cookie = _names(options.secure)

    def set_cookie(resp: Response, name: str, value: str, max_age: int) -> None:
        resp.set_cookie(name, value, max_age=max_age, path="/", secure=options.secure, httponly=True,
                        samesite="strict")

    def address(request: Request) -> str:
        forwarded = request.headers.get("x-real-ip", "")
        if forwarded and (request.client is None or options.trust_proxy):  # a unix socket: only the gateway
            return forwarded[:64]
        return request.client.host if request.client is not None else "unknown"

    def workshop_of(request: Request) -> str | None:
        name = str(request.path_params.get("workshop", ""))
        return name if _WORKSHOP.fullmatch(name) and name in launcher.seats.workshops() else None

    def not_found() -> HTMLResponse:
        return _page("No such workshop", "<h1>No such workshop</h1><p>This launcher starts desktops only for "
                     "published workshops. Check the link on the tutorial page.</p>", 404)

    def visitor_of(request: Request) -> tuple[str | None, bool]:
        """(visitor key, whether the cookie was forged): no cookie is (None, False)."""
        value = request.cookies.get(visitor_cookie)
        if value is None:
            return None, False
        vid = tokens.cookie_id(key, value)
        return (tokens.visitor_key(key, vid), False) if vid else (None, True)

    def seat_box(seat: SeatInfo) -> str:
        out = (f'<p>Your desktop is running until {html.escape(seat.expires)}.</p>'
               f'<p><a class="button" href="{html.escape(seat.url, quote=True)}">Open my desktop</a></p>')
        progress = str(getattr(seat, "progress_url", "") or "")
        if progress:  # the progress checks (issue 21's other half) put it on the seat
            out += f'<p><a class="button secondary" href="{html.escape(progress, quote=True)}">Check my work</a></p>'
        return out

    async def start_page(request: Request) -> Response:
        workshop = workshop_of(request)
        if workshop is None:
            return not_found()
        visitor, _ = visitor_of(request)
        mine = launcher.seat_of(visitor, workshop) if visitor else None
        nonce = tokens.new_nonce()
        token = tokens.csrf_token(key, nonce, workshop)
        title = f"Start a desktop for {workshop}"
        body = (f"<h1>{html.escape(title)}</h1>" + (seat_box(mine) if mine else "") +
                f'<form method="post" action="/start/{workshop}/">'
                f'<input type="hidden" name="csrf" value="{html.escape(token, quote=True)}">'
                f'<button type="submit" id="start">{"Back to my desktop" if mine else "Start my desktop"}</button>'
                "</form><p>Your desktop is yours alone: this browser finds it again while it lives.</p>")
        resp = _page(title, body)
        set_cookie(resp, csrf_cookie, nonce, tokens.CSRF_SECONDS)
        return resp

    def refused(r: Refused) -> HTMLResponse:
        if r.status == 503:
            title, text = "All desktops are taken", "Every desktop of this launcher is in use right now."
        else:
            title, text = "Too many desktops started", "Too many desktops were started from your address."
        return _page(title, f"<h1>{title}</h1><p>{text} Please come back in {_when(r.retry_after)}.</p>",
                     r.status, {"Retry-After": str(r.retry_after)})

    async def start(request: Request) -> Response:
        workshop = workshop_of(request)
        if workshop is None:
            return not_found()
        length = request.headers.get("content-length", "")
        if not length.isdigit() or int(length) > MAX_BODY:
            return _page("Bad request", "<h1>Bad request</h1>", 400 if length.isdigit() else 411)
        body = (await request.body())[:MAX_BODY].decode("utf-8", errors="replace")
        token = (parse_qs(body).get("csrf") or [""])[0]
        nonce = tokens.check_csrf(key, token, request.cookies.get(csrf_cookie, ""), workshop)
        if nonce is None or not launcher.store.use_nonce(nonce):
            return _page("Expired page", '<h1>This page has expired</h1><p>Open '
                         f'<a href="/start/{workshop}/">the start page</a> again and press the button.</p>', 403)
        visitor, forged = visitor_of(request)
        new_cookie = ""
        if forged:
            resp = _page("Bad cookie", "<h1>Your launcher cookie is not valid</h1><p>It has been removed: "
                         f'<a href="/start/{workshop}/">start again</a>.</p>', 400)
            resp.delete_cookie(visitor_cookie, path="/", secure=options.secure, httponly=True, samesite="strict")
            return resp
        if visitor is None:
            new_cookie, vid = tokens.new_cookie(key)
            visitor = tokens.visitor_key(key, vid)
        outcome = launcher.claim(visitor, workshop, address(request))
        how = "cold"
        if isinstance(outcome, concurrent.futures.Future):
            try:
                seat = await asyncio.wait_for(asyncio.wrap_future(outcome), START_TIMEOUT)
            except Exception:  # the backend's error went to the log, not to the visitor
                return _page("Not started", "<h1>Your desktop could not be started</h1><p>Please try again in a "
                             "few minutes.</p>", 503, {"Retry-After": "120"})
        elif isinstance(outcome, Refused):
            return refused(outcome)
        else:
            seat, how = outcome.seat, outcome.how
        # X-Docpipe-Seat says how the seat came (again, warm, cold): for the benchmark and logs.
        redirect = RedirectResponse(seat.url, 303, headers=_headers({"X-Docpipe-Seat": how}))
        if new_cookie:
            set_cookie(redirect, visitor_cookie, new_cookie, options.keep_home_seconds)
        return redirect

    async def health(request: Request) -> Response:
        return JSONResponse(launcher.status(), headers=_headers())

    routes = [Route("/start/-/health", health, methods=["GET"]),
              Route("/start/{workshop}/", start_page, methods=["GET", "HEAD"]),
              Route("/start/{workshop}/", start, methods=["POST"])]
    app = Starlette(routes=routes)

    async def errors(request: Request, exc: Exception) -> Response:
        launcher.log(f"docpipe: lab serve: {type(exc).__name__}: {' '.join(str(exc).split())[:200]}")
        return _page("Error", "<h1>Something went wrong</h1><p>Please try again.</p>", 500)

    async def missing(request: Request, exc: Exception) -> Response:
        status = int(getattr(exc, "status_code", 404))
        return _page("Not found", "<h1>Not found</h1>", 404 if status == 404 else status)

    app.add_exception_handler(Exception, errors)
    app.add_exception_handler(404, missing)
    app.add_exception_handler(405, missing)
    return app

