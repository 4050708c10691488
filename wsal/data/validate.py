"""Check a dataset (annotations + videos) and report every problem at once.

``python -m wsal.data.validate ANNOTATIONS --root DIR [--frame-pattern "{:05d}.jpg"]`` prints
every problem found, grouped by kind, and exits 1 if there is any (0 when the dataset is clean).

Kinds of problem (:class:`Problem.kind`):

- ``annotation``: the annotation file or one video's entry cannot be read as a whole;
- ``unknown_label``: a video or tube label that is not in ``labels``;
- ``bad_tube``: a tube whose frames/boxes disagree, leave ``[0, nframes)`` or are not increasing;
- ``split``: a split naming a video the annotations do not have;
- ``missing_video``: no video file or frame folder at ``root / path``;
- ``missing_frame``: a frame folder lacks frames of ``frame_pattern`` (a partial extraction);
- ``frame_count``: the annotation's ``nframes`` and the frames of the video disagree;
- ``frame_size``: the annotation's ``width``/``height`` and the video's disagree;
- ``box_outside``: GT boxes outside the frame by more than ``box_tolerance`` pixels;
- ``unreadable``: a video or frame that cannot be decoded.

wsal JSON is parsed leniently here (every bad tube reported, the rest still checked); other
formats are read with :func:`wsal.data.annotations.load_index`, whose first error is one
``annotation`` problem. Frames are 0-based, boxes xyxy pixels, as everywhere in wsal.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import logging
import os
import pickle
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from wsal.data.annotations import DatasetIndex, GTTube, VideoInfo, load_index
from wsal.data.datasets import PreparedDataset
from wsal.data.video import IMAGE_EXTENSIONS, VideoError, VideoReader
from wsal.errors import InputError, cli_main

log = logging.getLogger(__name__)

__all__ = [
    "InvalidDatasetError",
    "Problem",
    "ValidationReport",
    "check_dataset",
    "validate_annotations",
    "validate_index",
    "main",
]

KINDS = (
    "annotation",
    "unknown_label",
    "bad_tube",
    "split",
    "missing_video",
    "missing_frame",
    "frame_count",
    "frame_size",
    "box_outside",
    "unreadable",
)


@dataclass(frozen=True)
class Problem:
    """One thing wrong: its kind (see the module docstring), the video (None: file-wide) and a
    message saying what to fix."""

    kind: str
    video: str | None
    message: str


@dataclass
class ValidationReport:
    """All problems of one dataset plus what was looked at."""

    source: str
    videos: int = 0
    media_checked: int = 0
    frames_found: int = 0
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def counts(self) -> dict[str, int]:
        """Problems per kind (kinds with none left out)."""
        out: dict[str, int] = {}
        for p in self.problems:
            out[p.kind] = out.get(p.kind, 0) + 1
        return out

    def format(self) -> str:
        """Human-readable report: a summary line, then every problem grouped by kind."""
        head = (
            f"{self.source}: {self.videos} videos, {self.media_checked} videos/frame folders "
            f"checked, {self.frames_found} frames found"
        )
        if self.ok:
            return f"{head}\nOK: no problems found"
        lines = [head, f"{len(self.problems)} problems:"]
        for kind in KINDS:
            ps = [p for p in self.problems if p.kind == kind]
            if ps:
                lines.append(f"[{kind}] {len(ps)}")
                lines += [f"  {p.video + ': ' if p.video else ''}{p.message}" for p in ps]
        return "\n".join(lines)


# ----------------------------------------------------------------------------- annotations
def _lenient_wsal_json(path: Path, root: Path | None) -> tuple[DatasetIndex | None, list[Problem]]:
    """Parse a wsal JSON keeping every video that can be read; collect every problem."""
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        return None, [Problem("annotation", None, f"{path}: not readable JSON ({e})")]
    if not isinstance(data, dict) or any(k not in data for k in ("labels", "splits", "videos")):
        return None, [
            Problem("annotation", None, f"{path}: needs top-level keys labels, splits, videos")
        ]
    labels = [str(x) for x in data["labels"]]
    problems: list[Problem] = []

    def label_index(x: object, vid: str, what: str) -> int | None:
        if isinstance(x, str) and x in labels:
            return labels.index(x)
        if isinstance(x, int) and not isinstance(x, bool) and 0 <= x < len(labels):
            return x
        problems.append(Problem("unknown_label", vid, f"{what}: label {x!r} is not in {labels}"))
        return None

    videos: dict[str, VideoInfo] = {}
    for vid, v in data["videos"].items():
        try:
            nframes = int(v["nframes"])
        except (KeyError, TypeError, ValueError):
            problems.append(Problem("annotation", vid, "missing or non-integer 'nframes'"))
            continue
        tubes = []
        for j, t in enumerate(v.get("tubes", [])):
            lab = label_index(t.get("label"), vid, f"tube {j}")
            try:
                frames = np.asarray(t["frames"], dtype=np.int64).reshape(-1)
                boxes = np.asarray(t["boxes"], dtype=np.float32).reshape(-1, 4)
            except (KeyError, TypeError, ValueError) as e:
                problems.append(Problem("bad_tube", vid, f"tube {j}: unreadable ({e})"))
                continue
            msg = None
            if len(frames) != len(boxes):
                msg = f"{len(frames)} frames but {len(boxes)} boxes"
            elif frames.size and (frames.min() < 0 or frames.max() >= nframes):
                msg = f"frames {frames.min()}..{frames.max()} outside [0, nframes={nframes})"
            elif np.any(np.diff(frames) <= 0):
                msg = "frames not strictly increasing"
            if msg:
                problems.append(Problem("bad_tube", vid, f"tube {j}: {msg}"))
            elif lab is not None:
                tubes.append(GTTube(lab, frames, boxes))
        vlabels = [label_index(x, vid, "video") for x in v.get("labels", [])]
        videos[vid] = VideoInfo(
            nframes=nframes,
            labels=[x for x in vlabels if x is not None] or sorted({t.label for t in tubes}),
            tubes=tubes,
            width=v.get("width"),
            height=v.get("height"),
            fps=v.get("fps"),
            path=v.get("path"),
        )
    splits = {}
    for name, vs in data["splits"].items():
        unknown = [x for x in vs if x not in videos and x not in data["videos"]]
        if unknown:
            problems.append(
                Problem(
                    "split",
                    None,
                    f"split {name!r} names {len(unknown)} videos the "
                    f"annotations do not have, e.g. {unknown[:3]}",
                )  # fmt: skip
            )
        splits[name] = [x for x in vs if x in videos]
    return DatasetIndex(labels, splits, videos, root if root is not None else path.parent), problems


# ----------------------------------------------------------------------------- media
def _span_list(nums: Sequence[int], limit: int = 6) -> str:
    shown = ", ".join(str(n) for n in nums[:limit])
    return shown + (f", ... ({len(nums)} in all)" if len(nums) > limit else "")


def _check_media(
    vid: str,
    info: VideoInfo,
    path: Path,
    frame_pattern: str | None,
    start_number: int,
) -> tuple[list[Problem], tuple[int, int] | None, int]:
    """Problems of one video's file/folder, its (W, H) when readable, frames found."""
    if not path.exists():
        what = "frame folder or video file"
        return [Problem("missing_video", vid, f"{path}: no {what} (a partial download?)")], None, 0
    problems: list[Problem] = []
    size = None
    found = 0
    if path.is_dir():
        names = {p.name for p in path.iterdir() if not p.name.startswith(".")}
        if frame_pattern is not None:
            suffix = Path(frame_pattern.format(start_number)).suffix
            found = sum(n.endswith(suffix) for n in names)
            want = [frame_pattern.format(start_number + i) for i in range(info.nframes)]
            missing = [i for i, n in enumerate(want) if n not in names]
            if missing and len(missing) < info.nframes:
                problems.append(
                    Problem(
                        "missing_frame",
                        vid,
                        f"{path}: {len(missing)} of {info.nframes} "
                        f"frames missing, 0-based {_span_list(missing)} (e.g. "
                        f"{want[missing[0]]}); re-extract the frames",
                    )  # fmt: skip
                )
            if found != info.nframes and not (missing and found + len(missing) == info.nframes):
                problems.append(
                    Problem(
                        "frame_count",
                        vid,
                        f"{path}: the annotations say {info.nframes} "
                        f"frames, the folder has {found} *{suffix} files",
                    )  # fmt: skip
                )
            first = path / want[0] if want and want[0] in names else None
        else:
            imgs = sorted(n for n in names if Path(n).suffix.lower() in IMAGE_EXTENSIONS)
            found = len(imgs)
            if found != info.nframes:
                problems.append(
                    Problem(
                        "frame_count",
                        vid,
                        f"{path}: the annotations say {info.nframes} "
                        f"frames, the folder has {found} images",
                    )  # fmt: skip
                )
            first = path / imgs[0] if imgs else None
        if first is not None:
            import cv2

            img = cv2.imread(str(first), cv2.IMREAD_UNCHANGED)
            if img is None:
                problems.append(Problem("unreadable", vid, f"{first}: not a readable image"))
            else:
                size = (int(img.shape[1]), int(img.shape[0]))
    else:
        try:
            reader = VideoReader(path)
        except (VideoError, ValueError) as e:
            return [Problem("unreadable", vid, str(e))], None, 0
        found = reader.num_frames
        size = (reader.width, reader.height)
        if found != info.nframes:
            problems.append(
                Problem(
                    "frame_count",
                    vid,
                    f"{path}: the annotations say {info.nframes} "
                    f"frames, the video file has {found}",
                )  # fmt: skip
            )
    if size is not None and info.width and info.height and size != (info.width, info.height):
        problems.append(
            Problem(
                "frame_size",
                vid,
                f"{path}: the annotations say {info.width}x{info.height}, "
                f"the frames are {size[0]}x{size[1]}",
            )  # fmt: skip
        )
    return problems, size, found


def _boxes_outside(
    vid: str, info: VideoInfo, size: tuple[int, int], tol: float, labels: Sequence[str]
) -> list[Problem]:
    w, h = size
    out = []
    for j, t in enumerate(info.tubes):
        b = t.boxes  # [n, 4] xyxy
        bad = (b[:, 0] < -tol) | (b[:, 1] < -tol) | (b[:, 2] > w + tol) | (b[:, 3] > h + tol)
        if bad.any():
            k = int(np.argmax(bad))
            out.append(
                Problem(
                    "box_outside",
                    vid,
                    f"tube {j} ({labels[t.label]}): {int(bad.sum())} "
                    f"boxes outside the {w}x{h} frame, first at frame {int(t.frames[k])}: "
                    f"{np.round(b[k].astype(np.float64), 1).tolist()}",
                )  # fmt: skip
            )
    return out


def validate_index(
    index: DatasetIndex,
    *,
    frame_pattern: str | None = None,
    start_number: int = 1,
    check_media: bool = True,
    box_tolerance: float = 1.0,
    progress: bool = False,
    report: ValidationReport | None = None,
) -> ValidationReport:
    """Check every video of ``index`` against its media (``index.video_path``).

    Frame folders: with ``frame_pattern`` (``"{:05d}.jpg"``: frame ``i`` is
    ``pattern.format(start_number + i)``) every frame ``0..nframes-1`` must exist; without, the
    image count must be ``nframes``. Video files are opened (decord/PyAV) for their frame count
    and size. Boxes are checked against the frame size (the index's, else the media's) with
    ``box_tolerance`` pixels of slack (1-based datasets put ``x2`` at ``W`` or ``W + 1``).
    """
    report = report or ValidationReport(str(index.root))
    report.videos = len(index.videos)
    vids = list(index.videos)
    it = vids
    if progress and check_media:
        from tqdm import tqdm

        it = tqdm(vids, desc="checking videos", unit="video")
    for vid in it:
        info = index.videos[vid]
        size = (info.width, info.height) if info.width and info.height else None
        if check_media:
            if info.path is None:
                report.problems.append(Problem("missing_video", vid, "no 'path' in annotations"))
                continue
            probs, media_size, found = _check_media(
                vid, info, index.video_path(vid), frame_pattern, start_number
            )
            report.problems += probs
            report.media_checked += 1
            report.frames_found += found
            size = size or media_size
        if size is not None:
            report.problems += _boxes_outside(vid, info, size, box_tolerance, index.labels)
    return report


def validate_annotations(
    path: str | os.PathLike,
    root: str | os.PathLike | None = None,
    *,
    frame_pattern: str | None = None,
    start_number: int = 1,
    check_media: bool = True,
    box_tolerance: float = 1.0,
    split_list: str | os.PathLike | None = None,
    testlist: str | os.PathLike | None = None,
    progress: bool = False,
) -> ValidationReport:
    """Read an annotation file (any format :func:`load_index` reads) and check the dataset.

    ``root``: the folder the videos' paths are relative to (wsal JSON: default its folder; ACT /
    pyannot / UCF Sports ids: the ``Frames`` folder). Returns every problem found.
    """
    path = Path(path)
    report = ValidationReport(str(path))
    rootp = Path(root) if root is not None else None
    if not path.exists():
        report.problems.append(Problem("annotation", None, f"{path}: no such annotation file"))
        return report
    if path.suffix.lower() == ".json":
        index, probs = _lenient_wsal_json(path, rootp)
        report.problems += probs
    else:
        try:
            index = load_index(path, rootp, split_list=split_list, testlist=testlist)
        except (ValueError, OSError, pickle.UnpicklingError) as e:
            report.problems.append(Problem("annotation", None, str(e)))
            index = None
        if index is not None and index.root is None:
            index.root = rootp
    if index is None:
        return report
    if index.root is None and check_media:
        report.problems.append(
            Problem("annotation", None, f"{path}: records no video location; pass --root")
        )
        check_media = False
    return validate_index(
        index,
        frame_pattern=frame_pattern,
        start_number=start_number,
        check_media=check_media,
        box_tolerance=box_tolerance,
        progress=progress,
        report=report,
    )


class InvalidDatasetError(InputError):
    """A dataset with problems (:class:`ValidationReport`) found before any work on it.

    ``str()`` is the whole report and its summary; a CLI prints ``details`` (the report, one
    problem per line) and then ``summary`` as its one ``error:`` line."""

    def __init__(self, message: str, report: ValidationReport, summary: str | None = None) -> None:
        super().__init__(message)
        self.report = report
        self.details = report.format()
        self.summary = summary or message.splitlines()[-1]


def check_dataset(
    prepared: PreparedDataset,
    *,
    frame_pattern: str | None = None,
    skip_invalid: bool = False,
    key: str = "dataset",
    report: ValidationReport | None = None,
) -> PreparedDataset:
    """Check every video of a prepared dataset (:func:`validate_index`: media, frame counts,
    sizes, GT boxes) before anything is detected, linked or trained on it.

    Clean: ``prepared`` is returned as it is. Problems: :class:`InvalidDatasetError` listing every
    one (each naming its video and file), unless ``skip_invalid``: then the videos with a problem
    are dropped from the index and its splits, a warning lists them, and the returned dataset's
    ``cache_key`` says which were dropped (tubes and features cached for the whole dataset are
    never read for the subset). Problems of the annotation file as a whole cannot be skipped.
    ``key`` is the config group named in the messages; ``report``: the index's report when the
    caller has it already (not checked again). Cost: video files are opened and their
    first frame decoded; frame folders are listed and one image read (never a whole video).
    """
    index = prepared.index
    if report is None:
        report = validate_index(
            index,
            frame_pattern=frame_pattern,
            report=ValidationReport(f"{key} {prepared.name} ({index.root})"),
        )
    if report.ok:
        return prepared
    bad = sorted({p.video for p in report.problems if p.video is not None})
    file_wide = [p for p in report.problems if p.video is None]
    if not skip_invalid or file_wide:
        hint = (
            "fix the annotation file"
            if file_wide
            else f"fix them, or set {key}.skip_invalid=true to drop the {len(bad)} invalid videos"
        )
        summary = (
            f"{key} {prepared.name} ({index.root}): {len(report.problems)} problems in "
            f"{len(bad)} videos; {hint} ({key}.validate=false skips this check)"
        )
        raise InvalidDatasetError(f"{report.format()}\n{summary}", report, summary)
    drop = set(bad)
    kept = DatasetIndex(
        index.labels,
        {name: [v for v in vs if v not in drop] for name, vs in index.splits.items()},
        {v: info for v, info in index.videos.items() if v not in drop},
        index.root,
        excluded=[*index.excluded, *bad],
    )
    log.warning(
        "%s %s: dropping %d invalid videos (%s.skip_invalid=true): %s\n%s",
        key,
        prepared.name,
        len(bad),
        key,
        ", ".join(bad),
        report.format(),
    )
    tag = hashlib.sha1("\n".join(bad).encode()).hexdigest()[:8]
    return dataclasses.replace(
        prepared, index=kept, cache_key=f"{prepared.cache_key}-skip{len(bad)}-{tag}"
    )


@cli_main
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m wsal.data.validate",
        description="Check annotations against the videos; report every problem at once "
        "(exit code 1 if any).",
    )
    ap.add_argument("annotations", help="wsal JSON, ACT *-GT.pkl, pyannot, finalAnnots.mat, ...")
    ap.add_argument("--root", help="folder the video paths are relative to (default: the JSON's)")
    ap.add_argument("--frame-pattern", help='frame file names, e.g. "{:05d}.jpg" (default: any)')
    ap.add_argument("--start-number", type=int, default=1, help="number of frame 0 in names")
    ap.add_argument("--no-media", action="store_true", help="check the annotations only")
    ap.add_argument("--box-tolerance", type=float, default=1.0, help="pixels of slack")
    ap.add_argument("--split-list", help="UCF Sports split list (UCF-Sports_videos.txt)")
    ap.add_argument("--testlist", help="UCF101-24 test list for finalAnnots.mat")
    args = ap.parse_args(argv)
    report = validate_annotations(
        args.annotations,
        args.root,
        frame_pattern=args.frame_pattern,
        start_number=args.start_number,
        check_media=not args.no_media,
        box_tolerance=args.box_tolerance,
        split_list=args.split_list,
        testlist=args.testlist,
        progress=sys.stderr.isatty(),
    )
    print(report.format())
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
