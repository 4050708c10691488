"""Benchmark box-feature extraction on the default SynthActors (data/synthactors, 252 videos).

    .venv/bin/python bench/bench_features.py [--extractor hoghof|cnn] [--workers 1] [--videos N]
                                             [--descriptors] [--cnn-encoder small]

Runs :func:`wsal.features.extract_box_features` from scratch (into a fresh temporary cache, so
decoding, flow, HOG/HOF or the CNN, chunk writing and the memmap assembly are all timed) over every
video (or the first ``--videos``), then reopens the cache (the warm path). Prints wall time,
boxes/s and frames/s; with ``--descriptors`` also the 2 fps video descriptors. The dataset is
generated on first use as ``dataset=synthetic`` does. No assertions on time.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np

import wsal  # noqa: F401  (OpenCV before decord)
from wsal.data.datasets import SynthActors
from wsal.detection.backends import StoredDetections
from wsal.features import HogHofExtractor, extract_box_features, extract_video_descriptors


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--root", default="data/synthactors")
    ap.add_argument("--extractor", choices=("hoghof", "cnn"), default="hoghof")
    ap.add_argument("--workers", type=int, default=1, help="hoghof: processes over videos")
    ap.add_argument("--videos", type=int, default=None, help="only the first N videos")
    ap.add_argument("--descriptors", action="store_true", help="also time video descriptors")
    ap.add_argument("--cnn-encoder", default="small")
    args = ap.parse_args()

    prepared = SynthActors(root=args.root, progress=False).prepare()
    detector = StoredDetections(name="synthetic")
    t0 = time.perf_counter()
    dets = detector.load(prepared.index, prepared.detections)
    t_load = time.perf_counter() - t0
    videos = sorted(dets)[: args.videos] if args.videos else sorted(dets)
    boxes = sum(len(dets[v]) for v in videos)
    frames = sum(prepared.index.videos[v].nframes for v in videos)
    if args.extractor == "hoghof":
        ext = HogHofExtractor(workers=args.workers)
    else:
        from wsal.features import CNNExtractor  # imports torch + Lightning

        ext = CNNExtractor(args.cnn_encoder, device="auto")
    print(
        f"{prepared.name}: {len(videos)} videos, {frames} frames, {boxes} boxes "
        f"(detections loaded in {t_load:.2f} s); {ext!r}; workers={args.workers}; "
        f"cpu cores={os.cpu_count()}, load avg {os.getloadavg()[0]:.2f}"
    )
    det_key = f"{detector.name}-{detector.cache_key(prepared.detections)}"
    with tempfile.TemporaryDirectory(prefix="bench_features_") as tmp:
        cache = Path(tmp)
        t0 = time.perf_counter()
        store = extract_box_features(
            ext, prepared.index, dets, cache, prepared.cache_key, det_key, videos, progress=True
        )
        wall = time.perf_counter() - t0
        print(
            f"box features (cold): {wall:.1f} s wall, {boxes / wall:,.0f} boxes/s, "
            f"{frames / wall:,.0f} frames/s, {len(videos) / wall:.2f} videos/s; "
            f"store {store.num_rows} x {store.dim} float32 "
            f"({store.data_path.stat().st_size / 2**20:.1f} MiB)"
        )
        t0 = time.perf_counter()
        again = extract_box_features(
            ext, prepared.index, dets, cache, prepared.cache_key, det_key, videos, progress=False
        )
        again.check({v: dets[v] for v in videos})
        rows = sum(float(np.asarray(again[v]).sum()) for v in videos)  # touch every row
        print(f"box features (cached, checked, all rows read): {time.perf_counter() - t0:.2f} s"
              f" (checksum {rows:.3f})")  # fmt: skip
        if args.descriptors:
            t0 = time.perf_counter()
            desc = extract_video_descriptors(
                ext, prepared.index, cache, prepared.cache_key, fps=2.0, videos=videos
            )
            wall = time.perf_counter() - t0
            print(
                f"video descriptors at 2 fps: {wall:.1f} s wall, {len(desc) / wall:.2f} videos/s, "
                f"D_g={ext.descriptor_dim}"
            )
    print(f"load avg after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
