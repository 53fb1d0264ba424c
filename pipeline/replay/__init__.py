"""Stage 2, replay: the store as git history (ARCHITECTURE.md, Contract 1 -> Contract 2).

The package, by job: `events` (a doc's history as events), `spool` (the events merged into time
order on disk, and the other lists that grow with the folder), `paths` (where each doc lives in
the tree), `authors` (git identities), `conversion` (the Markdown cache and its worker
pool), `replayer` (each doc's files and manifest entry as events apply, a commit per event),
`objects` and `packwriter` (git objects written as one pack of deltas per replay), `stage` (the
stage itself).
"""

from pipeline.replay.stage import ReplayResult, replay

__all__ = ["ReplayResult", "replay"]
