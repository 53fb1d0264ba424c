"""Shared test setup. Area-specific fixtures live in tests/support/<area>.py and are imported
by the test modules that use them, so each area's setup stays with its owner."""

from __future__ import annotations

import os

import pytest

# Tests must never reach Google or any host but loopback.
os.environ.pop("GOOGLE_APPLICATION_CREDENTIALS", None)
os.environ.pop("DOCPIPE_ACCESS_TOKEN", None)
os.environ.pop("GITEA_TOKEN", None)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Docker tests share one engine, its ports and session-wide images: under
    `--dist loadgroup` they all go to one worker, in order, while the other workers run the
    CPU-bound rest beside them (the Docker tests mostly wait on the engine)."""
    for item in items:
        if item.get_closest_marker("docker"):
            item.add_marker(pytest.mark.xdist_group("docker"))
