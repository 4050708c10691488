"""STIL (Eq. 1-3): the subtube search against brute force, selections by hand, folds by
construction, EM on a planted toy, inference against a known answer and a loop twin, errors."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import pytorch_lightning as pl
import torch

from wsal.linking import temporal_prim
from wsal.models.stil import (
    STIL,
    background_boxes,
    balanced_weights,
    best_subtubes,
    predict_tubes,
    select_latent,
)
from wsal.models.stil_data import STILDataModule, assign_folds, build_stil_data
from wsal.structures import Detections, Tubes

# ------------------------------------------------------------------------------------ helpers


def brute_subtube(scores: np.ndarray, valid: np.ndarray, penalty: float) -> float:
    """Eq. 3 by enumeration: max over runs of valid boxes of sum - penalty * (boxes - 1)."""
    best = -math.inf
    S = len(scores)
    for s in range(S):
        for e in range(s, S):
            if valid[s : e + 1].all():
                best = max(best, float(scores[s : e + 1].sum()) - penalty * (e - s))
    return best


def make_tubes(box_index: list[list[int]], num_frames: int, dets: Detections) -> Tubes:
    """Tubes from per-frame detection rows (-1 = no box), boxes copied from ``dets``."""
    bi = np.array(box_index, dtype=np.int64).reshape(-1, num_frames)
    valid = bi >= 0
    boxes = np.zeros((*bi.shape, 4), np.float32)
    boxes[valid] = dets.boxes[bi[valid]]
    return Tubes(boxes, valid, bi, np.zeros(len(bi), np.float32))


def planted_toy(num_videos: int = 12, L: int = 2, F: int = 12, D: int = 8, seed: int = 0):
    """Per frame three boxes: actor A (left), actor B (middle), clutter (right), far apart (IoU 0).
    In a video of class c = i % L, actor A performs the action in frames F/4..3F/4-1 (3..8): there its feature
    points along e_c (plus noise on the non-class dimensions); every other box is noise on the
    non-class dimensions. Priors: A 0.6-0.7, B 0.5-0.6, clutter 0.2-0.3 (so Temporal Prim's first
    tube is actor A). Returns (features, priors, dets, tubes, labels, planted rows per video)."""
    rng = np.random.default_rng(seed)
    feats, priors, dets, tubes, labels, truth = {}, {}, {}, {}, {}, {}
    for i in range(num_videos):
        v, c = f"v{i}", i % L
        frame = np.repeat(np.arange(F), 3)
        x0 = np.tile([0.0, 40.0, 80.0], F)
        boxes = np.stack([x0, np.zeros_like(x0), x0 + 20, np.full_like(x0, 40)], 1)
        f = rng.normal(0, 1, (3 * F, D))
        f[:, :L] = 0
        rows = 3 * np.arange(F // 4, F // 4 + F // 2)  # actor A in the action frames
        f[rows] *= 0.3
        f[rows, c] = 1.0
        p = np.tile([0.6, 0.5, 0.2], F) + rng.uniform(0, 0.1, 3 * F)
        d = Detections(frame, boxes, p, F)
        feats[v], priors[v], dets[v], labels[v], truth[v] = f, p, d, [c], rows
        tubes[v] = temporal_prim(d, 3)
    return feats, priors, dets, tubes, labels, truth


def selected_rows(model: STIL, data, video: int, c: int) -> np.ndarray:
    """Rows (within the video) of the boxes the last E-step selected for class c."""
    lo, hi = int(data.box_offsets[video]), int(data.box_offsets[video + 1])
    return torch.nonzero(model.last_selection[lo:hi, c]).flatten().numpy()


def tiny_video(scores: list[float], per_frame: int = 1) -> Detections:
    """Boxes far apart within a frame, ``per_frame`` per frame, frame-major."""
    n = len(scores)
    frame = np.arange(n) // per_frame
    x = (np.arange(n) % per_frame) * 100.0
    boxes = np.stack([x, np.zeros(n), x + 20, np.full(n, 20.0)], 1)
    return Detections(frame, boxes, np.asarray(scores, np.float32), int(frame.max()) + 1)


# ------------------------------------------------------------------------------- Eq. 3 search


@pytest.mark.parametrize("penalty", [0.0, 0.5, 1.0, 3.0])
def test_best_subtubes_equals_brute_force(penalty):
    rng = np.random.default_rng(0)
    K, S = 300, 11
    scores = rng.normal(0.5, 1.5, (K, S))
    valid = rng.random((K, S)) < 0.8  # several runs per row, crossing invalid entries forbidden
    valid[:5] = False  # rows without any box
    valid[5:10] = True
    value, start, end = best_subtubes(torch.tensor(scores), torch.tensor(valid), penalty)
    for k in range(K):
        ref = brute_subtube(scores[k], valid[k], penalty)
        if ref == -math.inf:
            assert value[k] == -math.inf and start[k] == -1 and end[k] == -1
            continue
        s, e = int(start[k]), int(end[k])
        assert value[k] == pytest.approx(ref, abs=1e-9)
        assert 0 <= s <= e and valid[k, s : e + 1].all()
        assert scores[k, s : e + 1].sum() - penalty * (e - s) == pytest.approx(ref, abs=1e-9)


def test_best_subtubes_by_hand():
    # [2, 2.5] is worth 4.5 - 1 = 3.5; the lone 3 only 3; crossing -5 costs too much.
    scores = torch.tensor([[0.5, 2.0, 2.5, -5.0, 3.0], [1.0, 1.0, 1.0, 1.0, 1.0]])
    value, start, end = best_subtubes(scores, torch.ones(2, 5, dtype=torch.bool), penalty=1.0)
    assert value[0] == pytest.approx(3.5) and (start[0], end[0]) == (1, 2)
    # all-negative row: still one box (Eq. 2: length >= 1), the best one
    value, start, end = best_subtubes(torch.tensor([[-3.0, -1.0, -2.0]]), torch.ones(1, 3).bool())
    assert value[0] == pytest.approx(-1.0) and (start[0], end[0]) == (1, 1)
    # an invalid entry splits the runs: 2 + 2 - 1 = 3 on the left vs 2.5 alone
    scores = torch.tensor([[2.0, 2.0, 9.0, 2.5]])
    valid = torch.tensor([[True, True, False, True]])
    value, start, end = best_subtubes(scores, valid, penalty=1.0)
    assert value[0] == pytest.approx(3.0) and (start[0], end[0]) == (0, 1)


# ------------------------------------------------------------------------------- selections


def two_video_data(**kw):
    """Video a (class 0): 8 boxes in 4 frames (2 per frame), two tubes: left column rows
    0,2,4,6 and right column rows 1,3,5,7. Video b (class 1): 3 boxes in 3 frames, one tube."""
    da = tiny_video([0.1] * 8, per_frame=2)
    db = tiny_video([0.2] * 3, per_frame=1)
    ta = make_tubes([[0, 2, 4, 6], [1, 3, 5, 7]], 4, da)
    tb = make_tubes([[0, 1, 2]], 3, db)
    rng = np.random.default_rng(0)
    feats = {"a": rng.normal(size=(8, 4)), "b": rng.normal(size=(3, 4))}
    return build_stil_data(
        feats,
        {"a": da.scores, "b": db.scores},
        {"a": ta, "b": tb},
        {"a": [0], "b": [1]},
        2,
        dets={"a": da, "b": db},
        **kw,
    )


def test_stil_selection_by_hand():
    data = two_video_data(folds=1)
    scores = torch.zeros(11, 2)
    # class 0 along tube 0 (rows 0,2,4,6): [2, 2.5, -5, 3] -> subtube rows 0, 2 (3.5);
    # tube 1 (rows 1,3,5,7): all 1 -> 1. Video b's class-1 scores: rows 8..10.
    scores[[0, 2, 4, 6], 0] = torch.tensor([2.0, 2.5, -5.0, 3.0])
    scores[[1, 3, 5, 7], 0] = 1.0
    scores[8:, 1] = torch.tensor([-1.0, 4.0, 0.5])
    sel = select_latent(data, scores, "stil", penalty=1.0)
    assert sel.pair_video.tolist() == [0, 1] and sel.pair_class.tolist() == [0, 1]
    assert sel.tube.tolist() == [0, 2]  # global tube ids: a has 0, 1; b has 2
    assert sel.start.tolist() == [0, 1] and sel.end.tolist() == [1, 1]
    assert sel.value.tolist() == pytest.approx([3.5, 4.0])
    assert sel.box.tolist() == [0, 2, 9] and sel.box_pair.tolist() == [0, 0, 1]
    mask = sel.mask(11, 2)
    assert mask.sum() == 3 and mask[0, 0] and mask[2, 0] and mask[9, 1]


def test_mil_gmil_noprim_selection_by_hand():
    data = two_video_data(folds=1)
    scores = torch.zeros(11, 2)
    scores[:8, 0] = torch.tensor([0.1, 0.9, 0.5, 0.7, 0.3, 0.2, 0.0, 0.6])
    scores[8:, 1] = torch.tensor([0.3, 0.2, 0.1])
    sel = select_latent(data, scores, "mil")
    assert sel.box.tolist() == [1, 8]
    sel = select_latent(data, scores, "gmil", mu=3)
    assert sorted(sel.box[sel.box_pair == 0].tolist()) == [1, 3, 7]
    assert sel.box[sel.box_pair == 1].tolist() == [8, 9, 10]  # b has only 3 boxes: all
    assert sel.value[0].item() == pytest.approx(0.9 + 0.7 + 0.6)
    sel = select_latent(data, scores, "stil_noprim")
    assert sel.box.tolist() == list(range(11))
    assert (sel.tube == -1).all()
    with pytest.raises(ValueError, match="unknown selection"):
        select_latent(data, scores, "kmeans")


def test_background_boxes_by_hand():
    """Frame 0: selected box S, a box overlapping it (IoU 0.81: ignored), a far box
    (background); frame 1 has no selected box: nothing there is background."""
    frame = np.array([0, 0, 0, 1])
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60], [50, 50, 60, 60]], float)
    d = Detections(frame, boxes, np.ones(4), 2)
    t = make_tubes([[0, 3]], 2, d)
    data = build_stil_data(
        {"a": np.eye(4)}, {"a": d.scores}, {"a": t}, {"a": [0]}, 1, folds=1, dets={"a": d}
    )
    scores = torch.tensor([[5.0], [0.0], [0.0], [-9.0]])
    sel = select_latent(data, scores, "stil")
    assert sel.box.tolist() == [0]
    bb, bp = background_boxes(data, sel, 0.3)
    assert bb.tolist() == [2] and bp.tolist() == [0]
    bb, _ = background_boxes(data, sel, 0.9)  # 0.81 < 0.9: now also background
    assert bb.tolist() == [1, 2]


# ----------------------------------------------------------------------------------- E/M steps


def test_folds_select_with_the_model_not_trained_on_them():
    """By construction: every box feature is a one-hot e_j (j = its row in the frame); fold model
    m scores e_m highest, the final model e_3. After MIL's E-step, a video of fold k must have
    selected its box e_k, i.e. the choice came from w_{-k}."""
    V, folds = 9, 3
    dets, feats, tubes, labels = {}, {}, {}, {}
    for i in range(V):
        d = tiny_video([0.5, 0.5, 0.5, 0.5], per_frame=4)
        dets[i] = d
        feats[i] = np.eye(4)
        tubes[i] = make_tubes([[0], [1], [2], [3]], 1, d)
        labels[i] = [0]
    data = build_stil_data(
        feats, {i: d.scores for i, d in dets.items()}, tubes, labels, 1, folds, dets=dets
    )
    assert sorted(np.bincount(data.fold.numpy()).tolist()) == [3, 3, 3]
    model = STIL(1, selection="mil", folds=folds, background_negatives=False, normalize=True)
    model.attach(data)
    model.e_step(0)
    Y0 = model._Y  # [N, M, L]: model m never sees its own fold's boxes
    box_fold = data.fold[data.box_video]
    for m in range(folds):
        assert (Y0[box_fold == m, m] == 0).all() and (Y0[box_fold != m, m] == 1).any()
    assert (Y0[:, folds] != 0).any(dim=1).sum() == V  # the final model sees every video
    model.models_weight.zero_()
    for m in range(folds):
        model.models_weight[m, 0, m] = 1.0
    model.models_weight[folds, 0, 3] = 1.0
    model.e_step(1)
    for v in range(V):
        k = int(data.fold[v])
        assert selected_rows(model, data, v, 0).tolist() == [k]


def test_examples_of_the_m_step():
    """Positives = the selection; negatives = all boxes of the other class's video + background."""
    data = two_video_data(folds=1)
    model = STIL(2, selection="stil", folds=1, penalty=1.0)
    model.attach(data)
    data.priors[:8] = torch.tensor([0.1, 0.0, 0.9, 0.0, 0.2, 0.0, 0.0, 0.0])
    data.priors[8:] = torch.tensor([0.0, 0.3, 0.0])
    model.e_step(0)
    Y = model._Y[:, 0]  # [N, L]
    # class 0: video a selects row 2 (prior 0.9, penalty 1 -> one box); row 3 (same frame, far
    # away: IoU 0) is background; every box of video b is negative.
    assert Y[:, 0].tolist() == [0, 0, 1, -1, 0, 0, 0, 0, -1, -1, -1]
    # class 1: video b selects row 9; its frame holds no other box; all of video a negative.
    assert Y[:, 1].tolist() == [-1] * 8 + [0, 1, 0]
    model = STIL(2, folds=1, negatives="selected")  # only the boxes selected in video b
    model.attach(data)
    model.e_step(0)
    assert model._Y[:, 0, 0].tolist() == [0, 0, 1, -1, 0, 0, 0, 0, 0, -1, 0]


def test_balanced_weights_by_hand():
    """Column 0: 1 positive, 3 negatives of 4 used rows -> 4/2 = 2 and 4/6; column 1: no
    positive, 2 negatives -> 2/4 = 0.5 each; unused rows weigh 0."""
    Y = torch.tensor([[1, -1], [-1, 0], [-1, -1], [-1, 0], [0, 0]], dtype=torch.int8)
    w = balanced_weights(Y)
    want = [[2.0, 0.5], [2 / 3, 0.0], [2 / 3, 0.5], [2 / 3, 0.0], [0.0, 0.0]]
    np.testing.assert_allclose(w.numpy(), want, rtol=1e-6)
    # each class of column 0 carries half of the column's total weight n = 4
    assert float(w[Y[:, 0] == 1, 0].sum()) == pytest.approx(2.0)
    assert float(w[Y[:, 0] == -1, 0].sum()) == pytest.approx(2.0)


def test_class_weight_balanced_m_step_equals_weighted_solve():
    """class_weight="balanced": the M-step is the weighted solve with balanced_weights(Y); it
    lifts the scores of the rare positives (the unweighted model scores fewer boxes > 0)."""
    from wsal.models.hinge import fit_linear_hinge

    feats, priors, dets, tubes, labels, _ = planted_toy()
    data = build_stil_data(feats, priors, tubes, labels, 2, folds=1, dets=dets)
    out = {}
    for cw in (None, "balanced"):
        model = STIL(2, folds=1, em_epochs=1, penalty=0.5, class_weight=cw, loss="squared_hinge")
        model.attach(data)
        model.e_step(0)
        Y = model._Y.reshape(data.num_boxes, -1)
        model.m_step()
        W, b = fit_linear_hinge(
            data.features, Y, 10.0, weight=balanced_weights(Y) if cw else None, tol=1e-4
        )
        np.testing.assert_allclose(model.weight.numpy(), W.numpy(), atol=1e-4)
        np.testing.assert_allclose(model.bias.numpy(), b.numpy(), atol=1e-4)
        out[cw] = model(data.features)
    assert (out["balanced"] > 0).sum() > (out[None] > 0).sum()
    with pytest.raises(ValueError, match="class_weight"):
        STIL(2, class_weight="auto")


def test_em_recovers_the_planted_subtube():
    """After EM, every positive video's selection is exactly actor A during the action. With
    penalty 0.5 (the priors 0.6-0.7 then start from the whole actor-A tube); with the paper's
    penalty 1 the selection stays inside the action (a box joins only if its score exceeds the
    margin 1, see docs/stil.md)."""
    feats, priors, dets, tubes, labels, truth = planted_toy()
    data = build_stil_data(feats, priors, tubes, labels, 2, folds=3, dets=dets)
    model = STIL(2, penalty=0.5, em_epochs=4)
    hist = model.fit_em(data)
    for i, v in enumerate(data.videos):
        assert selected_rows(model, data, i, labels[v][0]).tolist() == truth[v].tolist(), v
    assert hist[-1]["selection_change"] == 0.0 and hist[0]["boxes_per_video"] == 12.0
    assert all(h["converged"] == 1.0 for h in hist)
    # the learned final models score the planted action boxes above everything else
    s = model(data.features)  # [N, L]
    lab = data.labels[data.box_video]  # [N, L]
    action = torch.zeros_like(lab)
    for i, v in enumerate(data.videos):
        action[int(data.box_offsets[i]) + truth[v], labels[v][0]] = True
    assert s[action].min() > 0 > s[~action].max()

    model = STIL(2, em_epochs=4)  # paper defaults: hinge, penalty 1
    model.fit_em(data)
    for i, v in enumerate(data.videos):
        rows = selected_rows(model, data, i, labels[v][0])
        assert len(rows) >= 1 and np.isin(rows, truth[v]).all(), v


def fit_with_lightning(model: STIL, data, **trainer_kwargs) -> pl.Trainer:
    """``model`` trained on ``data`` by a quiet CPU Lightning Trainer (``trainer_kwargs`` on top)."""
    trainer = pl.Trainer(
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        accelerator="cpu",
        **trainer_kwargs,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Lightning: no optimizer, few batches
        trainer.fit(model, datamodule=STILDataModule(data))
    return trainer


def test_lightning_fit_equals_plain_em_and_stops_after_em_epochs():
    feats, priors, dets, tubes, labels, _ = planted_toy(num_videos=6, F=8)
    data = build_stil_data(feats, priors, tubes, labels, 2, folds=2, dets=dets)
    plain = STIL(2, folds=2, em_epochs=2, loss="squared_hinge")
    plain.fit_em(data)
    model = STIL(2, folds=2, em_epochs=2, loss="squared_hinge")
    trainer = fit_with_lightning(model, data, max_epochs=10, logger=False)
    assert trainer.current_epoch == 2
    torch.testing.assert_close(model.models_weight, plain.models_weight)
    torch.testing.assert_close(model.models_bias, plain.models_bias)
    assert "train/objective" in trainer.callback_metrics
    assert "train/selection_change" in trainer.callback_metrics


def test_em_statistics_reach_the_logger_every_round(tmp_path):
    """One M-step per epoch never reaches ``log_every_n_steps``: the EM statistics are logged per
    epoch, so a CSV (or W&B) run shows every round, not only the test metrics."""
    import csv

    from pytorch_lightning.loggers import CSVLogger

    feats, priors, dets, tubes, labels, _ = planted_toy(num_videos=6, F=8)
    data = build_stil_data(feats, priors, tubes, labels, 2, folds=2, dets=dets)
    model = STIL(2, folds=2, em_epochs=3, loss="squared_hinge")
    logger = CSVLogger(tmp_path, name="csv")
    fit_with_lightning(model, data, max_epochs=3, logger=logger, log_every_n_steps=10)  # configs'
    (path,) = tmp_path.rglob("metrics.csv")
    rows = [r for r in csv.DictReader(path.open()) if r.get("train/objective")]
    assert [int(r["epoch"]) for r in rows] == [0, 1, 2]
    logged = [float(r["train/objective"]) for r in rows]
    assert logged == pytest.approx([h["objective"] for h in model.history], rel=1e-6)
    assert all(float(r["train/m_step_s"]) >= 0 and float(r["train/e_step_s"]) >= 0 for r in rows)
    # a state dict loads into a fresh model that has not seen the data
    fresh = STIL(2, folds=2)
    fresh.load_state_dict(model.state_dict())
    torch.testing.assert_close(fresh.weight, model.weight)
    assert fresh.weight.shape == (2, 8)


def test_assign_folds_is_balanced_and_stratified():
    labels = np.zeros((31, 3), bool)
    labels[np.arange(30), np.arange(30) % 3] = True  # video 30 has no label
    fold = assign_folds(labels, 3, seed=1)
    for c in range(3):  # each class's 10 videos spread 4/3/3 over the folds
        assert sorted(np.bincount(fold[labels[:, c]], minlength=3).tolist()) == [3, 3, 4]
    assert sorted(np.bincount(fold).tolist()) == [10, 10, 11]
    assert (assign_folds(labels, 1) == 0).all()
    assert (assign_folds(labels, 3, seed=1) == fold).all()
    assert not (assign_folds(labels, 3, seed=2) == fold).all()


# ------------------------------------------------------------------------------------ inference


def test_predict_tubes_known_answer():
    """Class 0 scores box A 0.5, 1.5, -1 over three frames: its tube is A in frames 0-1 (stops
    where the score turns negative), score 1.0; class 1 scores box B 2 everywhere: one tube over
    all three frames, score 2.0 + b."""
    frame = np.array([0, 0, 1, 1, 2, 2])
    A, B = [0, 0, 10, 10], [50, 50, 60, 60]
    d = Detections(frame, np.array([A, B, A, B, A, B], float), np.ones(6), 3)
    feats = np.array([[0.5, -1], [-1, 2], [1.5, -1], [-1, 2], [-1, -1], [-1, 2]], np.float32)
    W = torch.eye(2)
    b = torch.tensor([0.0, 0.25])
    res = predict_tubes(W, b, {"v": feats}, {"v": d}, num_tubes_per_class=2, normalize=False)
    assert len(res) == 2
    by_label = {int(res.label[i]): i for i in range(2)}
    i0, i1 = by_label[0], by_label[1]
    assert res.score[i0] == pytest.approx(1.0) and res.score[i1] == pytest.approx(2.25)
    np.testing.assert_array_equal(res.tube(i0), [[0, *A], [1, *A]])
    np.testing.assert_array_equal(res.tube(i1), [[0, *B], [1, *B], [2, *B]])


def test_predict_tubes_equals_per_class_temporal_prim():
    """Loop twin: per video and class, Temporal Prim on all boxes with the model scores."""
    rng = np.random.default_rng(0)
    L, D = 3, 6
    W = torch.tensor(rng.normal(size=(L, D)), dtype=torch.float32)
    b = torch.tensor(rng.normal(0, 0.2, L), dtype=torch.float32)
    dets, feats = {}, {}
    for v in range(4):
        n, F = 60, 10
        frame = rng.integers(0, F, n)
        xy = rng.uniform(0, 40, (n, 2))
        boxes = np.concatenate([xy, xy + rng.uniform(10, 30, (n, 2))], 1)
        dets[f"v{v}"] = Detections.from_unsorted(frame, boxes, rng.random(n), F)
        feats[f"v{v}"] = rng.normal(size=(n, D))
    res = predict_tubes(W, b, feats, dets, num_tubes_per_class=3, batch_items=5)
    got = sorted((r[0], r[1], round(r[2], 5), r[3].tobytes()) for r in res)
    want = []
    for v, d in dets.items():
        x = feats[v] / np.linalg.norm(feats[v], axis=1, keepdims=True)
        S = x @ W.numpy().T + b.numpy()  # [N, L]
        for c in range(L):
            t = temporal_prim(d, 3, min_score=0.0, scores=S[:, c])
            for k in range(t.num_tubes):
                assert (S[t.box_index[k, t.valid[k]], c] > 0).all()
                want.append((v, c, round(float(t.scores[k]), 5), t.rows(k).tobytes()))
    assert got == sorted(want) and len(got) > 10


# --------------------------------------------------------------------------------------- errors


def test_bad_input_errors():
    feats, priors, dets, tubes, labels, _ = planted_toy(num_videos=4, F=6)
    build = build_stil_data
    with pytest.raises(ValueError, match="class\\(es\\) \\[2\\] have no positive"):
        build(feats, priors, tubes, labels, 3, dets=dets)
    bad = dict(feats, v1=np.full_like(feats["v1"], np.nan))
    with pytest.raises(ValueError, match="'v1'.*NaN"):
        build(bad, priors, tubes, labels, 2, dets=dets)
    bad = dict(feats, v2=np.zeros_like(feats["v2"]))
    with pytest.raises(ValueError, match="'v2'.*all features are zero"):
        build(bad, priors, tubes, labels, 2, dets=dets)
    bad = dict(feats, v0=feats["v0"][:-1])
    with pytest.raises(ValueError, match="'v0'.*17 feature rows but 18 detections"):
        build(bad, priors, tubes, labels, 2, dets=dets)
    with pytest.raises(ValueError, match="'v3'.*outside"):
        build(feats, priors, tubes, dict(labels, v3=[5]), 2, dets=dets)
    t = tubes["v0"]
    bi = t.box_index.copy()
    bi[0, t.valid[0].argmax()] = -1  # a tracker-made box
    bad_t = dict(tubes, v0=Tubes(t.boxes, t.valid, bi, t.scores))
    with pytest.raises(ValueError, match="'v0'.*box_index -1"):
        build(feats, priors, bad_t, labels, 2, dets=dets)
    with pytest.raises(ValueError, match="no priors"):
        build(dict(feats, extra=feats["v0"]), priors, tubes, labels, 2, dets=dets)
    # a video without boxes is left out with a warning
    empty = Detections.empty(5)
    with pytest.warns(UserWarning, match="no boxes"):
        data = build(
            dict(feats, e=np.zeros((0, 8))),
            dict(priors, e=np.zeros(0)),
            dict(tubes, e=Tubes.empty(5)),
            dict(labels, e=[0]),
            2,
            dets=dict(dets, e=empty),
        )
    assert "e" not in data.videos and data.num_videos == 4
    # the model: no coordinates for background negatives, class count mismatch
    data = build(feats, priors, tubes, labels, 2)
    with pytest.raises(ValueError, match="background_negatives needs box coordinates"):
        STIL(2).attach(data)
    with pytest.raises(ValueError, match="2 classes, the model 3"):
        STIL(3, background_negatives=False).attach(data)
    with pytest.raises(ValueError, match="unknown selection"):
        STIL(2, selection="best")
    # inference: features not matching the detections
    with pytest.raises(ValueError, match="'v1'.*feature rows"):
        predict_tubes(torch.zeros(2, 8), torch.zeros(2), dict(feats, v1=feats["v1"][:3]), dets)
    with pytest.raises(ValueError, match="'v1'.*no features"):
        predict_tubes(torch.zeros(2, 8), torch.zeros(2), {"v0": feats["v0"]}, dets)


def test_class_whose_positive_videos_have_no_tube():
    feats, priors, dets, tubes, labels, _ = planted_toy(num_videos=4, F=6)
    no_tube = dict(tubes, v1=Tubes.empty(6), v3=Tubes.empty(6))  # both class-1 videos
    data = build_stil_data(feats, priors, no_tube, labels, 2, dets=dets)
    with pytest.raises(
        ValueError, match="class\\(es\\) \\[1\\] have no positive training video with a tube"
    ):
        with pytest.warns(UserWarning, match="no tube"):
            STIL(2).attach(data)
    STIL(2, selection="mil").attach(data)  # MIL does not need tubes


def test_selection_quality_by_hand():
    """Selected (box, class) pairs on a GT box of their class (IoU >= 0.5, same frame)."""
    from wsal.data.annotations import DatasetIndex, GTTube, VideoInfo
    from wsal.models.stil_data import selection_quality

    gt = GTTube(0, np.array([0, 1]), np.array([[0, 0, 10, 10], [0, 0, 10, 10]], np.float32))
    index = DatasetIndex(["a", "b"], {"train": ["v"]}, {"v": VideoInfo(3, [0], [gt])})
    boxes = np.array([[0, 0, 10, 10], [5, 5, 15, 15], [0, 0, 10, 10]], np.float32)
    frame = np.array([0, 1, 2])  # row 2: a frame without GT
    sel = np.zeros((3, 2), bool)
    sel[:, 0] = True  # IoU 1, 25/175, no GT box
    sel[0, 1] = True  # class 1 has no GT tube in this video
    q = selection_quality(["v"], np.zeros(3, np.int64), frame, boxes, sel, index)
    assert q == {"precision": 0.25, "videos_hit": 0.5, "boxes": 4.0}


def test_score_proposals_by_hand():
    from wsal.models.stil import STIL, score_proposals

    # 4 boxes on 3 frames; tube 0 = box 0, a tracker box (-1), box 3; tube 1 = boxes 1 and 2;
    # tube 2 has no detector box (cannot be scored)
    dets = Detections(
        np.array([0, 0, 1, 2]),
        np.array([[0, 0, 10, 10], [20, 0, 30, 10], [21, 0, 31, 10], [1, 0, 11, 10]], np.float32),
        np.ones(4, np.float32),
        3,
    )
    feats = np.array([[1, 0], [0, 1], [1, 1], [3, 0]], np.float32)  # unnormalised
    W = np.array([[1.0, 0.0], [0.0, 2.0]], np.float32)  # class 0 reads x, class 1 reads 2y
    b = np.array([0.5, -1.0], np.float32)
    boxes = np.zeros((3, 3, 4), np.float32)
    valid = np.array([[1, 1, 1], [1, 1, 0], [0, 1, 1]], bool)
    bidx = np.array([[0, -1, 3], [1, 2, -1], [-1, -1, -1]])
    tubes = Tubes(boxes, valid, bidx, np.zeros(3))
    got = score_proposals(W, b, {"v": feats}, {"v": dets}, {"v": tubes}, normalize=False)
    # tube 0: boxes 0 and 3 -> class 0: mean(1.5, 3.5) = 2.5, class 1: mean(-1, -1) = -1
    # tube 1: boxes 1 and 2 -> class 0: mean(0.5, 1.5) = 1.0, class 1: mean(1, 1) = 1
    assert len(got) == 4  # 2 scorable tubes x 2 classes
    by = {(int(lab), i % 2): s for i, (lab, s) in enumerate(zip(got.label, got.score))}
    np.testing.assert_allclose([by[(0, 0)], by[(0, 1)], by[(1, 0)], by[(1, 1)]], [2.5, 1.0, -1, 1])
    assert got.lengths().tolist() == [3, 2, 3, 2]  # whole tubes, tracker boxes included
    # normalised features: box 3 = (1, 0) like box 0
    norm = score_proposals(W, b, {"v": feats}, {"v": dets}, {"v": tubes}, normalize=True)
    np.testing.assert_allclose(norm.score[0], 1.5)
    # through the model: the option routes, and the proposals are required
    model = STIL(2, test_tubes="proposals", normalize=False, feature_dim=2, folds=1)
    model.models_weight[-1] = torch.from_numpy(W)
    model.models_bias[-1] = torch.from_numpy(b)
    via = model.predict_tubes({"v": feats}, {"v": dets}, proposals={"v": tubes})
    np.testing.assert_allclose(via.score, got.score)
    with pytest.raises(ValueError, match="proposals"):
        model.predict_tubes({"v": feats}, {"v": dets})
    with pytest.raises(ValueError, match="test_tubes"):
        STIL(2, test_tubes="all")


def test_score_proposals_coverage_by_hand():
    """tube_score="coverage": sum of sigmoid(box score) over the tube's detector boxes / the
    video's frames, so a whole tube of confident boxes outranks a short fragment of more
    confident ones (the mean ranks them the other way)."""
    from wsal.models.stil import STIL, score_proposals

    # 5 frames, one box per frame on the performer (boxes 0, 1, 3, 5, 6) and a 2-frame fragment
    # (boxes 2 and 4, frames 1-2)
    frame = np.array([0, 1, 1, 2, 2, 3, 4])
    boxes = np.tile(np.array([0, 0, 10, 10], np.float32), (7, 1))
    dets = Detections(frame, boxes, np.ones(7, np.float32), 5)
    x = np.array([1.0, 1.0, 2.0, 1.0, 2.0, 1.0, 1.0], np.float32)
    feats = np.stack([x, np.zeros(7, np.float32)], 1)  # class 0 score = x (W = [1, 0], b = 0)
    W, b = np.array([[1.0, 0.0]], np.float32), np.zeros(1, np.float32)
    valid = np.zeros((2, 5), bool)
    valid[0] = True
    valid[1, 1:3] = True
    bidx = np.full((2, 5), -1)
    bidx[0] = [0, 1, 3, 5, 6]
    bidx[1, 1:3] = [2, 4]
    tubes = Tubes(np.zeros((2, 5, 4), np.float32), valid, bidx, np.zeros(2))
    args = (W, b, {"v": feats}, {"v": dets}, {"v": tubes})
    mean = score_proposals(*args, normalize=False, tube_score="mean")
    cov = score_proposals(*args, normalize=False, tube_score="coverage")
    sig = lambda z: 1 / (1 + np.exp(-z))  # noqa: E731
    np.testing.assert_allclose(mean.score, [1.0, 2.0])
    np.testing.assert_allclose(cov.score, [5 * sig(1.0) / 5, 2 * sig(2.0) / 5], rtol=1e-6)
    assert cov.score[0] > cov.score[1] and mean.score[0] < mean.score[1]
    # through the model (the hyperparameter reaches score_proposals)
    model = STIL(
        1, test_tubes="proposals", tube_score="coverage", normalize=False, feature_dim=2, folds=1
    )
    model.models_weight[-1] = torch.from_numpy(W)
    model.models_bias[-1] = torch.from_numpy(b)
    via = model.predict_tubes({"v": feats}, {"v": dets}, proposals={"v": tubes})
    np.testing.assert_allclose(via.score, cov.score)
    with pytest.raises(ValueError, match="tube_score"):
        score_proposals(*args, tube_score="max")
    with pytest.raises(ValueError, match="tube_score"):
        STIL(1, tube_score="max")
    with pytest.raises(ValueError, match="test_tubes='proposals'"):
        STIL(1, tube_score="coverage", test_tubes="link")


def test_pca_dim_projection_by_hand_round_trip_and_em():
    """pca_dim: the axes are orthonormal, ``project_features`` is l2(l2(x) - mean) @ P by hand,
    a state dict carries the projection into a fresh model (same test scores), and with all D
    axes (a centred rotation) EM still recovers the planted subtube."""
    feats, priors, dets, tubes, labels, truth = planted_toy()
    data = build_stil_data(feats, priors, tubes, labels, 2, folds=3, dets=dets)
    model = STIL(2, penalty=0.5, em_epochs=2, pca_dim=4, test_tubes="proposals")
    model.fit_em(data)
    assert model.proj.shape == (8, 4) and model.weight.shape == (2, 4)
    torch.testing.assert_close(model.proj.T @ model.proj, torch.eye(4), atol=1e-5, rtol=0)
    x = feats["v0"][:5].astype(np.float32)
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    y = (xn - model.proj_mean.numpy()) @ model.proj.numpy()
    np.testing.assert_allclose(
        model.project_features(x), y / np.linalg.norm(y, axis=1, keepdims=True), atol=1e-5
    )
    fresh = STIL(2, pca_dim=4, test_tubes="proposals")
    fresh.load_state_dict(model.state_dict())
    test = {v: feats[v] for v in ("v0", "v1")}
    props = {v: tubes[v] for v in test}
    got = fresh.predict_tubes(test, {v: dets[v] for v in test}, proposals=props)
    want = model.predict_tubes(test, {v: dets[v] for v in test}, proposals=props)
    assert len(want.score) > 0
    np.testing.assert_allclose(got.score, want.score)
    full = STIL(2, penalty=0.5, em_epochs=4, pca_dim=8)
    full.fit_em(data)
    for i, v in enumerate(data.videos):
        assert selected_rows(full, data, i, labels[v][0]).tolist() == truth[v].tolist(), v
    with pytest.raises(ValueError, match="pca_dim=9 exceeds the box feature size 8"):
        STIL(2, pca_dim=9).fit_em(data)
    with pytest.raises(ValueError, match="pca_dim"):
        STIL(2, pca_dim=0)
