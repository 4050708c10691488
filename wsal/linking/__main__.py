"""Command-line linkers: ``python -m wsal.linking <linker> --detections D --out T ...``.

Example::

    python -m wsal.linking temporal_prim --detections dets.npz --out tubes.npz --num-tubes 10

Reads a detections file or folder (``wsal.data.detections``; frames 0-based, boxes xyxy pixels),
links every video and writes columnar ``TubeDetections`` (DESIGN §4): one row per tube, label -1,
score = mean box score, tube rows in frame order. Each linker is a subcommand, built from its
config ``conf/linker/<linker>.yaml`` (as ``train.py linker=<linker>`` builds it) with the flags
as overrides: ``temporal_prim``, ``viterbi`` and ``actor``, which also needs the annotation file
to find the videos and a SiamFC tracker checkpoint (``--tracker``; make one with
``python -m wsal.models.tracker train``)::

    python -m wsal.linking viterbi --detections dets.npz --out tubes.npz --num-tubes 10 --trim
    python -m wsal.linking actor --detections dets.npz --annotations ann.json --root videos/ \\
        --tracker tracker.pt --out tubes.npz
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from typing import Any

from wsal.configs import compose, instantiate_node, override
from wsal.data.annotations import load_index
from wsal.data.detections import load_detections
from wsal.errors import cli_main
from wsal.linking.actor import MAKE_TRACKER
from wsal.linking.base import link
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
    tp.set_defaults(
        overrides=lambda a: {
            "num_tubes": a.num_tubes,
            "min_iou": a.min_iou,
            "min_score": a.min_score,
            "device": _device(a.device),
            "batch_videos": max(1, a.batch_size),
        }
    )

    vt = sub.add_parser("viterbi", help="Viterbi linking (Gkioxari & Malik 2015, Eq. 1-2)")
    vt.add_argument("--detections", required=True, help="detections .npz file or folder")
    vt.add_argument("--out", required=True, help="output TubeDetections (.npz, or .json)")
    vt.add_argument("--num-tubes", type=int, required=True, help="K, most tubes per video")
    vt.add_argument(
        "--iou-weight", type=float, default=1.0, help="λ in E = Σ s + λ Σ IoU (G&M's λ' = 2λ)"
    )
    vt.add_argument(
        "--min-iou", type=float, default=0.0, help="consecutive boxes need IoU >= this (0: any)"
    )
    vt.add_argument(
        "--trim", action="store_true", help="keep the max-sum part of each path of s - thresh"
    )
    vt.add_argument("--trim-thresh", type=float, default=0.5, help="score threshold of --trim")
    vt.add_argument("--device", default="cpu", help="cpu (numpy) or a torch device, e.g. cuda")
    vt.add_argument("--batch-size", type=int, default=16, help="videos linked in one call")
    vt.set_defaults(
        overrides=lambda a: {
            "num_tubes": a.num_tubes,
            "iou_weight": a.iou_weight,
            "min_iou": a.min_iou,
            "trim": a.trim,
            "trim_thresh": a.trim_thresh,
            "device": _device(a.device),
            "batch_videos": max(1, a.batch_size),
        }
    )

    ac = sub.add_parser(
        "actor", help="actor linking: detections + SiamFC tracker (Guess Where? Alg. 1)"
    )
    ac.add_argument("--detections", required=True, help="detections .npz file or folder")
    ac.add_argument("--annotations", required=True, help="annotation file naming the videos")
    ac.add_argument("--root", default=None, help="folder the annotation's video paths are in")
    ac.add_argument("--out", required=True, help="output TubeDetections (.npz, or .json)")
    ac.add_argument("--num-tubes", type=int, default=20, help="N, most tubes per video (20)")
    ac.add_argument(
        "--suppress-iou", type=float, default=0.7, help="drop detections with IoU > this (0.7)"
    )
    ac.add_argument("--min-score", type=float, default=0.0, help="seeds need score > this")
    ac.add_argument("--batch-seeds", type=int, default=8, help="seeds tracked per tracker call")
    ac.add_argument(
        "--tracker",
        default=None,
        help="SiamFC checkpoint (.pt), required: python -m wsal.models.tracker train makes one",
    )
    ac.add_argument("--device", default="cpu", help="tracker device: cpu or cuda")
    ac.add_argument(
        "--workers", type=int, default=1, help="processes linking videos side by side (CPU)"
    )
    ac.set_defaults(
        overrides=lambda a: {
            "num_tubes": a.num_tubes,
            "suppress_iou": a.suppress_iou,
            "min_score": a.min_score,
            "batch_seeds": a.batch_seeds,
            "checkpoint": a.tracker,
            "device": _device(a.device),
            "workers": a.workers,
        },
        # the checkpoint's own SiamFC inference settings, not the config's tracker_config
        drop=["tracker_config"],
    )
    return parser


def _device(text: str) -> str | None:
    return None if text == "cpu" else text


def build_linker(name: str, values: dict[str, Any], drop: Sequence[str] = ()) -> Any:
    """The linker of ``conf/linker/<name>.yaml`` with ``values`` over its keys and the keys in
    ``drop`` left to the constructor's defaults (no default tracker: an actor linker needs
    ``checkpoint``)."""
    cfg = compose([f"linker={name}", *(override(f"linker.{k}", v) for k, v in values.items())])
    return instantiate_node(cfg.linker, drop=["default_tracker", *drop])


def _report(name: str, videos: list[str], tubes: dict, out: str, t0: float) -> int:
    """Write the tubes of ``videos`` as TubeDetections and print what was linked."""
    parts = [TubeDetections.from_tubes(v, tubes[v]) for v in videos]
    TubeDetections.concat(parts).save(out)
    num_tubes = sum(tubes[v].num_tubes for v in videos)
    total_len = sum(int(tubes[v].lengths().sum()) for v in videos)
    mean_len = total_len / num_tubes if num_tubes else 0.0
    print(
        f"{name}: {len(videos)} videos, {num_tubes} tubes, mean tube length "
        f"{mean_len:.1f} frames, {time.perf_counter() - t0:.2f} s -> {out}"
    )
    return 0


@cli_main
def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    t0 = time.perf_counter()
    if args.linker == "actor" and not args.tracker:
        raise SystemExit(f"python -m wsal.linking actor: give --tracker CKPT; {MAKE_TRACKER}")
    values = {**args.overrides(args), "progress": sys.stderr.isatty()}
    linker = build_linker(args.linker, values, getattr(args, "drop", ()))
    if args.linker != "actor":
        dets = load_detections(args.detections)
        videos = list(dets)
        return _report(args.linker, videos, linker.link(dets), args.out, t0)
    index = load_index(args.annotations, root=args.root)
    nframes = {v: info.nframes for v, info in index.videos.items()}
    dets = load_detections(args.detections, num_frames=nframes)
    unknown = sorted(set(dets) - set(index.videos))
    if unknown:
        raise SystemExit(
            f"{args.detections}: {len(unknown)} videos are not in {args.annotations}, "
            f"e.g. {unknown[:3]}"
        )
    videos = [v for v in index.videos if v in dets]
    tubes = link(linker, {v: dets[v] for v in videos}, index)
    return _report("actor", videos, tubes, args.out, t0)


if __name__ == "__main__":
    sys.exit(main())
