"""Temporal Prim: link per-frame boxes into video-length tubes (STIL §3.2, Eq. 4).

Conventions: boxes are ``xyxy`` float pixels, frames are 0-based, one :class:`Detections` per video
(rows sorted by frame), one :class:`Tubes` per video out.

The algorithm, as STIL §3.2 describes it, for one video and scores ``s`` (priors or model scores):

1. Start a tube at the highest-scoring remaining box with ``s > min_score`` (ties: lowest row).
2. Edges (Eq. 4) join boxes of consecutive frames whose continuous-coordinate IoU (areas without
   +1) is ``>= min_iou`` (0.1 in the paper); the weight is ``s(Bi) + s(Bj)``. Only boxes with
   ``s > min_score`` that no earlier tube used can be linked ("no boxes with prior support").
3. The forward candidates are the edges from the tube's last box into the next frame, the backward
   ones from its first box into the previous frame. The tube grows along the larger of the two best
   edges (forward on ties); within a direction the best edge wins (ties: lowest row). A direction
   stops at the video boundary or when it has no edge; the tube ends when both have stopped.
4. For ``K`` tubes, remove the tube's boxes and repeat; stop early when no box with
   ``s > min_score`` remains (so fewer than ``K`` tubes is possible).

**Why the fast version never compares the two directions.** The forward candidates depend only on
the tube's last box, the backward ones only on its first box, and the set of linkable boxes does
not change while one tube grows (its own boxes lie in frames the two frontiers never look at
again). So the forward chain is the same whichever order the two directions are interleaved in,
and so is the backward chain: the finished tube is *start + full forward chain + full backward
chain*, and the "larger edge first" rule of step 3 only fixes the order in which boxes are added,
never which boxes are added. The vectorised linker therefore advances both frontiers of every
video by one frame per step (O(b) work per frontier, the paper's complexity), and the loop twin in
``tests/test_temporal_prim.py`` that follows step 3 literally checks that the tubes are identical.

Speed: all videos of a call are padded into one ``[V*F_max, B_max]`` table (``B_max`` = most boxes
in any frame) and advanced in lock-step, one vectorised step per frame over the ``2V`` frontiers;
a video starts its next tube as soon as its current one ends, independently of the others.
Memory: ``(V*F_max + 2) * B_max * 48`` bytes (6 float64 per padded box).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from wsal.linking.base import BatchedLinker
from wsal.structures import Detections, Tubes

if TYPE_CHECKING:  # torch is imported by the torch backend only: numpy linking starts faster
    import torch

__all__ = ["TemporalPrimLinker", "temporal_prim", "temporal_prim_batch"]

# Columns of the padded box table: x1, y1, x2, y2, area, linking score (-inf = not linkable).
_X1, _Y1, _X2, _Y2, _AREA, _S = range(6)
# union is clamped to this before dividing: 0/tiny = 0 for two empty boxes (and never changes a
# real union, whose smallest non-zero value is a product of float32 differences, >> 1e-300).
_TINY = float(np.finfo(np.float64).tiny)


def temporal_prim(
    dets: Detections,
    num_tubes: int,
    min_iou: float = 0.1,
    min_score: float = 0.0,
    scores: np.ndarray | None = None,
    device: str | torch.device | None = None,
    backend: Literal["auto", "numpy", "torch"] = "auto",
) -> Tubes:
    """Link the boxes of one video into at most ``num_tubes`` tubes (STIL §3.2, Eq. 4).

    Args:
        dets: the video's boxes: ``frame`` int64[N] 0-based and sorted, ``boxes`` float32[N, 4]
            xyxy pixels, ``scores`` float32[N] priors.
        num_tubes: K, the most tubes to link.
        min_iou: an edge needs IoU ``>=`` this between boxes of consecutive frames (paper: 0.1).
        min_score: only boxes with score ``>`` this start or join a tube.
        scores: optional float[N] scores to link with instead of ``dets.scores`` (e.g. STIL's
            model scores at test time).
        device, backend: see :func:`temporal_prim_batch`.

    Returns:
        Tubes with ``k <= K`` rows, in linking order: ``boxes`` float32[k, F, 4] (zeros where not
        valid), ``valid`` bool[k, F], ``box_index`` int64[k, F] rows of ``dets`` (-1 where not
        valid), ``scores`` float32[k] = mean linking score of each tube's boxes, ``labels`` -1.
    """
    return temporal_prim_batch(
        [dets],
        num_tubes,
        min_iou,
        min_score,
        None if scores is None else [scores],
        device,
        backend,
    )[0]


def temporal_prim_batch(
    dets: Sequence[Detections],
    num_tubes: int,
    min_iou: float = 0.1,
    min_score: float = 0.0,
    scores: Sequence[np.ndarray | None] | None = None,
    device: str | torch.device | None = None,
    backend: Literal["auto", "numpy", "torch"] = "auto",
) -> list[Tubes]:
    """Temporal Prim (STIL §3.2) on many videos at once; same result as one call per video.

    Args:
        dets: V videos' Detections (``frame`` int64[N_v] 0-based sorted, ``boxes`` float32[N_v, 4]
            xyxy pixels, ``scores`` float32[N_v]).
        num_tubes: K, the most tubes per video.
        min_iou: IoU threshold of an edge (Eq. 4: 0.1), continuous coordinates, ``>=``.
        min_score: boxes with score ``<= min_score`` are never linked.
        scores: optional per-video float[N_v] linking scores replacing ``dets[v].scores``
            (None entries keep the priors).
        device: where the torch backend runs (e.g. ``"cuda"``); None = CPU.
        backend: ``"numpy"`` (CPU, the fastest there: the per-step arrays are small),
            ``"torch"`` (any device), or ``"auto"``: numpy on CPU, torch elsewhere. A GPU pays off
            only with many videos per call, as each step is a few dozen tiny kernels.

    Returns:
        One Tubes per video (see :func:`temporal_prim`), tubes in linking order.
    """
    if num_tubes < 0:
        raise ValueError(f"num_tubes must be >= 0, got {num_tubes}")
    link = linking_scores(dets, scores)
    impl = resolve_backend(backend, device)

    table, geom = _pad(dets, link, min_score)
    run = _run_numpy if impl == "numpy" else _run_torch
    found = run(table, geom, num_tubes, float(min_iou), device)  # per video [(frame0, slots)]
    return [_to_tubes(d, s, f) for d, s, f in zip(dets, link, found)]


# -------------------------------------------------------------------------------------- padding
class _Geom:
    """Where each video lives in the padded table: row ``1 + v*F_max + f`` is frame f of video v.

    Rows 0 and ``V*F_max + 1`` are empty sentinels, so a frontier that steps one row off either
    end of the table still indexes a valid (empty) row.
    """

    def __init__(self, num_frames: np.ndarray, fmax: int, b: int) -> None:
        self.V = len(num_frames)
        self.nf = num_frames  # int64[V]
        self.F = fmax
        self.B = b
        self.first = 1 + np.arange(self.V, dtype=np.int64) * fmax  # int64[V] row of frame 0
        self.last = self.first + num_frames - 1  # int64[V] row of the last frame


def _pad(
    dets: Sequence[Detections], link: list[np.ndarray], min_score: float
) -> tuple[np.ndarray, _Geom]:
    """float64[V*F_max + 2, B_max, 6] table of x1, y1, x2, y2, area, linking score.

    The score column is -inf for padding and for boxes with score <= min_score, so a single
    comparison against -inf later tells "linkable" (and used boxes are set to -inf the same way).
    """
    nf = np.array([d.num_frames for d in dets], dtype=np.int64)
    fmax = int(nf.max()) if len(nf) else 0
    bmax = max([int(d.per_frame_counts().max()) for d in dets if d.num_frames] + [1])
    geom = _Geom(nf, fmax, bmax)
    table = np.zeros((len(dets) * fmax + 2, bmax, 6))
    table[..., _S] = -np.inf
    flat = table.reshape(-1, 6)  # [rows*B, 6] view
    for v, (d, s) in enumerate(zip(dets, link)):
        if not len(d):
            continue
        slot = np.arange(len(d)) - d.frame_ptr[d.frame]  # [N] position within its frame
        pos = (geom.first[v] + d.frame) * bmax + slot  # [N] flat position in the table
        b = d.boxes.astype(np.float64)  # [N, 4]
        flat[pos, :4] = b
        # Same operation order as the IoU below and the twin: (x2 - x1) * (y2 - y1), float64.
        flat[pos, _AREA] = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
        flat[pos, _S] = np.where(s > min_score, s, -np.inf)
    return table, geom


def _start(table: np.ndarray, geom: _Geom, v: int) -> tuple[int, int] | None:
    """(row, slot) of video v's highest linkable score, lowest Detections row on ties; None if none.

    Rows are frame-major and slots keep Detections order, so the flat argmax of the video's
    ``[F, B]`` block returns the lowest Detections row among equal maxima.
    """
    block = table[geom.first[v] : geom.last[v] + 1, :, _S]  # [F_v, B] view
    if not block.size:
        return None
    i = int(block.argmax())
    if block.flat[i] == -np.inf:
        return None
    return int(geom.first[v]) + i // geom.B, i % geom.B


# --------------------------------------------------------------------------------- numpy linker
def _run_numpy(
    table: np.ndarray, geom: _Geom, num_tubes: int, min_iou: float, device: object
) -> list[list[tuple[int, np.ndarray]]]:
    """Grow every video's tubes in lock-step. Frontier q < V is video q's forward end, q >= V
    video q-V's backward end; each step moves every live frontier one frame (STIL §3.2).

    Returns per video a list of (first frame, slots int64[len]) per tube, in linking order.
    """
    V, B = geom.V, geom.B
    Q = 2 * V
    flat_s = table.reshape(-1, 6)[:, _S]  # [rows*B] view of the score column (used -> -inf)
    choice = np.zeros(table.shape[0], np.int64)  # [rows] slot taken in each row by the current tube
    step = np.repeat(np.array([1, -1], np.int64), V)  # [Q] forward frontiers, then backward
    lo = np.tile(geom.first, 2)  # [Q] first row of the frontier's video
    hi = np.tile(geom.last, 2)  # [Q] last row
    t = np.zeros(Q, np.int64)  # [Q] row each frontier looks at next (one past its end box)
    anc = np.zeros((Q, 6))  # [Q, 6] the frontier's end box; score -inf = frontier stopped
    anc[:, _S] = -np.inf
    rows = np.arange(Q)
    tubes: list[list[tuple[int, np.ndarray]]] = [[] for _ in range(V)]
    live = np.ones(V, bool)  # [V] video still linking
    in_tube = np.zeros(V, bool)

    def restart(v: int) -> None:
        """Close video v's finished tube (if any) and start the next, until one has a frontier."""
        while live[v] and anc[v, _S] == -np.inf and anc[v + V, _S] == -np.inf:
            if in_tube[v]:  # rows strictly between the two frontiers hold the tube
                r0, r1 = t[v + V] + 1, t[v]
                tubes[v].append((int(r0 - geom.first[v]), choice[r0:r1].copy()))
                in_tube[v] = False
            start = _start(table, geom, v) if len(tubes[v]) < num_tubes else None
            if start is None:
                live[v] = False
                return
            r, b = start
            choice[r] = b
            box = table[r, b].copy()  # [6]
            table[r, b, _S] = -np.inf  # used
            in_tube[v] = True
            t[v], t[v + V] = r + 1, r - 1
            anc[v] = anc[v + V] = box
            if r + 1 > geom.last[v]:
                anc[v, _S] = -np.inf
            if r - 1 < geom.first[v]:
                anc[v + V, _S] = -np.inf

    for v in range(V):
        restart(v)
    dummy = table.shape[0] - 1  # an empty sentinel row: writes for non-moving frontiers land here
    while live.any():
        g = table[t]  # [Q, B, 6] candidates in the next frame of each frontier
        # Continuous-coordinate IoU of each candidate with its frontier's end box, float64.
        ix1 = np.maximum(g[..., _X1], anc[:, _X1, None])  # [Q, B]
        iy1 = np.maximum(g[..., _Y1], anc[:, _Y1, None])
        iw = np.minimum(g[..., _X2], anc[:, _X2, None])
        ih = np.minimum(g[..., _Y2], anc[:, _Y2, None])
        np.subtract(iw, ix1, out=iw)
        np.maximum(iw, 0.0, out=iw)
        np.subtract(ih, iy1, out=ih)
        np.maximum(ih, 0.0, out=ih)
        np.multiply(iw, ih, out=iw)  # intersection
        union = g[..., _AREA] + anc[:, _AREA, None]  # [Q, B]
        np.subtract(union, iw, out=union)
        np.maximum(union, _TINY, out=union)
        np.divide(iw, union, out=iw)  # IoU
        # Eq. 4: weight s(end) + s(candidate); -inf when IoU < min_iou, the candidate is not
        # linkable, or the frontier has stopped (its end score is -inf).
        w = np.where(iw >= min_iou, g[..., _S] + anc[:, _S, None], -np.inf)  # [Q, B]
        best = w.argmax(axis=1)  # [Q] first maximum = lowest Detections row
        found = w[rows, best] > -np.inf  # [Q]
        tf = np.where(found, t, dummy)  # [Q]
        flat_s[tf * B + best] = -np.inf  # the chosen boxes are used
        choice[tf] = best
        anc = g[rows, best]  # [Q, 6] new end boxes (copies)
        nt = t + step  # [Q]
        t = np.where(found, nt, t)
        moving = found & (nt >= lo) & (nt <= hi)  # [Q] frontier still inside its video
        anc[~moving, _S] = -np.inf
        busy = moving[:V] | moving[V:]  # [V]
        if (busy != live).any():
            for idle in np.flatnonzero(busy != live).tolist():
                restart(idle)
    return tubes


# --------------------------------------------------------------------------------- torch linker
def _run_torch(
    table_np: np.ndarray,
    geom: _Geom,
    num_tubes: int,
    min_iou: float,
    device: str | torch.device | None,
) -> list[list[tuple[int, np.ndarray]]]:
    """The numpy linker's step on torch tensors (any device); starts and bookkeeping on the CPU."""
    import torch  # the optional backend's dependency (see the imports)

    dev = torch.device(device) if device is not None else torch.device("cpu")
    V, B = geom.V, geom.B
    Q = 2 * V
    table = torch.from_numpy(table_np).to(dev)  # [rows, B, 6]
    flat_s = table.view(-1, 6)[:, _S]  # [rows*B] view
    choice = torch.zeros(table.shape[0], dtype=torch.int64, device=dev)
    step = torch.tensor([1] * V + [-1] * V, dtype=torch.int64, device=dev)  # [Q]
    lo = torch.from_numpy(np.tile(geom.first, 2)).to(dev)  # [Q]
    hi = torch.from_numpy(np.tile(geom.last, 2)).to(dev)  # [Q]
    t = torch.zeros(Q, dtype=torch.int64, device=dev)
    anc = torch.zeros(Q, 6, dtype=torch.float64, device=dev)
    anc[:, _S] = -torch.inf
    rows = torch.arange(Q, device=dev)
    neg_inf = torch.tensor(-torch.inf, dtype=torch.float64, device=dev)
    dummy = table.shape[0] - 1
    tubes: list[list[tuple[int, np.ndarray]]] = [[] for _ in range(V)]
    live = np.ones(V, bool)
    in_tube = np.zeros(V, bool)

    def restart(v: int) -> None:
        while live[v] and anc[v, _S] == -torch.inf and anc[v + V, _S] == -torch.inf:
            if in_tube[v]:
                r0, r1 = int(t[v + V]) + 1, int(t[v])
                slots = choice[r0:r1].cpu().numpy().copy()
                tubes[v].append((int(r0 - geom.first[v]), slots))
                in_tube[v] = False
            start = None
            if len(tubes[v]) < num_tubes:
                block = table[geom.first[v] : geom.last[v] + 1, :, _S].reshape(-1)  # [F_v*B]
                if block.numel():
                    i = int(torch.argmax(block))  # first maximum = lowest Detections row
                    if block[i] > -torch.inf:
                        start = int(geom.first[v]) + i // B, i % B
            if start is None:
                live[v] = False
                return
            r, b = start
            choice[r] = b
            box = table[r, b].clone()
            table[r, b, _S] = -torch.inf
            in_tube[v] = True
            t[v], t[v + V] = r + 1, r - 1
            anc[v] = box
            anc[v + V] = box
            if r + 1 > geom.last[v]:
                anc[v, _S] = -torch.inf
            if r - 1 < geom.first[v]:
                anc[v + V, _S] = -torch.inf

    for v in range(V):
        restart(v)
    while live.any():
        g = table.index_select(0, t)  # [Q, B, 6]
        ix1 = torch.maximum(g[..., _X1], anc[:, _X1, None])  # [Q, B]
        iy1 = torch.maximum(g[..., _Y1], anc[:, _Y1, None])
        iw = (torch.minimum(g[..., _X2], anc[:, _X2, None]) - ix1).clamp_min_(0.0)
        ih = (torch.minimum(g[..., _Y2], anc[:, _Y2, None]) - iy1).clamp_min_(0.0)
        inter = iw * ih
        union = (g[..., _AREA] + anc[:, _AREA, None] - inter).clamp_min_(_TINY)
        iou = inter / union
        w = torch.where(iou >= min_iou, g[..., _S] + anc[:, _S, None], neg_inf)  # Eq. 4
        best = torch.argmax(w, dim=1)  # [Q] first maximum
        found = w[rows, best] > -torch.inf
        tf = torch.where(found, t, dummy)
        flat_s[tf * B + best] = -torch.inf
        choice[tf] = best
        anc = g[rows, best]  # [Q, 6]
        nt = t + step
        t = torch.where(found, nt, t)
        moving = found & (nt >= lo) & (nt <= hi)
        anc[~moving, _S] = -torch.inf
        busy = (moving[:V] | moving[V:]).cpu().numpy()
        if (busy != live).any():
            for idle in np.flatnonzero(busy != live).tolist():
                restart(idle)
    return tubes


def linking_scores(
    dets: Sequence[Detections],
    scores: Sequence[np.ndarray | None] | None,
    names: Sequence[str] | None = None,
) -> list[np.ndarray]:
    """float64[N_v] linking score per video: ``scores[v]`` or the detector's, checked to be finite
    and one per box (errors name the video: ``names[v]``, else its position)."""
    if scores is not None and len(scores) != len(dets):
        raise ValueError(f"got {len(scores)} score arrays for {len(dets)} videos")
    link = []
    for v, d in enumerate(dets):
        name = names[v] if names is not None else f"#{v}"
        s = d.scores if scores is None or scores[v] is None else scores[v]
        s = np.asarray(s, dtype=np.float64).reshape(-1)
        if s.shape != (len(d),):
            raise ValueError(f"video {name}: scores has shape {s.shape}, expected ({len(d)},)")
        if not np.all(np.isfinite(s)):
            raise ValueError(f"video {name}: linking scores must be finite")
        link.append(s)
    return link


def resolve_backend(backend: str, device: str | torch.device | None) -> str:
    """``auto`` -> numpy on CPU, torch elsewhere; anything but numpy/torch is an error."""
    if backend == "auto":
        backend = "numpy" if device is None or _device_type(device) == "cpu" else "torch"
    if backend not in ("numpy", "torch"):
        raise ValueError(f"unknown backend {backend!r}")
    return backend


def _device_type(device: str | torch.device) -> str:
    """``torch.device(device).type`` without importing torch: ``"cuda:1"`` -> ``"cuda"``."""
    return str(device).split(":", 1)[0]


# ----------------------------------------------------------------------------------------- out
def _to_tubes(dets: Detections, link: np.ndarray, found: list[tuple[int, np.ndarray]]) -> Tubes:
    """Tubes from (first frame, slot per frame) pairs; slots index within each frame's rows."""
    k, f = len(found), dets.num_frames
    box_index = np.full((k, f), -1, np.int64)
    for i, (f0, slots) in enumerate(found):
        frames = f0 + np.arange(len(slots))
        box_index[i, frames] = dets.frame_ptr[frames] + slots
    valid = box_index >= 0  # [k, F]
    boxes = np.zeros((k, f, 4), np.float32)
    boxes[valid] = dets.boxes[box_index[valid]]
    score = np.array([link[box_index[i, valid[i]]].mean() for i in range(k)], np.float64)
    return Tubes(boxes, valid, box_index, score.astype(np.float32), np.full(k, -1, np.int64))


# --------------------------------------------------------------------------------------- linker
class TemporalPrimLinker(BatchedLinker):
    """Temporal Prim (STIL §3.2): ``num_tubes`` tubes per video from the boxes' prior scores."""

    name = "temporal_prim"

    def __init__(
        self,
        num_tubes: int = 10,
        min_iou: float = 0.1,
        min_score: float = 0.0,
        batch_videos: int = 64,
        device: str | None = None,
        progress: bool = True,
    ) -> None:
        if num_tubes < 1:
            raise ValueError(f"num_tubes must be >= 1, got {num_tubes}")
        self.num_tubes = num_tubes
        self.min_iou = min_iou
        self.min_score = min_score
        self.batch_videos = batch_videos
        self.device = device
        self.progress = progress

    def params(self) -> dict[str, Any]:
        return {"num_tubes": self.num_tubes, "min_iou": self.min_iou, "min_score": self.min_score}

    def link_batch(self, dets: list[Detections], names: list[str]) -> list[Tubes]:
        return temporal_prim_batch(
            dets, self.num_tubes, self.min_iou, self.min_score, device=self.device
        )
