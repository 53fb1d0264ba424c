"""Shared test setup. Area-specific fixtures live in tests/support/<area>.py and are imported
by the test modules that use them, so each area's setup stays with its owner."""

from __future__ import annotations

import os

# Tests must never reach Google or any host but loopback.
os.environ.pop("GOOGLE_APPLICATION_CREDENTIALS", None)
os.environ.pop("DOCPIPE_ACCESS_TOKEN", None)
os.environ.pop("GITEA_TOKEN", None)
