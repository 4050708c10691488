"""Command-line linkers: ``python -m wsal.linking <linker> --detections D --out T ...``.

Example::

    python -m wsal.linking temporal_prim --detections dets.npz --out tubes.npz --num-tubes 10

Reads a detections file or folder (``wsal.data.detections``; frames 0-based, boxes xyxy pixels),
links every video and writes columnar ``TubeDetections`` (DESIGN §4): one row per tube, label -1,
score = mean box score, tube rows in frame order. Each linker is a subcommand: ``temporal_prim``,
``viterbi`` and ``actor`` (which also needs the annotation file to find the videos, and a tracker
checkpoint; without one the default SiamFC tracker is trained once on SynthActors)::

    python -m wsal.linking viterbi --detections dets.npz --out tubes.npz --num-tubes 10 --trim
    python -m wsal.linking actor --detections dets.npz --annotations ann.json --root videos/ \\
        --tracker tracker.pt --out tubes.npz
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence

from tqdm import tqdm

from wsal.data.detections import load_detections
from wsal.linking.temporal_prim import temporal_prim_batch
from wsal.linking.viterbi import viterbi_batch
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
    vt.set_defaults(run=_run_viterbi)

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
    ac.add_argument("--tracker", default=None, help="SiamFC checkpoint (.pt)")
    ac.add_argument(
        "--tracker-data",
        default="data/synthactors",
        help="without --tracker: SynthActors root the default tracker is trained on once",
    )
    ac.add_argument("--device", default="cpu", help="tracker device: cpu or cuda")
    ac.set_defaults(run=_run_actor)
    return parser


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


def _run_batched(args: argparse.Namespace, name: str, link_batch: Callable) -> int:
    """Load detections, link ``--batch-size`` videos per call with ``link_batch``, write."""
    t0 = time.perf_counter()
    dets = load_detections(args.detections)
    videos = list(dets)
    device = None if args.device == "cpu" else args.device
    tubes: dict = {}
    step = max(1, args.batch_size)
    for i in tqdm(range(0, len(videos), step), desc=name, unit="batch", disable=None):
        chunk = videos[i : i + step]
        tubes.update(zip(chunk, link_batch([dets[v] for v in chunk], chunk, device)))
    return _report(name, videos, tubes, args.out, t0)


def _run_temporal_prim(args: argparse.Namespace) -> int:
    return _run_batched(
        args,
        "temporal_prim",
        lambda d, names, device: temporal_prim_batch(
            d, args.num_tubes, args.min_iou, args.min_score, device=device
        ),
    )


def _run_viterbi(args: argparse.Namespace) -> int:
    return _run_batched(
        args,
        "viterbi",
        lambda d, names, device: viterbi_batch(
            d,
            args.num_tubes,
            args.iou_weight,
            args.min_iou,
            args.trim,
            args.trim_thresh,
            device=device,
            names=names,
        ),
    )


def _run_actor(args: argparse.Namespace) -> int:
    from wsal.data.annotations import load_index
    from wsal.linking.actor import ActorLinker

    t0 = time.perf_counter()
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
    linker = ActorLinker(
        num_tubes=args.num_tubes,
        suppress_iou=args.suppress_iou,
        min_score=args.min_score,
        batch_seeds=args.batch_seeds,
        checkpoint=args.tracker,
        device=None if args.device == "cpu" else args.device,
    )
    tubes = linker.link({v: dets[v] for v in videos}, index=index)
    return _report("actor", videos, tubes, args.out, t0)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    return int(args.run(args))


if __name__ == "__main__":
    sys.exit(main())
