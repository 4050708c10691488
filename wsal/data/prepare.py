"""Prepare a dataset from raw download to cached tubes, printing what it expects and finds.

``python -m wsal.data.prepare DATASET --root DIR [--annotations FILE] [--split N]
[--detector torchvision|file|dataset] [--linker temporal_prim|viterbi|actor] [--cache-dir DIR]``

1. reads the annotations with the dataset's layout (:class:`~wsal.data.datasets.StandardDataset`
   for ``ucfsports``/``jhmdb``/``ucf101_24``, :class:`~wsal.data.datasets.AnnotatedDataset` for
   ``custom``) and prints the standard release's counts next to those found;
2. checks every video / frame folder (:mod:`wsal.data.validate`) and stops with every problem
   listed if there is any (``--no-check`` skips it);
3. runs the detector over all frames (torchvision: a sharded, resumable Lightning predict on the
   GPU when there is one, cached under ``<cache-dir>/detections``) and prints detections per frame;
4. links tubes with the linker and caches them (:func:`wsal.pipeline.link_cached`, the cache
   ``train.py`` reads), printing tubes per video.

Runs again in seconds once cached: detections and tubes are only computed on a cache miss.
Exit code 0 when done, 1 on layout problems, 2 on bad arguments.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from wsal.data.annotations import DatasetIndex
from wsal.data.datasets import SPECS, AnnotatedDataset, PreparedDataset, StandardDataset
from wsal.data.validate import ValidationReport, validate_index
from wsal.structures import Detections, Tubes

__all__ = [
    "PrepareSummary",
    "build_dataset",
    "build_detector",
    "build_linker",
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


def build_dataset(
    name: str,
    root: str | os.PathLike,
    annotations: str | None = None,
    split: int = 1,
    media_dir: str | None = None,
    frame_pattern: str | None = "default",
    video_ext: str | None = None,
    split_list: str | None = None,
    testlist: str | None = None,
) -> StandardDataset | AnnotatedDataset:
    """The dataset source of ``name`` under ``root`` (``custom``: ``annotations`` default
    ``<root>/annotations.json``, video paths relative to ``<root>/<media_dir>``)."""
    if name == "custom":
        media = Path(root) / (media_dir or "")
        pattern = None if frame_pattern == "default" else frame_pattern
        return AnnotatedDataset(
            annotations or str(Path(root) / "annotations.json"),
            root=str(media),
            split=split if split != 1 else None,
            frame_pattern=pattern,
        )
    return StandardDataset(
        name,
        str(root),
        annotations=annotations,
        split=split,
        media_dir=media_dir,
        frame_pattern=frame_pattern,
        video_ext=video_ext,
        split_list=split_list,
        testlist=testlist,
    )


def build_detector(
    kind: str,
    *,
    detections: str | None = None,
    classes: tuple[str, ...] = ("person",),
    out_dir: str | os.PathLike = "data/cache/detections",
    model: str = "fasterrcnn_resnet50_fpn_v2",
    weights: str | None = "DEFAULT",
    score_thresh: float = 0.5,
    device: str = "auto",
    batch_frames: int = 16,
    num_workers: int = 2,
    progress: bool = True,
) -> Any:
    """``torchvision`` (any detection model, actors of interest ``classes``), ``file`` (a
    detections store at ``detections``) or ``dataset`` (the dataset's own detections file)."""
    from wsal.detection.backends import StoredDetections, TorchvisionDetector

    if kind == "torchvision":
        return TorchvisionDetector(
            model=model,
            weights=weights,
            classes=classes,
            score_thresh=score_thresh,
            device=device,
            batch_frames=batch_frames,
            num_workers=num_workers,
            out_dir=str(out_dir),
            progress=progress,
        )
    if kind == "file":
        if not detections:
            raise ValueError("--detector file needs --detections PATH (a detections store)")
        return StoredDetections(detections, name="file")
    if kind == "dataset":
        return StoredDetections(None, name="dataset")
    raise ValueError(f"unknown detector {kind!r}; use torchvision, file or dataset")


def build_linker(kind: str, num_tubes: int = 10, progress: bool = True, **kwargs: Any) -> Any:
    """``temporal_prim`` | ``viterbi`` | ``actor`` with ``num_tubes`` tubes per video."""
    from wsal.linking import ActorLinker, TemporalPrimLinker, ViterbiLinker

    classes = {"temporal_prim": TemporalPrimLinker, "viterbi": ViterbiLinker, "actor": ActorLinker}
    if kind not in classes:
        raise ValueError(f"unknown linker {kind!r}; use {', '.join(classes)}")
    return classes[kind](num_tubes=num_tubes, progress=progress, **kwargs)


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
    linker: Any,
    cache_dir: str | os.PathLike,
    *,
    check: bool = True,
    progress: bool = True,
) -> PrepareSummary:
    """Index, check, detect, link and cache one dataset; print the counts at each step.

    Returns the summary; when the layout check finds problems it stops before detection
    (``summary.report.ok`` is False, no detections/tubes).
    """
    from wsal.pipeline import link_cached

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
            return summary
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
    _print(f"\ntubes ({linker.name}) ...")
    tubes = link_cached(prepared, detector, linker, cache_dir)
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


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m wsal.data.prepare",
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
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args(argv)
    pattern = None if args.frame_pattern.lower() in ("none", "null", "") else args.frame_pattern
    progress = not args.no_progress
    try:
        dataset = build_dataset(
            args.dataset,
            args.root,
            annotations=args.annotations,
            split=args.split,
            media_dir=args.media_dir,
            frame_pattern=pattern,
            video_ext=args.video_ext,
            split_list=args.split_list,
            testlist=args.testlist,
        )
        detector = build_detector(
            args.detector,
            detections=args.detections,
            classes=tuple(getattr(dataset, "actors", ("person",))),
            out_dir=Path(args.cache_dir) / "detections",
            model=args.model,
            weights=None if args.weights.lower() in ("none", "null") else args.weights,
            score_thresh=args.score_thresh,
            device=args.device,
            batch_frames=args.batch_frames,
            num_workers=args.num_workers,
            progress=progress,
        )
        extra = {"checkpoint": args.tracker_checkpoint} if args.linker == "actor" else {}
        linker = build_linker(args.linker, args.num_tubes, progress=progress, **extra)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    try:
        summary = prepare(dataset, detector, linker, args.cache_dir, check=not args.no_check,
                          progress=progress)  # fmt: skip
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    if summary.report is not None and not summary.report.ok:
        print(
            f"\n{len(summary.report.problems)} layout problems: fix them (see above) and run "
            "again, or pass --no-check",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
