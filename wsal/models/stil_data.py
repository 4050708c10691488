"""STIL's training data (Mettes & Snoek §3): the columnar boxes, tubes and labels the E/M steps
work on, built from per-video dicts, and the one-item DataModule that hands it to Lightning.

Conventions: frames are 0-based; boxes ``xyxy`` float pixels; one row per detector box. The
boxes of all videos are concatenated (video v owns rows ``box_offsets[v]:box_offsets[v+1]``, in
its ``Detections`` row order), each tube a row of global box indices in time order,
left-aligned and padded with -1.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields, replace

import numpy as np
import pytorch_lightning as pl
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from wsal.data.annotations import DatasetIndex
from wsal.structures import Detections, Tubes
from wsal.tube_ops import box_iou_paired

__all__ = [
    "STILData",
    "STILDataModule",
    "assign_folds",
    "build_stil_data",
    "check_features",
    "l2_normalize",
    "selection_quality",
]


def l2_normalize(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm (float32 ``[N, D]``); all-zero rows stay zero."""
    x = np.asarray(x, dtype=np.float32)
    norm = np.linalg.norm(x, axis=1, keepdims=True)  # [N, 1]
    return x / np.maximum(norm, np.float32(1e-12))


def check_features(video: str, f: np.ndarray, n: int | None, dim: int | None) -> np.ndarray:
    """float32 [N, D] features of one video, or a ValueError naming the video and the problem."""
    f = np.asarray(f)
    if f.ndim != 2:
        raise ValueError(f"video {video!r}: features must be [N, D], got shape {f.shape}")
    if n is not None and f.shape[0] != n:
        raise ValueError(
            f"video {video!r}: {f.shape[0]} feature rows but {n} detections "
            "(features must be aligned with the video's Detections rows)"
        )
    if dim is not None and f.shape[1] != dim:
        raise ValueError(f"video {video!r}: feature dimension {f.shape[1]}, expected {dim}")
    f = f.astype(np.float32, copy=False)
    if f.size and not np.isfinite(f).all():
        row = int(np.nonzero(~np.isfinite(f).all(axis=1))[0][0])
        raise ValueError(f"video {video!r}: features have NaN/inf values (row {row})")
    if f.size and not f.any():
        raise ValueError(
            f"video {video!r}: all features are zero (failed feature extraction?); "
            "remove the video or fix its features"
        )
    return f


def assign_folds(labels: np.ndarray, folds: int, seed: int = 0) -> np.ndarray:
    """int64[V] fold of each video, stratified by class (``labels bool[V, L]``).

    Videos are grouped by their first label (unlabelled videos last), shuffled within a group by
    a seeded permutation, and dealt round-robin, so fold sizes differ by at most one and each
    class's videos spread over the folds.
    """
    labels = np.asarray(labels, dtype=bool)
    V, L = labels.shape
    if folds <= 1:
        return np.zeros(V, np.int64)
    perm = np.random.default_rng(seed).permutation(V)  # [V]
    first = np.where(labels.any(axis=1), labels.argmax(axis=1), L)  # [V] stratum
    order = perm[np.argsort(first[perm], kind="stable")]  # [V] grouped by stratum, shuffled
    fold = np.empty(V, np.int64)
    fold[order] = np.arange(V) % folds
    return fold


@dataclass
class STILData:
    """All training boxes, tubes and labels, columnar (the STIL E/M steps work on it whole).

    Fields (V videos, N boxes, T tubes, S = longest tube, L classes):
        videos: list of V video ids.
        features: float32[N, D] box features (L2-normalised when ``normalized``).
        priors: float32[N] prior box scores (detector score + supervision scores).
        box_video: int64[N] video of each box; box_offsets: int64[V+1] (video v = a slice).
        frame: int64[N] 0-based frame of each box within its video.
        boxes: float32[N, 4] xyxy pixels, or None when built without detections (then no
            background negatives can be found).
        tube_boxes: int64[T, S] global box rows of each tube in time order, left-aligned, -1 pad.
        tube_video: int64[T] video of each tube (non-decreasing); tube_offsets: int64[V+1].
        labels: bool[V, L] video labels. fold: int64[V] in [0, folds).
    """

    videos: list[str]
    features: Tensor
    priors: Tensor
    box_video: Tensor
    box_offsets: Tensor
    frame: Tensor
    boxes: Tensor | None
    tube_boxes: Tensor
    tube_video: Tensor
    tube_offsets: Tensor
    labels: Tensor
    fold: Tensor
    folds: int
    normalized: bool = True

    def __post_init__(self) -> None:
        N = self.features.shape[0]
        V = len(self.videos)
        if self.features.ndim != 2:
            raise ValueError(f"features must be [N, D], got {tuple(self.features.shape)}")
        for name in ("priors", "box_video", "frame"):
            if tuple(getattr(self, name).shape) != (N,):
                raise ValueError(
                    f"{name} has shape {tuple(getattr(self, name).shape)}, expected ({N},)"
                )
        if self.boxes is not None and tuple(self.boxes.shape) != (N, 4):
            raise ValueError(f"boxes has shape {tuple(self.boxes.shape)}, expected ({N}, 4)")
        if tuple(self.box_offsets.shape) != (V + 1,) or tuple(self.tube_offsets.shape) != (V + 1,):
            raise ValueError("box_offsets and tube_offsets must have V + 1 entries")
        if self.tube_boxes.ndim != 2 or self.tube_boxes.shape[0] != self.tube_video.shape[0]:
            raise ValueError("tube_boxes must be [T, S] with one tube_video entry per tube")
        if self.labels.ndim != 2 or self.labels.shape[0] != V:
            raise ValueError(f"labels must be [V={V}, L], got {tuple(self.labels.shape)}")
        if tuple(self.fold.shape) != (V,):
            raise ValueError(f"fold must be [V={V}]")

    @property
    def num_videos(self) -> int:
        return len(self.videos)

    @property
    def num_boxes(self) -> int:
        return int(self.features.shape[0])

    @property
    def dim(self) -> int:
        return int(self.features.shape[1])

    @property
    def num_classes(self) -> int:
        return int(self.labels.shape[1])

    @property
    def num_tubes(self) -> int:
        return int(self.tube_boxes.shape[0])

    @property
    def device(self) -> torch.device:
        return self.features.device

    def to(self, device: str | torch.device) -> STILData:
        """A copy with every tensor on ``device``."""
        moved = {
            f.name: getattr(self, f.name).to(device)
            for f in fields(self)
            if isinstance(getattr(self, f.name), Tensor)
        }
        return replace(self, **moved)


def build_stil_data(
    features: Mapping[str, np.ndarray],
    priors: Mapping[str, np.ndarray],
    tubes: Mapping[str, Tubes],
    labels: Mapping[str, Sequence[int]],
    num_classes: int,
    folds: int = 3,
    seed: int = 0,
    dets: Mapping[str, Detections] | None = None,
    normalize: bool = True,
) -> STILData:
    """Columnar :class:`STILData` from per-video dicts (the videos and order of ``features``).

    Args:
        features: video -> float[N_v, D] box features, rows aligned with the video's Detections.
        priors: video -> float[N_v] prior scores (detector + supervision scores, Eq. 5-7).
        tubes: video -> Tubes linked on the priors (Temporal Prim); ``box_index`` rows of the
            video's Detections (a tube box without a detection, -1, is an error: it has no
            feature).
        labels: video -> class indices in ``[0, num_classes)`` (may be empty: negative for all).
        num_classes: L. folds / seed: see :func:`assign_folds`.
        dets: video -> Detections (frames and boxes, needed for background negatives); must have
            ``N_v`` rows.
        normalize: L2-normalise each box feature (§4).

    Handling of bad input: a video with no boxes is left out with a warning; a video with boxes
    but no tube is kept (it serves as a negative, and MIL-type selections can use it); NaN/inf
    or all-zero features, misaligned rows, labels out of range, or a class without any positive
    video raise ``ValueError`` naming the video/class.
    """
    L = int(num_classes)
    if L < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    feats: list[np.ndarray] = []  # per kept video: float32[N_v, D]
    pri: list[np.ndarray] = []  # float32[N_v]
    frames: list[np.ndarray] = []  # int64[N_v]
    bxs: list[np.ndarray] = []  # float32[N_v, 4]
    lab_rows: list[np.ndarray] = []  # bool[L]
    tube_rows: list[np.ndarray] = []  # int64[K_v, S_v] global box rows
    tube_vid: list[np.ndarray] = []  # int64[K_v]
    kept: list[str] = []
    empty: list[str] = []
    dim = None
    n_total = 0
    for v in features:
        for name, m in (("priors", priors), ("tubes", tubes), ("labels", labels)) + (
            (("dets", dets),) if dets is not None else ()
        ):
            if v not in m:
                raise ValueError(f"video {v!r} has features but no {name}")
        n = None if dets is None else len(dets[v])
        f = check_features(v, features[v], n, dim)
        if f.shape[0] == 0:
            empty.append(v)
            continue
        dim = f.shape[1]
        n = f.shape[0]
        p = np.asarray(priors[v], dtype=np.float32).reshape(-1)
        if p.shape != (n,):
            raise ValueError(f"video {v!r}: priors has {p.shape[0]} entries for {n} boxes")
        if not np.isfinite(p).all():
            raise ValueError(f"video {v!r}: priors have NaN/inf values")
        t = tubes[v]
        bi = t.box_index[t.valid]
        if np.any(bi < 0):
            raise ValueError(
                f"video {v!r}: a tube has a box with no detection row (box_index -1); STIL "
                "needs a feature for every tube box (link the detector's boxes, not tracks)"
            )
        if np.any(bi >= n):
            raise ValueError(f"video {v!r}: tube box_index {int(bi.max())} >= {n} boxes")
        lab = np.asarray(list(labels[v]), dtype=np.int64)
        if lab.size and (lab.min() < 0 or lab.max() >= L):
            raise ValueError(f"video {v!r}: label {lab.tolist()} outside [0, {L})")
        row = np.zeros(L, bool)
        row[lab] = True
        if dets is not None:
            d = dets[v]
            frames.append(d.frame)
            bxs.append(d.boxes)
        # Tubes -> rows of global box indices, time order, left-aligned (Eq. 3 runs over boxes).
        valid = t.valid[t.valid.any(axis=1)]  # [K, F] non-empty tubes
        bidx = t.box_index[t.valid.any(axis=1)]
        lens = valid.sum(axis=1)  # [K]
        pos = np.cumsum(valid, axis=1) - 1  # [K, F] position of each valid box in its tube
        k_i, f_i = np.nonzero(valid)
        rows = np.full((len(lens), int(lens.max()) if len(lens) else 0), -1, np.int64)
        rows[k_i, pos[k_i, f_i]] = bidx[k_i, f_i] + n_total
        tube_rows.append(rows)
        tube_vid.append(np.full(len(lens), len(kept), np.int64))
        feats.append(l2_normalize(f) if normalize else f)
        pri.append(p)
        lab_rows.append(row)
        kept.append(v)
        n_total += n
    if empty:
        warnings.warn(
            f"{len(empty)} training video(s) have no boxes and are left out: {empty[:5]}",
            stacklevel=2,
        )
    if not kept:
        raise ValueError("no training video has boxes")
    lab_mat = np.stack(lab_rows)  # [V, L]
    missing = np.nonzero(~lab_mat.any(axis=0))[0]
    if missing.size:
        raise ValueError(
            f"class(es) {missing.tolist()} have no positive training video (with boxes); "
            "STIL cannot learn them"
        )
    counts = np.array([len(f) for f in feats])
    S = max([r.shape[1] for r in tube_rows] + [1])
    tb = np.concatenate(
        [np.pad(r, ((0, 0), (0, S - r.shape[1])), constant_values=-1) for r in tube_rows]
    )
    tv = np.concatenate(tube_vid)
    V = len(kept)
    return STILData(
        videos=kept,
        features=torch.from_numpy(np.concatenate(feats)),
        priors=torch.from_numpy(np.concatenate(pri)),
        box_video=torch.from_numpy(np.repeat(np.arange(V), counts)),
        box_offsets=torch.from_numpy(np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)),
        frame=torch.from_numpy(
            np.concatenate(frames).astype(np.int64) if dets is not None else np.full(n_total, -1)
        ),
        boxes=torch.from_numpy(np.concatenate(bxs).astype(np.float32))
        if dets is not None
        else None,
        tube_boxes=torch.from_numpy(tb.reshape(-1, S)),
        tube_video=torch.from_numpy(tv),
        tube_offsets=torch.from_numpy(
            np.concatenate([[0], np.cumsum(np.bincount(tv, minlength=V))]).astype(np.int64)
        ),
        labels=torch.from_numpy(lab_mat),
        fold=torch.from_numpy(assign_folds(lab_mat, folds, seed)),
        folds=max(int(folds), 1),
        normalized=normalize,
    )


def selection_quality(
    videos: Sequence[str],
    box_video: np.ndarray,
    frame: np.ndarray,
    boxes: np.ndarray,
    selected: np.ndarray,
    index: DatasetIndex,
    iou: float = 0.5,
) -> dict[str, float]:
    """How well a latent selection found the actors, measured against the training videos' GT
    (reporting only: training never sees it).

    Args:
        videos: V video ids; ``box_video int[N]``, ``frame int[N]``, ``boxes float[N, 4]`` the
            training boxes; ``selected bool[N, L]`` the positives of each class (the last E-step).
    Returns ``precision``: the fraction of selected (box, class) pairs on a GT box of that class
    (IoU >= ``iou``, same frame); ``videos_hit``: the fraction of (video, class) selections with at
    least one such box; ``boxes``: selected pairs.
    """
    n_idx, c_idx = np.nonzero(selected)  # [P] box rows and classes of the selected pairs
    hit = np.zeros(n_idx.size, bool)  # [P]
    for v in np.unique(box_video[n_idx]):
        info = index.videos[videos[int(v)]]
        in_v = np.nonzero(box_video[n_idx] == v)[0]
        for tube in info.tubes:
            gt = np.full((info.nframes, 4), np.nan, np.float32)  # [F, 4] GT box per frame
            gt[tube.frames] = tube.boxes
            rows = in_v[c_idx[in_v] == tube.label]
            g = gt[frame[n_idx[rows]]]  # [R, 4]
            ok = ~np.isnan(g[:, 0])
            ious = np.zeros(rows.size)
            if ok.any():
                ious[ok] = box_iou_paired(boxes[n_idx[rows[ok]]], g[ok])
            hit[rows] |= ious >= iou
    pairs = {(int(box_video[n]), int(c)) for n, c in zip(n_idx, c_idx)}
    pairs_hit = {(int(box_video[n]), int(c)) for n, c in zip(n_idx[hit], c_idx[hit])}
    return {
        "precision": float(hit.mean()) if hit.size else float("nan"),
        "videos_hit": len(pairs_hit) / max(len(pairs), 1),
        "boxes": float(hit.size),
    }


class _OneItem(Dataset):
    """One item per epoch: STIL's E/M steps are full-batch, the "batch" is only a tick."""

    def __len__(self) -> int:
        return 1

    def __getitem__(self, i: int) -> Tensor:
        return torch.zeros(())


class STILDataModule(pl.LightningDataModule):
    """Holds a :class:`STILData` for :class:`STIL` (read in ``STIL.setup``); one step per epoch."""

    def __init__(self, data: STILData) -> None:
        super().__init__()
        self.stil_data = data

    def train_dataloader(self) -> DataLoader:
        return DataLoader(_OneItem(), batch_size=None)
