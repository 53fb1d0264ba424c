"""The Drive emulator, driven by the real google-api-python-client and google-auth."""

from __future__ import annotations

import http.client
import json
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
from pathlib import Path

import httplib2
import pytest
from googleapiclient.errors import HttpError

from pipeline.emulator import DOC_MIME, Dataset, Emulator, generate_dataset, load_dataset, save_dataset
from pipeline.emulator import query as qlang
from pipeline.errors import BadInput
from tests.support.emulator import (
    TOKEN,
    authorized_get,
    drive_service,
    error_of,
    sample_data_dir,
    sample_emulator,
    small_emulator,
)

IN_ROOT = "'{}' in parents and trashed = false"


def flat_dataset(n_docs: int) -> Dataset:
    ds = Dataset("1PagingRootxxxxxxxxxxxxxxxxxxxxxx", "Paging")
    ds.add_user("u", "U Ser", "u@example.org")
    for i in range(n_docs):
        fid = ds.add_doc(f"doc {i:03d}")
        ds.add_revision(fid, f"<html><body><p>doc {i}</p></body></html>", "u", "2024-01-02T00:00:00Z")
    return ds


def list_all(svc, q: str, page_size: int) -> list[list[str]]:
    pages, token = [], None
    while True:
        resp = svc.files().list(q=q, pageSize=page_size, pageToken=token, fields="nextPageToken,files(id,name)").execute()
        pages.append([f["name"] for f in resp["files"]])
        token = resp.get("nextPageToken")
        if not token:
            return pages


# ---------------------------------------------------------------- files.list


@pytest.mark.parametrize("n_docs,page_size,expected_pages", [(10, 10, [10]), (11, 10, [10, 1]), (20, 10, [10, 10]), (1, 100, [1])])
def test_files_list_paging_edges(n_docs, page_size, expected_pages):
    with Emulator(flat_dataset(n_docs), token=TOKEN) as emu:
        svc = drive_service(emu)
        pages = list_all(svc, IN_ROOT.format(emu.root_folder_id), page_size)
    assert [len(p) for p in pages] == expected_pages
    names = [n for p in pages for n in p]
    assert names == sorted(f"doc {i:03d}" for i in range(n_docs))


def test_files_list_default_and_selected_fields(small_emulator):
    svc = drive_service(small_emulator)
    q = IN_ROOT.format(small_emulator.root_folder_id)
    default = svc.files().list(q=q).execute()
    assert set(default) == {"kind", "incompleteSearch", "files"}
    assert all(set(f) == {"kind", "id", "name", "mimeType"} for f in default["files"])
    chosen = svc.files().list(q=q, fields="files(id,version,parents,owners/displayName)", supportsAllDrives=True,
                              includeItemsFromAllDrives=True).execute()
    assert set(chosen) == {"files"}
    doc = next(f for f in chosen["files"] if "owners" in f)
    assert set(doc) == {"id", "version", "parents", "owners"}
    assert doc["parents"] == [small_emulator.root_folder_id]
    assert set(doc["owners"][0]) == {"displayName"}
    assert doc["version"].isdigit()


def test_files_list_bad_field_query_and_page_token_are_400(small_emulator):
    svc = drive_service(small_emulator)
    with pytest.raises(HttpError) as bad_field:
        svc.files().list(fields="files(id,noSuchField)").execute()
    assert bad_field.value.status_code == 400
    assert error_of(bad_field.value)["error"]["errors"][0]["reason"] == "invalidParameter"
    with pytest.raises(HttpError) as bad_q:
        svc.files().list(q="'x' in owners and").execute()
    body = error_of(bad_q.value)["error"]
    assert body["code"] == 400 and body["errors"][0] == {"message": "Invalid Value", "domain": "global", "reason": "invalid", "location": "q", "locationType": "parameter"}
    with pytest.raises(HttpError) as bad_token:
        svc.files().list(pageToken="bm9wZQ").execute()
    assert error_of(bad_token.value)["error"]["errors"][0]["location"] == "pageToken"
    with pytest.raises(HttpError) as too_big:
        svc.files().list(pageSize=1001).execute()
    assert too_big.value.status_code == 400


def test_folders_shortcuts_trash_and_non_docs_in_sample_data(sample_emulator):
    svc = drive_service(sample_emulator)
    fields = "files(id,name,mimeType,trashed,shortcutDetails,size)"
    root = svc.files().list(q=IN_ROOT.format(sample_emulator.root_folder_id), fields=fields).execute()["files"]
    names = {f["name"]: f for f in root}
    assert "old draft of mcp-376" not in names  # trashed
    assert {"mcp-0-readme", "mcp-369", "mcp-374", "mcp-376-cswg-workshop-virtual-desktops", "mcp-377", "Workshops", "workshop attendance"} <= set(names)
    assert names["Workshops"]["mimeType"] == "application/vnd.google-apps.folder"
    trashed = svc.files().list(q=f"'{sample_emulator.root_folder_id}' in parents and trashed = true", fields=fields).execute()["files"]
    assert [f["name"] for f in trashed] == ["old draft of mcp-376"]
    sub = svc.files().list(q=IN_ROOT.format(names["Workshops"]["id"]), fields=fields).execute()["files"]
    by_name = {f["name"]: f for f in sub}
    shortcut = by_name["mcp-376 (shortcut)"]
    assert shortcut["shortcutDetails"] == {"targetId": names["mcp-376-cswg-workshop-virtual-desktops"]["id"], "targetMimeType": DOC_MIME}
    pdf = by_name["desktop-architecture.pdf"]
    assert pdf["mimeType"] == "application/pdf" and int(pdf["size"]) > 100
    content = svc.files().get_media(fileId=pdf["id"]).execute()
    assert content.startswith(b"%PDF-1.4") and len(content) == int(pdf["size"])
    docs_only = svc.files().list(q=f"'{names['Workshops']['id']}' in parents and mimeType = '{DOC_MIME}'", fields="files(name)").execute()
    assert docs_only["files"] == [{"name": "ws-go-promisegrid"}]


def test_query_terms_and_star_fields(sample_emulator):
    svc = drive_service(sample_emulator)
    root = sample_emulator.root_folder_id
    q = f"'{root}' in parents and trashed = false and (name contains 'MCP-37' or name = 'mcp-0-readme') and not mimeType = 'application/vnd.google-apps.folder'"
    names = [f["name"] for f in svc.files().list(q=q, orderBy="name desc", fields="files(name)").execute()["files"]]
    assert names == ["mcp-377", "mcp-376-cswg-workshop-virtual-desktops", "mcp-374", "mcp-0-readme"]
    recent = svc.files().list(q=f"'{root}' in parents and modifiedTime > '2024-06-27T17:00:00' and trashed = false", fields="files(name)").execute()
    assert {f["name"] for f in recent["files"]} == {"mcp-0-readme", "mcp-369", "mcp-376-cswg-workshop-virtual-desktops"}
    full = svc.files().list(q=q, pageSize=1, fields="*").execute()
    assert "nextPageToken" in full and {"id", "version", "webViewLink", "capabilities", "exportLinks"} <= set(full["files"][0])
    assert full["files"][0]["capabilities"]["canReadRevisions"] is True
    star = svc.files().list(q=q, pageSize=1, fields="files(*)").execute()
    assert set(star) == {"files"} and star["files"][0] == full["files"][0]
    assert [f["name"] for f in svc.files().list(q="name contains 'eadme'", fields="files(name)").execute()["files"]] == []
    assert [f["name"] for f in svc.files().list(q="name contains 'WORKSHOP'", fields="files(name)").execute()["files"]] == ["mcp-376-cswg-workshop-virtual-desktops", "workshop attendance", "Workshops"]


def test_query_precedence_and_chains():
    ds = flat_dataset(4)
    ds.trash(ds.add_doc("doc 001 copy"), "2024-01-03T00:00:00Z")
    files = [f for f in ds.files.values() if f.id != ds.root_id]

    def names(q: str) -> list[str]:
        pred = qlang.parse(q)
        return sorted(f.name for f in files if pred(f))

    # `and` binds tighter than `or`, as in Drive
    assert names("name = 'doc 000' or name contains 'doc' and trashed = true") == ["doc 000", "doc 001 copy"]
    assert names("(name = 'doc 000' or name contains 'doc') and trashed = true") == ["doc 001 copy"]
    assert names("name = 'doc 000' or name = 'doc 002' or name = 'doc 003'") == ["doc 000", "doc 002", "doc 003"]
    assert names("not trashed = true and not name = 'doc 000' and modifiedTime >= '2024-01-02T00:00:00Z'") == ["doc 001", "doc 002", "doc 003"]
    with pytest.raises(qlang.QueryError):
        qlang.parse("name = 'a' or")


def test_files_get_and_404_shape(small_emulator):
    svc = drive_service(small_emulator)
    root = svc.files().get(fileId=small_emulator.root_folder_id, fields="id,name,mimeType,webViewLink").execute()
    assert root["mimeType"] == "application/vnd.google-apps.folder"
    assert root["webViewLink"] == f"https://drive.google.com/drive/folders/{root['id']}"
    with pytest.raises(HttpError) as err:
        svc.files().get(fileId="1doesNotExist", supportsAllDrives=True).execute()
    assert err.value.status_code == 404
    assert error_of(err.value) == {"error": {
        "code": 404, "message": "File not found: 1doesNotExist.", "status": "NOT_FOUND",
        "errors": [{"message": "File not found: 1doesNotExist.", "domain": "global", "reason": "notFound", "location": "fileId", "locationType": "parameter"}],
    }}


# ---------------------------------------------------------------- revisions and exports


def test_revisions_default_fields_paging_and_export(sample_emulator):
    svc = drive_service(sample_emulator)
    ds = sample_emulator.ds
    doc = next(f for f in ds.docs() if f.name.startswith("mcp-376"))
    default = svc.revisions().list(fileId=doc.id).execute()
    assert set(default) == {"kind", "revisions"}
    assert all(set(r) == {"kind", "id", "mimeType", "modifiedTime"} for r in default["revisions"])
    assert len(default["revisions"]) == len(doc.revisions) >= 8

    seen, token = [], None
    while True:
        page = svc.revisions().list(fileId=doc.id, pageSize=3, pageToken=token,
                                    fields="nextPageToken,revisions(id,modifiedTime,lastModifyingUser,exportLinks)").execute()
        seen.extend(page["revisions"])
        token = page.get("nextPageToken")
        if not token:
            break
    assert [r["id"] for r in seen] == [r.id for r in doc.revisions]
    assert len({r["lastModifyingUser"]["displayName"] for r in seen}) >= 3
    jj = next(r["lastModifyingUser"] for r in seen if r["lastModifyingUser"]["displayName"] == "JJ")
    assert "emailAddress" not in jj and jj["permissionId"]
    link = seen[0]["exportLinks"]["text/html"]
    assert link.startswith(sample_emulator.url)
    status, headers, body = authorized_get(sample_emulator, link)
    assert status == 200 and headers["content-type"].startswith("text/html")
    assert body == doc.revisions[0].html.encode()
    assert authorized_get(sample_emulator, link, token=None)[0] == 401
    last = svc.files().export(fileId=doc.id, mimeType="text/html").execute()
    assert last == doc.revisions[-1].html.encode()


def test_export_images_are_absolute_and_served(sample_emulator):
    ds = sample_emulator.ds
    doc = next(f for f in ds.docs() if f.name == "ws-go-promisegrid")
    svc = drive_service(sample_emulator)
    link = svc.revisions().list(fileId=doc.id, fields="revisions(exportLinks)").execute()["revisions"][-1]["exportLinks"]["text/html"]
    html = authorized_get(sample_emulator, link)[2].decode()
    srcs = re.findall(r'<img[^>]* src="([^"]+)"', html)
    assert len(srcs) == 1 and srcs[0].startswith(sample_emulator.url + "docsz/")
    resp, data = httplib2.Http(timeout=10).request(srcs[0].replace("&amp;", "&"))
    assert resp.status == 200 and resp["content-type"] == "image/png" and data.startswith(b"\x89PNG")
    wrong_key = srcs[0].split("?")[0] + "?key=wrong"
    assert httplib2.Http(timeout=10).request(wrong_key)[0].status == 404


def test_denied_revisions_and_deleted_docs(small_emulator):
    svc = drive_service(small_emulator)
    ds = small_emulator.ds
    a, b = sorted(f.id for f in ds.docs())[:2]
    ds.deny_revisions(a)
    with pytest.raises(HttpError) as denied:
        svc.revisions().list(fileId=a).execute()
    assert denied.value.status_code == 403
    assert error_of(denied.value)["error"]["errors"][0]["reason"] == "insufficientFilePermissions"
    ds.delete(b, "2024-03-01T00:00:00Z")
    with pytest.raises(HttpError) as gone:
        svc.revisions().list(fileId=b).execute()
    assert gone.value.status_code == 404


# ---------------------------------------------------------------- comments


def test_comments_need_fields_and_limit_page_size(sample_emulator):
    svc = drive_service(sample_emulator)
    doc = next(f for f in sample_emulator.ds.docs() if f.name.startswith("mcp-376"))
    with pytest.raises(HttpError) as no_fields:
        svc.comments().list(fileId=doc.id).execute()
    err = error_of(no_fields.value)["error"]
    assert err["code"] == 400 and err["errors"][0]["reason"] == "required" and err["errors"][0]["location"] == "fields"
    with pytest.raises(HttpError) as too_big:
        svc.comments().list(fileId=doc.id, pageSize=101, fields="comments(id)").execute()
    assert too_big.value.status_code == 400


def test_comment_threads_replies_resolution_and_deleted(sample_emulator):
    svc = drive_service(sample_emulator)
    doc = next(f for f in sample_emulator.ds.docs() if f.name.startswith("mcp-376"))
    fields = ("nextPageToken,comments(id,createdTime,modifiedTime,author(displayName,photoLink),content,htmlContent,"
              "quotedFileContent,anchor,resolved,deleted,replies(id,createdTime,author,content,action,deleted))")
    visible = svc.comments().list(fileId=doc.id, fields=fields).execute()["comments"]
    everything, token = [], None
    while True:
        page = svc.comments().list(fileId=doc.id, fields=fields, includeDeleted=True, pageSize=1, pageToken=token).execute()
        everything.extend(page["comments"])
        token = page.get("nextPageToken")
        if not token:
            break
    assert len(everything) == len(visible) + 1 == 4
    deleted = [c for c in everything if c["deleted"]]
    assert len(deleted) == 1 and "content" not in deleted[0]
    by_text = {c["content"][:20]: c for c in visible}
    resolved = by_text["Do we know the annua"]
    assert resolved["resolved"] is True and resolved["replies"][-1]["action"] == "resolve"
    reopened = by_text["Should the desktops "]
    assert [r.get("action") for r in reopened["replies"]] == ["resolve", "reopen"] and reopened["resolved"] is False
    assert reopened["quotedFileContent"] == {"mimeType": "text/html", "value": "desktops"}
    for c in everything:
        assert "emailAddress" not in c["author"] and "permissionId" not in c["author"]
        for r in c.get("replies", []):
            assert set(r["author"]) <= {"kind", "displayName", "photoLink", "me"}
    assert [c["createdTime"] for c in everything] == sorted(c["createdTime"] for c in everything)


# ---------------------------------------------------------------- live edits and changes


def test_live_edits_bump_version_and_feed_changes(small_emulator):
    svc = drive_service(small_emulator)
    ds = small_emulator.ds
    doc = sorted(ds.docs(), key=lambda f: f.id)[0]
    before = svc.files().get(fileId=doc.id, fields="version,modifiedTime").execute()
    start = svc.changes().getStartPageToken().execute()["startPageToken"]
    assert svc.changes().list(pageToken=start).execute()["changes"] == []

    ds.add_comment(doc.id, "alice", "a new comment", "2030-01-01T00:00:00Z")
    after_comment = svc.files().get(fileId=doc.id, fields="version,modifiedTime").execute()
    assert int(after_comment["version"]) > int(before["version"])
    assert after_comment["modifiedTime"] == before["modifiedTime"]  # comments do not modify the file

    rid = ds.add_revision(doc.id, "<html><body><p>new</p></body></html>", "bob", "2030-01-02T00:00:00Z")
    after_rev = svc.files().get(fileId=doc.id, fields="version,modifiedTime").execute()
    assert int(after_rev["version"]) > int(after_comment["version"])
    assert after_rev["modifiedTime"] == "2030-01-02T00:00:00.000Z"
    assert svc.revisions().list(fileId=doc.id).execute()["revisions"][-1]["id"] == rid

    ds.rename(doc.id, "renamed", "2030-01-03T00:00:00Z")
    other = sorted(ds.docs(), key=lambda f: f.id)[1]
    ds.trash(other.id, "2030-01-04T00:00:00Z")
    ds.delete(other.id, "2030-01-05T00:00:00Z")
    changes = svc.changes().list(pageToken=start, pageSize=2, fields="nextPageToken,newStartPageToken,changes(fileId,removed,time,file(name))").execute()
    got = list(changes["changes"])
    while "nextPageToken" in changes:
        changes = svc.changes().list(pageToken=changes["nextPageToken"], pageSize=2, fields="nextPageToken,newStartPageToken,changes(fileId,removed,time,file(name))").execute()
        got.extend(changes["changes"])
    assert [c["fileId"] for c in got] == [doc.id, doc.id, doc.id, other.id, other.id]
    assert got[2]["file"]["name"] == "renamed"
    assert got[-1]["removed"] is True and "file" not in got[-1]
    assert changes["newStartPageToken"] == svc.changes().getStartPageToken().execute()["startPageToken"]


def test_changes_feed_tree_moves_expired_tokens_and_a_dropped_change(small_emulator):
    svc = drive_service(small_emulator)
    ds = small_emulator.ds
    a, b = sorted(ds.docs(), key=lambda f: f.id)[:2]
    start = svc.changes().getStartPageToken(supportsAllDrives=True).execute()["startPageToken"]
    folder = ds.add_folder("Spring", time="2030-01-01T00:00:00Z")
    ds.move(a.id, folder, "2030-01-02T00:00:00Z")
    ds.drop_next_change = True  # this edit never reaches the feed
    ds.add_revision(b.id, "<html><body><p>unseen</p></body></html>", "bob", "2030-01-03T00:00:00Z")
    ds.rename(folder, "Summer", "2030-01-04T00:00:00Z")
    fields = "newStartPageToken,changes(changeType,fileId,removed,time,file(name,parents,mimeType))"
    got = svc.changes().list(pageToken=start, fields=fields, supportsAllDrives=True, includeItemsFromAllDrives=True,
                             spaces="drive", restrictToMyDrive=False).execute()
    assert [(c["fileId"], c["changeType"], c["file"]["name"]) for c in got["changes"]] == [
        (folder, "file", "Summer"), (a.id, "file", a.name), (folder, "file", "Summer")]  # the file as it is now
    assert got["changes"][1]["file"]["parents"] == [folder] and got["changes"][1]["time"] == "2030-01-02T00:00:00.000Z"
    assert b.id not in [c["fileId"] for c in got["changes"]]
    ds.expire_page_tokens()
    with pytest.raises(HttpError) as err:
        svc.changes().list(pageToken=start).execute()
    assert err.value.resp.status == 410 and error_of(err.value)["error"]["errors"][0]["reason"] == "pageTokenExpired"
    fresh = got["newStartPageToken"]
    assert svc.changes().list(pageToken=fresh).execute()["changes"] == []  # the newest token still works
    with pytest.raises(HttpError) as err:
        svc.changes().list(pageToken="not-a-token").execute()
    assert err.value.resp.status == 400


def test_generator_builds_a_folder_tree_up_to_depth():
    ds = generate_dataset(docs=30, revisions=1, size=(500, 600), folders=40, depth=4)
    from pipeline.emulator.model import FOLDER_MIME

    folders = [f for f in ds.files.values() if f.mimeType == FOLDER_MIME and f.id != ds.root_id]
    depths = {len(ds.path_of(f.id)) + 1 for f in folders}
    assert len(folders) == 40 and depths == {1, 2, 3, 4}
    homes = {f.parents[0] for f in ds.docs()}
    assert len(homes) == 30 and ds.root_id in homes  # one doc per place while places last


# ---------------------------------------------------------------- auth


def test_auth_required(small_emulator):
    # (through google-auth a 401 makes the credentials refresh, which a bare token cannot do)
    status, headers, body = authorized_get(small_emulator, small_emulator.api_endpoint + "files", token="not-the-token")
    assert status == 401 and 'error="invalid_token"' in headers["www-authenticate"]
    assert json.loads(body)["error"]["status"] == "UNAUTHENTICATED"
    status, headers, body = authorized_get(small_emulator, small_emulator.api_endpoint + "files", token=None)
    assert status == 401 and headers["www-authenticate"].startswith("Bearer")
    assert json.loads(body)["error"]["errors"][0]["reason"] == "required"


def _service_account_file(tmp_path: Path, token_uri: str, email: str) -> Path:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()
    info = {
        "type": "service_account", "project_id": "docpipe-test", "private_key_id": "k1", "private_key": pem,
        "client_email": email, "client_id": "1234567890", "token_uri": token_uri,
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
    }
    path = tmp_path / "sa.json"
    path.write_text(json.dumps(info))
    return path


def test_service_account_and_authorized_user_through_google_auth(small_emulator, tmp_path):
    import google.auth.exceptions
    from google.oauth2 import credentials as user_credentials
    from google.oauth2 import service_account

    scopes = ["https://www.googleapis.com/auth/drive.readonly"]
    sa_path = _service_account_file(tmp_path, small_emulator.url + "token", "puller@docpipe-test.iam.gserviceaccount.com")
    sa = service_account.Credentials.from_service_account_file(str(sa_path), scopes=scopes)
    files = drive_service(small_emulator, credentials=sa).files().list(fields="files(id)").execute()["files"]
    assert files and sa.token.startswith("ya29.")
    assert any(p == "/token" for _m, p, _q in small_emulator.requests)

    user = user_credentials.Credentials(None, refresh_token="1//refresh", client_id="cid", client_secret="secret",
                                        token_uri=small_emulator.url + "token", scopes=scopes)
    assert drive_service(small_emulator, credentials=user).files().list().execute()["files"]

    small_emulator.revoked.add("puller@docpipe-test.iam.gserviceaccount.com")
    fresh = service_account.Credentials.from_service_account_file(str(sa_path), scopes=scopes)
    with pytest.raises(google.auth.exceptions.RefreshError, match="invalid_grant"):
        drive_service(small_emulator, credentials=fresh).files().list().execute()


# ---------------------------------------------------------------- faults and latency


def _fault_run(seed: int) -> tuple[list[tuple[int, str]], list[int]]:
    statuses = []
    with Emulator(flat_dataset(2), fault_rate=0.5, seed=seed, token=TOKEN, retry_after=0) as emu:
        host, port = urllib.parse.urlsplit(emu.url).netloc.split(":")
        for _ in range(40):
            # http.client, not httplib2: httplib2 silently re-sends after a dropped connection.
            conn = http.client.HTTPConnection(host, int(port), timeout=10)
            try:
                conn.request("GET", "/drive/v3/files", headers={"Authorization": f"Bearer {TOKEN}"})
                statuses.append(conn.getresponse().status)
            except (http.client.HTTPException, OSError):
                statuses.append(0)
            finally:
                conn.close()
        return list(emu.faults_injected), statuses


def test_faults_are_deterministic_per_seed():
    faults_a, statuses_a = _fault_run(7)
    faults_b, statuses_b = _fault_run(7)
    faults_c, _ = _fault_run(8)
    assert faults_a == faults_b and statuses_a == statuses_b
    assert faults_a != faults_c
    kinds = {k for _n, k in faults_a}
    assert kinds == {"429", "403", "500", "503", "drop"}
    assert 10 <= len(faults_a) <= 30
    code = {"429": 429, "403": 403, "500": 500, "503": 503, "drop": 0}
    for n, kind in faults_a:
        assert statuses_a[n - 1] == code[kind]
    assert statuses_a.count(200) == 40 - len(faults_a)


def test_fault_bodies_and_retry_after():
    with Emulator(flat_dataset(1), fault_rate=1.0, faults=("429",), token=TOKEN, retry_after=3) as emu:
        status, headers, body = authorized_get(emu, emu.api_endpoint + "files")
    assert status == 429 and headers["retry-after"] == "3"
    assert json.loads(body)["error"]["errors"][0]["reason"] == "rateLimitExceeded"
    with Emulator(flat_dataset(1), fault_rate=1.0, faults=("403",), token=TOKEN) as emu:
        with pytest.raises(HttpError) as err:
            drive_service(emu).files().list().execute()
    assert err.value.status_code == 403 and error_of(err.value)["error"]["errors"][0]["reason"] == "userRateLimitExceeded"


def test_latency_overlaps_across_keepalive_connections():
    with Emulator(flat_dataset(3), latency=0.2, token=TOKEN) as emu:
        errors: list[Exception] = []

        def worker() -> None:
            http = httplib2.Http(timeout=10)
            for _ in range(3):
                try:
                    resp, _ = http.request(emu.api_endpoint + "files", headers={"Authorization": f"Bearer {TOKEN}"})
                    assert resp.status == 200
                except Exception as exc:  # collected so the test reports it
                    errors.append(exc)

        threads = [threading.Thread(target=worker) for _ in range(16)]
        start = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.monotonic() - start
        assert not errors
        assert emu.request_count == 48
    assert elapsed < 48 * 0.2 / 4  # concurrent, not serialised


# ---------------------------------------------------------------- data format, sample-data, CLI


def test_sample_data_has_what_the_docs_promise():
    ds = load_dataset(sample_data_dir())
    docs = {f.name: f for f in ds.docs() if not f.trashed}
    for name in ("mcp-0-readme", "mcp-369", "mcp-374", "mcp-376-cswg-workshop-virtual-desktops", "mcp-377", "ws-go-promisegrid"):
        assert name in docs
    mcp376 = docs["mcp-376-cswg-workshop-virtual-desktops"]
    assert len(mcp376.revisions) >= 8 and len({r.user for r in mcp376.revisions}) >= 3
    first_lines = re.sub(r"<[^>]+>", "\n", mcp376.revisions[-1].html).split("\n")
    headers = [ln for ln in first_lines if re.match(r"(Name|Title|Status): ", ln)]
    assert headers[:3] == ["Name: mcp-376-cswg-workshop-virtual-desktops", "Title: virtual desktops", "Status: Final -- meeting notes, edit with care."]
    assert any(c.resolved for c in mcp376.comments) and any(c.replies for c in mcp376.comments)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in docs["mcp-377"].revisions[-1].html
    ws = docs["ws-go-promisegrid"]
    assert ds.path_of(ws.id) == ["Workshops"] and ws.images
    html = ws.revisions[-1].html
    for needle in (">Lab desktop<", "base: debian-novnc", "packages: golang-go git curl", "ports: 8080", "memory: 2g", "lst-kix_", "google.com/url?q="):
        assert needle in html
    assert any(u.emailAddress is None for u in ds.users.values()) and len(ds.users) >= 4
    assert ds.files["1mcp374OrganizationJj4Hh3Gg2Ff1Dd"].renames  # title history


def _thread(c) -> tuple:
    replies = [(r.id, r.author, r.createdTime, r.modifiedTime, r.content, r.action, r.deleted) for r in c.replies]
    return (c.id, c.author, c.createdTime, c.modifiedTime, c.content, c.quoted, c.anchor, c.deleted, c.resolved, replies)


def test_save_then_load_round_trips(tmp_path):
    ds = generate_dataset(docs=3, revisions=4, size=(1_000, 2_000), comments=2, replies=2, seed=5, subfolders=1)
    first, second = sorted(ds.docs(), key=lambda f: f.id)[:2]
    ds.rename(first.id, "new title", "2025-01-01T00:00:00Z")
    ds.delete_reply(first.id, first.comments[0].id, first.comments[0].replies[0].id, "2025-01-02T00:00:00Z")
    ds.delete_comment(second.id, second.comments[1].id, "2025-01-03T00:00:00Z")
    ds.add_user("eve", "Eve Example")  # no e-mail
    ds.add_image(second.id, "fig.png", "image/png", b"\x89PNG fake")
    save_dataset(ds, tmp_path / "d")
    again = load_dataset(tmp_path / "d")
    assert set(again.files) == set(ds.files)
    assert {k: (u.displayName, u.emailAddress, u.permissionId) for k, u in again.users.items()} == {
        k: (u.displayName, u.emailAddress, u.permissionId) for k, u in ds.users.items()}
    for fid, f in ds.files.items():
        g = again.files[fid]
        assert (g.name, g.mimeType, g.owner, g.version, g.createdTime, g.modifiedTime, g.parents, g.trashed) == (
            f.name, f.mimeType, f.owner, f.version, f.createdTime, f.modifiedTime, f.parents, f.trashed)
        assert g.renames == f.renames and g.images == f.images
        assert [(r.id, r.modifiedTime, r.user, r.html) for r in g.revisions] == [(r.id, r.modifiedTime, r.user, r.html) for r in f.revisions]
        assert [_thread(c) for c in g.comments] == [_thread(c) for c in f.comments]
    assert any(c.deleted for c in again.files[second.id].comments)
    assert any(r.deleted for r in again.files[first.id].comments[0].replies)
    # Saving what was loaded writes the same bytes: hand edits survive a load/save cycle.
    save_dataset(again, tmp_path / "e")
    files_d = sorted(p.relative_to(tmp_path / "d") for p in (tmp_path / "d").rglob("*") if p.is_file())
    files_e = sorted(p.relative_to(tmp_path / "e") for p in (tmp_path / "e").rglob("*") if p.is_file())
    assert files_d == files_e
    assert all((tmp_path / "d" / p).read_bytes() == (tmp_path / "e" / p).read_bytes() for p in files_d)


def test_generated_dataset_is_deterministic_and_sized():
    def shape(ds: Dataset) -> list:
        return [(f.id, f.name, f.parents, f.createdTime, f.modifiedTime, [(r.id, r.modifiedTime, r.user, r.html) for r in f.revisions],
                 [_thread(c) for c in f.comments]) for f in ds.files.values()]

    a = generate_dataset(docs=2, revisions=3, size=(5_000, 20_000), comments=2, replies=1, seed=9)
    b = generate_dataset(docs=2, revisions=3, size=(5_000, 20_000), comments=2, replies=1, seed=9)
    assert shape(a) == shape(b)
    other = generate_dataset(docs=2, revisions=3, size=(5_000, 20_000), comments=2, replies=1, seed=10)
    assert [r.html for f in other.docs() for r in f.revisions] != [r.html for f in a.docs() for r in f.revisions]
    sizes = [len(r.html) for f in a.docs() for r in f.revisions]
    assert min(sizes) >= 5_000 and max(sizes) <= 21_000


def test_malformed_data_dir_is_one_line_bad_input(tmp_path):
    shutil.copytree(sample_data_dir(), tmp_path / "d")
    item = tmp_path / "d" / "items" / "mcp-377" / "item.json"
    meta = json.loads(item.read_text())
    meta["revisions"][0]["html"] = "../../../drive.json"
    item.write_text(json.dumps(meta))
    with pytest.raises(BadInput, match="leaves its item folder"):
        load_dataset(tmp_path / "d")
    item.write_text("{not json")
    with pytest.raises(BadInput, match="not valid JSON") as err:
        load_dataset(tmp_path / "d")
    assert "\n" not in err.value.message


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_cli_drive_emulator_serves_until_interrupted():
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-c", "from pipeline.cli import main; main()", "drive-emulator", str(sample_data_dir()), "--port", str(port), "--token", "cli-token"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        # A job started in the background by a script (as a CI runner may start this suite)
        # inherits SIGINT ignored, and Python then leaves it so: Ctrl-C is what is tested here.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        line = proc.stdout.readline()
        assert f"http://127.0.0.1:{port}/" in line and "1CSWGdocsRootF0lderXy7Qa2mPn5Lk8Jh" in line
        resp, body = httplib2.Http(timeout=10).request(
            f"http://127.0.0.1:{port}/drive/v3/files?" + urllib.parse.urlencode({"q": "'1CSWGdocsRootF0lderXy7Qa2mPn5Lk8Jh' in parents", "fields": "files(name)"}),
            headers={"Authorization": "Bearer cli-token"},
        )
        assert resp.status == 200 and {"name": "mcp-0-readme"} in json.loads(body)["files"]
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0  # Ctrl-C is the normal way to stop it
    assert "stopped" in proc.stderr.read()


def test_cli_drive_emulator_bad_data_dir(tmp_path):
    proc = subprocess.run([sys.executable, "-c", "from pipeline.cli import main; main()", "drive-emulator", str(tmp_path / "missing"), "--port", "0"],
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "does not exist" in proc.stderr


def test_committed_sample_data_is_what_the_generator_makes(tmp_path: Path) -> None:
    """sample-data/ is generated (pipeline/emulator/samples.py from tests/fixtures/seed): a hand
    edit, or a generator change without regenerating, shows here."""
    import filecmp

    from pipeline.resources import shipped

    seed = Path(__file__).resolve().parent / "fixtures" / "seed" / "mcp-376-cswg-workshop-virtual-desktops.txt"
    subprocess.run([sys.executable, "-m", "pipeline.emulator.samples", str(seed), str(tmp_path / "out")],
                   check=True, capture_output=True)
    committed = shipped("sample-data")
    files = sorted(str(p.relative_to(tmp_path / "out")) for p in (tmp_path / "out").rglob("*") if p.is_file())
    assert files == sorted(str(p.relative_to(committed)) for p in committed.rglob("*")
                           if p.is_file() and p.name != "README.md")
    match, mismatch, errors = filecmp.cmpfiles(committed, tmp_path / "out", files, shallow=False)
    assert (mismatch, errors) == ([], [])
    # The trashed draft keeps the moment it was trashed, not its last edit.
    ds = load_dataset(committed)
    draft = next(f for f in ds.files.values() if f.trashed)
    assert draft.trashedTime == "2024-06-27T15:50:00Z"
