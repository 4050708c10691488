"""Benchmark every linker's throughput (boxes/s) on long synthetic videos.

    .venv/bin/python bench/bench_linkers.py [--videos 4 --frames 1000 5000 --boxes 5 50 --tubes 10]

The videos are ``make_video`` of ``bench/bench_temporal_prim.py``: actors on smooth random walks,
each seen as ~3 jittered high-scoring boxes per frame (missed 10% of the time), plus low-scoring
clutter up to about ``--boxes`` per frame (frames 0-based, boxes xyxy pixels in 640x480). For each
(frames, boxes per frame) setting and each linker: one warm-up call on a short video, then one timed
``linker.link(videos)``; prints seconds, boxes/s, videos/s, tubes and mean tube length, and the
machine's load average. No assertions on time. A linker is one line of ``LINKERS``.

The actor linker (``--actor``) needs pixels and a tracker: it links ``--actor-frames`` frames of
random 320x240 video with a random-init SiamFC (its cost does not depend on the weights or the
content) on the same kind of detections, and also prints tracked boxes/s (tracker steps).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from wsal.linking.temporal_prim import TemporalPrimLinker
from wsal.linking.viterbi import ViterbiLinker

# name -> linker object (``.link({video: Detections}) -> {video: Tubes}``) from the parsed args
LINKERS: dict[str, Callable[[argparse.Namespace], Any]] = {
    "temporal_prim": lambda a: TemporalPrimLinker(a.tubes, device=a.device, progress=False),
    "viterbi": lambda a: ViterbiLinker(a.tubes, device=a.device, progress=False),
}


def _make_video() -> Callable[..., Any]:
    """``make_video`` from bench_temporal_prim.py (bench/ is not a package)."""
    path = Path(__file__).resolve().parent / "bench_temporal_prim.py"
    spec = importlib.util.spec_from_file_location("_bench_tp", path)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module.make_video


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--videos", type=int, default=4, help="videos per setting")
    p.add_argument("--frames", type=int, nargs="+", default=[1000, 5000])
    p.add_argument("--boxes", type=int, nargs="+", default=[5, 50], help="~boxes per frame")
    p.add_argument("--tubes", type=int, default=10, help="K, tubes per video")
    p.add_argument("--linkers", nargs="+", default=list(LINKERS), choices=list(LINKERS))
    p.add_argument("--device", default=None, help="torch device for the linkers (default CPU)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--actor", action="store_true", help="also time the actor linker")
    p.add_argument("--actor-frames", type=int, default=200, help="frames of the actor video")
    p.add_argument("--actor-boxes", type=int, default=5, help="~boxes per frame, actor video")
    p.add_argument("--actor-tubes", type=int, default=10, help="N, actor tubes per video")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = p.parse_args()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    make_video = _make_video()

    print(f"load average before: {os.getloadavg()[0]:.2f} ({os.cpu_count()} CPUs)")
    print(
        f"{'linker':>14} {'frames':>6} {'box/fr':>6} {'boxes':>10} {'s':>8} {'boxes/s':>11} "
        f"{'videos/s':>8} {'tubes':>6} {'mean len':>8}"
    )
    for frames in args.frames:
        for boxes in args.boxes:
            rng = np.random.default_rng(args.seed)
            actors = min(4, max(1, boxes // 10))  # each actor brings ~3 boxes per frame
            videos = {f"v{i}": make_video(rng, frames, boxes, actors) for i in range(args.videos)}
            n = sum(len(d) for d in videos.values())
            warm = {"w": make_video(np.random.default_rng(args.seed + 1), 50, boxes, actors)}
            for name in args.linkers:
                linker = LINKERS[name](args)
                linker.link(warm)
                t0 = time.perf_counter()
                tubes = linker.link(videos)
                sec = time.perf_counter() - t0
                lengths = np.concatenate([t.lengths() for t in tubes.values()])
                print(
                    f"{name:>14} {frames:>6} {n / (frames * args.videos):>6.1f} {n:>10,} "
                    f"{sec:>8.2f} {n / sec:>11,.0f} {args.videos / sec:>8.2f} {len(lengths):>6} "
                    f"{lengths.mean() if len(lengths) else 0:>8.0f}"
                )
    if args.actor:
        bench_actor(args, make_video)
    print(f"load average after: {os.getloadavg()[0]:.2f}")


def bench_actor(args: argparse.Namespace, make_video: Callable[..., Any]) -> None:
    """Actor linking (Alg. 1) on one random-pixel video: boxes/s and tracked boxes/s."""
    from wsal.linking.actor import actor_link
    from wsal.linking.siamfc import SiamFCTracker
    from wsal.nets.siamfc import SiamFCNet

    rng = np.random.default_rng(args.seed)
    T = args.actor_frames
    dets = make_video(rng, T, args.actor_boxes, 1)
    frames = rng.integers(0, 255, (T, 240, 320, 3), dtype=np.uint8)
    dets = dets.select(np.flatnonzero(dets.boxes[:, 0] < 300))  # make_video is 640x480

    class Counting:
        def __init__(self) -> None:
            self.inner = SiamFCTracker(SiamFCNet(), device=args.device)
            self.steps = 0

        def track(self, frames, frame0, boxes0, progress=False):
            self.steps += len(frame0) * (frames.shape[0] - 1)
            return self.inner.track(frames, frame0, np.clip(boxes0, 0, [319, 239, 320, 240]))

    for batch in (1, 8):
        tracker = Counting()
        t0 = time.perf_counter()
        tubes = actor_link(frames, dets, tracker, num_tubes=args.actor_tubes, batch_seeds=batch)
        sec = time.perf_counter() - t0
        print(
            f"{'actor b=' + str(batch):>14} {T:>6} {len(dets) / T:>6.1f} {len(dets):>10,} "
            f"{sec:>8.2f} {len(dets) / sec:>11,.0f} {1 / sec:>8.2f} {tubes.num_tubes:>6} "
            f"{T:>8}   tracked boxes/s {tracker.steps / sec:,.0f} ({tracker.steps:,} steps)"
        )


if __name__ == "__main__":
    main()
