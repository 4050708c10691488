"""Detection over a dataset as a Lightning ``predict``: sharded, resumable, merged by video id.

The flow (DESIGN §8: sharded ``predict`` jobs whose outputs merge by video id):

1. :func:`jobs_from_index` lists the videos (id, path, frame count F from the index, size);
2. videos already in the shard folder are done (resume); the rest are split over the ranks by
   :func:`shard_videos` (whole videos, balanced by frame count) and, within a rank, over the
   DataLoader workers the same way; each worker decodes its videos in order, ``batch_frames``
   frames at a time (:class:`FrameChunks`);
3. :class:`DetectorModule.predict_step` runs the model on one chunk (one batch of frames on the
   device) and keeps the actors of interest (:func:`wsal.detection.model.filter_detections`);
4. :class:`ShardWriter` collects a video's chunks and, once all are in, writes the video's shard
   ``<shard_dir>/<video_file_name(video)>.npz`` atomically (a video with no boxes gets an empty
   shard: it is done too). The shard folder is itself a detections store in folder form;
5. :func:`merge_shards` concatenates the shards in index order into one detections ``.npz``.

Frames are 0-based, boxes ``xyxy`` float pixels of the frames as decoded: at the index's
``width``x``height`` when it has them (so boxes live in the annotations' pixel frame), else native.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypedDict

import numpy as np
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import BasePredictionWriter
from torch import Tensor, nn
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from wsal.atomic import atomic_write_json
from wsal.data.annotations import DatasetIndex
from wsal.data.detections import load_detections, save_detections, video_file_name
from wsal.data.video import VideoError, VideoReader
from wsal.detection.hog import HOG_DEFAULTS, PERSON_LABEL, HogPeople
from wsal.detection.model import filter_detections
from wsal.errors import discard_unreadable, zip_problem
from wsal.structures import Detections

__all__ = [
    "DetectionDataModule",
    "DetectorModule",
    "FrameChunk",
    "FrameChunks",
    "HogDetectorModule",
    "ShardWriter",
    "VideoJob",
    "completed_videos",
    "dataset_key",
    "jobs_from_index",
    "merge_shards",
    "run_detection",
    "shard_videos",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class VideoJob:
    """One video to detect on: its id, file or frame folder, frame count F (from the index) and
    the size to decode at (None: native)."""

    video: str
    path: str
    num_frames: int
    width: int | None = None
    height: int | None = None


class FrameChunk(TypedDict):
    """One batch: consecutive frames of one video."""

    video: str
    chunk: int  # chunk number within the video, 0-based
    num_chunks: int  # ceil(F / batch_frames)
    start: int  # 0-based frame of frames[0]
    num_frames: int  # F, the video's frame count
    frames: Tensor  # uint8 [T, H, W, 3] RGB, frames start .. start + T - 1


def jobs_from_index(index: DatasetIndex, videos: Sequence[str] | None = None) -> list[VideoJob]:
    """A :class:`VideoJob` per video of ``index`` (default: all, in index order)."""
    out = []
    for v in index.videos if videos is None else videos:
        info = index.videos[v]
        size = (info.width, info.height) if info.width and info.height else (None, None)
        out.append(VideoJob(v, str(index.video_path(v)), int(info.nframes), *size))
    return out


def dataset_key(jobs: Sequence[VideoJob]) -> str:
    """Short hash of the videos detected on (ids, paths, frame counts, decode sizes)."""
    text = json.dumps(
        [(j.video, os.path.abspath(j.path), j.num_frames, j.width, j.height) for j in jobs]
    )
    return hashlib.sha1(text.encode()).hexdigest()[:12]


def shard_videos(num_frames: Sequence[int], rank: int, world_size: int) -> list[int]:
    """Indices of the videos that ``rank`` of ``world_size`` processes, in input order.

    Whole videos (a video's chunks stay on one rank, so its shard is written by one process),
    balanced by frame count: longest first, each to the least-loaded rank (ties: lowest rank).
    Deterministic; over all ranks every video appears exactly once.
    """
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} not in [0, {world_size})")
    load = np.zeros(world_size, np.int64)  # [W] frames assigned so far
    owner = np.empty(len(num_frames), np.int64)
    for i in np.argsort(-np.asarray(num_frames, np.int64), kind="stable"):
        r = int(np.argmin(load))  # first minimum = lowest rank on ties
        owner[i] = r
        load[r] += num_frames[i]
    return np.flatnonzero(owner == rank).tolist()


class FrameChunks(IterableDataset):
    """Chunks of ``batch_frames`` consecutive frames of each job's video, video after video.

    Iterable so that each DataLoader worker decodes whole videos front to back (one decoder per
    video; a map-style dataset would deal chunks round-robin over the workers and make each worker
    seek through every video). Workers split the videos with :func:`shard_videos`.

    Raises (while iterating) :class:`VideoError` naming the video when its file has fewer frames
    than the index says; a file with more frames is detected on its first F frames only (warning).
    """

    def __init__(self, jobs: Sequence[VideoJob], batch_frames: int) -> None:
        if batch_frames < 1:
            raise ValueError(f"batch_frames must be >= 1, got {batch_frames}")
        self.jobs = list(jobs)
        self.batch_frames = int(batch_frames)

    def num_chunks(self, job: VideoJob) -> int:
        return math.ceil(job.num_frames / self.batch_frames)

    def __len__(self) -> int:
        return sum(self.num_chunks(j) for j in self.jobs)

    def __iter__(self) -> Iterator[FrameChunk]:
        info = get_worker_info()
        jobs = self.jobs
        if info is not None:
            mine = shard_videos([j.num_frames for j in jobs], info.id, info.num_workers)
            jobs = [jobs[i] for i in mine]
        for job in jobs:
            reader = self._open(job)
            n = self.num_chunks(job)
            for c in range(n):
                start = c * self.batch_frames
                stop = min(start + self.batch_frames, job.num_frames)
                frames = reader.get_frames(np.arange(start, stop))  # [T, H, W, 3] uint8
                yield FrameChunk(
                    video=job.video,
                    chunk=c,
                    num_chunks=n,
                    start=start,
                    num_frames=job.num_frames,
                    frames=torch.from_numpy(frames),
                )

    @staticmethod
    def _open(job: VideoJob) -> VideoReader:
        reader = VideoReader(job.path)
        if job.width and job.height and (reader.width, reader.height) != (job.width, job.height):
            # boxes must be in the index's pixel frame (that of its annotations)
            reader = VideoReader(job.path, width=job.width, height=job.height)
        if reader.num_frames < job.num_frames:
            raise VideoError(
                f"video {job.video!r} ({job.path}): the index says {job.num_frames} frames but the "
                f"file has {reader.num_frames}; fix nframes in the annotations"
            )
        if reader.num_frames > job.num_frames:
            warnings.warn(
                f"video {job.video!r} ({job.path}) has {reader.num_frames} frames, the index "
                f"{job.num_frames}: detecting on the first {job.num_frames}",
                stacklevel=2,
            )
        return reader


def _unwrap(items: list[FrameChunk]) -> FrameChunk:
    """collate_fn: a batch is one chunk (its frames already form the model's batch)."""
    (item,) = items
    return item


class DetectionDataModule(pl.LightningDataModule):
    """The chunks of this rank's share of ``jobs`` (rank and world size from the trainer)."""

    def __init__(
        self,
        jobs: Sequence[VideoJob],
        batch_frames: int = 16,
        num_workers: int = 2,
        pin_memory: bool = False,
    ) -> None:
        super().__init__()
        self.jobs = list(jobs)
        self.batch_frames = batch_frames
        self.num_workers = num_workers
        self.pin_memory = pin_memory
        self.dataset: FrameChunks | None = None

    def setup(self, stage: str | None = None) -> None:
        rank, world = (
            (self.trainer.global_rank, self.trainer.world_size) if self.trainer else (0, 1)
        )
        mine = shard_videos([j.num_frames for j in self.jobs], rank, world)
        self.dataset = FrameChunks([self.jobs[i] for i in mine], self.batch_frames)

    def predict_dataloader(self) -> DataLoader:
        if self.dataset is None:
            self.setup("predict")
        assert self.dataset is not None
        # No more workers than videos: an idle worker would only cost a process.
        workers = min(self.num_workers, len(self.dataset.jobs))
        return DataLoader(
            self.dataset,
            batch_size=1,
            collate_fn=_unwrap,
            num_workers=workers,
            pin_memory=self.pin_memory,
        )


class DetectorModule(pl.LightningModule):
    """Runs a torchvision-style detector on chunks of frames and keeps the actors of interest.

    Args:
        model: ``forward(list[Tensor[3, H, W]] in [0, 1]) -> list[{"boxes": [n, 4] xyxy pixels,
            "scores": [n], "labels": [n]}]`` in eval mode (any torchvision detection model).
        keep_labels, score_thresh, nms_iou, max_per_frame: see
            :func:`wsal.detection.model.filter_detections`.
    """

    def __init__(
        self,
        model: nn.Module,
        keep_labels: Sequence[int],
        score_thresh: float = 0.5,
        nms_iou: float | None = 0.5,
        max_per_frame: int | None = 100,
    ) -> None:
        super().__init__()
        self.model = model
        self.keep_labels = [int(x) for x in keep_labels]
        self.score_thresh = float(score_thresh)
        self.nms_iou = nms_iou
        self.max_per_frame = max_per_frame

    def forward(self, frames: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """uint8 ``[T, H, W, 3]`` -> kept ``(frame int64[N] in 0..T-1, boxes [N, 4], scores [N],
        labels [N])`` sorted by frame, then descending score."""
        images = frames.permute(0, 3, 1, 2).float().div_(255)  # [T, 3, H, W] in [0, 1]
        outs = self.model(list(images.unbind(0)))
        counts = torch.tensor([len(o["scores"]) for o in outs], device=images.device)  # [T]
        frame = torch.repeat_interleave(torch.arange(len(outs), device=images.device), counts)
        boxes = torch.cat([o["boxes"] for o in outs]).float()  # [n, 4]
        scores = torch.cat([o["scores"] for o in outs]).float()  # [n]
        labels = torch.cat([o["labels"] for o in outs]).long()  # [n]
        return self.keep(frame, boxes, scores, labels)

    def keep(
        self, frame: Tensor, boxes: Tensor, scores: Tensor, labels: Tensor
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """The boxes this module keeps (actors of interest, score threshold, per-frame NMS and
        cap: :func:`filter_detections` with the module's settings)."""
        return filter_detections(
            frame,
            boxes,
            scores,
            labels,
            self.keep_labels,
            self.score_thresh,
            self.nms_iou,
            self.max_per_frame,
        )

    def predict_step(self, batch: FrameChunk, batch_idx: int) -> dict[str, Any]:
        """Kept boxes of one chunk as numpy columns with absolute (video) frame numbers."""
        frame, boxes, scores, labels = self(batch["frames"])
        return {
            "video": batch["video"],
            "chunk": int(batch["chunk"]),
            "num_chunks": int(batch["num_chunks"]),
            "num_frames": int(batch["num_frames"]),
            "frame": frame.cpu().numpy() + int(batch["start"]),  # int64[n]
            "boxes": boxes.cpu().numpy(),  # float32[n, 4]
            "scores": scores.cpu().numpy(),  # float32[n]
            "labels": labels.cpu().numpy(),  # int64[n]
        }


class HogDetectorModule(DetectorModule):
    """:class:`DetectorModule` for :class:`wsal.detection.hog.HogPeople` (CPU, per frame): the
    same chunked, sharded, resumable predict as the torchvision detectors.

    Args:
        detector: the HOG detector and its window parameters.
        nms_iou: per-frame NMS; a window overlapping a better kept one with IoU ``> nms_iou``
            is dropped (None: no NMS).
        max_per_frame: keep the best this many boxes of each frame.
    """

    def __init__(
        self,
        detector: HogPeople,
        nms_iou: float | None = HOG_DEFAULTS.nms_iou,
        max_per_frame: int | None = HOG_DEFAULTS.max_per_frame,
    ) -> None:
        super().__init__(
            nn.Identity(), [PERSON_LABEL], detector.score_thresh, nms_iou, max_per_frame
        )
        self.detector = detector

    def forward(self, frames: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """uint8 ``[T, H, W, 3]`` -> kept ``(frame int64[N] in 0..T-1, boxes [N, 4], scores [N],
        labels [N])`` sorted by frame, then descending score."""
        video = frames.cpu().numpy()  # HOG runs in OpenCV, on the CPU
        found = [self.detector(f) for f in video]  # per frame: (boxes [n, 4], scores [n])
        counts = np.array([len(s) for _, s in found], np.int64)  # [T]
        frame = torch.from_numpy(np.repeat(np.arange(len(found), dtype=np.int64), counts))  # [N]
        boxes = torch.from_numpy(
            np.concatenate([b for b, _ in found]) if found else np.zeros((0, 4), np.float32)
        )  # [N, 4]
        scores = torch.from_numpy(
            np.concatenate([s for _, s in found]) if found else np.zeros(0, np.float32)
        )  # [N]
        labels = torch.full_like(frame, PERSON_LABEL)  # [N]
        return self.keep(frame, boxes, scores, labels)


class ShardWriter(BasePredictionWriter):
    """Writes a video's detections to ``shard_dir`` once all of its chunks are predicted.

    Each rank owns whole videos (:func:`shard_videos`), so no two processes write one file; files
    are written to a temp name and renamed, so a shard that exists is complete.
    """

    def __init__(self, shard_dir: str | os.PathLike) -> None:
        super().__init__(write_interval="batch")
        self.shard_dir = Path(shard_dir)
        self._pending: dict[str, dict[int, dict[str, Any]]] = {}
        self.written: list[str] = []

    def write_on_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        prediction: Any,
        batch_indices: Sequence[int] | None,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        video = prediction["video"]
        chunks = self._pending.setdefault(video, {})
        chunks[prediction["chunk"]] = prediction
        if len(chunks) < prediction["num_chunks"]:
            return
        del self._pending[video]
        parts = [chunks[c] for c in range(prediction["num_chunks"])]  # frame order
        dets = Detections.from_unsorted(
            np.concatenate([p["frame"] for p in parts]),
            np.concatenate([p["boxes"] for p in parts]),
            np.concatenate([p["scores"] for p in parts]),
            prediction["num_frames"],
            labels=np.concatenate([p["labels"] for p in parts]),
        )
        save_detections(self.shard_dir, {video: dets}, per_video=True)
        self.written.append(video)


def completed_videos(shard_dir: str | os.PathLike, videos: Sequence[str]) -> set[str]:
    """The ``videos`` whose shard exists in ``shard_dir``."""
    shard_dir = Path(shard_dir)
    if not shard_dir.is_dir():
        return set()
    present = {p.name for p in shard_dir.glob("*.npz")}
    return {v for v in videos if video_file_name(v) in present}


def discard_unreadable_shards(shard_dir: str | os.PathLike, videos: Sequence[str]) -> int:
    """Delete (with a log line naming each) the shards of ``videos`` in ``shard_dir`` that cannot
    be read (cut or corrupt: every member's CRC is checked; shards are small), so that those
    videos are detected again. Returns how many were deleted."""
    shard_dir = Path(shard_dir)
    if not shard_dir.is_dir():
        return 0
    present = {p.name for p in shard_dir.glob("*.npz")}
    dropped = 0
    for v in videos:
        name = video_file_name(v)
        if name in present:
            why = zip_problem(shard_dir / name, full=True)
            if why is not None:
                discard_unreadable(shard_dir / name, why, "detections shard", log)
                dropped += 1
    return dropped


def merge_shards(
    shard_dir: str | os.PathLike, jobs: Sequence[VideoJob], out: str | os.PathLike
) -> Path:
    """Concatenate the shards of ``jobs`` (index order) into the detections file ``out``.

    Rows of each video are sorted by frame, then by descending score; a video without boxes has
    no rows. Every shard is checked against its video's frame count (``load_detections``).

    Raises:
        FileNotFoundError: some video has no shard (names the first few).
    """
    shard_dir, out = Path(shard_dir), Path(out)
    missing = [j.video for j in jobs if not (shard_dir / video_file_name(j.video)).is_file()]
    if missing:
        raise FileNotFoundError(
            f"{shard_dir}: no detections for {len(missing)} of {len(jobs)} videos "
            f"(e.g. {missing[:5]}); run the detection again to fill them in"
        )
    merged: dict[str, Detections] = {}
    for job in jobs:
        file = shard_dir / video_file_name(job.video)
        got = load_detections(file, num_frames={job.video: job.num_frames})
        d = got.get(job.video)
        if d is None or len(d) == 0:  # empty shard; keep the labels column for save_detections
            d = Detections(
                np.zeros(0, np.int64),
                np.zeros((0, 4), np.float32),
                np.zeros(0, np.float32),
                job.num_frames,
                labels=np.zeros(0, np.int64),
            )
        order = np.lexsort((-d.scores, d.frame))  # by frame, then descending score
        merged[job.video] = d.select(order) if len(d) else d
    save_detections(out, merged, per_video=False)
    return out


def run_detection(
    jobs: Sequence[VideoJob],
    module: DetectorModule,
    out: str | os.PathLike,
    *,
    shard_dir: str | os.PathLike | None = None,
    batch_frames: int = 16,
    accelerator: str = "auto",
    devices: int | str | Sequence[int] = 1,
    num_nodes: int = 1,
    strategy: str = "auto",
    precision: str = "32-true",
    num_workers: int = 2,
    progress: bool = True,
    meta: dict[str, Any] | None = None,
) -> Path:
    """Detect on every job's video not yet in ``shard_dir`` and merge all shards into ``out``.

    Args:
        jobs: the videos (see :func:`jobs_from_index`), in the order of the merged file.
        module: the detector and its actor filter.
        out: the merged detections ``.npz`` (written atomically by global rank 0, last).
        shard_dir: per-video shards (default: ``<out>.shards``); shards found there are reused,
            so an interrupted run resumes. Use one folder per (dataset, model, parameters).
        batch_frames: frames per forward pass (the chunk size).
        accelerator, devices, num_nodes, strategy, precision: Lightning Trainer arguments
            (e.g. ``accelerator="gpu", devices=4, strategy="ddp"``).
        num_workers: DataLoader workers decoding videos, per rank.
        progress: Lightning's progress bar (chunks of this rank).
        meta: written to ``<shard_dir>/meta.json`` (what produced the shards, for people).

    Returns:
        ``out``.
    """
    out = Path(out)
    shard_dir = Path(shard_dir) if shard_dir is not None else out.with_name(out.name + ".shards")
    shard_dir.mkdir(parents=True, exist_ok=True)
    if meta is not None and not (shard_dir / "meta.json").exists():
        atomic_write_json(shard_dir / "meta.json", meta, indent=1)
    discard_unreadable_shards(shard_dir, [j.video for j in jobs])
    done = completed_videos(shard_dir, [j.video for j in jobs])
    todo = [j for j in jobs if j.video not in done]
    log.info(
        "detection: %d videos (%d frames) to do, %d already in %s",
        len(todo),
        sum(j.num_frames for j in todo),
        len(done),
        shard_dir,
    )
    rank = 0
    if todo:
        trainer = pl.Trainer(
            accelerator=accelerator,
            # a Hydra ListConfig is not a list to Lightning
            devices=devices if isinstance(devices, int | str) else [int(d) for d in devices],
            num_nodes=num_nodes,
            strategy=strategy,
            precision=precision,  # type: ignore[arg-type]
            logger=False,
            enable_checkpointing=False,
            enable_model_summary=False,
            enable_progress_bar=progress,
            # whole videos per rank (shard_videos); Lightning's sampler would split videos and pad
            use_distributed_sampler=False,
            callbacks=[ShardWriter(shard_dir)],
        )
        pin = trainer.accelerator is not None and not isinstance(
            trainer.accelerator, pl.accelerators.CPUAccelerator
        )
        data = DetectionDataModule(todo, batch_frames, num_workers, pin_memory=pin)
        with warnings.catch_warnings():
            # Lightning warns that an IterableDataset's __len__ may be wrong with several workers
            # (FrameChunks splits whole videos over workers, so it is exact) and that it cannot
            # infer batch indices (ShardWriter does not use them).
            warnings.filterwarnings(
                "ignore", message=".*IterableDataset.*__len__", category=UserWarning
            )
            warnings.filterwarnings(
                "ignore", message=".*infer the batch indices", category=UserWarning
            )
            trainer.predict(module, datamodule=data, return_predictions=False)
        rank = trainer.global_rank
    if rank == 0:
        merge_shards(shard_dir, jobs, out)
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.barrier()  # other ranks return once the merged file exists
    return out
