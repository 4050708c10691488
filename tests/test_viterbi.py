"""Viterbi linking (Gkioxari & Malik 2015): the DP against brute force, the K-tube linker against
a literal loop twin, hand-computed cases, bad input, the linker object and the CLI."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from wsal.linking.viterbi import ViterbiLinker, trim_path, viterbi, viterbi_batch
from wsal.structures import Detections, TubeDetections

# ------------------------------------------------------------------------------------ slow twins


def _iou(a: list[float], b: list[float]) -> float:
    """Continuous-coordinate IoU of two xyxy boxes (no +1), float64 in the linker's op order."""
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1])) - inter
    return inter / union if union > 0 else 0.0


def _trim_twin(s: list[float], thresh: float) -> tuple[int, int]:
    """All segments (a, b) of the path: max Σ(s − thresh), ties earliest a then latest b. Sums as
    differences of sequential prefix sums, so that ties are exact as in the linker."""
    p = [0.0]
    for x in s:
        p.append(p[-1] + (x - thresh))
    best = None
    for a in range(len(s)):
        for b in range(a, len(s)):
            v = p[b + 1] - p[a]
            if best is None or v > best[0] or (v == best[0] and a == best[1]):
                best = (v, a, b)
    return best[1], best[2]  # type: ignore[index]


def twin(
    dets: Detections,
    num_tubes: int,
    iou_weight: float = 1.0,
    min_iou: float = 0.0,
    trim: bool = False,
    trim_thresh: float = 0.5,
    scores: np.ndarray | None = None,
) -> tuple[np.ndarray, list[float]]:
    """Literal loops of the module docstring's rules 1-5. Returns (box_index [k, F], scores)."""
    n, nf = len(dets), dets.num_frames
    s = [float(x) for x in (dets.scores if scores is None else scores)]
    frame = [int(f) for f in dets.frame]
    boxes = [[float(c) for c in b] for b in dets.boxes]
    rows_in = [[j for j in range(n) if frame[j] == f] for f in range(nf)]
    used = [False] * n
    out, tube_scores = [], []
    for _ in range(num_tubes):
        dp: dict[int, float] = {}
        back: dict[int, int | None] = {}
        end = None  # (value, frame, row)
        for t in range(nf):
            for j in rows_in[t]:
                if used[j]:
                    continue
                m, p = None, None
                for i in rows_in[t - 1] if t > 0 else []:
                    iou = _iou(boxes[i], boxes[j])
                    if used[i] or iou < min_iou:
                        continue
                    w = dp[i] + iou_weight * iou
                    if m is None or w > m:  # lowest row among equal maxima
                        m, p = w, i
                if m is not None and m >= 0:  # keep a predecessor that adds >= 0
                    dp[j], back[j] = s[j] + m, p
                else:
                    dp[j], back[j] = s[j] + 0.0, None
                # latest frame on ties, lowest row within a frame
                if end is None or dp[j] > end[0] or (dp[j] == end[0] and t > end[1]):
                    end = (dp[j], t, j)
        if end is None:
            break
        path = [end[2]]
        while back[path[-1]] is not None:
            path.append(back[path[-1]])  # type: ignore[arg-type]
        path.reverse()
        for j in path:
            used[j] = True
        a, b = _trim_twin([s[j] for j in path], trim_thresh) if trim else (0, len(path) - 1)
        row = np.full(nf, -1, np.int64)
        for j in path[a : b + 1]:
            row[frame[j]] = j
        out.append(row)
        tube_scores.append(float(np.mean([s[j] for j in path[a : b + 1]])))
    box_index = np.stack(out) if out else np.zeros((0, nf), np.int64)
    return box_index, tube_scores


def brute_force_best(
    dets: Detections, iou_weight: float, min_iou: float
) -> list[tuple[float, list[int]]]:
    """Every path (one box per frame over consecutive frames, IoU >= min_iou between consecutive
    boxes) with its E = Σ s + λ Σ IoU, best first."""
    nf = dets.num_frames
    s = dets.scores.astype(np.float64)
    b = dets.boxes.astype(np.float64).tolist()
    rows = [list(range(dets.frame_ptr[f], dets.frame_ptr[f + 1])) for f in range(nf)]
    paths = []
    for a in range(nf):
        for e in range(a, nf):
            for path in itertools.product(*rows[a : e + 1]):
                ious = [_iou(b[i], b[j]) for i, j in itertools.pairwise(path)]
                if any(x < min_iou for x in ious):
                    continue
                paths.append((float(s[list(path)].sum() + iou_weight * sum(ious)), list(path)))
    return sorted(paths, key=lambda p: -p[0])


# ---------------------------------------------------------------------------------- random cases


def random_video(rng: np.random.Generator, grid_scores: bool = True) -> Detections:
    """Small video on a coarse grid, so IoU ties and exact score ties happen; some frames empty,
    signed scores, sometimes no box at all."""
    nf = int(rng.choice([1, 2, 3, 6, 10]))
    if rng.random() < 0.1:
        return Detections.empty(nf)
    counts = rng.integers(0, 5, nf) * (rng.random(nf) > 0.2)  # [F] some frames empty
    frame = np.repeat(np.arange(nf), counts)
    n = len(frame)
    xy = rng.integers(0, 6, (n, 2)) * 2.0  # [N, 2]
    wh = rng.integers(1, 5, (n, 2)) * 2.0
    boxes = np.concatenate([xy, xy + wh], axis=1)  # [N, 4] xyxy
    if grid_scores:
        scores = rng.choice([-0.5, -0.25, 0.0, 0.25, 0.5, 0.5, 1.0], n)
    else:
        scores = rng.uniform(-0.5, 1.0, n)
    return Detections(frame, boxes, scores, nf)


def tiny_video(rng: np.random.Generator) -> Detections:
    """2-5 frames, 0-3 boxes per frame, continuous signed scores (unique optimum almost surely)."""
    nf = int(rng.integers(2, 6))
    counts = rng.integers(1, 4, nf) * (rng.random(nf) > 0.15)  # [F] occasionally a gap
    frame = np.repeat(np.arange(nf), counts)
    n = len(frame)
    xy = rng.uniform(0, 10, (n, 2))
    wh = rng.uniform(2, 10, (n, 2))
    return Detections(frame, np.concatenate([xy, xy + wh], 1), rng.uniform(-0.3, 1.0, n), nf)


def test_dp_finds_the_brute_force_best_path() -> None:
    rng = np.random.default_rng(0)
    checked = 0
    for trial in range(150):
        d = tiny_video(rng)
        lam = float(rng.choice([0.0, 0.5, 1.0, 3.0]))
        min_iou = float(rng.choice([0.0, 0.0, 0.2]))
        tubes = viterbi(d, 1, lam, min_iou)
        paths = brute_force_best(d, lam, min_iou)
        if not paths:
            assert tubes.num_tubes == 0
            continue
        rows = tubes.box_index[0][tubes.valid[0]].tolist()
        e_dp = next(e for e, p in paths if p == rows)  # the DP's path is a legal path ...
        assert e_dp == pytest.approx(paths[0][0], abs=1e-9), f"trial {trial}"  # ... of best E
        if len(paths) == 1 or paths[1][0] < paths[0][0] - 1e-9:
            assert rows == paths[0][1], f"trial {trial}"
            checked += 1
    assert checked > 100  # the unique-optimum comparison really ran


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_k_tubes_match_twin_on_random_videos(backend: str) -> None:
    rng = np.random.default_rng(1)
    for trial in range(30):
        videos = [random_video(rng, grid_scores=trial % 4 != 0) for _ in range(rng.integers(1, 7))]
        k = int(rng.integers(0, 6))
        lam = float(rng.choice([0.0, 0.5, 1.0, 2.0]))
        min_iou = float(rng.choice([0.0, 0.1, 0.3]))
        trim = bool(trial % 2)
        thresh = float(rng.choice([0.0, 0.25, 0.5]))
        alt = None
        if trial % 5 == 0:  # model scores instead of priors (float64)
            alt = [np.round(rng.normal(size=len(d)), 1) for d in videos]
        cache = int(rng.choice([0, 1 << 12, 1 << 28]))  # per-step IoU, small groups, one group
        fast = viterbi_batch(
            videos, k, lam, min_iou, trim, thresh, alt, backend=backend, cache_bytes=cache
        )
        for v, (d, tubes) in enumerate(zip(videos, fast)):
            ref, ref_scores = twin(
                d, k, lam, min_iou, trim, thresh, None if alt is None else alt[v]
            )
            msg = f"trial {trial} video {v}"
            np.testing.assert_array_equal(tubes.box_index, ref, err_msg=msg)
            np.testing.assert_allclose(tubes.scores, ref_scores, rtol=1e-6, err_msg=msg)
            valid = ref >= 0
            assert np.array_equal(tubes.valid, valid)
            np.testing.assert_array_equal(tubes.boxes[valid], d.boxes[ref[valid]])
            assert np.all(tubes.boxes[~valid] == 0) and np.all(tubes.labels == -1)
            # without trimming every box is in a tube once K is large enough
            if not trim and k >= 5 and len(d) <= 5:
                assert tubes.valid.sum() == len(d)


def test_batch_equals_single_calls() -> None:
    rng = np.random.default_rng(2)
    videos = [random_video(rng) for _ in range(12)]
    batch = viterbi_batch(videos, 3, trim=True, trim_thresh=0.25)
    for d, tubes in zip(videos, batch):
        one = viterbi(d, 3, trim=True, trim_thresh=0.25)
        np.testing.assert_array_equal(one.box_index, tubes.box_index)
        np.testing.assert_array_equal(one.scores, tubes.scores)


def test_trim_path_matches_all_segments() -> None:
    rng = np.random.default_rng(3)
    for _ in range(300):
        s = rng.choice([-0.5, 0.0, 0.25, 0.5, 0.75, 1.0], int(rng.integers(1, 12)))
        th = float(rng.choice([0.0, 0.25, 0.5]))
        assert trim_path(s, th) == _trim_twin(s.tolist(), th)


# ---------------------------------------------------------------------------- hand-computed cases


def _crossing(scores_a: list[float], scores_b: list[float]) -> Detections:
    """Two 10x10 boxes crossing: A at x = 0, 5, 10, 15 and B at x = 15, 10, 5, 0 (rows A, B per
    frame). IoU of a box with its own next box is 1/3 (shift 5); at the crossing (frame 1 -> 2)
    A1-B2 and B1-A2 coincide (IoU 1); every other pair is disjoint."""
    xa, xb = [0, 5, 10, 15], [15, 10, 5, 0]
    boxes = [[x, 0, x + 10, 10] for f in range(4) for x in (xa[f], xb[f])]
    sc = [s for f in range(4) for s in (scores_a[f], scores_b[f])]
    return Detections(np.repeat(np.arange(4), 2), np.array(boxes), np.array(sc), 4)


def test_crossing_tracks_lambda_decides() -> None:
    # A scores 0.8 everywhere, B 0.6, 0.5, 0.4, 0.6. E(AAAA) = 3.2 + λ (three links of 1/3);
    # E(BBAA) = 0.6 + 0.5 + 0.8 + 0.8 + λ (1/3 + 1 + 1/3) = 2.7 + 5λ/3 (the best "swap" path;
    # AABB = 2.6 + 5λ/3). So identity wins for λ < 0.75, the swap at the crossing above.
    d = _crossing([0.8] * 4, [0.6, 0.5, 0.4, 0.6])
    low = viterbi(d, 2, iou_weight=0.6)  # 3.8 vs 3.7
    np.testing.assert_array_equal(low.box_index, [[0, 2, 4, 6], [1, 3, 5, 7]])
    np.testing.assert_allclose(low.scores, [0.8, 0.525], rtol=1e-6)
    high = viterbi(d, 2, iou_weight=0.9)  # 4.1 vs 4.2: B's first half, then A's second half
    np.testing.assert_array_equal(high.box_index, [[1, 3, 4, 6], [0, 2, 5, 7]])
    np.testing.assert_allclose(high.scores, [0.675, 0.65], rtol=1e-6)
    # brute force agrees on both best paths
    assert brute_force_best(d, 0.6, 0.0)[0][1] == [0, 2, 4, 6]
    assert brute_force_best(d, 0.9, 0.0)[0][1] == [1, 3, 4, 6]
    # min_iou = 0.2 forbids the disjoint jumps (IoU 0) but not the crossing link (IoU 1): the
    # swap stays.
    np.testing.assert_array_equal(viterbi(d, 1, 0.9, min_iou=0.2).box_index, [[1, 3, 4, 6]])


def test_gaps_split_paths() -> None:
    # Frames 0-1 and 3-4 have one box each, frame 2 none: two runs. Run 3-4 scores more (1.7 + λ
    # vs 1.0 + λ), so it comes first; nothing bridges the gap.
    boxes = np.array([[0, 0, 10, 10]] * 4, np.float32)
    d = Detections(np.array([0, 1, 3, 4]), boxes, np.array([0.5, 0.5, 0.8, 0.9]), 5)
    tubes = viterbi(d, 5)
    np.testing.assert_array_equal(tubes.box_index, [[-1, -1, -1, 2, 3], [0, 1, -1, -1, -1]])
    np.testing.assert_allclose(tubes.scores, [0.85, 0.5], rtol=1e-6)
    # a gap made by removal: the first tube takes frame 1's only box, which splits the rest
    boxes = np.array([[0, 0, 10, 10]] * 5, np.float32)
    d = Detections(np.array([0, 0, 1, 2, 2]), boxes, np.array([1.0, 0.1, 1.0, 1.0, 0.2]), 3)
    tubes = viterbi(d, 5)
    np.testing.assert_array_equal(tubes.box_index, [[0, 2, 3], [-1, -1, 4], [1, -1, -1]])


def test_negative_scores_are_cut_off() -> None:
    # Identical boxes (IoU 1), scores 0.5, -1, 0.5, 0.5, -0.25. With λ = 0.5 every link adds 0.5:
    # frames 2-3 give E = 1.5, frame 4 adds -0.25 + 0.5 (E = 1.75), frames 0-1 add 0.5 - 1 + 0.5
    # + 0.5 (E = 2.25 = Σ s + 4λ): the whole video, negative boxes included.
    d = Detections(np.arange(5), [[0, 0, 10, 10]] * 5, [0.5, -1.0, 0.5, 0.5, -0.25], 5)
    np.testing.assert_array_equal(viterbi(d, 1, iou_weight=0.5).box_index, [[0, 1, 2, 3, 4]])
    # With λ = 0 negative boxes only cost: frames 2-3 (E = 1), then frame 0, then the negatives
    # best first; each pass takes what is left.
    tubes = viterbi(d, 5, iou_weight=0.0)
    np.testing.assert_array_equal(
        tubes.box_index,
        [[-1, -1, 2, 3, -1], [0, -1, -1, -1, -1], [-1, -1, -1, -1, 4], [-1, 1, -1, -1, -1]],
    )


def test_trimming_known_answer() -> None:
    # One box per frame (the whole video is one path). s - 0.5 = -0.25, 0.5, -0.25, 0.25, -0.5:
    # segments [1] and [1..3] both sum to 0.5; the tie goes to the later end -> frames 1-3.
    d = Detections(np.arange(5), [[0, 0, 10, 10]] * 5, [0.25, 1.0, 0.25, 0.75, 0.0], 5)
    tubes = viterbi(d, 3, trim=True, trim_thresh=0.5)
    np.testing.assert_array_equal(tubes.box_index, [[-1, 1, 2, 3, -1]])  # trimmed boxes used up
    assert tubes.scores[0] == pytest.approx(2.0 / 3.0)
    assert viterbi(d, 3).box_index.tolist() == [[0, 1, 2, 3, 4]]  # untrimmed
    # every box below the threshold: the best single box is kept
    assert trim_path(np.array([0.1, 0.3, 0.2]), 0.5) == (1, 1)
    # a threshold below every score keeps the whole path
    assert trim_path(np.array([0.1, 0.3, 0.2]), 0.0) == (0, 2)


def test_empty_and_k_zero() -> None:
    assert viterbi(Detections.empty(5), 3).box_index.shape == (0, 5)
    assert viterbi(Detections.empty(0), 3).box_index.shape == (0, 0)
    d = Detections(np.arange(2), [[0, 0, 10, 10]] * 2, [0.5, 0.6], 2)
    assert viterbi(d, 0).num_tubes == 0
    out = viterbi_batch([Detections.empty(0), d, Detections.empty(7)], 2)
    assert [t.num_tubes for t in out] == [0, 1, 0]
    assert out[2].num_frames == 7


def test_alternative_scores() -> None:
    d = Detections(np.arange(3), [[0, 0, 10, 10], [50, 50, 60, 60], [50, 50, 60, 60]], [0.9] * 3, 3)
    # λ = 0, priors: frames 0-2 all linkable (IoU 0 allowed), one path
    np.testing.assert_array_equal(viterbi(d, 1, 0.0).box_index, [[0, 1, 2]])
    tubes = viterbi(d, 2, 0.0, scores=np.array([-1.0, 2.0, 1.0]))
    np.testing.assert_array_equal(tubes.box_index, [[-1, 1, 2], [0, -1, -1]])
    np.testing.assert_allclose(tubes.scores, [1.5, -1.0])


# ------------------------------------------------------------------------------------ bad input


def test_frames_beyond_the_video_are_refused() -> None:
    d = Detections(np.array([0, 4]), [[0, 0, 10, 10]] * 2, [0.5, 0.5], 5)
    d.num_frames = 3  # the video is shorter than its detections say
    with pytest.raises(ValueError, match=r"video cls/v1: detections on frames \[0, 4\].*3 frames"):
        viterbi_batch([d], 1, names=["cls/v1"])
    with pytest.raises(ValueError, match="video cls/v1"):
        ViterbiLinker(progress=False).link({"cls/v1": d})
    d2 = Detections(np.array([0, 1]), [[0, 0, 10, 10]] * 2, [0.5, 0.5], 2)
    d2.num_frames = 6  # stale frame_ptr: a wrong tube length would follow
    with pytest.raises(ValueError, match="video #0: frame_ptr"):
        viterbi(d2, 1)


def test_bad_parameters_and_scores() -> None:
    d = Detections(np.arange(2), [[0, 0, 10, 10]] * 2, [0.5, 0.6], 2)
    with pytest.raises(ValueError, match="finite"):
        viterbi(d, 1, scores=np.array([np.nan, 1.0]))
    with pytest.raises(ValueError, match="shape"):
        viterbi(d, 1, scores=np.array([1.0]))
    with pytest.raises(ValueError, match="iou_weight"):
        viterbi(d, 1, iou_weight=-1.0)
    with pytest.raises(ValueError, match="num_tubes"):
        viterbi(d, -1)
    with pytest.raises(ValueError, match="num_tubes"):
        ViterbiLinker(num_tubes=0)


# --------------------------------------------------------------------------------------- linker


def test_linker_object_and_cache_key() -> None:
    rng = np.random.default_rng(4)
    dets = {f"v{i}": random_video(rng) for i in range(7)}
    linker = ViterbiLinker(num_tubes=3, iou_weight=0.5, batch_videos=3, progress=False)
    out = linker.link(dets)
    assert list(out) == list(dets)
    for v, d in dets.items():
        np.testing.assert_array_equal(out[v].box_index, viterbi(d, 3, 0.5).box_index)
    no_cache = ViterbiLinker(num_tubes=3, iou_weight=0.5, cache_mb=0, progress=False).link(dets)
    for v in dets:  # the IoU table is speed only
        np.testing.assert_array_equal(no_cache[v].box_index, out[v].box_index)
    key = linker.cache_key()
    assert linker.name == "viterbi" and len(key) == 12
    assert ViterbiLinker(num_tubes=3, iou_weight=0.5, batch_videos=9, cache_mb=1).cache_key() == key
    assert ViterbiLinker(num_tubes=3, iou_weight=0.5, trim_thresh=0.1).cache_key() == key
    assert ViterbiLinker(num_tubes=3, iou_weight=0.5, trim=True).cache_key() != key
    assert ViterbiLinker(num_tubes=3, iou_weight=1.0).cache_key() != key
    assert ViterbiLinker(num_tubes=3, iou_weight=0.5, min_iou=0.1).cache_key() != key


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_matches_cpu() -> None:
    rng = np.random.default_rng(5)
    videos = [random_video(rng) for _ in range(16)]
    cpu = viterbi_batch(videos, 4, trim=True)
    gpu = viterbi_batch(videos, 4, trim=True, device="cuda")
    for a, b in zip(cpu, gpu):
        np.testing.assert_array_equal(a.box_index, b.box_index)


# ------------------------------------------------------------------------------------------- CLI


def test_cli_links_a_detections_file(tmp_path, capsys) -> None:
    from wsal.data.detections import save_detections
    from wsal.linking.__main__ import main

    rng = np.random.default_rng(6)
    dets = {f"cls/v{i}": random_video(rng) for i in range(6)}
    dets = {v: d for v, d in dets.items() if len(d)}
    save_detections(tmp_path / "dets.npz", dets)
    out = tmp_path / "tubes.npz"
    args = ["--detections", str(tmp_path / "dets.npz"), "--out", str(out), "--num-tubes", "2"]
    rc = main(["viterbi", *args, "--iou-weight", "0.5", "--trim", "--trim-thresh", "0.25"])
    assert rc == 0
    printed = capsys.readouterr().out
    assert printed.startswith("viterbi:") and "tubes" in printed
    got = TubeDetections.load(out)
    # the file stores F = last detected frame + 1, which does not change any tube
    loaded = {
        v: Detections(d.frame, d.boxes, d.scores, int(d.frame.max()) + 1) for v, d in dets.items()
    }
    want = TubeDetections.concat(
        [
            TubeDetections.from_tubes(v, viterbi(d, 2, 0.5, trim=True, trim_thresh=0.25))
            for v, d in loaded.items()
        ]
    )
    assert len(got) > 0
    assert list(got.video) == list(want.video)
    np.testing.assert_array_equal(got.label, -1)
    np.testing.assert_allclose(got.score, want.score)
    np.testing.assert_array_equal(got.offsets, want.offsets)
    np.testing.assert_array_equal(got.rows, want.rows)
    for i in range(len(got)):
        assert np.all(np.diff(got.tube(i)[:, 0]) == 1)  # contiguous, frame order
