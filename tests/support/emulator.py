"""Fixtures for the Drive emulator's tests: a running emulator and a real Drive v3 client for it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import google_auth_httplib2
import httplib2
import pytest
from google.oauth2.credentials import Credentials
from googleapiclient.discovery import build

from pipeline.emulator import Emulator, generate_dataset, load_dataset
from pipeline.resources import shipped

TOKEN = "emulator-test-token"


def drive_service(emu: Emulator, credentials: Any = None, token: str = TOKEN) -> Any:
    """googleapiclient's Drive v3, built offline, pointed at the emulator, no retries of its own."""
    creds = credentials if credentials is not None else Credentials(token)
    http = google_auth_httplib2.AuthorizedHttp(creds, http=httplib2.Http(timeout=10))
    return build("drive", "v3", http=http, static_discovery=True, cache_discovery=False,
                 client_options={"api_endpoint": emu.api_endpoint})


def authorized_get(emu: Emulator, url: str, token: str | None = TOKEN) -> tuple[int, dict[str, str], bytes]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    resp, body = httplib2.Http(timeout=10).request(url, headers=headers)
    return resp.status, dict(resp), body


def error_of(exc: Exception) -> dict[str, Any]:
    """The JSON error body of a googleapiclient HttpError."""
    return json.loads(exc.content)  # type: ignore[attr-defined]


@pytest.fixture
def sample_emulator() -> Iterator[Emulator]:
    with Emulator(load_dataset(sample_data_dir()), token=TOKEN) as emu:
        yield emu


@pytest.fixture
def small_emulator() -> Iterator[Emulator]:
    ds = generate_dataset(docs=3, revisions=5, size=(2_000, 4_000), comments=3, replies=2, seed=3, subfolders=1)
    with Emulator(ds, token=TOKEN) as emu:
        yield emu


def sample_data_dir() -> Path:
    return shipped("sample-data")
