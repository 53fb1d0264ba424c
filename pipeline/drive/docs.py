"""One Doc's revisions and comment threads, as Drive lists them (the field masks docpipe stores)."""

from __future__ import annotations

from typing import Any

from pipeline.drive.client import DriveCallError, DriveClient

REVISION_FIELDS = (
    "nextPageToken,revisions(id,modifiedTime,lastModifyingUser(displayName,emailAddress,permissionId),exportLinks)"
)
_AUTHOR = "author(displayName,photoLink)"
COMMENT_FIELDS = (
    "nextPageToken,comments(id,createdTime,modifiedTime,"
    f"{_AUTHOR},content,htmlContent,quotedFileContent,anchor,resolved,deleted,"
    f"replies(id,createdTime,modifiedTime,{_AUTHOR},content,htmlContent,action,deleted))"
)
HTML_MIME = "text/html"


def check_revision(rev: Any, file_id: str) -> None:
    links = rev.get("exportLinks") if isinstance(rev, dict) else None
    if not (isinstance(rev, dict) and rev.get("id") and rev.get("modifiedTime")
            and isinstance(links, dict) and isinstance(links.get(HTML_MIME), str)):
        raise DriveCallError(
            f"revisions of doc {file_id}: malformed response from Drive (a revision lacks id, modifiedTime or an HTML export link)",
            status=None, reason="malformed",
        )


def list_revisions(client: DriveClient, file_id: str, page_size: int) -> list[dict[str, Any]]:
    def make(svc: Any, token: str | None) -> Any:
        return svc.revisions().list(fileId=file_id, fields=REVISION_FIELDS, pageSize=page_size, pageToken=token)

    revs = client.list_all(make, "revisions", f"revisions of doc {file_id}")
    for rev in revs:
        check_revision(rev, file_id)
    return revs


def list_comments(client: DriveClient, file_id: str, page_size: int, since: str = "") -> list[dict[str, Any]]:
    """Every thread (deleted ones included), or those modified at or after `since`, by (createdTime, id)."""
    extra = {"startModifiedTime": since} if since else {}

    def make(svc: Any, token: str | None) -> Any:
        return svc.comments().list(
            fileId=file_id, fields=COMMENT_FIELDS, pageSize=page_size, pageToken=token, includeDeleted=True, **extra
        )

    comments = client.list_all(make, "comments", f"comments of doc {file_id}")
    for c in comments:
        if not (c.get("id") and c.get("createdTime")):
            raise DriveCallError(f"comments of doc {file_id}: malformed response from Drive", status=None, reason="malformed")
    return sorted(comments, key=lambda c: (str(c["createdTime"]), str(c["id"])))
