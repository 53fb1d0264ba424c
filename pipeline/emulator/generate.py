"""Synthetic, deterministic Drives for tests and benchmarks (`generate_dataset`)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from pipeline.emulator.gdoc_html import render
from pipeline.emulator.model import Dataset, make_id

_WORDS = (
    "desktop workshop container image lab student browser session promise grid kernel commit revision "
    "folder document comment reply author history network storage edge replica cluster build deploy "
    "schedule review draft status title header index proposal agenda notes summary decision option"
).split()

_EPOCH = datetime(2024, 1, 1, tzinfo=UTC)


def _time(seconds: int) -> str:
    return (_EPOCH + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _sentence(rng: random.Random, n: int) -> str:
    words = [rng.choice(_WORDS) for _ in range(n)]
    return " ".join(words).capitalize() + "."


def generate_dataset(
    docs: int = 20,
    revisions: int = 30,
    size: tuple[int, int] = (5_000, 20_000),
    comments: int = 0,
    replies: int = 0,
    seed: int = 1,
    subfolders: int = 0,
    folders: int = 0,
    depth: int = 4,
) -> Dataset:
    """`docs` Google Docs of `revisions` revisions each, whose export HTML grows from about
    size[0] to size[1] bytes; `comments` threads per doc with `replies` replies each (every
    third thread resolved by its last reply); docs spread over `subfolders` nested folders, or
    over a tree of `folders` folders (three children each, at most `depth` levels deep). The same arguments always give the same Dataset (ids, times, bytes)."""
    rng = random.Random(seed)
    ds = Dataset(make_id("root", str(seed)), f"Generated folder {seed}", _time(0))
    users = ["alice", "bob", "carol", "dave"]
    for key in users:
        ds.add_user(key, key.capitalize() + " Example", f"{key}@example.org" if key != "dave" else None)
    places = [ds.root_id]
    for k in range(subfolders):
        places.append(ds.add_folder(f"Sub {k + 1}", places[-1], _time(0), id=make_id("sub", str(seed), str(k))))
    levels = {ds.root_id: 0}  # insertion order is breadth first
    for k in range(folders):
        order = list(levels)
        parent = order[k // 3] if levels[order[k // 3]] < depth else ds.root_id
        fid = ds.add_folder(f"Folder {k + 1}", parent, _time(0), id=make_id("tree", str(seed), str(k)))
        levels[fid] = levels[parent] + 1
    places += [f for f in levels if f != ds.root_id]
    lo, hi = size
    for d in range(docs):
        parent = places[d % len(places)]
        name = f"mcp-{100 + d}-generated-doc-{d}"
        fid = ds.add_doc(name, parent, _time(d), id=make_id("gen", str(seed), str(d)), owner=users[d % len(users)])
        paras: list[str] = [f"Name: {name}", "", f"Title: generated doc {d}", "", "Status: draft", "", "# Notes"]
        for r in range(revisions):
            target = lo + (hi - lo) * r // max(1, revisions - 1)
            html = render("\n".join(paras), seed=fid)
            while len(html) < target:
                deficit = target - len(html)
                for _ in range(max(1, deficit // 400)):
                    if rng.random() < 0.2:
                        paras.append(f"- {_sentence(rng, rng.randint(6, 14))}")
                    else:
                        paras.append(_sentence(rng, rng.randint(25, 50)))
                html = render("\n".join(paras), seed=fid)
            # Revisions interleave across docs in time, as a working group edits them.
            ds.add_revision(fid, html, users[(d + r) % len(users)], _time(3600 * (r + 1) + 60 * d))
        for c in range(comments):
            t0 = 3600 * (revisions + 1) + 60 * d + 7 * c
            cid = ds.add_comment(fid, users[c % len(users)], _sentence(rng, 8), _time(t0), quoted=_sentence(rng, 4))
            for k in range(replies):
                action = "resolve" if (c % 3 == 0 and k == replies - 1) else None
                ds.add_reply(fid, cid, users[(c + k + 1) % len(users)], _sentence(rng, 6), _time(t0 + k + 1), action=action)
    return ds
