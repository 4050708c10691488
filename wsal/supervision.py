"""Supervision levels and their annotation cost (DESIGN §2, STIL §3.3, §5.2.2, appendix A).

A level says what annotation a *training* video carries beyond its class labels:

==================  ====================================================================
``labels``          video-level class labels only (the weakly-supervised setting)
``points``          a point on the actor in every frame (plus the labels)
``points_stride10`` a point in every 10th frame
``boxes``           a box around the actor in every frame
``boxes_stride10``  a box in every 10th frame
``mixture``         a seeded half of the videos ``boxes_stride10``, the rest ``labels``
==================  ====================================================================

Annotated frames of a video with ``F`` frames and stride ``s`` are ``0, s, 2s, ... < F``
(0-based). On each one the annotator either marks every GT actor (a box or a point per GT tube
covering that frame) or, when no GT tube covers it, marks the frame *empty*. Eq. 5-7 turn these
annotations into a score per detection box that STIL adds to the box's prior score
(:func:`supervision_scores`). The annotation-cost model of STIL's Table 3 is
:func:`annotation_cost` / :func:`cost_table`; see docs/supervision.md.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from wsal.data.annotations import DatasetIndex, GTTube
from wsal.structures import Detections
from wsal.tube_ops import box_iou_paired

__all__ = [
    "LEVELS",
    "COST_LABEL",
    "COST_BOX",
    "COST_POINT",
    "SupervisionSpec",
    "assign_annotations",
    "annotated_frames",
    "frame_annotations",
    "temporal_score",
    "point_match",
    "supervision_scores",
    "annotation_cost",
    "cost_table",
]

#: Every level, in the order of STIL's Table 3 (ascending cost on its datasets).
LEVELS = ("labels", "points_stride10", "mixture", "points", "boxes_stride10", "boxes")

# STIL appendix A: seconds to annotate a video's class label, a box in one frame, a point in one
# frame (points "ten times faster" than boxes, after Mettes et al.).
COST_LABEL = 5.0
COST_BOX = 15.0
COST_POINT = 1.5

# level -> (annotation kind, default stride); a mixture's kind/stride are those of its annotated half
_LEVEL_KIND = {
    "labels": ("labels", 1),
    "points": ("points", 1),
    "points_stride10": ("points", 10),
    "boxes": ("boxes", 1),
    "boxes_stride10": ("boxes", 10),
    "mixture": ("boxes", 10),
}
_KIND_COST = {"points": COST_POINT, "boxes": COST_BOX}
# codes of Eq. 7's three cases in the columnar annotation arrays
_BOX, _POINT, _NONE = 0, 1, 2


@dataclass(frozen=True)
class SupervisionSpec:
    """What annotation the training videos carry.

    level: one of :data:`LEVELS`.
    stride: annotate every ``stride``-th frame. ``None`` derives it from the level (1 for
        ``points``/``boxes``/``labels``, 10 for ``*_stride10`` and ``mixture``). ``points`` and
        ``boxes`` accept any stride (a generalisation: ``boxes`` with ``stride=5``); a ``*_stride10``
        level only 10.
    mixture_fraction: for ``mixture``, the fraction of training videos that get boxes every
        ``stride``-th frame (STIL: 50:50); the others keep labels only.
    seed: picks which videos of a mixture are annotated.
    """

    level: str = "labels"
    stride: int | None = None
    mixture_fraction: float = 0.5
    seed: int = 0

    def __post_init__(self) -> None:
        if self.level not in _LEVEL_KIND:
            raise ValueError(f"unknown supervision level {self.level!r}; valid: {LEVELS}")
        default = _LEVEL_KIND[self.level][1]
        stride = default if self.stride is None else int(self.stride)
        if stride < 1:
            raise ValueError(f"stride must be >= 1, got {stride}")
        if self.level.endswith("_stride10") and stride != 10:
            raise ValueError(
                f"level {self.level!r} annotates every 10th frame, got stride={stride}"
            )
        if self.level == "labels" and stride != 1:
            raise ValueError(f"level 'labels' annotates no frames; stride must be 1, got {stride}")
        if not 0.0 <= self.mixture_fraction <= 1.0:
            raise ValueError(f"mixture_fraction must lie in [0, 1], got {self.mixture_fraction}")
        object.__setattr__(self, "stride", stride)

    @property
    def kind(self) -> str:
        """``"labels"``, ``"points"`` or ``"boxes"``: the annotation of an annotated video."""
        return _LEVEL_KIND[self.level][0]

    @property
    def name(self) -> str:
        """Canonical name: the level, with the stride when it is not the level's default."""
        if self.stride == _LEVEL_KIND[self.level][1]:
            return self.level
        return f"{self.level}_stride{self.stride}"


def _stride(spec: SupervisionSpec) -> int:
    """The resolved stride (``__post_init__`` replaced ``None`` by the level's default)."""
    assert spec.stride is not None
    return spec.stride


def _spec(spec_or_level: SupervisionSpec | str) -> SupervisionSpec:
    return (
        spec_or_level
        if isinstance(spec_or_level, SupervisionSpec)
        else SupervisionSpec(str(spec_or_level))
    )


# ------------------------------------------------------------------------------ who gets what
def assign_annotations(spec: SupervisionSpec, videos: Sequence[str]) -> dict[str, str]:
    """Annotation kind per training video: ``"labels"``, ``"points"`` or ``"boxes"``.

    For ``mixture`` a seeded permutation of the *sorted* ids (so the choice does not depend on
    the order ``videos`` come in) gives the first ``round(mixture_fraction * V)`` (halves round
    up) boxes and the rest labels.
    """
    videos = list(videos)
    if spec.level != "mixture":
        return dict.fromkeys(videos, spec.kind)
    ids = sorted(set(videos))
    n_annotated = int(np.floor(spec.mixture_fraction * len(ids) + 0.5))
    order = np.random.default_rng(spec.seed).permutation(len(ids))
    annotated = {ids[i] for i in order[:n_annotated]}
    return {v: ("boxes" if v in annotated else "labels") for v in videos}


def annotated_frames(nframes: int, stride: int) -> np.ndarray:
    """int64 0-based frames an annotator looks at: ``0, stride, 2*stride, ... < nframes``."""
    return np.arange(0, int(nframes), int(stride), dtype=np.int64)


def _tube_at(tube: GTTube, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """GT box and point of one tube at ``frames`` (int64[A]).

    Returns ``covered bool[A]`` (frame within the tube's first..last frame), ``boxes float64[A, 4]``
    and ``points float64[A, 2]``. GT tubes may skip frames: inside the tube's span the box is
    linearly interpolated (the actor is there; the dataset just did not store the box). Tubes
    without points (datasets other than SynthActors) use the box centre as the point.
    """
    tf = tube.frames
    if tf.size == 0:
        z = np.zeros((frames.size, 4))
        return np.zeros(frames.size, bool), z, z[:, :2]
    covered = (frames >= tf[0]) & (frames <= tf[-1])
    boxes = tube.boxes.astype(np.float64)
    pts = (
        tube.points.astype(np.float64)
        if tube.points is not None
        else 0.5 * (boxes[:, :2] + boxes[:, 2:])  # [n, 2] box centres
    )
    at_boxes = np.stack([np.interp(frames, tf, boxes[:, k]) for k in range(4)], axis=1)  # [A, 4]
    at_pts = np.stack([np.interp(frames, tf, pts[:, k]) for k in range(2)], axis=1)  # [A, 2]
    return covered, at_boxes, at_pts


def frame_annotations(
    tubes: Sequence[GTTube], nframes: int, stride: int, kind: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The annotations of one video, columnar (the ``A_ij`` of Eq. 5).

    ``kind``: ``"boxes"`` or ``"points"``. Every annotated frame (:func:`annotated_frames`) gets
    one annotation per GT tube covering it, of that kind, or a single *empty* annotation (Eq. 7's
    third case) when no tube covers it. All GT tubes of the video count, whatever their label: the
    annotator marks where the video's actions are.

    Returns ``frame int64[J]`` (sorted), ``type int64[J]`` (0 box, 1 point, 2 empty) and
    ``geom float64[J, 4]``: the xyxy box, or ``(x, y, x, y)`` for a point, zeros when empty.
    """
    if kind not in ("boxes", "points"):
        raise ValueError(f"kind must be 'boxes' or 'points', got {kind!r}")
    af = annotated_frames(nframes, stride)  # [A]
    frames, types, geoms = [], [], []
    any_covered = np.zeros(af.size, dtype=bool)
    for tube in tubes:  # a video has a handful of tubes; everything per frame is vectorised
        covered, boxes, pts = _tube_at(tube, af)
        any_covered |= covered
        frames.append(af[covered])
        if kind == "boxes":
            types.append(np.full(int(covered.sum()), _BOX))
            geoms.append(boxes[covered])
        else:
            types.append(np.full(int(covered.sum()), _POINT))
            geoms.append(np.concatenate([pts[covered], pts[covered]], axis=1))  # [a, 4]
    empty = af[~any_covered]
    frames.append(empty)
    types.append(np.full(empty.size, _NONE))
    geoms.append(np.zeros((empty.size, 4)))
    frame = np.concatenate(frames).astype(np.int64)
    order = np.argsort(frame, kind="stable")
    return (
        frame[order],
        np.concatenate(types).astype(np.int64)[order],
        np.concatenate(geoms).astype(np.float64).reshape(-1, 4)[order],
    )


# ------------------------------------------------------------------------------ Eq. 5-7
def temporal_score(delta: np.ndarray) -> np.ndarray:
    """Eq. 6: ``max(0, 1 - |delta| / 2)`` for frame offsets ``delta`` (1 at the annotated frame,
    1/2 at its two neighbours, 0 from two frames away)."""
    return np.maximum(0.0, 1.0 - np.abs(np.asarray(delta, dtype=np.float64)) / 2.0)


def point_match(points: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Eq. 7's ``pmatch``: ``max(0, 1 - ||p - c(B)|| / ||c(B) - e(B)||)``, row by row.

    ``points float[N, 2]`` (x, y), ``boxes float[N, 4]`` xyxy -> ``float64[N]``. ``c(B)`` is the box
    centre and ``e(B)`` the point where the ray from the centre through ``p`` leaves the box
    (the overlap of Mettes et al., STIL's [30]): the ratio is then the largest of the
    half-width- and half-height-normalised offsets, so the match is 1 at the centre, falls
    linearly to 0 on the border and is 0 outside. A point on a zero-width (or -height) box
    matches only on its centre line.
    """
    p = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    centre = 0.5 * (b[:, :2] + b[:, 2:])  # [N, 2]
    half = 0.5 * (b[:, 2:] - b[:, :2])  # [N, 2]
    off = np.abs(p - centre)  # [N, 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(
            half > 0, off / np.where(half > 0, half, 1.0), np.where(off > 0, np.inf, 0)
        )
    return np.maximum(0.0, 1.0 - ratio.max(axis=1))


def _scores_one(
    dets: Detections, frame: np.ndarray, types: np.ndarray, geom: np.ndarray
) -> np.ndarray:
    """Eq. 5 for every box of one video, from its columnar annotations (:func:`frame_annotations`).

    Only boxes within one frame of an annotation get a non-zero Eq. 6 weight, so the pairs are
    built sparsely from the CSR frame index: annotation j meets the boxes of frames
    ``frame[j] - 1 .. frame[j] + 1``.
    """
    n = dets.frame.shape[0]
    if n == 0 or frame.size == 0:
        return np.zeros(n, dtype=np.float32)
    F = dets.num_frames
    ptr = dets.frame_ptr  # [F + 1]
    lo = ptr[np.clip(frame - 1, 0, F)]  # [J] first box row of frame - 1
    hi = ptr[np.clip(frame + 2, 0, F)]  # [J] one past the last box row of frame + 1
    counts = hi - lo  # [J]
    ann = np.repeat(np.arange(frame.size), counts)  # [P] annotation of each pair
    starts = np.repeat(lo - np.cumsum(counts) + counts, counts)  # [P] lo minus the pair's rank
    box = starts + np.arange(ann.size)  # [P] box row of each pair (ragged arange)
    dt = temporal_score(dets.frame[box] - frame[ann])  # [P] Eq. 6
    t = types[ann]  # [P]
    g = geom[ann]  # [P, 4]
    b = dets.boxes[box].astype(np.float64)  # [P, 4]
    ds = np.full(ann.size, -1.0)  # [P] Eq. 7, empty frame
    is_box, is_pt = t == _BOX, t == _POINT
    ds[is_box] = box_iou_paired(g[is_box], b[is_box])
    ds[is_pt] = point_match(g[is_pt, :2], b[is_pt])
    return np.bincount(box, weights=dt * ds, minlength=n).astype(np.float32)  # Eq. 5: sum over j


def supervision_scores(
    spec: SupervisionSpec,
    index: DatasetIndex,
    dets: Mapping[str, Detections],
    videos: Sequence[str],
) -> dict[str, np.ndarray]:
    """Eq. 5 score of every detection box of the training ``videos``, to add to its prior score.

    Returns ``{video: float32[N_v]}`` in the row order of ``dets[video]``. All zeros for
    ``labels`` (and for the label-only half of a mixture). Annotations come from the GT tubes of
    ``index`` on the frames :func:`frame_annotations` describes; IoU uses continuous coordinates
    (no +1), as the linkers do.
    """
    kinds = assign_annotations(spec, videos)
    out: dict[str, np.ndarray] = {}
    for v in videos:
        if v not in dets:
            raise KeyError(f"supervision: video {v!r} has no detections")
        d = dets[v]
        if kinds[v] == "labels":
            out[v] = np.zeros(d.frame.shape[0], dtype=np.float32)
            continue
        if v not in index.videos:
            raise KeyError(f"supervision: video {v!r} is not in the annotation index")
        info = index.videos[v]
        if d.num_frames > info.nframes:  # fewer is fine: F may be "last detected frame + 1"
            raise ValueError(
                f"supervision: video {v!r} has {d.num_frames} frames in its detections but "
                f"only {info.nframes} in the annotations"
            )
        ann = frame_annotations(info.tubes, info.nframes, _stride(spec), kinds[v])
        out[v] = _scores_one(d, *ann)
    return out


# ------------------------------------------------------------------------------ annotation cost
def annotation_cost(
    spec_or_level: SupervisionSpec | str,
    nframes: Sequence[int] | np.ndarray,
    feature_stride: int = 1,
    *,
    exact: bool = False,
) -> float:
    """Mean annotation cost in seconds per training video (STIL appendix A, Table 3).

    Every video costs ``COST_LABEL`` (5 s) for its label; an annotated video also costs
    ``COST_BOX`` (15 s) or ``COST_POINT`` (1.5 s) per annotated frame, empty frames included;
    a mixture costs ``(1 - f) * labels + f * annotated``. As in STIL, a video of ``F`` frames at
    stride ``s`` counts ``F / s`` annotated frames (fractional, so that Table 3 follows from the
    mean length: UCF Sports, 65 frames, boxes every 10th frame = 5 + 15 * 6.5 = 102.5).
    ``exact=True`` counts the frames :func:`annotated_frames` really picks, ``ceil(F / s)``.

    ``feature_stride``: boxes (features) exist only on every n-th frame (UCF101-24: 5), so only
    strides that are multiples of it can be annotated; others cost ``nan`` (Table 3's "-").
    """
    spec = _spec(spec_or_level)
    f = np.asarray(nframes, dtype=np.float64).reshape(-1)
    if f.size == 0 or np.any(f < 1):
        raise ValueError("annotation_cost needs at least one video and frame counts >= 1")
    if feature_stride < 1:
        raise ValueError(f"feature_stride must be >= 1, got {feature_stride}")
    if spec.kind == "labels":
        return COST_LABEL
    stride = _stride(spec)
    if stride % feature_stride:
        return float("nan")
    frames = np.ceil(f / stride) if exact else f / stride  # [V] annotated frames
    annotated = COST_LABEL + _KIND_COST[spec.kind] * float(frames.mean())
    if spec.level == "mixture":
        frac = spec.mixture_fraction
        return (1.0 - frac) * COST_LABEL + frac * annotated
    return annotated


def cost_table(
    nframes: Sequence[int] | np.ndarray, feature_stride: int = 1, *, exact: bool = False
) -> dict[str, float]:
    """:func:`annotation_cost` of every level, in Table 3's order (:data:`LEVELS`)."""
    return {lv: annotation_cost(lv, nframes, feature_stride, exact=exact) for lv in LEVELS}
