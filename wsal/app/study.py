"""Proposal-quality study: recall of GT tubes against the number of proposals, per linker.

One command (``python -m wsal.app.study``, or ``make proposals``) links a dataset's
detections with every chosen linker (tubes cached like the pipeline's, under ``--cache``),
computes recall at st-IoU 0.2 and 0.5 (ACT protocol: +1 pixel areas, inclusive frame counts) for
the top 1..N proposals of each video of the split, and writes into ``--out``:

- ``recall.json``: per linker, the recall curves, the mean proposal length, linking seconds;
- ``recall.md``: a markdown table (recall at 1, 5, 10, N proposals, both thresholds);
- ``recall.png``: the curves (solid 0.5, dashed 0.2), one colour per linker;
- in ``recall.json`` also ``bound_full_video_tube``: the recall a *perfect* whole-video tube
  would reach: on untrimmed data a proposal spanning the whole video has temporal IoU = action
  length / video length, which caps every tracker-based linker (see docs/proposals.md).

Linkers are built from their configs (``conf/linker/<name>.yaml``, as ``train.py linker=<name>``)
with the flags as overrides; the actor linker without ``--tracker`` gets the default tracker
(trained once on ``--tracker-data``, default the config's SynthActors).

Datasets: a SynthActors root (generated on first use with the given ``--synth key=value``
overrides, e.g. ``preset=untrimmed`` for the UCF101-24 regime) or any annotated dataset with its
detections file (``--annotations A --detections D [--root R]``).
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from wsal.app.stages import build_linker
from wsal.atomic import atomic_write_json, atomic_write_text
from wsal.configs import compose, override
from wsal.data.datasets import AnnotatedDataset, SynthActors
from wsal.detection.backends import StoredDetections
from wsal.evaluation import GroundTruth, proposal_recall
from wsal.linking.base import Linker
from wsal.linking.cache import link_cached, tubes_to_detections
from wsal.viz import plot_recall

__all__ = ["run_study", "coverage_bound", "main", "make_linker"]


def coverage_bound(index: Any, split: str, iou: float) -> float:
    """Recall at st-IoU ``iou`` of ideal whole-video tubes (exact boxes on the GT frames).

    st-IoU of a tube covering all ``F`` frames with exact boxes on the GT's ``n`` frames is
    ``n / F`` (inclusive counts, ACT): so this is the fraction of GT tubes with ``n / F >= iou``.
    """
    cov = [
        len(t.frames) / index.videos[v].nframes
        for v in index.split(split)
        for t in index.videos[v].tubes
    ]
    return float(np.mean(np.asarray(cov) >= iou)) if cov else 0.0


def make_linker(name: str, num_tubes: int, args: argparse.Namespace) -> Linker:
    """The linker of ``conf/linker/<name>.yaml`` with ``num_tubes`` and, for the actor linker,
    the tracker flags as overrides (:func:`wsal.app.stages.build_linker`: without ``--tracker``
    the default tracker, trained once on first use)."""
    o = [f"linker={name}", override("linker.num_tubes", num_tubes)]
    if name == "actor":
        if args.tracker:
            o.append(override("linker.checkpoint", args.tracker))
        if args.tracker_data:
            o.append(override("linker.default_tracker.data", args.tracker_data))
        if args.device:
            o.append(override("linker.device", args.device))
        if args.snap_iou is not None:
            o.append(override("linker.snap_iou", None if args.snap_iou < 0 else args.snap_iou))
    return build_linker(compose(o).linker)


def run_study(
    prepared: Any,
    linkers: dict[str, Any],
    out_dir: str | Path,
    cache_dir: str | Path,
    split: str = "test",
    thresholds: Sequence[float] = (0.2, 0.5),
    num_tubes: int = 20,
    title: str = "",
) -> dict[str, Any]:
    """Link with every linker, measure recall curves on ``split``, write the report files."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    index = prepared.index
    gt = GroundTruth.from_index(index, split)
    videos = index.split(split)
    detector = StoredDetections(None, name="dataset")
    res: dict[str, Any] = {
        "dataset": prepared.name,
        "split": split,
        "num_videos": len(videos),
        "num_gt_tubes": gt.num_tubes,
        "protocol": "act",
        "num_tubes": num_tubes,
        "linkers": {},
        "bound_full_video_tube": {f"{t:g}": coverage_bound(index, split, t) for t in thresholds},
    }
    for name, linker in linkers.items():
        t0 = time.perf_counter()
        tubes = link_cached(prepared, detector, linker, cache_dir, videos=videos)
        seconds = time.perf_counter() - t0
        props = tubes_to_detections(videos, tubes)
        rec = proposal_recall(gt, props, thresholds=thresholds, max_proposals=num_tubes)
        lengths = props.lengths() / np.array([index.videos[v].nframes for v in props.video])
        res["linkers"][name] = {
            "recall": {f"{t:g}": [float(x) for x in r] for t, r in rec.items()},
            "mean_proposals_per_video": len(props) / max(1, len(videos)),
            "mean_length_fraction": float(lengths.mean()) if lengths.size else 0.0,
            "seconds_all_videos_or_cache": seconds,
        }
    atomic_write_json(out / "recall.json", res)
    atomic_write_text(out / "recall.md", format_table(res))
    curves, styles = {}, {}
    for i, (name, r) in enumerate(res["linkers"].items()):
        for t in res["bound_full_video_tube"]:
            curves[f"{name} @{t}"] = np.asarray(r["recall"][t])
            styles[f"{name} @{t}"] = {"color": f"C{i}", "linestyle": "-" if t == "0.5" else "--"}
    plot_recall(
        curves,
        out / "recall.png",
        title or f"{prepared.name} {split}: proposal recall (st-IoU)",
        styles=styles,
    )
    return res


def format_table(res: dict[str, Any]) -> str:
    """Markdown table: recall with 1, 5, 10, N proposals at each threshold, per linker."""
    n = int(res["num_tubes"])
    ks = [k for k in (1, 5, 10, n) if k <= n]
    ks = sorted(set(ks))
    ths = list(res["bound_full_video_tube"])
    head = ["linker"] + [f"R@{t} ({k})" for t in ths for k in ks] + ["mean length / video"]
    lines = [
        f"Proposal recall on {res['dataset']} ({res['split']}: {res['num_videos']} videos, "
        f"{res['num_gt_tubes']} GT tubes; ACT st-IoU; R@tau (n) = recall with the top n "
        "proposals per video)",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    for name, r in res["linkers"].items():
        cells = []
        for t in ths:
            curve = r["recall"][t]
            cells += [f"{curve[min(k, len(curve)) - 1]:.3f}" if curve else "-" for k in ks]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {r['mean_length_fraction']:.2f} |")
    bound = ", ".join(f"{v:.3f} at {t}" for t, v in res["bound_full_video_tube"].items())
    lines += [
        "",
        f"Upper bound of a perfect whole-video tube (exact boxes, spans the video): recall {bound}.",
    ]
    return "\n".join(lines) + "\n"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m wsal.app.study",
        description="Recall of GT tubes vs number of proposals, per linker (table + PNG).",
    )
    p.add_argument("--out", required=True, help="report folder")
    p.add_argument("--linkers", default="temporal_prim,viterbi,actor")
    p.add_argument("--num-tubes", type=int, default=20, help="N, proposals per video")
    p.add_argument("--split", default="test")
    p.add_argument("--data", default="data/synthactors", help="SynthActors root")
    p.add_argument(
        "--synth",
        nargs="*",
        default=[],
        metavar="KEY=VALUE",
        help="SynthActors preset and SynthConfig overrides, e.g. preset=untrimmed seed=1",
    )
    p.add_argument("--annotations", help="any annotation file instead of SynthActors")
    p.add_argument("--root", help="video root of --annotations")
    p.add_argument("--detections", help="detections file of --annotations")
    p.add_argument("--cache", default="data/cache", help="tube cache folder")
    p.add_argument("--tracker", default=None, help="SiamFC checkpoint (default: trained once)")
    p.add_argument(
        "--tracker-data",
        default=None,
        help="SynthActors root the default tracker is trained on (default: the linker config's)",
    )
    p.add_argument("--device", default=None, help="tracker device (cpu, cuda)")
    p.add_argument(
        "--snap-iou", type=float, default=None, help="actor linker's snap_iou (< 0: no snapping)"
    )
    p.add_argument(
        "--threads", type=int, default=None, help="torch CPU threads (1 is fastest on 2 busy cores)"
    )
    return p


def _value(x: str) -> Any:
    try:
        return json.loads(x)
    except json.JSONDecodeError:
        return x


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.threads:
        import torch  # only to set its threads

        torch.set_num_threads(args.threads)
    if args.annotations:
        dataset: Any = AnnotatedDataset(args.annotations, args.root, detections=args.detections)
    else:
        overrides = dict(kv.split("=", 1) for kv in args.synth)
        dataset = SynthActors(root=args.data, **{k: _value(v) for k, v in overrides.items()})
    prepared = dataset.prepare()
    names = [n.strip() for n in args.linkers.split(",") if n.strip()]
    linkers = {n: make_linker(n, args.num_tubes, args) for n in names}
    res = run_study(prepared, linkers, args.out, args.cache, args.split, num_tubes=args.num_tubes)
    print(format_table(res))
    print(f"-> {args.out}/recall.md, recall.json, recall.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
