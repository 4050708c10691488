"""What the dataset check before every run costs (``dataset.validate=true``, the default).

Times :func:`wsal.data.validate.check_dataset` (what ``train.py`` runs after ``prepare()``: each
video file opened and its first frame decoded, frame folders listed and one image read; never a
whole video) on a prepared dataset, next to the time of reading its annotations, and prints
per-video figures. Default: the SynthActors at ``$WSAL_DATA/synthactors`` (``data/`` when unset),
which ``python train.py`` generates on first use.

    python bench/bench_validate.py [--root data/synthactors] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import wsal  # noqa: F401  (OpenCV before decord)
from wsal.data.datasets import AnnotatedDataset
from wsal.data.validate import check_dataset


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = Path(os.environ.get("WSAL_DATA", "data")) / "synthactors"
    ap.add_argument("--root", default=str(default), help="a wsal dataset folder")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    ds = AnnotatedDataset(root=args.root, name="bench", validate=True)
    t = time.perf_counter()
    prepared = ds.prepare()
    read_s = time.perf_counter() - t
    n = len(prepared.index.videos)
    frames = sum(v.nframes for v in prepared.index.videos.values())
    times = []
    for _ in range(args.repeats):  # the first pass may read from disk, the later ones from cache
        t = time.perf_counter()
        check_dataset(prepared)
        times.append(time.perf_counter() - t)
    print(f"dataset: {args.root}: {n} videos, {frames} frames")
    print(f"annotations read: {read_s:.3f} s")
    for i, s in enumerate(times):
        print(f"check pass {i + 1}: {s:.3f} s = {1000 * s / max(n, 1):.1f} ms per video")


if __name__ == "__main__":
    main()
