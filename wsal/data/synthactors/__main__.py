"""``python -m wsal.data.synthactors``: generate SynthActors and print what was produced, or
(``--compare``) print the regime statistics of datasets side by side."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from typing import Any

from wsal.data.synthactors.config import (
    CLASSES,
    GENERATOR_VERSION,
    PRESETS,
    SynthConfig,
    config_hash,
)
from wsal.data.synthactors.generator import ensure_synthactors, generate
from wsal.data.synthactors.statistics import (
    format_comparison,
    format_stats,
    gt_statistics,
    load_any_index,
    stats,
)

# CLI flag -> SynthConfig field (flags left out keep the preset's value)
_FIELDS: tuple[tuple[str, type, str], ...] = (
    ("seed", int, ""),
    ("videos_per_class_train", int, ""),
    ("videos_per_class_test", int, ""),
    ("width", int, ""),
    ("height", int, ""),
    ("min_frames", int, ""),
    ("max_frames", int, ""),
    ("fps", float, ""),
    ("min_actors", int, ""),
    ("max_actors", int, ""),
    ("min_action_frac", float, "share of the video the action covers: lower end"),
    ("max_action_frac", float, "... upper end"),
    ("full_action_prob", float, "probability that the action spans the whole video"),
    ("co_performer_prob", float, "probability that a distractor performs the class too"),
    ("hard_prob", float, ""),
    ("context_prob", float, ""),
)
# CLI flag -> DetectorNoise field
_DETECTOR: tuple[tuple[str, type, str], ...] = (
    ("proposals_per_actor", int, "simulated detector: jittered boxes per detected actor per frame"),
    ("fp_per_frame", float, "simulated detector: mean background proposals per frame"),
    ("miss_base", float, "simulated detector: true-miss rate of a fully visible actor"),
    ("score_deform", float, "simulated detector: score drop per unit of pose deformation"),
)


def _parser() -> argparse.ArgumentParser:
    d = SynthConfig()
    ap = argparse.ArgumentParser(
        prog="python -m wsal.data.synthactors",
        description="Generate the SynthActors benchmark (videos, annotations, simulated "
        "detections) and print what was produced; or, with --compare, print the regime "
        "statistics of datasets side by side.",
    )
    ap.add_argument("--out", help="dataset folder to write (replaced atomically)")
    ap.add_argument(
        "--preset",
        default="trimmed",
        help=f"regime: {' | '.join(PRESETS)} (default trimmed); the flags below override it",
    )
    ap.add_argument(
        "--classes",
        default=None,
        help=f"comma-separated subset of {','.join(CLASSES)} (default all)",
    )
    for name, typ, text in _FIELDS:
        ap.add_argument(
            "--" + name.replace("_", "-"),
            type=typ,
            default=None,
            help=(text + " " if text else "") + f"(default {getattr(d, name)})",
        )
    ap.add_argument("--hard", action="store_true", help="distractors may perform another class")
    for name, typ, text in _DETECTOR:
        ap.add_argument(
            "--" + name.replace("_", "-"),
            type=typ,
            default=None,
            help=f"{text} (default {getattr(d.detector, name)})",
        )
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument(
        "--reuse",
        action="store_true",
        help="keep an existing dataset at --out if it was made with the same config",
    )
    ap.add_argument("--no-progress", action="store_true")
    ap.add_argument(
        "--compare",
        nargs="+",
        metavar="NAME=PATH",
        help="instead of generating: one column per dataset, PATH an annotation file (ACT "
        "*-GT.pkl, UCF101-24 pyannot, wsal JSON, ...) or a SynthActors folder",
    )
    return ap


def _compare(ap: argparse.ArgumentParser, items: Sequence[str]) -> int:
    columns = {}
    for item in items:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            ap.error(f"--compare expects NAME=PATH, got {item!r}")
        columns[name] = gt_statistics(load_any_index(path))
    print(format_comparison(columns), end="")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    ap = _parser()
    args = ap.parse_args(argv)
    if args.compare:
        return _compare(ap, args.compare)
    if not args.out:
        ap.error("--out is required (or --compare)")
    over: dict[str, Any] = {
        n: getattr(args, n) for n, _, _ in _FIELDS if getattr(args, n) is not None
    }
    if args.classes is not None:
        over["classes"] = args.classes
    if args.hard:
        over["hard"] = True
    det = {n: getattr(args, n) for n, _, _ in _DETECTOR if getattr(args, n) is not None}
    if det:
        over["detector"] = det  # the other DetectorNoise fields keep their defaults
    try:
        cfg = SynthConfig.preset(args.preset, **over)  # checked before anything is generated
    except (TypeError, ValueError) as e:
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
        f"  config:       preset {args.preset}, seed {cfg.seed}, {len(cfg.classes)} classes, "
        f"{cfg.width}x{cfg.height}, {cfg.min_frames}-{cfg.max_frames} frames @ {cfg.fps:g} fps, "
        f"{cfg.min_actors}-{cfg.max_actors} actors, hard={cfg.hard}, "
        f"context_prob={cfg.context_prob:g} (hash {config_hash(cfg)})"
    )
    print(format_stats(st))
    print(f"  wall time:    {wall:.1f} s ({args.workers} workers)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
