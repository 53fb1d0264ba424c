"""A Gitea-compatible test server: REST API v1 checked against Gitea's Swagger description, and
real git over smart HTTP through `git http-backend`.

Every /api/v1 request is validated against tests/specs/gitea-1.22.3-swagger.json (path template,
method, parameters, JSON body against the referenced definition). An invalid request gets a 422
in Gitea's APIError shape and is recorded in `server.invalid`, so a test can assert the client
never sent one. Answers use Gitea's shapes and status codes; with `check_responses` on, the
server's own answers are validated against the spec too (recorded in `server.response_errors`).

State (users, organisations, tokens, repositories) is set up in-process:

    with GiteaServer(tmp_path) as gitea:
        token = gitea.add_user("alice")
        gitea.add_org("wg", members={"alice": "owner"})
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import shutil
import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import jsonschema
import pygit2

SPEC_PATH = Path(__file__).resolve().parent / "specs" / "gitea-1.22.3-swagger.json"
API = "/api/v1"
GIT_HTTP_BACKEND = "/usr/lib/git-core/git-http-backend"
VERSION = "1.22.3"

# Query parameters the spec allows on every operation through its securityDefinitions.
SECURITY_QUERY = {"token", "access_token", "sudo"}
# Gitea's binding rules that the Swagger file does not express (modules/structs, `binding:` tags).
ALPHA_DASH_DOT = re.compile(r"^[\w\-.]+$", re.ASCII)
TOPIC = re.compile(r"^[a-z0-9][-.a-z0-9]*$")
RESERVED_REPO_NAMES = {".", "..", "-"}
RESERVED_REPO_SUFFIXES = (".git", ".rss", ".atom", ".wiki")


# ====================================================================== the spec validator
@dataclass(frozen=True)
class Route:
    template: str
    regex: re.Pattern[str]
    names: tuple[str, ...]
    item: dict[str, Any]


@dataclass
class Validated:
    """A request that matched the spec."""

    template: str
    operation: dict[str, Any]
    path_params: dict[str, str]
    query: dict[str, list[str]]
    body: Any


class SpecError(Exception):
    """The request does not conform to the spec (message says why)."""


class SwaggerValidator:
    """Checks requests (and, optionally, responses) against a Swagger 2.0 document."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.base = spec.get("basePath", "")
        self._schemas: dict[str, jsonschema.Draft4Validator] = {}
        routes = []
        for template, item in spec["paths"].items():
            names = tuple(re.findall(r"{([^}]+)}", template))
            pattern = re.sub(r"{[^}]+}", "([^/]+)", re.escape(template).replace(r"\{", "{").replace(r"\}", "}"))
            routes.append(Route(template, re.compile(f"^{pattern}$"), names, item))
        # A literal segment beats a template one (/users/search before /users/{username}).
        routes.sort(key=lambda r: (len(r.names), -r.template.count("/")))
        self.routes = routes

    def validator(self, schema: dict[str, Any]) -> jsonschema.Draft4Validator:
        key = json.dumps(schema, sort_keys=True)
        if key not in self._schemas:
            root = dict(schema, definitions=self.spec["definitions"])
            self._schemas[key] = jsonschema.Draft4Validator(root, format_checker=jsonschema.Draft4Validator.FORMAT_CHECKER)
        return self._schemas[key]

    def schema_errors(self, schema: dict[str, Any], value: Any) -> list[str]:
        errors = sorted(self.validator(schema).iter_errors(value), key=lambda e: list(e.absolute_path))
        return [f"{'/'.join(map(str, e.absolute_path)) or '(body)'}: {e.message}" for e in errors]

    def match(self, path: str) -> tuple[Route, dict[str, str]]:
        if not path.startswith(self.base + "/"):
            raise SpecError(f"path {path} is outside the API base path {self.base}")
        rel = path[len(self.base):]
        for route in self.routes:
            m = route.regex.match(rel)
            if m:
                return route, {n: unquote(v) for n, v in zip(route.names, m.groups(), strict=True)}
        raise SpecError(f"no path template in the spec matches {rel}")

    def _param_value(self, param: dict[str, Any], raw: str) -> Any:
        kind = param.get("type")
        if kind == "integer":
            if not re.fullmatch(r"-?\d+", raw):
                raise SpecError(f"{param['in']} parameter {param['name']} must be an integer, got {raw!r}")
            return int(raw)
        if kind == "boolean":
            if raw not in ("true", "false", "1", "0"):
                raise SpecError(f"{param['in']} parameter {param['name']} must be a boolean, got {raw!r}")
            return raw in ("true", "1")
        if "enum" in param and raw not in param["enum"]:
            raise SpecError(f"{param['in']} parameter {param['name']} must be one of {param['enum']}, got {raw!r}")
        return raw

    def check_request(self, method: str, path: str, query: dict[str, list[str]], headers: dict[str, str],
                      body: bytes) -> Validated:
        route, path_params = self.match(path)
        op = route.item.get(method.lower())
        if not isinstance(op, dict):
            allowed = sorted(k.upper() for k in route.item if k != "parameters")
            raise SpecError(f"{method} is not an operation of {route.template} (spec has {', '.join(allowed)})")
        params = list(route.item.get("parameters", [])) + list(op.get("parameters", []))
        known_query = {p["name"] for p in params if p["in"] == "query"}
        for name in query:
            if name not in known_query and name not in SECURITY_QUERY:
                raise SpecError(f"query parameter {name!r} is not in the spec for {method} {route.template}")
        parsed_body: Any = None
        body_param = next((p for p in params if p["in"] == "body"), None)
        for p in params:
            where = p["in"]
            if where == "path":
                self._param_value(p, path_params[p["name"]])
            elif where == "query":
                values = query.get(p["name"])
                if values is None:
                    if p.get("required"):
                        raise SpecError(f"required query parameter {p['name']} is missing")
                    continue
                if p.get("type") == "array":
                    for v in values:
                        self._param_value(dict(p.get("items", {}), name=p["name"], **{"in": "query"}), v)
                else:
                    if len(values) > 1:
                        raise SpecError(f"query parameter {p['name']} given {len(values)} times")
                    self._param_value(p, values[0])
            elif where == "header":
                if p.get("required") and p["name"].lower() not in headers:
                    raise SpecError(f"required header {p['name']} is missing")
            elif where == "formData":
                raise SpecError("form uploads are not supported by the test server")
        if body_param is None:
            if body.strip():
                raise SpecError(f"{method} {route.template} takes no request body")
        elif not body.strip():
            if body_param.get("required"):
                raise SpecError(f"{method} {route.template} requires a JSON body ({body_param['name']})")
        else:
            ctype = headers.get("content-type", "").split(";")[0].strip().lower()
            consumes = op.get("consumes") or self.spec.get("consumes") or ["application/json"]
            if ctype not in consumes:
                raise SpecError(f"Content-Type {ctype or '(none)'} is not one of {consumes}")
            try:
                parsed_body = json.loads(body)
            except ValueError as exc:
                raise SpecError(f"body is not valid JSON: {exc}") from None
            errors = self.schema_errors(body_param["schema"], parsed_body)
            if errors:
                raise SpecError("body does not match the spec: " + "; ".join(errors))
        return Validated(route.template, op, path_params, query, parsed_body)

    def check_response(self, op: dict[str, Any], status: int, body: Any) -> list[str]:
        spec_resp = op.get("responses", {}).get(str(status)) or op.get("responses", {}).get("default")
        if spec_resp is None:
            return [f"status {status} is not a documented response"]
        if "$ref" in spec_resp:
            spec_resp = self.spec["responses"][spec_resp["$ref"].rsplit("/", 1)[-1]]
        schema = spec_resp.get("schema")
        if schema is None:
            return []
        return self.schema_errors(schema, body)


# ====================================================================== state
def _now() -> str:
    return datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


@dataclass
class Account:
    id: int
    login: str
    is_org: bool = False
    is_admin: bool = False
    full_name: str = ""
    email: str = ""
    created: str = field(default_factory=_now)
    members: dict[str, str] = field(default_factory=dict)  # org: login -> "owner" | "writer" | "reader"


@dataclass
class RepoRecord:
    id: int
    owner: str
    name: str
    private: bool
    description: str = ""
    website: str = ""
    default_branch: str = "main"
    topics: list[str] = field(default_factory=list)
    collaborators: dict[str, str] = field(default_factory=dict)  # login -> "read" | "write" | "admin"
    created_at: str = field(default_factory=_now)
    updated_at: str = field(default_factory=_now)


@dataclass(frozen=True)
class Recorded:
    method: str
    path: str
    query: str
    status: int
    kind: str  # "api" | "git" | "other"
    user_agent: str = ""


class ApiAnswer(Exception):
    def __init__(self, status: int, body: Any = None) -> None:
        super().__init__(status)
        self.status, self.body = status, body


class GiteaServer:
    """The server and its state. Use as a context manager, or call start()/stop()."""

    def __init__(self, root: Path, *, check_responses: bool = True) -> None:
        self.root = Path(root)
        self.git_root = self.root / "repositories"
        self.git_root.mkdir(parents=True, exist_ok=True)
        self.validator = SwaggerValidator(json.loads(SPEC_PATH.read_text(encoding="utf-8")))
        self.check_responses = check_responses
        self.lock = threading.RLock()
        self.accounts: dict[str, Account] = {}
        self.tokens: dict[str, str] = {}
        self.repos: dict[tuple[str, str], RepoRecord] = {}
        self.requests: list[Recorded] = []
        self.invalid: list[str] = []
        self.unimplemented: list[str] = []
        self.response_errors: list[str] = []
        self.fail_next: list[int] = []  # statuses for the next valid API requests, 0 = answer normally (faults)
        self.fail_next_git: list[int] = []  # the same for the next git smart-HTTP requests
        self._ids = 0
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------ lifecycle
    @property
    def url(self) -> str:
        assert self._httpd is not None, "server not started"
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def start(self) -> GiteaServer:
        handler = type("Handler", (_Handler,), {"gitea": self})
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="gitea-test-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> GiteaServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------ setup (in-process)
    def _next_id(self) -> int:
        self._ids += 1
        return self._ids

    def add_user(self, login: str, *, admin: bool = False, full_name: str = "") -> str:
        """Create a user and return a new token for it."""
        with self.lock:
            self.accounts[login.lower()] = Account(self._next_id(), login, is_admin=admin, full_name=full_name,
                                                   email=f"{login.lower()}@noreply.localhost")
        return self.add_token(login)

    def add_token(self, login: str) -> str:
        token = secrets.token_hex(20)  # Gitea's tokens are 40 hex digits
        with self.lock:
            self.tokens[token] = self.accounts[login.lower()].login
        return token

    def add_org(self, name: str, *, members: dict[str, str] | None = None) -> None:
        with self.lock:
            self.accounts[name.lower()] = Account(self._next_id(), name, is_org=True, full_name=name,
                                                  email=f"{name.lower()}@noreply.localhost",
                                                  members={k.lower(): v for k, v in (members or {}).items()})

    def add_repo(self, owner: str, name: str, *, private: bool = True, description: str = "",
                 collaborators: dict[str, str] | None = None) -> RepoRecord:
        with self.lock:
            acct = self.accounts[owner.lower()]
            rec = RepoRecord(self._next_id(), acct.login, name, private, description,
                             collaborators={k.lower(): v for k, v in (collaborators or {}).items()})
            self.repos[(owner.lower(), name.lower())] = rec
            pygit2.init_repository(str(self.git_dir(owner, name)), bare=True, initial_head="main")
            return rec

    def git_dir(self, owner: str, name: str) -> Path:
        return self.git_root / owner.lower() / f"{name.lower()}.git"

    def main_sha(self, owner: str, name: str) -> str | None:
        repo = pygit2.Repository(str(self.git_dir(owner, name)))
        ref = repo.references.get("refs/heads/main")
        return str(ref.target) if ref else None

    # ------------------------------------------------------------ permissions
    def user_of_token(self, token: str | None) -> Account | None:
        login = self.tokens.get(token or "")
        return self.accounts.get(login.lower()) if login else None

    def access(self, user: Account | None, rec: RepoRecord) -> str:
        """'admin' | 'write' | 'read' | 'none' for `user` on `rec`."""
        if user is not None:
            if user.is_admin or user.login.lower() == rec.owner.lower():
                return "admin"
            owner = self.accounts[rec.owner.lower()]
            role = owner.members.get(user.login.lower()) if owner.is_org else None
            if role == "owner":
                return "admin"
            collab = rec.collaborators.get(user.login.lower())
            levels = [{"writer": "write", "reader": "read"}.get(role or "", "none"), collab or "none"]
            for level in ("admin", "write", "read"):
                if level in levels:
                    return level
        return "read" if not rec.private else "none"

    # ------------------------------------------------------------ response shapes
    def user_json(self, acct: Account) -> dict[str, Any]:
        return {
            "id": acct.id, "login": acct.login, "login_name": "", "source_id": 0, "full_name": acct.full_name,
            "email": acct.email, "avatar_url": f"{self.url}/avatars/{acct.id}", "html_url": f"{self.url}/{acct.login}",
            "language": "", "is_admin": acct.is_admin, "last_login": acct.created, "created": acct.created,
            "restricted": False, "active": True, "prohibit_login": False, "location": "", "website": "",
            "description": "", "visibility": "public", "followers_count": 0, "following_count": 0,
            "starred_repos_count": 0, "username": acct.login,
        }

    def org_json(self, acct: Account) -> dict[str, Any]:
        return {
            "id": acct.id, "name": acct.login, "full_name": acct.full_name, "email": acct.email,
            "avatar_url": f"{self.url}/avatars/{acct.id}", "description": "", "website": "", "location": "",
            "visibility": "public", "repo_admin_change_team_access": False, "username": acct.login,
        }

    def repo_json(self, rec: RepoRecord, viewer: Account | None) -> dict[str, Any]:
        owner = self.accounts[rec.owner.lower()]
        level = self.access(viewer, rec)
        full = f"{owner.login}/{rec.name}"
        git = pygit2.Repository(str(self.git_dir(rec.owner, rec.name)))
        return {
            "id": rec.id, "owner": self.user_json(owner), "name": rec.name, "full_name": full,
            "description": rec.description, "empty": not any(r.startswith("refs/heads/") for r in git.references), "private": rec.private, "fork": False,
            "template": False, "mirror": False, "size": 0, "language": "",
            "languages_url": f"{self.url}{API}/repos/{full}/languages", "html_url": f"{self.url}/{full}",
            "url": f"{self.url}{API}/repos/{full}", "link": "", "ssh_url": f"git@127.0.0.1:{full}.git",
            "clone_url": f"{self.url}/{full}.git", "original_url": "", "website": rec.website,
            "stars_count": 0, "forks_count": 0, "watchers_count": 1, "open_issues_count": 0, "open_pr_counter": 0,
            "release_counter": 0, "default_branch": rec.default_branch, "archived": False,
            "created_at": rec.created_at, "updated_at": rec.updated_at, "archived_at": "1970-01-01T00:00:00Z",
            "permissions": {"admin": level == "admin", "push": level in ("admin", "write"), "pull": level != "none"},
            "has_issues": True, "internal_tracker": {"enable_time_tracker": True,
                                                     "allow_only_contributors_to_track_time": True,
                                                     "enable_issue_dependencies": True},
            "has_wiki": True, "has_pull_requests": True, "has_projects": True, "projects_mode": "all",
            "has_releases": True, "has_packages": True, "has_actions": False, "ignore_whitespace_conflicts": False,
            "allow_merge_commits": True, "allow_rebase": True, "allow_rebase_explicit": True,
            "allow_squash_merge": True, "allow_fast_forward_only_merge": False, "allow_rebase_update": True,
            "default_delete_branch_after_merge": False, "default_merge_style": "merge",
            "default_allow_maintainer_edit": False, "avatar_url": "", "internal": False, "mirror_interval": "",
            "object_format_name": "sha1", "mirror_updated": "0001-01-01T00:00:00Z",
        }

    def api_error(self, status: int, message: str) -> ApiAnswer:
        return ApiAnswer(status, {"message": message, "url": f"{self.url}/api/swagger"})

    def not_found(self) -> ApiAnswer:
        return ApiAnswer(404, {"errors": [], "message": "The target couldn't be found.",
                               "url": f"{self.url}/api/swagger"})

    # ------------------------------------------------------------ API operations
    def handle_api(self, req: Validated, user: Account | None) -> ApiAnswer:
        key = (req.operation.get("operationId") or "")
        op: Callable[[Validated, Account | None], ApiAnswer] | None = getattr(self, f"op_{key}", None)
        if op is None:
            self.unimplemented.append(f"{key} ({req.template})")
            return self.api_error(501, f"{key} is not implemented by the docpipe test server")
        with self.lock:
            return op(req, user)

    def _need_user(self, user: Account | None) -> Account:
        if user is None:
            raise self.api_error(401, "token is required")
        return user

    def _visible_repo(self, req: Validated, user: Account | None) -> RepoRecord:
        rec = self.repos.get((req.path_params["owner"].lower(), req.path_params["repo"].lower()))
        if rec is None or self.access(user, rec) == "none":
            raise self.not_found()
        return rec

    def op_getVersion(self, req: Validated, user: Account | None) -> ApiAnswer:
        return ApiAnswer(200, {"version": VERSION})

    def op_userGetCurrent(self, req: Validated, user: Account | None) -> ApiAnswer:
        return ApiAnswer(200, self.user_json(self._need_user(user)))

    def op_userGet(self, req: Validated, user: Account | None) -> ApiAnswer:
        acct = self.accounts.get(req.path_params["username"].lower())
        if acct is None:
            raise self.not_found()
        return ApiAnswer(200, self.user_json(acct))

    def op_orgGet(self, req: Validated, user: Account | None) -> ApiAnswer:
        acct = self.accounts.get(req.path_params["org"].lower())
        if acct is None or not acct.is_org:
            raise self.not_found()
        return ApiAnswer(200, self.org_json(acct))

    def op_repoGet(self, req: Validated, user: Account | None) -> ApiAnswer:
        return ApiAnswer(200, self.repo_json(self._visible_repo(req, user), user))

    def _check_create_option(self, opt: dict[str, Any]) -> None:
        """Gitea's binding tags on CreateRepoOption, then its usable-name rules."""
        name = opt["name"]
        if not name:
            raise self.api_error(422, "[Name]: Required")
        if not ALPHA_DASH_DOT.match(name):
            raise self.api_error(422, "[Name]: AlphaDashDot")
        if len(name) > 100:
            raise self.api_error(422, "[Name]: MaxSize")
        if len(opt.get("description", "")) > 2048:
            raise self.api_error(422, "[Description]: MaxSize")
        if name.lower() in RESERVED_REPO_NAMES:
            raise self.api_error(422, f"name is reserved [name: {name}]")
        for suffix in RESERVED_REPO_SUFFIXES:
            if name.lower().endswith(suffix):
                raise self.api_error(422, f"name pattern is not allowed [pattern: *{suffix}]")

    def _create(self, owner: Account, opt: dict[str, Any], doer: Account) -> ApiAnswer:
        self._check_create_option(opt)
        if (owner.login.lower(), opt["name"].lower()) in self.repos:
            raise self.api_error(409, "The repository with the same name already exists.")
        if opt.get("auto_init"):
            raise self.api_error(501, "auto_init is not implemented by the docpipe test server")
        rec = self.add_repo(owner.login, opt["name"], private=bool(opt.get("private", False)),
                            description=opt.get("description", ""))
        rec.default_branch = opt.get("default_branch") or "main"
        return ApiAnswer(201, self.repo_json(rec, doer))

    def op_createCurrentUserRepo(self, req: Validated, user: Account | None) -> ApiAnswer:
        doer = self._need_user(user)
        return self._create(doer, req.body or {"name": ""}, doer)

    def op_createOrgRepo(self, req: Validated, user: Account | None) -> ApiAnswer:
        doer = self._need_user(user)
        org = self.accounts.get(req.path_params["org"].lower())
        if org is None or not org.is_org:
            raise self.not_found()
        if not doer.is_admin and org.members.get(doer.login.lower()) not in ("owner", "writer"):
            raise self.api_error(403, "Given user is not allowed to create repository in organization.")
        answer = self._create(org, req.body or {"name": ""}, doer)
        if org.members.get(doer.login.lower()) != "owner":
            # Gitea makes a creator who is no org owner an admin collaborator of the new repository.
            self.repos[(org.login.lower(), req.body["name"].lower())].collaborators[doer.login.lower()] = "admin"
            answer.body["permissions"] = {"admin": True, "push": True, "pull": True}
        return answer

    def op_adminCreateRepo(self, req: Validated, user: Account | None) -> ApiAnswer:
        doer = self._need_user(user)
        if not doer.is_admin:
            raise self.api_error(403, "reqSiteAdmin")
        owner = self.accounts.get(req.path_params["username"].lower())
        if owner is None:
            raise self.not_found()
        return self._create(owner, req.body, doer)

    def op_repoEdit(self, req: Validated, user: Account | None) -> ApiAnswer:
        rec = self._visible_repo(req, user)
        if self.access(user, rec) != "admin":
            raise self.api_error(403, "Must have admin rights to edit the repository")
        opt = req.body or {}
        if "name" in opt and opt["name"] and not ALPHA_DASH_DOT.match(opt["name"]):
            raise self.api_error(422, "[Name]: AlphaDashDot")
        if len(opt.get("description", "")) > 2048:
            raise self.api_error(422, "[Description]: MaxSize")
        if len(opt.get("website", "")) > 1024:
            raise self.api_error(422, "[Website]: MaxSize")
        for key in ("description", "website", "private", "default_branch"):
            if key in opt:
                setattr(rec, key, opt[key])
        rec.updated_at = _now()
        return ApiAnswer(200, self.repo_json(rec, user))

    def op_repoDelete(self, req: Validated, user: Account | None) -> ApiAnswer:
        rec = self._visible_repo(req, user)
        if self.access(user, rec) != "admin":
            raise self.api_error(403, "Must have admin rights to delete the repository")
        del self.repos[(rec.owner.lower(), rec.name.lower())]
        shutil.rmtree(self.git_dir(rec.owner, rec.name), ignore_errors=True)
        return ApiAnswer(204)

    def op_repoListTopics(self, req: Validated, user: Account | None) -> ApiAnswer:
        return ApiAnswer(200, {"topics": list(self._visible_repo(req, user).topics)})

    def op_repoUpdateTopics(self, req: Validated, user: Account | None) -> ApiAnswer:
        rec = self._visible_repo(req, user)
        if self.access(user, rec) != "admin":
            raise self.api_error(403, "Must have admin rights")
        wanted = [t.strip().lower() for t in (req.body or {}).get("topics") or []]
        wanted = sorted({t for t in wanted if t})
        invalid = [t for t in wanted if not TOPIC.match(t) or len(t) > 35]
        if invalid:
            raise ApiAnswer(422, {"invalidTopics": invalid, "message": "Topic names are invalid"})
        if len(wanted) > 25:
            raise ApiAnswer(422, {"invalidTopics": None, "message": "Exceeding maximum number of topics per repo"})
        rec.topics = wanted
        return ApiAnswer(204)

    # ------------------------------------------------------------ git smart HTTP
    def git_access(self, method: str, owner: str, repo: str, rest: str, query: str,
                   auth: str | None) -> tuple[int, str, Account | None] | None:
        """None when the request may go to http-backend; else (status, text, user) to answer."""
        receive = rest == "git-receive-pack" or (rest == "info/refs" and "service=git-receive-pack" in query)
        user: Account | None = None
        if auth:
            user = self._basic_user(auth)
            if user is None:
                return 401, "Unauthorized", None
        with self.lock:
            owner_acct = self.accounts.get(owner.lower())
            if owner_acct is None:
                return 404, "GetUserByName", user
            rec = self.repos.get((owner.lower(), repo.lower()))
            if (receive or rec is None or rec.private) and user is None:
                return 401, "Unauthorized", None
            if rec is None:
                if not receive:
                    return 404, "Repository not found", user
                kind = "organizations" if owner_acct.is_org else "users"
                return 403, f"Push to create is not enabled for {kind}.", user
            level = self.access(user, rec)
            if level == "none" or (receive and level == "read"):
                return 403, "User permission denied", user
        return None

    def _basic_user(self, header: str) -> Account | None:
        if not header.lower().startswith("basic "):
            return None
        try:
            name, _, password = base64.b64decode(header[6:].strip()).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return None
        # Like Gitea: the token may be the password, or the username with an empty/x-oauth-basic password.
        token = name if password in ("", "x-oauth-basic") else password
        return self.user_of_token(token)


# ====================================================================== HTTP plumbing
_GIT_PATH = re.compile(r"^/([^/]+)/([^/]+?)(?:\.git)?/(info/refs|git-upload-pack|git-receive-pack|HEAD|objects/.+)$")


class _Handler(BaseHTTPRequestHandler):
    gitea: GiteaServer  # set on the subclass made in GiteaServer.start
    protocol_version = "HTTP/1.1"
    server_version = "GiteaTestServer/" + VERSION

    def log_message(self, format: str, *args: Any) -> None:  # quiet: tests read the records instead
        pass

    def _body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _send_json(self, status: int, obj: Any) -> None:
        if obj is None:
            self._send(status, b"")
        else:
            self._send(status, json.dumps(obj).encode(), {"Content-Type": "application/json;charset=utf-8"})

    def _handle(self) -> None:
        parts = urlsplit(self.path)
        body = self._body()
        gitea = self.gitea
        if parts.path == API or parts.path.startswith(API + "/"):
            status = self._handle_api(parts.path, parts.query, body)
            kind = "api"
        elif _GIT_PATH.match(parts.path):
            status = self._handle_git(parts.path, parts.query, body)
            kind = "git"
        else:
            self._send(404, b"Not found.\n", {"Content-Type": "text/plain;charset=utf-8"})
            status, kind = 404, "other"
        with gitea.lock:
            gitea.requests.append(Recorded(self.command, parts.path, parts.query, status, kind,
                                          self.headers.get("User-Agent", "")))

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _handle

    def _auth_user(self) -> tuple[bool, Account | None]:
        """(header ok, user). A token that matches nobody is a 401, as in Gitea."""
        header = self.headers.get("Authorization")
        if not header:
            return True, None
        scheme, _, value = header.partition(" ")
        if scheme.lower() in ("token", "bearer"):
            user = self.gitea.user_of_token(value.strip())
        elif scheme.lower() == "basic":
            user = self.gitea._basic_user(header)
        else:
            user = None
        return user is not None, user

    def _handle_api(self, path: str, query: str, body: bytes) -> int:
        gitea = self.gitea
        headers = {k.lower(): v for k, v in self.headers.items()}
        try:
            req = gitea.validator.check_request(self.command, path, parse_qs(query, keep_blank_values=True),
                                                headers, body)
        except SpecError as exc:
            with gitea.lock:
                gitea.invalid.append(f"{self.command} {path}: {exc}")
            self._send_json(422, {"message": f"invalid request: {exc}", "url": f"{gitea.url}/api/swagger"})
            return 422
        with gitea.lock:
            injected = gitea.fail_next.pop(0) if gitea.fail_next else 0
        if injected:
            self._send_json(injected, {"message": "injected failure", "url": f"{gitea.url}/api/swagger"})
            return injected
        ok, user = self._auth_user()
        if not ok:
            answer = gitea.api_error(401, "user does not exist [uid: 0, name: ]")
        else:
            try:
                answer = gitea.handle_api(req, user)
            except ApiAnswer as exc:
                answer = exc
        if gitea.check_responses and answer.status != 501 and answer.status != 401:
            for err in gitea.validator.check_response(req.operation, answer.status, answer.body):
                with gitea.lock:
                    gitea.response_errors.append(f"{self.command} {path} -> {answer.status}: {err}")
        self._send_json(answer.status, answer.body)
        return answer.status

    def _handle_git(self, path: str, query: str, body: bytes) -> int:
        gitea = self.gitea
        m = _GIT_PATH.match(path)
        assert m is not None
        owner, repo, rest = unquote(m.group(1)), unquote(m.group(2)), m.group(3)
        with gitea.lock:
            injected = gitea.fail_next_git.pop(0) if gitea.fail_next_git else 0
        if injected:
            self._send(injected, b"injected failure\n", {"Content-Type": "text/plain;charset=utf-8"})
            return injected
        denied = gitea.git_access(self.command, owner, repo, rest, query, self.headers.get("Authorization"))
        if denied is not None:
            status, text, _ = denied
            extra = {"WWW-Authenticate": 'Basic realm="Gitea"'} if status == 401 else {}
            self._send(status, (text + "\n").encode(), {"Content-Type": "text/plain;charset=utf-8", **extra})
            return status
        _, user = self._auth_user()
        env = {
            "PATH": "/usr/bin:/bin",
            "GIT_PROJECT_ROOT": str(gitea.git_root),
            "GIT_HTTP_EXPORT_ALL": "1",
            "PATH_INFO": f"/{owner.lower()}/{repo.lower()}.git/{rest}",
            "REQUEST_METHOD": self.command,
            "QUERY_STRING": query,
            "CONTENT_TYPE": self.headers.get("Content-Type", ""),
            "CONTENT_LENGTH": str(len(body)),
            "REMOTE_ADDR": self.client_address[0],
            "GIT_CONFIG_NOSYSTEM": "1",
            "HOME": str(gitea.root),
        }
        if user is not None:
            env["REMOTE_USER"] = user.login
        for header, var in (("Content-Encoding", "HTTP_CONTENT_ENCODING"), ("Git-Protocol", "GIT_PROTOCOL")):
            if self.headers.get(header):
                env[var] = self.headers[header]
        proc = subprocess.run([GIT_HTTP_BACKEND], input=body, env=env, capture_output=True, timeout=120)
        head, _, payload = proc.stdout.partition(b"\r\n\r\n")
        if not _ and b"\n\n" in proc.stdout:
            head, _, payload = proc.stdout.partition(b"\n\n")
        status, headers = 200, {}
        for line in head.decode("latin-1").splitlines():
            name, _, value = line.partition(":")
            if name.lower() == "status":
                status = int(value.strip().split()[0])
            elif name:
                headers[name.strip()] = value.strip()
        if rest == "git-receive-pack" and status == 200:
            with gitea.lock:
                rec = gitea.repos.get((owner.lower(), repo.lower()))
                if rec:
                    rec.updated_at = _now()
        self._send(status, payload, headers)
        return status
