"""``python -m wsal.evaluation``: video-AP (or, with ``--frame-ap``, frame-AP) of a detections
file against a GT file.

GT: wsal annotation JSON, ACT ``*-GT.pkl`` (also MultiSports', which has only ``test_videos``) or
UCF101-24 pyannot pickle (default split: test).
DETS: TubeDetections as JSON or columnar ``.npz`` (DESIGN §4); with ``--frame-ap`` also a
frame-detections file: JSON ``{"frame_detections": [{"video", "frame", "box": [x1, y1, x2, y2],
"label", "score"}, ...]}`` (0-based frames, labels as indices or names) or the same columns as
``.npz``. Tube detections under ``--frame-ap``: every tube box with its tube's score.

Bad input (a missing, truncated or unsafe file, a detection with a negative or out-of-range
frame, an inverted or non-finite box, a video not in the GT, a threshold outside (0, 1]) ends with
one line ``error: <file>: <what is wrong>`` and exit status 2 (``--debug``: the traceback).
"""

from __future__ import annotations

import argparse
import sys
import time

from wsal.atomic import atomic_write_json
from wsal.data.annotations import load_index
from wsal.errors import InputError, cli_main
from wsal.evaluation.frame_detections import is_frame_detections, load_frame_detections
from wsal.evaluation.protocol import (
    PROTOCOLS,
    DetectionError,
    GroundTruth,
    check_thresholds,
    frame_map,
    video_ap,
)
from wsal.structures import TubeDetections


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m wsal.evaluation",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--gt", required=True, help="annotations: wsal JSON, ACT *-GT.pkl or pyannot pkl"
    )
    p.add_argument(
        "--detections",
        required=True,
        help="TubeDetections .json or .npz (or, with --frame-ap, frame detections)",
    )
    p.add_argument(
        "--split", default="test", help="split name (test, test2, ...) or index (1, 2, 3)"
    )
    p.add_argument(
        "--protocol",
        default="act",
        choices=PROTOCOLS,
        help="act: ACT/MOC videoAP (+1 areas, trapezoid AP); voc: continuous, interpolated",
    )
    p.add_argument(
        "--iou",
        nargs="+",
        default=None,
        metavar="T",
        help="st-IoU thresholds (default 0.2 0.5 0.75; mAP@0.5:0.95 is always reported too); "
        "with --frame-ap: box IoU thresholds (default 0.5)",
    )
    p.add_argument(
        "--frame-ap",
        action="store_true",
        help="frame-AP (each box a detection on its frame) instead of video-AP",
    )
    p.add_argument(
        "--nms", type=float, default=0.3, help="per video/class tube NMS st-IoU; 0 = off"
    )
    p.add_argument("--json", default=None, metavar="OUT", help="write the results as JSON here")
    p.add_argument("--per-class", action="store_true", help="print AP of every class")
    p.add_argument(
        "--ignore-unknown-videos",
        action="store_true",
        help="drop detections of videos that are not in the GT split (counted in the output); "
        "by default they are an error",
    )
    p.add_argument("--debug", action="store_true", help="show the traceback of an error")
    return p


def print_table(
    res, iou_keys: list[str], gt_path: str, split: str, per_class: bool, n_videos: int
) -> None:
    from rich.console import Console
    from rich.table import Table

    title = (
        f"video-AP  protocol={res.protocol}  nms={res.nms:g}  split={split}  "
        f"videos={n_videos}  gt_tubes={res.num_gt}  detections={res.num_detections}"
    )
    table = Table(title=title, caption=f"GT: {gt_path}  ({res.seconds:.2f} s)")
    table.add_column("class")
    for k in iou_keys:
        table.add_column(f"AP@{k}", justify="right")
    if per_class:
        for c, name in enumerate(res.labels):
            table.add_row(name, *[f"{res.ap[round(float(k), 6)][c]:.4f}" for k in iou_keys])
        table.add_section()
    table.add_row("mAP", *[f"{res.map(float(k)):.4f}" for k in iou_keys], style="bold")
    Console().print(table)
    Console().print(f"mAP@0.5:0.95 = {res.map_50_95:.4f}   (protocol={res.protocol})")


def print_frame_table(
    frame: dict, protocol: str, gt_path: str, split: str, per_class: bool, seconds: float
) -> None:
    from rich.console import Console
    from rich.table import Table

    keys = list(frame["frame_mAP"])
    table = Table(
        title=f"frame-AP  protocol={protocol}  split={split}",
        caption=f"GT: {gt_path}  ({seconds:.2f} s)",
    )
    table.add_column("class")
    for k in keys:
        table.add_column(f"AP@{k}", justify="right")
    if per_class:
        for name in frame["frame_AP"][keys[0]]:
            table.add_row(name, *[f"{frame['frame_AP'][k][name]:.4f}" for k in keys])
        table.add_section()
    table.add_row("frame-mAP", *[f"{frame['frame_mAP'][k]:.4f}" for k in keys], style="bold")
    Console().print(table)


@cli_main
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    t0 = time.perf_counter()
    if args.iou is None:
        args.iou = ["0.5"] if args.frame_ap else ["0.2", "0.5", "0.75"]
    try:
        taus = check_thresholds([float(t) for t in args.iou], "--iou thresholds")
        if not 0.0 <= args.nms <= 1.0:
            raise ValueError(f"--nms must be in [0, 1] (0 = off), got {args.nms:g}")
    except ValueError as e:
        raise InputError(f"--iou {' '.join(args.iou)} --nms {args.nms:g}: {e}") from e
    ignore = args.ignore_unknown_videos
    index = load_index(args.gt)
    try:
        gt = GroundTruth.from_index(index, args.split)
    except KeyError as e:  # an unknown --split
        raise InputError(f"--split {args.split}: {e.args[0]}", args.gt) from e
    try:
        if is_frame_detections(args.detections):
            if not args.frame_ap:
                raise InputError(
                    "frame detections (one box each) are evaluated with --frame-ap; video-AP "
                    "needs tubes",
                    args.detections,
                )
            dets = load_frame_detections(args.detections, label_names=index.labels)
        else:
            dets = TubeDetections.load(args.detections, label_names=index.labels)
        if args.frame_ap:
            frame = frame_map(gt, dets, taus, args.protocol, ignore_unknown_videos=ignore)
        else:
            res = video_ap(
                gt,
                dets,
                thresholds=taus,
                protocol=args.protocol,
                nms=args.nms,
                ignore_unknown_videos=ignore,
            )
    except DetectionError as e:  # the detection and its video, in the file given
        raise InputError(f"{e} (GT {args.gt}, split {args.split})", args.detections) from e
    except InputError:
        raise
    except (ValueError, KeyError) as e:  # e.g. a frame-detections file's bad row
        raise InputError(str(e.args[0]) if e.args else repr(e), args.detections) from e
    if args.frame_ap:
        seconds = time.perf_counter() - t0
        print_frame_table(frame, args.protocol, args.gt, args.split, args.per_class, seconds)
        if args.json:
            out = {"protocol": args.protocol, "split": args.split, "num_detections": len(dets)}
            atomic_write_json(args.json, {**out, **frame, "seconds": seconds}, indent=1)
        return 0
    res.seconds = time.perf_counter() - t0
    print_table(res, args.iou, args.gt, args.split, args.per_class, len(gt.videos))
    if res.ignored_unknown_videos:
        print(f"ignored {res.ignored_unknown_videos} detections of videos not in the GT split")
    if args.json:
        atomic_write_json(args.json, res.to_json(args.iou), indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
