"""The emulator's Drive API routes: files, revisions, comments, the changes feed, exports.

Mixed into the HTTP handler (`server._Handler`), which supplies `emu`, `_json` and `_send`; the
parameter, paging and field-selection helpers every route shares live here too, with Google's
error shape (`ApiError`).
"""

from __future__ import annotations

import base64
import hashlib
import json
import urllib.parse
from typing import Any

from pipeline.emulator import fields as fieldsel
from pipeline.emulator import query as qlang
from pipeline.emulator import resources as res
from pipeline.emulator.model import DOC_MIME, FOLDER_MIME, DriveFile, Revision


class ApiError(Exception):
    """An error answered in Google's JSON error shape."""

    def __init__(self, code: int, message: str, reason: str, domain: str = "global", location: str | None = None, location_type: str = "parameter", headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.code, self.message, self.reason, self.domain = code, message, reason, domain
        self.location, self.location_type = location, location_type
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        err: dict[str, Any] = {"message": self.message, "domain": self.domain, "reason": self.reason}
        if self.location:
            err["location"] = self.location
            err["locationType"] = self.location_type
        return {"error": {"code": self.code, "message": self.message, "errors": [err], "status": _STATUS.get(self.code, "UNKNOWN")}}


_EXPORT_MIME = {fmt: mime for mime, fmt in res.DOC_EXPORTS.items()}  # exportFormat= -> MIME type

_STATUS = {
    400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND", 410: "GONE",
    429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 503: "UNAVAILABLE",
}


def invalid(param: str, message: str = "Invalid Value") -> ApiError:
    return ApiError(400, message, "invalid", location=param)


def file_not_found(file_id: str) -> ApiError:
    return ApiError(404, f"File not found: {file_id}.", "notFound", location="fileId")


def revisions_denied() -> ApiError:
    return ApiError(403, "The user does not have sufficient permissions for this file.", "insufficientFilePermissions")


def _int_param(q: dict[str, str], name: str, default: int, lo: int, hi: int) -> int:
    if name not in q:
        return default
    try:
        v = int(q[name])
    except ValueError:
        raise invalid(name, f"Invalid value '{q[name]}'. Values must be within the range: [{lo}, {hi}]") from None
    if not lo <= v <= hi:
        raise invalid(name, f"Invalid value '{v}'. Values must be within the range: [{lo}, {hi}]")
    return v


def _bool_param(q: dict[str, str], name: str, default: bool = False) -> bool:
    v = q.get(name)
    if v is None:
        return default
    if v.lower() not in ("true", "false"):
        raise invalid(name, f"Invalid value '{v}'. Boolean expected.")
    return v.lower() == "true"


def _page_token(kind: str, offset: int, key: str = "") -> str:
    # Opaque like Google's, and bound to the query it continues (a token from another query is a 400).
    raw = json.dumps([kind, offset, _digest(key)], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def _page_offset(q: dict[str, str], kind: str, key: str = "") -> int:
    tok = q.get("pageToken")
    if not tok:
        return 0
    try:
        k, offset, tkey = json.loads(_unb64(tok))
        if k != kind or tkey != _digest(key) or not isinstance(offset, int) or offset < 0:
            raise ValueError
        return offset
    except ValueError:
        raise invalid("pageToken") from None


def _page(items: list[Any], q: dict[str, str], kind: str, key: str, size: int) -> tuple[list[Any], str | None]:
    """One page of `items` from the request's pageToken, and the token of the next page (None at the end)."""
    offset = _page_offset(q, kind, key)
    end = offset + size
    return items[offset:end], (_page_token(kind, end, key) if end < len(items) else None)


def _select(body: dict[str, Any], q: dict[str, str], default: str, known: dict[str, Any]) -> dict[str, Any]:
    text = q.get("fields") or default
    try:
        sel = fieldsel.parse(text)
    except fieldsel.FieldsError:
        raise ApiError(400, f"Invalid field selection {text}", "invalidParameter", location="fields") from None
    bad = fieldsel.unknown_fields(sel, known)
    if bad:
        raise ApiError(400, f"Invalid field selection {bad.rsplit('.', 1)[-1]}", "invalidParameter", location="fields")
    trimmed: dict[str, Any] = fieldsel.apply(body, sel)
    return trimmed


def _schema(keys: set[str], **nested: Any) -> dict[str, Any]:
    out: dict[str, Any] = {k: None for k in keys}
    out.update(nested)
    return out


_USER = _schema(res.USER_KEYS)
_FILE = _schema(res.FILE_KEYS, owners=_USER, lastModifyingUser=_USER, trashingUser=_USER, sharingUser=_USER)
_REVISION = _schema(res.REVISION_KEYS, lastModifyingUser=_USER)
_REPLY = _schema(res.REPLY_KEYS, author=_USER)
_COMMENT = _schema(res.COMMENT_KEYS, author=_USER, replies=_REPLY)
_CHANGE = _schema(res.CHANGE_KEYS, file=_FILE)
_FILE_LIST = {"kind": None, "nextPageToken": None, "incompleteSearch": None, "files": _FILE}
_REVISION_LIST = {"kind": None, "nextPageToken": None, "revisions": _REVISION}
_COMMENT_LIST = {"kind": None, "nextPageToken": None, "comments": _COMMENT}
_CHANGE_LIST = {"kind": None, "nextPageToken": None, "newStartPageToken": None, "changes": _CHANGE}


# files.list orderBy keys (each sort is stable, so later keys of the list break earlier ties).
_ORDER_KEYS: dict[str, Any] = {
    "name": lambda f: f.name.lower(), "name_natural": lambda f: f.name.lower(),
    "modifiedTime": lambda f: res.rfc3339(f.modifiedTime), "createdTime": lambda f: res.rfc3339(f.createdTime),
    "folder": lambda f: 0 if f.mimeType == FOLDER_MIME else 1,
}


class ApiRoutes:
    """The routes under /drive/v3 and the export links; `emu` is the running Emulator."""

    emu: Any

    def _send(self, status: int, body: bytes, ctype: str, headers: dict[str, str] | None = None) -> None:
        raise NotImplementedError

    def _json(self, status: int, obj: Any, headers: dict[str, str] | None = None) -> None:
        raise NotImplementedError

    def _revision_for_export(self, f: DriveFile, revision: str | None) -> Revision:
        if not f.revisions:
            raise ApiError(404, "Revision not found.", "notFound", location="revisionId")
        if revision is None:
            return f.revisions[-1]
        for r in f.revisions:
            if r.id == revision:
                return r
        raise ApiError(404, f"Revision not found: {revision}.", "notFound", location="revisionId")

    def _export_link(self, q: dict[str, str]) -> None:
        ds = self.emu.ds
        file_id = q.get("id", "")
        fmt = q.get("exportFormat", "html")
        with ds.lock:
            f = ds.files.get(file_id)
            if f is None or f.mimeType != DOC_MIME:
                raise file_not_found(file_id)
            if "revision" in q and f.deny_revisions:
                raise revisions_denied()
            r = self._revision_for_export(f, q.get("revision"))
            self._send_export(f, r, _EXPORT_MIME.get(fmt, ""))

    def _send_export(self, f: DriveFile, r: Revision, mime: str) -> None:
        fmt = res.DOC_EXPORTS.get(mime)  # also the file name's extension
        if fmt is None:
            raise ApiError(400, "The requested conversion is not supported.", "badRequest", location="mimeType")
        data = res.export_html(f, r, self.emu.url) if fmt == "html" else res.export_text(r)
        self._send(200, data, f"{mime}; charset=utf-8", {"Content-Disposition": f'attachment; filename="{_ascii(f.name)}.{fmt}"'})

    # ---------------------------------------------------------------- API
    def _api(self, path: str, q: dict[str, str]) -> None:
        parts = [urllib.parse.unquote(p) for p in path.strip("/").split("/")]
        ds = self.emu.ds
        with ds.lock:  # a consistent snapshot per request, even while tests mutate the Drive
            if parts == ["files"]:
                return self._files_list(q)
            if parts == ["changes", "startPageToken"]:
                return self._json(200, {"kind": "drive#startPageToken", "startPageToken": str(len(ds.changes) + 1)})
            if parts == ["changes"]:
                return self._changes_list(q)
            if len(parts) >= 2 and parts[0] == "files":
                f = ds.files.get(parts[1])
                if f is None:
                    raise file_not_found(parts[1])
                rest = parts[2:]
                if rest == []:
                    if q.get("alt") == "media":
                        return self._media(f)
                    return self._json(200, _select(res.file_json(ds, f, self.emu.url), q, res.FILE_DEFAULT, _FILE))
                if rest == ["export"]:
                    if f.mimeType != DOC_MIME:
                        raise ApiError(403, "Export only supports Docs Editors files.", "fileNotExportable")
                    if "mimeType" not in q:
                        raise ApiError(400, "Required parameter: mimeType", "required", location="mimeType")
                    return self._send_export(f, self._revision_for_export(f, None), q["mimeType"])
                if rest == ["revisions"]:
                    return self._revisions_list(f, q)
                if len(rest) == 2 and rest[0] == "revisions":
                    return self._revision_get(f, rest[1], q)
                if rest == ["comments"]:
                    return self._comments_list(f, q)
                if len(rest) == 2 and rest[0] == "comments":
                    return self._comment_get(f, rest[1], q)
        raise ApiError(404, "Not Found", "notFound")

    def _files_list(self, q: dict[str, str]) -> None:
        ds = self.emu.ds
        size = _int_param(q, "pageSize", 100, 1, 1000)
        text = q.get("q", "")
        try:
            pred = qlang.parse(text) if text.strip() else (lambda f: True)
        except qlang.QueryError:
            raise invalid("q") from None
        order = q.get("orderBy", "")
        items = [f for f in ds.files.values() if f.id != ds.root_id and pred(f)]
        items.sort(key=lambda f: (f.name.lower(), f.id))  # Drive's order is stable; ours is name, id
        for spec in reversed([s.strip() for s in order.split(",") if s.strip()]):
            key, _, direction = spec.partition(" ")
            if key not in _ORDER_KEYS:
                raise invalid("orderBy")
            items.sort(key=_ORDER_KEYS[key], reverse=direction.strip().lower() == "desc")
        page, token = _page(items, q, "files", f"{text}|{order}", size)
        body: dict[str, Any] = {"kind": "drive#fileList", "incompleteSearch": False, "files": [res.file_json(ds, f, self.emu.url) for f in page]}
        if token:
            body["nextPageToken"] = token
        self._json(200, _select(body, q, res.FILES_LIST_DEFAULT, _FILE_LIST))

    def _media(self, f: DriveFile) -> None:
        if f.is_google:
            raise ApiError(403, "Only files with binary content can be downloaded. Use Export with Docs Editors files.", "fileNotDownloadable", location="alt")
        self._send(200, f.content, f.mimeType)

    def _revisions_list(self, f: DriveFile, q: dict[str, str]) -> None:
        if f.deny_revisions:
            raise revisions_denied()
        if f.mimeType != DOC_MIME and f.is_google:
            raise ApiError(403, "The file does not support revisions.", "revisionsNotSupported")
        size = _int_param(q, "pageSize", 200, 1, 1000)
        page, token = _page(f.revisions, q, "revisions", f.id, size)
        body: dict[str, Any] = {"kind": "drive#revisionList", "revisions": [res.revision_json(self.emu.ds, f, r, self.emu.url) for r in page]}
        if token:
            body["nextPageToken"] = token
        self._json(200, _select(body, q, res.REVISIONS_LIST_DEFAULT, _REVISION_LIST))

    def _revision_get(self, f: DriveFile, rid: str, q: dict[str, str]) -> None:
        if f.deny_revisions:
            raise revisions_denied()
        for r in f.revisions:
            if r.id == rid:
                return self._json(200, _select(res.revision_json(self.emu.ds, f, r, self.emu.url), q, res.REVISION_DEFAULT, _REVISION))
        raise ApiError(404, f"Revision not found: {rid}.", "notFound", location="revisionId")

    def _require_fields(self, q: dict[str, str]) -> None:
        if not q.get("fields"):
            raise ApiError(400, "The 'fields' parameter is required for this method.", "required", location="fields")

    def _comments_list(self, f: DriveFile, q: dict[str, str]) -> None:
        self._require_fields(q)
        size = _int_param(q, "pageSize", 20, 1, 100)
        include_deleted = _bool_param(q, "includeDeleted")
        since = q.get("startModifiedTime")
        comments = sorted(f.comments, key=lambda c: (res.rfc3339(c.createdTime), c.id))
        comments = [c for c in comments if (include_deleted or not c.deleted) and (not since or res.rfc3339(c.modifiedTime) >= res.rfc3339(since))]
        page, token = _page(comments, q, "comments", f"{f.id}|{include_deleted}|{since}", size)
        body: dict[str, Any] = {"kind": "drive#commentList", "comments": [res.comment_json(self.emu.ds, c, include_deleted) for c in page]}
        if token:
            body["nextPageToken"] = token
        self._json(200, _select(body, q, "", _COMMENT_LIST))

    def _comment_get(self, f: DriveFile, cid: str, q: dict[str, str]) -> None:
        self._require_fields(q)
        include_deleted = _bool_param(q, "includeDeleted")
        for c in f.comments:
            if c.id == cid and (include_deleted or not c.deleted):
                return self._json(200, _select(res.comment_json(self.emu.ds, c, include_deleted), q, "", _COMMENT))
        raise ApiError(404, f"Comment not found: {cid}.", "notFound", location="commentId")

    def _changes_list(self, q: dict[str, str]) -> None:
        ds = self.emu.ds
        if not q.get("pageToken"):
            raise ApiError(400, "Required parameter: pageToken", "required", location="pageToken")
        try:
            start = int(q["pageToken"])
        except ValueError:
            raise invalid("pageToken") from None
        if start < 1 or start > len(ds.changes) + 1:
            raise invalid("pageToken")
        if start < ds.oldest_token:
            raise ApiError(410, "The page token is no longer valid.", "pageTokenExpired", location="pageToken")
        size = _int_param(q, "pageSize", 100, 1, 1000)
        include_removed = _bool_param(q, "includeRemoved", True)
        window = ds.changes[start - 1:start - 1 + size]
        out = []
        for ch in window:
            f = ds.files.get(ch.fileId)
            removed = ch.removed or f is None
            if removed and not include_removed:
                continue
            item: dict[str, Any] = {"kind": "drive#change", "changeType": "file", "type": "file", "time": res.rfc3339(ch.time), "removed": removed, "fileId": ch.fileId}
            if not removed and f is not None:
                item["file"] = res.file_json(ds, f, self.emu.url)
            out.append(item)
        body: dict[str, Any] = {"kind": "drive#changeList", "changes": out}
        nxt = start + len(window)
        if nxt <= len(ds.changes):
            body["nextPageToken"] = str(nxt)
        else:
            body["newStartPageToken"] = str(nxt)
        self._json(200, _select(body, q, res.CHANGES_LIST_DEFAULT, _CHANGE_LIST))



def _ascii(name: str) -> str:
    return "".join(ch if 32 <= ord(ch) < 127 and ch not in '"\\' else "_" for ch in name)


def _unb64(text: str) -> bytes:
    """URL-safe base64 without the padding JWTs and our page tokens leave off."""
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
