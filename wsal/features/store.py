"""Box-feature and video-descriptor caches shared by every extractor (STIL §3.1 box features
``x_ijk``, §3.4 the global video classifier's input).

Conventions: frames 0-based; boxes ``xyxy`` float pixels; feature rows of a video are aligned with
the rows of its :class:`~wsal.structures.Detections` (sorted by frame, stable within a frame), so
row ``i`` of ``store[video]`` describes ``dets[video].boxes[i]``. Rows are float32 and
L2-normalised (STIL §4: "We l2-normalize each box representation"); an all-zero row is the one
documented exception (see :func:`check_rows`), NaN/inf never pass.

On-disk layout under ``cache_dir`` for a box-feature store with key ``K`` =
``boxfeat__<dataset>__<detector>__<extractor name>-<extractor.cache_key()>``:

- ``K.json``: the commit record, written last and atomically: the data file's name, ``dim``,
  ``rows`` and per video ``[row offset, count, detections digest, zero rows]``;
- ``K.<token>.npy``: float32 ``[N_total, D]`` (read with ``mmap_mode="r"``); a fresh token per
  assembly, so the JSON never points at a half-written file;
- ``K.chunks/<video>.<digest>.npy``: one finished video each (resume state), written atomically by
  the workers and deleted once assembled into the store.

A crash at any point leaves either the previous store, or chunk files that the next call reuses;
nothing half-written is ever read as complete. A store, chunk or descriptor file that cannot be
read (cut or damaged from outside) is logged, deleted and extracted again. Concurrent
single-process runs extracting the same key take ``K.lock`` (:func:`wsal.atomic.file_lock`), so
one extracts and the others wait and read its store; under DDP or a multi-device extractor the
ranks share the work through the chunks instead (rank 0 commits).

Video descriptors (``viddesc__<dataset>__<extractor>__fps<fps>.npz``: ``video str[V]``,
``descriptors float32[V, D_g]``) use the same chunk-then-assemble scheme.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import multiprocessing as mp
import os
import secrets
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
from tqdm import tqdm

from wsal.atomic import atomic_path, atomic_write_json, file_lock
from wsal.data.annotations import DatasetIndex
from wsal.data.video import VideoError, VideoReader
from wsal.errors import UNREADABLE, InputError, discard_unreadable
from wsal.structures import Detections, atomic_savez

__all__ = [
    "BoxFeatureExtractor",
    "BoxFeatures",
    "FeatureStoreError",
    "VideoJob",
    "check_rows",
    "detections_digest",
    "extract_box_features",
    "extract_video_descriptors",
    "job_frame_ids",
    "l2_normalize",
    "open_job_reader",
    "prepare_boxes",
    "run_jobs",
    "sample_frame_ids",
    "write_chunk",
]

log = logging.getLogger(__name__)

_FORMAT = 1  # bump when the store layout changes
_NORM_TOL = 1e-3  # |norm - 1| allowed for a normalised float32 row
_WAIT_S = 6 * 3600.0  # how long ranks wait for each other on a multi-process extraction


class FeatureStoreError(InputError):
    """Features that do not fit their detections, or a cache that cannot be read; the message
    names the cache file and the video."""


# ------------------------------------------------------------------------------ shared helpers
def l2_normalize(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """``x / ||x||`` along ``axis`` (float32); rows of norm 0 stay 0 (never NaN)."""
    x = np.asarray(x, dtype=np.float32)
    norm = np.linalg.norm(x, axis=axis, keepdims=True)  # [..., 1]
    return np.divide(x, norm, out=np.zeros_like(x), where=norm > 0)


def prepare_boxes(boxes: np.ndarray, width: int, height: int, min_size: float) -> np.ndarray:
    """Boxes made croppable: float32 ``[N, 4]`` xyxy pixels -> float32 ``[N, 4]``.

    1. clipped to the frame ``[0, width] x [0, height]`` (boxes partly outside keep their inside);
    2. a side shorter than ``m = min(min_size, frame side)`` (a degenerate, zero-area or tiny box,
       or a box wholly outside the frame, which step 1 flattens onto the border) is widened to
       ``m`` about its centre and shifted to lie inside the frame.

    So every box covers at least ``m x m`` pixels of the frame: no crop is empty and no feature is
    computed from nothing (the "all-zero feature" case of a zero-area box cannot arise).
    """
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    if not np.all(np.isfinite(b)):
        raise ValueError(
            f"boxes must be finite; got {int((~np.isfinite(b)).any(1).sum())} bad rows"
        )
    size = np.array([width, height, width, height], np.float64)  # [4]
    b = np.clip(b, 0.0, size)  # [N, 4]
    for lo, hi, side in ((0, 2, float(width)), (1, 3, float(height))):
        m = min(float(min_size), side)
        short = (b[:, hi] - b[:, lo]) < m  # [N]
        centre = 0.5 * (b[short, lo] + b[short, hi])
        start = np.clip(centre - 0.5 * m, 0.0, side - m)
        b[short, lo] = start
        b[short, hi] = start + m
    return b.astype(np.float32)


def check_rows(video: str, feats: np.ndarray, n: int, dim: int) -> int:
    """Check an extractor's output for ``video``: float32 ``[n, dim]``, finite, each row of L2 norm
    1 or exactly 0. Returns the number of all-zero rows (a CNN box whose pooled ReLU responses are
    all 0; HOG+HOF never produces one). Raises :class:`FeatureStoreError` naming the video."""
    if feats.shape != (n, dim):
        raise FeatureStoreError(
            f"video {video!r}: extractor returned features of shape {feats.shape}, expected "
            f"({n}, {dim}) ({n} detections)"
        )
    if feats.dtype != np.float32:
        raise FeatureStoreError(f"video {video!r}: features are {feats.dtype}, expected float32")
    bad = ~np.isfinite(feats).all(axis=1)
    if bad.any():
        raise FeatureStoreError(
            f"video {video!r}: {int(bad.sum())} feature rows hold NaN/inf (first row "
            f"{int(np.nonzero(bad)[0][0])})"
        )
    norm = np.linalg.norm(feats, axis=1)  # [n]
    zero = norm == 0
    off = ~zero & (np.abs(norm - 1.0) > _NORM_TOL)
    if off.any():
        raise FeatureStoreError(
            f"video {video!r}: feature rows are not L2-normalised (row {int(np.nonzero(off)[0][0])}"
            f" has norm {float(norm[off][0]):.4f})"
        )
    return int(zero.sum())


def detections_digest(dets: Detections) -> str:
    """12 hex characters identifying a video's boxes (frames, boxes and frame count): features
    are reused only for exactly the detections they were computed on."""
    h = hashlib.sha1()
    h.update(np.int64(dets.num_frames).tobytes())
    h.update(np.ascontiguousarray(dets.frame, dtype=np.int64).tobytes())
    h.update(np.ascontiguousarray(dets.boxes, dtype=np.float32).tobytes())
    return h.hexdigest()[:12]


def sample_frame_ids(num_frames: int, video_fps: float, fps: float) -> np.ndarray:
    """0-based frames sampled at ``fps`` per second (STIL §4: "we sample 2 frames per second"):
    the frame at the middle of each ``1 / fps`` s interval, ``floor((k + 0.5) * video_fps / fps)``,
    ``k = 0 .. ceil(num_frames * fps / video_fps) - 1``; int64, at least one frame."""
    if num_frames < 1 or video_fps <= 0 or fps <= 0:
        raise ValueError(
            f"need num_frames >= 1 and positive fps, got {num_frames}, {video_fps}, {fps}"
        )
    n = max(1, int(np.ceil(num_frames * fps / video_fps - 1e-9)))
    ids = np.floor((np.arange(n) + 0.5) * (video_fps / fps)).astype(np.int64)  # [n]
    return np.unique(np.minimum(ids, num_frames - 1))


# --------------------------------------------------------------------------------- extractors
@dataclass(frozen=True)
class VideoJob:
    """One video to describe. ``dets`` set: box features (rows aligned with ``dets``);
    ``sample_fps`` set instead: a global descriptor at that rate (``video_fps`` from the index,
    else the container's, else 25)."""

    video: str
    path: str
    nframes: int
    dets: Detections | None = None
    digest: str = ""
    sample_fps: float | None = None
    video_fps: float | None = None

    @property
    def chunk_name(self) -> str:
        stem = self.video.replace("/", "__")
        return f"{stem}.{self.digest}.npy" if self.digest else f"{stem}.npy"


class BoxFeatureExtractor(Protocol):
    """What :func:`extract_box_features` needs from an extractor (``HogHofExtractor``,
    ``CNNExtractor``)."""

    name: str

    @property
    def dim(self) -> int: ...  # D, box feature size

    @property
    def descriptor_dim(self) -> int: ...  # D_g, video descriptor size

    def cache_key(self) -> str: ...

    def video_box_features(self, frames: np.ndarray, dets: Detections) -> np.ndarray: ...

    def video_descriptor(self, frames: np.ndarray, frame_ids: np.ndarray) -> np.ndarray: ...

    def extract_chunks(self, jobs: Sequence[VideoJob], chunk_dir: Path, progress: bool) -> None:
        """Compute every job whose chunk is not in ``chunk_dir`` yet and write it there
        (:func:`write_chunk`)."""
        ...


def write_chunk(chunk_dir: Path, job: VideoJob, feats: np.ndarray, dim: int) -> int:
    """Check ``feats`` (:func:`check_rows`) and save them atomically as ``job``'s chunk; returns
    the number of all-zero rows."""
    n = len(job.dets) if job.dets is not None else 1
    zero = check_rows(job.video, feats, n, dim)
    if zero:
        log.warning(
            "video %r: %d of %d feature rows are all zero (kept as zeros)", job.video, zero, n
        )
    with atomic_path(chunk_dir / job.chunk_name) as tmp, open(tmp, "wb") as fh:
        np.save(fh, feats)
    return zero


def open_job_reader(job: VideoJob) -> VideoReader:
    """A :class:`~wsal.data.video.VideoReader` on ``job``'s video; raises an error naming the
    video if its detections point past the frames the file decodes."""
    reader = VideoReader(job.path)
    if job.dets is not None and len(job.dets) and int(job.dets.frame.max()) >= reader.num_frames:
        raise VideoError(
            f"video {job.video!r} ({job.path}): detections reach frame {int(job.dets.frame.max())} "
            f"but the file decodes only {reader.num_frames} frames"
        )
    return reader


def job_frame_ids(job: VideoJob, num_frames: int, container_fps: float | None) -> np.ndarray:
    """Frames a descriptor job samples (:func:`sample_frame_ids`): at ``job.sample_fps`` with the
    index's frame rate, else the container's, else 25 fps (logged)."""
    if job.sample_fps is None:
        raise ValueError(f"video {job.video!r}: not a descriptor job (sample_fps unset)")
    video_fps = job.video_fps or container_fps
    if not video_fps:
        log.warning("video %r: frame rate unknown, sampling as if 25 fps", job.video)
        video_fps = 25.0
    return sample_frame_ids(num_frames, float(video_fps), job.sample_fps)


def compute_job(extractor: BoxFeatureExtractor, job: VideoJob) -> np.ndarray:
    """Box features ``[N, D]`` or a descriptor ``[1, D_g]`` of one job, by decoding the whole
    video and calling the extractor's per-video method."""
    if job.dets is not None and len(job.dets) == 0:
        return np.zeros((0, extractor.dim), np.float32)  # nothing to describe: skip decoding
    reader = open_job_reader(job)
    frames = reader.get_frames(np.arange(reader.num_frames))  # [T, H, W, 3]
    if job.dets is not None:
        return extractor.video_box_features(frames, job.dets)
    ids = job_frame_ids(job, reader.num_frames, reader.fps)
    return extractor.video_descriptor(frames, ids)[None, :]


_WORKER_EXTRACTOR: BoxFeatureExtractor | None = None


def _pool_init(extractor: BoxFeatureExtractor) -> None:
    global _WORKER_EXTRACTOR
    import cv2

    cv2.setNumThreads(1)  # one process per core; OpenCV's own threads would oversubscribe
    _WORKER_EXTRACTOR = extractor


def _pool_run(args: tuple[VideoJob, str, int]) -> str:
    job, chunk_dir, dim = args
    assert _WORKER_EXTRACTOR is not None
    write_chunk(Path(chunk_dir), job, compute_job(_WORKER_EXTRACTOR, job), dim)
    return job.video


def run_jobs(
    extractor: BoxFeatureExtractor,
    jobs: Sequence[VideoJob],
    chunk_dir: Path,
    *,
    dim: int,
    workers: int = 1,
    progress: bool = True,
    desc: str = "features",
) -> None:
    """Compute the jobs without a chunk in ``chunk_dir``: serially (``workers <= 1``) or in a
    ``spawn`` Pool of ``workers`` processes over videos (each worker decodes, computes and writes
    its video's chunk, so a crash loses at most the videos in flight). With several ranks, this
    rank's share only (``jobs[rank::world]``)."""
    rank, world = _rank_world()
    # Under a multi-process launch (torchrun, Lightning DDP) each rank takes every world-th video;
    # the chunk files merge by video id.
    todo = [j for j in jobs[rank::world] if not (chunk_dir / j.chunk_name).exists()]
    if not todo:
        return
    chunk_dir.mkdir(parents=True, exist_ok=True)
    bar = tqdm(total=len(todo), desc=desc, unit="video", disable=not progress)
    if workers <= 1:
        for job in todo:
            write_chunk(chunk_dir, job, compute_job(extractor, job), dim)
            bar.update(1)
    else:
        # spawn, not fork: the parent may hold torch/OpenMP or decord threads that fork would copy
        # in a locked state.
        ctx = mp.get_context("spawn")
        with ctx.Pool(workers, initializer=_pool_init, initargs=(extractor,)) as pool:
            args = [(j, str(chunk_dir), dim) for j in todo]
            for _ in pool.imap_unordered(_pool_run, args, chunksize=1):
                bar.update(1)
    bar.close()


# ------------------------------------------------------------------------------- distributed
def _rank_world() -> tuple[int, int]:
    """(global rank, world size): from torch.distributed when a process group is up (Lightning
    DDP), else the launcher's environment, else (0, 1)."""
    dist = sys.modules.get("torch.distributed")
    if dist is not None and dist.is_available() and dist.is_initialized():
        return int(dist.get_rank()), int(dist.get_world_size())
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def _barrier() -> bool:
    dist = sys.modules.get("torch.distributed")
    if dist is not None and dist.is_available() and dist.is_initialized():
        dist.barrier()
        return True
    return False


def _all_chunks_written(chunk_dir: Path, jobs: Sequence[VideoJob]) -> bool:
    """After ``extract_chunks`` on every rank: True on the rank that assembles (rank 0), once
    every rank's chunks are on disk (a barrier under a process group, else polling the files);
    False on the other ranks, which then wait for rank 0's commit."""
    rank, world = _rank_world()
    synced = _barrier()
    if rank != 0:
        if synced:
            _barrier()  # matched by rank 0's barrier after its commit
        return False
    if world > 1 and not synced:
        t0 = time.monotonic()
        while not all((chunk_dir / j.chunk_name).exists() for j in jobs):
            if time.monotonic() - t0 > _WAIT_S:
                raise TimeoutError(f"{chunk_dir}: other ranks' chunks never appeared")
            time.sleep(1.0)
    return True


def _build_lock(
    artifact: Path, extractor: BoxFeatureExtractor, what: str
) -> contextlib.AbstractContextManager:
    """The lock that makes concurrent runs build ``artifact`` once (:func:`wsal.atomic.file_lock`)
    when this process extracts alone; none under DDP or a multi-device extractor, whose ranks
    already share the work through the chunks and rank 0's commit (a lock would stop a rank
    before the barrier that rank 0 waits at)."""
    if _rank_world()[1] > 1 or (getattr(extractor, "devices", 1) or 1) != 1:
        return contextlib.nullcontext()
    return file_lock(artifact, what)


# ------------------------------------------------------------------------------------ the store
class BoxFeatures:
    """A memory-mapped box-feature store: ``store[video] -> float32 [N_v, D]`` (a read-only
    memmap slice) whose rows are aligned with that video's detections.

    Open with ``BoxFeatures(path_to_json)``; made by :func:`extract_box_features`. Use
    :meth:`get` / :meth:`attach` (or :meth:`check`) with the detections at hand: they refuse
    features whose counts or boxes do not match, naming the video.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        try:
            meta = json.loads(self.path.read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise FeatureStoreError(f"{self.path}: unreadable feature index ({e})") from e
        if meta.get("format") != _FORMAT:
            raise FeatureStoreError(
                f"{self.path}: feature store format {meta.get('format')}, expected {_FORMAT}"
            )
        self.meta = meta
        try:
            self.data_path = self.path.parent / meta["data"]
            rows, dim = int(meta["rows"]), int(meta["dim"])
            videos = meta["videos"]
        except (KeyError, TypeError, ValueError) as e:
            raise FeatureStoreError(f"{self.path}: incomplete feature index ({e!r})") from e
        if rows:
            try:
                self._data = np.load(self.data_path, mmap_mode="r")
            except (OSError, ValueError, EOFError) as e:  # missing, cut short (mmap length...)
                raise FeatureStoreError(
                    f"{self.data_path}: unreadable feature data of {self.path.name} ({e})"
                ) from e
        else:  # np.memmap cannot map an empty file
            self._data = np.zeros((0, dim), np.float32)
        if self._data.shape != (rows, dim) or self._data.dtype != np.float32:
            raise FeatureStoreError(
                f"{self.data_path}: holds {self._data.dtype} {self._data.shape}, the index "
                f"{self.path.name} says float32 ({rows}, {dim}); delete both to re-extract"
            )
        self._videos: dict[str, list] = videos  # video -> [offset, count, digest, zeros]

    # -- access ------------------------------------------------------------------------------
    @property
    def dim(self) -> int:
        """D, the feature size."""
        return int(self.meta["dim"])

    @property
    def videos(self) -> list[str]:
        return list(self._videos)

    @property
    def num_rows(self) -> int:
        return int(self.meta["rows"])

    def __len__(self) -> int:
        return len(self._videos)

    def __contains__(self, video: object) -> bool:
        return video in self._videos

    def __iter__(self) -> Iterator[str]:
        return iter(self._videos)

    def __getitem__(self, video: str) -> np.ndarray:
        """float32 ``[N_v, D]`` read-only memmap slice, rows aligned with the video's detections."""
        if video not in self._videos:
            raise KeyError(f"video {video!r} is not in the feature store {self.path}")
        off, n = int(self._videos[video][0]), int(self._videos[video][1])
        return self._data[off : off + n]

    def digest(self, video: str) -> str:
        return str(self._videos[video][2])

    def zero_rows(self, video: str) -> int:
        """How many of the video's rows are all zero (documented exception to norm 1)."""
        return int(self._videos[video][3])

    # -- alignment checks --------------------------------------------------------------------
    def get(self, video: str, dets: Detections) -> np.ndarray:
        """``store[video]`` after checking it belongs to exactly these detections."""
        if video not in self._videos:
            raise FeatureStoreError(f"{self.path}: no features for video {video!r}")
        off, n, digest = self._videos[video][:3]
        if n != len(dets):
            raise FeatureStoreError(
                f"{self.path}: video {video!r} has {n} feature rows but its detections have "
                f"{len(dets)} boxes; the features were extracted for other detections"
            )
        if digest != detections_digest(dets):
            raise FeatureStoreError(
                f"{self.path}: video {video!r}: the detections' boxes differ from those the "
                "features were extracted for (same count, different boxes or frames)"
            )
        return self[video]

    def check(self, dets: Mapping[str, Detections]) -> None:
        """Raise :class:`FeatureStoreError` on the first video of ``dets`` whose features are
        missing or do not match its detections."""
        for video, d in dets.items():
            self.get(video, d)

    def attach(self, dets: Mapping[str, Detections]) -> dict[str, Detections]:
        """Detections with ``features`` set to their (checked, memory-mapped) rows."""
        return {
            v: Detections(d.frame, d.boxes, d.scores, d.num_frames, d.labels, self.get(v, d))
            for v, d in dets.items()
        }

    def __repr__(self) -> str:
        return (
            f"BoxFeatures({str(self.path)!r}, videos={len(self)}, rows={self.num_rows}, "
            f"dim={self.dim})"
        )


def _assemble_store(
    path: Path,
    old: BoxFeatures | None,
    keep: Sequence[str],
    new_jobs: Sequence[VideoJob],
    chunk_dir: Path,
    dim: int,
    extra_meta: dict,
) -> BoxFeatures:
    """Write a new store: ``keep`` videos copied from ``old``, ``new_jobs`` from their chunks;
    data file first (fresh token), commit JSON last; then remove the old data file and chunks."""
    entries: list[tuple[str, int, str, int]] = []  # video, count, digest, zeros
    for v in keep:
        assert old is not None
        entries.append((v, len(old[v]), old.digest(v), old.zero_rows(v)))
    chunks: dict[str, np.ndarray] = {}
    for job in new_jobs:
        arr = np.load(chunk_dir / job.chunk_name, mmap_mode="r")
        n = len(job.dets) if job.dets is not None else 0
        zeros = check_rows(job.video, np.asarray(arr), n, dim)
        chunks[job.video] = arr
        entries.append((job.video, arr.shape[0], job.digest, zeros))
    entries.sort(key=lambda e: e[0])
    offsets = np.concatenate([[0], np.cumsum([e[1] for e in entries])]).astype(np.int64)
    rows = int(offsets[-1])
    data_name = f"{path.stem}.{secrets.token_hex(4)}.npy"
    with atomic_path(path.parent / data_name) as tmp:
        if rows:
            mm = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(rows, dim))
            for (v, n, _, _), off in zip(entries, offsets[:-1]):
                mm[off : off + n] = chunks[v] if v in chunks else old[v]  # type: ignore[index]
            mm.flush()
            del mm
        else:
            np.save(tmp, np.zeros((0, dim), np.float32))
    meta = {
        "format": _FORMAT,
        "data": data_name,
        "dim": dim,
        "rows": rows,
        **extra_meta,
        "videos": {
            v: [int(off), int(n), d, int(z)] for (v, n, d, z), off in zip(entries, offsets[:-1])
        },
    }
    atomic_write_json(path, meta)
    # Clean-up after the commit: older data files of this key, then the assembled chunks.
    for f in path.parent.glob(f"{path.stem}.*.npy"):
        if f.name != data_name:
            f.unlink(missing_ok=True)
    for job in new_jobs:
        (chunk_dir / job.chunk_name).unlink(missing_ok=True)
    if chunk_dir.exists() and not any(chunk_dir.iterdir()):
        chunk_dir.rmdir()
    return BoxFeatures(path)


def box_feature_key(extractor: BoxFeatureExtractor, dataset_key: str, detector_key: str) -> str:
    """Cache file stem: every parameter that shapes the features is in one of the three keys."""
    return f"boxfeat__{dataset_key}__{detector_key}__{extractor.name}-{extractor.cache_key()}"


def extract_box_features(
    extractor: BoxFeatureExtractor,
    index: DatasetIndex,
    dets: Mapping[str, Detections],
    cache_dir: str | os.PathLike,
    dataset_key: str,
    detector_key: str,
    videos: Sequence[str] | None = None,
    progress: bool = True,
) -> BoxFeatures:
    """Box features of ``videos`` (default: every video of ``dets``), from the cache or extracted.

    Args:
        extractor: e.g. ``HogHofExtractor()`` or ``CNNExtractor(...)``.
        index: the dataset (video paths, frame counts).
        dets: video -> Detections; features are computed for exactly these rows.
        cache_dir: where the store lives (see the module docstring for the files).
        dataset_key / detector_key: keys of what shaped the data and the boxes (e.g.
            ``PreparedDataset.cache_key`` and ``f"{detector.name}-{detector.cache_key(...)}"``).
        videos: subset to make sure of; videos already in the store are never recomputed, and
            the store keeps the videos of earlier calls.
        progress: tqdm bar.

    Returns:
        :class:`BoxFeatures` holding at least ``videos``; rows aligned with ``dets``.

    Resumable: each finished video is a chunk file; a rerun after a crash computes only the rest.
    Under DDP every rank calls this; the extractor shards the videos, rank 0 assembles, the others
    wait for its commit. Concurrent single-process runs sharing ``cache_dir`` extract once
    (:func:`wsal.atomic.file_lock`): the others wait and read the store.
    """
    stem = box_feature_key(extractor, dataset_key, detector_key)
    with _build_lock(Path(cache_dir) / stem, extractor, "box features"):
        return _extract_box_features(
            extractor, index, dets, cache_dir, dataset_key, detector_key, videos, progress
        )


def _extract_box_features(
    extractor: BoxFeatureExtractor,
    index: DatasetIndex,
    dets: Mapping[str, Detections],
    cache_dir: str | os.PathLike,
    dataset_key: str,
    detector_key: str,
    videos: Sequence[str] | None,
    progress: bool,
) -> BoxFeatures:
    """:func:`extract_box_features` (with its lock held when one process extracts)."""
    videos = list(dets) if videos is None else list(videos)
    for v in videos:
        if v not in dets:
            raise KeyError(f"video {v!r} has no entry in the detections given")
        if v not in index.videos:
            raise KeyError(f"video {v!r} is not in the dataset index")
    cache_dir = Path(cache_dir)
    stem = box_feature_key(extractor, dataset_key, detector_key)
    path = cache_dir / f"{stem}.json"
    chunk_dir = cache_dir / f"{stem}.chunks"
    old = _open_or_discard(path)
    _discard_unreadable_chunks(chunk_dir, videos)
    digests = {v: detections_digest(dets[v]) for v in videos}
    missing = [v for v in videos if old is None or v not in old or old.digest(v) != digests[v]]
    if not missing:
        assert old is not None
        log.info("box features from cache %s", path)
        return old
    if old is not None:
        stale = [v for v in missing if v in old]
        if stale:
            log.warning("%s: %d videos' detections changed; re-extracting them", path, len(stale))
    jobs = [
        VideoJob(
            v,
            str(index.video_path(v)),
            index.videos[v].nframes,
            dets=dets[v],
            digest=digests[v],
        )
        for v in missing
    ]
    extractor.extract_chunks(jobs, chunk_dir, progress)
    if not _all_chunks_written(chunk_dir, jobs):  # a non-zero rank: rank 0 assembles
        return _reopen_until(path, videos)
    missing_set = set(missing)
    keep = [v for v in (old.videos if old else []) if v not in missing_set]
    store = _assemble_store(
        path,
        old,
        keep,
        jobs,
        chunk_dir,
        extractor.dim,
        {"extractor": extractor.name, "cache_key": extractor.cache_key()},
    )
    _barrier()
    return store


def _open_or_discard(path: Path) -> BoxFeatures | None:
    """The store at ``path``, or None when there is none or it cannot be read (its index and
    data files are then logged and deleted, and the videos extracted again)."""
    if not path.exists():
        return None
    try:
        return BoxFeatures(path)
    except FeatureStoreError as e:
        discard_unreadable(path, e, "box-feature cache", log)
        for f in path.parent.glob(f"{path.stem}.*.npy"):  # its data file(s)
            discard_unreadable(f, "its index is gone", "box-feature data", log)
        return None


def _discard_unreadable_chunks(chunk_dir: Path, videos: Sequence[str]) -> None:
    """Delete (with a log line) the resume chunks of ``videos`` that cannot be opened (a chunk is
    written atomically, so only outside damage cuts one), so that they are extracted again."""
    if not chunk_dir.is_dir():
        return
    stems = {v.replace("/", "__") for v in videos}
    for f in chunk_dir.glob("*.npy"):
        if f.name.split(".", 1)[0] not in stems:
            continue
        try:
            np.load(f, mmap_mode="r")
        except (OSError, ValueError, EOFError) as e:
            discard_unreadable(f, e, "box-feature chunk", log)


def _reopen_until(path: Path, videos: Sequence[str]) -> BoxFeatures:
    t0 = time.monotonic()
    while True:
        store = BoxFeatures(path) if path.exists() else None
        if store is not None and all(v in store for v in videos):
            return store
        if time.monotonic() - t0 > _WAIT_S:
            raise TimeoutError(f"{path}: rank 0 never committed the videos of this rank")
        time.sleep(1.0)


# ---------------------------------------------------------------------------- video descriptors
def extract_video_descriptors(
    extractor: BoxFeatureExtractor,
    index: DatasetIndex,
    cache_dir: str | os.PathLike,
    dataset_key: str,
    fps: float = 2.0,
    videos: Sequence[str] | None = None,
    progress: bool = True,
) -> dict[str, np.ndarray]:
    """Global descriptor per video (STIL §3.4 contextual reranking, §4: frames at 2 fps, pooled
    features, L2-normalised): video -> float32 ``[D_g]``, for ``videos`` (default: all of
    ``index``). Frames: :func:`sample_frame_ids` at ``fps``. Cached in
    ``viddesc__<dataset>__<extractor>__fps<fps>.npz`` (resumable through per-video chunks)."""
    stem = f"viddesc__{dataset_key}__{extractor.name}-{extractor.cache_key()}__fps{fps:g}"
    with _build_lock(Path(cache_dir) / stem, extractor, "video descriptors"):
        return _extract_video_descriptors(
            extractor, index, cache_dir, dataset_key, fps, videos, progress
        )


def _extract_video_descriptors(
    extractor: BoxFeatureExtractor,
    index: DatasetIndex,
    cache_dir: str | os.PathLike,
    dataset_key: str,
    fps: float,
    videos: Sequence[str] | None,
    progress: bool,
) -> dict[str, np.ndarray]:
    """:func:`extract_video_descriptors` (with its lock held when one process extracts)."""
    videos = list(index.videos) if videos is None else list(videos)
    for v in videos:
        if v not in index.videos:
            raise KeyError(f"video {v!r} is not in the dataset index")
    cache_dir = Path(cache_dir)
    stem = f"viddesc__{dataset_key}__{extractor.name}-{extractor.cache_key()}__fps{fps:g}"
    path = cache_dir / f"{stem}.npz"
    chunk_dir = cache_dir / f"{stem}.chunks"
    have: dict[str, np.ndarray] = {}
    if path.exists():
        try:
            with np.load(path, allow_pickle=False) as z:
                have = dict(zip(z["video"].tolist(), z["descriptors"]))
        except UNREADABLE as e:
            discard_unreadable(path, e, "video-descriptor cache", log)
    missing = [v for v in videos if v not in have]
    if missing:
        jobs = [
            VideoJob(
                v,
                str(index.video_path(v)),
                index.videos[v].nframes,
                sample_fps=float(fps),
                video_fps=index.videos[v].fps,
            )
            for v in missing
        ]
        extractor.extract_chunks(jobs, chunk_dir, progress)
        if _all_chunks_written(chunk_dir, jobs):
            dim = extractor.descriptor_dim
            for job in jobs:
                arr = np.load(chunk_dir / job.chunk_name)
                check_rows(job.video, arr, 1, dim)
                have[job.video] = arr[0]
            names = sorted(have)
            atomic_savez(
                path,
                video=np.array(names, dtype=str),
                descriptors=np.stack([have[v] for v in names]).astype(np.float32),
            )
            for job in jobs:
                (chunk_dir / job.chunk_name).unlink(missing_ok=True)
            if chunk_dir.exists() and not any(chunk_dir.iterdir()):
                chunk_dir.rmdir()
            _barrier()
        else:
            t0 = time.monotonic()
            while True:  # rank 0 commits; poll until the file holds this call's videos
                if path.exists():
                    with np.load(path, allow_pickle=False) as z:
                        have = dict(zip(z["video"].tolist(), z["descriptors"]))
                    if all(v in have for v in videos):
                        break
                if time.monotonic() - t0 > _WAIT_S:
                    raise TimeoutError(f"{path}: rank 0 never committed the descriptors")
                time.sleep(1.0)
    else:
        log.info("video descriptors from cache %s", path)
    return {v: np.asarray(have[v], dtype=np.float32) for v in videos}
