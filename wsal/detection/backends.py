"""Detector backends that produce per-video :class:`Detections` for a dataset.

Every backend has ``name``, ``cache_key(default) -> str`` (changes whenever its boxes would) and
``load(index, default) -> {video: Detections}`` (every video of the index; ``default`` is the
dataset's own detections file or None). See docs/detectors.md.

- ``StoredDetections`` reads a detections store (DESIGN §4): a file given by path, or the dataset's
  own detections (SynthActors' simulated actor detector) when ``path`` is None.
- ``TorchvisionDetector`` runs any torchvision detection model over the dataset's videos (a
  Lightning predict, sharded and resumable: :mod:`wsal.detection`), keeps the actors of interest,
  caches the merged detections file and reads it like a store.
- ``HogDetector`` runs OpenCV's HOG people detector (in the opencv wheel: no download) the same
  way, on the CPU (:mod:`wsal.detection.hog`; docs/real_footage.md).

torch and Lightning are imported only when a torchvision or HOG detector runs.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from wsal.atomic import file_lock
from wsal.data.annotations import DatasetIndex
from wsal.data.detections import load_detections
from wsal.detection.hog import HOG_DEFAULTS, HogPeople
from wsal.errors import discard_unreadable, zip_problem
from wsal.structures import Detections

__all__ = ["HogDetector", "StoredDetections", "TorchvisionDetector", "merged_file_ok"]

log = logging.getLogger(__name__)


class StoredDetections:
    """Detections read from a store; frames are checked against the index, boxes clipped to the
    frame when the index knows its size."""

    def __init__(self, path: str | None = None, name: str = "file") -> None:
        self.path = Path(path) if path else None
        self.name = name

    def resolve(self, default: Path | None) -> Path:
        path = self.path or default
        if path is None:
            raise ValueError(
                f"detector {self.name!r}: no detections file given and the dataset ships none; "
                "set detector.path=/path/to/detections.npz"
            )
        return path

    def cache_key(self, default: Path | None) -> str:
        p = self.resolve(default)
        st = p.stat()
        return hashlib.sha1(f"{p.resolve()}:{st.st_size}:{st.st_mtime_ns}".encode()).hexdigest()[
            :12
        ]

    def load(self, index: DatasetIndex, default: Path | None = None) -> dict[str, Detections]:
        """Detections of every video of ``index`` (a video without a row gets an empty set)."""
        return _read_store(self.resolve(default), index)


def _read_store(path: Path, index: DatasetIndex) -> dict[str, Detections]:
    """Detections of every video of ``index`` from a store, checked against its frame counts."""
    nframes = {v: info.nframes for v, info in index.videos.items()}
    sizes = {
        v: (info.width, info.height)
        for v, info in index.videos.items()
        if info.width and info.height
    }
    dets = load_detections(
        path,
        num_frames=nframes,
        frame_size=sizes if len(sizes) == len(nframes) else None,
        ignore=index.excluded,  # videos the dataset check dropped
    )
    return {v: dets.get(v, Detections.empty(nframes[v])) for v in index.videos}


def merged_file_ok(path: Path) -> bool:
    """True when the merged detections file ``path`` exists and is a whole ``.npz`` (central
    directory and member extents: cheap, whatever its size); a cut one is logged and deleted, so
    that it is merged again from its shards."""
    if not path.exists():
        return False
    why = zip_problem(path)
    if why is None:
        return True
    discard_unreadable(path, why, "merged detections file", log)
    return False


class _PredictDetector:
    """What the detector backends that run a sharded Lightning predict share: the merged file's
    path (dataset key + ``cache_key``), detect-unless-cached with resume, and loading. Subclasses
    define ``name``, ``out_dir``, ``batch_frames``, ``num_workers``, ``progress``, ``params()``,
    ``cache_key()``, ``build_module()`` and ``_run_kwargs()`` (devices, precision...)."""

    name: str
    out_dir: Path
    batch_frames: int
    num_workers: int
    progress: bool

    def params(self) -> dict[str, Any]:
        raise NotImplementedError

    def cache_key(self, default: Path | None = None) -> str:
        raise NotImplementedError

    def build_module(self) -> Any:
        raise NotImplementedError

    def _run_kwargs(self) -> dict[str, Any]:
        return {}

    def output_path(self, index: DatasetIndex, videos: Sequence[str] | None = None) -> Path:
        """The merged detections file of these videos (default: all) under ``out_dir``."""
        from wsal.detection.predict import dataset_key, jobs_from_index

        key = dataset_key(jobs_from_index(index, videos))
        return self.out_dir / f"detections__{key}__{self.name}-{self.cache_key()}.npz"

    def detect(
        self,
        index: DatasetIndex,
        out: str | Path | None = None,
        videos: Sequence[str] | None = None,
    ) -> Path:
        """Detect on ``videos`` of ``index`` (default: all) unless ``out`` (default:
        :meth:`output_path`) exists; resumes from the shards beside it. Returns ``out``."""
        from wsal.detection.predict import jobs_from_index, run_detection

        out = Path(out) if out is not None else self.output_path(index, videos)
        if out.exists() and zip_problem(out) is None:  # whole: read it, no lock needed
            return out
        # one process detecting alone: concurrent runs detect once, the others wait and read it
        # (several devices or ranks share the work through the shards; a lock would block them)
        alone = (getattr(self, "devices", 1) or 1) == 1 and int(
            os.environ.get("WORLD_SIZE", 1)
        ) == 1
        with file_lock(out, "detections") if alone else contextlib.nullcontext():
            if merged_file_ok(out):  # a cut one is logged and deleted, and merged again
                return out
            jobs = jobs_from_index(index, videos)
            meta = {"detector": self.name, **self.params(), "videos": len(jobs)}
            return run_detection(
                jobs,
                self.build_module(),
                out,
                batch_frames=self.batch_frames,
                num_workers=self.num_workers,
                progress=self.progress,
                meta=meta,
                **self._run_kwargs(),
            )

    def load(self, index: DatasetIndex, default: Path | None = None) -> dict[str, Detections]:
        """Detections of every video of ``index`` (detected first on a cache miss; ``default``,
        the dataset's own detections, is not used)."""
        return _read_store(self.detect(index), index)


class TorchvisionDetector(_PredictDetector):
    """Any torchvision detection model, run over a dataset's videos; keeps the actors of interest.

    Boxes are ``xyxy`` float pixels of the frames decoded at the index's size, frames 0-based,
    ``labels`` the category index of the weights' list (COCO: person = 1). Nothing is built or
    read at construction; :meth:`load` detects on a cache miss.

    Args:
        model: a torchvision detection model name, e.g. ``"fasterrcnn_resnet50_fpn_v2"``.
        weights: ``"DEFAULT"``, a torchvision enum name (``"FasterRCNN_ResNet50_FPN_V2_Weights.
            COCO_V1"``), a local state-dict path, or None (random init with ``seed``: tests).
            Pretrained files are read from ``$TORCH_HOME/hub/checkpoints``; missing ones raise an
            error saying where to put them unless ``download``.
        classes: category names of the actors of interest (``("person",)`` for human actions;
            any COCO classes, e.g. ``("dog", "horse")``, for other actors).
        score_thresh: keep boxes scoring at least this.
        nms_iou: class-wise NMS IoU per frame (None: the model's own, 0.5 for the R-CNNs).
        max_per_frame: at most this many boxes per frame (the highest-scoring).
        min_size, max_size: the model's internal resize (None: its default).
        batch_frames: frames per forward pass.
        device: Lightning accelerator (``"cpu"``, ``"gpu"``/``"cuda"``, ``"auto"``).
        devices, num_nodes, strategy, precision: Lightning Trainer arguments (``devices=4,
            strategy="ddp"`` for 4 GPUs; see docs/detectors.md for running DDP from a script).
        num_workers: video-decoding DataLoader workers per rank.
        out_dir: where the merged file and its shards go (one pair per dataset and parameters).
        progress: show Lightning's progress bar.
        download: allow downloading missing pretrained weights.
        seed: random-init seed (weights=None only).
        name: the backend's name in cache keys and results.
    """

    def __init__(
        self,
        model: str = "fasterrcnn_resnet50_fpn_v2",
        weights: str | None = "DEFAULT",
        classes: Sequence[str] = ("person",),
        score_thresh: float = 0.5,
        nms_iou: float | None = 0.5,
        max_per_frame: int = 100,
        min_size: int | None = None,
        max_size: int | None = None,
        batch_frames: int = 16,
        device: str = "auto",
        devices: int | str | Sequence[int] = 1,
        num_nodes: int = 1,
        strategy: str = "auto",
        precision: str = "32-true",
        num_workers: int = 2,
        out_dir: str = "data/cache/detections",
        progress: bool = True,
        download: bool = False,
        seed: int = 0,
        name: str = "torchvision",
    ) -> None:
        if isinstance(classes, str):
            classes = (classes,)
        self.model = model
        self.weights = None if weights in (None, "", "none", "None") else str(weights)
        self.classes = tuple(str(c) for c in classes)
        self.score_thresh = float(score_thresh)
        self.nms_iou = None if nms_iou is None else float(nms_iou)
        self.max_per_frame = int(max_per_frame)
        self.min_size = min_size
        self.max_size = max_size
        self.batch_frames = int(batch_frames)
        self.device = device
        self.devices = devices
        self.num_nodes = num_nodes
        self.strategy = strategy
        self.precision = precision
        self.num_workers = num_workers
        self.out_dir = Path(out_dir)
        self.progress = progress
        self.download = download
        self.seed = int(seed)
        self.name = name

    def params(self) -> dict[str, Any]:
        """Everything that shapes the boxes (not batching, devices or workers)."""
        from wsal.detection.model import resolve_weights

        resolved = resolve_weights(self.model, self.weights)
        return {
            "model": self.model,
            "weights": resolved.key,
            "classes": list(self.classes),
            "score_thresh": self.score_thresh,
            "nms_iou": self.nms_iou,
            "max_per_frame": self.max_per_frame,
            "min_size": self.min_size,
            "max_size": self.max_size,
            "seed": self.seed if resolved.key == "random" else None,
        }

    def cache_key(self, default: Path | None = None) -> str:
        text = json.dumps(self.params(), sort_keys=True)
        return f"{self.model}-" + hashlib.sha1(text.encode()).hexdigest()[:12]

    def build_module(self) -> Any:
        """The :class:`wsal.detection.predict.DetectorModule` (model built, weights read)."""
        from wsal.detection.model import build_detector, class_ids
        from wsal.detection.predict import DetectorModule

        net, resolved = build_detector(
            self.model,
            self.weights,
            score_thresh=self.score_thresh,
            nms_iou=self.nms_iou,
            max_per_frame=self.max_per_frame,
            min_size=self.min_size,
            max_size=self.max_size,
            download=self.download,
            seed=self.seed,
        )
        keep = class_ids(resolved.categories, self.classes)
        return DetectorModule(net, keep, self.score_thresh, self.nms_iou, self.max_per_frame)

    def _run_kwargs(self) -> dict[str, Any]:
        return {
            "accelerator": self.device,
            "devices": self.devices,
            "num_nodes": self.num_nodes,
            "strategy": self.strategy,
            "precision": self.precision,
        }


class HogDetector(_PredictDetector):
    """OpenCV's HOG people detector, multi-scale with NMS, over a dataset's videos.

    Boxes are ``xyxy`` float pixels of the frames decoded at the index's size, frames 0-based,
    scores the SVM margins (``>= score_thresh``), ``labels`` 1 (person). Runs as the torchvision
    backend does (a Lightning predict on the CPU, sharded per video and resumable, merged file
    cached under ``out_dir``); see :mod:`wsal.detection.hog` for the parameters and their defaults
    (:data:`wsal.detection.hog.HOG_DEFAULTS`). For trying wsal on real footage without downloads;
    a whole-body pedestrian detector, so it misses many people that a COCO detector finds
    (docs/real_footage.md).
    """

    def __init__(
        self,
        resize: float = HOG_DEFAULTS.resize,
        pad: Sequence[float] = HOG_DEFAULTS.pad,
        win_stride: int = HOG_DEFAULTS.win_stride,
        scale: float = HOG_DEFAULTS.scale,
        score_thresh: float = HOG_DEFAULTS.score_thresh,
        min_inside: float = HOG_DEFAULTS.min_inside,
        nms_iou: float | None = HOG_DEFAULTS.nms_iou,
        max_per_frame: int = HOG_DEFAULTS.max_per_frame,
        batch_frames: int = 16,
        num_workers: int = 1,
        out_dir: str = "data/cache/detections",
        progress: bool = True,
        name: str = "hog",
    ) -> None:
        self.resize = float(resize)
        self.pad = tuple(float(p) for p in pad)
        self.win_stride = int(win_stride)
        self.scale = float(scale)
        self.score_thresh = float(score_thresh)
        self.min_inside = float(min_inside)
        self.nms_iou = None if nms_iou is None else float(nms_iou)
        self.max_per_frame = int(max_per_frame)
        self.batch_frames = int(batch_frames)
        self.num_workers = int(num_workers)
        self.out_dir = Path(out_dir)
        self.progress = progress
        self.name = name

    def build_module(self) -> Any:
        """The :class:`wsal.detection.predict.HogDetectorModule` (checks the parameters)."""
        from wsal.detection.predict import HogDetectorModule  # Lightning: only to detect

        return HogDetectorModule(self._people(), self.nms_iou, self.max_per_frame)

    def _people(self) -> HogPeople:
        """The window detector (checks the parameters)."""
        return HogPeople(
            self.resize, self.pad, self.win_stride, self.scale, self.score_thresh, self.min_inside
        )

    def params(self) -> dict[str, Any]:
        """Everything that shapes the boxes (not batching or workers)."""
        return {
            **self._people().params(),
            "nms_iou": self.nms_iou,
            "max_per_frame": self.max_per_frame,
        }

    def cache_key(self, default: Path | None = None) -> str:
        text = json.dumps(self.params(), sort_keys=True)
        return "hog-" + hashlib.sha1(text.encode()).hexdigest()[:12]

    def _run_kwargs(self) -> dict[str, Any]:
        return {"accelerator": "cpu"}  # OpenCV: the frames never go to a GPU
