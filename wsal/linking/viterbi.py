"""Viterbi linking: per-frame boxes -> tubes by dynamic programming (Gkioxari & Malik, "Finding
action tubes", CVPR 2015) — the baseline "Guess Where?" §4.3 compares actor linking with (+19.9
/ +21.6 recall points for actor linking on THUMOS13 at IoU 0.2 / 0.5).

Conventions: boxes are ``xyxy`` float pixels, frames are 0-based, one :class:`Detections` per video
(rows sorted by frame), one :class:`Tubes` per video out; IoU is continuous (areas without +1).

**Objective.** G&M score a link between regions of consecutive frames by (their Eq. 1)
``s(R_t) + s(R_t+1) + λ'·ov(R_t, R_t+1)`` and take the path maximising the sum of link scores
(their Eq. 2, whose 1/T is a constant for their whole-video paths). wsal scores a path
``R = (R_a, ..., R_b)`` over consecutive frames ``a..b`` by counting each box once::

    E(R) = Σ_{t=a..b} s(R_t) + λ · Σ_{t=a..b-1} IoU(R_t, R_t+1)

Summed over a path, Eq. 1 gives ``2·E(R) − s(R_a) − s(R_b)`` with ``λ = λ'/2``: among paths with
the same two end boxes both pick the same path; they differ only in how much the end boxes weigh,
i.e. where a path starts and stops. Counting each box once makes one box a path (score ``s``) and
compares paths of different lengths on one scale, which Eq. 2 never had to. ``iou_weight`` is λ.

**Rules** (one video, linking scores ``s``: the priors or e.g. model scores):

1. A path takes one remaining box per frame over a run of consecutive frames; consecutive boxes
   need ``IoU >= min_iou`` (0 = any pair may link, as in G&M). A frame without remaining boxes
   ends every path (a gap). The path taken is the best ``E`` over all spans and boxes, by the
   recurrence ``D_t(j) = s(j) + max(0, max_i D_{t-1}(i) + λ·IoU(i, j))``: a predecessor is kept
   only if its path adds ``>= 0`` (the max-subarray rule). So with non-negative scores a path spans
   a whole run of frames with linkable boxes; with signed scores it drops a prefix or suffix that
   would lower ``E``.
2. Ties: the predecessor is the lowest Detections row among the maximisers and is kept when it
   adds exactly 0 (the longer path); the path ends at the largest ``D`` over all frames and boxes,
   the latest frame on ties, then the lowest row.
3. K tubes: all boxes of the path (before trimming) are removed and the DP runs again, until
   ``num_tubes`` paths or no box is left (one box is a path, so fewer than K means no box left).
4. Trimming (``trim=True``): the tube keeps the contiguous part of its path maximising
   ``Σ (s(R_t) − trim_thresh)`` (a max-subarray; never empty; ties: earliest start, then latest
   end). The whole path is still removed, so trimming changes what is reported, never later paths.
5. Tube score = mean ``s`` of the kept boxes; ``box_index`` = the boxes' Detections rows.

Empty videos (no frame or no box) give zero tubes. Detections that disagree with their video's
frame count (a frame ``>= num_frames``, a stale ``frame_ptr``) raise ``ValueError`` naming the
video: never a silently wrong tube.

Speed: a group of videos is padded into ``[V, F_max, B_max]`` tables; ``λ·IoU`` of every pair of
boxes in consecutive frames is computed once, vectorised, into float64 ``[V, F_max-1, B, B]``
(videos are grouped so that this fits ``cache_bytes``; a video that alone does not fit computes it
per step), and each DP pass is one vectorised ``[V, B, B]`` step per frame over the whole group.
Backtracking walks the stored backpointers, O(path length) per tube. The numpy and torch backends
share the IoU code (``xp`` is the array module) and run the same DP step, so their tubes are
identical; torch pays off on a GPU with many videos per group.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

# one slot-path -> Tubes conversion for both linkers (box rows = frame_ptr + slot)
from wsal.linking.base import BatchedLinker
from wsal.linking.temporal_prim import _to_tubes, linking_scores, resolve_backend
from wsal.structures import Detections, Tubes

if TYPE_CHECKING:  # torch is imported by the torch backend only: numpy linking starts faster
    import torch

__all__ = ["ViterbiLinker", "trim_path", "viterbi", "viterbi_batch"]

# union is clamped to this before dividing: 0/tiny = 0 for two empty boxes or padding (as in
# temporal_prim; a real union is never that small).
_TINY = float(np.finfo(np.float64).tiny)
# elements of [.., B, B] float64 temporaries per chunk when filling the λ·IoU cache (~16 MB each)
_CHUNK = 1 << 21


def viterbi(
    dets: Detections,
    num_tubes: int,
    iou_weight: float = 1.0,
    min_iou: float = 0.0,
    trim: bool = False,
    trim_thresh: float = 0.5,
    scores: np.ndarray | None = None,
    device: str | torch.device | None = None,
    backend: Literal["auto", "numpy", "torch"] = "auto",
) -> Tubes:
    """Link the boxes of one video into at most ``num_tubes`` tubes by Viterbi (module docstring).

    Args:
        dets: the video's boxes: ``frame`` int64[N] 0-based sorted, ``boxes`` float32[N, 4] xyxy
            pixels, ``scores`` float32[N] priors.
        num_tubes: K, the most tubes.
        iou_weight: λ in ``E(R) = Σ s + λ Σ IoU`` (G&M's Eq. 1 λ' = 2λ).
        min_iou: consecutive boxes of a path need ``IoU >= min_iou`` (0: no constraint).
        trim: keep only the max-sum part of each path of ``s − trim_thresh`` (rule 4).
        trim_thresh: the per-box score a trimmed tube must beat on average, see rule 4.
        scores: optional float[N] linking scores replacing ``dets.scores``.
        device, backend: see :func:`viterbi_batch`.

    Returns:
        Tubes with ``k <= K`` rows in linking order: ``boxes`` float32[k, F, 4] (zeros where not
        valid), ``valid`` bool[k, F], ``box_index`` int64[k, F] (-1 where not valid), ``scores``
        float32[k] = mean linking score of the kept boxes, ``labels`` -1.
    """
    return viterbi_batch(
        [dets],
        num_tubes,
        iou_weight,
        min_iou,
        trim,
        trim_thresh,
        None if scores is None else [scores],
        device,
        backend,
    )[0]


def viterbi_batch(
    dets: Sequence[Detections],
    num_tubes: int,
    iou_weight: float = 1.0,
    min_iou: float = 0.0,
    trim: bool = False,
    trim_thresh: float = 0.5,
    scores: Sequence[np.ndarray | None] | None = None,
    device: str | torch.device | None = None,
    backend: Literal["auto", "numpy", "torch"] = "auto",
    names: Sequence[str] | None = None,
    cache_bytes: int = 256 << 20,
) -> list[Tubes]:
    """Viterbi linking of many videos at once; the same tubes as one :func:`viterbi` per video.

    Args:
        dets: V videos' Detections (``frame`` int64[N_v] 0-based sorted, ``boxes`` float32[N_v, 4]
            xyxy pixels, ``scores`` float32[N_v]).
        num_tubes, iou_weight, min_iou, trim, trim_thresh: see :func:`viterbi`.
        scores: optional per-video float[N_v] linking scores (None entries keep the priors).
        device: where the torch backend runs (e.g. ``"cuda"``); None = CPU.
        backend: ``"numpy"``, ``"torch"`` (any device) or ``"auto"``: numpy on CPU, torch elsewhere.
        names: video ids for error messages (default ``#index``).
        cache_bytes: the most bytes of the ``λ·IoU`` table one group of videos may hold; more
            videos per group means fewer Python steps per box.

    Returns:
        One Tubes per video (see :func:`viterbi`), tubes in linking order.

    Raises:
        ValueError: bad parameters, or a video whose detections do not match its frame count or
            whose scores are not finite (the message names the video).
    """
    if num_tubes < 0:
        raise ValueError(f"num_tubes must be >= 0, got {num_tubes}")
    if not (np.isfinite(iou_weight) and iou_weight >= 0):
        raise ValueError(f"iou_weight must be finite and >= 0, got {iou_weight}")
    if not np.isfinite(min_iou) or not np.isfinite(trim_thresh):
        raise ValueError(f"min_iou and trim_thresh must be finite, got {min_iou}, {trim_thresh}")
    if names is not None and len(names) != len(dets):
        raise ValueError(f"got {len(names)} names for {len(dets)} videos")
    for v, d in enumerate(dets):
        _check(d, names[v] if names is not None else f"#{v}")
    link = linking_scores(dets, scores, names)  # float64[N_v] linking scores
    impl = resolve_backend(backend, device)
    dev = None
    if impl == "torch":
        import torch  # the optional backend's dependency (see the imports)

        dev = torch.device(device if device is not None else "cpu")

    found: list[list[tuple[int, np.ndarray]]] = [[] for _ in dets]
    for group in _groups(dets, cache_bytes):
        if num_tubes == 0:
            break
        out = _link_group(
            [dets[v] for v in group],
            [link[v] for v in group],
            num_tubes,
            float(iou_weight),
            float(min_iou),
            float(trim_thresh) if trim else None,
            impl,
            dev,
            cache_bytes,
        )
        for v, f in zip(group, out):
            found[v] = f
    return [_to_tubes(d, s, f) for d, s, f in zip(dets, link, found)]


def trim_path(s: np.ndarray, thresh: float) -> tuple[int, int]:
    """Temporal trimming of one path (rule 4): the ``(a, b)`` (inclusive) maximising
    ``Σ_{t=a..b} (s[t] − thresh)``, never empty; ties: earliest ``a``, then latest ``b``.

    O(L) with prefix sums ``P`` (``P[0] = 0``): the best segment ending at ``e−1`` starts at the
    first minimum of ``P[:e]``; those first minima never move back as ``e`` grows, so the first
    optimal ``e`` has the earliest optimal start, and its latest end is the last optimal ``e``
    with that same start. ``s``: float[L], L >= 1.
    """
    x = np.asarray(s, dtype=np.float64) - thresh  # [L]
    L = len(x)
    if L == 0:
        raise ValueError("cannot trim an empty path")
    p = np.concatenate([[0.0], np.cumsum(x)])  # [L+1] prefix sums, sequential
    cmin = np.minimum.accumulate(p[:-1])  # [L] min of P[:e] for e = 1..L
    new_min = np.ones(L, bool)
    new_min[1:] = p[1:-1] < cmin[:-1]  # P[k] strictly below every earlier prefix
    first = np.maximum.accumulate(np.where(new_min, np.arange(L), 0))  # [L] first argmin of P[:e]
    val = p[1:] - cmin  # [L] best sum of a segment ending at e-1
    best = val.max()
    a = int(first[int(np.argmax(val == best))])
    b = int(np.flatnonzero((val == best) & (first == a))[-1])
    return a, b


# ------------------------------------------------------------------------------------ checking
def _check(d: Detections, name: str) -> None:
    """Detections consistent with their frame count, or a ValueError naming the video."""
    f, n = d.num_frames, len(d)
    if f < 0:
        raise ValueError(f"video {name}: num_frames is {f}")
    if n and (int(d.frame.min()) < 0 or int(d.frame.max()) >= f):
        raise ValueError(
            f"video {name}: detections on frames [{int(d.frame.min())}, {int(d.frame.max())}] "
            f"but the video has {f} frames (0-based frames must be < {f})"
        )
    counts = np.bincount(d.frame, minlength=f) if n else np.zeros(f, np.int64)
    if d.frame_ptr.shape != (f + 1,) or not np.array_equal(np.diff(d.frame_ptr), counts):
        raise ValueError(
            f"video {name}: frame_ptr does not match frame/num_frames={f} (changed after "
            "construction? build a new Detections)"
        )
    if n and np.any(np.diff(d.frame) < 0):
        raise ValueError(f"video {name}: frames are not sorted")
    if d.boxes.shape != (n, 4) or not np.all(np.isfinite(d.boxes)):
        raise ValueError(f"video {name}: boxes must be finite float[{n}, 4]")


def _groups(dets: Sequence[Detections], cache_bytes: int) -> list[list[int]]:
    """Consecutive video groups whose padded λ·IoU table ``V·(F_max−1)·B_max²·8`` bytes fits
    ``cache_bytes`` (a video that alone does not fit forms its own group)."""
    groups: list[list[int]] = []
    cur: list[int] = []
    fmax = bmax = 0
    for v, d in enumerate(dets):
        f = d.num_frames
        b = int(d.per_frame_counts().max()) if f else 0
        nf, nb = max(fmax, f), max(bmax, b, 1)
        if cur and (len(cur) + 1) * max(nf - 1, 0) * nb * nb * 8 > cache_bytes:
            groups.append(cur)
            cur, nf, nb = [], f, max(b, 1)
        cur.append(v)
        fmax, bmax = nf, nb
    if cur:
        groups.append(cur)
    return groups


# -------------------------------------------------------------------------------------- linking
def _pad(
    dets: Sequence[Detections], link: Sequence[np.ndarray]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Padded tables: boxes float64[V, F, B, 5] (x1, y1, x2, y2, area), scores float64[V, F, B]
    (-inf = no box), nf int64[V]. Slots keep the Detections row order within each frame."""
    nf = np.array([d.num_frames for d in dets], np.int64)
    F = max(int(nf.max()), 1)
    B = max([int(d.per_frame_counts().max()) for d in dets if d.num_frames] + [1])
    box = np.zeros((len(dets), F, B, 5))
    s = np.full((len(dets), F, B), -np.inf)
    for v, (d, sv) in enumerate(zip(dets, link)):
        if not len(d):
            continue
        slot = np.arange(len(d)) - d.frame_ptr[d.frame]  # [N] position within its frame
        b = d.boxes.astype(np.float64)  # [N, 4]
        box[v, d.frame, slot, :4] = b
        # same operation order as the twin: (x2 - x1) * (y2 - y1), float64
        box[v, d.frame, slot, 4] = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
        s[v, d.frame, slot] = sv
    return box, s, nf


def _pair_weights(xp: Any, a: Any, b: Any, iou_weight: float, min_iou: float) -> Any:
    """λ·IoU of every box of ``a`` [..., B, 5] with every box of ``b`` [..., B, 5] -> [..., B, B]
    (row = box of ``a``), -inf where ``IoU < min_iou``; float64 in the twin's operation order.

    IoU is symmetric bit for bit (max/min and the area sum commute), so the linker calls it with
    ``a`` = frame t+1 and ``b`` = frame t: the DP then reduces over the contiguous last axis.
    """

    def clamp_min_(x: Any, v: float) -> None:  # in place: this runs on V*F*B*B elements
        if xp is np:
            np.maximum(x, v, out=x)
        else:
            x.clamp_(min=v)

    iw = xp.minimum(a[..., :, None, 2], b[..., None, :, 2])  # [..., B, B]
    iw -= xp.maximum(a[..., :, None, 0], b[..., None, :, 0])
    clamp_min_(iw, 0.0)
    ih = xp.minimum(a[..., :, None, 3], b[..., None, :, 3])
    ih -= xp.maximum(a[..., :, None, 1], b[..., None, :, 1])
    clamp_min_(ih, 0.0)
    iou = iw
    iou *= ih  # intersection
    union = a[..., :, None, 4] + b[..., None, :, 4]
    union -= iou
    clamp_min_(union, _TINY)
    iou /= union
    w = iou_weight * iou
    if min_iou > 0:  # IoU >= 0 always, so min_iou <= 0 forbids nothing
        w = xp.where(iou >= min_iou, w, -np.inf)
    return w


def _link_group(
    dets: Sequence[Detections],
    link: Sequence[np.ndarray],
    num_tubes: int,
    iou_weight: float,
    min_iou: float,
    trim_thresh: float | None,
    backend: str,
    dev: torch.device | None,
    cache_bytes: int,
) -> list[list[tuple[int, np.ndarray]]]:
    """K Viterbi passes over one group of videos. Returns per video (first frame, slots) per tube."""
    box_np, s_np, nf = _pad(dets, link)
    V, F, B = s_np.shape
    xp: Any = np
    if backend != "numpy":
        import torch  # the optional backend's dependency (see the imports)

        xp = torch
    box: Any = box_np if xp is np else xp.from_numpy(box_np).to(dev)  # [V, F, B, 5]
    s: Any = s_np if xp is np else xp.from_numpy(s_np).to(dev)  # [V, F, B] -inf = absent/used

    cache: Any = None  # [V, F-1, B(j, frame t+1), B(i, frame t)] λ·IoU between consecutive frames
    if F > 1 and V * (F - 1) * B * B * 8 <= cache_bytes:
        cache = xp.empty((V, F - 1, B, B), dtype=box.dtype, **({} if xp is np else {"device": dev}))
        step = max(1, _CHUNK // (V * B * B))  # frames per chunk
        for t0 in range(0, F - 1, step):
            t1 = min(F - 1, t0 + step)
            cache[:, t0:t1] = _pair_weights(
                xp, box[:, t0 + 1 : t1 + 1], box[:, t0:t1], iou_weight, min_iou
            )
        box = None  # no longer needed

    tubes: list[list[tuple[int, np.ndarray]]] = [[] for _ in range(V)]
    left = np.array([len(d) for d in dets], np.int64)  # [V] boxes not yet used
    ids = np.arange(V)  # [R] video of each row of the (compacted) tables
    active = left > 0  # [R]
    while active.any():
        if active.sum() <= len(ids) // 2:  # drop finished videos from the tables (amortised)
            keep = np.flatnonzero(active)
            sel = keep if xp is np else xp.from_numpy(keep).to(dev)
            s = s[sel]
            cache = None if cache is None else cache[sel]
            box = None if box is None else box[sel]
            ids, active = ids[keep], active[keep]
        fmax = int(nf[ids[active]].max())
        forward: Any = _forward_numpy if xp is np else _forward_torch
        back, end_t, end_j, end_val = forward(s, cache, box, fmax, iou_weight, min_iou)
        for r in np.flatnonzero(active).tolist():
            v = int(ids[r])
            if end_val[r] == -np.inf:  # cannot happen while left[v] > 0; kept as a guard
                active[r] = False
                continue
            t1, j = int(end_t[r]), int(end_j[r])
            slots = [j]
            bv = back[r]  # [fmax, B] int32
            t = t1
            while bv[t, j] >= 0:  # O(path length) scalar walk; the DP itself is vectorised
                j = int(bv[t, j])
                t -= 1
                slots.append(j)
            path = np.array(slots[::-1], np.int64)  # [L] slots of frames t..t1
            frames = np.arange(t, t1 + 1)
            if xp is np:
                s[r, frames, path] = -np.inf  # rule 3: the whole path is used
            else:
                fi, pi = xp.from_numpy(frames).to(dev), xp.from_numpy(path).to(dev)
                s[r, fi, pi] = -xp.inf
            left[v] -= len(path)
            a, b = 0, len(path) - 1
            if trim_thresh is not None:
                d = dets[v]
                a, b = trim_path(link[v][d.frame_ptr[frames] + path], trim_thresh)
            tubes[v].append((t + a, path[a : b + 1]))
            if len(tubes[v]) == num_tubes or left[v] == 0:
                active[r] = False
    return tubes


def _forward_numpy(
    s: np.ndarray,
    cache: np.ndarray | None,
    box: np.ndarray | None,
    fmax: int,
    iou_weight: float,
    min_iou: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One DP pass (rules 1-2) over frames 0..fmax-1 of every row, vectorised over rows and boxes.

    Args: ``s`` float64[R, F, B] scores (-inf = no box), ``cache`` [R, F-1, B, B] λ·IoU (j, i) or
    None to compute each step from ``box`` [R, F, B, 5].

    Returns backpointers int32[R, fmax, B] (-1 = the path starts here), and per row the end frame,
    end slot and best ``E`` (-inf = no box left).
    """
    R, _, B = s.shape
    back = np.full((R, fmax, B), -1, np.int32)
    dall = np.empty((R, fmax, B))  # D_t(j), kept for the end search
    dall[:, 0] = s[:, 0]  # a box in frame 0 starts its path
    rows = np.arange(R * B)  # gathering m by index is several times faster than w.max(-1) here
    for t in range(1, fmax):
        if cache is not None:
            wt = cache[:, t - 1]  # [R, B(j), B(i)]
        else:
            wt = _pair_weights(np, box[:, t], box[:, t - 1], iou_weight, min_iou)  # type: ignore[index]
        w = dall[:, t - 1, None, :] + wt  # [R, B(j), B(i)]: path to i, then the link i -> j
        pred = w.argmax(-1)  # [R, B(j)] first maximum = lowest Detections row
        m = w.reshape(R * B, B)[rows, pred.reshape(-1)].reshape(R, B)  # [R, B(j)] its value
        # max-subarray rule: keep a predecessor that adds >= 0 (-inf, no predecessor, adds 0);
        # maximum(m, 0) is where(m >= 0, m, 0); absent boxes stay -inf.
        np.add(s[:, t], np.maximum(m, 0.0), out=dall[:, t])
        back[:, t] = np.where(m >= 0, pred, -1)
    # End: max D over (frame, box); frames reversed so that the first maximum is the latest frame,
    # then the lowest row within it.
    flat = dall[:, ::-1].reshape(R, -1)  # [R, fmax*B]
    i = flat.argmax(1)  # [R]
    return back, fmax - 1 - i // B, i % B, flat[np.arange(R), i]


def _forward_torch(
    s: torch.Tensor,
    cache: torch.Tensor | None,
    box: torch.Tensor | None,
    fmax: int,
    iou_weight: float,
    min_iou: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """:func:`_forward_numpy` on torch tensors (any device); results come back as numpy."""
    import torch  # the optional backend's dependency (see the imports)

    R, _, B = s.shape
    back = torch.full((R, fmax, B), -1, dtype=torch.int32, device=s.device)
    dall = torch.empty((R, fmax, B), dtype=s.dtype, device=s.device)
    dall[:, 0] = s[:, 0]
    for t in range(1, fmax):
        if cache is not None:
            wt = cache[:, t - 1]  # [R, B(j), B(i)]
        else:
            wt = _pair_weights(torch, box[:, t], box[:, t - 1], iou_weight, min_iou)  # type: ignore[index]
        w = dall[:, t - 1, None, :] + wt  # [R, B(j), B(i)]
        pred = torch.argmax(w, -1)  # [R, B(j)] first maximum
        m = torch.gather(w, -1, pred[..., None])[..., 0]  # [R, B(j)]
        dall[:, t] = s[:, t] + m.clamp(min=0.0)
        back[:, t] = torch.where(m >= 0, pred, -1)
    flat = dall.flip(1).reshape(R, -1)  # [R, fmax*B]
    i = torch.argmax(flat, 1)  # [R]
    val = flat[torch.arange(R, device=s.device), i]
    i_np = i.cpu().numpy()
    return back.cpu().numpy(), fmax - 1 - i_np // B, i_np % B, val.cpu().numpy()


# --------------------------------------------------------------------------------------- linker
class ViterbiLinker(BatchedLinker):
    """Viterbi linking (Gkioxari & Malik 2015): ``num_tubes`` tubes per video from the boxes'
    prior scores; see :mod:`wsal.linking.viterbi` for the objective and rules."""

    name = "viterbi"

    def __init__(
        self,
        num_tubes: int = 10,
        iou_weight: float = 1.0,
        min_iou: float = 0.0,
        trim: bool = False,
        trim_thresh: float = 0.5,
        batch_videos: int = 64,
        cache_mb: int = 256,
        device: str | None = None,
        progress: bool = True,
    ) -> None:
        if num_tubes < 1:
            raise ValueError(f"num_tubes must be >= 1, got {num_tubes}")
        if batch_videos < 1:
            raise ValueError(f"batch_videos must be >= 1, got {batch_videos}")
        if cache_mb < 0:
            raise ValueError(f"cache_mb must be >= 0, got {cache_mb}")
        self.num_tubes = num_tubes
        self.iou_weight = iou_weight
        self.min_iou = min_iou
        self.trim = trim
        self.trim_thresh = trim_thresh
        self.batch_videos = batch_videos
        self.cache_mb = cache_mb  # λ·IoU table per group of videos (speed only, not in cache_key)
        self.device = device
        self.progress = progress

    def params(self) -> dict[str, Any]:
        return {
            "num_tubes": self.num_tubes,
            "iou_weight": self.iou_weight,
            "min_iou": self.min_iou,
            "trim": self.trim,
            # the threshold shapes nothing without trimming
            "trim_thresh": self.trim_thresh if self.trim else None,
        }

    def link_batch(self, dets: list[Detections], names: list[str]) -> list[Tubes]:
        return viterbi_batch(
            dets,
            self.num_tubes,
            self.iou_weight,
            self.min_iou,
            self.trim,
            self.trim_thresh,
            device=self.device,
            names=names,
            cache_bytes=self.cache_mb << 20,
        )
