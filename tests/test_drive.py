"""The Drive client: rate limit, retries (backoff, Retry-After), credentials, per-thread connections."""

from __future__ import annotations

import email.utils
import json
import threading
import time
from pathlib import Path

import pytest

from pipeline.drive import DriveCallError, DriveClient, RetryPolicy, ensure_fresh, load_credentials
from pipeline.drive.ratelimit import RateLimiter
from pipeline.drive.retry import error_message, error_reason, is_retryable, parse_retry_after
from pipeline.errors import BadInput
from tests.support.pull import new_dataset, running, service_account_file, token_env

FAST = RetryPolicy(tries=8, base=0.005, cap=0.05)


def _client(emu, **kw) -> DriveClient:  # type: ignore[no-untyped-def]
    return DriveClient(load_credentials(None), endpoint=emu.url, max_qps=kw.pop("max_qps", 500), retry=kw.pop("retry", FAST), **kw)


def _get_root(client: DriveClient, root: str) -> dict:
    return client.call(lambda s: s.files().get(fileId=root, fields="id,name"), f"folder {root}")


def test_rate_limiter_holds_the_rate_across_threads() -> None:
    limiter = RateLimiter(qps=40, burst=1)
    start = time.monotonic()
    threads = [threading.Thread(target=lambda: [limiter.acquire() for _ in range(5)]) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert time.monotonic() - start >= 19 / 40 - 0.02  # 20 slots, 1/40 s apart


def test_rate_limiter_lets_one_burst_through_then_spaces_requests() -> None:
    limiter = RateLimiter(qps=4, burst=4)  # pull passes burst=jobs: every worker starts at once
    assert [limiter.acquire() for _ in range(4)] == [0.0] * 4
    assert 0 < limiter.acquire() <= 0.25  # the fifth waits for the next slot


def test_retry_policy_never_waits_less_than_retry_after() -> None:
    policy = RetryPolicy(base=0.01, cap=0.02)
    assert all(policy.delay(3, 2.0) == 2.0 for _ in range(20))
    assert all(0 <= policy.delay(3, None) <= 0.02 for _ in range(20))
    assert RetryPolicy(max_retry_after=5).delay(0, 3600) == 5
    assert parse_retry_after("7") == 7
    future = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 25 < (parse_retry_after(future) or 0) <= 31
    assert parse_retry_after("soon") is None


def test_which_errors_are_retried() -> None:
    body = b'{"error": {"code": 403, "errors": [{"reason": "userRateLimitExceeded"}], "message": "slow down"}}'
    assert error_reason(body) == "userRateLimitExceeded" and error_message(body) == "slow down"
    assert error_reason(b'{"error": {"details": [{"reason": "RATE_LIMIT_EXCEEDED"}]}}') == "RATE_LIMIT_EXCEEDED"
    assert error_reason(b'{"error": {"code": 503, "status": "UNAVAILABLE"}}') == "UNAVAILABLE"
    # A proxy's HTML page or an odd JSON shape gives no reason and no message, never an exception.
    for odd in (b"", b"<html>502 Bad Gateway</html>", b"[1]", b'{"error": "x"}', b'{"error": {"errors": {"a": 1}}}',
                b'{"error": {"message": null}}', b"\xff\xfe"):
        assert (error_reason(odd), error_message(odd)) == ("", ""), odd
    assert is_retryable(403, "userRateLimitExceeded") and is_retryable(429, "") and is_retryable(503, "")
    assert not is_retryable(403, "insufficientFilePermissions") and not is_retryable(404, "notFound")


def test_calls_survive_every_fault_kind_and_count_every_attempt(token_env: str) -> None:
    ds = new_dataset()
    with running(ds, fault_rate=0.5, seed=3, faults=("429", "403", "500", "503")) as emu:
        client = _client(emu)
        for _ in range(30):
            assert _get_root(client, emu.root_folder_id)["name"] == "Working Group"
        assert {k for _, k in emu.faults_injected} == {"429", "403", "500", "503"}
        assert client.requests == emu.request_count == 30 + len(emu.faults_injected)


def test_dropped_connections_are_retried(token_env: str) -> None:
    with running(new_dataset(), fault_rate=0.5, seed=4, faults=("drop",)) as emu:
        client = _client(emu)
        for _ in range(20):
            assert _get_root(client, emu.root_folder_id)["id"] == emu.root_folder_id
        assert len(emu.faults_injected) >= 5
        # httplib2 itself resends once on what looks like a stale keep-alive socket; the rest are ours.
        assert 20 < client.requests <= emu.request_count


def test_retry_after_is_honoured(token_env: str) -> None:
    ds = new_dataset()
    with running(ds, fault_rate=0.5, faults=("429",), seed=1, retry_after=1) as emu:
        client = _client(emu)
        start = time.monotonic()
        for _ in range(3):
            _get_root(client, emu.root_folder_id)
        assert emu.faults_injected, "seed should inject at least one 429"
        assert time.monotonic() - start >= len(emu.faults_injected) * 1.0


def test_giving_up_names_the_call(token_env: str) -> None:
    ds = new_dataset()
    with running(ds, fault_rate=1.0, faults=("503",)) as emu:
        client = _client(emu, retry=RetryPolicy(tries=3, base=0.001, cap=0.001))
        with pytest.raises(DriveCallError) as err:
            _get_root(client, emu.root_folder_id)
        assert err.value.exhausted
        assert err.value.message == f"folder {emu.root_folder_id}: gave up after 3 tries, last: HTTP 503 backendError"
        assert emu.request_count == 3


def test_not_found_is_not_retried(token_env: str) -> None:
    with running(new_dataset()) as emu:
        client = _client(emu)
        with pytest.raises(DriveCallError) as err:
            _get_root(client, "1nosuchfolder")
        assert err.value.status == 404 and not err.value.exhausted
        assert emu.request_count == 1


def test_bad_token_is_bad_input_without_the_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCPIPE_ACCESS_TOKEN", "ya29.wrong-secret")
    with running(new_dataset()) as emu:
        client = _client(emu)
        with pytest.raises(BadInput) as err:
            _get_root(client, emu.root_folder_id)
        assert "rejected" in err.value.message and "wrong-secret" not in err.value.message


def test_no_credentials_at_all_is_bad_input(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("DOCPIPE_ACCESS_TOKEN", raising=False)
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no gcloud well-known file
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path))
    monkeypatch.setattr("google.auth.compute_engine._metadata._NO_GCE_CHECK", True)  # no metadata server
    with pytest.raises(BadInput, match="no Drive credentials"):
        load_credentials(None)
    with pytest.raises(BadInput, match="does not exist"):
        load_credentials(tmp_path / "nope.json")
    (tmp_path / "junk.json").write_text('{"type": "external_account"}')
    with pytest.raises(BadInput, match="not a service-account"):
        load_credentials(tmp_path / "junk.json")


def test_authorized_user_file_loads_with_the_readonly_scope(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # google-auth always refreshes user credentials at Google (it ignores their token_uri), so only
    # loading is checked here; the emulator round trip is the service-account test below.
    key = tmp_path / "user.json"
    key.write_text(json.dumps({"type": "authorized_user", "client_id": "c1", "client_secret": "s1",
                               "refresh_token": "1//refresh-secret"}))
    loaded = load_credentials(key)
    assert loaded.credentials.refresh_token == "1//refresh-secret"
    assert loaded.credentials.scopes == ["https://www.googleapis.com/auth/drive.readonly"]
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(key))
    monkeypatch.delenv("DOCPIPE_ACCESS_TOKEN", raising=False)
    assert load_credentials(None).source == "Application Default Credentials"


def test_service_account_key_uses_its_token_uri(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DOCPIPE_ACCESS_TOKEN", raising=False)
    with running(new_dataset(), token=None) as emu:
        key = service_account_file(tmp_path / "sa.json", emu.url + "token")
        ensure_fresh(load_credentials(key))
        client = DriveClient(load_credentials(key), endpoint=emu.url, retry=FAST)
        assert _get_root(client, emu.root_folder_id)["id"] == emu.root_folder_id
        emu.revoked.add("puller@docpipe-test.iam.gserviceaccount.com")
        with pytest.raises(BadInput, match="rejected"):
            ensure_fresh(load_credentials(key))


def test_each_thread_has_its_own_connection(token_env: str) -> None:
    with running(new_dataset()) as emu:
        client = _client(emu)
        seen: list[object] = []
        threads = [threading.Thread(target=lambda: (seen.append(client._http()), _get_root(client, emu.root_folder_id)))
                   for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len({id(h) for h in seen}) == 4
        assert client._http() is client._http()


# ------------------------------------------------------------------ the changes feed, sorted into the tree


def _change(fid: str, file: dict | None = None, removed: bool = False, time: str = "2030-01-01T00:00:00.000Z") -> dict:
    out: dict = {"changeType": "file", "fileId": fid, "removed": removed, "time": time}
    if file is not None:
        out["file"] = {"id": fid, **file}
    return out


def test_feed_changes_are_sorted_into_the_tree() -> None:
    from pipeline.drive.changes import apply, chain
    from pipeline.drive.walk import DOC_MIME, FOLDER_MIME

    root = "1Root"
    folders = {"1A": {"name": "A", "parent": root}, "1B": {"name": "B", "parent": "1A"}, "1Gone": {"name": "G", "parent": root}}
    known = {"1InB", "1Leaves", "1Trashed", "1Deleted"}
    doc = {"mimeType": DOC_MIME, "version": "9", "name": "d"}
    feed = apply([
        _change("1A", {"mimeType": FOLDER_MIME, "name": "A2", "parents": [root]}),          # renamed
        _change("1New", {"mimeType": FOLDER_MIME, "name": "N", "parents": ["1B"]}),         # created inside
        _change("1Gone", {"mimeType": FOLDER_MIME, "name": "G", "parents": ["1Else"]}),     # moved out
        _change("1InB", {**doc, "parents": ["1B"]}),                                        # edited
        _change("1Leaves", {**doc, "parents": ["1Else"]}),                                  # moved out
        _change("1Trashed", {**doc, "parents": [root], "trashed": True, "trashedTime": "2030-01-02T00:00:00.000Z"}),
        _change("1Deleted", removed=True),
        _change("1Stranger", {**doc, "parents": ["1Else"]}),                                # never in the tree
        _change("1Arrives", {**doc, "parents": ["1New"]}),                                  # into the new folder
    ], root, folders, known)
    assert sorted(feed.docs) == ["1Arrives", "1InB"]
    assert feed.docs["1InB"].folder_path == ["A2", "B"] and feed.docs["1Arrives"].folder_ids == ["1A", "1B", "1New"]
    assert feed.removed == {"1Leaves": {"time": "2030-01-01T00:00:00.000Z", "reason": "removed"},
                            "1Trashed": {"time": "2030-01-02T00:00:00.000Z", "reason": "trashed"},
                            "1Deleted": {"time": "2030-01-01T00:00:00.000Z", "reason": "deleted"}}
    assert feed.moved_folders == {"1A", "1Gone"} and feed.new_folders == ["1New"] and "1Gone" not in folders
    assert chain(folders, root, "1B") == (["A2", "B"], ["1A", "1B"]) and not feed.needs_walk
    assert "1Stranger" not in feed.touched


def test_feed_asks_for_a_walk_when_a_shortcut_changes() -> None:
    from pipeline.drive.changes import apply
    from pipeline.drive.walk import SHORTCUT_MIME

    feed = apply([_change("1S", {"mimeType": SHORTCUT_MIME, "name": "s", "parents": ["1Root"]})], "1Root", {}, set())
    assert feed.needs_walk
