"""The content-addressed store: canonical JSON, immutable blobs, safe paths."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.atomic import TMP_PREFIX
from pipeline.errors import BadInput, DocpipeError
from pipeline.store import Store, canonical_json


def test_blobs_are_named_by_sha256_and_stored_once(tmp_path: Path) -> None:
    store = Store.at(tmp_path)
    data = "<p>héllo</p>".encode()
    digest = store.put_blob(data)
    assert digest == hashlib.sha256(data).hexdigest()
    path = tmp_path / "store" / "blobs" / digest[:2] / digest
    assert path.read_bytes() == data
    mtime = path.stat().st_mtime_ns
    assert store.put_blob(data) == digest  # a second put leaves the first file alone
    assert path.stat().st_mtime_ns == mtime
    assert store.read_blob(digest) == data and store.has_blob(digest)


def test_json_is_canonical_sorted_indented_utf8(tmp_path: Path) -> None:
    store = Store.at(tmp_path)
    store.write_doc({"id": "1abc", "name": "Café ☕", "b": [1, {"z": 1, "a": 2}]})
    raw = (tmp_path / "store" / "docs" / "1abc.json").read_bytes()
    assert raw == (json.dumps({"id": "1abc", "name": "Café ☕", "b": [1, {"z": 1, "a": 2}]},
                              sort_keys=True, indent=1, ensure_ascii=False) + "\n").encode()
    assert "Café ☕".encode() in raw
    assert store.read_doc("1abc")["name"] == "Café ☕"
    assert store.read_doc("1missing") is None
    assert store.doc_ids() == ["1abc"]


def test_sweep_removes_only_temp_files_of_killed_writers(tmp_path: Path) -> None:
    store = Store.at(tmp_path)
    digest = store.put_blob(b"x")
    stale = store.blob_path(digest).parent / f"{TMP_PREFIX}abc"
    stale.write_bytes(b"half")
    (tmp_path / "store" / "docs").mkdir(parents=True)
    (tmp_path / "store" / "docs" / f"{TMP_PREFIX}9").write_bytes(b"{")
    assert store.sweep_temp_files() == 2
    assert store.has_blob(digest) and not stale.exists()
    assert store.doc_ids() == []


@pytest.mark.parametrize("bad", ["../etc/passwd", "a/b", "", "x" * 300, "id with space"])
def test_file_ids_never_become_paths_outside_the_store(tmp_path: Path, bad: str) -> None:
    with pytest.raises(DocpipeError):
        Store.at(tmp_path).doc_path(bad)


def test_bad_digest_and_corrupt_json_are_one_line_errors(tmp_path: Path) -> None:
    store = Store.at(tmp_path)
    with pytest.raises(DocpipeError, match="not a sha256"):
        store.blob_path("../../x")
    with pytest.raises(DocpipeError, match="is missing"):
        store.read_blob("0" * 64)
    (tmp_path / "store").mkdir()
    (tmp_path / "store" / "folder.json").write_text("{torn")
    with pytest.raises(DocpipeError, match="not valid JSON"):
        store.read_folder()


def test_canonical_json_ends_with_newline() -> None:
    assert canonical_json({"b": 1, "a": None}) == b'{\n "a": null,\n "b": 1\n}\n'


def test_pull_journal_survives_a_torn_last_line(tmp_path: Path) -> None:
    from pipeline.journal import Journal

    journal = Journal(tmp_path / "cache")
    rec = {"id": "1", "modifiedTime": "2024-01-01T00:00:00.000Z", "html": "a" * 64, "images": []}
    journal.append("1doc", rec)
    with open(tmp_path / "cache" / "1doc.jsonl", "a") as fh:
        fh.write('{"id": "2", "modifiedT')  # killed mid-append
    assert list(journal.read("1doc")) == [("1", "2024-01-01T00:00:00.000Z")]
    journal.append("1doc", {**rec, "id": "3"})
    assert sorted(journal.read("1doc")) == [("1", "2024-01-01T00:00:00.000Z"), ("3", "2024-01-01T00:00:00.000Z")]
    journal.drop("1doc")
    assert journal.read("1doc") == {}


def _doc(file_id: str) -> dict[str, object]:
    return {"id": file_id, "name": file_id, "revisions": [], "comments": []}


def test_snapshot_reads_folder_and_every_doc_once_in_file_name_order(tmp_path: Path) -> None:
    store = Store.at(tmp_path)
    with pytest.raises(BadInput, match="no store"):
        store.snapshot()
    store.write_folder({"id": "f1", "name": "Folder"})
    for file_id in ("b-2", "a", "a-b"):
        store.write_doc(_doc(file_id))
    snap = store.snapshot()
    assert snap.folder["name"] == "Folder"
    assert [doc["id"] for doc in snap.docs()] == ["a-b", "a", "b-2"]  # "a-b.json" sorts before "a.json"
    digest = store.put_blob(b"<p>x</p>")
    assert snap.read_blob(digest, "doc a") == b"<p>x</p>"
    with pytest.raises(BadInput, match="invalid blob"):
        snap.read_blob("../x", "doc a")


def test_a_doc_read_again_must_be_the_one_first_read(tmp_path: Path) -> None:
    """Replay reads a doc again for its comments file; a pull writing it meanwhile is refused, not mixed in."""
    store = Store.at(tmp_path)
    store.write_folder({"id": "f1"})
    store.write_doc(_doc("a"))
    store.write_doc(_doc("b"))
    snap = store.snapshot()
    assert [doc["id"] for doc in snap.docs()] == ["a", "b"]
    assert snap.doc("a") == _doc("a")
    store.write_doc({**_doc("b"), "comments": [{"id": "c1"}]})
    assert snap.doc("a") == _doc("a")
    with pytest.raises(DocpipeError, match=r"docs/b\.json changed during this replay"):
        snap.doc("b")


def test_one_doc_id_rule_for_every_reader(tmp_path: Path) -> None:
    store = Store.at(tmp_path)
    store.write_folder({"id": "f1"})
    store.write_doc(_doc("ok"))
    (tmp_path / "store" / "docs" / "a.b.json").write_text(json.dumps(_doc("a.b")))
    with pytest.raises(BadInput, match="'a.b' is not a Drive file id"):
        store.doc_path("a.b")
    for read in (store.doc_ids, store.snapshot):
        with pytest.raises(BadInput, match=r"docs/a\.b\.json is not named by a Drive file id"):
            read()


def test_a_corrupt_doc_reads_the_same_way_everywhere(tmp_path: Path) -> None:
    store = Store.at(tmp_path)
    store.write_folder({"id": "f1"})
    (tmp_path / "store" / "docs").mkdir()
    (tmp_path / "store" / "docs" / "abc.json").write_text("[1, 2]")
    messages = []
    for read in (lambda: store.read_doc("abc"), lambda: list(store.snapshot().docs())):
        with pytest.raises(BadInput) as info:
            read()
        messages.append(info.value.message)
    assert messages[0] == messages[1] and "docs/abc.json" in messages[0] and "pull again" in messages[0]
    # ... and through the command line: one line, exit 2, the same words.
    out = subprocess.run([sys.executable, "-m", "pipeline.cli", "replay", "--workdir", str(tmp_path)],
                         capture_output=True, text=True)
    assert out.returncode == 2 and out.stderr == f"docpipe: error: {messages[0]}\n"


def test_digest_changes_with_docs_and_folder_not_with_a_lone_blob(tmp_path: Path) -> None:
    store = Store.at(tmp_path)
    empty = store.digest()
    store.write_folder({"id": "f1"})
    with_folder = store.digest()
    store.write_doc(_doc("d1"))
    with_doc = store.digest()
    assert len({empty, with_folder, with_doc}) == 3
    store.put_blob(b"an image not yet named by any doc")
    assert store.digest() == with_doc
    assert Store.at(tmp_path).digest() == with_doc  # a pure function of the files


def test_a_doc_record_reads_typed_and_writes_back_the_same_bytes(tmp_path: Path) -> None:
    from pipeline.store import DocRecord, Image, Revision

    store = Store.at(tmp_path)
    doc = {"id": "1doc", "name": "Notes", "titles": [{"name": "Notes", "time": "2024-01-01T00:00:00Z"}],
           "folder_path": ["Sub"], "folder_ids": ["1sub"], "version": "7", "modifiedTime": "2024-01-02T00:00:00Z",
           "webViewLink": "https://docs.google.com/document/d/1doc/edit", "createdTime": "2024-01-01T00:00:00Z",
           "partial_history": False, "removed": None,
           "revisions": [{"id": "1", "modifiedTime": "2024-01-01T00:00:00Z", "html": "a" * 64,
                          "lastModifyingUser": {"displayName": "Ann", "permissionId": "p1"},
                          "images": [{"src": "https://x/y.png", "blob": "b" * 64, "mimeType": "image/png"}]}],
           "comments": [{"id": "c1", "content": "hi", "replies": []}],
           "from_a_later_docpipe": {"kept": True}}
    store.write_doc(doc)
    raw = store.doc_path("1doc").read_bytes()
    record = store.read_record("1doc")
    assert record is not None and record.folder_path == ("Sub",) and record.modified_time == "2024-01-02T00:00:00Z"
    assert record.revisions == (Revision("1", "2024-01-01T00:00:00Z", {"displayName": "Ann", "permissionId": "p1"},
                                         "a" * 64, (Image("https://x/y.png", "b" * 64, "image/png"),)),)
    store.write_record(record)
    assert store.doc_path("1doc").read_bytes() == raw  # nothing lost, not even the key it does not know
    # A record of a store pulled before createdTime was kept reads with the Contract's defaults.
    old = DocRecord.from_json({k: v for k, v in doc.items() if k not in ("createdTime", "partial_history")})
    assert (old.created_time, old.partial_history) == ("", False)


def test_a_doc_file_that_is_no_record_is_one_line_of_bad_input(tmp_path: Path) -> None:
    store = Store.at(tmp_path)
    store.write_doc({"id": "1doc", "revisions": [{"id": "1"}]})  # a revision without its modifiedTime
    with pytest.raises(BadInput) as err:
        store.read_record("1doc")
    assert err.value.message == (f"store file docs/1doc.json in {tmp_path / 'store'} is not a doc record; "
                                 "remove it and pull again")
