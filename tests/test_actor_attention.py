"""Actor attention: the top-k attention by hand, the network's shapes and gradients, one training
step, and the box-supervised selection."""

from __future__ import annotations

import pytest
import torch

from wsal.models.actor_attention import ActorAttention
from wsal.nets.actor_attention import attention_pool


def test_topk_mean_by_hand():
    # one video, 4 tubes, 2 classes; tube 3 is padding
    logits = torch.tensor([[[1.0, 9.0], [3.0, 1.0], [2.0, 5.0], [100.0, 100.0]]])
    mask = torch.tensor([[True, True, True, False]])
    # class 0: top-2 of (1, 3, 2) = (3, 2) -> 2.5 ; class 1: top-2 of (9, 1, 5) = (9, 5) -> 7
    assert torch.allclose(attention_pool(logits, mask, "topk", k=2), torch.tensor([[2.5, 7.0]]))
    # k larger than the valid tubes: the mean over all 3 valid ones
    assert torch.allclose(attention_pool(logits, mask, "topk", k=12), torch.tensor([[2.0, 5.0]]))
    assert torch.allclose(attention_pool(logits, mask, "max"), torch.tensor([[3.0, 9.0]]))
    assert torch.allclose(attention_pool(logits, mask, "mean"), torch.tensor([[2.0, 5.0]]))
    # a video without tubes: zero logits, no NaN
    empty = attention_pool(logits, torch.zeros_like(mask), "topk", k=2)
    assert torch.equal(empty, torch.zeros(1, 2))


def test_topk_gradient_reaches_selected_tubes_only():
    logits = torch.tensor([[[1.0], [3.0], [2.0], [7.0]]], requires_grad=True)
    mask = torch.tensor([[True, True, True, False]])
    attention_pool(logits, mask, "topk", k=2).sum().backward()
    assert torch.allclose(logits.grad[0, :, 0], torch.tensor([0.0, 0.5, 0.5, 0.0]))


def batch(B=2, T=4, K=3, L=3, H=48, W=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(B, K, T, 2, generator=g) * torch.tensor([W - 20.0, H - 20.0])
    boxes = torch.cat([xy, xy + 16], dim=-1)  # [B, K, T, 4]
    valid = torch.rand(B, K, T, generator=g) > 0.3
    valid[:, 0] = True
    return {
        "frames": torch.randn(B, T, 3, H, W, generator=g),
        "boxes": boxes,
        "box_valid": valid,
        "tube_mask": valid.any(dim=2),
        "label": torch.tensor([0, 2])[:B],
        "gt_tube": torch.tensor([1, -1])[:B],
        "video_index": torch.arange(B),
    }


def test_network_shapes_gradients_and_one_step():
    torch.manual_seed(0)
    model = ActorAttention(num_classes=3, encoder="small", k=2, lr=0.1)
    b = batch()
    tube_logits = model(b["frames"], b["boxes"], b["box_valid"])
    assert tube_logits.shape == (2, 3, 3)
    opt = model.configure_optimizers()["optimizer"]
    # weight decay on the classifier only
    assert [g["weight_decay"] for g in opt.param_groups] == [0.0, 1e-4]
    losses = []
    for _ in range(8):  # the loss on a fixed batch goes down
        opt.zero_grad()
        tube_logits = model(b["frames"], b["boxes"], b["box_valid"])
        logits, ok = model.video_logits(tube_logits, b)
        loss = torch.nn.functional.cross_entropy(logits[ok], b["label"][ok])
        loss.backward()
        assert model.net.encoder.parameters().__next__().grad is not None
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
    pred = model.predict_step(b, 0)
    assert pred["tube_scores"].shape == (2, 3, 3)
    assert torch.allclose(pred["tube_scores"].sum(dim=2), torch.ones(2, 3))


def test_box_supervision_uses_the_gt_tube_only():
    model = ActorAttention(num_classes=3, encoder="small", supervision="box")
    b = batch()
    tube_logits = torch.randn(2, 3, 3)
    logits, ok = model.video_logits(tube_logits, b)
    assert ok.tolist() == [bool(b["tube_mask"][0, 1]), False]  # video 1 has no GT tube
    assert torch.equal(logits[0], tube_logits[0, 1])


def test_bad_options_are_refused():
    with pytest.raises(ValueError, match="attention"):
        ActorAttention(num_classes=2, encoder="small", attention="softmax")
    with pytest.raises(ValueError, match="supervision"):
        ActorAttention(num_classes=2, encoder="small", supervision="points")


def test_adam_option_keeps_classifier_only_weight_decay():
    model = ActorAttention(num_classes=3, encoder="small", optimizer="adam", lr=1e-3)
    opt = model.configure_optimizers()["optimizer"]
    assert isinstance(opt, torch.optim.Adam)
    assert [g["weight_decay"] for g in opt.param_groups] == [0.0, 1e-4]
    with pytest.raises(ValueError, match="optimizer"):
        ActorAttention(num_classes=2, encoder="small", optimizer="lbfgs")
