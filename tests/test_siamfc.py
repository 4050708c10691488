"""SiamFC tracker: network geometry, crops, the locate/update math by hand, batched tracking equal
to per-target init/update, clipping, errors, checkpoints, and training / evaluation plumbing.

Tests use random-init networks and tiny hand-made "moving square" videos (lossless mp4, exact GT
boxes); one trains a tracker for 24 steps until it follows the squares. All on one CPU thread.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from wsal.data.annotations import DatasetIndex, GTTube, VideoInfo, write_wsal_json
from wsal.data.video import write_video
from wsal.linking.siamfc import (
    SiamFCConfig,
    SiamFCTracker,
    crop_regions,
    exemplar_regions,
    locate,
    output_boxes,
    start_boxes,
    xcorr,
)
from wsal.models import tracker as trk
from wsal.models.tracker import (
    SUCCESS_THRESHOLDS,
    TrackerTrainConfig,
    TrackingPairs,
    balanced_logistic_loss,
    default_tracker_checkpoint,
    default_tracker_path,
    ensure_tracker,
    evaluate_tracker,
    response_labels,
    tracking_metrics,
    train_tracker,
)
from wsal.nets.siamfc import SiamFCNet, load_checkpoint, make_tracker, save_checkpoint
from wsal.tube_ops import box_iou_paired

CFG = SiamFCConfig()


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One intra-op thread: these tiny tensors gain nothing from more, and on a shared 2-core
    machine two OpenMP threads were measured 3-7x slower (bench/bench_tracker.py)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def random_net(seed: int = 0, config: SiamFCConfig | None = None) -> SiamFCNet:
    """A random-init net with non-trivial BatchNorm statistics (so BN folding is exercised)."""
    torch.manual_seed(seed)
    net = SiamFCNet(config)
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
    return net.eval()


# ------------------------------------------------------------------------------ moving squares
def square_video(rng: np.random.Generator, T: int, H: int = 72, W: int = 96):
    """A square of random colour moving (bouncing) over a smooth random background.
    Returns (frames uint8 [T, H, W, 3], boxes float32 [T, 4] exact xyxy)."""
    import cv2

    bg = rng.integers(40, 140, (H // 8 + 1, W // 8 + 1, 3)).astype(np.uint8)
    bg = cv2.resize(bg, (W, H), interpolation=cv2.INTER_LINEAR)
    w, h = (int(v) for v in rng.integers(12, 22, 2))
    colour = rng.integers(170, 256, 3).astype(np.uint8)
    pos = rng.uniform([0, 0], [W - w, H - h])
    vel = rng.uniform(-3, 3, 2)
    frames = np.repeat(bg[None], T, axis=0)
    boxes = np.zeros((T, 4), np.float32)
    for t in range(T):
        x, y = (int(round(v)) for v in pos)
        frames[t, y : y + h, x : x + w] = colour
        boxes[t] = [x, y, x + w, y + h]
        pos = pos + vel
        for a, lim in ((0, W - w), (1, H - h)):  # bounce off the borders
            if not 0 <= pos[a] <= lim:
                vel[a] = -vel[a]
                pos[a] = np.clip(pos[a], 0, lim)
    return frames, boxes


def square_dataset(root: Path, n_train: int, n_test: int, T: int, seed: int = 0) -> DatasetIndex:
    """A wsal dataset of moving-square videos (lossless mp4) with one GT tube each."""
    rng = np.random.default_rng(seed)
    videos, splits = {}, {"train": [], "test": []}
    for i in range(n_train + n_test):
        vid = f"sq{i:03d}"
        frames, boxes = square_video(rng, T)
        write_video(root / "videos" / f"{vid}.mp4", frames, lossless=True)
        videos[vid] = VideoInfo(
            nframes=T,
            labels=[0],
            tubes=[GTTube(0, np.arange(T), boxes)],
            width=frames.shape[2],
            height=frames.shape[1],
            fps=25.0,
            path=f"videos/{vid}.mp4",
        )
        splits["train" if i < n_train else "test"].append(vid)
    index = DatasetIndex(["square"], splits, videos, root=root)
    write_wsal_json(index, root / "annotations.json")
    return index


@pytest.fixture(scope="module")
def squares(tmp_path_factory) -> DatasetIndex:
    return square_dataset(tmp_path_factory.mktemp("squares"), n_train=4, n_test=2, T=12)


# --------------------------------------------------------------------------------- network
def test_config_defaults_and_validation():
    assert CFG.response_size == 17 and SiamFCNet.stride == 4
    with pytest.raises(ValueError, match="multiple of 4"):
        SiamFCConfig(search_size=126)
    with pytest.raises(ValueError, match="odd"):
        SiamFCConfig(num_scales=2)
    with pytest.raises(ValueError, match="channels"):
        SiamFCConfig(channels=(8, 8, 8))
    with pytest.raises(ValueError, match="unknown"):
        SiamFCConfig.from_dict({"nope": 1})
    assert SiamFCConfig.from_dict(CFG.to_dict()) == CFG


def test_shapes():
    net = random_net()
    z = torch.rand(2, 3, 63, 63) * 255
    x = torch.rand(6, 3, 127, 127) * 255
    assert net.embed(z).shape == (2, 32, 6, 6)
    assert net.embed(x).shape == (6, 32, 22, 22)
    assert net(z, x).shape == (6, 1, 17, 17)  # 2 exemplars x 3 search crops each
    assert net(z, x[:2]).shape == (2, 1, 17, 17)


def test_xcorr_matches_naive_loop():
    g = torch.Generator().manual_seed(1)
    K, m, C = 3, 2, 4
    zf = torch.randn(K, C, 3, 2, generator=g, dtype=torch.float64)
    xf = torch.randn(K * m, C, 7, 6, generator=g, dtype=torch.float64)
    out = xcorr(zf, xf)
    assert out.shape == (K * m, 1, 5, 5)
    ref = torch.zeros_like(out)
    for k in range(K):
        for j in range(m):
            for u in range(5):
                for v in range(5):
                    ref[k * m + j, 0, u, v] = (zf[k] * xf[k * m + j, :, u : u + 3, v : v + 2]).sum()
    assert torch.allclose(out, ref)
    with pytest.raises(ValueError, match="pair up"):
        xcorr(zf, xf[:5])


def test_response_cell_means_stride_displacement():
    """Exact geometry: an exemplar cut from the search crop at offset (4a, 4b) from its centre
    window is matched perfectly at response cell (8 + b, 8 + a) (row, col): valid convolutions,
    stride 4, so sub-window features are sub-features."""
    net = random_net().double()
    x = torch.rand(1, 3, 127, 127, dtype=torch.float64) * 255
    xf = net.embed(x)
    for a, b in ((0, 0), (3, -2), (-8, 8)):
        x0, y0 = 32 + 4 * a, 32 + 4 * b
        z = x[:, :, y0 : y0 + 63, x0 : x0 + 63]
        zf = net.embed(z)
        assert torch.allclose(xf[:, :, 8 + b : 14 + b, 8 + a : 14 + a], zf, atol=1e-9)
        r = xcorr(zf, xf)[0, 0]
        assert torch.isclose(r[8 + b, 8 + a], (zf * zf).sum())


def test_inference_embedding_equals_embed():
    net = random_net(3)
    fused = net.inference_embedding()
    x = torch.rand(4, 3, 127, 127) * 255
    with torch.no_grad():
        a = net.embed(x)
        b = fused(x.contiguous(memory_format=torch.channels_last))
    assert torch.allclose(a, b, atol=1e-3 * a.abs().max().item())
    assert not any(p.requires_grad for p in fused.parameters())


# ----------------------------------------------------------------------------------- crops
def test_exemplar_regions_by_hand():
    c, s, x_sz = exemplar_regions(torch.tensor([[10.0, 20.0, 30.0, 60.0]]), 0.5, 63, 127)
    # w=20, h=40, p=30: z_sz = sqrt(50 * 70)
    assert torch.allclose(c, torch.tensor([[20.0, 40.0]]))
    assert torch.allclose(s, torch.tensor([[20.0, 40.0]]))
    assert torch.isclose(x_sz[0], torch.tensor(math.sqrt(50 * 70) * 127 / 63))


def test_crop_regions_samples_a_ramp_exactly():
    """On a linear ramp, bilinear sampling (and 2x2 averaging) is exact: every crop pixel inside
    the frame equals the ramp at its documented sample point, at pyramid level 0 and above."""
    H, W = 64, 96
    yy, xx = torch.meshgrid(torch.arange(H) + 0.5, torch.arange(W) + 0.5, indexing="ij")
    frame = torch.stack([xx, yy, xx + yy]).double()  # value = coordinate of the pixel centre
    centre = torch.tensor([[48.0, 32.0], [40.0, 30.0], [50.0, 33.0]], dtype=torch.float64)
    side = torch.tensor([20.0, 50.0, 60.0], dtype=torch.float64)  # level 0, 1 (r=2.5), 1 (3.0)
    out = 20
    crops = crop_regions(frame, centre, side, out)
    for n in range(3):
        j = torch.arange(out, dtype=torch.float64)
        sx = centre[n, 0] - side[n] / 2 + (j + 0.5) * side[n] / out  # [out]
        sy = centre[n, 1] - side[n] / 2 + (j + 0.5) * side[n] / out
        lvl = 2 ** max(0, math.floor(math.log2(side[n].item() / out)))
        # samples at least half a level-pixel inside the frame: no edge clamping
        okx = (sx >= lvl / 2) & (sx <= W - lvl / 2)
        oky = (sy >= lvl / 2) & (sy <= H - lvl / 2)
        ok = oky[:, None] & okx[None, :]
        assert ok.sum() > 100
        assert torch.allclose(crops[n, 0][ok], sx[None, :].expand(out, out)[ok], atol=1e-9)
        assert torch.allclose(crops[n, 1][ok], sy[:, None].expand(out, out)[ok], atol=1e-9)
    # one at a time == batched
    for n in range(3):
        assert torch.allclose(
            crop_regions(frame, centre[n : n + 1], side[n : n + 1], out)[0], crops[n]
        )


def test_crop_regions_pads_with_the_frame_mean():
    frame = torch.zeros(3, 40, 50)
    frame[0] = 200.0
    frame[1, :, :25] = 100.0  # mean of channel 1 = 50
    crops = crop_regions(frame, torch.tensor([[-100.0, -100.0]]), torch.tensor([30.0]), 15)
    assert torch.allclose(crops[0, :, 0, 0], torch.tensor([200.0, 50.0, 0.0]))
    assert torch.allclose(crops[0].amax(dim=(1, 2)), crops[0].amin(dim=(1, 2)))  # all padding


# ---------------------------------------------------------------------- the decision, by hand
def delta_response(S: int, scale: int, row: int, col: int, value: float) -> torch.Tensor:
    r = torch.zeros(1, S, 17, 17, dtype=torch.float64)
    r[0, scale, row, col] = value
    return r


def test_locate_delta_gives_exact_displacement_and_score():
    cfg = SiamFCConfig()
    for row, col in ((8, 8), (9, 6), (4, 12)):
        disp, s, score = locate(delta_response(3, 1, row, col, 5.0), cfg)
        assert s.item() == 1
        assert torch.allclose(
            disp[0], torch.tensor([(col - 8) * 4.0, (row - 8) * 4.0], dtype=disp.dtype)
        )
        assert torch.isclose(score[0], torch.sigmoid(torch.tensor(5.0, dtype=score.dtype)))


def test_locate_scale_penalty():
    cfg = SiamFCConfig(scale_penalty=0.9)
    # a side scale wins only if its peak beats the unit scale's by more than the penalty
    r = delta_response(3, 1, 8, 8, 1.0)
    r[0, 2, 8, 8] = 1.05  # 1.05 * 0.9 < 1
    assert locate(r, cfg)[1].item() == 1
    r[0, 2, 8, 8] = 1.2  # 1.2 * 0.9 > 1
    assert locate(r, cfg)[1].item() == 2
    # negative logits (constant maps): the penalty still penalises. SiamFC's multiplication would
    # pick scale 0 here (-1.0 * 0.9 = -0.9 > -0.95); the penalty of |peak| keeps the unit scale
    r = torch.tensor([-1.0, -0.95, -2.0], dtype=torch.float64).view(1, 3, 1, 1).expand(1, 3, 17, 17)
    assert locate(r, cfg)[1].item() == 1


def test_update_math_with_a_hand_made_response(monkeypatch):
    """Two steps with a response forced to a delta: the box moves by the documented amount and the
    size follows the damped scale update."""
    cfg = SiamFCConfig()
    tracker = SiamFCTracker(random_net(), config=cfg)
    frame = np.zeros((120, 160, 3), np.uint8)
    tracker.init(frame, np.array([40.0, 30.0, 60.0, 70.0]))
    cells = iter([(2, 9, 6), (0, 8, 11)])  # (scale, row, col) of the delta at each step

    def head(zf, xf):
        s, row, col = next(cells)
        r = torch.zeros(xf.shape[0], 1, 17, 17, dtype=xf.dtype)
        r[s, 0, row, col] = 5.0
        return r

    monkeypatch.setattr(tracker.net, "head", head)
    f = [cfg.scale_step ** (i - 1) for i in range(3)]
    centre, size = np.array([50.0, 50.0]), np.array([20.0, 40.0])
    p = cfg.context * (20 + 40)
    x_sz = math.sqrt((20 + p) * (40 + p)) * 127 / 63
    for s, row, col in [(2, 9, 6), (0, 8, 11)]:
        box = tracker.update(frame)
        centre = centre + np.array([(col - 8) * 4, (row - 8) * 4]) * x_sz * f[s] / 127
        scale = (1 - cfg.scale_lr) + cfg.scale_lr * f[s]
        size, x_sz = size * scale, x_sz * scale
        np.testing.assert_allclose(
            box, np.concatenate([centre - size / 2, centre + size / 2]), atol=1e-3
        )


# ------------------------------------------------------------------------------ clipping rules
def test_output_boxes_clip_and_min_size():
    c = torch.tensor([[50.0, 40.0], [0.0, 10.0], [100.0, 80.0], [30.0, 30.0]])
    s = torch.tensor([[20.0, 10.0], [20.0, 10.0], [6.0, 2.0], [1.0, 2.0]])
    out = output_boxes(c, s, 100, 80, 4.0)
    expected = torch.tensor(
        [
            [40.0, 35.0, 60.0, 45.0],  # inside: unchanged
            [0.0, 5.0, 10.0, 15.0],  # half outside on the left: clipped
            [96.0, 76.0, 100.0, 80.0],  # centre on the corner: clipped, kept 4 px
            [29.5, 29.0, 33.5, 33.0],  # thinner than 4 px: widened to 4 px from x1 / y1
        ]
    )
    assert torch.allclose(out, expected)
    tiny = output_boxes(torch.tensor([[1.0, 1.0]]), torch.tensor([[10.0, 10.0]]), 3, 2, 4.0)
    assert torch.allclose(tiny, torch.tensor([[0.0, 0.0, 3.0, 2.0]]))  # frame narrower than min_box


def test_start_boxes_clip_unchanged_and_errors():
    b = np.array([[10.25, 5.5, 30.125, 40.0], [-10.0, -5.0, 20.0, 30.0]])
    out = start_boxes(b, 64, 48, CFG)
    assert np.array_equal(out[0], b[0])  # bit for bit
    assert np.array_equal(out[1], [0.0, 0.0, 20.0, 30.0])
    for bad, msg in (
        ([[0, 0, np.nan, 5]], "non-finite"),
        ([[5, 0, 5, 5]], "x2 <= x1"),
        ([[70, 0, 80, 10]], "entirely outside"),
    ):
        with pytest.raises(ValueError, match=msg):
            start_boxes(np.array(bad, float), 64, 48, CFG)


# ---------------------------------------------------------------------------------- tracking
def reference_track(tracker, frames, f0, box):
    """Per-target twin of ``track``: init/update forward to the end, then again backward."""
    T = len(frames)
    out = np.full((T, 4), np.nan, np.float32)
    tracker.init(frames[f0], box)
    out[f0] = start_boxes(box[None], frames.shape[2], frames.shape[1], tracker.config)[0]
    for t in range(f0 + 1, T):
        out[t] = tracker.update(frames[t])
    tracker.init(frames[f0], box)
    for t in range(f0 - 1, -1, -1):
        out[t] = tracker.update(frames[t])
    return out


def test_batched_track_equals_per_target_init_update():
    rng = np.random.default_rng(0)
    frames, _ = square_video(rng, 10, H=60, W=80)
    frames = np.clip(frames.astype(int) + rng.integers(-30, 30, frames.shape), 0, 255).astype(
        np.uint8
    )
    tracker = SiamFCTracker(random_net(2))
    f0 = np.array([0, 4, 9, 4, 6])
    b0 = np.array(
        [[10, 10, 30, 40], [40, 5, 70, 50], [60, 40, 79, 59], [-5, 30, 15, 70], [20, 20, 22, 23]],
        np.float32,
    )  # a box reaching outside the frame, a tiny one
    boxes, scores = tracker.track(frames, f0, b0)
    assert boxes.shape == (5, 10, 4) and boxes.dtype == np.float32 and scores.shape == (5, 10)
    assert np.isfinite(boxes).all() and np.isfinite(scores).all()
    assert (scores[np.arange(5), f0] == 1.0).all()
    others = np.ones((5, 10), bool)
    others[np.arange(5), f0] = False
    assert ((scores[others] >= 0) & (scores[others] <= 1)).all()
    # inside the frame, at least min_box wide
    assert (
        (boxes[..., :2] >= 0).all() and (boxes[..., 2] <= 80).all() and (boxes[..., 3] <= 60).all()
    )
    assert (boxes[..., 2:] - boxes[..., :2] >= 4 - 1e-4).all()
    np.testing.assert_array_equal(boxes[0, 0], b0[0])
    for k in range(5):
        ref = reference_track(tracker, frames, int(f0[k]), b0[k].astype(np.float64))
        np.testing.assert_allclose(boxes[k], ref, atol=1e-3)
    # a torch input and one direction at a time give the same boxes
    fwd, _ = tracker.track(torch.from_numpy(frames), f0, b0, backward=False)
    bwd, _ = tracker.track(frames, f0, b0, forward=False)
    t = np.arange(10)
    after, before = t[None, :] > f0[:, None], t[None, :] < f0[:, None]
    np.testing.assert_allclose(fwd[after], boxes[after], atol=1e-5)
    np.testing.assert_allclose(bwd[before], boxes[before], atol=1e-5)
    assert np.isnan(fwd[before]).all() and np.isnan(bwd[after]).all()


def test_track_handles_tiny_frames_and_no_targets():
    tracker = SiamFCTracker(random_net())
    frames = np.random.default_rng(1).integers(0, 256, (5, 16, 20, 3), dtype=np.uint8)
    boxes, scores = tracker.track(frames, np.array([2]), np.array([[3.0, 2.0, 12.0, 14.0]]))
    assert np.isfinite(boxes).all()  # frames smaller than the crops: resampled and padded
    assert (boxes[..., 2] <= 20).all() and (boxes[..., 3] <= 16).all()
    boxes, scores = tracker.track(frames, np.zeros(0, np.int64), np.zeros((0, 4), np.float32))
    assert boxes.shape == (0, 5, 4) and scores.shape == (0, 5)
    one, _ = tracker.track(frames[:1], np.array([0]), np.array([[3.0, 2.0, 12.0, 14.0]]))
    assert np.array_equal(one[0, 0], [3.0, 2.0, 12.0, 14.0])


def test_errors():
    tracker = SiamFCTracker(random_net())
    frames = np.zeros((4, 48, 64, 3), np.uint8)
    box = np.array([[10.0, 10.0, 20.0, 30.0]])
    with pytest.raises(ValueError, match="empty video"):
        tracker.track(frames[:0], np.array([0]), box)
    with pytest.raises(ValueError, match="frame0 out of range"):
        tracker.track(frames, np.array([4]), box)
    with pytest.raises(ValueError, match="frame0 must be an integer"):
        tracker.track(frames, np.array([0.0]), box)
    with pytest.raises(ValueError, match=r"boxes0 must be \[K=1, 4\]"):
        tracker.track(frames, np.array([0]), box[0])
    with pytest.raises(ValueError, match="boxes0: non-finite"):
        tracker.track(frames, np.array([0]), np.array([[0.0, 0.0, np.inf, 5.0]]))
    with pytest.raises(ValueError, match="x2 <= x1"):
        tracker.track(frames, np.array([0]), np.array([[20.0, 10.0, 10.0, 30.0]]))
    with pytest.raises(ValueError, match="entirely outside"):
        tracker.track(frames, np.array([0]), np.array([[70.0, 10.0, 90.0, 30.0]]))
    with pytest.raises(ValueError, match="uint8"):
        tracker.track(frames.astype(np.float32), np.array([0]), box)
    with pytest.raises(ValueError, match=r"\[T, H, W, 3\]"):
        tracker.track(frames[..., 0], np.array([0]), box)
    with pytest.raises(RuntimeError, match="before init"):
        SiamFCTracker(random_net()).update(frames[0])
    with pytest.raises(ValueError, match="not both"):
        make_tracker(random_net(), checkpoint="x.pt")
    with pytest.raises(ValueError, match="needs a network"):
        SiamFCTracker(None)  # type: ignore[arg-type]


def test_checkpoint_round_trip(tmp_path):
    net = random_net(5)
    path = save_checkpoint(tmp_path / "t.pt", net, {"note": "hi", "val": {"val/loss": 0.5}})
    blob = torch.load(path, weights_only=True)  # plain containers + tensors only
    assert blob["config"] == CFG.to_dict() and blob["extra"]["note"] == "hi"
    net2, extra = load_checkpoint(path)
    assert extra["val"] == {"val/loss": 0.5}
    for (k, a), (k2, b) in zip(net.state_dict().items(), net2.state_dict().items()):
        assert k == k2 and torch.equal(a, b)
    frames = np.random.default_rng(0).integers(0, 256, (4, 48, 64, 3), dtype=np.uint8)
    f0, b0 = np.array([1]), np.array([[10.0, 10.0, 30.0, 40.0]])
    a = SiamFCTracker(net).track(frames, f0, b0)[0]
    b = make_tracker(checkpoint=path).track(frames, f0, b0)[0]
    np.testing.assert_array_equal(a, b)
    # inference hyperparameters may change, the architecture may not
    t = make_tracker(checkpoint=path, config=SiamFCConfig(window_influence=0.3))
    assert t.config.window_influence == 0.3
    t = make_tracker(checkpoint=path, config={"scale_lr": 0.2})  # overrides, as from a yaml
    assert t.config == SiamFCConfig(scale_lr=0.2)
    with pytest.raises(ValueError, match="unknown SiamFCConfig fields"):
        make_tracker(checkpoint=path, config={"scale_rate": 0.2})
    with pytest.raises(ValueError, match="config.channels"):
        make_tracker(checkpoint=path, config=SiamFCConfig(channels=(8, 8, 8, 8, 8)))
    (tmp_path / "bad.pt").write_bytes(b"")
    torch.save({"state_dict": {}}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not a wsal SiamFC checkpoint"):
        load_checkpoint(tmp_path / "other.pt")
    with pytest.raises(FileNotFoundError):
        load_checkpoint(tmp_path / "missing.pt")


# ---------------------------------------------------------------------------------- training
def test_response_labels_and_loss_by_hand():
    off = torch.tensor([[0.0, 0.0], [4.0, -4.0], [100.0, 0.0]])
    labels, w = response_labels(off, (17, 17), 4, 4.0)
    # centre cell and its 4 neighbours (distance 4 <= 4)
    assert labels[0].sum() == 5 and labels[0, 8, 8] == 1 and labels[0, 7, 8] == 1
    assert labels[0, 7, 7] == 0  # distance 4*sqrt(2)
    assert labels[1, 7, 9] == 1 and labels[1].sum() == 5  # (x=+4, y=-4) -> row 7, col 9
    assert labels[2].sum() == 0  # target out of range: negatives only
    assert torch.allclose(w.sum(dim=(1, 2)), torch.ones(3))
    assert torch.isclose(w[0, 8, 8], torch.tensor(0.1)) and torch.isclose(
        w[0, 0, 0], torch.tensor(0.5 / 284)
    )
    g = torch.Generator().manual_seed(0)
    resp = torch.randn(3, 1, 17, 17, generator=g)
    loss = balanced_logistic_loss(resp, labels, w)
    ref = 0.0
    for b in range(3):
        for u in range(17):
            for v in range(17):
                y = 1.0 if labels[b, u, v] else -1.0
                ref += w[b, u, v].item() * math.log1p(math.exp(-y * resp[b, 0, u, v].item()))
    assert math.isclose(loss.item(), ref / 3, rel_tol=1e-5)


def square_centroid(crop: torch.Tensor, colour: np.ndarray) -> np.ndarray:
    """(x, y) centre of the pixels of a crop [3, s, s] close to ``colour``, continuous coords."""
    d = (crop - torch.as_tensor(colour, dtype=crop.dtype)[:, None, None]).abs().amax(dim=0)
    ys, xs = torch.nonzero(d < 2, as_tuple=True)
    return np.array([xs.double().mean() + 0.5, ys.double().mean() + 0.5])


def test_tracking_pairs_put_the_target_at_its_offset(squares):
    tr = TrackerTrainConfig(max_gap=3, max_shift=16.0, scale_jitter=0.0)
    frames = {}
    from wsal.data.video import read_frames

    for v in squares.split("train"):
        frames[v] = read_frames(squares.video_path(v))
    pairs = TrackingPairs(squares, squares.split("train"), CFG, tr, num_pairs=40, frames=frames)
    assert len(pairs) == 40 and len(pairs.tube_video) == 4
    for i in range(40):
        p = pairs[i]
        assert p["exemplar"].shape == (3, 63, 63) and p["search"].shape == (3, 127, 127)
        # square colour = the exemplar's centre pixel (the target is centred in the exemplar)
        colour = p["exemplar"][:, 31, 31].numpy()
        np.testing.assert_allclose(square_centroid(p["exemplar"], colour), [31.5, 31.5], atol=0.75)
        np.testing.assert_allclose(
            square_centroid(p["search"], colour) - 63.5, p["offset"].numpy(), atol=0.75
        )
        assert (p["offset"].abs() <= 16).all()
    # deterministic in (seed, epoch, i); new pairs each epoch
    again = TrackingPairs(squares, squares.split("train"), CFG, tr, num_pairs=40, frames=frames)
    assert torch.equal(again[7]["search"], pairs[7]["search"])
    again.set_epoch(1)
    assert not torch.equal(again[7]["search"], pairs[7]["search"])


def test_train_tracker_writes_a_loadable_checkpoint_and_evaluates(squares, tmp_path):
    path = train_tracker(
        squares,
        "train",
        tmp_path / "trk.pt",
        progress=False,
        epochs=1,
        pairs_per_epoch=32,
        batch_size=16,
        val_fraction=0.25,
        val_pairs=16,
        accelerator="cpu",
    )
    blob = torch.load(path, weights_only=True)
    assert blob["extra"]["train"]["epochs"] == 1 and blob["extra"]["videos"] == 3
    assert {"val/loss", "val/center_error"} <= set(blob["extra"]["val"])
    tracker = make_tracker(checkpoint=path)
    res = evaluate_tracker(tracker, squares, "test", progress=False)
    assert res["tubes"] == 2 and res["frames"] == 2 * 11 and res["tracked_boxes"] == 2 * 11
    assert 0 <= res["success_auc"] <= 1 and res["boxes_per_s"] > 0
    # the static baseline, recomputed by hand
    stat = []
    for v in squares.split("test"):
        gt = squares.videos[v].tubes[0].boxes
        iou = box_iou_paired(np.repeat(gt[:1], len(gt) - 1, 0).astype(float), gt[1:].astype(float))
        stat.append(np.mean([(iou > t).mean() for t in SUCCESS_THRESHOLDS]))
    assert math.isclose(res["static_success_auc"], float(np.mean(stat)), rel_tol=1e-9)


class OracleTracker:
    """Test double: "tracks" by returning the GT boxes of the tubes it is initialised on."""

    def __init__(self, index: DatasetIndex) -> None:
        self.tubes = {tuple(t.boxes[0]): t for v in index.videos.values() for t in v.tubes}

    def track(self, frames, frame0, boxes0, progress=False, *, forward=True, backward=True):
        out = np.full((len(frame0), len(frames), 4), np.nan, np.float32)
        for k, b in enumerate(boxes0):
            t = self.tubes[tuple(b)]
            out[k, t.frames] = t.boxes
        return out, np.ones(out.shape[:2], np.float32)


def test_evaluation_aligns_frames_and_metrics_by_hand(squares):
    res = evaluate_tracker(OracleTracker(squares), squares, "test", progress=False)
    assert math.isclose(res["success_auc"], 20 / 21)  # IoU 1 > t for all t < 1 (OTB: 21 t's)
    assert res["precision@20px"] == 1.0 and res["precision@5px"] == 1.0
    m = tracking_metrics(
        np.array([[0.0, 0, 10, 10], [5, 0, 15, 10]]), np.array([[0.0, 0, 10, 10]] * 2)
    )
    # IoUs 1 and 1/3; centre errors 0 and 5
    assert math.isclose(m["success_auc"], (20 + 7) / 21 / 2)  # 1/3 > t for t = 0 .. 0.3
    assert m["precision@5px"] == 1.0 and m["precision@20px"] == 1.0
    assert math.isclose(m["mean_iou"], (1 + 1 / 3) / 2)


def test_ensure_tracker_trains_once_per_key(squares, tmp_path, monkeypatch):
    calls = []

    def fake_train(index, split, out, *, config, train, progress, extra):
        calls.append((split, train.epochs, extra["key"]["dataset"]))
        return save_checkpoint(out, random_net(), {"key": extra["key"]})

    monkeypatch.setattr(trk, "train_tracker", fake_train)
    root = squares.root
    a = ensure_tracker(root, tmp_path / "trackers", progress=False)
    b = ensure_tracker(root, tmp_path / "trackers", progress=False)
    assert a == b and a.is_file() and a.name.startswith("siamfc_") and len(calls) == 1
    assert calls[0][0] == "train" and calls[0][2].startswith("sha1-")
    c = ensure_tracker(
        root, tmp_path / "trackers", train=TrackerTrainConfig(epochs=2), progress=False
    )
    assert c != a and len(calls) == 2
    # the accelerator does not change the key
    d = ensure_tracker(
        root, tmp_path / "trackers", train=TrackerTrainConfig(accelerator="cpu"), progress=False
    )
    assert d == a and len(calls) == 2


def test_default_tracker_checkpoint_says_it_trains_once(squares, tmp_path, monkeypatch, caplog):
    """What the composing code calls before building an actor linker without a checkpoint:
    ensure_tracker's file (trained once, with a message saying what and why), then reused."""
    calls = []

    def fake_train(index, split, out, *, config, train, progress, extra):
        calls.append(split)
        return save_checkpoint(out, random_net(), {"key": extra["key"]})

    monkeypatch.setattr(trk, "train_tracker", fake_train)
    folder = tmp_path / "trackers"
    with caplog.at_level("WARNING", logger="wsal.models.tracker"):
        a = default_tracker_checkpoint("alexnet", squares.root, folder, progress=False)
    assert (
        "the actor linker needs a SiamFC tracker; training the default one once on" in caplog.text
    )
    assert str(squares.root) in caplog.text and calls == ["train"]
    assert a == default_tracker_path(squares.root, folder) == ensure_tracker(squares.root, folder)
    caplog.clear()
    with caplog.at_level("WARNING", logger="wsal.models.tracker"):
        b = default_tracker_checkpoint("alexnet", squares.root, folder, progress=False)
    assert b == a and calls == ["train"] and "training" not in caplog.text  # found, not trained
    with pytest.raises(ValueError, match="backbone"):
        default_tracker_checkpoint("vgg", squares.root, folder)


def test_cli_train_and_eval(squares, tmp_path, capsys):
    out = tmp_path / "cli.pt"
    trk.main(
        [
            "train",
            "--data",
            str(squares.root),
            "--out",
            str(out),
            "--epochs",
            "1",
            "--pairs-per-epoch",
            "16",
            "--batch-size",
            "16",
            "--val-fraction",
            "0",
            "--accelerator",
            "cpu",
        ]  # fmt: skip
    )
    assert out.is_file()
    trk.main(
        [
            "eval",
            "--data",
            str(squares.root),
            "--checkpoint",
            str(out),
            "--json",
            str(tmp_path / "r.json"),
        ]
    )
    text = capsys.readouterr().out
    assert "success AUC" in text and "static box" in text and "tracked boxes/s" in text
    assert (tmp_path / "r.json").is_file()


def pair_loss(net: SiamFCNet, pairs: TrackingPairs) -> float:
    """Mean balanced logistic loss of a net (eval mode) over all pairs of a dataset."""
    batch = torch.utils.data.default_collate([pairs[i] for i in range(len(pairs))])
    with torch.no_grad():
        r = net.eval()(batch["exemplar"], batch["search"])
    labels, w = response_labels(batch["offset"], r.shape[2:], SiamFCNet.stride, 8.0)
    return balanced_logistic_loss(r, labels, w).item()


def test_trained_tracker_follows_moving_squares(tmp_path):
    """24 training steps on moving squares: the loss on held-out pairs falls from ~log 2
    (random init) and the tracker follows held-out squares far better than a still box. (A
    random-init Siamese net is already a fair template matcher on such clean squares, so the
    loss, not the tracking score, is what shows the learning.) ~3-10 s on one CPU thread."""
    index = square_dataset(tmp_path, n_train=8, n_test=6, T=20, seed=1)
    path = train_tracker(
        index, "train", tmp_path / "sq.pt", progress=False, epochs=1, pairs_per_epoch=768,
        batch_size=32, val_fraction=0.0, accelerator="cpu",
    )  # fmt: skip
    held_out = TrackingPairs(index, index.split("test"), CFG, num_pairs=64, seed=5, augment=False)
    trained, _ = load_checkpoint(path)
    assert pair_loss(random_net(), held_out) > 0.6  # ~log 2: small logits at init
    assert pair_loss(trained, held_out) < 0.4  # measured 0.22
    res = evaluate_tracker(make_tracker(checkpoint=path), index, "test", progress=False)
    assert res["success_auc"] > 0.85 and res["precision@5px"] > 0.95
    assert res["success_auc"] > res["static_success_auc"] + 0.5
