"""Credentials for Drive: an explicit key file, an access token, or Application Default Credentials.

Order: `--credentials FILE` (service-account or authorized-user JSON), then DOCPIPE_ACCESS_TOKEN
(e.g. from `gcloud auth print-access-token`), then ADC (GOOGLE_APPLICATION_CREDENTIALS, gcloud's
well-known file, metadata server). A key file's `token_uri` is honoured by google-auth, which is
what lets the emulator's token endpoint stand in for Google's. No message here ever holds a token.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import google.auth
import google.auth.exceptions
import google.oauth2.credentials
from google.auth.credentials import Credentials

from pipeline.errors import BadInput

SCOPES = ["https://www.googleapis.com/auth/drive.readonly"]
TOKEN_ENV = "DOCPIPE_ACCESS_TOKEN"


@dataclass(frozen=True)
class LoadedCredentials:
    credentials: Credentials
    source: str  # for messages: where they came from, never what they are


def load_credentials(path: Path | None = None) -> LoadedCredentials:
    if path is not None:
        return LoadedCredentials(_from_file(Path(path)), f"credentials file {path}")
    token = os.environ.get(TOKEN_ENV, "").strip()
    if token:
        return LoadedCredentials(google.oauth2.credentials.Credentials(token=token), TOKEN_ENV)
    try:
        creds, _ = google.auth.default(scopes=SCOPES)
    except google.auth.exceptions.DefaultCredentialsError:
        raise BadInput(
            "no Drive credentials: pass --credentials FILE, set DOCPIPE_ACCESS_TOKEN, "
            "or set GOOGLE_APPLICATION_CREDENTIALS"
        ) from None
    return LoadedCredentials(creds, "Application Default Credentials")


def _from_file(path: Path) -> Credentials:
    """Load only the two key types docpipe documents: a file of any other type is refused, since
    external-account configs can make google-auth run commands or read arbitrary URLs."""
    import json

    from google.oauth2 import service_account

    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BadInput(f"credentials file {path} does not exist") from None
    except (OSError, ValueError):
        raise BadInput(f"credentials file {path} is not readable JSON") from None
    kind = info.get("type") if isinstance(info, dict) else None
    try:
        if kind == "service_account":
            return service_account.Credentials.from_service_account_info(info, scopes=SCOPES)
        if kind == "authorized_user":
            return google.oauth2.credentials.Credentials.from_authorized_user_info(info, scopes=SCOPES)
    except (ValueError, KeyError):
        raise BadInput(f"credentials file {path} is missing fields of a {kind} key") from None
    raise BadInput(f"credentials file {path} is not a service-account or authorized-user key file")


def ensure_fresh(loaded: LoadedCredentials) -> None:
    """Fetch a token now (once, on one thread) so bad keys fail early and workers don't race to refresh."""
    creds = loaded.credentials
    if creds.valid or not _can_refresh(creds):
        return
    import google.auth.transport.requests

    try:
        creds.refresh(google.auth.transport.requests.Request())
    except google.auth.exceptions.RefreshError:
        raise BadInput(f"Drive credentials were rejected ({loaded.source})") from None
    except google.auth.exceptions.TransportError:
        raise BadInput(f"cannot reach the token endpoint for {loaded.source}") from None


def _can_refresh(creds: Credentials) -> bool:
    # A bare access token has nothing to refresh with; the first API call tells whether it works.
    if isinstance(creds, google.oauth2.credentials.Credentials):
        return bool(creds.refresh_token)
    return True
