"""The sample-data on-disk format (documented in sample-data/README.md) <-> `Dataset`.

```
<dir>/drive.json                      root folder + users
<dir>/items/<key>/item.json           one Drive item (folder, Doc, shortcut, other file)
<dir>/items/<key>/revisions/NNN.html  a Doc's full text/html export at each revision
<dir>/items/<key>/images/<name>       images a Doc's HTML shows as src="../images/<name>"
<dir>/items/<key>/content/<name>      a non-Doc file's bytes
```
Loading replays the items through the Dataset's mutation methods, so versions and the
changes feed come out the same way they do for live edits.
"""

from __future__ import annotations

import json
import mimetypes
import re
from pathlib import Path
from typing import Any

from pipeline.atomic import atomic_write
from pipeline.emulator.model import DOC_MIME, FOLDER_MIME, SHORTCUT_MIME, Comment, Dataset, DriveFile, Reply
from pipeline.errors import BadInput

_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BadInput(f"{path} is missing") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadInput(f"{path} is not valid JSON: {exc}") from None


def _inside(base: Path, rel: str, what: str) -> Path:
    """A path from a manifest, refused if it leaves the item folder."""
    p = (base / rel).resolve()
    if base.resolve() not in p.parents:
        raise BadInput(f"{what} path {rel!r} leaves its item folder {base}")
    return p


def load_dataset(root: Path) -> Dataset:
    """Read a sample-data folder into a Dataset (BadInput with one line when it is malformed)."""
    root = Path(root)
    if not root.is_dir():
        raise BadInput(f"data folder {root} does not exist")
    drive = _read_json(root / "drive.json")
    try:
        ds = Dataset(drive["root"]["id"], drive["root"]["name"], drive["root"].get("createdTime", "2024-01-01T00:00:00Z"))
        for key, u in sorted(drive.get("users", {}).items()):
            ds.add_user(key, u["displayName"], u.get("emailAddress"), u.get("permissionId"))
    except (KeyError, TypeError) as exc:
        raise BadInput(f"{root / 'drive.json'} lacks {exc}") from None

    items: dict[str, dict[str, Any]] = {}
    items_dir = root / "items"
    for d in sorted(items_dir.iterdir()) if items_dir.is_dir() else []:
        if d.is_dir():
            if not _KEY.match(d.name):
                raise BadInput(f"item folder name {d.name!r} must be letters, digits, '.', '_' or '-'")
            items[d.name] = _read_json(d / "item.json")

    ids: dict[str, str] = {"root": ds.root_id}
    events: list[tuple[str, int, str, Any]] = []  # (time, order, kind, payload) replayed in time order
    # Parents must exist before children: add items in dependency order.
    done: set[str] = set()

    def add(key: str, stack: tuple[str, ...] = ()) -> None:
        if key in done:
            return
        if key in stack:
            raise BadInput(f"item {key} is its own ancestor")
        meta = items[key]
        parent = meta.get("parent", "root")
        if parent != "root":
            if parent not in items:
                raise BadInput(f"item {key}: parent {parent!r} is not an item")
            add(parent, stack + (key,))
        _add_item(ds, root / "items" / key, key, meta, ids, events)
        done.add(key)

    for key in sorted(items):
        add(key)
    for key, meta in sorted(items.items()):  # shortcuts resolve once every item has an id
        target = meta.get("shortcutTo")
        if target:
            if target not in ids:
                raise BadInput(f"item {key}: shortcut target {target!r} is not an item")
            ds.files[ids[key]].shortcut_target = ids[target]
    for _time, _order, kind, payload in sorted(events, key=lambda e: (e[0], e[1])):
        _apply(ds, kind, payload)
    return ds


def _add_item(ds: Dataset, base: Path, key: str, meta: dict[str, Any], ids: dict[str, str], events: list[tuple[Any, ...]]) -> None:
    try:
        name, mime, created = meta["name"], meta["mimeType"], meta["createdTime"]
        fid = meta["id"]
    except KeyError as exc:
        raise BadInput(f"{base / 'item.json'} lacks {exc}") from None
    parent = ids[meta.get("parent", "root")]
    owner = meta.get("owner")
    if owner and owner not in ds.users:
        raise BadInput(f"{base / 'item.json'}: owner {owner!r} is not a user in drive.json")
    if mime == FOLDER_MIME:
        ds.add_folder(name, parent, created, id=fid, owner=owner)
    elif mime == DOC_MIME:
        ds.add_doc(name, parent, created, id=fid, owner=owner)
    elif mime == SHORTCUT_MIME:
        ds.add_shortcut(name, meta.get("shortcutTo", ""), parent, created, id=fid, owner=owner)
    else:
        content = _inside(base, meta["content"], "content").read_bytes() if meta.get("content") else b""
        ds.add_file(name, mime, content, parent, created, id=fid, owner=owner)
    ids[key] = fid
    images = base / "images"
    if images.is_dir():
        for img in sorted(images.iterdir()):
            ds.add_image(fid, img.name, mimetypes.guess_type(img.name)[0] or "application/octet-stream", img.read_bytes())
    order = len(events)
    for i, r in enumerate(meta.get("revisions", [])):
        user = r.get("user")
        if user and user not in ds.users:
            raise BadInput(f"{base / 'item.json'}: revision user {user!r} is not a user in drive.json")
        html = _inside(base, r["html"], "revision").read_text(encoding="utf-8")
        events.append((r["time"], order + i, "revision", (fid, html, user, r["time"], str(r.get("id", i + 1)))))
    order = len(events)
    for c in meta.get("comments", []):
        events.append((c["time"], order, "comment", (fid, c)))
        order += 1
        for rep in c.get("replies", []):
            events.append((rep["time"], order, "reply", (fid, c["id"], rep)))
            order += 1
        if c.get("deleted"):
            events.append((c.get("deletedTime", c["time"]), order, "delete_comment", (fid, c["id"], c.get("deletedTime", c["time"]))))
            order += 1
    if meta.get("trashed"):
        t = meta.get("trashedTime", created)
        events.append((t, len(events), "trash", (fid, t)))
    for t in meta.get("renames", []):  # title history: [{"name": new title, "time"}], oldest first
        events.append((t["time"], len(events), "rename", (fid, t["name"], t["time"])))


def _apply(ds: Dataset, kind: str, p: Any) -> None:
    if kind == "revision":
        fid, html, user, time, rid = p
        ds.add_revision(fid, html, user, time, id=rid)
    elif kind == "comment":
        fid, c = p
        ds.add_comment(fid, c["author"], c["content"], c["time"], c.get("quoted", ""), id=c["id"], anchor=c.get("anchor", ""))
    elif kind == "reply":
        fid, cid, r = p
        ds.add_reply(fid, cid, r["author"], r.get("content", ""), r["time"], r.get("action"), id=r["id"])
        if r.get("deleted"):
            ds.delete_reply(fid, cid, r["id"], r.get("deletedTime", r["time"]))
    elif kind == "delete_comment":
        ds.delete_comment(*p)
    elif kind == "trash":
        ds.trash(*p)
    elif kind == "rename":
        ds.rename(*p)


def save_dataset(ds: Dataset, root: Path) -> None:
    """Write a Dataset in the sample-data format (used to commit generated data)."""
    root = Path(root)
    (root / "items").mkdir(parents=True, exist_ok=True)
    users = {k: {kk: vv for kk, vv in (("displayName", u.displayName), ("emailAddress", u.emailAddress), ("permissionId", u.permissionId)) if vv} for k, u in sorted(ds.users.items())}
    r = ds.root
    _write_json(root / "drive.json", {"root": {"id": r.id, "name": r.name, "createdTime": r.createdTime}, "users": users})
    keys: dict[str, str] = {ds.root_id: "root"}
    used: set[str] = set()
    for f in sorted(ds.files.values(), key=lambda f: (f.createdTime, f.id)):
        if f.id == ds.root_id:
            continue
        base = re.sub(r"[^A-Za-z0-9._-]+", "-", f.name).strip("-._").lower()[:60] or "item"
        key, n = base, 2
        while key in used:
            key, n = f"{base}-{n}", n + 1
        used.add(key)
        keys[f.id] = key
    for f in ds.files.values():
        if f.id != ds.root_id:
            _save_item(ds, f, root / "items" / keys[f.id], keys)


def _save_item(ds: Dataset, f: DriveFile, base: Path, keys: dict[str, str]) -> None:
    base.mkdir(parents=True, exist_ok=True)
    # item.json keeps the first title; "renames" replays the later ones.
    first_name = f.renames[0][0] if f.renames else f.name
    meta: dict[str, Any] = {"id": f.id, "name": first_name, "mimeType": f.mimeType, "parent": keys.get(f.parents[0], "root") if f.parents else "root", "createdTime": f.createdTime}
    if f.owner:
        meta["owner"] = f.owner
    if f.trashed:
        meta["trashed"] = True
        meta["trashedTime"] = f.trashedTime or f.modifiedTime
    if f.renames:
        meta["renames"] = [{"name": n, "time": t} for _old, n, t in f.renames]
    if f.shortcut_target:
        meta["shortcutTo"] = keys[f.shortcut_target]
    if f.content:
        (base / "content").mkdir(exist_ok=True)
        (base / "content" / f.name).write_bytes(f.content)
        meta["content"] = f"content/{f.name}"
    if f.images:
        (base / "images").mkdir(exist_ok=True)
        for name, (_mime, data) in sorted(f.images.items()):
            (base / "images" / name).write_bytes(data)
    if f.revisions:
        (base / "revisions").mkdir(exist_ok=True)
        meta["revisions"] = []
        for i, r in enumerate(f.revisions, 1):
            rel = f"revisions/{i:03d}.html"
            (base / rel).write_text(r.html, encoding="utf-8")
            meta["revisions"].append({"id": r.id, "time": r.modifiedTime, "user": r.user, "html": rel})
    if f.comments:
        meta["comments"] = [
            _post(c, quoted=c.quoted, anchor=c.anchor) | {"replies": [_post(r, action=r.action) for r in c.replies]}
            for c in f.comments
        ]
    _write_json(base / "item.json", meta)


def _post(p: Comment | Reply, **optional: str | None) -> dict[str, Any]:
    """A comment or reply as item.json keeps it; `optional` fields only when set."""
    out: dict[str, Any] = {"id": p.id, "author": p.author, "time": p.createdTime, "content": p.content}
    out.update((k, v) for k, v in optional.items() if v)
    if p.deleted:
        out["deleted"] = True
        out["deletedTime"] = p.modifiedTime
    return out


def _write_json(path: Path, obj: Any) -> None:
    # Key order is kept as written (not sorted): item.json is meant to be read and edited by hand.
    atomic_write(path, (json.dumps(obj, indent=1, ensure_ascii=False) + "\n").encode("utf-8"))
