"""Benchmark Temporal Prim (STIL §3.2): batched linker on a long, dense, structured case.

    .venv/bin/python bench/bench_temporal_prim.py [--videos 16 --frames 4000 --boxes 50 --tubes 10]

The case: per video a few actors moving on smooth random walks, each seen as ~3 jittered,
high-scoring boxes per frame over part of the video (each missed 10% of the time), plus low-scoring clutter boxes
up to ~``--boxes`` per frame (frames 0-based, boxes xyxy pixels in a 640x480 frame). Prints boxes/s,
videos/s and seconds for the batched call (one warm-up call first), then the literal loop twin of
``tests/test_temporal_prim.py`` on a small single video, next to the fast linker on the same video.
No assertions on time.
"""

from __future__ import annotations

import argparse
import importlib.util
import time
from pathlib import Path

import numpy as np

from wsal.linking import temporal_prim, temporal_prim_batch
from wsal.structures import Detections

W, H = 640.0, 480.0


def make_video(rng: np.random.Generator, frames: int, boxes: int, actors: int = 4) -> Detections:
    """One structured video: ``actors`` tracks (3 jittered boxes per frame, each missed 10% of
    the time) + clutter."""
    parts_f, parts_b, parts_s = [], [], []
    t = np.arange(frames)
    for _ in range(actors):
        t0, t1 = np.sort(rng.integers(0, frames, 2))
        if rng.random() < 0.5:
            t0, t1 = 0, frames  # half the actors last the whole video
        size = rng.uniform(40, 120, 2)  # [2] w, h
        steps = rng.normal(0, 2.0, (frames, 2))  # [F, 2] random-walk velocity of the centre
        centre = np.cumsum(steps, axis=0) + rng.uniform(
            [size[0], size[1]], [W - size[0], H - size[1]]
        )
        centre = np.clip(centre, size / 2, [W, H] - size / 2)  # [F, 2]
        f = np.repeat(t[(t >= t0) & (t < t1)], 3)  # [n] 3 detections per frame of presence
        f = f[rng.random(len(f)) > 0.1]  # each missed 10% of the time
        c = centre[f] + rng.normal(0, 4, (len(f), 2))  # [n, 2] jittered centres
        wh = size * rng.uniform(0.85, 1.15, (len(f), 2))  # [n, 2]
        parts_f.append(f)
        parts_b.append(np.concatenate([c - wh / 2, c + wh / 2], axis=1))
        parts_s.append(rng.uniform(0.5, 1.0, len(f)))
    per_frame = np.bincount(np.concatenate(parts_f), minlength=frames)  # [F] actor boxes
    clutter = np.maximum(0, boxes - per_frame + rng.integers(-5, 6, frames))  # [F]
    f = np.repeat(t, clutter)
    xy = rng.uniform(0, [W - 20, H - 20], (len(f), 2))
    wh = rng.uniform(10, 150, (len(f), 2))
    parts_f.append(f)
    parts_b.append(np.concatenate([xy, np.minimum(xy + wh, [W, H])], axis=1))
    parts_s.append(rng.uniform(0.0, 0.45, len(f)))
    return Detections.from_unsorted(
        np.concatenate(parts_f), np.concatenate(parts_b), np.concatenate(parts_s), frames
    )


def _twin():
    """The loop twin from the tests (tests/ is not a package)."""
    path = Path(__file__).resolve().parents[1] / "tests" / "test_temporal_prim.py"
    spec = importlib.util.spec_from_file_location("_tp_tests", path)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module.twin


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--videos", type=int, default=16)
    p.add_argument("--frames", type=int, default=4000)
    p.add_argument("--boxes", type=int, default=50, help="about this many boxes per frame")
    p.add_argument("--tubes", type=int, default=10)
    p.add_argument(
        "--device", default=None, help="torch device for the batched call (default numpy/CPU)"
    )
    p.add_argument("--backend", default="auto", choices=["auto", "numpy", "torch"])
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()

    rng = np.random.default_rng(args.seed)
    t0 = time.perf_counter()
    videos = [make_video(rng, args.frames, args.boxes) for _ in range(args.videos)]
    n = sum(len(d) for d in videos)
    bmax = max(int(d.per_frame_counts().max()) for d in videos)
    print(
        f"case: {args.videos} videos x {args.frames} frames, {n:,} boxes "
        f"({n / (args.videos * args.frames):.1f}/frame, max {bmax}), K={args.tubes}, "
        f"built in {time.perf_counter() - t0:.1f} s"
    )

    temporal_prim_batch(
        [d.select(d.frame < 200) for d in videos[:2]],
        args.tubes,
        device=args.device,
        backend=args.backend,
    )  # warm-up
    t0 = time.perf_counter()
    tubes = temporal_prim_batch(videos, args.tubes, device=args.device, backend=args.backend)
    sec = time.perf_counter() - t0
    lengths = np.concatenate([t.lengths() for t in tubes])
    print(
        f"batched ({args.backend}, {args.device or 'cpu'}): {sec:.2f} s, {n / sec:,.0f} boxes/s, "
        f"{args.videos / sec:.2f} videos/s; {len(lengths)} tubes, mean length "
        f"{lengths.mean():.0f} frames, {int(lengths.sum()):,} boxes linked"
    )

    twin = _twin()
    small = make_video(np.random.default_rng(args.seed + 1), 100, args.boxes)
    t0 = time.perf_counter()
    ref, _, _ = twin(small, 3)
    sec_twin = time.perf_counter() - t0
    t0 = time.perf_counter()
    fast = temporal_prim(small, 3)
    sec_fast = time.perf_counter() - t0
    same = np.array_equal(ref, fast.box_index)
    print(
        f"single video 100 frames x {len(small) / 100:.0f} boxes, K=3: loop twin {sec_twin:.2f} s "
        f"({len(small) / sec_twin:,.0f} boxes/s), fast {sec_fast * 1e3:.1f} ms "
        f"({len(small) / sec_fast:,.0f} boxes/s), identical tubes: {same}"
    )


if __name__ == "__main__":
    main()
