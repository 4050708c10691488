"""``python -m wsal.data.synthactors``: generate SynthActors and print what was produced."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence

from wsal.data.synthactors.config import (
    CLASSES,
    GENERATOR_VERSION,
    DetectorNoise,
    SynthConfig,
    config_hash,
)
from wsal.data.synthactors.generator import ensure_synthactors, generate
from wsal.data.synthactors.statistics import format_stats, stats


def main(argv: Sequence[str] | None = None) -> int:
    d = SynthConfig()
    ap = argparse.ArgumentParser(
        prog="python -m wsal.data.synthactors",
        description="Generate the SynthActors benchmark (videos, annotations, simulated "
        "detections) and print what was produced.",
    )
    ap.add_argument("--out", required=True, help="dataset folder to write (replaced atomically)")
    ap.add_argument("--seed", type=int, default=d.seed)
    ap.add_argument(
        "--classes",
        default=",".join(d.classes),
        help=f"comma-separated subset of {','.join(CLASSES)}",
    )
    ap.add_argument("--videos-per-class-train", type=int, default=d.videos_per_class_train)
    ap.add_argument("--videos-per-class-test", type=int, default=d.videos_per_class_test)
    ap.add_argument("--width", type=int, default=d.width)
    ap.add_argument("--height", type=int, default=d.height)
    ap.add_argument("--min-frames", type=int, default=d.min_frames)
    ap.add_argument("--max-frames", type=int, default=d.max_frames)
    ap.add_argument("--fps", type=float, default=d.fps)
    ap.add_argument("--min-actors", type=int, default=d.min_actors)
    ap.add_argument("--max-actors", type=int, default=d.max_actors)
    ap.add_argument("--hard", action="store_true", help="distractors may perform another class")
    ap.add_argument("--hard-prob", type=float, default=d.hard_prob)
    ap.add_argument("--context-prob", type=float, default=d.context_prob)
    ap.add_argument(
        "--fp-per-frame",
        type=float,
        default=d.detector.fp_per_frame,
        help="simulated detector: mean background proposals per frame",
    )
    ap.add_argument(
        "--proposals-per-actor",
        type=int,
        default=d.detector.proposals_per_actor,
        help="simulated detector: jittered boxes per detected actor per frame",
    )
    ap.add_argument(
        "--miss-base",
        type=float,
        default=d.detector.miss_base,
        help="simulated detector: true-miss rate of a fully visible actor",
    )
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument(
        "--reuse",
        action="store_true",
        help="keep an existing dataset at --out if it was made with the same config",
    )
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args(argv)
    try:
        det = DetectorNoise(
            fp_per_frame=args.fp_per_frame,
            proposals_per_actor=args.proposals_per_actor,
            miss_base=args.miss_base,
        )
        cfg = SynthConfig(
            classes=args.classes,
            videos_per_class_train=args.videos_per_class_train,
            videos_per_class_test=args.videos_per_class_test,
            width=args.width,
            height=args.height,
            min_frames=args.min_frames,
            max_frames=args.max_frames,
            fps=args.fps,
            min_actors=args.min_actors,
            max_actors=args.max_actors,
            hard=args.hard,
            hard_prob=args.hard_prob,
            context_prob=args.context_prob,
            detector=det,
            seed=args.seed,
        )
    except ValueError as e:
        ap.error(str(e))
    t0 = time.perf_counter()
    if args.reuse:
        out = ensure_synthactors(args.out, cfg, workers=args.workers, progress=not args.no_progress)
    else:
        out = generate(args.out, cfg, workers=args.workers, progress=not args.no_progress)
    wall = time.perf_counter() - t0
    st = stats(out)
    print(f"SynthActors v{GENERATOR_VERSION} -> {out}")
    print(
        f"  config:       seed {cfg.seed}, {len(cfg.classes)} classes, "
        f"{cfg.width}x{cfg.height}, {cfg.min_frames}-{cfg.max_frames} frames @ {cfg.fps:g} fps, "
        f"{cfg.min_actors}-{cfg.max_actors} actors, hard={cfg.hard}, "
        f"context_prob={cfg.context_prob:g} (hash {config_hash(cfg)})"
    )
    print(format_stats(st))
    print(f"  wall time:    {wall:.1f} s ({args.workers} workers)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
