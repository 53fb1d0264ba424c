#!/usr/bin/env python3
"""Lab image build vs no-op provision of the sample workshop, on a real Docker Engine.

Baseline (same run): a full build of the sample workshop's image (its debian-novnc base cached).
Figures: that build, the no-op provision of the unchanged spec, and their ratio; with
--registry, the first push too. The workshop images are removed at the end.

    python bench/lab_build.py [--registry 127.0.0.1:5000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pipeline.lab.image import engine, provision
from pipeline.lab.settings import LabSettings
from tests.support.docker_env import SAMPLE_WORKSHOP, make_archive


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--registry", default=None)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    client = engine.client()
    prefix = f"docpipe-bench-{os.urandom(3).hex()}"
    with tempfile.TemporaryDirectory() as tmp:
        make_archive(Path(tmp), {"workshops/ws-go-promisegrid.md": SAMPLE_WORKSHOP})
        settings = LabSettings(registry=None, prefix=prefix)
        provision.ensure_novnc_base(client, settings)  # the base is a cache, not part of the figure
        try:
            start = time.monotonic()
            (first,) = provision.provision(Path(tmp), settings).results
            build = time.monotonic() - start
            assert first.built and first.error is None, first.error
            noops = []
            for _ in range(args.repeat):
                start = time.monotonic()
                (again,) = provision.provision(Path(tmp), settings).results
                noops.append(time.monotonic() - start)
                assert not again.built
            noop = statistics.median(noops)
            print(f"baseline: build of the sample workshop image   {build:8.2f} s")
            print(f"no-op provision (unchanged spec), median of {args.repeat}  {noop:8.3f} s")
            print(f"ratio no-op / build                             {noop / build:8.4f}  ({build / noop:.0f}x faster)")
            if args.registry:
                pushed = LabSettings(registry=args.registry, prefix=prefix)
                start = time.monotonic()
                (res,) = provision.provision(Path(tmp), pushed).results
                push = time.monotonic() - start
                print(f"build+push to {args.registry} (fresh repository)   {push:8.2f} s  ({push / build:.2f}x the build)")
        finally:
            for image in client.images.list():
                for tag in image.tags:
                    if prefix in tag:
                        client.images.remove(tag, force=True)


if __name__ == "__main__":
    main()
