"""A literal Python transcription of STIL §3.2 (Temporal Prim), as a standalone command: the
baseline that ``bench/bench_linking_cli.py`` times ``python -m wsal.linking temporal_prim``
against, both as whole processes (start-up included).

    python bench/literal_temporal_prim.py DETECTIONS.npz OUT.npz NUM_TUBES [MIN_IOU]

Reads a detections store (``video``, ``frame``, ``boxes``, ``scores``), links up to NUM_TUBES
tubes per video the way the paper describes — start at the highest-scoring unused box; extend
forward or backward by whichever best edge (IoU >= MIN_IOU into the next / previous frame,
weight s(Bi) + s(Bj)) is larger, until neither side has one — with plain Python loops over each
frame's boxes (boxes are indexed by frame once: the obvious way to write it), and saves each
tube's ``box_index`` rows. Imports numpy only.
"""

from __future__ import annotations

import sys

import numpy as np


def iou(a: list[float], b: list[float]) -> float:
    iw = min(a[2], b[2]) - max(a[0], b[0])
    ih = min(a[3], b[3]) - max(a[1], b[1])
    if iw <= 0 or ih <= 0:
        return 0.0
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def link_video(
    frame: list[int], boxes: list[list[float]], s: list[float], k: int, min_iou: float
) -> list[list[int]]:
    n = len(frame)
    nf = max(frame) + 1 if frame else 0
    by_frame: list[list[int]] = [[] for _ in range(nf)]
    for j in range(n):
        by_frame[frame[j]].append(j)
    used = [False] * n

    def best_edge(i: int, f: int) -> tuple[float, int] | None:
        if f < 0 or f >= nf:
            return None
        best = None
        for j in by_frame[f]:
            if not used[j] and iou(boxes[i], boxes[j]) >= min_iou:
                w = s[i] + s[j]
                if best is None or w > best[0]:
                    best = (w, j)
        return best

    tubes = []
    for _ in range(k):
        start = None
        for j in range(n):
            if not used[j] and (start is None or s[j] > s[start]):
                start = j
        if start is None:
            break
        used[start] = True
        head = tail = start
        tube = [start]
        fwd_open = bwd_open = True
        while True:
            fwd = best_edge(head, frame[head] + 1) if fwd_open else None
            bwd = best_edge(tail, frame[tail] - 1) if bwd_open else None
            fwd_open, bwd_open = fwd is not None, bwd is not None
            if fwd is None and bwd is None:
                break
            if bwd is None or (fwd is not None and fwd[0] >= bwd[0]):
                j = head = fwd[1]  # type: ignore[index]
            else:
                j = tail = bwd[1]
            used[j] = True
            tube.append(j)
        tubes.append(tube)
    return tubes


def main() -> None:
    src, out, k = sys.argv[1], sys.argv[2], int(sys.argv[3])
    min_iou = float(sys.argv[4]) if len(sys.argv) > 4 else 0.1
    with np.load(src, allow_pickle=False) as z:
        video, frame, boxes, scores = z["video"], z["frame"], z["boxes"], z["scores"]
    tubes_of: dict[str, list[list[int]]] = {}
    for v in dict.fromkeys(video.tolist()):
        rows = np.nonzero(video == v)[0]
        tubes_of[v] = link_video(
            frame[rows].tolist(), boxes[rows].tolist(), scores[rows].tolist(), k, min_iou
        )
    lengths = [len(t) for ts in tubes_of.values() for t in ts]
    np.savez(
        out,
        video=np.array([v for v, ts in tubes_of.items() for _ in ts], dtype=str),
        lengths=np.array(lengths, np.int64),
        box_index=np.array([j for ts in tubes_of.values() for t in ts for j in t], np.int64),
    )
    print(f"literal temporal prim: {len(tubes_of)} videos, {len(lengths)} tubes -> {out}")


if __name__ == "__main__":
    main()
