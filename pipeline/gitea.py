"""Gitea REST API v1 client: the only module that knows Gitea's wire format.

Every call goes through `GiteaClient._call`, which adds token auth in a header (never in a URL),
retries idempotent calls on connection errors and 5xx with backoff, and turns Gitea's answers
into one-line `DocpipeError`s that never contain the token.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlsplit

import requests
import requests.auth

from pipeline import USER_AGENT
from pipeline.errors import BadInput, DocpipeError

API_PREFIX = "/api/v1"
IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "PATCH", "DELETE"})


@dataclass(frozen=True)
class Owner:
    """Where a repository is created: a user (the token's own, or another via admin) or an org."""

    login: str
    kind: str  # "self" | "org" | "user"


def normalise_url(url: str) -> str:
    """The server's base URL without a trailing slash or /api/v1 suffix; BadInput if not http(s)."""
    url = (url or "").strip().rstrip("/")
    if not url:
        raise BadInput("no Gitea URL: pass --gitea, set DOCPIPE_GITEA_URL, or set [gitea] url in docpipe.toml")
    if url.endswith(API_PREFIX):
        url = url[: -len(API_PREFIX)]
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise BadInput(f"Gitea URL must start with http:// or https:// and name a host, got {url!r}")
    if parts.username or parts.password:
        raise BadInput("Gitea URL must not contain credentials; give the token in GITEA_TOKEN")
    return url


def _seg(value: str) -> str:
    return quote(value, safe="")


def _repo_path(owner: str, repo: str) -> str:
    return f"/repos/{_seg(owner)}/{_seg(repo)}"


class _TokenAuth(requests.auth.AuthBase):
    """Gitea token auth in a header. Passed as `auth=` so ~/.netrc can never replace it, while the
    environment's proxy and CA settings still apply."""

    def __init__(self, token: str) -> None:
        self._token = token

    def __call__(self, req: requests.PreparedRequest) -> requests.PreparedRequest:
        req.headers["Authorization"] = f"token {self._token}"
        return req


@dataclass
class GiteaClient:
    base_url: str
    token: str
    retries: int = 3
    backoff: float = 0.25
    timeout: float = 30.0
    session: requests.Session = field(default_factory=requests.Session, repr=False)

    def __post_init__(self) -> None:
        self.base_url = normalise_url(self.base_url)
        if not self.token:
            raise BadInput("no Gitea token: set GITEA_TOKEN (or [gitea] token in docpipe.toml)")

    def __repr__(self) -> str:  # never show the token
        return f"GiteaClient({self.base_url!r})"

    # ------------------------------------------------------------ plumbing
    def scrub(self, text: str) -> str:
        """`text` on one line, the token masked, bounded in length."""
        if self.token:
            text = text.replace(self.token, "***")
        text = " ".join(text.split())
        return text if len(text) <= 300 else text[:297] + "..."

    def _call(self, method: str, path: str, body: Any = None, *, ok: tuple[int, ...] = (200,)) -> requests.Response:
        """One API call; returns the response for `ok` statuses and 404, raises otherwise."""
        url = self.base_url + API_PREFIX + path
        headers = {"Accept": "application/json", "User-Agent": USER_AGENT}
        attempts = 1 + (self.retries if method in IDEMPOTENT else 0)
        for attempt in range(attempts):
            last = attempt == attempts - 1
            try:
                resp = self.session.request(method, url, json=body, headers=headers, timeout=self.timeout,
                                            auth=_TokenAuth(self.token), allow_redirects=False)
            except (requests.ConnectionError, requests.Timeout) as exc:
                if last:
                    reason = type(exc).__name__.replace("Error", " error").lower()
                    raise DocpipeError(f"cannot reach Gitea at {self.base_url} ({reason}); is the URL right and the server up?") from None
                time.sleep(self.backoff * 2**attempt)
                continue
            if resp.status_code >= 500 and not last:
                time.sleep(self.backoff * 2**attempt)
                continue
            if resp.status_code in ok or resp.status_code == 404:
                return resp
            raise self._error(method, path, resp)
        raise AssertionError("unreachable")

    def _message(self, resp: requests.Response) -> str:
        try:
            data = resp.json()
        except ValueError:
            return self.scrub(resp.text[:300])
        if isinstance(data, dict):
            msg = str(data.get("message") or "")
            if data.get("invalidTopics"):
                msg += f" {data['invalidTopics']}"
            return self.scrub(msg)
        return self.scrub(str(data))

    def _error(self, method: str, path: str, resp: requests.Response) -> DocpipeError:
        status, msg = resp.status_code, self._message(resp)
        detail = f": {msg}" if msg else ""
        if status == 401:
            return BadInput(f"Gitea at {self.base_url} rejected the token (401 Unauthorized); check GITEA_TOKEN")
        if status == 403:
            return BadInput(f"Gitea refused {method} {path} (403 Forbidden){detail}")
        if status == 409:
            return BadInput(f"Gitea refused {method} {path} (409 Conflict: it already exists but this token cannot see it){detail}")
        if status == 422:
            return BadInput(f"Gitea rejected {method} {path} (422 Unprocessable Entity){detail}")
        if 300 <= status < 400:
            return BadInput(f"Gitea at {self.base_url} redirected {method} {path} ({status}); give the server's exact base URL")
        return DocpipeError(f"Gitea at {self.base_url} answered {status} to {method} {path}{detail}")

    @staticmethod
    def _json(resp: requests.Response) -> dict[str, Any]:
        """The body as a JSON object: every endpoint docpipe calls answers with one."""
        try:
            body = resp.json()
        except ValueError:
            raise DocpipeError(f"Gitea answered {resp.status_code} with a body that is not JSON") from None
        if not isinstance(body, dict):
            raise DocpipeError(f"Gitea answered {resp.status_code} with JSON that is not an object")
        return body

    # ------------------------------------------------------------ endpoints
    def current_user(self) -> dict[str, Any]:
        """GET /user: who the token belongs to (401 → BadInput)."""
        resp = self._call("GET", "/user")
        if resp.status_code == 404:
            raise DocpipeError(f"{self.base_url} does not serve Gitea's API v1 (GET {API_PREFIX}/user answered 404)")
        return self._json(resp)

    def _get_or_none(self, path: str) -> dict[str, Any] | None:
        resp = self._call("GET", path)
        return None if resp.status_code == 404 else self._json(resp)

    def get_repo(self, owner: str, repo: str) -> dict[str, Any] | None:
        return self._get_or_none(_repo_path(owner, repo))

    def get_org(self, org: str) -> dict[str, Any] | None:
        return self._get_or_none(f"/orgs/{_seg(org)}")

    def get_user(self, username: str) -> dict[str, Any] | None:
        return self._get_or_none(f"/users/{_seg(username)}")

    def resolve_owner(self, name: str, me: dict[str, Any]) -> Owner:
        """Decide where a new repository for `name` is created, or raise a one-line error."""
        if name.lower() == str(me.get("login", "")).lower():
            return Owner(me["login"], "self")
        org = self.get_org(name)
        if org is not None:
            return Owner(org.get("username") or org.get("name") or name, "org")
        user = self.get_user(name)
        if user is None:
            raise BadInput(f"Gitea at {self.base_url} has no user or organisation named {name!r} (404)")
        if not me.get("is_admin"):
            raise BadInput(
                f"the token belongs to {me.get('login')!r}, who cannot create repositories for user "
                f"{user.get('login', name)!r} (403); use that user's token or an organisation"
            )
        return Owner(user.get("login") or name, "user")

    def create_repo(self, owner: Owner, options: dict[str, Any]) -> dict[str, Any]:
        """POST the CreateRepoOption to the endpoint that fits the owner kind."""
        path = {
            "self": "/user/repos",
            "org": f"/orgs/{_seg(owner.login)}/repos",
            "user": f"/admin/users/{_seg(owner.login)}/repos",
        }[owner.kind]
        resp = self._call("POST", path, options, ok=(201,))
        if resp.status_code == 404:
            raise BadInput(f"Gitea at {self.base_url} has no user or organisation named {owner.login!r} (404)")
        return self._json(resp)

    def _setup_call(self, method: str, owner: str, repo: str, sub: str, body: Any, ok: int) -> requests.Response:
        """A call on a repository docpipe just created: a 404 means it is gone."""
        resp = self._call(method, _repo_path(owner, repo) + sub, body, ok=(ok,))
        if resp.status_code == 404:
            raise DocpipeError(f"repository {owner}/{repo} vanished from Gitea while docpipe was setting it up")
        return resp

    def edit_repo(self, owner: str, repo: str, changes: dict[str, Any]) -> dict[str, Any]:
        return self._json(self._setup_call("PATCH", owner, repo, "", changes, 200))

    def set_topics(self, owner: str, repo: str, topics: list[str]) -> None:
        self._setup_call("PUT", owner, repo, "/topics", {"topics": topics}, 204)

    def delete_repo(self, owner: str, repo: str) -> bool:
        resp = self._call("DELETE", _repo_path(owner, repo), ok=(204,))
        return resp.status_code == 204

    def git_url(self, full_name: str) -> str:
        """Smart-HTTP URL of a repository, built from the base URL the user gave (no credentials)."""
        owner, _, repo = full_name.partition("/")
        return f"{self.base_url}/{_seg(owner)}/{_seg(repo)}.git"
