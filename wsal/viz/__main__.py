"""``python -m wsal.viz``: pictures of a run (or of any annotations + detections files).

Subcommands (``--help`` on each for every option)::

    python -m wsal.viz tubes RUN_DIR [--videos V ... | --num 4] [--format png|gif|mp4]
                                     [--out DIR] [--label-top] [--top-k 1]
    python -m wsal.viz tubes --annotations ANN --root DIR --detections DETS.npz [...]
    python -m wsal.viz recall RUN_DIR [RUN_DIR ...] [--out DIR]
    python -m wsal.viz pr RUN_DIR [--iou 0.5] [--out DIR]
    python -m wsal.viz pr --annotations ANN --detections DETS.npz [--protocol act --nms 0.3]

``tubes``: the chosen videos with their GT tubes in blue and the top-scoring predicted tube in red
(labelled ``class score``), as in the papers' qualitative figures: ``png`` stacks one strip per
video into ``tubes.png``; ``gif``/``mp4`` animate each video into ``<video>.gif``/``.mp4``.
``recall``: proposal recall against the number of tubes per video, from results.json.
``pr``: precision-recall curves per class at one st-IoU threshold, recomputed from the run's
``detections.npz`` and the dataset's GT with the run's protocol (:func:`pr_curves`).

A run folder is what train.py writes: ``results.json``, ``detections.npz`` and ``.hydra/``; it is
read with :func:`wsal.runs.load_run` and its dataset rebuilt from the saved config
(``instantiate(cfg.dataset).prepare()``, as train.py). Output goes to ``--out`` (default
``RUN_DIR/viz``, or ``viz`` without a run).
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from hydra.utils import instantiate

from wsal import viz
from wsal.data.annotations import DatasetIndex, load_index
from wsal.errors import cli_main
from wsal.evaluation.protocol import PROTOCOLS, GroundTruth, pr_curves
from wsal.runs import CONFIG_FILE, load_run, read_results
from wsal.structures import TubeDetections
from wsal.targets import check_targets

__all__ = ["pick_videos", "main"]


# ------------------------------------------------------------------------------------- run data
def pick_videos(index: DatasetIndex, videos: Sequence[str], num: int) -> list[str]:
    """``num`` videos spread over classes: the first video of each class in ``videos`` order,
    then (if classes run out) the next unchosen videos."""
    chosen: list[str] = []
    seen: set[int] = set()
    for v in videos:
        labs = index.videos[v].labels
        if len(chosen) < num and labs and labs[0] not in seen:
            chosen.append(v)
            seen.add(labs[0])
    for v in videos:
        if len(chosen) >= num:
            break
        if v not in chosen:
            chosen.append(v)
    return chosen


def _safe_name(video: str) -> str:
    """A file name for a video id (ids may hold folders: ``Basketball/v_x_g01_c01``)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "__", video).strip("_") or "video"


class _Source:
    """What a subcommand draws from: the dataset index, detections, protocol, split, out folder."""

    def __init__(self, args: argparse.Namespace, need_dets: bool = True) -> None:
        self.results: dict[str, Any] | None = None
        protocol, nms, split = "act", 0.3, "test"
        dets_path: Path | None
        if args.run_dir:
            run = load_run(args.run_dir)
            check_targets(run.config, run.path / CONFIG_FILE)  # data, not code: before instantiate
            # an unreadable results.json is an error here (read_results names it), not "no results"
            self.results = run.results if run.results is not None else read_results(run.path)
            self.index = instantiate(run.config.dataset).prepare().index
            ev = run.config.get("evaluation") or {}
            protocol = str(ev.get("protocol", protocol))
            nms = float(ev.get("nms", nms))
            split = str(ev.get("split", split))
            if self.results:
                protocol = str(self.results.get("protocol", protocol))
                nms = float(self.results.get("nms", nms))
                split = str(self.results.get("split", split))
            dets_path = Path(args.detections) if args.detections else run.detections_path
            self.out = Path(args.out) if args.out else run.path / "viz"
        elif args.annotations:
            self.index = load_index(args.annotations, root=args.root)
            dets_path = Path(args.detections) if args.detections else None
            self.out = Path(args.out) if args.out else Path("viz")
        else:
            raise SystemExit("give a RUN_DIR or --annotations (with --detections)")
        self.protocol = args.protocol or protocol
        self.nms = nms if args.nms is None else float(args.nms)
        self.split = args.split or split
        self.dets: TubeDetections | None = None
        if dets_path is not None:
            self.dets = TubeDetections.load(dets_path, label_names=self.index.labels)
        elif need_dets:
            raise SystemExit("no detections: give --detections DETS.npz")


# ------------------------------------------------------------------------------------ commands
def cmd_tubes(args: argparse.Namespace) -> list[Path]:
    src = _Source(args, need_dets=False)
    index = src.index
    if args.videos:
        missing = [v for v in args.videos if v not in index.videos]
        if missing:
            raise SystemExit(f"unknown video(s) {missing[:5]} (not in the dataset's annotations)")
        videos = list(args.videos)
    else:
        videos = pick_videos(index, index.split(src.split), args.num)
    if not videos:
        raise SystemExit(f"no videos to draw in split {src.split!r}")
    kw = dict(top_k=args.top_k, label_names=index.labels, scale=args.scale)
    kw["per_label"] = args.label_top
    written: list[Path] = []
    if args.format == "png":
        strips = [viz.video_strip(index, v, src.dets, num_frames=args.frames, **kw) for v in videos]
        path = src.out / "tubes.png"
        viz.save_strips(path, strips)
        written.append(path)
    else:
        for v in videos:
            path = src.out / f"{_safe_name(v)}.{args.format}"
            viz.save_video_animation(path, index, v, src.dets, fps=args.fps, span=args.span, **kw)
            written.append(path)
    return written


def cmd_recall(args: argparse.Namespace) -> list[Path]:
    curves: dict[str, np.ndarray] = {}
    protocols = set()
    for run in args.run_dirs:
        res = read_results(run)
        if res is None:
            raise SystemExit(f"{run}: no results.json (run failed or still running?)")
        protocols.add(str(res.get("protocol")))
        name = f"{res.get('linker', '?')} ({Path(run).name})" if len(args.run_dirs) > 1 else ""
        for tau, r in (res.get("proposal_recall") or {}).items():
            curves[f"{name} st-IoU {tau}".strip()] = np.asarray(r, dtype=np.float64)
    if not curves:
        raise SystemExit("no proposal_recall in the results.json given")
    out = Path(args.out) if args.out else Path(args.run_dirs[0]) / "viz"
    path = out / "recall.png"
    viz.plot_recall(
        curves, path, title=f"proposal recall (protocol={', '.join(sorted(protocols))})"
    )
    return [path]


def cmd_pr(args: argparse.Namespace) -> list[Path]:
    src = _Source(args)
    assert src.dets is not None
    gt = GroundTruth.from_index(src.index, src.split)
    curves = pr_curves(gt, src.dets, args.iou, src.protocol, src.nms)
    m = float(np.mean([ap for _, _, ap in curves.values()])) if curves else 0.0
    recorded = ((src.results or {}).get("video_mAP") or {}).get(f"{args.iou:g}")
    note = ""
    if recorded is not None and abs(float(recorded) - m) > 1e-6:
        note = f" (results.json says {float(recorded):.4f}: were the detections replaced?)"
    print(f"video-mAP@{args.iou:g} = {m:.4f}{note}  protocol={src.protocol} nms={src.nms:g}")
    for name, (_, _, ap) in curves.items():
        print(f"  {name}: AP {ap:.4f}")
    path = src.out / f"pr@{args.iou:g}.png"
    viz.plot_pr_curves(
        {f"{name} AP={ap:.2f}": (p, r) for name, (p, r, ap) in curves.items()},
        path,
        title=f"PR at st-IoU {args.iou:g}, mAP={m:.3f} ({src.protocol}, nms {src.nms:g})",
    )
    return [path]


def _source_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", nargs="?", help="a train.py run folder")
    p.add_argument("--annotations", help="without a run: annotation file (wsal JSON, ACT pkl ...)")
    p.add_argument("--root", help="without a run: folder the annotation's video paths are under")
    p.add_argument("--detections", help="TubeDetections .npz/.json (default RUN_DIR's)")
    p.add_argument("--split", help="split to pick videos from / evaluate (default: the run's)")
    p.add_argument("--protocol", choices=PROTOCOLS, help="default: the run's, else act")
    p.add_argument("--nms", type=float, help="tube NMS st-IoU (default: the run's, else 0.3)")
    p.add_argument("--out", help="output folder (default RUN_DIR/viz, or ./viz)")


@cli_main
def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m wsal.viz",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("tubes", help="GT (blue) and predicted (red) tubes: png strip, gif, mp4")
    _source_args(t)
    t.add_argument("--videos", nargs="+", help="video ids (default: --num spread over classes)")
    t.add_argument("--num", type=int, default=4, help="videos to draw when --videos is not given")
    t.add_argument("--format", choices=("png", "gif", "mp4"), default="png")
    t.add_argument("--top-k", type=int, default=1, help="predicted tubes drawn per video")
    t.add_argument(
        "--label-top",
        action="store_true",
        help="draw the top tube of each of the video's GT classes, not the top of any class",
    )
    t.add_argument("--frames", type=int, default=6, help="frames per png strip")
    t.add_argument("--scale", type=int, default=2, help="integer upscaling")
    t.add_argument("--fps", type=float, help="gif/mp4 rate (default: the video's)")
    t.add_argument(
        "--span", choices=("video", "tubes"), default="video", help="gif/mp4: frames drawn"
    )
    r = sub.add_parser("recall", help="proposal recall vs tubes per video, from results.json")
    r.add_argument("run_dirs", nargs="+", help="run folders (one curve per run and threshold)")
    r.add_argument("--out", help="output folder (default: first RUN_DIR/viz)")
    q = sub.add_parser("pr", help="precision-recall curves per class, recomputed")
    _source_args(q)
    q.add_argument("--iou", type=float, default=0.5, help="st-IoU threshold")
    args = p.parse_args(sys.argv[1:] if argv is None else list(argv))
    commands = {"tubes": cmd_tubes, "recall": cmd_recall, "pr": cmd_pr}
    for path in commands[args.cmd](args):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
