"""The Drive v3 client docpipe uses: one shared, offline-built service; one connection per thread.

httplib2 (under google-api-python-client) and requests sessions are not thread-safe, so every
worker thread gets its own AuthorizedHttp and AuthorizedSession; the service object itself only
builds requests. Every attempt passes the shared rate limiter and is counted, and failures worth
another try (429, 403 rate-limit reasons, 5xx, dropped connections) are retried with backoff.
"""

from __future__ import annotations

import http.client
import socket
import sys
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

import google.auth.exceptions
import google_auth_httplib2
import httplib2
from googleapiclient.discovery import build
from googleapiclient.errors import HttpError
from googleapiclient.http import set_user_agent

from pipeline import USER_AGENT

# The defaults live with the settings schema; they are re-exported here for callers of the client.
from pipeline.config import DEFAULT_ENDPOINT, DEFAULT_MAX_QPS
from pipeline.drive.auth import LoadedCredentials
from pipeline.drive.ratelimit import RateLimiter
from pipeline.drive.retry import RetryPolicy, error_message, error_reason, is_retryable, parse_retry_after
from pipeline.errors import BadInput, DocpipeError

if TYPE_CHECKING:  # requests loads only with the first download: a no-op pull never needs it
    from requests import Session as _Session

_T = TypeVar("_T")

HTTP_TIMEOUT = 60.0
MAX_DOWNLOAD_BYTES = 200 * 1024 * 1024

_TRANSPORT_ERRORS: tuple[type[BaseException], ...] = (
    httplib2.HttpLib2Error,
    http.client.HTTPException,
    ConnectionError,
    socket.timeout,
    TimeoutError,
)


def _transport_errors() -> tuple[type[BaseException], ...]:
    """The errors worth a retry; requests' own once a download has loaded it (nothing else raises them)."""
    if "requests" not in sys.modules:
        return _TRANSPORT_ERRORS
    import requests as req  # waits for another thread's import of it to finish

    return (*_TRANSPORT_ERRORS, req.ConnectionError, req.Timeout, req.exceptions.ChunkedEncodingError,
            req.exceptions.ContentDecodingError)


class DriveCallError(DocpipeError):
    """A Drive call that failed for good: `status` None for transport/malformed, `exhausted` after retries."""

    def __init__(self, message: str, *, status: int | None, reason: str = "", exhausted: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.exhausted = exhausted


class DriveClient:
    def __init__(
        self,
        creds: LoadedCredentials,
        *,
        endpoint: str = DEFAULT_ENDPOINT,
        max_qps: float = DEFAULT_MAX_QPS,
        burst: int = 1,
        retry: RetryPolicy | None = None,
    ) -> None:
        parsed = urllib.parse.urlsplit(endpoint)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise BadInput(f"Drive endpoint {endpoint!r} is not an http(s) URL")
        if max_qps <= 0:
            raise BadInput("--max-qps must be a positive number")
        self.endpoint = endpoint if endpoint.endswith("/") else endpoint + "/"
        self._creds = creds
        self.limiter = RateLimiter(max_qps, burst=burst)
        self.retry = retry or RetryPolicy()
        self._local = threading.local()
        self._count = 0
        self._count_lock = threading.Lock()
        # Static discovery: the Drive v3 document bundled with the library, no network at build.
        self.service = build(
            "drive", "v3",
            http=self._http(),
            static_discovery=True,
            cache_discovery=False,
            client_options={"api_endpoint": urllib.parse.urljoin(self.endpoint, "drive/v3/")},
        )
        self._collections = _Collections(self.service)

    # ------------------------------------------------------------- plumbing
    @property
    def requests(self) -> int:
        """Requests docpipe sent so far, its retries included; token refreshes and httplib2's own
        single resend on a stale keep-alive connection are not counted."""
        return self._count

    def _http(self) -> google_auth_httplib2.AuthorizedHttp:
        h = getattr(self._local, "http", None)
        if h is None:
            h = google_auth_httplib2.AuthorizedHttp(self._creds.credentials, http=httplib2.Http(timeout=HTTP_TIMEOUT))
            # googleapiclient puts this in front of its own "(gzip)" on every API request.
            set_user_agent(h, USER_AGENT)
            self._local.http = h
        return h

    def _session(self, authorized: bool) -> _Session:
        name = "auth_session" if authorized else "plain_session"
        s = getattr(self._local, name, None)
        if s is None:
            import requests
            from google.auth.transport.requests import AuthorizedSession

            s = AuthorizedSession(self._creds.credentials) if authorized else requests.Session()
            s.headers["User-Agent"] = USER_AGENT
            setattr(self._local, name, s)
        return s

    def _reset_connections(self) -> None:
        # After a dropped connection, start over with fresh sockets rather than trust the pool.
        for name in ("http", "auth_session", "plain_session"):
            obj = getattr(self._local, name, None)
            if obj is not None and hasattr(obj, "close"):
                try:
                    obj.close()
                except Exception:  # closing a broken socket may itself fail
                    pass
            setattr(self._local, name, None)

    def _attempt(self) -> None:
        self.limiter.acquire()
        with self._count_lock:
            self._count += 1

    def _bad_credentials(self) -> BadInput:
        return BadInput(f"Drive rejected the credentials ({self._creds.source})")

    def _run(self, send: Callable[[], _T], what: str) -> _T:
        """Call `send` until it succeeds, fails for good, or the tries run out."""
        last = ""
        retry_after: float | None = None
        for attempt in range(self.retry.tries):
            if attempt:
                time.sleep(self.retry.delay(attempt - 1, retry_after))
            retry_after = None
            self._attempt()
            try:
                return send()
            except _Status as st:
                if st.status == 401:
                    raise self._bad_credentials() from None
                if not is_retryable(st.status, st.reason):
                    detail = f": {st.message}" if st.message else ""
                    raise DriveCallError(
                        f"{what}: HTTP {st.status}{' ' + st.reason if st.reason else ''}{detail}",
                        status=st.status, reason=st.reason,
                    ) from None
                retry_after = st.retry_after
                last = f"HTTP {st.status}{' ' + st.reason if st.reason else ''}"
            except google.auth.exceptions.RefreshError:
                raise self._bad_credentials() from None
            except _transport_errors() as exc:
                self._reset_connections()
                last = f"connection error ({type(exc).__name__})"
            except ValueError:
                # The body did not parse as the JSON the API promises.
                raise DriveCallError(f"{what}: malformed response from Drive", status=None, reason="malformed") from None
        raise DriveCallError(
            f"{what}: gave up after {self.retry.tries} tries, last: {last}", status=None, reason="exhausted", exhausted=True
        )

    # ------------------------------------------------------------- API
    def call(self, make: Callable[[Any], Any], what: str) -> dict[str, Any]:
        """Execute the request `make(service)` builds, with retries; return its JSON body."""
        request = make(self._collections)

        def send() -> Any:
            try:
                result = request.execute(http=self._http())
            except HttpError as exc:
                raise _Status.of(exc.resp.status, exc.content, exc.resp.get("retry-after")) from None
            if not isinstance(result, dict):
                raise ValueError("not a JSON object")
            return result

        return self._run(send, what)

    def pages(self, make: Callable[[Any, str | None], Any], key: str, what: str) -> Iterator[list[dict[str, Any]]]:
        """Yield each page's `key` list, following nextPageToken."""
        token: str | None = None
        seen: set[str] = set()
        while True:
            def request(svc: Any, page_token: str | None = token) -> Any:
                return make(svc, page_token)

            page = self.call(request, what)
            items = page.get(key, [])
            if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
                raise DriveCallError(f"{what}: malformed response from Drive ({key!r} is not a list)", status=None, reason="malformed")
            yield items
            token = page.get("nextPageToken")
            if not token:
                return
            if token in seen:  # a server that loops its page tokens would otherwise never end
                raise DriveCallError(f"{what}: Drive repeated a page token", status=None, reason="malformed")
            seen.add(token)

    def list_all(self, make: Callable[[Any, str | None], Any], key: str, what: str) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for items in self.pages(make, key, what):
            out.extend(items)
        return out

    def download(self, url: str, what: str, *, authorized: bool = True) -> tuple[bytes, str]:
        """GET `url` (an export link or an image) and return (bytes, content type)."""
        scheme = urllib.parse.urlsplit(url).scheme
        if scheme not in ("http", "https"):
            raise DriveCallError(f"{what}: not an http(s) URL", status=None, reason="malformed")

        def send() -> tuple[bytes, str]:
            session = self._session(authorized)
            with session.get(url, timeout=HTTP_TIMEOUT, stream=True) as resp:
                if resp.status_code != 200:
                    raise _Status.of(resp.status_code, resp.content[:65536], resp.headers.get("Retry-After"))
                chunks, size = [], 0
                for chunk in resp.iter_content(1 << 16):
                    size += len(chunk)
                    if size > MAX_DOWNLOAD_BYTES:
                        raise DriveCallError(f"{what}: larger than {MAX_DOWNLOAD_BYTES} bytes", status=None, reason="too large")
                    chunks.append(chunk)
                ctype = resp.headers.get("Content-Type", "").split(";")[0].strip().lower()
                return b"".join(chunks), ctype

        return self._run(send, what)


class _Collections:
    """The service's collections (`files()`, `revisions()`, ...), each made once.

    googleapiclient makes a new collection object on every such call, generating its methods and
    ~24 KB of their docstrings; those objects sit in reference cycles, so during a pull hundreds of
    them (16 MB at 1,000 docs) waited for the cycle collector. A collection only builds requests,
    as the service does, so one of each serves every thread."""

    def __init__(self, service: Any) -> None:
        self._service = service
        self._made: dict[str, Any] = {}
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Callable[[], Any]:
        def collection() -> Any:
            with self._lock:
                if name not in self._made:
                    self._made[name] = getattr(self._service, name)()
                return self._made[name]

        return collection


class _Status(Exception):
    """A non-2xx answer, in one shape for both transports."""

    def __init__(self, status: int, reason: str, message: str, retry_after: float | None) -> None:
        super().__init__(status)
        self.status, self.reason, self.message, self.retry_after = status, reason, message, retry_after

    @classmethod
    def of(cls, status: int, body: bytes | None, retry_after: str | None) -> _Status:
        return cls(int(status), error_reason(body), error_message(body), parse_retry_after(retry_after))
