"""Stage 2, replay: the store as git history (ARCHITECTURE.md, Contract 1 -> Contract 2).

The package, by job: `events` (the store's history as ordered events), `paths` (where each doc
lives in the tree), `authors` (git identities), `conversion` (the Markdown cache and its worker
pool), `objects` and `packwriter` (git objects written as one pack), `stage` (the stage itself).
"""

from pipeline.replay.stage import ReplayResult, replay

__all__ = ["ReplayResult", "replay"]
