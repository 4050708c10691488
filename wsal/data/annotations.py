"""Dataset annotations: the ``DatasetIndex`` and its readers/writers (DESIGN §4).

Inside wsal frames are 0-based and boxes are xyxy float32 pixels. Readers of other formats
convert at the boundary: ACT ``*-GT.pkl`` (1-based frames) with :func:`read_act_pkl`, UCF101-24
``pyannot`` (``sf``/``ef`` half-open, ``[x, y, w, h]`` boxes) with :func:`read_ucf101_pyannot`,
UCF101-24 ``finalAnnots.mat`` (1-based inclusive ``sf``/``ef``) with
:func:`read_ucf101_finalannots_mat`, UCF Sports per-frame box text files with
:func:`read_ucfsports_txt`; :func:`load_index` picks the reader from the file. ACT pickles can be
written back with :func:`write_act_pkl`; :func:`check_jhmdb_layout` checks J-HMDB's ACT layout. Pickles are untrusted input and go through
:func:`safe_pickle_load`, which only rebuilds containers, scalars and numpy arrays.
"""

from __future__ import annotations

import importlib
import json
import os
import pickle
import tarfile
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np

from wsal.atomic import atomic_path, atomic_write_text
from wsal.errors import InputError

__all__ = [
    "GTTube",
    "VideoInfo",
    "DatasetIndex",
    "read_wsal_json",
    "write_wsal_json",
    "SafeUnpickler",
    "UnreadablePickleError",
    "UnsafePickleError",
    "safe_pickle_load",
    "read_act_pkl",
    "read_ucf101_pyannot",
    "read_ucf101_finalannots_mat",
    "read_ucfsports_txt",
    "read_split_list",
    "write_act_pkl",
    "check_jhmdb_layout",
    "UCF101_24_LABELS",
    "JHMDB_LABELS",
    "UCFSPORTS_LABELS",
    "load_index",
]

#: The 24 UCF101-24 classes in the order of the corrected annotations (``finalAnnots.mat``
#: ``class`` is a 1-based index into this list; pyannot's ``classes`` is this list).
UCF101_24_LABELS: tuple[str, ...] = (
    "Basketball", "BasketballDunk", "Biking", "CliffDiving", "CricketBowling", "Diving",
    "Fencing", "FloorGymnastics", "GolfSwing", "HorseRiding", "IceDancing", "LongJump",
    "PoleVault", "RopeClimbing", "SalsaSpin", "SkateBoarding", "Skiing", "Skijet",
    "SoccerJuggling", "Surfing", "TennisSwing", "TrampolineJumping", "VolleyballSpiking",
    "WalkingWithDog",
)  # fmt: skip
#: The 21 J-HMDB classes in ACT's ``JHMDB-GT.pkl`` order (= the class folder names).
JHMDB_LABELS: tuple[str, ...] = (
    "brush_hair", "catch", "clap", "climb_stairs", "golf", "jump", "kick_ball", "pick", "pour",
    "pullup", "push", "run", "shoot_ball", "shoot_bow", "shoot_gun", "sit", "stand",
    "swing_baseball", "throw", "walk", "wave",
)  # fmt: skip
#: The 10 UCF Sports classes of the standard split list (``UCF-Sports_videos.txt``) and of
#: ``UCFSports-GT.pkl``, sorted by name.
UCFSPORTS_LABELS: tuple[str, ...] = (
    "Diving", "Golf", "Kicking", "Lifting", "Riding", "Run", "SkateBoarding", "Swing1", "Swing2",
    "Walk",
)  # fmt: skip


@dataclass
class GTTube:
    """One ground-truth action tube.

    label: class index into ``DatasetIndex.labels``.
    frames: int64[n] 0-based frame numbers, strictly increasing (gaps allowed: some datasets
        skip frames; the evaluator interpolates).
    boxes: float32[n, 4] xyxy pixels, one per frame.
    points: optional float32[n, 2] (x, y) one annotated point per frame (supervision levels).
    """

    label: int
    frames: np.ndarray
    boxes: np.ndarray
    points: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.label = int(self.label)
        self.frames = np.asarray(self.frames, dtype=np.int64).reshape(-1)
        n = self.frames.shape[0]
        self.boxes = np.asarray(self.boxes, dtype=np.float32).reshape(n, 4)
        if self.points is not None:
            self.points = np.asarray(self.points, dtype=np.float32).reshape(n, 2)
        if n and (np.any(np.diff(self.frames) <= 0) or self.frames[0] < 0):
            raise ValueError("GT tube frames must be non-negative and strictly increasing")

    def rows(self) -> np.ndarray:
        """float64[n, 5] ``[frame, x1, y1, x2, y2]``."""
        return np.concatenate(
            [self.frames[:, None].astype(np.float64), self.boxes.astype(np.float64)], axis=1
        )


@dataclass
class VideoInfo:
    """Per-video facts. ``path`` is relative to the dataset root (a file or a frame folder)."""

    nframes: int
    labels: list[int] = field(default_factory=list)
    tubes: list[GTTube] = field(default_factory=list)
    width: int | None = None
    height: int | None = None
    fps: float | None = None
    path: str | None = None


@dataclass
class DatasetIndex:
    """Everything wsal knows about a dataset apart from pixels.

    labels: class names; a class index is a position in this list.
    splits: split name -> ordered list of video ids. Split 1 of a dataset is ``train``/``test``;
        further splits are ``train2``/``test2``, ``train3``/``test3`` (J-HMDB).
    videos: video id -> VideoInfo.
    root: folder that ``VideoInfo.path`` is relative to (None when unknown).
    excluded: video ids left out of ``videos`` and ``splits`` by the dataset check
        (``skip_invalid``, :func:`wsal.data.validate.check_dataset`): their rows in a detections
        file are ignored rather than unknown.
    """

    labels: list[str]
    splits: dict[str, list[str]]
    videos: dict[str, VideoInfo]
    root: Path | None = None
    excluded: list[str] = field(default_factory=list)

    def split(self, name: str | int) -> list[str]:
        """Video ids of a split by name, or by index (``2`` -> ``test2``, ``1`` -> ``test``)."""
        if isinstance(name, int) or (isinstance(name, str) and name.isdigit()):
            i = int(name)
            name = "test" if i == 1 else f"test{i}"
        if name not in self.splits:
            raise KeyError(f"unknown split {name!r}; available: {sorted(self.splits)}")
        return self.splits[name]

    def gt_tubes(self, videos: list[str] | None = None) -> list[tuple[str, GTTube]]:
        """(video, tube) pairs of the given videos (default: all), in video order."""
        vids = list(self.videos) if videos is None else videos
        return [(v, t) for v in vids for t in self.videos[v].tubes]

    def video_path(self, video: str) -> Path:
        info = self.videos[video]
        if info.path is None:
            raise ValueError(f"video {video!r} has no path in the annotation index")
        return (self.root / info.path) if self.root is not None else Path(info.path)

    def summary(self) -> dict[str, Any]:
        """Counts for data-prep scripts and sanity checks.

        Keys: ``videos``, ``labels``, ``splits`` {name: videos}, ``tubes``, ``split_tubes``
        {name: tubes}, ``mean_tube_length`` (annotated frames per tube, 0.0 without tubes) and
        ``degenerate_boxes`` (boxes with ``x2 <= x1`` or ``y2 <= y1``: kept, but worth knowing).
        """
        tubes = [t for info in self.videos.values() for t in info.tubes]
        boxes = [t.boxes for t in tubes]
        degenerate = sum(int(np.sum((b[:, 2] <= b[:, 0]) | (b[:, 3] <= b[:, 1]))) for b in boxes)
        return {
            "videos": len(self.videos),
            "labels": len(self.labels),
            "splits": {k: len(v) for k, v in self.splits.items()},
            "tubes": len(tubes),
            "split_tubes": {
                k: sum(len(self.videos[v].tubes) for v in vs) for k, vs in self.splits.items()
            },
            "mean_tube_length": float(np.mean([len(t.frames) for t in tubes])) if tubes else 0.0,
            "degenerate_boxes": degenerate,
        }


def write_wsal_json(index: DatasetIndex, path: str | os.PathLike) -> None:
    """Write the wsal annotation JSON (DESIGN §4), atomically. Labels are written as names."""
    videos = {}
    for vid, info in index.videos.items():
        tubes = []
        for t in info.tubes:
            d = {
                "label": index.labels[t.label],
                "frames": t.frames.tolist(),
                "boxes": np.round(t.boxes.astype(np.float64), 3).tolist(),
            }
            if t.points is not None:
                d["points"] = np.round(t.points.astype(np.float64), 3).tolist()
            tubes.append(d)
        videos[vid] = {
            "path": info.path,
            "nframes": int(info.nframes),
            "width": info.width,
            "height": info.height,
            "fps": info.fps,
            "labels": [index.labels[lab] for lab in info.labels],
            "tubes": tubes,
        }
    data = {
        "labels": list(index.labels),
        "splits": {k: list(v) for k, v in index.splits.items()},
        "videos": videos,
    }
    atomic_write_text(Path(path), json.dumps(data))


def read_wsal_json(path: str | os.PathLike, root: str | os.PathLike | None = None) -> DatasetIndex:
    """Read a wsal annotation JSON; ``root`` defaults to the file's folder.

    Labels in ``videos.*.labels`` and ``tubes.*.label`` may be names or indices. Errors name the
    file, the video and what is wrong.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"annotation file not found: {path}")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON ({e})") from e
    for key in ("labels", "splits", "videos"):
        if key not in data:
            raise ValueError(f"{path}: missing top-level key {key!r}")
    labels = [str(x) for x in data["labels"]]
    name_to_idx = {n: i for i, n in enumerate(labels)}

    def label_index(x: object, vid: str) -> int:
        if isinstance(x, str):
            if x not in name_to_idx:
                raise ValueError(f"{path}: video {vid!r}: label {x!r} is not in labels {labels}")
            return name_to_idx[x]
        i = int(x)  # type: ignore[call-overload]
        if not 0 <= i < len(labels):
            raise ValueError(f"{path}: video {vid!r}: label index {i} out of range")
        return i

    videos: dict[str, VideoInfo] = {}
    for vid, v in data["videos"].items():
        try:
            tubes = []
            for j, t in enumerate(v.get("tubes", [])):
                frames = np.asarray(t["frames"], dtype=np.int64)
                boxes = np.asarray(t["boxes"], dtype=np.float32).reshape(-1, 4)
                if boxes.shape[0] != frames.shape[0]:
                    raise ValueError(f"tube {j}: {len(frames)} frames but {len(boxes)} boxes")
                if frames.size and frames.max() >= int(v["nframes"]):
                    raise ValueError(f"tube {j}: frame {frames.max()} >= nframes {v['nframes']}")
                pts = t.get("points")
                tubes.append(
                    GTTube(
                        label_index(t["label"], vid),
                        frames,
                        boxes,
                        None if pts is None else np.asarray(pts, np.float32),
                    )
                )
            vlabels = [label_index(x, vid) for x in v.get("labels", [])]
            if not vlabels:
                vlabels = sorted({t.label for t in tubes})
            videos[vid] = VideoInfo(
                nframes=int(v["nframes"]),
                labels=vlabels,
                tubes=tubes,
                width=v.get("width"),
                height=v.get("height"),
                fps=v.get("fps"),
                path=v.get("path"),
            )
        except (KeyError, TypeError, ValueError) as e:
            if str(path) in str(e):
                raise
            raise ValueError(f"{path}: video {vid!r}: {e}") from e
    splits = {k: list(vs) for k, vs in data["splits"].items()}
    for name, vs in splits.items():
        missing = [x for x in vs if x not in videos]
        if missing:
            raise ValueError(f"{path}: split {name!r} names unknown videos, e.g. {missing[:3]}")
    return DatasetIndex(labels, splits, videos, Path(root) if root is not None else path.parent)


# ---------------------------------------------------------------------------------------------
# Restricted unpickling (DESIGN §4: untrusted pickles admit only containers, scalars and numpy)
# ---------------------------------------------------------------------------------------------


class UnsafePickleError(InputError, pickle.UnpicklingError):
    """A pickle asked for a global outside the allow-list of :class:`SafeUnpickler`."""


class UnreadablePickleError(InputError, pickle.UnpicklingError):
    """A file that is not a readable pickle (truncated, corrupt); the message names it."""


# numpy reaches these through ``numpy.core`` (numpy < 2 writers) or ``numpy._core`` (numpy >= 2).
_NUMPY_CORE_GLOBALS = (
    ("multiarray", "_reconstruct"),  # ndarray.__reduce__
    ("multiarray", "scalar"),  # numpy scalars, e.g. the np.str_ video ids of the pyannot file
    ("numeric", "_frombuffer"),  # ndarray.__reduce_ex__ at protocol 5
)
_SAFE_GLOBALS: frozenset[tuple[str, str]] = frozenset(
    {("builtins", n) for n in ("set", "frozenset", "bytes", "bytearray", "complex")}
    | {("collections", "OrderedDict"), ("numpy", "ndarray"), ("numpy", "dtype")}
    # protocol <= 2 stores bytes (e.g. ndarray data) as latin-1 text re-encoded on load
    | {("_codecs", "encode")}
    | {
        (f"numpy.{core}.{mod}", name)
        for core in ("core", "_core")
        for mod, name in _NUMPY_CORE_GLOBALS
    }
)


def _resolve_global(module: str, name: str) -> Any:
    if module.startswith(("numpy.core.", "numpy._core.")):
        # Prefer numpy 2's ``numpy._core`` (its ``numpy.core`` shim warns on access); fall back to
        # ``numpy.core`` so that numpy 1.x can read pickles written by numpy 2 too.
        sub = module.split(".", 2)[2]
        for prefix in ("numpy._core", "numpy.core"):
            try:
                return getattr(importlib.import_module(f"{prefix}.{sub}"), name)
            except (ImportError, AttributeError):
                continue
        raise pickle.UnpicklingError(f"cannot resolve {module}.{name} in this numpy")
    return getattr(importlib.import_module(module), name)


class SafeUnpickler(pickle.Unpickler):
    """Unpickler that rebuilds only builtin containers/scalars and numpy arrays/scalars/dtypes.

    Any other global (``os.system``, ``builtins.eval``, a class, ...) raises
    :class:`UnsafePickleError` naming ``source`` and the refused ``module.name``, before anything
    is called. ``source`` only labels error messages.
    """

    def __init__(self, file: IO[bytes], *, source: str = "<pickle>", encoding: str = "latin1"):
        super().__init__(file, encoding=encoding)
        self.source = source

    def find_class(self, module: str, name: str) -> Any:
        mod = "builtins" if module == "__builtin__" else module  # Python 2 pickles
        if (mod, name) not in _SAFE_GLOBALS:
            raise UnsafePickleError(
                f"{self.source}: refusing to load {module}.{name} from an untrusted pickle "
                "(only builtin containers/scalars and numpy arrays/scalars/dtypes are allowed)"
            )
        return _resolve_global(mod, name)


def safe_pickle_load(path: str | os.PathLike, encoding: str = "latin1") -> Any:
    """Load a pickle file with :class:`SafeUnpickler`.

    ``encoding="latin1"`` reads Python 2 pickles with numpy arrays (ACT, pyannot). Raises
    ``FileNotFoundError``, :class:`UnsafePickleError` for a refused global, and
    ``pickle.UnpicklingError`` for a file that is not a readable pickle; all name the file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"annotation file not found: {path}")
    with path.open("rb") as fh:
        try:
            return SafeUnpickler(fh, source=str(path), encoding=encoding).load()
        except UnsafePickleError:
            raise
        except Exception as e:  # truncated/corrupt files raise many types (EOFError, KeyError...)
            raise UnreadablePickleError(f"{path}: not a readable pickle ({e!r})") from e


# ---------------------------------------------------------------------------------------------
# Importers of other formats: convert to 0-based frames and xyxy float32 at the boundary
# ---------------------------------------------------------------------------------------------


def _require_keys(data: object, path: Path, keys: tuple[str, ...], what: str) -> dict:
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a dict ({what}), got {type(data).__name__}")
    missing = [k for k in keys if k not in data]
    if missing:
        raise ValueError(f"{path}: not a {what} file: missing keys {missing}")
    return data


def _label_index(x: object, labels: list[str], path: Path, video: str) -> int:
    try:
        i = int(x)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        raise ValueError(f"{path}: video {video!r}: label {x!r} is not a class index") from None
    if not 0 <= i < len(labels):
        raise ValueError(
            f"{path}: video {video!r}: label index {i} out of range [0, {len(labels)})"
        )
    return i


def read_act_pkl(path: str | os.PathLike, root: str | os.PathLike | None = None) -> DatasetIndex:
    """Read an ACT ``*-GT.pkl`` (UCF Sports, J-HMDB, UCF101-24 as released with ACT/MOC).

    File layout: ``labels`` [L names]; ``gttubes`` {video: {label: [float (n, 5) rows
    ``[frame, x1, y1, x2, y2]`` with **1-based** frames]}}; ``nframes`` {video: int};
    ``resolution`` {video: (h, w)} or None; ``train_videos``/``test_videos``: one list of video
    ids per split (MultiSports' GT pickles have only ``test_videos``: the train splits are then
    empty).

    Returns frames **0-based** (file frame - 1) and boxes xyxy float32 as stored (degenerate
    boxes are kept). Video labels = labels that have tubes. Split 1 becomes ``train``/``test``,
    split i ``train{i}``/``test{i}``, in file order; ``videos`` is sorted by id, tubes by label.
    Frames are never re-sorted: frames that are not integers, outside ``[1, nframes]`` or not
    strictly increasing raise ``ValueError`` naming the file, video and tube. ``VideoInfo.path`` is the video id (ACT
    keeps frames in ``Frames/<video>/``: pass that folder as ``root``); ``root`` defaults to None
    because the pickle records no location.
    """
    path = Path(path)
    return _index_from_act(safe_pickle_load(path), path, root)


def _act_tube(rows: object, label: int, name: str, nframes: int, path: Path, video: str) -> GTTube:
    where = f"{path}: video {video!r}: tube {name}"
    a = np.asarray(rows, dtype=np.float64)
    if a.ndim != 2 or a.shape[1] != 5 or a.shape[0] == 0:
        raise ValueError(f"{where}: expected a non-empty (n, 5) array, got shape {a.shape}")
    f1 = a[:, 0]  # 1-based frames as stored
    if not np.all(np.isfinite(f1) & (f1 == np.round(f1))):
        raise ValueError(f"{where}: frame numbers are not integers")
    frames = f1.astype(np.int64) - 1  # [n] 0-based
    if frames[0] < 0 or frames.max() >= nframes:
        raise ValueError(
            f"{where}: 1-based frames {int(f1.min())}..{int(f1.max())} outside [1, nframes={nframes}]"
        )
    step = np.diff(frames)
    if np.any(step <= 0):
        i = int(np.argmax(step <= 0))
        raise ValueError(
            f"{where}: frames not strictly increasing (row {i + 1}: 1-based frame "
            f"{int(f1[i + 1])} after {int(f1[i])})"
        )
    return GTTube(label, frames, a[:, 1:5].astype(np.float32))


def _index_from_act(data: object, path: Path, root: str | os.PathLike | None) -> DatasetIndex:
    keys = ("labels", "gttubes", "nframes", "test_videos")
    data = _require_keys(data, path, keys, "ACT *-GT.pkl")
    if "train_videos" not in data:  # MultiSports' GT pickles hold only the test split
        data = {**data, "train_videos": [[] for _ in data["test_videos"]]}
    labels = [str(x) for x in data["labels"]]
    nframes = {str(v): int(n) for v, n in data["nframes"].items()}
    gttubes = {str(v): t for v, t in data["gttubes"].items()}
    resolution = {str(v): r for v, r in (data.get("resolution") or {}).items()}
    for vid in gttubes:
        if vid not in nframes:
            raise ValueError(f"{path}: video {vid!r} has gttubes but no nframes entry")
    videos: dict[str, VideoInfo] = {}
    for vid in sorted(nframes):
        tubes = []
        for lab, arrays in gttubes.get(vid, {}).items():
            li = _label_index(lab, labels, path, vid)
            for j, rows in enumerate(arrays):
                tubes.append(
                    _act_tube(rows, li, f"{j} of label {labels[li]!r}", nframes[vid], path, vid)
                )
        tubes.sort(key=lambda t: t.label)  # stable: keeps the file's order within a label
        h, w = (int(x) for x in resolution[vid]) if vid in resolution else (None, None)
        videos[vid] = VideoInfo(
            nframes=nframes[vid],
            labels=sorted({t.label for t in tubes}),
            tubes=tubes,
            width=w,
            height=h,
            path=vid,
        )
    train, test = data["train_videos"], data["test_videos"]
    if (
        not (isinstance(train, (list, tuple)) and isinstance(test, (list, tuple)))
        or len(train) != len(test)
        or any(isinstance(s, str) for s in [*train, *test])
    ):
        raise ValueError(
            f"{path}: train_videos/test_videos must be equally long lists with one list of video "
            "ids per split"
        )
    splits: dict[str, list[str]] = {}
    for i, (tr, te) in enumerate(zip(train, test), start=1):
        suffix = "" if i == 1 else str(i)
        for name, vids in ((f"train{suffix}", tr), (f"test{suffix}", te)):
            splits[name] = [str(v) for v in vids]
            unknown = [v for v in splits[name] if v not in videos]
            if unknown:
                raise ValueError(
                    f"{path}: split {name!r} names unknown video {unknown[0]!r} "
                    f"({len(unknown)} unknown in all)"
                )
    return DatasetIndex(labels, splits, videos, Path(root) if root is not None else None)


def read_ucf101_pyannot(
    path: str | os.PathLike,
    root: str | os.PathLike | None = None,
    resolution: tuple[int, int] | None = (240, 320),
) -> DatasetIndex:
    """Read the corrected UCF101-24 annotations (``pyannot_with_class_names.pkl``, G. Singh).

    File layout: ``{'db': {video: {'label', 'numf', 'annotations': [{'label', 'sf', 'ef',
    'boxes'}]}}, 'classes': [names], 'trainvideos': [ids]}`` where a tube covers frames
    ``range(sf, ef)`` (``sf`` 0-based inclusive, ``ef`` exclusive) and ``boxes`` is uint8/uint16
    ``[x, y, w, h]``, one row per frame.

    Returns frames **0-based** ``sf..ef-1`` and boxes xyxy float32 with ``x2 = x + w``,
    ``y2 = y + h`` (computed in float: the uint8 sums overflow). Coordinates are kept as stored
    (1-based pixels), as the community evaluation uses them. ``resolution`` (h, w) fills
    ``VideoInfo.height/width`` (the file has none; UCF101 is 240x320; None leaves them unknown).

    Splits (split 1 only): ``train`` = ``trainvideos`` present in ``db``, in file order (the real
    file lists 6 videos that are not in ``db``: they have no annotation and are dropped);
    ``test`` = the other ``db`` videos sorted by id, which is the order of the official
    ``testlist01.txt`` (``db``'s own order is an arbitrary dict order). ``videos`` is sorted by id.
    ``VideoInfo.path`` is the video id (``Class/v_Class_gXX_cYY``: pass the frame or video folder
    as ``root``; default None). A tube whose box count is not ``ef - sf``, or that leaves
    ``[0, numf)``, raises ``ValueError`` naming the file, video and tube.
    """
    path = Path(path)
    return _index_from_pyannot(safe_pickle_load(path), path, root, resolution)


def _index_from_pyannot(
    data: object,
    path: Path,
    root: str | os.PathLike | None,
    resolution: tuple[int, int] | None,
) -> DatasetIndex:
    data = _require_keys(data, path, ("db", "classes", "trainvideos"), "UCF101-24 pyannot")
    labels = [str(x) for x in data["classes"]]
    db = {str(v): e for v, e in data["db"].items()}  # keys are np.str_ in the real file
    h, w = (int(resolution[0]), int(resolution[1])) if resolution is not None else (None, None)
    videos: dict[str, VideoInfo] = {}
    for vid in sorted(db):
        entry = db[vid]
        try:
            numf, vlabel, anns = int(entry["numf"]), entry["label"], entry["annotations"]
        except (KeyError, TypeError) as e:
            raise ValueError(f"{path}: video {vid!r}: malformed entry ({e!r})") from e
        vlabels = {_label_index(vlabel, labels, path, vid)}
        tubes = []
        for j, ann in enumerate(anns):
            where = f"{path}: video {vid!r}: tube {j}"
            try:
                sf, ef, boxes = int(ann["sf"]), int(ann["ef"]), np.asarray(ann["boxes"])
                label = _label_index(ann["label"], labels, path, vid)
            except (KeyError, TypeError) as e:
                raise ValueError(f"{where}: malformed annotation ({e!r})") from e
            if not 0 <= sf < ef <= numf:
                raise ValueError(f"{where}: frames sf={sf}, ef={ef} not within [0, numf={numf}]")
            if boxes.ndim != 2 or boxes.shape[1] != 4 or boxes.shape[0] != ef - sf:
                raise ValueError(
                    f"{where}: boxes of shape {boxes.shape} do not match ef - sf = {ef - sf} "
                    "frames of [x, y, w, h]"
                )
            xywh = boxes.astype(np.float64)  # [n, 4] cast first: uint8 x + w overflows
            xyxy = np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], axis=1)  # [n, 4]
            tubes.append(GTTube(label, np.arange(sf, ef, dtype=np.int64), xyxy))
            vlabels.add(label)
        videos[vid] = VideoInfo(
            nframes=numf, labels=sorted(vlabels), tubes=tubes, width=w, height=h, path=vid
        )
    train = [v for v in dict.fromkeys(str(x) for x in data["trainvideos"]) if v in videos]
    train_set = set(train)
    test = [v for v in videos if v not in train_set]  # sorted, as ``videos`` is
    return DatasetIndex(
        labels, {"train": train, "test": test}, videos, Path(root) if root is not None else None
    )


# ---------------------------------------------------------------------------------------------
# UCF101-24 finalAnnots.mat (G. Singh's corrected annotations, the MATLAB original of pyannot)
# ---------------------------------------------------------------------------------------------


def _read_name_list(path: Path) -> list[str]:
    """Video ids of a list file (one per line, blank lines skipped, extension dropped)."""
    if not path.is_file():
        raise FileNotFoundError(f"video list not found: {path}")
    out = []
    for line in path.read_text().splitlines():
        line = line.strip()
        if line:
            out.append(line.split()[0].rsplit(".", 1)[0] if line.endswith(".avi") else line)
    return out


def _mat_scalar(x: Any, what: str) -> int:
    a = np.asarray(x).reshape(-1)
    if a.size != 1:
        raise ValueError(f"{what}: expected one number, got {a.size}")
    return int(a[0])


def _mat_string(x: Any) -> str:
    a = np.asarray(x).reshape(-1)
    return str(a[0]) if a.size else ""


def read_ucf101_finalannots_mat(
    path: str | os.PathLike,
    root: str | os.PathLike | None = None,
    testlist: str | os.PathLike | Sequence[str] | None = None,
    labels: Sequence[str] = UCF101_24_LABELS,
    resolution: tuple[int, int] | None = (240, 320),
) -> DatasetIndex:
    """Read UCF101-24 ``finalAnnots.mat`` (corrected annotations, G. Singh; MATLAB v5 file).

    File layout (``scipy.io.loadmat``): a 1xN struct array ``annot`` with fields ``num_imgs``
    (frames of the video), ``name`` (``Class/v_Class_gXX_cYY``) and ``tubes``, a 1xK struct array
    with fields ``sf``, ``ef`` (**1-based, inclusive**: the MATLAB evaluation uses ``sf:ef``),
    ``class`` (**1-based** index into ``labels``) and ``boxes`` (``ef - sf + 1`` rows of
    ``[x, y, w, h]``, 1-based pixels). Fields are found by name, so their order does not matter.
    The same content as pyannot, whose ``sf`` is this ``sf - 1`` and ``ef`` this ``ef``
    (exclusive), with 0-based labels: both readers return the same index.

    Returns frames **0-based** ``sf-1 .. ef-1`` and boxes xyxy float32 with ``x2 = x + w``,
    ``y2 = y + h`` (coordinates kept as stored). Video labels = the class of the name's folder
    (when it is a label) plus the tubes' classes. The file has no splits: ``testlist`` (a list
    file such as ``testlist01.txt``, or the ids; default: ``testlist01.txt`` beside the file) gives
    ``test`` in list order (ids not in the file are dropped with a warning), ``train`` = the other
    videos sorted by id. ``scipy`` is imported here (``pip install scipy``).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"annotation file not found: {path}")
    try:
        from scipy.io import loadmat
    except ImportError as e:  # pragma: no cover - scipy is a dependency
        raise ImportError(f"{path}: reading .mat files needs scipy (pip install scipy)") from e
    try:
        mat = loadmat(str(path), squeeze_me=False, struct_as_record=True)
    except NotImplementedError as e:  # MATLAB v7.3 files are HDF5
        raise ValueError(f"{path}: MATLAB v7.3 (HDF5) file; re-save it with save -v7 ({e})") from e
    except Exception as e:
        raise ValueError(f"{path}: not a readable MATLAB file ({e!r})") from e
    if "annot" not in mat:
        keys = sorted(k for k in mat if not k.startswith("__"))
        raise ValueError(f"{path}: not a finalAnnots.mat file: no 'annot' variable (has {keys})")
    annot = np.asarray(mat["annot"]).reshape(-1)
    names = annot.dtype.names or ()
    missing = [k for k in ("num_imgs", "name", "tubes") if k not in names]
    if missing:
        raise ValueError(f"{path}: 'annot' struct lacks fields {missing} (has {list(names)})")
    labels = [str(x) for x in labels]
    videos: dict[str, VideoInfo] = {}
    h, w = (int(resolution[0]), int(resolution[1])) if resolution is not None else (None, None)
    for i, a in enumerate(annot):
        vid = _mat_string(a["name"])
        where = f"{path}: video {vid or i!r}"
        if not vid:
            raise ValueError(f"{path}: annot({i + 1}) has no name")
        numf = _mat_scalar(a["num_imgs"], f"{where}: num_imgs")
        tubes_arr = np.asarray(a["tubes"]).reshape(-1)
        tubes = []
        vlabels = {labels.index(vid.split("/")[0])} if vid.split("/")[0] in labels else set()
        if tubes_arr.size and tubes_arr.dtype.names is None:
            raise ValueError(f"{where}: 'tubes' is not a struct array")
        for j, t in enumerate(tubes_arr):
            tw = f"{where}: tube {j}"
            try:
                sf = _mat_scalar(t["sf"], f"{tw}: sf")
                ef = _mat_scalar(t["ef"], f"{tw}: ef")
                cls = _mat_scalar(t["class"], f"{tw}: class")
                boxes = np.asarray(t["boxes"])
            except (KeyError, ValueError) as e:
                raise ValueError(f"{tw}: malformed tube ({e})") from e
            if not 1 <= cls <= len(labels):
                raise ValueError(f"{tw}: class {cls} outside 1..{len(labels)} (1-based)")
            if not 1 <= sf <= ef <= numf:
                raise ValueError(f"{tw}: sf={sf}, ef={ef} not within 1..num_imgs={numf} (1-based)")
            if boxes.ndim != 2 or boxes.shape != (ef - sf + 1, 4):
                raise ValueError(
                    f"{tw}: boxes of shape {boxes.shape}, expected ef - sf + 1 = {ef - sf + 1} "
                    "rows of [x, y, w, h]"
                )
            xywh = boxes.astype(np.float64)  # [n, 4] cast first: integer x + w may overflow
            xyxy = np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], axis=1)  # [n, 4]
            tubes.append(GTTube(cls - 1, np.arange(sf - 1, ef, dtype=np.int64), xyxy))
            vlabels.add(cls - 1)
        if vid in videos:
            raise ValueError(f"{where}: listed twice")
        videos[vid] = VideoInfo(
            nframes=numf, labels=sorted(vlabels), tubes=tubes, width=w, height=h, path=vid
        )
    videos = dict(sorted(videos.items()))
    if testlist is None:
        testlist = path.parent / "testlist01.txt"
        if not Path(testlist).is_file():
            raise ValueError(
                f"{path}: the file has no splits; put testlist01.txt beside it or pass testlist="
            )
    if isinstance(testlist, (str, os.PathLike)):
        test_ids = _read_name_list(Path(testlist))
    else:
        test_ids = [str(x) for x in testlist]
    test = [v for v in dict.fromkeys(test_ids) if v in videos]
    if len(test) < len(set(test_ids)):
        warnings.warn(
            f"{path}: {len(set(test_ids)) - len(test)} test-list videos have no annotation; "
            "dropped",
            stacklevel=2,
        )
    test_set = set(test)
    train = [v for v in videos if v not in test_set]
    return DatasetIndex(
        labels, {"train": train, "test": test}, videos, Path(root) if root is not None else None
    )


# ---------------------------------------------------------------------------------------------
# UCF Sports per-frame box text files + the standard split list
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SplitListEntry:
    """One row of ``UCF-Sports_videos.txt``: ``id class split nframes flag persons path``."""

    video: str  # ``<ClassDir>/<NNN>`` (the first two parts of ``path``)
    label: str
    split: str  # "train" | "test"
    nframes: int
    path: str


def read_split_list(path: str | os.PathLike) -> list[SplitListEntry]:
    """Rows of the UCF Sports split list (``UCF-Sports_videos.txt``, 7 whitespace columns:
    id, class, split, nframes, flag, persons, path) in file order; errors name the line."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"split list not found: {path}")
    out = []
    for n, line in enumerate(path.read_text().splitlines(), start=1):
        cols = line.split()
        if not cols:
            continue
        if len(cols) < 7:
            raise ValueError(f"{path}:{n}: expected 7 columns (id class split nframes flag "
                             f"persons path), got {len(cols)}: {line!r}")  # fmt: skip
        parts = cols[6].split("/")
        if cols[2] not in ("train", "test") or not cols[3].isdigit() or len(parts) < 2:
            raise ValueError(f"{path}:{n}: malformed row {line!r}")
        out.append(SplitListEntry("/".join(parts[:2]), cols[1], cols[2], int(cols[3]), cols[6]))
    if not out:
        raise ValueError(f"{path}: empty split list")
    return out


def _ucfsports_box_files(src: Path) -> dict[str, list[tuple[str, str]]]:
    """``{video: [(file name, text), ...]}`` of ``<...>/<ClassDir>/<NNN>/gt/<name>.txt`` files
    in a folder or a ``.tar.gz``."""
    found: dict[str, list[tuple[str, str]]] = {}
    if src.is_dir():
        for f in src.rglob("*.txt"):
            parts = f.relative_to(src).parts
            if len(parts) >= 4 and parts[-2] == "gt":
                found.setdefault(f"{parts[-4]}/{parts[-3]}", []).append((f.name, f.read_text()))
        return found
    try:
        with tarfile.open(src, "r:*") as tar:
            for m in tar:
                parts = tuple(m.name.split("/"))
                if not (m.isfile() and m.name.endswith(".txt") and len(parts) >= 4):
                    continue
                if parts[-2] == "gt":
                    fh = tar.extractfile(m)
                    text = fh.read().decode("utf-8", "replace") if fh else ""
                    found.setdefault(f"{parts[-4]}/{parts[-3]}", []).append((parts[-1], text))
    except (tarfile.TarError, OSError, EOFError) as e:
        raise ValueError(f"{src}: not a readable tar archive ({e}); a partial download?") from e
    return found


def read_ucfsports_txt(
    annotations: str | os.PathLike,
    split_list: str | os.PathLike,
    root: str | os.PathLike | None = None,
) -> DatasetIndex:
    """Read UCF Sports' per-frame human boxes (github.com/antran89/UCF-Sports-annotations).

    ``annotations``: the ``Annotations`` folder (or a folder above it) or the ``.tar.gz`` as
    downloaded, holding ``<ClassDir>/<NNN>/gt/<name>.txt`` with one line ``x y w h [tag]`` per
    frame. The frame index is the file's position in **sorted** name order (names are not
    consecutive numbers), 0-based. ``split_list``: ``UCF-Sports_videos.txt`` (see
    :func:`read_split_list`): labels (sorted class names), splits ``train``/``test`` in list
    order, ``nframes``.

    Returns one tube per video, frames ``0..n-1`` for its ``n`` box files, boxes xyxy float32
    with ``x2 = x + w``, ``y2 = y + h`` (degenerate boxes kept). ``nframes`` is the list's count,
    raised to ``n`` where a video has more box files than the list says (one video of the real
    data: ``Walk-Front/017``, 101 files, list 100; a warning says so) — the conventions of
    ``UCFSports-GT.pkl``, which this reader reproduces exactly. Videos are sorted by id;
    ``VideoInfo.path`` is the id. Split-list videos without box files raise ``ValueError``
    naming them all (a partial download); a file that is not one box line raises naming it.
    """
    src = Path(annotations)
    if not src.exists():
        raise FileNotFoundError(f"UCF Sports annotations not found: {src}")
    entries = read_split_list(split_list)
    found = _ucfsports_box_files(src)
    missing = [e.video for e in entries if e.video not in found]
    if missing:
        raise ValueError(
            f"{src}: no per-frame box files for {len(missing)} of {len(entries)} videos of "
            f"{split_list}, e.g. {missing[:5]}; a partial download or the wrong folder?"
        )
    labels = sorted({e.label for e in entries})
    videos: dict[str, VideoInfo] = {}
    for e in sorted(entries, key=lambda e: e.video):
        files = sorted(found[e.video])  # frame index = position in sorted name order
        boxes = np.zeros((len(files), 4), np.float64)  # [n, 4] x y w h
        for i, (name, text) in enumerate(files):
            rows = [r.split() for r in text.splitlines() if r.strip()]
            if len(rows) != 1 or len(rows[0]) < 4:
                raise ValueError(
                    f"{src}: {e.video}/gt/{name}: expected one line 'x y w h [tag]', got "
                    f"{len(rows)} lines"
                )
            try:
                boxes[i] = [float(x) for x in rows[0][:4]]
            except ValueError:
                raise ValueError(
                    f"{src}: {e.video}/gt/{name}: not numbers: {rows[0][:4]}"
                ) from None
        n = len(files)
        if n > e.nframes:
            warnings.warn(
                f"{src}: video {e.video!r} has {n} box files but the split list says "
                f"{e.nframes} frames; using nframes={n}",
                stacklevel=2,
            )
        xyxy = np.concatenate([boxes[:, :2], boxes[:, :2] + boxes[:, 2:]], axis=1)  # [n, 4]
        li = labels.index(e.label)
        videos[e.video] = VideoInfo(
            nframes=max(n, e.nframes),
            labels=[li],
            tubes=[GTTube(li, np.arange(n, dtype=np.int64), xyxy)],
            path=e.video,
        )
    splits = {s: [e.video for e in entries if e.split == s] for s in ("train", "test")}
    return DatasetIndex(labels, splits, videos, Path(root) if root is not None else None)


# ---------------------------------------------------------------------------------------------
# ACT export and the J-HMDB layout
# ---------------------------------------------------------------------------------------------


def write_act_pkl(index: DatasetIndex, path: str | os.PathLike) -> None:
    """Write ``index`` as an ACT ``*-GT.pkl`` (the inverse of :func:`read_act_pkl`), atomically.

    Frames are written **1-based** (0-based + 1), boxes xyxy float32; ``resolution`` is
    ``{video: (h, w)}`` when every video has a size, else None; splits ``train``/``test``,
    ``train2``/``test2``, ... become the ``train_videos``/``test_videos`` lists. Points are not
    part of the ACT layout and are dropped.
    """

    gttubes: dict[str, dict[int, list[np.ndarray]]] = {}
    for vid, info in index.videos.items():
        per: dict[int, list[np.ndarray]] = {}
        for t in info.tubes:
            rows = np.concatenate([(t.frames + 1)[:, None], t.boxes], axis=1)  # [n, 5] 1-based
            per.setdefault(t.label, []).append(rows.astype(np.float32))
        gttubes[vid] = per
    sized = all(i.width and i.height for i in index.videos.values())
    train, test = [], []
    i = 1
    while (f"train{'' if i == 1 else i}") in index.splits:
        suffix = "" if i == 1 else str(i)
        train.append(list(index.splits[f"train{suffix}"]))
        test.append(list(index.splits.get(f"test{suffix}", [])))
        i += 1
    data = {
        "labels": list(index.labels),
        "gttubes": gttubes,
        "nframes": {v: int(info.nframes) for v, info in index.videos.items()},
        "resolution": (
            {v: (int(info.height), int(info.width)) for v, info in index.videos.items()}  # type: ignore[arg-type]
            if sized
            else None
        ),
        "train_videos": train,
        "test_videos": test,
    }
    with atomic_path(Path(path), suffix=".pkl") as tmp, open(tmp, "wb") as fh:
        pickle.dump(data, fh, protocol=4)


def check_jhmdb_layout(index: DatasetIndex, num_splits: int = 3) -> list[str]:
    """Every way ``index`` departs from J-HMDB-21 as ACT's ``JHMDB-GT.pkl`` lays it out.

    Checks: the 21 labels in ACT's order (:data:`JHMDB_LABELS`); splits ``train``/``test``,
    ``train2``/``test2``, ``train3``/``test3``, each a partition of all videos; video ids
    ``<class>/<name>`` with exactly one tube, of the folder's class. Returns problem strings
    (empty: the layout is right); counts are left to the caller.
    """
    problems = []
    if list(index.labels) != list(JHMDB_LABELS):
        problems.append(f"labels {list(index.labels)[:4]}... are not J-HMDB's 21 classes")
    all_v = set(index.videos)
    for i in range(1, num_splits + 1):
        s = "" if i == 1 else str(i)
        tr, te = index.splits.get(f"train{s}"), index.splits.get(f"test{s}")
        if tr is None or te is None:
            problems.append(f"split {i}: missing train{s}/test{s} (ACT lists 3 splits)")
            continue
        both = set(tr) & set(te)
        if both:
            problems.append(f"split {i}: {len(both)} videos in train and test, e.g. {min(both)}")
        left = all_v - set(tr) - set(te)
        if left:
            problems.append(f"split {i}: {len(left)} videos in neither train nor test, e.g. "
                            f"{min(left)}")  # fmt: skip
    for vid, info in index.videos.items():
        cls = vid.split("/")[0]
        if len(info.tubes) != 1:
            problems.append(f"video {vid!r}: {len(info.tubes)} tubes, J-HMDB has one per video")
        elif cls in index.labels and info.tubes[0].label != index.labels.index(cls):
            problems.append(
                f"video {vid!r}: tube label {index.labels[info.tubes[0].label]!r} is not its "
                f"folder's class {cls!r}"
            )
    return problems


def load_index(
    path: str | os.PathLike,
    root: str | os.PathLike | None = None,
    *,
    split_list: str | os.PathLike | None = None,
    testlist: str | os.PathLike | Sequence[str] | None = None,
) -> DatasetIndex:
    """Read any supported annotation file into a :class:`DatasetIndex` (0-based frames, xyxy).

    ``.json``: wsal annotation JSON (:func:`read_wsal_json`; ``root`` defaults to its folder).
    ``.pkl``/``.pickle``: loaded once with :func:`safe_pickle_load`, then an ACT ``*-GT.pkl`` if it
    has ``gttubes`` (:func:`read_act_pkl`), UCF101-24 pyannot if it has ``db``
    (:func:`read_ucf101_pyannot`, default resolution). ``.mat``: UCF101-24 ``finalAnnots.mat``
    (:func:`read_ucf101_finalannots_mat`; ``testlist`` defaults to ``testlist01.txt`` beside
    it). A ``.tar.gz``/``.tgz`` or a folder: UCF Sports per-frame boxes
    (:func:`read_ucfsports_txt`; ``split_list`` defaults to ``UCF-Sports_videos.txt`` beside it).
    Anything else raises ``ValueError``. A file that cannot be read raises
    :class:`~wsal.errors.InputError` (a ``ValueError``) naming it, or ``FileNotFoundError``.
    """
    path = Path(path)
    try:
        return _load_index(path, root, split_list, testlist)
    except InputError:
        raise
    except ValueError as e:  # the readers name the file; make it an input error for the CLIs
        raise InputError(str(e), path) from e


def _load_index(
    path: Path,
    root: str | os.PathLike | None,
    split_list: str | os.PathLike | None,
    testlist: str | os.PathLike | Sequence[str] | None,
) -> DatasetIndex:
    name = path.name.lower()
    if path.is_dir() or name.endswith((".tar.gz", ".tgz", ".tar")):
        if not path.exists():
            raise FileNotFoundError(f"annotation file not found: {path}")
        if split_list is None:
            split_list = path.parent / "UCF-Sports_videos.txt"
            if not Path(split_list).is_file():
                raise ValueError(
                    f"{path}: UCF Sports per-frame boxes need the split list; put "
                    f"UCF-Sports_videos.txt beside it or pass split_list="
                )
        return read_ucfsports_txt(path, split_list, root)
    if not path.is_file():
        raise FileNotFoundError(f"annotation file not found: {path}")
    suffix = path.suffix.lower()
    if suffix == ".json":
        return read_wsal_json(path, root)
    if suffix == ".mat":
        return read_ucf101_finalannots_mat(path, root, testlist=testlist)
    if suffix in (".pkl", ".pickle"):
        data = safe_pickle_load(path)
        if isinstance(data, dict) and "gttubes" in data:
            return _index_from_act(data, path, root)
        if isinstance(data, dict) and "db" in data:
            return _index_from_pyannot(data, path, root, (240, 320))
        keys = sorted(map(str, data)) if isinstance(data, dict) else type(data).__name__
        raise ValueError(
            f"{path}: unknown pickle layout (top level: {keys}); expected an ACT *-GT.pkl "
            "('gttubes') or a UCF101-24 pyannot file ('db')"
        )
    raise ValueError(
        f"{path}: unknown annotation format {suffix!r}; expected .json (wsal), .pkl "
        "(ACT *-GT.pkl, UCF101-24 pyannot), .mat (UCF101-24 finalAnnots) or a UCF Sports "
        "per-frame box folder / .tar.gz"
    )
