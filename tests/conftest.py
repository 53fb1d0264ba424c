"""Shared test setup. Area-specific fixtures live in tests/support/<area>.py and are imported
by the test modules that use them, so each area's setup stays with its owner."""

from __future__ import annotations

import os

# Tests must never reach Google or any host but loopback.
os.environ.pop("GOOGLE_APPLICATION_CREDENTIALS", None)
os.environ.pop("DOCPIPE_ACCESS_TOKEN", None)
os.environ.pop("GITEA_TOKEN", None)

# The suite is the bar a change must pass, so it draws the same examples on every run (a random
# failure there blocks unrelated work). `HYPOTHESIS_PROFILE=explore` searches afresh, and wider;
# what it finds goes back into the tests as an @example.
from hypothesis import settings

settings.register_profile("docpipe", derandomize=True, print_blob=True)
settings.register_profile("explore", max_examples=5000, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "docpipe"))
