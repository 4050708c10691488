"""Actor linking: detector seeds + a Siamese tracker -> actor proposals ("Guess Where?" §3.1, Alg. 1).

Conventions: frames 0-based, boxes ``xyxy`` float pixels, one :class:`Detections` and the
decoded video (uint8 ``[T, H, W, 3]`` RGB) per call, one :class:`Tubes` out.

Algorithm 1 of the paper, for one video:

1. take the highest-scoring remaining detection (score ``> min_score``; ties: lowest row);
2. track its box through the whole video, forward to the last frame and backward to the first;
3. remove every remaining detection whose IoU with the new tube's box *in its own frame* exceeds
   ``suppress_iou`` (0.7 in the paper; the seed itself always goes, its IoU is 1);
4. repeat until ``num_tubes`` tubes (20 in the paper) or no detection remains.

**Batched, and still exactly Algorithm 1.** Tracking is the expensive step and the tracker is
deterministic and independent per target, so we track the ``batch_seeds`` highest-scoring
remaining detections together (one correlation batch per frame in
:meth:`SiamFCTracker.track`), then walk them in score order: a candidate that an earlier accepted
tube suppressed is skipped (its tracking is wasted), the others are accepted. Every detection
outside the batch scores at most as much as every candidate, so the first unsuppressed candidate
is exactly the detection step 1 would pick; the tubes are those of the one-at-a-time loop
(``tests/test_actor_linking.py`` checks this against a literal transcription).

**Detector-tracker coordination** (``snap_iou``; the paper's "scheme to filter and select the
boxes enabling detection boxes and tracker coordination", §3.1): in every frame where a remaining
detection overlaps the tracker's box with IoU ``> snap_iou``, the best-overlapping one replaces
the tracker's box in the tube (a detector box hugs a deforming actor better than SiamFC's
fixed-aspect box) and is used up. ``snap_iou=None`` keeps the pure tracker tube of Alg. 1's text.
Suppression (step 3) is then measured against the tube's final boxes.

Output: tubes cover the whole video (a tracker never stops). ``box_index`` marks where the box is
the detector's: the seed's row at the seed frame, the snapped detections' rows, and -1 where the
tracker made the box. The tube score is its
seed's detection score, so tubes come out in the order Algorithm 1 makes them (non-increasing
score), which is the proposal ranking the recall study uses; ``Tubes.labels`` stays -1.
"""

from __future__ import annotations

import hashlib
import logging
import multiprocessing
import os
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from tqdm import tqdm

from wsal.data.annotations import DatasetIndex
from wsal.data.video import read_frames
from wsal.linking.base import params_key
from wsal.structures import Detections, Tubes
from wsal.tube_ops import box_iou_paired

__all__ = [
    "MAKE_TRACKER",
    "ActorLinker",
    "Tracker",
    "actor_link",
    "actor_link_reference",
]

log = logging.getLogger(__name__)


class Tracker(Protocol):
    """What actor linking needs from a tracker (``wsal.linking.siamfc.SiamFCTracker`` is one)."""

    def track(
        self, frames: np.ndarray, frame0: np.ndarray, boxes0: np.ndarray, progress: bool = False
    ) -> tuple[np.ndarray, np.ndarray]:
        """frames uint8 [T,H,W,3]; frame0 int64[K]; boxes0 float32[K,4] ->
        (boxes float32[K,T,4], scores float32[K,T]), each target tracked over the whole video."""
        ...


def _check(frames: np.ndarray, dets: Detections, video: str) -> None:
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"video {video!r}: frames must be uint8 [T,H,W,3], got {frames.shape}")
    if frames.shape[0] != dets.num_frames:
        raise ValueError(
            f"video {video!r}: the decoded video has {frames.shape[0]} frames but its detections "
            f"are for {dets.num_frames} frames (wrong detections file or video?)"
        )
    if len(dets) and not np.isfinite(dets.boxes).all():
        raise ValueError(f"video {video!r}: detections contain non-finite boxes")


def _order(scores: np.ndarray, alive: np.ndarray) -> np.ndarray:
    """Rows of alive detections by descending score, ties by lowest row."""
    rows = np.flatnonzero(alive)
    return rows[np.lexsort((rows, -scores[rows]))]


def actor_link(
    frames: np.ndarray,
    dets: Detections,
    tracker: Tracker,
    num_tubes: int = 20,
    suppress_iou: float = 0.7,
    min_score: float = 0.0,
    batch_seeds: int = 8,
    snap_iou: float | None = None,
    video: str = "?",
) -> Tubes:
    """Actor proposals of one video (Alg. 1), tracking ``batch_seeds`` seeds per tracker call.

    Args:
        frames: uint8 ``[T, H, W, 3]`` RGB, the whole video (``T == dets.num_frames``).
        dets: the video's detections (``frame`` int64[N] sorted, ``boxes`` float32[N,4] xyxy,
            ``scores`` float32[N]); only rows with ``score > min_score`` seed or get suppressed.
        tracker: anything with ``track(frames, frame0, boxes0)`` (see :class:`Tracker`).
        num_tubes: N, the most proposals (paper: 20).
        suppress_iou: detections with IoU ``>`` this with a tube's box in their frame are removed
            (paper: 0.7; continuous-coordinate IoU).
        batch_seeds: seeds tracked per tracker call (speed only; the tubes do not depend on it).
        snap_iou: replace the tracker's box by the best remaining detection of the frame when
            their IoU is ``> snap_iou`` (None: never; see the module doc).

    Returns:
        Tubes ``[k <= N, T]`` valid on every frame, ``box_index`` = seed row at the seed frame and
        -1 elsewhere, ``scores`` = seed scores (non-increasing).
    """
    if num_tubes < 1:
        raise ValueError(f"num_tubes must be >= 1, got {num_tubes}")
    _check(frames, dets, video)
    T = dets.num_frames
    alive = dets.scores > min_score  # [N] not yet used or suppressed
    tubes: list[np.ndarray] = []
    seeds: list[int] = []
    used: list[np.ndarray] = []  # per tube, int64[T] detection row of each frame's box or -1
    while len(tubes) < num_tubes and alive.any():
        cand = _order(dets.scores, alive)[: max(1, batch_seeds)]  # [B] rows, best first
        boxes, _ = tracker.track(frames, dets.frame[cand], dets.boxes[cand])  # [B,T,4]
        for j, row in enumerate(cand):
            if not alive[row]:
                continue  # suppressed by a tube accepted earlier in this batch
            tube = np.asarray(boxes[j], np.float32).copy()  # [T,4]
            rows = np.full(T, -1, np.int64)  # [T]
            tube[dets.frame[row]] = dets.boxes[row]  # the seed frame keeps the detector's box
            rows[dets.frame[row]] = row
            alive[row] = False
            if snap_iou is not None:
                _snap(dets, alive, tube, rows, snap_iou)
            idx = np.flatnonzero(alive)  # [n]
            iou = box_iou_paired(  # [n] in float64, like the reference loop
                dets.boxes[idx].astype(np.float64), tube[dets.frame[idx]].astype(np.float64)
            )
            alive[idx[iou > suppress_iou]] = False
            tubes.append(tube)
            seeds.append(int(row))
            used.append(rows)
            if len(tubes) == num_tubes:
                break
    return _to_tubes(tubes, seeds, used, dets, T)


def _snap(
    dets: Detections, alive: np.ndarray, tube: np.ndarray, rows: np.ndarray, snap_iou: float
) -> None:
    """In place: per frame, the alive detection overlapping ``tube`` most (IoU > ``snap_iou``;
    ties: lowest row) replaces the tube's box there and is used up (``alive`` False)."""
    idx = np.flatnonzero(alive)  # [n]
    if idx.size == 0:
        return
    f = dets.frame[idx]  # [n]
    iou = box_iou_paired(dets.boxes[idx].astype(np.float64), tube[f].astype(np.float64))  # [n]
    ok = iou > snap_iou
    idx, f, iou = idx[ok], f[ok], iou[ok]
    if idx.size == 0:
        return
    order = np.lexsort((idx, -iou, f))  # by frame, best IoU first, then lowest row
    idx, f = idx[order], f[order]
    first = np.r_[True, f[1:] != f[:-1]]  # [m] the best detection of each frame
    idx, f = idx[first], f[first]
    tube[f] = dets.boxes[idx]
    rows[f] = idx
    alive[idx] = False


def _to_tubes(
    tubes: list[np.ndarray], seeds: list[int], used: list[np.ndarray], dets: Detections, T: int
) -> Tubes:
    k = len(tubes)
    if k == 0:
        return Tubes.empty(T)
    seeds_a = np.asarray(seeds, np.int64)
    return Tubes(
        np.stack(tubes).astype(np.float32),
        np.ones((k, T), bool),
        np.stack(used),
        dets.scores[seeds_a].astype(np.float32),
    )


def _iou_one(a: np.ndarray, b: np.ndarray) -> float:
    """IoU of two xyxy boxes ``float[4]`` in float64 (continuous areas, :mod:`wsal.tube_ops`)."""
    return float(box_iou_paired(a[None].astype(np.float64), b[None].astype(np.float64))[0])


def actor_link_reference(
    frames: np.ndarray,
    dets: Detections,
    track_one: Callable[[np.ndarray, int, np.ndarray], np.ndarray],
    num_tubes: int = 20,
    suppress_iou: float = 0.7,
    min_score: float = 0.0,
    snap_iou: float | None = None,
) -> Tubes:
    """Algorithm 1 transcribed literally, one seed and one box at a time (the slow twin).

    ``track_one(frames, frame0, box0) -> boxes [T,4]`` tracks a single target.
    """
    T = dets.num_frames
    alive = [bool(s > min_score) for s in dets.scores]
    tubes: list[np.ndarray] = []
    seeds: list[int] = []
    used: list[np.ndarray] = []

    while len(tubes) < num_tubes and any(alive):
        best = None
        for r in range(len(dets)):
            if alive[r] and (best is None or dets.scores[r] > dets.scores[best]):
                best = r
        assert best is not None
        tube = np.array(track_one(frames, int(dets.frame[best]), dets.boxes[best]), np.float32)
        rows = np.full(T, -1, np.int64)
        tube[dets.frame[best]] = dets.boxes[best]
        rows[dets.frame[best]] = best
        alive[best] = False
        if snap_iou is not None:
            for f in range(T):  # the best alive detection of each frame, against the tracker box
                best_r, best_iou = -1, snap_iou
                for r in range(len(dets)):
                    if alive[r] and dets.frame[r] == f:
                        o = _iou_one(dets.boxes[r], tube[f])
                        if o > best_iou:
                            best_r, best_iou = r, o
                if best_r >= 0:
                    tube[f] = dets.boxes[best_r]
                    rows[f] = best_r
                    alive[best_r] = False
        for r in range(len(dets)):
            if alive[r] and _iou_one(dets.boxes[r], tube[dets.frame[r]]) > suppress_iou:
                alive[r] = False
        tubes.append(tube)
        seeds.append(best)
        used.append(rows)
    return _to_tubes(tubes, seeds, used, dets, T)


# --------------------------------------------------------------------------------------- linker
#: How to make a tracker checkpoint (error messages name it).
MAKE_TRACKER = (
    "train one with `python -m wsal.models.tracker train --data data/synthactors --out "
    "data/trackers/siamfc.pt`, or get the default one from "
    "wsal.models.tracker.default_tracker_checkpoint (train.py does that when "
    "linker.checkpoint is null)"
)


class ActorLinker:
    """Actor linking ("Guess Where?" §3.1, Alg. 1): detector seeds tracked by SiamFC.

    ``snap_iou``: detector-tracker coordination (see :mod:`wsal.linking.actor`; None = pure
    tracker tubes). ``batch_seeds``: seeds per tracker call (None: 1 on CPU, 8 on CUDA; the tubes
    do not depend on it). ``tracker_config``: SiamFC inference settings over the checkpoint's.
    ``workers``: processes linking videos side by side, each with its own tracker made by
    ``make_tracker`` and one torch thread (a CPU option: the tubes are the same for any number;
    a tracker given in memory links in this process).

    Needs the videos' frames: the pipeline calls ``link(dets, index=index)`` and each video is
    decoded through ``index.video_path``. The tracker is a :class:`wsal.linking.siamfc.SiamFCTracker`
    given directly (``tracker``), or made on first use by ``make_tracker(checkpoint=...,
    config=tracker_config, device=device)`` from ``checkpoint``, a SiamFC checkpoint file whose
    bytes also key the tube cache (``make_tracker``: :func:`wsal.nets.siamfc.make_tracker`, which
    the linker's config names; the linker builds no network and never trains one: the caller makes
    the checkpoint first, :data:`MAKE_TRACKER`). Without ``tracker`` or an existing
    ``checkpoint`` construction fails with a message saying how.
    """

    name = "actor"
    needs_frames = True

    def __init__(
        self,
        num_tubes: int = 20,
        suppress_iou: float = 0.7,
        min_score: float = 0.0,
        batch_seeds: int | None = None,
        snap_iou: float | None = 0.5,
        tracker: Any = None,
        checkpoint: str | os.PathLike | None = None,
        make_tracker: Callable[..., Any] | None = None,
        tracker_config: Mapping[str, Any] | None = None,
        device: str | None = None,
        progress: bool = True,
        workers: int = 1,
    ) -> None:
        if num_tubes < 1:
            raise ValueError(f"num_tubes must be >= 1, got {num_tubes}")
        if not 0.0 <= suppress_iou <= 1.0:
            raise ValueError(f"suppress_iou must be in [0, 1], got {suppress_iou}")
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        if tracker is None and not checkpoint:
            raise ValueError(f"actor linker: needs a tracker checkpoint; {MAKE_TRACKER}")
        self.num_tubes = num_tubes
        self.suppress_iou = suppress_iou
        self.min_score = min_score
        self.batch_seeds = batch_seeds
        self.snap_iou = snap_iou
        self.tracker = tracker
        self.make_tracker = make_tracker
        self._own_tracker = tracker is not None  # given in memory, not loaded from a checkpoint
        self.checkpoint = str(checkpoint) if checkpoint else None
        if self.checkpoint is not None:
            self._checkpoint()  # a missing file fails now, not after the detections are read
        self.tracker_config = dict(tracker_config or {})
        if device == "auto":  # the GPU when there is one
            import torch

            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = device
        self.progress = progress
        self.workers = int(workers)

    def _checkpoint(self) -> Path:
        """The checkpoint file, checked to exist."""
        path = Path(str(self.checkpoint))
        if not path.is_file():
            raise FileNotFoundError(
                f"actor linker: tracker checkpoint {path} not found; {MAKE_TRACKER}"
            )
        return path

    def get_tracker(self) -> Any:
        """The tracker, made from the checkpoint by ``make_tracker`` on first use."""
        if self.tracker is None:
            make, path, config = self._maker()
            self.tracker = make(checkpoint=path, config=config, device=self.device)
        return self.tracker

    def _maker(self) -> tuple[Callable[..., Any], str, dict[str, Any] | None]:
        """``(make_tracker, checkpoint path, tracker_config)``: what makes the tracker, here or
        in a worker process; an error saying what is missing when there is no maker."""
        path = self._checkpoint()
        if self.make_tracker is None:
            raise ValueError(
                f"actor linker: loading the tracker checkpoint {path} needs make_tracker "
                "(e.g. wsal.nets.siamfc.make_tracker; conf/linker/actor.yaml gives it); "
                "the linker builds no network itself"
            )
        return self.make_tracker, str(path), self.tracker_config or None

    def cache_key(self) -> str:
        if self._own_tracker and self.checkpoint is None:
            tracker_id = f"object:{id(self.tracker)}"  # an in-memory tracker: no reuse across runs
        else:
            tracker_id = hashlib.sha1(self._checkpoint().read_bytes()).hexdigest()
        params = {
            "linker": self.name,
            "num_tubes": self.num_tubes,
            "suppress_iou": self.suppress_iou,
            "min_score": self.min_score,
            "snap_iou": self.snap_iou,
            "tracker": tracker_id,
            "tracker_config": self.tracker_config,
        }
        return params_key(params)

    def link(
        self, dets: Mapping[str, Detections], index: DatasetIndex | None = None
    ) -> dict[str, Tubes]:
        """Actor tubes per video (same keys as ``dets``); frames decoded via ``index``."""
        if index is None:
            raise ValueError("actor linking needs the videos: call link(dets, index=index)")
        # On a CPU the tracker's cost is per crop, so batching seeds buys nothing and every seed
        # that an earlier one of its batch suppresses is wasted work: track one at a time there.
        batch = self.batch_seeds or (8 if str(self.device or "cpu").startswith("cuda") else 1)
        params = {
            "num_tubes": self.num_tubes,
            "suppress_iou": self.suppress_iou,
            "min_score": self.min_score,
            "batch_seeds": batch,
            "snap_iou": self.snap_iou,
        }
        # a video without detections gets no tubes and needs no file
        jobs = [(v, str(index.video_path(v)) if len(dets[v]) else "", dets[v]) for v in dets]
        bar = tqdm(total=len(jobs), desc="linking (actor)", unit="video", disable=not self.progress)
        workers = min(self.workers, len(jobs))
        if workers <= 1 or self._own_tracker:
            tracker = self.get_tracker()
            out = _collect((_link_video(tracker, params, job) for job in jobs), bar)
        else:
            ctx = multiprocessing.get_context("spawn")  # no fork of a process with torch threads
            with ctx.Pool(workers, _start_worker, (self._maker(), self.device, params)) as pool:
                out = _collect(pool.imap(_link_in_worker, jobs), bar)  # in order, as serial
                pool.close()  # the workers exit on their own (terminate would leak semaphores)
                pool.join()
        bar.close()
        return out


def _collect(results: Iterable[tuple[str, Tubes]], bar: tqdm) -> dict[str, Tubes]:
    """``{video: tubes}`` of ``(video, tubes)`` results, ticking the progress bar."""
    out: dict[str, Tubes] = {}
    for v, tubes in results:
        out[v] = tubes
        bar.update(1)
    return out


def _link_video(
    tracker: Tracker, params: Mapping[str, Any], job: tuple[str, str, Detections]
) -> tuple[str, Tubes]:
    """One video's actor tubes: ``job = (video id, video file, its detections)``."""
    v, path, d = job
    frames = read_frames(path) if len(d) else _no_frames(d.num_frames)
    return v, actor_link(frames, d, tracker, video=v, **params)


_WORKER: dict[str, Any] = {}  # a linking worker process's tracker and settings


def _start_worker(maker: tuple[Any, str, Any], device: str | None, params: dict[str, Any]) -> None:
    """Pool initializer: one torch thread, the tracker made once from the checkpoint."""
    import torch

    torch.set_num_threads(1)
    make, checkpoint, config = maker
    _WORKER["tracker"] = make(checkpoint=checkpoint, config=config, device=device)
    _WORKER["params"] = params


def _link_in_worker(job: tuple[str, str, Detections]) -> tuple[str, Tubes]:
    return _link_video(_WORKER["tracker"], _WORKER["params"], job)


def _no_frames(num_frames: int) -> np.ndarray:
    """A video without detections needs no pixels (it gets no tubes): skip decoding it."""
    return np.zeros((num_frames, 1, 1, 3), np.uint8)
