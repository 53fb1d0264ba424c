"""Stage 1, pull: every revision and comment of the Docs in a Drive folder, into WORKDIR/store.

`stage` runs a pull (what changed, per pipeline/drive/plan.py; the folder's record; the summary),
`docs` fetches each changed doc and writes its record, `feed` owns WORKDIR/cache/changes.json
(where the changes feed left off). Pull is the only writer of the store (pipeline/store.py owns
its format); the Drive client side (pipeline/drive/) only reads Drive.
"""

from pipeline.pull.stage import PullSummary, pull

__all__ = ["PullSummary", "pull"]
