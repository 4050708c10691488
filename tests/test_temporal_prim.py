"""Temporal Prim (STIL §3.2, Eq. 4): the vectorised linker against a literal loop twin."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from wsal.linking import temporal_prim, temporal_prim_batch
from wsal.structures import Detections, TubeDetections

# ------------------------------------------------------------------------------------ slow twin


def _iou(a: list[float], b: list[float]) -> float:
    """Continuous-coordinate IoU of two xyxy boxes (no +1)."""
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def twin(
    dets: Detections,
    num_tubes: int,
    min_iou: float = 0.1,
    min_score: float = 0.0,
    scores: np.ndarray | None = None,
) -> tuple[np.ndarray, list[float], list[list[int]]]:
    """Literal transcription of STIL §3.2. Returns (box_index [k, F], tube scores, the order in
    which each tube's boxes were added)."""
    n, nf = len(dets), dets.num_frames
    s = [float(x) for x in (dets.scores if scores is None else scores)]
    frame = [int(f) for f in dets.frame]
    boxes = [[float(c) for c in b] for b in dets.boxes]
    used = [False] * n

    def linkable(j: int) -> bool:
        return not used[j] and s[j] > min_score

    def best_edge(i: int, f: int) -> tuple[float, int] | None:
        """Best Eq. 4 edge from box i into frame f: (weight, row), lowest row on ties."""
        if f < 0 or f >= nf:
            return None
        best = None
        for j in range(n):
            if frame[j] == f and linkable(j) and _iou(boxes[i], boxes[j]) >= min_iou:
                w = s[i] + s[j]
                if best is None or w > best[0]:
                    best = (w, j)
        return best

    out, tube_scores, orders = [], [], []
    for _ in range(num_tubes):
        start = None
        for j in range(n):  # highest score, lowest row on ties
            if linkable(j) and (start is None or s[j] > s[start]):
                start = j
        if start is None:
            break
        used[start] = True
        head = tail = start
        order = [start]
        fwd_open = bwd_open = True
        while True:
            fwd = best_edge(head, frame[head] + 1) if fwd_open else None
            bwd = best_edge(tail, frame[tail] - 1) if bwd_open else None
            fwd_open, bwd_open = fwd is not None, bwd is not None
            if fwd is None and bwd is None:
                break
            if bwd is None or (fwd is not None and fwd[0] >= bwd[0]):  # forward on ties
                j = head = fwd[1]  # type: ignore[index]
            else:
                j = tail = bwd[1]
            used[j] = True
            order.append(j)
        row = np.full(nf, -1, np.int64)
        for j in order:
            row[frame[j]] = j
        out.append(row)
        tube_scores.append(sum(s[j] for j in order) / len(order))
        orders.append(order)
    box_index = np.stack(out) if out else np.zeros((0, nf), np.int64)
    return box_index, tube_scores, orders


# ---------------------------------------------------------------------------------- random cases


def random_video(rng: np.random.Generator) -> Detections:
    """Small video on a coarse grid, so IoU and score ties happen; some frames empty, some boxes
    with score <= 0, sometimes no box at all or a single frame."""
    nf = int(rng.choice([1, 2, 3, 7, 12]))
    if rng.random() < 0.1:
        return Detections.empty(nf)
    counts = rng.integers(0, 5, nf) * (rng.random(nf) > 0.2)  # [F] some frames empty
    frame = np.repeat(np.arange(nf), counts)
    n = len(frame)
    xy = rng.integers(0, 6, (n, 2)) * 2.0  # [N, 2]
    wh = rng.integers(1, 5, (n, 2)) * 2.0
    boxes = np.concatenate([xy, xy + wh], axis=1)  # [N, 4] xyxy
    scores = rng.choice([-0.5, 0.0, 0.25, 0.5, 0.5, 1.0], n)
    return Detections(frame, boxes, scores, nf)


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_matches_twin_on_random_videos(backend: str) -> None:
    rng = np.random.default_rng(0)
    for trial in range(25):
        videos = [random_video(rng) for _ in range(int(rng.integers(1, 9)))]
        k = int(rng.integers(0, 6))
        min_iou = float(rng.choice([0.0, 0.1, 0.3]))
        min_score = float(rng.choice([-1.0, 0.0, 0.3]))
        alt = None
        if trial % 3 == 0:  # model scores instead of priors (float64, some negative)
            alt = [np.round(rng.normal(size=len(d)), 1) for d in videos]
        fast = temporal_prim_batch(videos, k, min_iou, min_score, alt, backend=backend)
        for v, (d, tubes) in enumerate(zip(videos, fast)):
            ref, ref_scores, _ = twin(d, k, min_iou, min_score, None if alt is None else alt[v])
            np.testing.assert_array_equal(tubes.box_index, ref, err_msg=f"trial {trial} video {v}")
            np.testing.assert_allclose(tubes.scores, ref_scores, rtol=1e-6)
            valid = ref >= 0
            assert np.array_equal(tubes.valid, valid)
            np.testing.assert_array_equal(tubes.boxes[valid], d.boxes[ref[valid]])
            assert np.all(tubes.boxes[~valid] == 0) and np.all(tubes.labels == -1)


def test_batch_equals_single_calls() -> None:
    rng = np.random.default_rng(1)
    videos = [random_video(rng) for _ in range(12)]
    batch = temporal_prim_batch(videos, 3)
    for d, tubes in zip(videos, batch):
        np.testing.assert_array_equal(temporal_prim(d, 3).box_index, tubes.box_index)


# ---------------------------------------------------------------------------- hand-computed cases


def _stack(scores: list[float], boxes: list[list[float]] | None = None) -> Detections:
    """One box per frame; default boxes all identical."""
    n = len(scores)
    b = np.array(boxes if boxes is not None else [[0, 0, 10, 10]] * n, np.float32)
    return Detections(np.arange(n), b, np.array(scores, np.float32), n)


def test_backward_beats_forward() -> None:
    # Start at the 0.9 box (frame 1). Backward edge 0.9 + 0.8 = 1.7 > forward 0.9 + 0.3 = 1.2,
    # so the twin adds frame 0 before frame 2; the tube covers all three frames either way.
    d = _stack([0.8, 0.9, 0.3])
    ref, ref_scores, orders = twin(d, 1)
    assert orders == [[1, 0, 2]]
    tubes = temporal_prim(d, 1)
    np.testing.assert_array_equal(tubes.box_index, [[0, 1, 2]])
    np.testing.assert_array_equal(tubes.box_index, ref)
    assert tubes.scores[0] == pytest.approx((0.8 + 0.9 + 0.3) / 3)


def test_forward_on_ties() -> None:
    d = _stack([0.5, 0.9, 0.5])  # both edges weigh 1.4
    _, _, orders = twin(d, 1)
    assert orders == [[1, 2, 0]]
    np.testing.assert_array_equal(temporal_prim(d, 1).box_index, [[0, 1, 2]])


def test_best_candidate_and_row_ties() -> None:
    # Frame 1 has three overlapping boxes; the 0.7 ones tie, the lowest row (1) wins; the 0.2 one
    # starts the second tube alone (its neighbours are used), the last 0.7 one the third.
    frame = np.array([0, 1, 1, 1])
    boxes = np.array([[0, 0, 10, 10], [0, 0, 10, 10], [1, 1, 10, 10], [0, 0, 9, 9]], np.float32)
    d = Detections(frame, boxes, np.array([1.0, 0.7, 0.2, 0.7], np.float32), 2)
    tubes = temporal_prim(d, 5)
    np.testing.assert_array_equal(tubes.box_index, [[0, 1], [-1, 3], [-1, 2]])
    np.testing.assert_allclose(tubes.scores, [0.85, 0.7, 0.2])


def test_iou_exactly_min_iou_links() -> None:
    # [0,0,10,1] inside [0,0,10,10]: IoU = 10 / 100 = 0.1 exactly -> an edge; 9.9/100 -> none.
    at = _stack([1.0, 0.5], [[0, 0, 10, 10], [0, 0, 10, 1]])
    np.testing.assert_array_equal(temporal_prim(at, 1).box_index, [[0, 1]])
    below = _stack([1.0, 0.5], [[0, 0, 10, 10], [0, 0, 10, 0.99]])
    np.testing.assert_array_equal(temporal_prim(below, 1).box_index, [[0, -1]])


def test_k_larger_than_possible_and_min_score() -> None:
    # Scores <= 0 never start or join a tube: frame 2's box is cut off, frame 3's stands alone.
    d = _stack([0.5, 0.6, 0.0, 0.4])
    tubes = temporal_prim(d, 10)
    np.testing.assert_array_equal(tubes.box_index, [[0, 1, -1, -1], [-1, -1, -1, 3]])
    assert tubes.num_tubes == 2 and tubes.num_frames == 4
    assert temporal_prim(d, 0).num_tubes == 0
    assert temporal_prim(Detections.empty(5), 3).box_index.shape == (0, 5)
    assert temporal_prim(Detections.empty(0), 3).box_index.shape == (0, 0)


def test_alternative_scores_change_the_start() -> None:
    d = _stack([0.9, 0.1, 0.5], [[0, 0, 10, 10], [50, 50, 60, 60], [50, 50, 60, 60]])
    np.testing.assert_array_equal(temporal_prim(d, 1).box_index, [[0, -1, -1]])
    model = np.array([0.2, 2.0, 1.0])
    tubes = temporal_prim(d, 1, scores=model)
    np.testing.assert_array_equal(tubes.box_index, [[-1, 1, 2]])
    assert tubes.scores[0] == pytest.approx(1.5)


def test_bad_scores_refused() -> None:
    d = _stack([0.5, 0.6])
    with pytest.raises(ValueError, match="finite"):
        temporal_prim(d, 1, scores=np.array([np.nan, 1.0]))
    with pytest.raises(ValueError, match="shape"):
        temporal_prim(d, 1, scores=np.array([1.0]))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_matches_cpu() -> None:
    rng = np.random.default_rng(2)
    videos = [random_video(rng) for _ in range(16)]
    cpu = temporal_prim_batch(videos, 4)
    gpu = temporal_prim_batch(videos, 4, device="cuda")
    for a, b in zip(cpu, gpu):
        np.testing.assert_array_equal(a.box_index, b.box_index)


# ------------------------------------------------------------------------------------------- CLI


def test_cli_links_a_detections_file(tmp_path, capsys) -> None:
    from wsal.data.detections import save_detections
    from wsal.linking.__main__ import main

    rng = np.random.default_rng(3)
    dets = {f"cls/v{i}": random_video(rng) for i in range(5)}
    dets = {v: d for v, d in dets.items() if len(d)}
    save_detections(tmp_path / "dets.npz", dets)
    out = tmp_path / "tubes.npz"
    rc = main(
        [
            "temporal_prim",
            "--detections",
            str(tmp_path / "dets.npz"),
            "--out",
            str(out),
            "--num-tubes",
            "2",
            "--batch-size",
            "2",
        ]
    )
    assert rc == 0
    printed = capsys.readouterr().out
    assert "videos" in printed and "tubes" in printed
    got = TubeDetections.load(out)
    want = []
    for v, d in dets.items():
        want.append(TubeDetections.from_tubes(v, temporal_prim(d, 2)))
    want_td = TubeDetections.concat(want)
    assert list(got.video) == list(want_td.video)
    np.testing.assert_array_equal(got.label, -1)
    np.testing.assert_allclose(got.score, want_td.score)
    np.testing.assert_array_equal(got.offsets, want_td.offsets)
    np.testing.assert_array_equal(got.rows, want_td.rows)
    for i in range(len(got)):
        assert np.all(np.diff(got.tube(i)[:, 0]) == 1)  # contiguous, frame order


def test_cli_numpy_path_imports_neither_torch_nor_lightning(tmp_path) -> None:
    """The CPU linkers of ``python -m wsal.linking`` start without torch (it is the GPU backend's
    dependency only) or Lightning, although the linker is composed from its Hydra config."""
    import subprocess
    import sys
    from pathlib import Path

    from wsal.data.detections import save_detections

    rng = np.random.default_rng(4)
    save_detections(tmp_path / "dets.npz", {"v": random_video(rng)})
    for linker in ("temporal_prim", "viterbi"):
        out = subprocess.run(
            [sys.executable, "-X", "importtime", "-m", "wsal.linking", linker, "--detections",
             str(tmp_path / "dets.npz"), "--out", str(tmp_path / "t.npz"), "--num-tubes", "2"],
            cwd=Path(__file__).resolve().parents[1], capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert out.returncode == 0, out.stderr[-2000:]
        modules = {
            line.rsplit("|", 1)[-1].strip()
            for line in out.stderr.splitlines()
            if line.startswith("import time:")
        }
        assert "wsal.linking.temporal_prim" in modules and "hydra" in modules
        assert not modules & {"torch", "pytorch_lightning", "lightning"}, linker
