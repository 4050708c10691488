"""Video-AP and friends, vectorised, reproducing the ACT/MOC reference protocol (DESIGN §7).

``protocol="act"`` equals ACT's ``videoAP`` number for number:
- areas with +1 pixel (``x2 - x1 + 1``), temporal IoU over inclusive frame counts, st-IoU =
  temporal IoU x mean spatial IoU over the overlapping frames;
- per video and class, tube NMS at st-IoU 0.3 first (``nms=0`` disables it), ACT's ``nms3dt``;
- per class, detections of all videos (videos in split order, each in NMS keep order) sorted by
  ``np.argsort(-scores)``; each is matched to its best *remaining* GT tube of its video and class if
  st-IoU >= tau (that GT is then removed), otherwise it is a false positive;
- precision/recall stored in float32 with a first row (precision 1, recall 0); AP = trapezoid
  area under that raw curve; mAP = mean over all labels.

Detections are checked before anything is computed (:func:`check_detections`, vectorised): a
detection whose video is not evaluated, whose frames are negative, not integers or beyond its
video's ``nframes``, or whose box has ``x2 < x1`` or ``y2 < y1`` raises
:class:`DetectionError` naming the detection (its index) and the video, as do thresholds outside
(0, 1]. Detections of videos outside the GT are ignored, and counted, only when asked for
(``ignore_unknown_videos=True``): a misnamed video must not silently cost its tubes.

Departures from the reference, all where it would crash: tubes with gaps are linearly
interpolated; a class with detections but no GT gets AP 0 (recall is 0/0 in the reference) and
counts in the mAP, the same value the reference gives a class with neither (a warning says so).

``protocol="voc"``: continuous areas, a detection is matched to the GT tube of highest overlap and is
a false positive if that GT was already taken (duplicate), all-point interpolated AP.

The greedy matching is sequential per (video, class) only, so it is run for all groups at once: each
round finds, in every group, the next detection whose best remaining overlap reaches tau.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from wsal.data.annotations import DatasetIndex
from wsal.errors import InputError
from wsal.structures import TubeDetections
from wsal.tube_ops import TubeOrderError, box_iou_paired, interpolate_gaps, st_iou_pairs, tube_nms

__all__ = [
    "DetectionError",
    "GroundTruth",
    "check_detections",
    "check_thresholds",
    "VideoAPResult",
    "video_ap",
    "frame_ap",
    "frame_map",
    "proposal_recall",
    "video_classification_accuracy",
    "auc",
    "pr_to_ap_act",
    "pr_to_ap_voc",
    "COCO_THRESHOLDS",
    "AUC_THRESHOLDS",
    "PROTOCOLS",
]

PROTOCOLS = ("act", "voc")
# mAP@0.5:0.95 averages these ten thresholds (0.5, 0.55, ..., 0.95), as the UCF101-24 literature.
COCO_THRESHOLDS = tuple(round(0.5 + 0.05 * i, 2) for i in range(10))
# The weakly-supervised UCF Sports literature reports localization over overlaps 0.1-0.6.
AUC_THRESHOLDS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6)


@dataclass
class GroundTruth:
    """GT tubes of the evaluated videos in ragged form.

    videos: evaluated video ids, in split order (the reference's ``vlist``).
    labels: class names.
    video_idx: int64[G] position in ``videos`` of each GT tube; label: int64[G].
    rows: float64[M, 5] ``[frame, x1, y1, x2, y2]`` (0-based frames), offsets: int64[G+1].
    video_labels: per evaluated video, its class indices.
    nframes: int64[V] frame count of each evaluated video (None, or an entry <= 0: unknown, so
        detections of that video are not checked against it).
    """

    videos: list[str]
    labels: list[str]
    video_idx: np.ndarray
    label: np.ndarray
    rows: np.ndarray
    offsets: np.ndarray
    video_labels: list[list[int]] = field(default_factory=list)
    nframes: np.ndarray | None = None

    @classmethod
    def from_index(cls, index: DatasetIndex, split: str | int = "test") -> GroundTruth:
        videos = list(index.split(split))
        vid_idx, labels, rows = [], [], []
        for i, v in enumerate(videos):
            for t in index.videos[v].tubes:
                if len(t.frames) == 0:
                    continue
                vid_idx.append(i)
                labels.append(t.label)
                rows.append(t.rows())
        lengths = [len(r) for r in rows]
        r = np.concatenate(rows) if rows else np.zeros((0, 5))
        off = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        r, off, _ = interpolate_gaps(r, off)
        return cls(
            videos,
            list(index.labels),
            np.asarray(vid_idx, np.int64),
            np.asarray(labels, np.int64),
            r,
            off,
            [list(index.videos[v].labels) for v in videos],
            np.array([int(index.videos[v].nframes or 0) for v in videos], np.int64),
        )

    @property
    def num_tubes(self) -> int:
        return int(self.label.shape[0])


@dataclass
class VideoAPResult:
    """AP per class (``ap[tau]`` float64[L]) and mAP per threshold, with the protocol used."""

    protocol: str
    nms: float
    labels: list[str]
    ap: dict[float, np.ndarray]
    num_detections: int
    num_gt: int
    seconds: float = 0.0
    # detections of videos outside the GT dropped with ``ignore_unknown_videos=True`` (else None)
    ignored_unknown_videos: int | None = None

    def map(self, tau: float) -> float:
        return float(np.mean(self.ap[_key(tau)])) if len(self.labels) else 0.0

    @property
    def map_50_95(self) -> float:
        if not all(_key(t) in self.ap for t in COCO_THRESHOLDS):
            return float("nan")  # computed only with video_ap(..., with_coco=True)
        return float(np.mean([self.map(t) for t in COCO_THRESHOLDS]))

    def auc(self) -> float:
        return auc({t: self.map(t) for t in AUC_THRESHOLDS if _key(t) in self.ap})

    def to_json(self, thresholds: Sequence[str | float] | None = None) -> dict:
        """The CLI's ``--json`` layout; threshold keys are kept as given (strings)."""
        keys = [str(t) for t in (thresholds if thresholds is not None else sorted(self.ap))]
        out = {
            "protocol": self.protocol,
            "nms": self.nms,
            "iou": {
                k: {
                    "mAP": self.map(float(k)),
                    "AP": {n: float(a) for n, a in zip(self.labels, self.ap[_key(float(k))])},
                }
                for k in keys
            },
            "mAP@0.5:0.95": self.map_50_95,
            "num_detections": self.num_detections,
            "seconds": self.seconds,
        }
        if self.ignored_unknown_videos is not None:
            out["ignored_unknown_videos"] = self.ignored_unknown_videos
        return out


def _key(tau: float) -> float:
    return round(float(tau), 6)


# ----------------------------------------------------------------------------------- AP formulas
def pr_to_ap_act(tp: np.ndarray, num_gt: int) -> float:
    """ACT's ``pr_to_ap`` on the PR curve built from ``tp bool[D]`` in score order.

    The curve is float32 (as the reference stores it) with a first row (precision 1, recall 0);
    AP = sum of trapezoids. With no GT, recall is taken as 0 (the reference divides by zero).
    """
    tp = np.asarray(tp, bool)
    ctp = np.cumsum(tp, dtype=np.int64)
    cfp = np.cumsum(~tp, dtype=np.int64)
    pr = np.empty((tp.shape[0] + 1, 2), dtype=np.float32)
    pr[0, 0], pr[0, 1] = 1.0, 0.0
    pr[1:, 0] = ctp / (ctp + cfp)  # float64 division, stored as float32 like the reference
    pr[1:, 1] = ctp / num_gt if num_gt > 0 else 0.0
    prdif = pr[1:, 1] - pr[:-1, 1]
    prsum = pr[1:, 0] + pr[:-1, 0]
    return float(np.sum(prdif * prsum * 0.5))


def pr_to_ap_voc(tp: np.ndarray, num_gt: int) -> float:
    """All-point interpolated AP (VOC 2010+): area under the precision envelope."""
    tp = np.asarray(tp, bool)
    if num_gt == 0 or tp.size == 0:
        return 0.0
    ctp = np.cumsum(tp)
    rec = ctp / num_gt
    prec = ctp / np.arange(1, tp.size + 1)
    mrec = np.concatenate([[0.0], rec, [1.0]])
    mpre = np.concatenate([[0.0], prec, [0.0]])
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]
    i = np.nonzero(mrec[1:] != mrec[:-1])[0]
    return float(np.sum((mrec[i + 1] - mrec[i]) * mpre[i + 1]))


# ------------------------------------------------------------------------------------- matching
def _greedy_match(gkey: np.ndarray, ious: np.ndarray, tau: float) -> np.ndarray:
    """ACT matching for detections in match order, grouped by ``gkey`` (contiguous groups).

    ``ious float[D, G]``: overlap of each detection with the G GT slots of its group (-inf pads).
    Each detection, in order, takes its best remaining GT if that overlap is >= tau (first
    maximum on ties, as ``np.argmax``). Returns ``tp bool[D]``. One round per TP per group.
    """
    d, g = ious.shape
    tp = np.zeros(d, bool)
    if d == 0 or g == 0:
        return tp
    # dense group ids 0..K-1 (groups are contiguous runs)
    starts = np.concatenate([[True], gkey[1:] != gkey[:-1]])
    gid = np.cumsum(starts) - 1
    k = int(gid[-1]) + 1
    removed = np.zeros((k, g), bool)
    ptr = np.zeros(k, np.int64)  # next position each group may match from
    pos = np.arange(d)
    active = np.isfinite(ious[:, 0])  # detections of groups with GT may still become TP
    for _ in range(g):
        sub = np.nonzero(active)[0]
        if sub.size == 0:
            break
        masked = np.where(removed[gid[sub]], -np.inf, ious[sub])  # [S, G]
        arg = masked.argmax(axis=1)
        best = masked[np.arange(sub.size), arg]
        cand = sub[(best >= tau) & (pos[sub] >= ptr[gid[sub]])]
        if cand.size == 0:
            break
        first = np.full(k, d, np.int64)
        np.minimum.at(first, gid[cand], cand)
        hit_groups = np.nonzero(first < d)[0]
        f = first[hit_groups]
        tp[f] = True
        sel = np.searchsorted(sub, f)
        removed[hit_groups, arg[sel]] = True
        ptr[hit_groups] = f + 1
        # detections before the new pointer can no longer change state
        active &= pos >= ptr[gid]
        active[f] = False
    return tp


def _voc_match(gkey: np.ndarray, ious: np.ndarray, tau: float) -> np.ndarray:
    """VOC matching: each detection's best GT (over all GT); TP if >= tau and not yet taken."""
    d, g = ious.shape
    if d == 0 or g == 0:
        return np.zeros(d, bool)
    arg = ious.argmax(axis=1)
    best = ious[np.arange(d), arg]
    ok = np.nonzero(best >= tau)[0]
    tp = np.zeros(d, bool)
    if ok.size:
        slot = gkey[ok].astype(np.int64) * g + arg[ok]
        _, first = np.unique(slot, return_index=True)  # first (in order) claim of each GT
        tp[ok[first]] = True
    return tp


# ------------------------------------------------------------------------------------- checks
class DetectionError(InputError):
    """Detections that cannot be evaluated as they are; the message names the first bad detection
    (its index in the detections given) and its video, and how many are bad."""


def check_thresholds(thresholds: Sequence[float], what: str = "IoU thresholds") -> list[float]:
    """``thresholds`` as floats, each in (0, 1]: an overlap of 0 matches anything and one above 1
    nothing, so either would silently give a meaningless AP."""
    taus = [float(t) for t in thresholds]
    bad = [t for t in taus if not (0.0 < t <= 1.0)]  # NaN fails too
    if bad:
        raise ValueError(f"{what} must be in (0, 1], got {bad[0]:g} (of {taus})")
    return taus


def check_detections(
    gt: GroundTruth, dets: TubeDetections, ignore_unknown_videos: bool = False
) -> tuple[TubeDetections, np.ndarray, int]:
    """Check ``dets`` against ``gt`` before evaluating them; vectorised over the columns.

    Refused with :class:`DetectionError` (naming the first bad detection by index and video):
    a video not in ``gt.videos`` (unless ``ignore_unknown_videos``, which drops and counts them),
    a tube whose first frame is negative or whose last frame is ``>= nframes`` of its video, a
    first or last frame that is not an integer, a box with ``x2 < x1`` or ``y2 < y1``.
    Non-finite boxes and scores are refused by ``TubeDetections`` itself. Frames are checked at
    each tube's ends only (O(tubes), not O(boxes)): a tube whose frames are not strictly
    increasing is refused when its gaps are filled, so its ends bound all its frames.

    Returns ``(dets of evaluated videos, vpos int64[N'] their position in gt.videos, number of
    detections ignored)``.
    """
    n = len(dets)
    if n == 0:
        return dets, np.zeros(0, np.int64), 0
    pos_of = {v: i for i, v in enumerate(gt.videos)}
    uniq, inv = np.unique(dets.video, return_inverse=True)
    upos = np.array([pos_of.get(str(u), -1) for u in uniq], dtype=np.int64)
    vpos = upos[inv]  # [N]

    number = np.arange(n)  # index of each detection in the detections given

    def fail(mask: np.ndarray, what: Callable[[int], str]) -> None:
        bad = np.nonzero(mask)[0]
        if bad.size:
            i = int(bad[0])
            raise DetectionError(
                f"detection {int(number[i])} (video {str(dets.video[i])!r}): {what(i)}"
                + (f" ({bad.size} of {n} detections are bad)" if bad.size > 1 else "")
            )

    unknown = vpos < 0
    n_ignored = 0
    if unknown.any():
        if not ignore_unknown_videos:
            fail(
                unknown,
                lambda i: (
                    f"the video is not one of the {len(gt.videos)} evaluated videos "
                    "(misnamed, or from another split?); ignore such detections explicitly with "
                    "--ignore-unknown-videos (ignore_unknown_videos=True)"
                ),
            )
        n_ignored = int(unknown.sum())
        inside = np.nonzero(~unknown)[0]
        dets, vpos, number = dets.select(inside), vpos[inside], inside
        n = len(dets)
        if n == 0:
            return dets, vpos, n_ignored
    lengths = dets.lengths()
    empty = lengths == 0
    fail(empty, lambda i: "empty tube")
    first = dets.rows[dets.offsets[:-1], 0]  # [N] first frame of each tube
    last = dets.rows[dets.offsets[1:] - 1, 0]  # [N] last frame
    fail(first < 0, lambda i: f"negative frame {first[i]:g} (frames are 0-based)")
    if gt.nframes is not None:
        nf = gt.nframes[vpos]  # [N]
        fail(
            (nf > 0) & (last >= nf),
            lambda i: (
                f"frame {last[i]:g} is beyond the video's last frame {nf[i] - 1} "
                f"(nframes {nf[i]}, frames are 0-based)"
            ),
        )
    fail(
        (first != np.floor(first)) | (last != np.floor(last)),
        lambda i: f"frames {first[i]:g}..{last[i]:g} are not integers",
    )
    bad_row = _inverted_rows(dets.rows)
    if bad_row is not None:
        r0 = int(np.nonzero(bad_row)[0][0])
        tube_of = np.searchsorted(dets.offsets, np.nonzero(bad_row)[0], side="right") - 1
        mask = np.zeros(n, bool)
        mask[tube_of] = True
        f, x1, y1, x2, y2 = dets.rows[r0]
        fail(
            mask,
            lambda i: (
                f"box [{x1:g}, {y1:g}, {x2:g}, {y2:g}] at frame {f:g} has x2 < x1 or "
                "y2 < y1 (boxes are [x1, y1, x2, y2])"
            ),
        )
    return dets, vpos, n_ignored


def _inverted_rows(rows: np.ndarray, block: int = 1 << 13) -> np.ndarray | None:
    """``bool[M]`` rows of ``rows float[M, 5]`` whose box has ``x2 < x1`` or ``y2 < y1``, or None
    when there is none. In blocks of rows that stay in cache: the columns of a row-major
    ``[M, 5]`` array are strided, and two whole-column passes cost ~20% more (16.5M rows)."""
    m = rows.shape[0]
    bad = np.empty(m, bool)  # [M]
    tmp = np.empty(block, bool)
    for a in range(0, m, block):
        r = rows[a : a + block]  # [b, 5]
        o, t = bad[a : a + block], tmp[: r.shape[0]]
        np.less(r[:, 3], r[:, 1], out=o)
        np.less(r[:, 4], r[:, 2], out=t)
        o |= t
    return bad if bad.any() else None


# ----------------------------------------------------------------------------------- preparation
def _prepare(
    gt: GroundTruth,
    dets: TubeDetections,
    nms: float,
    plus_one: bool,
    ignore_unknown_videos: bool = False,
) -> tuple[TubeDetections, np.ndarray, np.ndarray, int, int]:
    """Check the detections (:func:`check_detections`), check labels, interpolate gaps, run
    per-group NMS.

    Returns ``(dets, keep, vpos, n_in, n_ignored)``: the (gap-filled) detections of evaluated
    videos, the kept indices in reference order (class, then video in split order, then NMS keep
    order), the video position of each kept detection, the number of detections in evaluated
    videos before NMS and the number of detections of unknown videos ignored. Indices are
    returned instead of a copy: a copy of ~16M rows costs more than the NMS.
    """
    if not 0.0 <= float(nms) <= 1.0:
        raise ValueError(f"nms must be in [0, 1] (0 = off), got {nms:g}")
    dets, vpos, n_ignored = check_detections(gt, dets, ignore_unknown_videos)
    if len(dets) == 0:
        return dets, np.zeros(0, np.int64), np.zeros(0, np.int64), 0, n_ignored
    n_in = len(dets)
    L = len(gt.labels)
    bad = np.nonzero((dets.label < 0) | (dets.label >= L))[0]
    if bad.size:
        i = int(bad[0])
        raise DetectionError(
            f"detection {i} (video {dets.video[i]!r}) has label {dets.label[i]}, outside the "
            f"{L} classes {gt.labels[:5]}{'...' if L > 5 else ''}; class-agnostic tubes (-1) "
            "are evaluated with proposal_recall, not video-AP"
        )
    try:
        rows, offsets, filled = interpolate_gaps(dets.rows, dets.offsets)
    except TubeOrderError as e:
        raise DetectionError(
            f"detection {e.tube} (video {dets.video[e.tube]!r}): tube frames must be strictly "
            "increasing (duplicate or unsorted frame)"
        ) from e
    if filled:
        dets = TubeDetections(dets.video, dets.label, dets.score, offsets, rows)
    groups = vpos * L + dets.label
    keep = tube_nms(dets.rows, dets.offsets, dets.score, nms, groups=groups, plus_one=plus_one)
    # reference order: per class, videos in split order, each in keep order
    order = np.lexsort((np.arange(keep.size), vpos[keep], dets.label[keep]))
    keep = keep[order]
    return dets, keep, vpos[keep], n_in, n_ignored


def _det_gt_ious(
    gt: GroundTruth, dets: TubeDetections, keep: np.ndarray, vpos: np.ndarray, plus_one: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Overlaps of each kept detection (``dets`` tube ``keep[i]``) with the GT tubes of its video
    and class.

    Returns (gkey int64[D] = video * L + label, ious float64[D, Gmax] padded with -inf, ngt per
    class int64[L]).
    """
    L = len(gt.labels)
    gkey_gt = gt.video_idx * L + gt.label  # [G]
    gorder = np.argsort(gkey_gt, kind="stable")  # GT of a group in file order
    sorted_keys = gkey_gt[gorder]
    dkey = vpos * L + dets.label[keep]  # [D]
    lo = np.searchsorted(sorted_keys, dkey, side="left")
    hi = np.searchsorted(sorted_keys, dkey, side="right")
    cnt = hi - lo  # [D] GT tubes in each detection's group
    gmax = int(cnt.max()) if cnt.size else 0
    ious = np.full((keep.size, max(gmax, 1)), -np.inf)
    if gmax:
        det_i = np.repeat(np.arange(keep.size), cnt)  # [P]
        slot = np.arange(int(cnt.sum())) - np.repeat(np.cumsum(cnt) - cnt, cnt)  # [P]
        gt_i = gorder[np.repeat(lo, cnt) + slot]
        ious[det_i, slot] = st_iou_pairs(
            dets.rows, dets.offsets, keep[det_i], gt.rows, gt.offsets, gt_i, plus_one
        )
    ngt = np.bincount(gt.label, minlength=L).astype(np.int64)
    return dkey, ious, ngt


def _class_tp(
    gt: GroundTruth,
    dets: TubeDetections,
    taus: Sequence[float],
    protocol: str,
    nms: float,
    warn_no_gt: bool = True,
    ignore_unknown_videos: bool = False,
) -> tuple[dict[float, list[np.ndarray]], np.ndarray, int, int]:
    """The matching of video-AP: ``({tau: [bool[D_c] per class, in score order]}, ngt int[L],
    number of detections in, number ignored)``. Shared by :func:`video_ap` and
    :func:`pr_curves`."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; choose one of {PROTOCOLS}")
    check_thresholds(taus)
    plus_one = protocol == "act"
    dets, keep, vpos, n_in, n_ignored = _prepare(gt, dets, nms, plus_one, ignore_unknown_videos)
    L = len(gt.labels)
    dkey, ious, ngt = _det_gt_ious(gt, dets, keep, vpos, plus_one)
    k_label, k_score = dets.label[keep], dets.score[keep]
    # class-wise score order, exactly as the reference: np.argsort(-scores) on the class's list
    starts = np.searchsorted(k_label, np.arange(L + 1))  # kept detections are sorted by class
    ranks = np.empty(keep.size, np.int64)
    for c in range(L):
        a, b = starts[c], starts[c + 1]
        ranks[a + np.argsort(-k_score[a:b])] = np.arange(b - a)  # inverse permutation
    # match order: by group key, then rank within class (the group's detections in score order)
    match_order = np.lexsort((ranks, dkey))
    no_gt = [gt.labels[c] for c in range(L) if ngt[c] == 0 and starts[c + 1] > starts[c]]
    if no_gt and warn_no_gt:
        warnings.warn(
            f"{len(no_gt)} class(es) have detections but no ground truth in the evaluated videos "
            f"(AP = 0, counted in the mAP): {no_gt[:5]}",
            stacklevel=3,
        )
    matcher = _greedy_match if protocol == "act" else _voc_match
    out: dict[float, list[np.ndarray]] = {}
    for tau in taus:
        tp_m = matcher(dkey[match_order], ious[match_order], tau)
        tp = np.empty(keep.size, bool)
        tp[match_order] = tp_m
        per_class = []
        for c in range(L):
            a, b = starts[c], starts[c + 1]
            tp_sorted = np.empty(b - a, bool)
            tp_sorted[ranks[a:b]] = tp[a:b]
            per_class.append(tp_sorted)
        out[tau] = per_class
    return out, ngt, n_in, n_ignored


def video_ap(
    gt: GroundTruth,
    dets: TubeDetections,
    thresholds: Sequence[float] = (0.2, 0.5, 0.75),
    protocol: str = "act",
    nms: float = 0.3,
    with_coco: bool = True,
    ignore_unknown_videos: bool = False,
) -> VideoAPResult:
    """Video-AP per class at each threshold (and at 0.5:0.05:0.95 when ``with_coco``).

    ``dets`` labels index ``gt.labels``; thresholds must be in (0, 1]. Detections are checked
    first (:func:`check_detections`): one of a video outside ``gt.videos`` is an error unless
    ``ignore_unknown_videos`` (then it is dropped and counted in
    ``VideoAPResult.ignored_unknown_videos``). See the module docstring for the exact protocol.
    """
    t0 = time.perf_counter()
    check_thresholds(thresholds)
    taus = sorted(
        {_key(t) for t in list(thresholds) + (list(COCO_THRESHOLDS) if with_coco else [])}
    )
    tps, ngt, n_in, n_ignored = _class_tp(
        gt, dets, taus, protocol, nms, ignore_unknown_videos=ignore_unknown_videos
    )
    to_ap = pr_to_ap_act if protocol == "act" else pr_to_ap_voc
    ap = {
        tau: np.array([to_ap(tp_c, int(ngt[c])) for c, tp_c in enumerate(tps[tau])]) for tau in taus
    }
    return VideoAPResult(
        protocol,
        float(nms),
        list(gt.labels),
        ap,
        n_in,
        gt.num_tubes,
        time.perf_counter() - t0,
        n_ignored if ignore_unknown_videos else None,
    )


def pr_curves(
    gt: GroundTruth,
    dets: TubeDetections,
    tau: float = 0.5,
    protocol: str = "act",
    nms: float = 0.3,
    ignore_unknown_videos: bool = False,
) -> dict[str, tuple[np.ndarray, np.ndarray, float]]:
    """Per-class precision-recall curves at st-IoU ``tau``, with the matching of
    :func:`video_ap` (same NMS, ordering and matcher; DESIGN §7).

    Returns ``{class name: (precision float64[P], recall float64[P], AP)}``, points in score order.
    ``act``: the reference's curve, stored in float32 with a first point (precision 1, recall 0),
    so ``AP`` = its trapezoid area; ``voc``: the raw curve (no first point), ``AP`` = all-point
    interpolated. A class without detections has the single point (1, 0) (act) or none (voc).
    ``AP`` equals ``video_ap(...).ap[tau]`` class for class (tested).
    """
    tps, ngt, _, _ = _class_tp(gt, dets, [float(tau)], protocol, nms, False, ignore_unknown_videos)
    out: dict[str, tuple[np.ndarray, np.ndarray, float]] = {}
    for c, name in enumerate(gt.labels):
        tp_c = tps[float(tau)][c]  # [D_c] in score order
        ctp = np.cumsum(tp_c, dtype=np.int64)  # [D_c]
        n = np.arange(1, tp_c.size + 1)  # [D_c] detections so far
        prec, rec = ctp / n, (ctp / ngt[c] if ngt[c] > 0 else np.zeros(tp_c.size))
        if protocol == "act":  # the reference's float32 curve with its (1, 0) start
            prec = np.concatenate([[1.0], prec]).astype(np.float32).astype(np.float64)
            rec = np.concatenate([[0.0], rec]).astype(np.float32).astype(np.float64)
            ap = pr_to_ap_act(tp_c, int(ngt[c]))
        else:
            ap = pr_to_ap_voc(tp_c, int(ngt[c]))
        out[name] = (prec, rec, ap)
    return out


def auc(map_by_threshold: dict[float, float]) -> float:
    """Area under the mAP-vs-overlap curve (trapezoids), divided by the threshold range.

    With the default thresholds 0.1..0.6 this is the normalised localization AUC in [0, 1].
    """
    t = np.array(sorted(map_by_threshold))
    if t.size < 2:
        raise ValueError("AUC needs at least two thresholds")
    m = np.array([map_by_threshold[x] for x in t])
    return float(np.sum((t[1:] - t[:-1]) * (m[1:] + m[:-1]) * 0.5) / (t[-1] - t[0]))


# -------------------------------------------------------------------------------- other metrics
def frame_ap(
    gt: GroundTruth,
    dets: TubeDetections,
    threshold: float = 0.5,
    protocol: str = "act",
    ignore_unknown_videos: bool = False,
) -> np.ndarray:
    """Frame-AP per class (``float64[L]``): every box of every tube is a frame detection with its
    tube's score; GT = every box of every GT tube; ACT's frameAP matching (best remaining GT box of
    the same frame, IoU >= threshold) and AP formula (``protocol="voc"``: VOC matching and AP)."""
    check_thresholds([threshold])
    plus_one = protocol == "act"
    dets, keep, vpos, _, _ = _prepare(gt, dets, 0.0, plus_one, ignore_unknown_videos)
    kept = dets.select(keep)
    L = len(gt.labels)
    lens = kept.lengths()
    d_lab = np.repeat(kept.label, lens)
    d_vid = np.repeat(vpos, lens)
    d_score = np.repeat(kept.score, lens)
    d_frame = kept.rows[:, 0].astype(np.int64)
    g_lens = np.diff(gt.offsets)
    g_lab = np.repeat(gt.label, g_lens)
    g_vid = np.repeat(gt.video_idx, g_lens)
    g_frame = gt.rows[:, 0].astype(np.int64)
    nf = int(max(d_frame.max(initial=0), g_frame.max(initial=0))) + 1
    dkey = (d_vid * L + d_lab) * nf + d_frame
    gkey = (g_vid * L + g_lab) * nf + g_frame
    gorder = np.argsort(gkey, kind="stable")
    sk = gkey[gorder]
    lo = np.searchsorted(sk, dkey, side="left")
    cnt = np.searchsorted(sk, dkey, side="right") - lo
    gmax = int(cnt.max()) if cnt.size else 0
    ious = np.full((dkey.size, max(gmax, 1)), -np.inf)
    if gmax:
        di = np.repeat(np.arange(dkey.size), cnt)
        slot = np.arange(int(cnt.sum())) - np.repeat(np.cumsum(cnt) - cnt, cnt)
        gi = gorder[np.repeat(lo, cnt) + slot]
        ious[di, slot] = box_iou_paired(kept.rows[di, 1:5], gt.rows[gi, 1:5], plus_one)
    ngt = np.bincount(g_lab, minlength=L)
    ap = np.zeros(L)
    matcher = _greedy_match if protocol == "act" else _voc_match
    to_ap = pr_to_ap_act if protocol == "act" else pr_to_ap_voc
    for c in range(L):
        idx = np.nonzero(d_lab == c)[0]
        order = idx[np.argsort(-d_score[idx])]
        mo = order[np.lexsort((np.arange(order.size), dkey[order]))]
        tp_m = matcher(dkey[mo], ious[mo], threshold)
        tp = dict(zip(mo.tolist(), tp_m.tolist()))
        ap[c] = to_ap(np.array([tp[i] for i in order.tolist()], bool), int(ngt[c]))
    return ap


def frame_map(
    gt: GroundTruth,
    dets: TubeDetections,
    thresholds: Sequence[float] = (0.5,),
    protocol: str = "act",
    ignore_unknown_videos: bool = False,
) -> dict[str, dict[str, Any]]:
    """Frame-AP at each threshold: ``{"frame_AP": {thr: {class name: AP}}, "frame_mAP": {thr:
    mean AP over the classes that have GT boxes}}`` (thresholds as ``str(float)`` keys). Same
    checks as :func:`video_ap`; ``ignore_unknown_videos`` adds ``"ignored_unknown_videos"``."""
    check_thresholds(thresholds)
    g_lens = np.diff(gt.offsets)
    has_gt = np.bincount(np.repeat(gt.label, g_lens), minlength=len(gt.labels)) > 0
    out: dict[str, Any] = {"frame_AP": {}, "frame_mAP": {}}
    for t in thresholds:
        ap = frame_ap(gt, dets, float(t), protocol, ignore_unknown_videos)
        key = str(float(t))
        out["frame_AP"][key] = {name: float(ap[c]) for c, name in enumerate(gt.labels)}
        out["frame_mAP"][key] = float(ap[has_gt].mean()) if has_gt.any() else 0.0
    if ignore_unknown_videos:
        known = np.isin(dets.video.astype(str), np.asarray(gt.videos, dtype=str))  # [N]
        out["ignored_unknown_videos"] = int((~known).sum())
    return out


def proposal_recall(
    gt: GroundTruth,
    proposals: TubeDetections,
    thresholds: Sequence[float] = (0.2, 0.5),
    max_proposals: int | None = None,
    protocol: str = "act",
) -> dict[float, np.ndarray]:
    """Recall of GT tubes by class-agnostic proposals as a function of their number.

    Proposals of a video are ranked by score (descending, stable); a GT tube is recalled at n if one
    of the top-n proposals of its video has st-IoU >= tau with it (labels are ignored). Returns
    ``{tau: float64[N]}`` with entry ``n-1`` = recall with n proposals per video.
    """
    check_thresholds(thresholds)
    plus_one = protocol == "act"
    pos_of = {v: i for i, v in enumerate(gt.videos)}
    vpos = np.array([pos_of.get(str(v), -1) for v in proposals.video], np.int64)
    inside = np.nonzero(vpos >= 0)[0]
    props, vpos = proposals.select(inside), vpos[inside]
    rows, offsets, _ = interpolate_gaps(props.rows, props.offsets)
    order = np.lexsort((-props.score, vpos))  # by video, score descending (stable)
    rank = np.empty(len(props), np.int64)
    vstart = np.searchsorted(vpos[order], vpos[order], side="left")
    rank[order] = np.arange(order.size) - vstart
    n_max = int(rank.max()) + 1 if rank.size else 0
    if max_proposals is not None:
        n_max = max_proposals
    out: dict[float, np.ndarray] = {}
    if gt.num_tubes == 0:
        return {float(t): np.zeros(n_max) for t in thresholds}
    # all (GT, proposal) pairs of the same video
    porder = np.argsort(vpos, kind="stable")
    lo = np.searchsorted(vpos[porder], gt.video_idx, side="left")
    cnt = np.searchsorted(vpos[porder], gt.video_idx, side="right") - lo
    gi = np.repeat(np.arange(gt.num_tubes), cnt)
    pi = porder[
        np.repeat(lo, cnt) + np.arange(int(cnt.sum())) - np.repeat(np.cumsum(cnt) - cnt, cnt)
    ]
    ious = st_iou_pairs(gt.rows, gt.offsets, gi, rows, offsets, pi, plus_one)
    for tau in thresholds:
        first = np.full(gt.num_tubes, np.iinfo(np.int64).max)
        ok = ious >= tau
        np.minimum.at(first, gi[ok], rank[pi[ok]])
        n = np.arange(1, n_max + 1)
        out[float(tau)] = (first[None, :] < n[:, None]).mean(axis=1) if n_max else np.zeros(0)
    return out


def video_classification_accuracy(gt: GroundTruth, dets: TubeDetections) -> float:
    """Fraction of evaluated videos whose highest-scoring detection's label is one of the video's
    labels (a video without detections counts as wrong)."""
    if not gt.videos:
        return 0.0
    pos_of = {v: i for i, v in enumerate(gt.videos)}
    vpos = np.array([pos_of.get(str(v), -1) for v in dets.video], np.int64)
    inside = vpos >= 0
    v, lab, sc = vpos[inside], dets.label[inside], dets.score[inside]
    order = np.lexsort((-sc, v))  # by video, highest score first (stable)
    first = np.unique(v[order], return_index=True)[1]
    best_label = np.full(len(gt.videos), -1, np.int64)
    best_label[v[order][first]] = lab[order][first]
    correct = [int(best_label[i]) in gt.video_labels[i] for i in range(len(gt.videos))]
    return float(np.mean(correct))
