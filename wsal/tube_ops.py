"""Box and tube geometry: IoU, temporal IoU, spatio-temporal IoU, tube NMS, gap interpolation.

Conventions: boxes are ``xyxy`` pixels; frames are integers (0-based inside wsal, but only
differences matter here). A *tube* in ragged form is ``rows float64[n, 5]`` = ``[frame, x1, y1,
x2, y2]`` with frames strictly increasing; many tubes are stored as ``rows`` plus
``offsets int64[T+1]`` (tube t = ``rows[offsets[t]:offsets[t+1]]``).

``plus_one`` selects the area convention: ``True`` is the ACT/MOC reference (width = x2 - x1 + 1,
used by ``protocol=act``), ``False`` continuous coordinates (VOC-style, used by the linkers and
``protocol=voc``). This is the one place where that choice is made (STYLE: avoid copies of
tube-IoU code with different ``+1`` choices).
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "TubeOrderError",
    "box_area",
    "box_iou",
    "box_iou_paired",
    "temporal_iou",
    "st_iou",
    "st_iou_pairs",
    "tube_nms",
    "interpolate_gaps",
    "ragged_lengths",
]


class TubeOrderError(ValueError):
    """A tube's frames are not strictly increasing; ``tube`` is its index."""

    def __init__(self, tube: int) -> None:
        super().__init__(f"tube {tube}: frames must be strictly increasing (duplicate or unsorted)")
        self.tube = tube


def box_area(boxes: np.ndarray, plus_one: bool = False) -> np.ndarray:
    """Area of ``[..., 4]`` xyxy boxes (negative extents are not clipped, as in ACT)."""
    e = 1.0 if plus_one else 0.0
    return (boxes[..., 2] - boxes[..., 0] + e) * (boxes[..., 3] - boxes[..., 1] + e)


def box_iou_paired(a: np.ndarray, b: np.ndarray, plus_one: bool = False) -> np.ndarray:
    """IoU of matching rows: ``a, b float[N, 4]`` -> ``float[N]``.

    With ``plus_one`` this is ACT's ``overlap2d / (area2d + area2d - overlap2d)``.
    """
    e = 1.0 if plus_one else 0.0
    w = np.maximum(0.0, np.minimum(a[:, 2] + e, b[:, 2] + e) - np.maximum(a[:, 0], b[:, 0]))
    h = np.maximum(0.0, np.minimum(a[:, 3] + e, b[:, 3] + e) - np.maximum(a[:, 1], b[:, 1]))
    inter = w * h
    union = box_area(a, plus_one) + box_area(b, plus_one) - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


def box_iou(a: np.ndarray, b: np.ndarray, plus_one: bool = False) -> np.ndarray:
    """Pairwise IoU: ``a float[N, 4]``, ``b float[M, 4]`` -> ``float[N, M]``."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    e = 1.0 if plus_one else 0.0
    w = np.maximum(  # [N, M]
        0.0,
        np.minimum(a[:, None, 2] + e, b[None, :, 2] + e) - np.maximum(a[:, None, 0], b[None, :, 0]),
    )
    h = np.maximum(  # [N, M]
        0.0,
        np.minimum(a[:, None, 3] + e, b[None, :, 3] + e) - np.maximum(a[:, None, 1], b[None, :, 1]),
    )
    inter = w * h
    union = box_area(a, plus_one)[:, None] + box_area(b, plus_one)[None, :] - inter  # [N, M]
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


def temporal_iou(
    start_a: np.ndarray, end_a: np.ndarray, start_b: np.ndarray, end_b: np.ndarray
) -> np.ndarray:
    """Temporal IoU of inclusive frame ranges ``[start, end]`` (counts frames, so a one-frame
    overlap is 1 frame, as in ACT). Broadcasts; 0 where the ranges do not overlap."""
    inter = np.minimum(end_a, end_b) - np.maximum(start_a, start_b) + 1
    union = np.maximum(end_a, end_b) - np.minimum(start_a, start_b) + 1
    return np.where(inter > 0, inter / union, 0.0)


def ragged_lengths(offsets: np.ndarray) -> np.ndarray:
    return np.diff(np.asarray(offsets, dtype=np.int64))


def st_iou_pairs(
    rows_a: np.ndarray,
    offsets_a: np.ndarray,
    idx_a: np.ndarray,
    rows_b: np.ndarray,
    offsets_b: np.ndarray,
    idx_b: np.ndarray,
    plus_one: bool = False,
    chunk_frames: int = 131_072,
) -> np.ndarray:
    """Spatio-temporal IoU of many tube pairs: tube ``idx_a[p]`` of set A with ``idx_b[p]`` of B.

    Tubes must be contiguous in time (no gaps: see :func:`interpolate_gaps`) with sorted frames.
    st-IoU = temporal IoU x mean spatial IoU over the temporally overlapping frames (ACT's
    ``iou3dt``); 0 when the tubes do not overlap in time. Returns ``float64[P]``.
    Work is done in chunks of about ``chunk_frames`` overlapping frames: small enough that the
    temporaries are reused from the heap instead of page-faulted in (2x faster than 4M-frame chunks).
    """
    idx_a = np.asarray(idx_a, dtype=np.int64)
    idx_b = np.asarray(idx_b, dtype=np.int64)
    out = np.zeros(idx_a.shape[0], dtype=np.float64)
    if idx_a.size == 0:
        return out
    sa = rows_a[offsets_a[idx_a], 0]  # [P] first frame of each A tube
    ea = rows_a[offsets_a[idx_a + 1] - 1, 0]
    sb = rows_b[offsets_b[idx_b], 0]
    eb = rows_b[offsets_b[idx_b + 1] - 1, 0]
    tmin = np.maximum(sa, sb)
    tmax = np.minimum(ea, eb)
    n_over = (tmax - tmin + 1).astype(np.int64)  # [P] overlapping frames (may be <= 0)
    live = np.nonzero(n_over > 0)[0]
    if live.size == 0:
        return out
    t_union = np.maximum(ea, eb) - np.minimum(sa, sb) + 1
    # first row of the overlap inside each tube
    start_a = offsets_a[idx_a] + (tmin - sa).astype(np.int64)
    start_b = offsets_b[idx_b] + (tmin - sb).astype(np.int64)
    # chunks of consecutive pairs holding about `chunk_frames` overlapping frames each
    chunk_id = (np.cumsum(n_over[live]) - 1) // chunk_frames
    cuts = np.concatenate([[0], np.flatnonzero(np.diff(chunk_id)) + 1, [live.size]])
    e = 1.0 if plus_one else 0.0
    for lo, hi in zip(cuts[:-1], cuts[1:]):
        p = live[lo:hi]
        n = n_over[p]
        total = int(n.sum())
        seg_start = np.concatenate([[0], np.cumsum(n)[:-1]])  # [p] start of each pair's frames
        ar = np.arange(total)
        ia = np.repeat(start_a[p] - seg_start, n) + ar  # [total] row of A at each overlap frame
        ib = np.repeat(start_b[p] - seg_start, n) + ar
        # gather whole rows (one fancy-index per side); never copy the full (~16M-row) arrays
        ga = rows_a[ia]  # [total, 5]
        gb = rows_b[ib]
        ax1, ay1, ax2, ay2 = ga[:, 1], ga[:, 2], ga[:, 3], ga[:, 4]
        bx1, by1, bx2, by2 = gb[:, 1], gb[:, 2], gb[:, 3], gb[:, 4]
        # same operation order as the reference (min(x2+1) - max(x1), clipped at 0)
        iw = np.minimum(ax2 + e, bx2 + e)
        iw -= np.maximum(ax1, bx1)
        np.maximum(iw, 0.0, out=iw)
        ih = np.minimum(ay2 + e, by2 + e)
        ih -= np.maximum(ay1, by1)
        np.maximum(ih, 0.0, out=ih)
        inter = iw * ih
        union = (ax2 - ax1 + e) * (ay2 - ay1 + e)
        union += (bx2 - bx1 + e) * (by2 - by1 + e)
        union -= inter
        with np.errstate(divide="ignore", invalid="ignore"):
            ious = np.where(union > 0, inter / union, 0.0)  # [total]
        mean = np.add.reduceat(ious, seg_start) / n  # [p]
        out[p] = mean * (n / t_union[p])
    return out


def st_iou(a: np.ndarray, b: np.ndarray, plus_one: bool = False) -> float:
    """st-IoU of two contiguous tubes given as ``rows float[n, 5]`` (see :func:`st_iou_pairs`)."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 5)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 5)
    return float(
        st_iou_pairs(
            a,
            np.array([0, len(a)]),
            np.array([0]),
            b,
            np.array([0, len(b)]),
            np.array([0]),
            plus_one,
        )[0]
    )


def interpolate_gaps(rows: np.ndarray, offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """Fill missing frames inside tubes by linear interpolation of the neighbouring boxes.

    ``rows float[M, 5]`` sorted by frame within each tube, ``offsets int64[T+1]``. Returns
    ``(rows, offsets, n_filled)``; tubes without gaps come back unchanged (and when there is no gap
    at all the inputs are returned as they are). Unsorted or duplicate frames raise
    :class:`TubeOrderError`.
    """
    rows = np.asarray(rows, dtype=np.float64)
    offsets = np.asarray(offsets, dtype=np.int64)
    if rows.shape[0] < 2:
        return rows, offsets, 0
    tube_of_row = np.repeat(np.arange(len(offsets) - 1), np.diff(offsets))
    step = np.diff(rows[:, 0])  # [M-1]
    same = tube_of_row[1:] == tube_of_row[:-1]
    if np.any(same & (step <= 0)):
        raise TubeOrderError(int(tube_of_row[1:][same & (step <= 0)][0]))
    gap = same & (step > 1)
    if not gap.any():
        return rows, offsets, 0
    # each row i (except a tube's last) expands to `step` rows; the last row of a tube to 1
    reps = np.ones(rows.shape[0], dtype=np.int64)
    reps[:-1][same] = step[same].astype(np.int64)
    new_rows_n = int(reps.sum())
    src = np.repeat(np.arange(rows.shape[0]), reps)  # [M'] source row (left neighbour)
    first = np.concatenate([[0], np.cumsum(reps)[:-1]])
    k = np.arange(new_rows_n) - np.repeat(first, reps)  # [M'] offset from the left neighbour
    nxt = np.minimum(src + 1, rows.shape[0] - 1)
    frac = np.where(k > 0, k / np.maximum(rows[nxt, 0] - rows[src, 0], 1), 0.0)  # [M']
    out = rows[src] + frac[:, None] * (rows[nxt] - rows[src])
    out[:, 0] = rows[src, 0] + k
    new_len = np.bincount(tube_of_row, weights=reps, minlength=len(offsets) - 1).astype(np.int64)
    new_offsets = np.concatenate([[0], np.cumsum(new_len)]).astype(np.int64)
    return out, new_offsets, int(new_rows_n - rows.shape[0])


def tube_nms(
    rows: np.ndarray,
    offsets: np.ndarray,
    scores: np.ndarray,
    threshold: float,
    groups: np.ndarray | None = None,
    plus_one: bool = False,
) -> np.ndarray:
    """Greedy tube NMS, run independently inside each group (e.g. per video and class).

    Reproduces ACT's ``nms3dt``: within a group, order = ``np.argsort(scores)`` (ascending, taken
    from the end); keep the top tube, drop every remaining tube whose st-IoU with it is
    ``> threshold``, repeat. Returns the kept tube indices, group by group in order of first
    appearance, each group in keep order (descending score). ``threshold <= 0`` keeps everything,
    in file order within each group. Vectorised over groups: one st-IoU batch per round.
    """
    scores = np.asarray(scores, dtype=np.float64)
    n = scores.shape[0]
    groups = np.zeros(n, np.int64) if groups is None else np.asarray(groups, dtype=np.int64)
    if n == 0:
        return np.zeros(0, np.int64)
    # group order: first appearance; members in file order
    uniq, first_pos, inv = np.unique(groups, return_index=True, return_inverse=True)
    gorder = np.argsort(first_pos, kind="stable")  # groups by first appearance
    grank = np.empty_like(gorder)
    grank[gorder] = np.arange(gorder.size)
    member_order = np.lexsort((np.arange(n), grank[inv]))  # tubes grouped, file order inside
    gsizes = np.bincount(grank[inv], minlength=uniq.size)
    gptr = np.concatenate([[0], np.cumsum(gsizes)])
    if threshold <= 0:  # disabled: every tube, in file order within its group
        return member_order
    # processing order of each group = reversed np.argsort(group scores) (ACT: I[-1] first)
    proc = np.empty(n, np.int64)
    for g in range(uniq.size):
        members = member_order[gptr[g] : gptr[g + 1]]
        proc[gptr[g] : gptr[g + 1]] = members[np.argsort(scores[members])[::-1]]
    # Rounds: each alive group keeps its first alive tube and suppresses by st-IoU with it.
    alive = np.ones(n, bool)  # indexed by position in `proc`
    kept = np.zeros(n, bool)
    gid = np.repeat(np.arange(uniq.size), gsizes)  # group of each position
    pos = np.arange(n)
    while True:
        cand = alive & ~kept
        if not cand.any():
            break
        # first candidate position of each group that still has one
        first = np.full(uniq.size, n, np.int64)
        np.minimum.at(first, gid[cand], pos[cand])
        has = first < n
        heads = first[has]
        kept[heads] = True
        # remaining candidates of the same groups, compared with their group's head
        rest = cand.copy()
        rest[heads] = False
        rest &= has[gid]
        rp = np.nonzero(rest)[0]
        if rp.size:
            hp = first[gid[rp]]
            ious = st_iou_pairs(rows, offsets, proc[rp], rows, offsets, proc[hp], plus_one)
            alive[rp[ious > threshold]] = False
    return proc[kept]
