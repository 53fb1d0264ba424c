"""Drive API v3 resource JSON (files, revisions, comments, changes, users) built from the model.

The shapes follow Google's reference: kinds, field names, which fields appear for which item
type, and the default field sets a response has when the request gives no `fields`.
"""

from __future__ import annotations

import hashlib
import html as htmllib
import re
from html.parser import HTMLParser
from typing import Any

from pipeline.emulator.model import DOC_MIME, FOLDER_MIME, SHORTCUT_MIME, Comment, Dataset, DriveFile, Reply, Revision, User

# Default partial responses when a request has no `fields` (as Google answers).
FILE_DEFAULT = "kind,id,name,mimeType"
FILES_LIST_DEFAULT = "kind,nextPageToken,incompleteSearch,files(kind,id,name,mimeType)"
REVISION_DEFAULT = "kind,id,mimeType,modifiedTime"
REVISIONS_LIST_DEFAULT = "kind,nextPageToken,revisions(kind,id,mimeType,modifiedTime)"
CHANGES_LIST_DEFAULT = "kind,nextPageToken,newStartPageToken,changes(kind,changeType,time,removed,fileId,file(kind,id,name,mimeType))"

# Every field the emulator knows per resource (a selection naming others is a 400, like Google).
USER_KEYS = {"kind", "displayName", "photoLink", "me", "permissionId", "emailAddress"}
FILE_KEYS = {
    "kind", "id", "name", "mimeType", "description", "starred", "trashed", "explicitlyTrashed", "parents",
    "version", "webViewLink", "webContentLink", "iconLink", "thumbnailLink", "createdTime", "modifiedTime",
    "modifiedByMeTime", "viewedByMeTime", "sharedWithMeTime", "owners", "lastModifyingUser", "shared",
    "ownedByMe", "capabilities", "viewersCanCopyContent", "copyRequiresWriterPermission", "writersCanShare",
    "permissions", "permissionIds", "hasThumbnail", "headRevisionId", "size", "quotaBytesUsed", "md5Checksum",
    "sha1Checksum", "sha256Checksum", "fileExtension", "fullFileExtension", "originalFilename",
    "shortcutDetails", "exportLinks", "driveId", "teamDriveId", "spaces", "isAppAuthorized", "resourceKey",
    "linkShareMetadata", "labelInfo", "contentRestrictions", "imageMediaMetadata", "videoMediaMetadata",
    "trashedTime", "trashingUser", "properties", "appProperties", "folderColorRgb", "hasAugmentedPermissions",
    "modifiedByMe", "viewedByMe", "sharingUser", "contentHints", "downloadRestrictions", "inheritedPermissionsDisabled",
}
REVISION_KEYS = {
    "kind", "id", "mimeType", "modifiedTime", "keepForever", "published", "publishedLink", "publishAuto",
    "publishedOutsideDomain", "lastModifyingUser", "originalFilename", "md5Checksum", "size", "exportLinks",
}
REPLY_KEYS = {"kind", "id", "createdTime", "modifiedTime", "action", "author", "deleted", "htmlContent", "content"}
COMMENT_KEYS = {
    "kind", "id", "createdTime", "modifiedTime", "resolved", "anchor", "replies", "author", "deleted",
    "htmlContent", "content", "quotedFileContent", "assignee", "mentionedEmailAddresses",
}
CHANGE_KEYS = {"kind", "removed", "file", "fileId", "time", "driveId", "type", "changeType", "teamDriveId", "teamDrive", "drive"}


def rfc3339(t: str) -> str:
    """Drive's time shape: 2024-01-02T03:04:05.000Z."""
    t = t.replace("+00:00", "Z")
    if t and "." not in t:
        t = t[:-1] + ".000Z" if t.endswith("Z") else t + ".000Z"
    return t


def user_json(u: User | None, with_email: bool = True) -> dict[str, Any] | None:
    if u is None:
        return None
    out: dict[str, Any] = {"kind": "drive#user", "displayName": u.displayName, "photoLink": u.photoLink, "me": False}
    if with_email:
        out["permissionId"] = u.permissionId
        if u.emailAddress:
            out["emailAddress"] = u.emailAddress
    return out


def export_url(base: str, file_id: str, revision: str | None, fmt: str) -> str:
    rev = f"&revision={revision}" if revision else ""
    return f"{base}feeds/download/documents/export/Export?id={file_id}{rev}&exportFormat={fmt}"


DOC_EXPORTS = {"text/html": "html", "text/plain": "txt"}


def web_view_link(f: DriveFile) -> str:
    if f.mimeType == DOC_MIME:
        return f"https://docs.google.com/document/d/{f.id}/edit?usp=drivesdk"
    if f.mimeType == FOLDER_MIME:
        return f"https://drive.google.com/drive/folders/{f.id}"
    return f"https://drive.google.com/file/d/{f.id}/view?usp=drivesdk"


def file_json(ds: Dataset, f: DriveFile, base: str) -> dict[str, Any]:
    owner = ds.user(f.owner)
    last = f.revisions[-1] if f.revisions else None
    out: dict[str, Any] = {
        "kind": "drive#file",
        "id": f.id,
        "name": f.name,
        "mimeType": f.mimeType,
        "starred": False,
        "trashed": f.trashed,
        "explicitlyTrashed": f.trashed,
        **({"trashedTime": rfc3339(f.trashedTime)} if f.trashed and f.trashedTime else {}),
        "parents": list(f.parents),
        "spaces": ["drive"],
        "version": str(f.version),
        "webViewLink": web_view_link(f),
        "iconLink": f"https://drive-thirdparty.googleusercontent.com/16/type/{f.mimeType}",
        "hasThumbnail": False,
        "viewedByMe": False,
        "createdTime": rfc3339(f.createdTime),
        "modifiedTime": rfc3339(f.modifiedTime),
        "modifiedByMe": False,
        "owners": [user_json(owner)] if owner else [],
        "shared": True,
        "ownedByMe": False,
        "viewersCanCopyContent": True,
        "copyRequiresWriterPermission": False,
        "writersCanShare": True,
        "capabilities": {
            "canComment": True,
            "canCopy": f.mimeType != FOLDER_MIME,
            "canDownload": True,
            "canEdit": False,
            "canListChildren": f.mimeType == FOLDER_MIME,
            "canReadRevisions": not f.deny_revisions,
            "canShare": False,
        },
        "isAppAuthorized": False,
    }
    if f.parents == [] and f.id == ds.root_id:
        out.pop("parents")  # a folder shared with us shows no parent we can see
    lm = ds.user(last.user) if last else owner
    if lm:
        out["lastModifyingUser"] = user_json(lm)
    if f.mimeType == DOC_MIME:
        out["exportLinks"] = {m: export_url(base, f.id, None, fmt) for m, fmt in DOC_EXPORTS.items()}
    elif f.mimeType == SHORTCUT_MIME and f.shortcut_target:
        target = ds.files.get(f.shortcut_target)
        out["shortcutDetails"] = {
            "targetId": f.shortcut_target,
            "targetMimeType": target.mimeType if target else DOC_MIME,
        }
    elif not f.is_google:
        digest = hashlib.md5(f.content).hexdigest()
        out.update(
            size=str(len(f.content)),
            quotaBytesUsed=str(len(f.content)),
            md5Checksum=digest,
            sha256Checksum=hashlib.sha256(f.content).hexdigest(),
            headRevisionId="0B" + digest[:20],
            originalFilename=f.name,
            webContentLink=f"https://drive.google.com/uc?id={f.id}&export=download",
        )
        if "." in f.name:
            out["fileExtension"] = out["fullFileExtension"] = f.name.rsplit(".", 1)[1]
    return out


def revision_json(ds: Dataset, f: DriveFile, r: Revision, base: str) -> dict[str, Any]:
    out: dict[str, Any] = {
        "kind": "drive#revision",
        "id": r.id,
        "mimeType": DOC_MIME,
        "modifiedTime": rfc3339(r.modifiedTime),
        "published": False,
        "exportLinks": {m: export_url(base, f.id, r.id, fmt) for m, fmt in DOC_EXPORTS.items()},
    }
    u = ds.user(r.user)
    if u:
        out["lastModifyingUser"] = user_json(u)
    return out


def _html_content(text: str) -> str:
    # Google's htmlContent escapes the text, turns newlines into <br> and links URLs.
    escaped = htmllib.escape(text, quote=True).replace("\n", "<br>")
    return re.sub(r"(https?://[^\s<]+)", r'<a href="\1" target="_blank">\1</a>', escaped)


def _post_json(ds: Dataset, kind: str, post: Comment | Reply) -> dict[str, Any]:
    """What comments and replies share: ids, times, an author without e-mail, text unless deleted."""
    out: dict[str, Any] = {
        "kind": kind,
        "id": post.id,
        "createdTime": rfc3339(post.createdTime),
        "modifiedTime": rfc3339(post.modifiedTime),
        "author": user_json(ds.user(post.author), with_email=False) or {"kind": "drive#user", "displayName": "Anonymous", "me": False},
        "deleted": post.deleted,
    }
    if not post.deleted:
        out["content"] = post.content
        out["htmlContent"] = _html_content(post.content)
    return out


def reply_json(ds: Dataset, r: Reply) -> dict[str, Any]:
    out = _post_json(ds, "drive#reply", r)
    if r.action:
        out["action"] = r.action
    return out


def comment_json(ds: Dataset, c: Comment, include_deleted: bool) -> dict[str, Any]:
    out = _post_json(ds, "drive#comment", c)
    out["resolved"] = c.resolved
    out["replies"] = [reply_json(ds, r) for r in c.replies if include_deleted or not r.deleted]
    if c.anchor:
        out["anchor"] = c.anchor
    if not c.deleted and c.quoted:
        out["quotedFileContent"] = {"mimeType": "text/html", "value": c.quoted}
    return out


_IMG_SRC = re.compile(r'src="\.\./images/([^"/]+)"')


def image_key(file_id: str, name: str) -> str:
    return hashlib.sha256(f"{file_id}/{name}".encode()).hexdigest()[:24]


def export_html(f: DriveFile, r: Revision, base: str) -> bytes:
    """The export bytes: stored HTML with image references made absolute emulator URLs."""

    def repl(m: re.Match[str]) -> str:
        name = m.group(1)
        return f'src="{base}docsz/{f.id}/{name}?key={image_key(f.id, name)}"'

    return _IMG_SRC.sub(repl, r.html).encode("utf-8")


class _Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        if tag in ("style", "script", "head"):
            self._skip += 1
        elif tag in ("br",):
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("style", "script", "head"):
            self._skip = max(0, self._skip - 1)
        elif tag in ("p", "li", "h1", "h2", "h3", "h4", "h5", "h6", "tr"):
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)


def export_text(r: Revision) -> bytes:
    p = _Text()
    p.feed(r.html)
    # Google's text export starts with a UTF-8 BOM and uses CRLF line ends.
    return ("\ufeff" + "".join(p.parts).replace("\n", "\r\n")).encode("utf-8")
