#!/usr/bin/env python3
"""Benchmark the Google-Docs-to-Markdown converter against `pandoc -f html -t gfm`, same run.

Prints: mean similarity (difflib ratio, after the tests' whitespace normalisation) to the expected
Markdown over the fixture corpus; conversion rate over the corpus (docs/s); and the time and
KB/s on a generated 200 KB Google-style export (headings, styled runs, nested lists,
code, tables, a footnote per section). pandoc runs as a process per document, as a
pipeline would call it; its start-up is reported separately so the ratio can be read both ways.

    python bench/convert.py [--repeat N]
"""

from __future__ import annotations

import argparse
import difflib
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline.convert import convert_with_warnings
from tests.support.convert import FIXTURES, large_html
from tests.test_convert import CASES, body_of, normalise


def pandoc(html: str) -> str:
    run = subprocess.run(["pandoc", "-f", "html", "-t", "gfm"], input=html.encode(), capture_output=True, check=True)
    return run.stdout.decode()


def ours(html: str) -> str:
    return body_of(convert_with_warnings(html)[0])


def cpu_seconds() -> float:
    """CPU time of this process and its finished children (pandoc): steady on a busy machine."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def best_of(fn, repeat: int) -> tuple[float, float]:
    """(wall, CPU) seconds of the fastest of `repeat` runs."""
    best = (float("inf"), float("inf"))
    for _ in range(repeat):
        wall, cpu = time.perf_counter(), cpu_seconds()
        fn()
        best = min(best, (time.perf_counter() - wall, cpu_seconds() - cpu))
    return best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="timing repetitions (best is kept)")
    args = parser.parse_args()
    if shutil.which("pandoc") is None:
        print("bench/convert.py: pandoc is not installed (apt-get install pandoc)", file=sys.stderr)
        return 2

    docs = {c.name: (FIXTURES / f"{c.name}.export.html").read_text(encoding="utf-8") for c in CASES}
    expected = {c.name: (FIXTURES / f"{c.name}.{c.variant}.md").read_text(encoding="utf-8") for c in CASES}

    def similarity(convert) -> dict[str, float]:
        return {n: difflib.SequenceMatcher(None, normalise(convert(h)), normalise(expected[n])).ratio() for n, h in docs.items()}

    sim_ours, sim_pandoc = similarity(ours), similarity(pandoc)
    print(f"{'fixture':36} {'docpipe':>8} {'pandoc':>8}")
    for name in docs:
        print(f"{name:36} {sim_ours[name]:8.3f} {sim_pandoc[name]:8.3f}")
    mean_ours, mean_pandoc = statistics.mean(sim_ours.values()), statistics.mean(sim_pandoc.values())
    print(f"mean similarity to expected Markdown: docpipe {mean_ours:.3f}  pandoc {mean_pandoc:.3f}  "
          f"(docpipe/pandoc {mean_ours / mean_pandoc:.2f}x)")

    corpus = list(docs.values())
    t_ours, _ = best_of(lambda: [ours(h) for h in corpus], args.repeat)
    t_pandoc, _ = best_of(lambda: [pandoc(h) for h in corpus], max(1, args.repeat // 2))
    t_start, _ = best_of(lambda: pandoc("<p></p>"), args.repeat)
    n = len(corpus)
    print(f"corpus rate ({n} docs): docpipe {n / t_ours:.0f} docs/s  pandoc {n / t_pandoc:.1f} docs/s  "
          f"(docpipe {t_pandoc / t_ours:.1f}x faster; pandoc start-up {t_start * 1000:.0f} ms/doc)")

    big = large_html(200_000)
    kb = len(big.encode()) / 1024
    t_big, c_big = best_of(lambda: ours(big), args.repeat)
    t_big_pandoc, c_big_pandoc = best_of(lambda: pandoc(big), max(1, args.repeat // 2))
    print(f"generated doc {kb:.0f} KB, wall: docpipe {t_big * 1000:.0f} ms ({kb / t_big:.0f} KB/s)  "
          f"pandoc {t_big_pandoc * 1000:.0f} ms ({kb / t_big_pandoc:.0f} KB/s)  (docpipe {t_big_pandoc / t_big:.1f}x faster)")
    print(f"generated doc {kb:.0f} KB, CPU:  docpipe {c_big * 1000:.0f} ms ({kb / c_big:.0f} KB/s)  "
          f"pandoc {c_big_pandoc * 1000:.0f} ms ({kb / c_big_pandoc:.0f} KB/s)  (docpipe {c_big_pandoc / c_big:.1f}x faster)")
    # CPU time is the verdict: wall time on a shared 2-core machine measures the neighbours too.
    verdict = "meets" if c_big < 0.2 and c_big < c_big_pandoc else "MISSES"
    print(f"goal (200 KB in < 200 ms and faster than pandoc): {verdict}")
    return 0 if verdict == "meets" else 1


if __name__ == "__main__":
    sys.exit(main())
