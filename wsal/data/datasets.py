"""Dataset sources: where annotations, videos and a dataset's own detections come from.

Each source has ``prepare() -> PreparedDataset``: the :class:`DatasetIndex` (with ``root`` set so
video paths resolve) and the path of the dataset's own detections file, if it ships one.
Plain constructors (Hydra instantiates them from ``conf/dataset/*.yaml``); nothing is read from
disk before ``prepare()``.

- :class:`SynthActors`: the embedded benchmark, generated on first use.
- :class:`StandardDataset`: UCF Sports, J-HMDB-21, UCF101-24 with their standard splits, class
  lists and frame layouts (:data:`SPECS`; docs/datasets/*.md).
- :class:`AnnotatedDataset`: bring your own (wsal JSON or any supported annotation file).

Splits: whatever split is chosen (``split=2`` for J-HMDB) is exposed as ``train``/``test`` (what
training and evaluation read); every split stays available as ``train{i}``/``test{i}`` (split 1
also as ``train1``/``test1``).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from wsal.data.annotations import (
    JHMDB_LABELS,
    UCF101_24_LABELS,
    UCFSPORTS_LABELS,
    DatasetIndex,
    check_jhmdb_layout,
    load_index,
    read_wsal_json,
)
from wsal.data.synthactors import SynthConfig, ensure_synthactors

__all__ = [
    "PreparedDataset",
    "DatasetSpec",
    "SPECS",
    "SynthActors",
    "StandardDataset",
    "AnnotatedDataset",
    "check_split",
    "select_split",
    "set_media_layout",
]


@dataclass
class PreparedDataset:
    name: str
    index: DatasetIndex
    detections: Path | None  # the dataset's own detections file (e.g. SynthActors' simulated one)
    cache_key: str  # changes whenever anything that shaped the data changes


@dataclass(frozen=True)
class DatasetSpec:
    """What wsal knows about a standard dataset before reading it.

    annotations: default annotation file name under the dataset root.
    media_dir / frame_pattern: default layout, ``<root>/<media_dir>/<video id>/`` frame folders
        whose frame ``i`` (0-based) is ``frame_pattern.format(i + 1)`` (ACT's layout).
    expected: counts of the standard release (``videos``, ``tubes``, ``train``/``test`` of split
        1, ``test_tubes``) printed next to what is found; a missing key is not checked.
    actors: the detector classes of the actors of interest.
    """

    name: str
    title: str
    labels: tuple[str, ...]
    annotations: str
    num_splits: int = 1
    media_dir: str = "Frames"
    frame_pattern: str | None = "{:05d}.jpg"
    actors: tuple[str, ...] = ("person",)
    expected: dict[str, int] = field(default_factory=dict)
    download_hint: str = ""


SPECS: dict[str, DatasetSpec] = {
    "ucfsports": DatasetSpec(
        "ucfsports",
        "UCF Sports",
        UCFSPORTS_LABELS,
        "UCFSports-GT.pkl",
        # counts of the standard 103/47 split (UCF-Sports_videos.txt, pengxj/action-faster-rcnn)
        expected={"videos": 150, "tubes": 150, "train": 103, "test": 47, "test_tubes": 47},
        download_hint="UCFSports-GT.pkl (ACT), or per-frame-boxes.tar.gz + UCF-Sports_videos.txt "
        "with annotations=<root>/per-frame-boxes.tar.gz",
    ),
    "jhmdb": DatasetSpec(
        "jhmdb",
        "J-HMDB-21",
        JHMDB_LABELS,
        "JHMDB-GT.pkl",
        num_splits=3,
        frame_pattern="{:05d}.png",  # ACT's J-HMDB frames are png
        expected={"videos": 928, "tubes": 928},
        download_hint="JHMDB-GT.pkl from ACT (github.com/vkalogeiton/caffe, ACT-detector)",
    ),
    "ucf101_24": DatasetSpec(
        "ucf101_24",
        "UCF101-24",
        UCF101_24_LABELS,
        "pyannot_with_class_names.pkl",
        # corrected annotations (gurkirt/corrected-UCF101-Annots), split 1
        expected={"videos": 3194, "tubes": 4458, "train": 2284, "test": 910, "test_tubes": 1315},
        download_hint="pyannot_with_class_names.pkl (or finalAnnots.mat + testlist01.txt) from "
        "github.com/gurkirt/corrected-UCF101-Annots",
    ),
}


def check_split(split: int | str | None, num_splits: int, where: str) -> int:
    """``split`` (None = 1) as an int in ``1..num_splits``; ``ValueError`` naming ``where`` else."""
    try:
        i = 1 if split is None else int(split)
    except (TypeError, ValueError):
        raise ValueError(
            f"{where}: split must be a number 1..{num_splits}, got {split!r}"
        ) from None
    if not 1 <= i <= num_splits:
        raise ValueError(
            f"{where}: split {i} is out of range; this dataset has "
            f"{'only split 1' if num_splits == 1 else f'splits 1..{num_splits}'}"
        )
    return i


def select_split(index: DatasetIndex, split: int | str | None, num_splits: int, where: str) -> None:
    """Expose split ``split`` (1-based) of ``index`` as ``train``/``test``, in place.

    ``split`` None or 1 keeps split 1; 2.. copies ``train{i}``/``test{i}``. Every split stays
    available as ``train{i}``/``test{i}`` (split 1 also as ``train1``/``test1``). Raises
    ``ValueError`` naming ``where`` for a split outside ``1..num_splits``.
    """
    i = check_split(split, num_splits, where)
    if "train" in index.splits and "train1" not in index.splits:
        index.splits["train1"] = list(index.splits["train"])
        index.splits["test1"] = list(index.splits.get("test", []))
    if i > 1:
        for part in ("train", "test"):
            if f"{part}{i}" not in index.splits:
                raise ValueError(
                    f"{where}: split {i} asked for but the annotations have no {part}{i} "
                    f"(splits: {sorted(index.splits)})"
                )
            index.splits[part] = list(index.splits[f"{part}{i}"])


def set_media_layout(index: DatasetIndex, media_root: Path, video_ext: str | None) -> None:
    """Point every video at ``media_root/<id>`` (a frame folder) or ``media_root/<id><ext>``
    (a video file, ``video_ext`` like ``".avi"``), in place."""
    ext = "" if not video_ext else (video_ext if video_ext.startswith(".") else f".{video_ext}")
    for vid, info in index.videos.items():
        info.path = f"{vid}{ext}"
    index.root = media_root


def _file_key(*paths: Path | None, extra: object = None) -> str:
    parts = []
    for p in paths:
        if p is not None and p.exists():
            st = p.stat()
            parts.append(f"{p.resolve()}:{st.st_size}:{st.st_mtime_ns}")
    parts.append(json.dumps(extra, sort_keys=True, default=str))
    return hashlib.sha1("|".join(parts).encode()).hexdigest()[:12]


class SynthActors:
    """The embedded benchmark, generated under ``root`` on first use (DESIGN §5).

    ``preset`` names the regime (``trimmed`` like UCF Sports, ``untrimmed`` like UCF101-24:
    :data:`wsal.data.synthactors.PRESETS`; ``None`` = the plain :class:`SynthConfig` defaults,
    which are ``trimmed``); the other keyword arguments are
    :class:`wsal.data.synthactors.SynthConfig` fields applied on top. The config is built and
    checked here (a bad preset name or field fails before anything is generated); the folder is
    regenerated when it changes (its ``meta.json`` holds its hash). ``validate`` /
    ``skip_invalid``: what the route does with the prepared dataset
    (:func:`wsal.data.validate.check_dataset`).
    """

    name = "synthactors"
    actors = ("person",)
    frame_pattern = None

    def __init__(
        self,
        root: str = "data/synthactors",
        workers: int = 2,
        progress: bool = True,
        preset: str | None = None,
        validate: bool = True,
        skip_invalid: bool = False,
        **config: object,
    ) -> None:
        self.validate, self.skip_invalid = validate, skip_invalid
        self.root = Path(root)
        self.workers = workers
        self.progress = progress
        self.preset = preset
        self.config = config
        self.synth_config = (
            SynthConfig(**config)  # type: ignore[arg-type]
            if preset is None
            else SynthConfig.preset(preset, **config)
        )

    def prepare(self) -> PreparedDataset:
        cfg = self.synth_config
        root = ensure_synthactors(self.root, cfg, workers=self.workers, progress=self.progress)
        meta = json.loads((root / "meta.json").read_text())
        key = hashlib.sha1(
            json.dumps(meta.get("config_hash", meta), sort_keys=True, default=str).encode()
        ).hexdigest()[:12]
        return PreparedDataset(
            self.name,
            read_wsal_json(root / "annotations.json"),
            root / "detections.npz",
            f"{self.name}-{key}",
        )


class StandardDataset:
    """UCF Sports, J-HMDB-21 or UCF101-24 on disk, with the standard splits and class lists.

    Layout (default, ACT's): ``<root>/<annotations file>`` and ``<root>/Frames/<video id>/`` frame
    folders (``00001.jpg``...; J-HMDB ``00001.png``); or video files with ``video_ext``
    (``<root>/<media_dir>/<video id><video_ext>``). See docs/datasets/<name>.md.

    Args:
        name: ``"ucfsports"``, ``"jhmdb"`` or ``"ucf101_24"`` (:data:`SPECS`).
        root: the dataset folder.
        annotations: annotation file (default ``<root>/<spec.annotations>``): ACT ``*-GT.pkl``,
            UCF101-24 pyannot / ``finalAnnots.mat``, UCF Sports per-frame box folder/``.tar.gz``.
        split: 1-based split exposed as ``train``/``test`` (J-HMDB: 1..3; others: 1).
        media_dir: folder under ``root`` holding the frame folders or video files.
        frame_pattern: frame file names (``str.format`` of the 1-based number) for the layout
            checks; None: any image files, in sorted order (e.g. raw UCF Sports folders).
        video_ext: None for frame folders, else the video files' extension (``".avi"``).
        detections: a detections store of the dataset's own (optional; default
            ``<root>/detections.npz`` when it exists), used by ``detector=synthetic``.
        split_list / testlist: the UCF Sports split list / UCF101-24 test list when the
            annotation file needs one (default: beside it).
        actors: detector classes of the actors of interest (default: the spec's, person).
        validate, skip_invalid: what the route does with the prepared dataset
            (:func:`wsal.data.validate.check_dataset`).

    Raises ``ValueError`` at construction for an unknown name or a split out of range.
    """

    def __init__(
        self,
        name: str,
        root: str,
        annotations: str | None = None,
        split: int = 1,
        media_dir: str | None = None,
        frame_pattern: str | None = "default",
        video_ext: str | None = None,
        detections: str | None = None,
        split_list: str | None = None,
        testlist: str | None = None,
        actors: tuple[str, ...] | list[str] | None = None,
        validate: bool = True,
        skip_invalid: bool = False,
    ) -> None:
        self.validate, self.skip_invalid = validate, skip_invalid
        if name not in SPECS:
            raise ValueError(f"unknown standard dataset {name!r}; known: {sorted(SPECS)}")
        self.spec = SPECS[name]
        self.name = name
        self.root = Path(root)
        self.annotations = Path(annotations) if annotations else self.root / self.spec.annotations
        self.split = check_split(split, self.spec.num_splits, f"dataset {name!r}")
        self.media_dir = media_dir if media_dir is not None else self.spec.media_dir
        self.frame_pattern = (
            self.spec.frame_pattern if frame_pattern == "default" else frame_pattern
        )
        self.video_ext = video_ext or None
        self.detections = Path(detections) if detections else None
        self.split_list = Path(split_list) if split_list else None
        self.testlist = Path(testlist) if testlist else None
        self.actors = tuple(actors) if actors else self.spec.actors

    @property
    def media_root(self) -> Path:
        return self.root / self.media_dir

    def load_index(self) -> DatasetIndex:
        """The index with the chosen split and the media layout (checks labels, J-HMDB layout)."""
        where = f"dataset {self.name!r}"
        if not self.annotations.exists():
            raise FileNotFoundError(
                f"{where}: annotation file {self.annotations} not found; expected "
                f"{self.spec.download_hint} (docs/datasets/{self.name}.md)"
            )
        index = load_index(self.annotations, split_list=self.split_list, testlist=self.testlist)
        if list(index.labels) != list(self.spec.labels):
            raise ValueError(
                f"{where}: {self.annotations} has labels {list(index.labels)}, expected the "
                f"{len(self.spec.labels)} {self.spec.title} classes {list(self.spec.labels)}"
            )
        if self.name == "jhmdb":
            problems = check_jhmdb_layout(index, self.spec.num_splits)
            if problems:
                raise ValueError(
                    f"{where}: {self.annotations} is not in J-HMDB's ACT layout:\n  "
                    + "\n  ".join(problems)
                )
        select_split(index, self.split, self.spec.num_splits, f"{where} ({self.annotations})")
        set_media_layout(index, self.media_root, self.video_ext)
        return index

    def prepare(self) -> PreparedDataset:
        index = self.load_index()
        key = _file_key(
            self.annotations if self.annotations.is_file() else None,
            self.split_list,
            self.testlist,
            extra=[str(self.media_root.resolve()), self.split, self.video_ext],
        )
        name = self.name if self.split == 1 else f"{self.name}{self.split}"
        dets = self.detections
        if dets is None and (self.root / "detections.npz").is_file():
            dets = self.root / "detections.npz"  # the dataset's own detections (detector=synthetic)
        return PreparedDataset(name, index, dets, f"{name}-{key}")


class AnnotatedDataset:
    """A dataset on disk: an annotation file (wsal JSON, ACT ``*-GT.pkl``, UCF101-24 pyannot or
    ``finalAnnots.mat``, UCF Sports boxes) whose video paths are relative to ``root``, and
    optionally a detections file of its own.

    ``annotations`` defaults to ``<root>/annotations.json``; ``root`` defaults to the annotation
    file's folder for wsal JSON. ``split`` (1-based) is exposed as ``train``/``test`` when the
    file has several (``train{i}``/``test{i}``). ``frame_pattern`` is the frame file names of frame
    folders for the layout checks (None: any image files in sorted order); ``actors`` the
    detector classes of the actors of interest; ``validate`` / ``skip_invalid``: what the route
    does with the prepared dataset (:func:`wsal.data.validate.check_dataset`). Bring your own:
    docs/datasets/custom.md.
    """

    def __init__(
        self,
        annotations: str | None = None,
        root: str | None = None,
        name: str = "custom",
        detections: str | None = None,
        split: int | None = None,
        frame_pattern: str | None = None,
        actors: tuple[str, ...] | list[str] = ("person",),
        validate: bool = True,
        skip_invalid: bool = False,
    ) -> None:
        self.validate, self.skip_invalid = validate, skip_invalid
        if not annotations and not root:
            raise ValueError(
                f"dataset {name!r}: give dataset.root (holding annotations.json) or "
                "dataset.annotations"
            )
        self.annotations = (
            Path(annotations) if annotations else Path(root or ".") / "annotations.json"
        )
        self.root = root
        self.name = name
        self.detections = Path(detections) if detections else None
        self.split = split
        self.frame_pattern = frame_pattern
        self.actors = tuple(actors)

    def load_index(self) -> DatasetIndex:
        index = load_index(self.annotations, root=self.root)
        if self.split is not None:
            n = 1
            while f"train{n + 1}" in index.splits:
                n += 1
            select_split(index, self.split, n, f"dataset {self.name!r} ({self.annotations})")
        if index.root is None and self.root is not None:
            index.root = Path(self.root)
        return index

    def prepare(self) -> PreparedDataset:
        index = self.load_index()
        if not os.path.exists(self.annotations):  # pragma: no cover - load_index raised already
            raise FileNotFoundError(self.annotations)
        st = self.annotations.stat()
        text = f"{self.annotations.resolve()}:{st.st_size}:{st.st_mtime_ns}"
        if self.split not in (None, 1):
            text += f":split{self.split}"
        key = hashlib.sha1(text.encode())
        return PreparedDataset(
            self.name, index, self.detections, f"{self.name}-{key.hexdigest()[:12]}"
        )
