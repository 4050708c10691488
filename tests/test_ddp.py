"""DDP correctness on the CPU (2 processes, gloo, ``ddp_spawn``): actor attention trained with
2 ranks x batch 2 gives the model (and the metrics) of 1 process with batch 4, same seed.

Why it should: each rank's loss is the mean over its half of the global batch and DDP averages the
gradients, so the step is the single-process one; the epoch order and every item's augmentation
come from ``(seed, epoch, index)`` (wsal/data/datamodule.py) and Lightning's distributed wrapper
deals the sampler's sequence round-robin, so the two ranks' batches are exactly the halves of the
single process's batches. BatchNorm: torch's SyncBatchNorm runs on CUDA only, so on the CPU each
rank would normalise with its own half-batch statistics; the test freezes BN (``frozen_bn``, as
for a pretrained encoder; VGG16 has none), conf/trainer/ddp.yaml synchronises it on GPUs."""

from __future__ import annotations

import functools
import warnings

import numpy as np
import pytest
import pytorch_lightning as pl
import torch

from tests.tiny import tiny_synthactors
from wsal.data.datamodule import ActorTubeDataModule
from wsal.detection.backends import StoredDetections
from wsal.evaluation import GroundTruth, video_ap
from wsal.linking.cache import link_cached
from wsal.linking.temporal_prim import TemporalPrimLinker
from wsal.models.actor_attention import ActorAttention
from wsal.models.methods import tube_scores_to_detections


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    root = tmp_path_factory.mktemp("ddp")
    ds = tiny_synthactors(root)
    return ds, root / "cache"


def make_dm(synth, batch_size: int) -> ActorTubeDataModule:
    ds, cache = synth
    return ActorTubeDataModule(
        ds,
        functools.partial(
            link_cached,
            detector=StoredDetections(name="synthetic"),
            linker=TemporalPrimLinker(num_tubes=4, progress=False),
            cache_dir=str(cache),
        ),
        num_frames=4,
        num_tubes=4,
        batch_size=batch_size,
        num_workers=0,
        val_fraction=0.0,
        flip=True,
        seed=0,
    )


def fit(synth, batch_size: int, **trainer_kw) -> tuple[ActorAttention, ActorTubeDataModule]:
    pl.seed_everything(0, workers=True)
    dm = make_dm(synth, batch_size)
    dm.prepare_data()
    model = ActorAttention(num_classes=3, encoder="small", frozen_bn=True, k=2, lr=0.01, lr_step=10)
    trainer = pl.Trainer(
        max_epochs=2,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        deterministic=True,
        num_sanity_val_steps=0,
        **trainer_kw,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer.fit(model, datamodule=dm)
    return model, dm


def predict(model, dm):
    dm.setup("predict")
    trainer = pl.Trainer(
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    preds = trainer.predict(model, dataloaders=dm.predict_dataloader())
    videos = dm.split_videos("predict")
    return preds, tube_scores_to_detections(videos, dm.tubes, preds)


def test_ddp_two_cpu_processes_equal_one_process(synth):
    one, dm1 = fit(synth, 4, accelerator="cpu", devices=1)
    two, dm2 = fit(synth, 2, accelerator="cpu", devices=2, strategy="ddp_spawn")
    sd1, sd2 = one.state_dict(), two.state_dict()
    assert sd1.keys() == sd2.keys()
    moved = 0
    init = ActorAttention(num_classes=3, encoder="small", frozen_bn=True, k=2).state_dict()
    for k in sd1:
        if sd1[k].is_floating_point():
            torch.testing.assert_close(sd2[k], sd1[k], rtol=1e-4, atol=1e-5, msg=k)
            moved += int(not torch.allclose(sd1[k], init[k]))
        else:
            assert torch.equal(sd1[k], sd2[k]), k
    assert moved > 0  # training changed the weights (the comparison is not of two inits)
    p1, d1 = predict(one, dm1)
    p2, d2 = predict(two, dm2)
    s1 = torch.cat([b["tube_scores"] for b in p1])
    s2 = torch.cat([b["tube_scores"] for b in p2])
    torch.testing.assert_close(s2, s1, rtol=1e-4, atol=1e-5)
    gt = GroundTruth.from_index(dm1.index, "test")
    r1, r2 = video_ap(gt, d1, (0.2, 0.5)), video_ap(gt, d2, (0.2, 0.5))
    for t in (0.2, 0.5):
        assert np.isfinite(r1.map(t))
        assert r2.map(t) == pytest.approx(r1.map(t), abs=1e-9)


@pytest.mark.parametrize(("n", "world", "batch"), [(6, 2, 2), (7, 2, 2), (9, 3, 1)])
def test_epoch_sampler_ranks_deal_the_single_process_order(n, world, batch):
    """Rank r takes positions r, r+W, ... of the epoch order: the ranks' i-th batches together are
    the single process's i-th batch of size W*batch (wrapping round to pad, as torch does)."""
    from wsal.data.datamodule import EpochSampler

    single = EpochSampler(n, seed=3)
    ranks = [EpochSampler(n, seed=3, num_replicas=world, rank=r) for r in range(world)]
    for s in (single, *ranks):
        s.set_epoch(5)
    order = [i for _, i in single]
    assert sorted(order) == list(range(n)) and order != list(range(n))
    per_rank = [[i for _, i in s] for s in ranks]
    assert {len(p) for p in per_rank} == {-(-n // world)}
    padded = order + order[: world * len(per_rank[0]) - n]
    for b in range(0, len(per_rank[0]), batch):
        union = sorted(i for p in per_rank for i in p[b : b + batch])
        assert union == sorted(padded[b * world : (b + batch) * world])
    with pytest.raises(ValueError, match="rank"):
        EpochSampler(4, num_replicas=2, rank=2)
