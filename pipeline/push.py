"""Stage 3: make sure the Gitea repository exists, then push the archive's `main` to it, and its
`site` branch (the MkDocs project `publish --site-branch` commits) when there is one.

The REST side lives in `pipeline.gitea`; this module owns the decisions (which repo, create or
reuse, fast-forward or refuse) and the git side (pygit2 smart HTTP with the token as the basic-auth
password through a credentials callback, on an anonymous remote so nothing lands in .git/config).
"""

from __future__ import annotations

import re
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pygit2

from pipeline import USER_AGENT
from pipeline.archive import BRANCH, MANIFEST, open_main, read_manifest
from pipeline.errors import BadInput, DocpipeError
from pipeline.gitea import GiteaClient
from pipeline.slugs import repo_slug

TOPICS = ["docpipe", "google-docs"]
# Gitea's own limits on CreateRepoOption/EditRepoOption (binding MaxSize).
MAX_DESCRIPTION, MAX_WEBSITE = 2048, 1024
PUSH_ATTEMPTS = 3
# libgit2's wording for faults worth another attempt (connection trouble, a server's 5xx).
TRANSIENT = ("failed to connect", "connection", "timed out", "failed to send", "500", "502", "503", "504")
GIT_DIRECTION_PUSH = 1  # libgit2's git_direction; pygit2 has no named constant for it


@dataclass
class PushSummary:
    owner: str
    repo: str
    html_url: str
    created: bool
    private: bool
    before: str | None  # remote main before the push (None: the remote had no main)
    after: str  # remote main now (= local main)
    up_to_date: bool
    forced: bool
    # The `site` branch, pushed with main under the same rules; all None when the archive has none.
    site_before: str | None = None
    site_after: str | None = None
    site_forced: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"stage": "push", "branch": "main", **asdict(self)}

    def text(self) -> str:
        where = f"{self.owner}/{self.repo}"
        site = ""
        if self.site_after is not None and self.site_before != self.site_after:
            how = "force-pushed" if self.site_forced else "pushed"
            site = f"; {how} site {(self.site_before or '(none)')[:12]} -> {self.site_after[:12]}"
        if self.up_to_date:
            return f"{where}: main already at {self.after[:12]}, nothing to push{site} ({self.html_url})"
        made = " (created)" if self.created else ""
        how = "force-pushed" if self.forced else "pushed"
        return f"{how} main {(self.before or '(none)')[:12]} -> {self.after[:12]} to {where}{made}{site} ({self.html_url})"


@dataclass(frozen=True)
class Archive:
    repo: pygit2.Repository
    head: pygit2.Oid
    folder_name: str | None
    folder_link: str | None


def open_archive(workdir: Path) -> Archive:
    repo, commit = open_main(workdir)
    manifest = read_manifest(repo, commit)  # the one reader: a corrupt manifest fails as in replay and render
    folder = manifest.folder if manifest is not None else {}
    name = folder.get("name") if isinstance(folder.get("name"), str) else None
    link = folder.get("webViewLink") if isinstance(folder.get("webViewLink"), str) else None
    return Archive(repo, commit.id, name, link)


def _repo_options(name: str, archive: Archive, private: bool) -> dict[str, Any]:
    options: dict[str, Any] = {"name": name, "private": private, "auto_init": False, "default_branch": "main"}
    if archive.folder_name:
        # Folder names come from Drive (untrusted): one line, bounded; Gitea renders it as text.
        desc = " ".join(f"Google Docs history of the Drive folder {archive.folder_name}, kept by docpipe".split())
        options["description"] = desc[:MAX_DESCRIPTION]
    return options


def _website(link: str | None) -> str | None:
    if link and re.match(r"https?://[^\s]+$", link) and len(link) <= MAX_WEBSITE:
        return link
    return None


class _Callbacks(pygit2.RemoteCallbacks):
    """Token as the basic-auth password; offered a bounded number of times, so a token git refuses
    fails instead of looping (libgit2 asks again after every 401)."""

    def __init__(self, username: str, token: str) -> None:
        super().__init__()
        self._username, self._token = username, token
        self.asked = 0
        self.rejected: dict[str, str] = {}

    def credentials(self, url, username_from_url, allowed_types):  # type: ignore[no-untyped-def]
        self.asked += 1
        if self.asked > 3 or not allowed_types & pygit2.enums.CredentialType.USERPASS_PLAINTEXT:
            raise BadInput("Gitea refused the token for git over HTTP (401)")
        return pygit2.UserPass(self._username, self._token)

    def push_update_reference(self, refname: str, message: str | None) -> None:
        if message:
            self.rejected[refname] = message


def _git_error(exc: Exception, token: str, where: str) -> DocpipeError:
    text = " ".join(str(exc).replace(token, "***").split())[:300]
    low = text.lower()
    if "403" in low:
        return BadInput(f"Gitea refused the push to {where} (403): the token's user has no write access")
    if "401" in low or "authentication" in low:
        return BadInput(f"Gitea refused the token for git over HTTP on {where} (401)")
    if "404" in low:
        return DocpipeError(f"Gitea has no git repository at {where} (404)")
    return DocpipeError(f"git push to {where} failed: {text}")


def _transient(exc: Exception) -> bool:
    # Judged on git's own message, not on ours: a repository named e.g. "connection-notes" or a
    # SHA containing "500" must not make a refusal look like a network fault.
    low = str(exc).lower()
    return any(s in low for s in TRANSIENT)


def _remote_heads(remote: pygit2.Remote, callbacks: _Callbacks, names: list[str]) -> dict[str, pygit2.Oid]:
    # Ask receive-pack (push direction): it needs write access, so a missing permission shows here.
    remote.connect(callbacks=callbacks, direction=GIT_DIRECTION_PUSH)
    return {head.name: head.oid for head in remote.list_heads(connect=False) if head.name in names}


@dataclass(frozen=True)
class _Pushed:
    before: str | None  # the remote branch before the push (None: it had none)
    forced: bool


def _push_branches(
    archive: Archive, branches: dict[str, pygit2.Oid], url: str, username: str, token: str, where: str, force: bool
) -> dict[str, _Pushed]:
    """Push each local branch (ref name -> tip) in one push; retries connection failures.

    Every branch follows main's rules: fast-forward only unless `force`; a refusal of any branch is
    decided before anything is sent, so a refused run changes nothing on the server."""
    repo = archive.repo
    # libgit2 sends "git/2.0 (<this>)": Gitea's logs then show which docpipe pushed.
    pygit2.settings.user_agent = USER_AGENT
    # An anonymous remote lives only in memory: the URL (credential-free anyway) never reaches .git/config.
    for attempt in range(PUSH_ATTEMPTS):
        callbacks = _Callbacks(username, token)
        try:
            # One connection (push direction) serves both the ref listing and the push.
            remote = repo.remotes.create_anonymous(url)
            remote_heads = _remote_heads(remote, callbacks, list(branches))
            result: dict[str, _Pushed] = {}
            specs: list[str] = []
            for ref, tip in branches.items():
                before = remote_heads.get(ref)
                forced = before is not None and before != tip and not (
                    before in repo and repo.descendant_of(tip, before))
                if forced and not force:
                    short = ref.removeprefix("refs/heads/")
                    raise DocpipeError(
                        f"refusing to push: {short} on {where} ({str(before)[:12]}) has commits that are not in the "
                        f"archive (someone else pushed); pass --force to overwrite them"
                    )
                result[ref] = _Pushed(str(before) if before is not None else None, forced)
                if before != tip:
                    specs.append(("+" if forced else "") + f"{ref}:{ref}")
            if specs:
                remote.push(specs, callbacks=callbacks, threads=0)  # 0: pack with every core
        except (pygit2.GitError, OSError) as exc:  # our own DocpipeErrors (refusal, bad token) pass through
            if attempt < PUSH_ATTEMPTS - 1 and _transient(exc):
                time.sleep(0.25 * 2**attempt)
                continue
            raise _git_error(exc, token, where) from None
        if callbacks.rejected:
            ref, message = min(callbacks.rejected.items())
            reason = " ".join(message.split())[:200]
            raise DocpipeError(f"Gitea rejected the push of {ref.removeprefix('refs/heads/')} to {where}: {reason}")
        return result
    raise AssertionError("unreachable")


def push(
    workdir: Path,
    *,
    gitea_url: str | None,
    owner: str | None,
    repo: str | None,
    token: str | None,
    private: bool = True,
    force: bool = False,
    client: GiteaClient | None = None,
) -> PushSummary:
    """Ensure `owner/repo` exists on Gitea (created with the folder's description, website and
    topics when missing; used as is otherwise) and push the archive's main to it, and its `site`
    branch when `publish --site-branch` made one."""
    # Settings first (URL, owner, token: all BadInput), so every caller gets the same messages
    # before anything is read or sent.
    gitea = client or GiteaClient(gitea_url or "", token or "")  # empty: the client says what is missing
    if not owner:
        raise BadInput("no Gitea owner: pass --owner or set [gitea] owner in docpipe.toml")
    archive = open_archive(workdir)
    if repo is None:
        if not archive.folder_name:
            raise BadInput(f"the archive has no {MANIFEST} naming the folder: pass --repo")
        repo = repo_slug(archive.folder_name)
    me = gitea.current_user()
    existing = gitea.get_repo(owner, repo)
    created = existing is None
    if existing is None:
        target = gitea.resolve_owner(owner, me)
        info = gitea.create_repo(target, _repo_options(repo, archive, private))
        full = info["full_name"]
        o, r = full.split("/", 1)
        website = _website(archive.folder_link)
        if website:
            info = gitea.edit_repo(o, r, {"website": website})
        gitea.set_topics(o, r, TOPICS)
    else:
        info = existing
        full = info["full_name"]
        o, r = full.split("/", 1)
        perms = info.get("permissions") or {}
        if perms and not perms.get("push"):
            raise BadInput(f"the token's user {me.get('login')!r} has no write access to {full} on Gitea (403)")
    # Imported here: publish imports Markdown, which push never needs.
    from pipeline.publish import SITE_BRANCH

    branches = {BRANCH: archive.head}
    site_ref = archive.repo.references.get(SITE_BRANCH)
    site_tip = site_ref.peel(pygit2.Commit).id if site_ref is not None else None
    if site_tip is not None:
        branches[SITE_BRANCH] = site_tip
    pushed = _push_branches(archive, branches, gitea.git_url(full), me.get("login") or "docpipe", gitea.token, full, force)
    before, forced = pushed[BRANCH].before, pushed[BRANCH].forced
    site = pushed.get(SITE_BRANCH)
    return PushSummary(
        owner=o,
        repo=r,
        html_url=str(info.get("html_url") or f"{gitea.base_url}/{full}"),
        created=created,
        private=bool(info.get("private", private)),
        before=before,
        after=str(archive.head),
        up_to_date=before == str(archive.head),
        forced=forced,
        site_before=site.before if site else None,
        site_after=str(site_tip) if site_tip is not None else None,
        site_forced=site.forced if site else False,
    )
