"""Prepare a dataset from raw download to cached tubes, printing what it expects and finds.

``python -m wsal.app.prepare DATASET --root DIR [--annotations FILE] [--split N]
[--detector torchvision|file|dataset] [--linker temporal_prim|viterbi|actor] [--cache-dir DIR]``

The dataset, detector and linker are built from the same configs as ``train.py``
(``dataset=DATASET detector=... linker=...`` with the flags as overrides: :func:`stage_overrides`),
so the caches written here are the ones ``train.py`` reads with the same choices.

1. reads the annotations with the dataset's layout (:class:`~wsal.data.datasets.StandardDataset`
   for ``ucfsports``/``jhmdb``/``ucf101_24``, :class:`~wsal.data.datasets.AnnotatedDataset` for
   ``custom``) and prints the standard release's counts next to those found;
2. checks every video / frame folder (:mod:`wsal.data.validate`) and stops with every problem
   listed if there is any (``--no-check`` skips it; ``--skip-invalid`` drops the invalid videos,
   listed, and goes on);
3. runs the detector over all frames (torchvision: a sharded, resumable Lightning predict on the
   GPU when there is one, cached under ``<cache-dir>/detections``) and prints detections per frame;
4. links tubes with the linker and caches them (:func:`wsal.linking.cache.link_cached`, the
   cache ``train.py`` reads), printing tubes per video. An actor linker without
   ``--tracker-checkpoint`` gets the default tracker (trained once, after the layout check).

Runs again in seconds once cached: detections and tubes are only computed on a cache miss.
Exit code 0 when done, 1 on layout problems, 2 on bad arguments.
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np
from omegaconf import DictConfig

from wsal.app.stages import build_linker
from wsal.configs import compose, instantiate_node, override
from wsal.data.annotations import DatasetIndex
from wsal.data.datasets import SPECS, AnnotatedDataset, PreparedDataset, StandardDataset
from wsal.data.validate import ValidationReport, check_dataset, validate_index
from wsal.linking.base import Linker
from wsal.linking.cache import link_cached
from wsal.structures import Detections, Tubes

__all__ = [
    "PrepareSummary",
    "build_stages",
    "parser",
    "stage_overrides",
    "expected_vs_found",
    "detection_stats",
    "tube_stats",
    "prepare",
    "main",
]

DATASETS = (*SPECS, "custom")


@dataclass
class PrepareSummary:
    """What :func:`prepare` found: count rows ``(what, expected or None, found)``, the layout
    report, detection and tube statistics (empty when a step did not run)."""

    dataset: str
    counts: list[tuple[str, int | None, int]] = field(default_factory=list)
    report: ValidationReport | None = None
    detections: dict[str, float] = field(default_factory=dict)
    tubes: dict[str, float] = field(default_factory=dict)
    tubes_by_video: dict[str, Tubes] = field(default_factory=dict)

    @property
    def mismatches(self) -> list[str]:
        return [w for w, e, f in self.counts if e is not None and e != f]


def stage_overrides(args: argparse.Namespace) -> list[str]:
    """The config overrides (``dataset=... detector=... linker=...`` and their keys) that build
    the stages these command-line flags describe.

    ``custom``: ``annotations`` default ``<root>/annotations.json``, video paths relative to
    ``<root>/<media_dir>``, ``--split 1`` = the file's only split. The standard datasets keep
    their config's layout unless a flag says otherwise. ``--detector dataset`` is the dataset's
    own detections file (``detector=synthetic``, named ``dataset``); torchvision looks for the
    dataset's actors of interest (``detector.classes=${dataset.actors}``).
    """
    o = [override("paths.cache_dir", args.cache_dir)]
    pattern = args.frame_pattern
    if args.dataset == "custom":
        o += [
            "dataset=custom",
            override(
                "dataset.annotations", args.annotations or str(Path(args.root) / "annotations.json")
            ),
            override("dataset.root", str(Path(args.root) / (args.media_dir or ""))),
            override("dataset.split", args.split if args.split != 1 else None),
            override("dataset.frame_pattern", None if pattern == "default" else pattern),
        ]
    else:
        o += [f"dataset={args.dataset}", override("dataset.root", args.root)]
        o.append(override("dataset.split", args.split))
        given = {
            "annotations": args.annotations,
            "media_dir": args.media_dir,
            "video_ext": args.video_ext,
            "split_list": args.split_list,
            "testlist": args.testlist,
        }
        o += [override(f"dataset.{k}", v) for k, v in given.items() if v]
        if pattern != "default":
            o.append(override("dataset.frame_pattern", pattern))
    progress = not args.no_progress
    if args.detector == "torchvision":
        weights = None if args.weights.lower() in ("none", "null") else args.weights
        o += ["detector=torchvision", override("detector.model", args.model)]
        o += [override("detector.weights", weights)]
        o += [override("detector.score_thresh", args.score_thresh)]
        o += [override("detector.device", args.device)]
        o += [override("detector.batch_frames", args.batch_frames)]
        o += [override("detector.num_workers", args.num_workers)]
        o += [override("detector.progress", progress)]
        o += [override("detector.classes", "${dataset.actors}")]
    elif args.detector == "file":
        if not args.detections:
            raise ValueError("--detector file needs --detections PATH (a detections store)")
        o += ["detector=file", override("detector.path", args.detections)]
    else:  # the dataset's own detections; named "dataset" (cache keys)
        o += ["detector=synthetic", "detector.name=dataset"]
    o += [f"linker={args.linker}", override("linker.num_tubes", args.num_tubes)]
    o += [override("linker.progress", progress)]
    if args.linker == "actor" and args.tracker_checkpoint:
        o.append(override("linker.checkpoint", args.tracker_checkpoint))
    return o


def build_stages(cfg: DictConfig) -> tuple[Any, Any, Callable[[], Linker]]:
    """(dataset, detector, a function making the linker) of a composed config. The linker is
    made later (after the layout check): an actor linker may first train its default tracker."""
    dataset = instantiate_node(cfg.dataset)
    detector = instantiate_node(cfg.detector)
    return dataset, detector, functools.partial(build_linker, cfg.linker)


def expected_vs_found(
    index: DatasetIndex, expected: Mapping[str, int] | None = None
) -> list[tuple[str, int | None, int]]:
    """Rows ``(what, expected or None, found)``: videos, labels, tubes, every split's videos and
    tubes (``expected`` keys: ``videos``, ``labels``, ``tubes``, ``train``, ``test``,
    ``test_tubes``)."""
    exp = dict(expected or {})
    s = index.summary()
    rows: list[tuple[str, int | None, int]] = [
        ("videos", exp.get("videos"), s["videos"]),
        ("labels", exp.get("labels"), s["labels"]),
        ("GT tubes", exp.get("tubes"), s["tubes"]),
    ]
    for name, n in s["splits"].items():
        rows.append((f"{name} videos", exp.get(name), n))
    for name, n in s["split_tubes"].items():
        if name.startswith("test"):
            rows.append((f"{name} GT tubes", exp.get(f"{name}_tubes"), n))
    return rows


def detection_stats(dets: Mapping[str, Detections]) -> dict[str, float]:
    """Counts of a detection run: videos, frames, boxes, mean/min/max boxes per frame, frames
    and videos without any box."""
    counts = [np.diff(d.frame_ptr) for d in dets.values()]  # [F_v] boxes per frame
    per_frame = np.concatenate(counts) if counts else np.zeros(0, np.int64)
    return {
        "videos": len(dets),
        "frames": int(per_frame.size),
        "boxes": int(per_frame.sum()),
        "boxes_per_frame_mean": float(per_frame.mean()) if per_frame.size else 0.0,
        "boxes_per_frame_min": int(per_frame.min()) if per_frame.size else 0,
        "boxes_per_frame_max": int(per_frame.max()) if per_frame.size else 0,
        "frames_without_boxes": int((per_frame == 0).sum()),
        "videos_without_boxes": int(sum(int(c.sum()) == 0 for c in counts)),
    }


def tube_stats(tubes: Mapping[str, Tubes]) -> dict[str, float]:
    """Tubes per video (mean/min/max), videos without tubes, mean tube length in frames."""
    k = np.array([t.num_tubes for t in tubes.values()], np.int64)
    lengths = [t.valid.sum(axis=1) for t in tubes.values() if t.num_tubes]
    lens = np.concatenate(lengths) if lengths else np.zeros(0)
    return {
        "videos": len(tubes),
        "tubes": int(k.sum()),
        "tubes_per_video_mean": float(k.mean()) if k.size else 0.0,
        "tubes_per_video_min": int(k.min()) if k.size else 0,
        "tubes_per_video_max": int(k.max()) if k.size else 0,
        "videos_without_tubes": int((k == 0).sum()),
        "mean_tube_length": float(lens.mean()) if lens.size else 0.0,
    }


def _print(msg: str = "") -> None:
    print(msg, flush=True)


def _print_counts(title: str, rows: list[tuple[str, int | None, int]]) -> None:
    _print(f"\n{title}")
    _print(f"  {'':<22}{'expected':>10}{'found':>10}")
    for what, exp, found in rows:
        flag = "" if exp is None or exp == found else "   <-- MISMATCH"
        _print(f"  {what:<22}{'-' if exp is None else exp:>10}{found:>10}{flag}")


def prepare(
    dataset: StandardDataset | AnnotatedDataset | Any,
    detector: Any,
    linker: Linker | Callable[[], Linker],
    cache_dir: str | os.PathLike,
    *,
    check: bool = True,
    progress: bool = True,
    skip_invalid: bool = False,
) -> PrepareSummary:
    """Index, check, detect, link and cache one dataset; print the counts at each step.

    ``linker`` is a linker or a function making one, called after the layout check (building an
    actor linker may train its default tracker first). Returns the summary; when the layout
    check finds problems it stops before detection (``summary.report.ok`` is False, no
    detections/tubes), unless ``skip_invalid``: then the videos with a problem are dropped (a
    warning lists them; :func:`wsal.data.validate.check_dataset`) and the rest goes on.
    """
    prepared: PreparedDataset = dataset.prepare()
    index = prepared.index
    name = prepared.name
    spec = SPECS.get(getattr(dataset, "name", ""), None)
    expected = dict(spec.expected) if spec is not None else {}
    if spec is not None:
        expected["labels"] = len(spec.labels)
        if getattr(dataset, "split", 1) != 1:  # the standard counts are those of split 1
            expected = {k: v for k, v in expected.items() if k in ("videos", "labels", "tubes")}
    summary = PrepareSummary(name, expected_vs_found(index, expected))
    _print(f"dataset {name}: annotations read, media under {index.root}")
    _print_counts("annotations", summary.counts)
    if summary.mismatches:
        _print(
            "  note: counts differ from the standard release ("
            + ", ".join(summary.mismatches)
            + "); fine for a subset, else check the annotation file"
        )
    if check:
        summary.report = validate_index(
            index,
            frame_pattern=getattr(dataset, "frame_pattern", None),
            progress=progress,
            report=ValidationReport(f"{name} ({index.root})"),
        )
        total = sum(info.nframes for info in index.videos.values())
        _print_counts(
            "media",
            [
                ("videos found", len(index.videos), summary.report.media_checked
                 - sum(p.kind == "missing_video" for p in summary.report.problems)),
                ("frames", total, summary.report.frames_found),
            ],
        )  # fmt: skip
        _print(summary.report.format())
        if not summary.report.ok:
            if not skip_invalid or any(p.video is None for p in summary.report.problems):
                return summary
            prepared = check_dataset(prepared, skip_invalid=True, report=summary.report)
            index = prepared.index
            _print(f"skipping the invalid videos: {len(index.videos)} videos left")
    t_key = f"{detector.name}"
    _print(f"\ndetections ({t_key}) ...")
    dets = detector.load(index, prepared.detections)
    summary.detections = detection_stats(dets)
    d = summary.detections
    _print(
        f"  {d['videos']} videos, {d['frames']} frames, {d['boxes']} boxes: "
        f"{d['boxes_per_frame_mean']:.2f} per frame (min {d['boxes_per_frame_min']}, "
        f"max {d['boxes_per_frame_max']}); {d['frames_without_boxes']} frames and "
        f"{d['videos_without_boxes']} videos without any box"
    )
    made = cast(Linker, linker if hasattr(linker, "link") else linker())  # type: ignore[operator]
    _print(f"\ntubes ({made.name}) ...")
    tubes = link_cached(prepared, detector, made, cache_dir)
    summary.tubes_by_video = tubes
    summary.tubes = tube_stats(tubes)
    t = summary.tubes
    _print(
        f"  {t['tubes']} tubes in {t['videos']} videos: {t['tubes_per_video_mean']:.2f} per "
        f"video (min {t['tubes_per_video_min']}, max {t['tubes_per_video_max']}), "
        f"{t['videos_without_tubes']} videos without tubes, mean length "
        f"{t['mean_tube_length']:.1f} frames; cached under {cache_dir}"
    )
    return summary


def parser() -> argparse.ArgumentParser:
    """The command line (:func:`stage_overrides` turns its flags into config overrides)."""
    ap = argparse.ArgumentParser(
        prog="python -m wsal.app.prepare",
        description="Check a dataset's layout, detect actors on every frame and link tubes, "
        "caching both; prints the counts it expects and finds.",
    )
    ap.add_argument("dataset", choices=DATASETS)
    ap.add_argument("--root", required=True, help="the dataset folder")
    ap.add_argument("--annotations", help="annotation file (default: the dataset's, in --root)")
    ap.add_argument("--split", type=int, default=1, help="1-based split (J-HMDB: 1..3)")
    ap.add_argument("--media-dir", help="frames/videos folder under --root (default Frames; "
                    "custom: --root itself)")  # fmt: skip
    ap.add_argument("--frame-pattern", default="default",
                    help='frame file names, e.g. "{:05d}.jpg"; "none": any images, sorted')  # fmt: skip
    ap.add_argument("--video-ext", help="read <media-dir>/<video id><ext> video files instead")
    ap.add_argument("--split-list", help="UCF Sports split list (per-frame box annotations)")
    ap.add_argument("--testlist", help="UCF101-24 test list (finalAnnots.mat)")
    ap.add_argument("--detector", default="torchvision", choices=("torchvision", "file", "dataset"))
    ap.add_argument("--detections", help="detections store for --detector file")
    ap.add_argument("--model", default="fasterrcnn_resnet50_fpn_v2")
    ap.add_argument("--weights", default="DEFAULT")
    ap.add_argument("--score-thresh", type=float, default=0.5)
    ap.add_argument("--device", default="auto", help="auto | gpu | cpu")
    ap.add_argument("--batch-frames", type=int, default=16)
    ap.add_argument("--num-workers", type=int, default=2)
    ap.add_argument(
        "--linker", default="temporal_prim", choices=("temporal_prim", "viterbi", "actor")
    )
    ap.add_argument("--num-tubes", type=int, default=10)
    ap.add_argument("--tracker-checkpoint", help="SiamFC checkpoint for --linker actor")
    ap.add_argument(
        "--cache-dir", default=os.path.join(os.environ.get("WSAL_DATA", "data"), "cache")
    )
    ap.add_argument("--no-check", action="store_true", help="skip the layout check")
    ap.add_argument("--skip-invalid", action="store_true",
                    help="drop the videos the layout check finds invalid (listed) and go on")  # fmt: skip
    ap.add_argument("--no-progress", action="store_true")
    return ap


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.frame_pattern.lower() in ("none", "null", ""):
        args.frame_pattern = None
    progress = not args.no_progress
    try:
        dataset, detector, make_linker = build_stages(compose(stage_overrides(args)))
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    try:
        summary = prepare(dataset, detector, make_linker, args.cache_dir,
                          check=not args.no_check, progress=progress,
                          skip_invalid=args.skip_invalid)  # fmt: skip
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    if summary.report is not None and not summary.report.ok and not summary.tubes:
        print(
            f"\n{len(summary.report.problems)} layout problems: fix them (see above) and run "
            "again, or pass --no-check",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
