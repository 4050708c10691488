"""ActorTubeDataModule on a tiny SynthActors: batch contract, boxes vs tubes, flip, resize,
normalisation, seeded determinism, gt_tube, hold-out split and bad input."""

from __future__ import annotations

import functools
import hashlib
import pickle

import numpy as np
import pytest
import pytorch_lightning as pl
import torch

from tests.tiny import tiny_synthactors
from wsal.data.annotations import GTTube
from wsal.data.datamodule import (
    ActorTubeDataModule,
    TubeBatch,
    collate_tube_batch,
    gt_tube_index,
    stratified_holdout,
)
from wsal.data.transforms import denormalize_frames
from wsal.data.video import VideoReader, sample_segment_indices
from wsal.detection.backends import StoredDetections
from wsal.linking.cache import link_cached
from wsal.linking.temporal_prim import TemporalPrimLinker
from wsal.structures import Tubes

T = 8  # frames per clip: videos have 16-20 frames, so segments hold 2+ frames (random in training)


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    """(dataset, cache dir): 3 classes x (2 train + 1 test) videos of 64x48, 16-20 frames."""
    root = tmp_path_factory.mktemp("synth")
    ds = tiny_synthactors(root)
    return ds, root / "cache"


def make_dm(synth, dataset=None, linker=None, **kw) -> ActorTubeDataModule:
    ds, cache = synth
    args = dict(num_frames=T, num_tubes=7, batch_size=3, seed=0)
    args.update(kw)
    return ActorTubeDataModule(
        dataset or ds,
        functools.partial(
            link_cached,
            detector=StoredDetections(name="synthetic"),
            linker=linker or TemporalPrimLinker(num_tubes=5, progress=False),
            cache_dir=str(cache),
        ),
        **args,
    )


def all_batches(loader) -> list[TubeBatch]:
    return list(loader)


def assert_batches_equal(a: list[TubeBatch], b: list[TubeBatch]) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b):
        for k in TubeBatch.__annotations__:
            torch.testing.assert_close(x[k], y[k], rtol=0, atol=0)


def test_tube_source_is_called_once_per_process_and_pickles(synth):
    """The caller hands the DataModule its tubes: a callable made once in prepare_data (setup
    reuses them); the tube cache's partial pickles (ddp_spawn) and gives the same tubes."""
    ds, cache = synth
    source = functools.partial(
        link_cached,
        detector=StoredDetections(name="synthetic"),
        linker=TemporalPrimLinker(num_tubes=5, progress=False),
        cache_dir=str(cache),
    )
    calls: list[str] = []

    def counting(prepared):
        calls.append(prepared.name)
        return source(prepared)

    dm = ActorTubeDataModule(ds, counting, num_frames=T, num_tubes=7, batch_size=3)
    dm.prepare_data()
    dm.setup("fit")
    dm.setup("predict")
    assert calls == ["synthactors"]
    assert set(dm.tubes) == set(dm.index.videos)
    # a DataModule without prepare_data (DDP ranks > 0) makes them in setup, also once
    calls.clear()
    other = ActorTubeDataModule(ds, counting, num_frames=T, num_tubes=7, batch_size=3)
    other.setup("fit")
    assert calls == ["synthactors"]
    again = pickle.loads(pickle.dumps(source))(dm.prepared)
    assert set(again) == set(dm.tubes)
    for v, t in dm.tubes.items():
        np.testing.assert_array_equal(again[v].boxes, t.boxes)
        np.testing.assert_array_equal(again[v].box_index, t.box_index)
    assert pickle.loads(pickle.dumps(make_dm(synth))).tube_source.keywords["cache_dir"] == str(
        cache
    )


def test_batch_keys_shapes_dtypes(synth):
    dm = make_dm(synth)
    dm.prepare_data()
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert set(batch) == set(TubeBatch.__annotations__)
    B, K, L = 3, 7, 3
    expected = {
        "frames": ((B, T, 3, 48, 64), torch.float32),
        "boxes": ((B, K, T, 4), torch.float32),
        "box_valid": ((B, K, T), torch.bool),
        "tube_mask": ((B, K), torch.bool),
        "label": ((B,), torch.int64),
        "labels": ((B, L), torch.float32),
        "video_index": ((B,), torch.int64),
        "frame_index": ((B, T), torch.int64),
        "gt_tube": ((B,), torch.int64),
    }
    for key, (shape, dtype) in expected.items():
        assert tuple(batch[key].shape) == shape, key
        assert batch[key].dtype == dtype, key
    assert dm.label_names == ["wave", "jump", "cartwheel"]
    # the linker made 5 tubes per video: rows 5, 6 are padding
    assert not batch["box_valid"][:, 5:].any() and not batch["tube_mask"][:, 5:].any()
    torch.testing.assert_close(batch["tube_mask"], batch["box_valid"].any(dim=2))


def test_eval_items_centres_boxes_labels_gt(synth):
    dm = make_dm(synth)
    dm.setup("test")
    videos = dm.split_videos("test")
    assert videos == dm.index.splits["test"]
    seen = []
    for batch in dm.test_dataloader():
        for b, vi in enumerate(batch["video_index"].tolist()):
            v = videos[vi]
            seen.append(v)
            info, tubes = dm.index.videos[v], dm.tubes[v]
            fidx = sample_segment_indices(info.nframes, T, train=False)  # centres
            np.testing.assert_array_equal(batch["frame_index"][b].numpy(), fidx)
            k = tubes.num_tubes
            valid = tubes.valid[:, fidx]  # [k, T]
            np.testing.assert_array_equal(batch["box_valid"][b, :k].numpy(), valid)
            want = np.where(valid[..., None], tubes.boxes[:, fidx], 0)  # [k, T, 4]
            np.testing.assert_array_equal(batch["boxes"][b, :k].numpy(), want)
            assert not batch["boxes"][b, k:].any()
            assert batch["label"][b] == info.labels[0]
            assert batch["labels"][b].tolist() == [float(i in info.labels) for i in range(3)]
            assert batch["gt_tube"][b] == gt_tube_index(tubes, info.tubes, 7) == dm.gt_tube[v]
    assert seen == videos
    # the simulated detector finds the performer: every test video has a matching tube
    assert all(dm.gt_tube[v] >= 0 for v in videos)


def test_normalisation_inverts_to_decoded_pixels(synth):
    dm = make_dm(synth)
    dm.setup("test")
    item = dm._datasets["test"][0]
    v = dm.split_videos("test")[0]
    raw = VideoReader(dm.index.video_path(v)).get_frames(item["frame_index"].numpy())
    back = denormalize_frames(item["frames"])  # [T, H, W, 3]
    torch.testing.assert_close(back, torch.from_numpy(raw).float(), rtol=0, atol=1e-3)


def test_flip_mirrors_frames_and_boxes_exactly(synth):
    flipped = make_dm(synth, flip=True)
    plain = make_dm(synth, flip=False)
    flipped.setup("fit")
    plain.setup("fit")
    a_ds, b_ds = flipped._datasets["train"], plain._datasets["train"]
    n_flipped = n_same = 0
    for epoch in range(2):
        for i in range(len(a_ds)):
            a, b = a_ds[(epoch, i)], b_ds[(epoch, i)]
            assert torch.equal(a["frame_index"], b["frame_index"])  # same draws either way
            assert torch.equal(a["box_valid"], b["box_valid"])
            if torch.equal(a["frames"], b["frames"]):
                n_same += 1
                assert torch.equal(a["boxes"], b["boxes"])
                continue
            n_flipped += 1
            assert torch.equal(a["frames"], b["frames"].flip(-1))
            W = b["frames"].shape[-1]
            v = b["box_valid"]  # [K, T]
            x1, y1, x2, y2 = b["boxes"].unbind(-1)
            want = torch.stack([W - x2, y1, W - x1, y2], -1) * v[..., None]  # [K, T, 4]
            assert torch.equal(a["boxes"], want)
    assert n_flipped and n_same  # p = 0.5 over 12 items: both cases occur for this seed


def test_resize_scales_frames_and_boxes(synth):
    dm = make_dm(synth, frame_size=[24, 32])
    dm.setup("test")
    batch = next(iter(dm.test_dataloader()))
    assert tuple(batch["frames"].shape[-2:]) == (24, 32)
    v = dm.split_videos("test")[int(batch["video_index"][0])]
    tubes = dm.tubes[v]
    fidx = batch["frame_index"][0].numpy()
    want = np.where(tubes.valid[:, fidx, None], tubes.boxes[:, fidx] * 0.5, 0)
    np.testing.assert_allclose(batch["boxes"][0, : tubes.num_tubes].numpy(), want, rtol=1e-6)


def test_training_is_seeded_by_seed_and_epoch(synth):
    dm = make_dm(synth)
    dm.setup("fit")
    loader = dm.train_dataloader()
    loader.sampler.set_epoch(3)
    first, second = all_batches(loader), all_batches(loader)
    assert_batches_equal(first, second)
    # random frames per segment: at least one differs from the centres
    fi = torch.cat([b["frame_index"] for b in first])
    vids = torch.cat([b["video_index"] for b in first]).tolist()
    n = [dm.index.videos[dm.split_videos("fit")[i]].nframes for i in vids]
    centres = np.stack([sample_segment_indices(m, T, train=False) for m in n])
    assert not np.array_equal(fi.numpy(), centres)
    loader.sampler.set_epoch(4)
    other = torch.cat([b["frame_index"] for b in all_batches(loader)])
    assert not torch.equal(other, fi)
    # a fresh DataModule with the same seed reproduces epoch 3
    dm2 = make_dm(synth)
    dm2.setup("fit")
    loader2 = dm2.train_dataloader()
    loader2.sampler.set_epoch(3)
    assert_batches_equal(first, all_batches(loader2))


def test_two_workers_give_the_same_batches(synth):
    dm0, dm2 = make_dm(synth), make_dm(synth, num_workers=2)
    dm0.setup("fit")
    dm2.setup("fit")
    a, b = dm0.train_dataloader(), dm2.train_dataloader()
    a.sampler.set_epoch(1)
    b.sampler.set_epoch(1)
    assert_batches_equal(all_batches(a), all_batches(b))


def test_val_fraction_holds_out_a_stratified_deterministic_split(synth):
    dm = make_dm(synth, val_fraction=0.5)
    dm.setup("fit")
    train, val = dm.split_videos("fit"), dm.split_videos("validate")
    full = dm.index.splits["train"]
    assert set(train).isdisjoint(val) and sorted(train + val) == sorted(full)
    labels = {v: dm.index.videos[v].labels[0] for v in full}
    assert sorted(labels[v] for v in val) == [0, 1, 2]  # one of each class's two videos
    assert sorted(labels[v] for v in train) == [0, 1, 2]
    dm_again = make_dm(synth, val_fraction=0.5)
    dm_again.setup("fit")
    assert dm_again.split_videos("val") == val
    batch_videos = [val[i] for b in dm.val_dataloader() for i in b["video_index"].tolist()]
    assert batch_videos == val
    # a class with one video keeps it in training; fraction 0 holds out nothing
    tr, va = stratified_holdout(["a", "b", "c"], [0, 1, 1], 0.5, seed=0)
    assert "a" in tr and len(va) == 1 and va[0] in ("b", "c") and len(tr) == 2
    assert stratified_holdout(["a", "b"], [0, 0], 0.0) == (["a", "b"], [])
    no_val = make_dm(synth)
    no_val.setup("fit")
    assert no_val.val_dataloader() == []


def test_gt_tube_index_hand_built():
    F = 10
    boxes = np.zeros((3, F, 4), np.float32)
    valid = np.zeros((3, F), bool)
    boxes[0, 0:5] = [0, 0, 10, 10]  # right place, half the time
    valid[0, 0:5] = True
    boxes[1, :] = [0, 0, 10, 20]  # all the time, half the area
    valid[1, :] = True
    boxes[2, 2:8] = [50, 50, 60, 60]  # elsewhere; tube 3 is empty
    valid[2, 2:8] = True
    tubes = Tubes(
        np.concatenate([boxes, np.zeros((1, F, 4), np.float32)]),
        np.concatenate([valid, np.zeros((1, F), bool)]),
        np.full((4, F), -1),
        np.ones(4),
    )
    gt = GTTube(0, np.arange(F), np.tile([0, 0, 10, 10], (F, 1)))
    # st-IoU: tube 0 -> tIoU 0.5 x IoU 1 = 0.5; tube 1 -> 1 x 0.5 = 0.5: tie, earlier tube wins
    assert gt_tube_index(tubes, [gt]) == 0
    gt_far = GTTube(1, np.arange(2, 6), np.tile([50, 50, 60, 60], (4, 1)))
    # tube 2 vs gt_far: tIoU 4/6, IoU 1 -> 0.667 beats 0.5
    assert gt_tube_index(tubes, [gt, gt_far]) == 2
    assert gt_tube_index(tubes, [gt, gt_far], num_tubes=2) == 0  # only the first 2 tubes count
    # GT frames with gaps are interpolated: frames 2, 4 (box at 3 interpolated) -> tube 2
    gt_gap = GTTube(0, [2, 4], [[50, 50, 60, 60], [50, 50, 60, 60]])
    assert gt_tube_index(tubes, [gt_gap]) == 2
    nowhere = GTTube(0, [0, 1], [[100, 100, 110, 110]] * 2)
    assert gt_tube_index(tubes, [nowhere]) == -1
    assert gt_tube_index(tubes, []) == -1
    assert gt_tube_index(Tubes.empty(F), [gt]) == -1


def test_collate_names_videos_of_different_sizes():
    def item(i, h, w):
        return {
            "frames": torch.zeros(2, 3, h, w),
            "boxes": torch.zeros(1, 2, 4),
            "box_valid": torch.zeros(1, 2, dtype=torch.bool),
            "tube_mask": torch.zeros(1, dtype=torch.bool),
            "label": torch.tensor(0),
            "labels": torch.zeros(2),
            "video_index": torch.tensor(i),
            "frame_index": torch.zeros(2, dtype=torch.int64),
            "gt_tube": torch.tensor(-1),
        }

    ok = collate_tube_batch([item(0, 4, 6), item(1, 4, 6)])
    assert ok["frames"].shape == (2, 2, 3, 4, 6)
    with pytest.raises(ValueError, match=r"'small': 6x4, 'big': 8x5.*frame_size"):
        collate_tube_batch([item(0, 4, 6), item(1, 5, 8)], videos=["small", "big"])


class _Relabelled:
    """A dataset source that overrides one video's labels."""

    def __init__(self, inner, video_pos: int, labels: list[int]) -> None:
        self.inner, self.video_pos, self.labels = inner, video_pos, labels

    def prepare(self):
        prepared = self.inner.prepare()  # a freshly read index each time
        video = prepared.index.splits["train"][self.video_pos]
        prepared.index.videos[video].labels = self.labels
        return prepared


def test_label_outside_the_class_list_names_the_video(synth):
    dm = make_dm(synth, dataset=_Relabelled(synth[0], 1, [7]))
    video = synth[0].prepare().index.splits["train"][1]
    with pytest.raises(ValueError, match=rf"{video}.*label 7 is outside the class list"):
        dm.setup("fit")


class _NoTubesFor(TemporalPrimLinker):
    """Temporal Prim, except that one video gets no tubes."""

    name = "prim_minus_one"

    def __init__(self, video: str) -> None:
        super().__init__(num_tubes=5, progress=False)
        self.video = video

    def cache_key(self) -> str:
        return hashlib.sha1(f"{super().cache_key()}:{self.video}".encode()).hexdigest()[:12]

    def link(self, dets):
        out = super().link(dets)
        out[self.video] = Tubes.empty(out[self.video].num_frames)
        return out


def test_video_without_tubes_skipped_in_training_scored_in_prediction(synth):
    index = synth[0].prepare().index
    train_video, test_video = index.splits["train"][2], index.splits["test"][0]
    for video in (train_video, test_video):
        dm = make_dm(synth, linker=_NoTubesFor(video))
        dm.setup("fit")
        dm.setup("predict")
        train_ds = dm._datasets["train"]
        in_train = [r.video for r in train_ds.records]
        assert in_train == [v for v in index.splits["train"] if v != video]
        # video_index still indexes the whole split: positions skip the left-out video
        assert [dm.split_videos("fit")[r.position] for r in train_ds.records] == in_train
        batches = list(dm.predict_dataloader())
        vids = [dm.split_videos("predict")[i] for b in batches for i in b["video_index"].tolist()]
        mask = torch.cat([b["tube_mask"] for b in batches])
        gt = torch.cat([b["gt_tube"] for b in batches])
        assert vids == index.splits["test"]
        for j, v in enumerate(vids):
            assert bool(mask[j].any()) == (v != video)
            assert (int(gt[j]) == -1) == (v == video)


class _Recorder(pl.LightningModule):
    """Records the frames each training epoch saw."""

    def __init__(self) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))
        self.seen: dict[int, list[list[int]]] = {}
        self.val_batches = 0

    def training_step(self, batch, batch_idx):
        self.seen.setdefault(self.current_epoch, []).append(batch["frame_index"].tolist())
        return (self.w * batch["frames"].mean()).sum()

    def validation_step(self, batch, batch_idx):
        self.val_batches += 1

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.0)


def test_lightning_fit_sets_the_epoch(synth):
    def fit():
        model = _Recorder()
        trainer = pl.Trainer(
            max_epochs=2,
            accelerator="cpu",
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
        )
        trainer.fit(model, datamodule=make_dm(synth, val_fraction=0.5))
        return model

    a, b = fit(), fit()
    assert a.seen == b.seen and a.seen[0] != a.seen[1]
    assert a.val_batches > 0
