"""Actor-of-interest pooling against a literal transcription of Eq. 1 (Guess Where §3.2), plus
hand-computed maps, gradients and shape checks."""

from __future__ import annotations

import pytest
import torch

from wsal.nets.pooling import ActorOfInterestPooling, actor_of_interest_pool

DEVICES = [
    "cpu",
    pytest.param(
        "cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
    ),
]


def eq1_pool_loop(features, boxes, valid, stride, output_size):
    """Slow twin: Eq. 1 literally, then the mean over the tube's valid frames.

    For output cell (i, j) of box (x1, y1, x2, y2) the sample sits at the bin centre in input
    pixels, ``px = x1 + (j + 0.5) * (x2 - x1) / out_w``; feature cell u is centred on input
    coordinate ``(u + 0.5) * stride``, so the sample's map coordinate is ``px / stride - 0.5``.
    V[c] = sum over every map pixel (j', i') of U[c, j', i'] * k(i' - x) * k(j' - y).
    """
    BT, C, h, w = features.shape
    B, K, T, _ = boxes.shape
    out_h, out_w = output_size
    out = torch.zeros(B, K, C, out_h, out_w, dtype=features.dtype)

    def kernel(d):
        return max(0.0, 1.0 - abs(d))

    for b in range(B):
        for k in range(K):
            frames = [t for t in range(T) if valid[b, k, t]]
            for t in frames:
                U = features[b * T + t]  # [C, h, w]
                x1, y1, x2, y2 = (float(v) for v in boxes[b, k, t])
                for i in range(out_h):
                    y = (y1 + (i + 0.5) * (y2 - y1) / out_h) / stride - 0.5
                    for j in range(out_w):
                        x = (x1 + (j + 0.5) * (x2 - x1) / out_w) / stride - 0.5
                        v = torch.zeros(C, dtype=features.dtype)
                        for jj in range(h):  # j' (rows)
                            ky = kernel(jj - y)
                            if ky == 0.0:
                                continue
                            for ii in range(w):  # i' (columns)
                                kx = kernel(ii - x)
                                if kx != 0.0:
                                    v = v + U[:, jj, ii] * kx * ky
                        out[b, k, :, i, j] += v
            if frames:
                out[b, k] /= len(frames)
    return out


def random_case(gen, B=2, K=3, T=4, C=3, h=7, w=9, stride=4, dtype=torch.float32):
    """Random maps and boxes whose samples stay within the map's cell centres (where roi_align
    and Eq. 1 agree; see the border note in wsal/nets/pooling.py). Tube (0, 1) has one valid
    frame (the last), tube (0, 2) none (if K > 2); invalid entries hold NaN boxes, never read."""
    features = torch.randn(B * T, C, h, w, generator=gen, dtype=dtype)  # [B*T, C, h, w]
    lo = torch.tensor([0.5 * stride, 0.5 * stride])  # first cell centre, input px
    hi = torch.tensor([(w - 0.5) * stride, (h - 0.5) * stride])  # last cell centre, input px
    a = lo + torch.rand(B, K, T, 2, generator=gen) * (hi - lo)  # [B, K, T, 2]
    c = lo + torch.rand(B, K, T, 2, generator=gen) * (hi - lo)  # [B, K, T, 2]
    boxes = torch.cat([torch.minimum(a, c), torch.maximum(a, c)], dim=-1).to(dtype)  # [B,K,T,4]
    valid = torch.rand(B, K, T, generator=gen) < 0.6  # [B, K, T]
    valid[0, 0] = True
    valid[0, 1] = False
    valid[0, 1, T - 1] = True  # a single valid frame
    if K > 2:
        valid[0, 2] = False  # no valid frame
    boxes[~valid] = float("nan")
    return features, boxes, valid


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("output_size", [(5, 5), (2, 3)])
def test_matches_eq1_twin(device, output_size):
    gen = torch.Generator().manual_seed(0)
    stride = 4
    features, boxes, valid = random_case(gen, stride=stride)
    expected = eq1_pool_loop(features, boxes, valid, stride, output_size)
    got = actor_of_interest_pool(
        features.to(device), boxes.to(device), valid.to(device), 1.0 / stride, output_size
    )
    assert got.shape == (2, 3, 3, *output_size)
    assert got.device.type == device
    torch.testing.assert_close(got.cpu(), expected, atol=1e-5, rtol=1e-5)
    assert torch.all(got[0, 2] == 0)  # tube without a valid frame


def test_single_frame_tube_equals_that_frame():
    gen = torch.Generator().manual_seed(1)
    features, boxes, valid = random_case(gen)
    got = actor_of_interest_pool(features, boxes, valid, 0.25)  # [B, K, C, 5, 5]
    alone = actor_of_interest_pool(
        features[3:4], boxes[:1, 1:2, 3:4], valid[:1, 1:2, 3:4], 0.25
    )  # [1, 1, C, 5, 5]: frame t=3 of video 0 only
    torch.testing.assert_close(got[0, 1], alone[0, 0])


def test_constant_map_gives_constant():
    features = torch.full((2, 4, 6, 8), 3.25)  # [B*T=2, C=4, 6, 8]
    boxes = torch.tensor([[[[4.0, 4.0, 20.0, 12.0], [10.0, 6.0, 26.0, 18.0]]]])  # [1, 1, 2, 4]
    valid = torch.ones(1, 1, 2, dtype=torch.bool)
    got = actor_of_interest_pool(features, boxes, valid, 0.25)
    torch.testing.assert_close(got, torch.full((1, 1, 4, 5, 5), 3.25))


def test_linear_ramp_gives_ramp_at_bin_centres():
    # U[c, row, col] = 2*col + 3*row + c. Bilinear interpolation is exact on a linear map, so each
    # pooled value is the ramp at the sample's map coordinate.
    h, w, stride = 10, 10, 4
    rows = torch.arange(h, dtype=torch.float64)[:, None]  # [h, 1]
    cols = torch.arange(w, dtype=torch.float64)[None, :]  # [1, w]
    ramp = 2 * cols + 3 * rows  # [h, w]
    features = (ramp + torch.arange(2.0, dtype=torch.float64)[:, None, None])[None]  # [1, 2, h, w]
    features = features.expand(2, 2, h, w).contiguous()  # [B*T=2, C=2, h, w], same map per frame
    # Box (6, 10, 26, 30), 5×5 bins of 4 px: centres x = 8, 12, ..., 24 -> u = x/4 - 0.5 =
    # 1.5, 2.5, ..., 5.5; y = 12, ..., 28 -> v = 2.5, ..., 6.5.
    boxes = torch.tensor([[[[6.0, 10.0, 26.0, 30.0], [0.0, 0.0, 1.0, 1.0]]]], dtype=torch.float64)
    valid = torch.tensor([[[True, False]]])  # [1, 1, 2]
    got = actor_of_interest_pool(features, boxes, valid, 1.0 / stride)  # [1, 1, 2, 5, 5]
    u = torch.tensor([1.5, 2.5, 3.5, 4.5, 5.5], dtype=torch.float64)[None, :]  # [1, 5] columns
    v = torch.tensor([2.5, 3.5, 4.5, 5.5, 6.5], dtype=torch.float64)[:, None]  # [5, 1] rows
    expected = torch.stack([2 * u + 3 * v, 2 * u + 3 * v + 1])  # [2, 5, 5]
    torch.testing.assert_close(got[0, 0], expected)

    # Two frames with different boxes: the mean of their ramp values. The second box is the
    # first shifted by (+4, -8) px = (+1, -2) cells: ramp + 2*1 - 3*2 = ramp - 4.
    boxes[0, 0, 1] = torch.tensor([10.0, 2.0, 30.0, 22.0])
    valid[0, 0, 1] = True
    got = actor_of_interest_pool(features, boxes, valid, 1.0 / stride)
    torch.testing.assert_close(got[0, 0], expected - 2)


def test_border_replicates_edge_unlike_eq1():
    # Documented difference: a sample between the frame edge and the first cell centre (u in
    # [-1, 0)) gets the edge value from roi_align, a partial weight from Eq. 1.
    features = torch.ones(1, 1, 4, 4)
    boxes = torch.tensor([[[[0.0, 0.0, 16.0, 16.0]]]])  # the whole 16×16 frame, stride 4
    valid = torch.ones(1, 1, 1, dtype=torch.bool)
    got = actor_of_interest_pool(features, boxes, valid, 0.25, (4, 4))
    literal = eq1_pool_loop(features, boxes, valid, 4, (4, 4))
    torch.testing.assert_close(got, torch.ones(1, 1, 1, 4, 4))
    assert literal[0, 0, 0, 0, 0] == pytest.approx(1.0)  # 4 bins on 4 cells: exact centres
    got = actor_of_interest_pool(features, boxes, valid, 0.25, (8, 8))  # samples at u = -0.25
    literal = eq1_pool_loop(features, boxes, valid, 4, (8, 8))
    assert got[0, 0, 0, 0, 0] == pytest.approx(1.0)
    assert literal[0, 0, 0, 0, 0] == pytest.approx(0.75**2)


def test_gradcheck_float64():
    gen = torch.Generator().manual_seed(2)
    features, boxes, valid = random_case(gen, B=1, K=2, T=2, C=2, h=4, w=5, dtype=torch.float64)
    features.requires_grad_(True)
    assert torch.autograd.gradcheck(
        lambda f: actor_of_interest_pool(f, boxes, valid, 0.25, (2, 2)), (features,)
    )


def test_gradient_matches_twin():
    gen = torch.Generator().manual_seed(3)
    features, boxes, valid = random_case(gen, B=1, K=3, T=3, C=2, h=5, w=6, dtype=torch.float64)
    weights = torch.randn(1, 3, 2, 3, 3, generator=gen, dtype=torch.float64)  # [B, K, C, 3, 3]
    f_fast = features.clone().requires_grad_(True)
    f_slow = features.clone().requires_grad_(True)
    (actor_of_interest_pool(f_fast, boxes, valid, 0.25, (3, 3)) * weights).sum().backward()
    (eq1_pool_loop(f_slow, boxes, valid, 4, (3, 3)) * weights).sum().backward()
    assert f_fast.grad.abs().sum() > 0
    torch.testing.assert_close(f_fast.grad, f_slow.grad)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_shape_dtype_and_module(dtype):
    gen = torch.Generator().manual_seed(4)
    features, boxes, valid = random_case(gen, B=2, K=3, T=4, C=5, dtype=dtype)
    pool = ActorOfInterestPooling(spatial_scale=0.25, output_size=(3, 2))
    out = pool(features, boxes, valid)
    assert out.shape == (2, 3, 5, 3, 2) and out.dtype == dtype
    assert "output_size=(3, 2)" in repr(pool)
    torch.testing.assert_close(out, actor_of_interest_pool(features, boxes, valid, 0.25, (3, 2)))


def test_integer_boxes_and_no_valid_box():
    features = torch.randn(4, 2, 6, 6)  # [B*T=4, C, h, w]
    boxes = torch.zeros(2, 1, 2, 4, dtype=torch.int64)  # integer boxes are cast, not rejected
    boxes[..., 2:] = 12
    valid = torch.zeros(2, 1, 2, dtype=torch.bool)
    out = actor_of_interest_pool(features, boxes, valid, 0.5)
    assert out.shape == (2, 1, 2, 5, 5) and torch.all(out == 0)
    valid[1, 0, 0] = True
    out = actor_of_interest_pool(features, boxes, valid, 0.5)
    assert torch.all(out[0] == 0) and out[1].abs().sum() > 0


def test_shape_errors():
    features = torch.randn(6, 2, 5, 5)
    boxes = torch.zeros(2, 3, 4, 4)  # B*T = 8 != 6
    valid = torch.ones(2, 3, 4, dtype=torch.bool)
    with pytest.raises(ValueError, match=r"features hold 6 frames .* B\*T = 8"):
        actor_of_interest_pool(features, boxes, valid, 0.25)
    with pytest.raises(ValueError, match="valid must be"):
        actor_of_interest_pool(torch.randn(8, 2, 5, 5), boxes, valid[:, :2], 0.25)
    with pytest.raises(TypeError, match="bool"):
        actor_of_interest_pool(torch.randn(8, 2, 5, 5), boxes, valid.float(), 0.25)
    with pytest.raises(ValueError, match="boxes must be"):
        actor_of_interest_pool(torch.randn(8, 2, 5, 5), boxes[..., :3], valid, 0.25)
    with pytest.raises(ValueError, match="features must be"):
        actor_of_interest_pool(torch.randn(8, 2, 5), boxes, valid, 0.25)
