"""The Gitea test double itself: its spec validator, its API answers, and its git over HTTP."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.gitea_server import SPEC_PATH, GiteaServer, SpecError, SwaggerValidator
from tests.support.gitea import git_auth_args, make_archive

JSON = {"content-type": "application/json"}


@pytest.fixture(scope="module")
def validator() -> SwaggerValidator:
    return SwaggerValidator(json.loads(SPEC_PATH.read_text()))


@pytest.fixture
def server(tmp_path: Path) -> Iterator[GiteaServer]:
    with GiteaServer(tmp_path / "gitea") as srv:
        yield srv


def check(v: SwaggerValidator, method: str, path: str, body: object = None, query: str = "", headers=None):
    from urllib.parse import parse_qs

    raw = b"" if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    return v.check_request(method, path, parse_qs(query, keep_blank_values=True), headers or JSON, raw)


# ---------------------------------------------------------------- validator


def test_valid_requests_match_their_operation(validator: SwaggerValidator) -> None:
    assert check(validator, "GET", "/api/v1/user").operation["operationId"] == "userGetCurrent"
    req = check(validator, "POST", "/api/v1/orgs/wg/repos", {"name": "docs", "private": True, "auto_init": False})
    assert req.operation["operationId"] == "createOrgRepo" and req.path_params == {"org": "wg"}
    assert check(validator, "PUT", "/api/v1/repos/a/b/topics", {"topics": ["x"]}).body == {"topics": ["x"]}
    # A literal segment wins over a template: /users/search is not the user named "search".
    assert check(validator, "GET", "/api/v1/users/search").operation["operationId"] == "userSearch"
    assert check(validator, "GET", "/api/v1/repos/a/b/topics", query="page=2&limit=10")


@pytest.mark.parametrize("method, path, body, query, why", [
    ("GET", "/api/v1/no/such/endpoint", None, "", "no path template"),
    ("GET", "/elsewhere/user", None, "", "outside the API base path"),
    ("POST", "/api/v1/user", {"name": "x"}, "", "POST is not an operation"),
    ("POST", "/api/v1/user/repos", {"name": 5}, "", "5 is not of type 'string'"),
    ("POST", "/api/v1/user/repos", {"private": True}, "", "'name' is a required property"),
    ("POST", "/api/v1/user/repos", {"name": "x", "trust_model": "anyone"}, "", "is not one of"),
    ("POST", "/api/v1/user/repos", {"name": "x", "private": "yes"}, "", "is not of type 'boolean'"),
    ("POST", "/api/v1/admin/users/bob/repos", None, "", "requires a JSON body"),
    ("PUT", "/api/v1/repos/a/b/topics", {"topics": "docs"}, "", "is not of type 'array'"),
    ("POST", "/api/v1/user/repos", b"{not json", "", "not valid JSON"),
    ("GET", "/api/v1/user", {"x": 1}, "", "takes no request body"),
    ("GET", "/api/v1/repos/a/b/topics", None, "page=two", "must be an integer"),
    ("GET", "/api/v1/repos/a/b/topics", None, "colour=red", "not in the spec"),
])
def test_invalid_requests_are_rejected(validator: SwaggerValidator, method, path, body, query, why) -> None:
    with pytest.raises(SpecError, match=why.replace("(", r"\(").replace("'", ".")):
        check(validator, method, path, body, query)


def test_content_type_must_be_one_the_operation_consumes(validator: SwaggerValidator) -> None:
    with pytest.raises(SpecError, match="Content-Type"):
        check(validator, "POST", "/api/v1/user/repos", {"name": "x"}, headers={"content-type": "text/xml"})


def test_response_shapes_are_checked(validator: SwaggerValidator) -> None:
    op = validator.spec["paths"]["/repos/{owner}/{repo}"]["get"]
    assert validator.check_response(op, 200, {"id": "seven"}) == ["id: 'seven' is not of type 'integer'"]
    assert validator.check_response(op, 418, {}) == ["status 418 is not a documented response"]
    assert validator.check_response(op, 200, {"id": 7, "name": "x"}) == []


# ---------------------------------------------------------------- API over HTTP


def test_malformed_request_over_http_gets_422_and_is_recorded(server: GiteaServer) -> None:
    token = server.add_user("alice")
    resp = requests.post(f"{server.url}/api/v1/user/repos", json={"name": 5},
                         headers={"Authorization": f"token {token}"}, timeout=10)
    assert resp.status_code == 422
    assert set(resp.json()) == {"message", "url"} and "not of type 'string'" in resp.json()["message"]
    assert len(server.invalid) == 1 and "POST /api/v1/user/repos" in server.invalid[0]
    assert server.repos == {}


def test_auth_token_bearer_and_failures(server: GiteaServer) -> None:
    token = server.add_user("alice")
    for header in (f"token {token}", f"Bearer {token}"):
        resp = requests.get(f"{server.url}/api/v1/user", headers={"Authorization": header}, timeout=10)
        assert resp.status_code == 200 and resp.json()["login"] == "alice"
    assert requests.get(f"{server.url}/api/v1/user", timeout=10).status_code == 401
    bad = requests.get(f"{server.url}/api/v1/user", headers={"Authorization": "token nope"}, timeout=10)
    assert bad.status_code == 401 and "message" in bad.json()
    assert server.response_errors == [] and server.invalid == []


def test_gitea_answers_and_rules(server: GiteaServer) -> None:
    token = server.add_user("alice")
    server.add_org("wg", members={"alice": "reader"})
    h = {"Authorization": f"token {token}"}
    api = f"{server.url}/api/v1"
    assert requests.get(f"{api}/users/ghost", headers=h, timeout=10).status_code == 404
    assert requests.get(f"{api}/orgs/alice", headers=h, timeout=10).status_code == 404  # a user is no org
    assert requests.get(f"{api}/orgs/WG", headers=h, timeout=10).json()["username"] == "wg"
    made = requests.post(f"{api}/user/repos", json={"name": "docs", "private": True}, headers=h, timeout=10)
    assert made.status_code == 201 and made.json()["full_name"] == "alice/docs" and made.json()["empty"] is True
    assert requests.post(f"{api}/user/repos", json={"name": "DOCS"}, headers=h, timeout=10).status_code == 409
    for bad in ("bad name", "x.git", ".."):
        assert requests.post(f"{api}/user/repos", json={"name": bad}, headers=h, timeout=10).status_code == 422
    denied = requests.post(f"{api}/orgs/wg/repos", json={"name": "docs"}, headers=h, timeout=10)
    assert denied.status_code == 403 and "not allowed" in denied.json()["message"]
    topics = requests.put(f"{api}/repos/alice/docs/topics", json={"topics": ["Bad Topic"]}, headers=h, timeout=10)
    assert topics.status_code == 422 and topics.json()["invalidTopics"] == ["bad topic"]
    # A private repository is invisible to others.
    other = server.add_user("eve")
    assert requests.get(f"{api}/repos/alice/docs", headers={"Authorization": f"token {other}"},
                        timeout=10).status_code == 404
    assert server.invalid == [] and server.response_errors == []


def test_spec_valid_but_unimplemented_is_recorded(server: GiteaServer) -> None:
    token = server.add_user("alice")
    resp = requests.get(f"{server.url}/api/v1/repos/issues/search", headers={"Authorization": f"token {token}"},
                        timeout=10)
    assert resp.status_code == 501 and server.unimplemented and server.invalid == []


# ---------------------------------------------------------------- git over HTTP


def _git(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`git` as a user would run it, with no credential helper, config or prompt of this machine."""
    return subprocess.run(["git", *args], capture_output=True, text=True, timeout=60,
                          env={"PATH": "/usr/bin:/bin", "GIT_TERMINAL_PROMPT": "0", "HOME": str(tmp_path)})


def _git_push(tmp_path: Path, url: str, auth: list[str]) -> subprocess.CompletedProcess[str]:
    return _git(tmp_path, *auth, "-C", str(tmp_path / "wd" / "archive"), "push", url, "main")


def test_push_to_a_repo_never_created_is_403(tmp_path: Path, server: GiteaServer) -> None:
    token = server.add_user("alice")
    make_archive(tmp_path / "wd")
    proc = _git_push(tmp_path, f"{server.url}/alice/never.git", git_auth_args(token))
    assert proc.returncode != 0 and "Push to create is not enabled" in proc.stderr
    assert any(r.kind == "git" and r.status == 403 for r in server.requests)
    assert not server.git_dir("alice", "never").exists()


def test_git_push_needs_the_token_and_then_works(tmp_path: Path, server: GiteaServer) -> None:
    token = server.add_user("alice")
    server.add_repo("alice", "docs", private=False)
    url = f"{server.url}/alice/docs.git"
    head = make_archive(tmp_path / "wd")[-1]
    anon = _git_push(tmp_path, url, [])
    assert anon.returncode != 0 and server.main_sha("alice", "docs") is None
    wrong = _git_push(tmp_path, url, git_auth_args("0" * 40))
    assert wrong.returncode != 0 and server.main_sha("alice", "docs") is None
    ok = _git_push(tmp_path, url, git_auth_args(token))
    assert ok.returncode == 0, ok.stderr
    assert server.main_sha("alice", "docs") == head
    # Public: anyone can clone; private would need the token.
    subprocess.run(["git", "clone", "-q", url, str(tmp_path / "anon")], check=True, capture_output=True, timeout=60)
    server.repos[("alice", "docs")].private = True
    hidden = _git(tmp_path, "clone", "-q", url, str(tmp_path / "anon2"))
    assert hidden.returncode != 0 and not (tmp_path / "anon2" / ".git").exists()
