"""Command-line linkers: ``python -m wsal.linking <linker> --detections D --out T ...``.

Example::

    python -m wsal.linking temporal_prim --detections dets.npz --out tubes.npz --num-tubes 10

Reads a detections file or folder (``wsal.data.detections``; frames 0-based, boxes xyxy pixels),
links every video and writes columnar ``TubeDetections`` (DESIGN §4): one row per tube, label -1,
score = mean box score, tube rows in frame order. Each linker is a subcommand, so ``viterbi`` and
``actor`` can be added next to ``temporal_prim``.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence

from tqdm import tqdm

from wsal.data.detections import load_detections
from wsal.linking.temporal_prim import temporal_prim_batch
from wsal.structures import TubeDetections


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m wsal.linking",
        description="Link per-frame detections into tubes (one subcommand per linker).",
    )
    sub = parser.add_subparsers(dest="linker", required=True, metavar="LINKER")

    tp = sub.add_parser("temporal_prim", help="Temporal Prim (STIL §3.2, Eq. 4)")
    tp.add_argument("--detections", required=True, help="detections .npz file or folder")
    tp.add_argument("--out", required=True, help="output TubeDetections (.npz, or .json)")
    tp.add_argument("--num-tubes", type=int, required=True, help="K, most tubes per video")
    tp.add_argument("--min-iou", type=float, default=0.1, help="edge IoU threshold (Eq. 4: 0.1)")
    tp.add_argument(
        "--min-score", type=float, default=0.0, help="only boxes with score > this are linked"
    )
    tp.add_argument("--device", default="cpu", help="cpu (numpy) or a torch device, e.g. cuda")
    tp.add_argument(
        "--batch-size", type=int, default=16, help="videos linked together in one lock-step call"
    )
    tp.set_defaults(run=_run_temporal_prim)
    return parser


def _run_temporal_prim(args: argparse.Namespace) -> int:
    t0 = time.perf_counter()
    dets = load_detections(args.detections)
    videos = list(dets)
    device = None if args.device == "cpu" else args.device
    parts: list[TubeDetections] = []
    num_tubes = total_len = 0
    batches = range(0, len(videos), max(1, args.batch_size))
    for i in tqdm(batches, desc="temporal_prim", unit="batch", disable=None):
        chunk = videos[i : i + args.batch_size]
        tubes = temporal_prim_batch(
            [dets[v] for v in chunk], args.num_tubes, args.min_iou, args.min_score, device=device
        )
        for v, t in zip(chunk, tubes):
            parts.append(TubeDetections.from_tubes(v, t))
            num_tubes += t.num_tubes
            total_len += int(t.lengths().sum())
    TubeDetections.concat(parts).save(args.out)
    seconds = time.perf_counter() - t0
    mean_len = total_len / num_tubes if num_tubes else 0.0
    print(
        f"temporal_prim: {len(videos)} videos, {num_tubes} tubes, mean tube length "
        f"{mean_len:.1f} frames, {seconds:.2f} s -> {args.out}"
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    return int(args.run(args))


if __name__ == "__main__":
    sys.exit(main())
