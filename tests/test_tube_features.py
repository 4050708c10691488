"""Actor attention on cached tube features (a frozen encoder): the cached path gives exactly the
end-to-end network's logits, the cache is reused and rebuilt when unreadable, the test score and
normalisation options, and CNN box features of scaled frames."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.test_datamodule import make_dm, synth  # noqa: F401  (fixture)
from wsal.models import tube_features as tf
from wsal.models.actor_attention import ActorAttention
from wsal.models.methods import ActorAttentionMethod
from wsal.models.tube_features import TubeFeatureDataModule, cached_tube_features


def frozen_model(**kw) -> ActorAttention:
    torch.manual_seed(0)
    return ActorAttention(num_classes=3, encoder="small", trainable_encoder=False, k=2, **kw).eval()


def test_cached_features_give_the_end_to_end_logits(synth, tmp_path):  # noqa: F811
    dm = make_dm(synth, num_tubes=5, batch_size=2)
    dm.prepare_data()
    dm.setup("fit")
    model = frozen_model()
    loader = dm.fixed_dataloader("train")
    videos = dm.split_videos("train")
    data = cached_tube_features(model.net, loader, videos, tmp_path, {"k": 1}, progress=False)
    assert data["features"].shape[:2] == (len(videos), 5)
    with torch.no_grad():
        for batch in loader:  # the same fixed view: centre frames, no flip
            rows = batch["video_index"]
            direct = model.tube_logits(batch)  # [B, K, L] through the encoder
            feats = torch.from_numpy(data["features"][rows.numpy()].astype(np.float32))
            cached = model.tube_logits({"features": feats})
            m = batch["tube_mask"]
            torch.testing.assert_close(cached[m], direct[m], atol=2e-3, rtol=2e-3)  # float16 store
            assert torch.equal(torch.from_numpy(data["tube_mask"][rows.numpy()]), m)
            assert torch.equal(torch.from_numpy(data["label"][rows.numpy()]), batch["label"])


def test_cache_is_reused_and_an_unreadable_file_rebuilt(synth, tmp_path, monkeypatch):  # noqa: F811
    dm = make_dm(synth, num_tubes=3, batch_size=3)
    dm.prepare_data()
    dm.setup("predict")
    model = frozen_model()
    videos = dm.split_videos("test")
    args = (model.net, dm.fixed_dataloader("test"), videos, tmp_path, {"k": 2})
    first = cached_tube_features(*args, progress=False)
    (path,) = tmp_path.glob("tubefeat__*.npz")

    def boom(*a, **k):
        raise AssertionError("recomputed although cached")

    with monkeypatch.context() as mp:
        mp.setattr(tf, "extract_tube_features", boom)
        again = cached_tube_features(*args, progress=False)
    np.testing.assert_array_equal(again["features"], first["features"])
    # another key -> another file
    cached_tube_features(model.net, dm.fixed_dataloader("test"), videos, tmp_path, {"k": 3})
    assert len(list(tmp_path.glob("tubefeat__*.npz"))) == 2
    path.write_bytes(path.read_bytes()[:100])  # truncated by a kill
    rebuilt = cached_tube_features(*args, progress=False)
    np.testing.assert_array_equal(rebuilt["features"], first["features"])


def test_training_on_features_learns_and_skips_tubeless_videos():
    g = torch.Generator().manual_seed(0)
    V, K, D = 12, 4, 6
    feats = torch.randn(V, K, D, generator=g).numpy().astype(np.float16)
    label = np.arange(V) % 3
    mask = np.ones((V, K), bool)
    mask[0] = False  # no usable tube: left out of training
    data = {"features": feats, "tube_mask": mask, "label": label, "gt_tube": np.zeros(V, int)}
    dm = TubeFeatureDataModule(data, None, data, batch_size=4)
    seen = torch.cat([b["video_index"] for b in dm.train_dataloader()])
    assert sorted(seen.tolist()) == list(range(1, V))
    assert dm.val_dataloader() == []
    model = ActorAttention(num_classes=3, encoder="small", trainable_encoder=False, k=1, lr=0.5)
    model.net.classifier = torch.nn.Linear(D, 3)
    opt = torch.optim.SGD(model.net.classifier.parameters(), lr=0.5)
    batch = next(iter(dm.predict_dataloader()))
    losses = []
    for _ in range(20):
        logits, ok = model.video_logits(model.tube_logits(batch), batch)
        loss = torch.nn.functional.cross_entropy(logits[ok], batch["label"][ok])
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


def test_test_score_and_normalize_options():
    feats = torch.randn(2, 3, 128 * 25)
    for score in ("softmax", "logit"):
        m = frozen_model(test_score=score, normalize=True)
        out = m.predict_step(
            {"features": feats, "video_index": torch.arange(2), "tube_mask": torch.ones(2, 3)}, 0
        )["tube_scores"]
        logits = m.tube_logits({"features": feats})
        want = logits.softmax(dim=2) if score == "softmax" else logits
        torch.testing.assert_close(out, want)
        # normalised: a tube's logits do not change with the scale of its features
        torch.testing.assert_close(m.tube_logits({"features": 7.0 * feats}), logits)
    plain = frozen_model()
    assert not torch.allclose(
        plain.tube_logits({"features": 7.0 * feats}), plain.tube_logits({"features": feats})
    )
    with pytest.raises(ValueError, match="test_score"):
        frozen_model(test_score="rank")


def test_cache_features_needs_a_frozen_encoder():
    with pytest.raises(ValueError, match="trainable_encoder=false"):
        ActorAttentionMethod(cache_features=True, encoder="small")
    ActorAttentionMethod(cache_features=True, encoder="small", trainable_encoder=False)


def test_cnn_input_scale_equals_scaling_frames_and_boxes_by_hand():
    from wsal.features import CNNExtractor
    from wsal.structures import Detections

    rng = np.random.default_rng(0)
    frames = rng.integers(0, 255, (3, 48, 64, 3), dtype=np.uint8)
    boxes = np.array([[4.0, 6.0, 40.0, 44.0], [20.5, 3.2, 60.1, 30.0]], np.float32)
    dets = Detections(np.array([1, 2]), boxes, np.ones(2), 3)
    scaled = CNNExtractor("small", seed=3, output_size=3, input_scale=2.0, device="cpu")
    plain = CNNExtractor("small", seed=3, output_size=3, device="cpu", min_box_size=8.0)
    big = torch.nn.functional.interpolate(
        torch.from_numpy(frames).permute(0, 3, 1, 2).float(),
        scale_factor=2.0,
        mode="bilinear",
        align_corners=False,
    )  # the same resize, before the uint8 -> normalised step: compare on the normalised input
    got = scaled.video_box_features(frames, dets)
    x = scaled._input(torch.from_numpy(frames))
    torch.testing.assert_close(x.shape[-2:], big.shape[-2:])
    with torch.no_grad():
        maps = scaled.encoder(x)
        from torchvision.ops import roi_align

        rois = torch.tensor([[1.0, *(boxes[0] * 2)], [2.0, *(boxes[1] * 2)]])
        want = roi_align(maps, rois, (3, 3), 1 / 8, 2, aligned=True).mean(dim=(2, 3))
    np.testing.assert_allclose(got, torch.nn.functional.normalize(want, dim=1).numpy(), atol=1e-5)
    assert scaled.cache_key() != plain.cache_key()
    with pytest.raises(ValueError, match="input_scale"):
        CNNExtractor("small", input_scale=0)
