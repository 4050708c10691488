"""Clips + actor tubes per video for actor attention (DESIGN §2, §6 "Actor attention").

One item is one video: ``num_frames`` frames sampled TSN-style (one per temporal segment), the
boxes of its first ``num_tubes`` linked tubes at those frames, and its labels. Conventions:

- frames are **0-based** (``frame_index`` holds the sampled frame numbers of the video);
- boxes are ``xyxy`` float32 pixels of the frames *as delivered* (after the optional resize to
  ``frame_size`` and the training flip), so they index the ``frames`` tensor directly;
- frames are float32 RGB ``[T, 3, H, W]``, ImageNet-normalised: ``(x / 255 - mean) / std``
  (:func:`denormalize_frames` inverts it);
- masks are True where something exists: ``box_valid[k, t]`` = tube k has a box at sampled frame
  t, ``tube_mask[k]`` = tube k exists and has a box at one sampled frame at least.

Randomness (training only) is a pure function of ``(seed, epoch, video_index)``: each item draws
from its own ``numpy`` generator seeded with ``SeedSequence([seed, epoch, video_index, 1])``
(first the ``num_frames`` segment offsets of :func:`~wsal.data.video.sample_segment_indices`, then
one uniform for the flip), and the shuffle order of an epoch from ``[seed, epoch, 2]``. The
epoch reaches the workers through the sampler (:class:`EpochSampler` yields ``(epoch, index)``
keys; Lightning calls its ``set_epoch`` at every epoch start, also through its DDP wrapper), so
batches do not depend on the number of workers, on worker seeding or on persistent workers.
(The trailing tags 1/2/3 keep the streams apart: ``SeedSequence`` treats trailing zeros as
absent, so ``[s, e]`` and ``[s, e, 0]`` would be the same stream.)

Videos without tubes: they stay in validation/test/prediction with an all-False ``tube_mask``
(the model scores nothing for them); they are **left out of training** (with a warning), where
they could never carry a signal. ``tube_mask`` can still be all-False in training when no tube
covers a sampled frame; models must handle that (``ActorAttentionModule`` masks such videos).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypedDict

import numpy as np
import pytorch_lightning as pl
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler

from wsal.data.annotations import DatasetIndex, GTTube
from wsal.data.datasets import PreparedDataset
from wsal.data.transforms import hflip_boxes, normalize_frames, resize_boxes, resize_frames
from wsal.data.video import VideoReader, sample_segment_indices
from wsal.structures import Tubes
from wsal.tube_ops import interpolate_gaps, st_iou_pairs

log = logging.getLogger(__name__)

__all__ = [
    "TubeBatch",
    "VideoRecord",
    "ActorTubeDataModule",
    "ActorTubeDataset",
    "EpochSampler",
    "collate_tube_batch",
    "gt_tube_index",
    "item_rng",
    "stratified_holdout",
]

# Trailing tags of the seed sequences (see the module docstring).
_ITEM_TAG, _ORDER_TAG, _HOLDOUT_TAG = 1, 2, 3


class TubeBatch(TypedDict):
    """A collated batch: B videos, T sampled frames, K tubes, L classes.

    frames: float32[B, T, 3, H, W] ImageNet-normalised RGB.
    boxes: float32[B, K, T, 4] xyxy pixels of ``frames`` (resized and flipped like them); zeros
        where ``box_valid`` is False.
    box_valid: bool[B, K, T] tube k has a box at sampled frame t.
    tube_mask: bool[B, K] tube k exists and has >= 1 valid sampled frame.
    label: int64[B] the video's first label (-1 for a video without labels; never in training).
    labels: float32[B, L] multi-hot of all the video's labels.
    video_index: int64[B] position of the video in ``datamodule.split_videos(stage)``.
    frame_index: int64[B, T] the sampled 0-based frame numbers (non-decreasing).
    gt_tube: int64[B] the tube (0..K-1) with the highest st-IoU with one of the video's GT
        tubes (continuous IoU), -1 if no tube overlaps one or the video has no GT.
    """

    frames: Tensor  # [B, T, 3, H, W]
    boxes: Tensor  # [B, K, T, 4]
    box_valid: Tensor  # [B, K, T]
    tube_mask: Tensor  # [B, K]
    label: Tensor  # [B]
    labels: Tensor  # [B, L]
    video_index: Tensor  # [B]
    frame_index: Tensor  # [B, T]
    gt_tube: Tensor  # [B]


def gt_tube_index(tubes: Tubes, gt_tubes: Sequence[GTTube], num_tubes: int | None = None) -> int:
    """The tube that best matches a ground-truth tube, for box-supervised training.

    st-IoU (:func:`wsal.tube_ops.st_iou_pairs`, continuous areas, no +1) between each of the first
    ``num_tubes`` tubes (all when None) over its whole valid extent and each GT tube (gaps in GT
    frames are interpolated first). Returns the argmax over tubes of the max over GT tubes (the
    lower index on ties, i.e. the linker's earlier tube), or -1 when every st-IoU is 0, there
    are no GT tubes or no non-empty tubes.
    """
    k_all = tubes.num_tubes if num_tubes is None else min(num_tubes, tubes.num_tubes)
    ks = [k for k in range(k_all) if tubes.valid[k].any()]  # empty tubes have no rows
    gts = [g for g in gt_tubes if len(g.frames)]
    if not ks or not gts:
        return -1
    rows_a = [tubes.rows(k) for k in ks]  # each float64[n_k, 5]
    off_a = np.concatenate([[0], np.cumsum([len(r) for r in rows_a])]).astype(np.int64)
    rows_b = [g.rows() for g in gts]
    off_b = np.concatenate([[0], np.cumsum([len(r) for r in rows_b])]).astype(np.int64)
    rb, off_b, _ = interpolate_gaps(np.concatenate(rows_b), off_b)
    ia, ib = np.meshgrid(np.arange(len(ks)), np.arange(len(gts)), indexing="ij")  # [Ka, G] each
    iou = st_iou_pairs(
        np.concatenate(rows_a), off_a, ia.ravel(), rb, off_b, ib.ravel(), plus_one=False
    ).reshape(len(ks), len(gts))  # [Ka, G]
    best = iou.max(axis=1)  # [Ka]
    if best.max() <= 0:
        return -1
    return int(ks[int(best.argmax())])


def stratified_holdout(
    videos: Sequence[str], labels: Sequence[int], fraction: float, seed: int = 0
) -> tuple[list[str], list[str]]:
    """Split ``videos`` into (train, held out), stratified by ``labels`` (one class per video).

    Per class with n videos, ``floor(fraction * n + 0.5)`` are held out, at most n - 1 (every
    class keeps a training video; a class with one video keeps it); which ones is a seeded
    permutation per class (``SeedSequence([seed, class, 3])``). Both lists keep the order of
    ``videos``.
    """
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {fraction}")
    if len(videos) != len(labels):
        raise ValueError(f"{len(videos)} videos but {len(labels)} labels")
    held: set[str] = set()
    for c in sorted(set(labels)):
        members = [v for v, lab in zip(videos, labels) if lab == c]
        n_val = min(int(np.floor(fraction * len(members) + 0.5)), len(members) - 1)
        perm = np.random.default_rng([seed, c, _HOLDOUT_TAG]).permutation(len(members))
        held.update(members[i] for i in perm[:n_val])
    return [v for v in videos if v not in held], [v for v in videos if v in held]


def item_rng(seed: int, epoch: int, index: int) -> np.random.Generator:
    """The generator of one training item: ``SeedSequence([seed, epoch, index, 1])``."""
    return np.random.default_rng([seed, epoch, index, _ITEM_TAG])


# ------------------------------------------------------------------------------ dataset, sampler
class EpochSampler(DistributedSampler):
    """Yields ``(epoch, i)`` for ``i`` in a permutation of ``range(num_items)`` (seeded by
    ``(seed, epoch)``; identity order when ``shuffle`` is False).

    ``set_epoch`` is called by Lightning at every epoch start; outside Lightning call it yourself.
    Carrying the epoch in the key lets each worker seed an item from ``(seed, epoch, index)`` alone.

    Under DDP (``num_replicas`` > 1) rank ``r`` takes positions ``r, r + W, r + 2W, ...`` of the
    epoch's order (padded by wrapping round to a multiple of W, as torch's DistributedSampler): the
    W ranks' batches of size b are then exactly the halves (thirds, ...) of the batches of size W*b
    one process would draw, so DDP trains the single-process model (tests/test_ddp.py). It is a
    ``DistributedSampler`` so that Lightning uses it as is instead of wrapping it in one that
    reshuffles.
    """

    def __init__(
        self,
        num_items: int,
        shuffle: bool = True,
        seed: int = 0,
        num_replicas: int = 1,
        rank: int = 0,
    ) -> None:
        # no super().__init__(): it would require an initialised process group
        if num_replicas < 1 or not 0 <= rank < num_replicas:
            raise ValueError(f"rank {rank} is not in [0, num_replicas={num_replicas})")
        self.num_items = int(num_items)
        self.shuffle = shuffle
        self.seed = int(seed)
        self.epoch = 0
        self.num_replicas = int(num_replicas)
        self.rank = int(rank)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __iter__(self) -> Iterator[tuple[int, int]]:  # type: ignore[override]
        if self.shuffle:
            order = np.random.default_rng([self.seed, self.epoch, _ORDER_TAG]).permutation(
                self.num_items
            )
        else:
            order = np.arange(self.num_items)
        if self.num_replicas > 1 and self.num_items:
            total = len(self) * self.num_replicas
            order = np.resize(order, total)[self.rank :: self.num_replicas]
        return iter([(self.epoch, int(i)) for i in order])

    def __len__(self) -> int:
        return -(-self.num_items // self.num_replicas)


@dataclass
class VideoRecord:
    """What an item needs of one video (small, so that datasets pickle cheaply to workers).

    boxes float32[K', F, 4] / valid bool[K', F]: the video's first ``num_tubes`` tubes
    (K' <= num_tubes, F = the index's frame count); size: (H, W) from the index, if known.
    """

    video: str
    position: int  # video_index: position in the stage's video list
    path: str
    nframes: int
    size: tuple[int, int] | None
    label: int
    labels: list[int]
    boxes: np.ndarray
    valid: np.ndarray
    gt_tube: int


class ActorTubeDataset(Dataset):
    """Items of :class:`TubeBatch` (without the batch axis) for a list of :class:`VideoRecord`.

    ``ds[i]`` uses ``self.epoch`` (default 0); ``ds[(epoch, i)]`` (the keys of
    :class:`EpochSampler`) the given epoch. ``train`` draws random frames per segment and flips
    (when ``flip``) with :func:`item_rng`; otherwise frames are the segment centres and nothing
    is random. Each item opens its own :class:`VideoReader` (decoder handles are never shared
    between DataLoader workers). Frames are sampled from ``min(index nframes, decoded frame
    count)``: tubes span the index's count, and a container that reports fewer frames (common
    off by one) limits the sampling rather than failing.
    """

    def __init__(
        self,
        records: Sequence[VideoRecord],
        num_classes: int,
        num_frames: int = 16,
        num_tubes: int = 20,
        train: bool = False,
        flip: bool = True,
        frame_size: tuple[int, int] | None = None,
        seed: int = 0,
    ) -> None:
        self.records = list(records)
        self.num_classes = num_classes
        self.num_frames = num_frames
        self.num_tubes = num_tubes
        self.train = train
        self.flip = flip
        self.frame_size = frame_size
        self.seed = seed
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, Tensor]:
        epoch, i = (int(key[0]), int(key[1])) if isinstance(key, tuple) else (self.epoch, int(key))
        rec = self.records[i]
        T, K = self.num_frames, self.num_tubes
        reader = VideoReader(rec.path)
        # Tubes span the index's frame count; a container reporting fewer frames limits sampling.
        n = min(rec.nframes, reader.num_frames)
        rng = item_rng(self.seed, epoch, rec.position) if self.train else None
        fidx = sample_segment_indices(n, T, train=self.train, rng=rng)  # int64[T]
        # Drawn in training whether or not `flip` is set, so `flip` never shifts the stream.
        flip = rng is not None and bool(rng.random() < 0.5) and self.flip
        raw = reader.get_frames(fidx)  # uint8 [T, H0, W0, 3]
        in_hw = (int(raw.shape[1]), int(raw.shape[2]))
        if rec.size is not None and rec.size != in_hw:
            raise ValueError(
                f"video {rec.video!r}: decoded frames are {in_hw[1]}x{in_hw[0]} (WxH) but the "
                f"annotation says {rec.size[1]}x{rec.size[0]}; its boxes would not match the pixels"
            )
        frames = normalize_frames(raw)  # [T, 3, H0, W0]

        boxes = torch.zeros(K, T, 4)  # [K, T, 4]
        valid = torch.zeros(K, T, dtype=torch.bool)  # [K, T]
        k = rec.boxes.shape[0]
        boxes[:k] = torch.from_numpy(rec.boxes[:, fidx])  # [K', T, 4]
        valid[:k] = torch.from_numpy(rec.valid[:, fidx])  # [K', T]

        out_hw = in_hw
        if self.frame_size is not None and tuple(self.frame_size) != in_hw:
            out_hw = (int(self.frame_size[0]), int(self.frame_size[1]))
            frames = resize_frames(frames, out_hw)  # [T, 3, H, W]
            boxes = resize_boxes(boxes, in_hw, out_hw)  # [K, T, 4]
        if flip:
            frames = frames.flip(-1)  # [T, 3, H, W] mirrored in x
            boxes = hflip_boxes(boxes, out_hw[1], valid)  # [K, T, 4]
        boxes = torch.where(valid[..., None], boxes, 0.0)  # [K, T, 4] zeros where invalid

        labels = torch.zeros(self.num_classes)  # [L]
        labels[rec.labels] = 1.0
        return {
            "frames": frames.contiguous(),
            "boxes": boxes,
            "box_valid": valid,
            "tube_mask": valid.any(dim=1),  # [K]
            "label": torch.tensor(rec.label, dtype=torch.int64),
            "labels": labels,
            "video_index": torch.tensor(rec.position, dtype=torch.int64),
            "frame_index": torch.from_numpy(fidx.astype(np.int64)),
            "gt_tube": torch.tensor(rec.gt_tube, dtype=torch.int64),
        }


def collate_tube_batch(
    items: Sequence[Mapping[str, Tensor]], videos: Sequence[str] | None = None
) -> TubeBatch:
    """Stack items into a :class:`TubeBatch`.

    Frames of different sizes cannot be stacked: that raises ``ValueError`` naming each video
    (``videos[video_index]`` when ``videos`` is given) and its size; resize with ``frame_size``.
    """
    sizes = [tuple(it["frames"].shape[-2:]) for it in items]
    if len(set(sizes)) > 1:
        names = [
            videos[int(it["video_index"])] if videos is not None else f"#{int(it['video_index'])}"
            for it in items
        ]
        listing = ", ".join(f"{n!r}: {w}x{h}" for n, (h, w) in zip(names, sizes))
        raise ValueError(
            f"videos of different frame sizes (WxH) in one batch: {listing}; set "
            "frame_size=[H, W] to resize them to one size"
        )
    keys = TubeBatch.__annotations__
    return TubeBatch(**{k: torch.stack([it[k] for it in items]) for k in keys})  # type: ignore[typeddict-item]


# ---------------------------------------------------------------------------------- DataModule
class ActorTubeDataModule(pl.LightningDataModule):
    """Clips + actor tubes per video (:class:`TubeBatch`) for actor attention.

    Args:
        dataset: a dataset source with ``prepare() -> PreparedDataset`` (e.g.
            :class:`wsal.data.datasets.SynthActors`).
        tubes: the tube source, ``tubes(prepared) -> {video: Tubes}`` (every video of the
            index), called once per process in ``prepare_data`` / ``setup``. The caller composes
            it, usually the shared tube cache: ``functools.partial(wsal.linking.cache.link_cached,
            detector=..., linker=..., cache_dir=...)``. It must pickle for ``ddp_spawn``.
        num_frames: T, frames per video (one per equal temporal segment).
        num_tubes: K, tubes per video: the linker's first K, padded with empty (masked) tubes.
        batch_size: videos per batch.
        num_workers: DataLoader workers (persistent when > 0).
        train_split / test_split: split names of the index (``test_split`` also serves
            ``predict``).
        val_split: a split of the index to validate on; or None and ``val_fraction``.
        val_fraction: without ``val_split``, the fraction of ``train_split`` held out for
            validation, stratified by first label (:func:`stratified_holdout`, seeded by
            ``seed``); 0 = no validation (``val_dataloader`` returns ``[]``).
        flip: random horizontal flip (p = 0.5) of frames and boxes in training.
        frame_size: (H, W) to resize every frame to (boxes scaled alike); None keeps each video's
            size, and then a batch of videos of different sizes raises.
        seed: seeds the hold-out, the epoch order and each training item (module docstring).

    After ``setup``: ``index`` (DatasetIndex), ``tubes`` ({video: Tubes}, all videos),
    ``label_names``, ``gt_tube`` ({video: index of the best-matching tube or -1}, for the videos
    of the splits used) and :meth:`split_videos`.

    Raises (at setup): ``ValueError`` naming the video for a label outside the class list, a
    training or validation video without a label, or a training set left empty.
    """

    def __init__(
        self,
        dataset: Any,
        tubes: Callable[[PreparedDataset], Mapping[str, Tubes]],
        num_frames: int = 16,
        num_tubes: int = 20,
        batch_size: int = 4,
        num_workers: int = 0,
        train_split: str = "train",
        val_split: str | None = None,
        test_split: str = "test",
        val_fraction: float = 0.0,
        flip: bool = True,
        frame_size: Sequence[int] | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if num_frames < 1 or num_tubes < 1 or batch_size < 1 or num_workers < 0:
            raise ValueError(
                "need num_frames, num_tubes, batch_size >= 1 and num_workers >= 0, got "
                f"{num_frames}, {num_tubes}, {batch_size}, {num_workers}"
            )
        if not 0.0 <= val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
        if val_split is not None and val_fraction > 0:
            raise ValueError(
                f"give val_split ({val_split!r}) or val_fraction ({val_fraction}), not both"
            )
        if seed < 0:
            raise ValueError(f"seed must be >= 0, got {seed}")
        size: tuple[int, int] | None = None
        if frame_size is not None:
            if len(frame_size) != 2 or min(int(s) for s in frame_size) < 1:
                raise ValueError(f"frame_size must be [H, W] of positive ints, got {frame_size}")
            size = (int(frame_size[0]), int(frame_size[1]))
        self.dataset = dataset
        self.tube_source = tubes
        self.num_frames = int(num_frames)
        self.num_tubes = int(num_tubes)
        self.batch_size = int(batch_size)
        self.num_workers = int(num_workers)
        self.train_split = train_split
        self.val_split = val_split
        self.test_split = test_split
        self.val_fraction = float(val_fraction)
        self.flip = flip
        self.frame_size = size
        self.seed = int(seed)

        self.prepared: PreparedDataset | None = None
        self.index: DatasetIndex | None = None
        self.tubes: dict[str, Tubes] = {}
        self.label_names: list[str] = []
        self.gt_tube: dict[str, int] = {}
        self._videos: dict[str, list[str]] = {}  # "train" / "val" / "test" -> video ids
        self._datasets: dict[str, ActorTubeDataset] = {}

    # ---------------------------------------------------------------------------- preparation
    def prepare_data(self) -> None:
        """Generate/find the dataset and make its tubes (the tube source caches them; once,
        rank 0 per node)."""
        if self.index is not None:  # set up already in this process (e.g. train.py, then fit)
            return
        prepared = self.dataset.prepare()
        self.tubes = dict(self.tube_source(prepared))
        self.prepared = prepared  # only with its tubes: setup() makes them when this failed

    def setup(self, stage: str | None = None) -> None:
        """Load the index and the cached tubes (once) and build the datasets of ``stage``
        (``fit``, ``validate``, ``test``, ``predict``; None = all)."""
        if self.index is None:
            self._load()
        wanted = {
            "fit": ("train", "val"),
            "validate": ("val",),
            "test": ("test",),
            "predict": ("test",),
            None: ("train", "val", "test"),
        }
        if stage not in wanted:
            raise ValueError(f"unknown stage {stage!r}; expected one of {sorted(map(str, wanted))}")
        for name in wanted[stage]:
            if name not in self._datasets:
                self._datasets[name] = self._build(name)

    def _load(self) -> None:
        if self.prepared is None:  # DDP ranks > 0 (prepare_data ran on rank 0) or no Trainer
            prepared = self.dataset.prepare()
            self.tubes = dict(self.tube_source(prepared))  # rank > 0: from the source's cache
            self.prepared = prepared
        index = self.index = self.prepared.index
        self.label_names = list(index.labels)
        train = list(index.split(self.train_split))
        val: list[str] = []
        if self.val_split is not None:
            val = list(index.split(self.val_split))
        elif self.val_fraction > 0:
            first = [self._labels(v, "train")[0] for v in train]
            train, val = stratified_holdout(train, first, self.val_fraction, self.seed)
        self._videos = {"train": train, "val": val}

    def _labels(self, video: str, split: str) -> list[int]:
        """The video's labels, checked against the class list (training splits need one)."""
        assert self.index is not None
        labels = [int(x) for x in self.index.videos[video].labels]
        n = len(self.label_names)
        bad = [x for x in labels if not 0 <= x < n]
        if bad:
            raise ValueError(
                f"video {video!r}: label {bad[0]} is outside the class list "
                f"(0..{n - 1}: {self.label_names})"
            )
        if not labels and split in ("train", "val"):
            raise ValueError(f"video {video!r} ({split} split) has no label; training needs one")
        return labels

    def _build(self, name: str, augment: bool | None = None) -> ActorTubeDataset:
        """The dataset of ``train``, ``val`` or ``test`` (also used for predict); ``augment``
        (default: ``name == "train"``) draws random frames and flips and drops tubeless videos."""
        assert self.index is not None
        videos = self.split_videos(name)
        records = []
        for pos, v in enumerate(videos):
            if v not in self.index.videos:
                raise KeyError(f"video {v!r} of the {name} split is not in the annotation index")
            info = self.index.videos[v]
            labels = self._labels(v, name)
            tubes = self.tubes.get(v, Tubes.empty(info.nframes))
            if v not in self.gt_tube:
                self.gt_tube[v] = gt_tube_index(tubes, info.tubes, self.num_tubes)
            k = min(self.num_tubes, tubes.num_tubes)
            size = (info.height, info.width) if info.height and info.width else None
            records.append(
                VideoRecord(
                    video=v,
                    position=pos,
                    path=str(self.index.video_path(v)),
                    nframes=int(info.nframes),
                    size=size,
                    label=labels[0] if labels else -1,
                    labels=labels,
                    boxes=tubes.boxes[:k],
                    valid=tubes.valid[:k],
                    gt_tube=self.gt_tube[v],
                )
            )
        train = name == "train" if augment is None else augment
        if train:
            empty = [r.video for r in records if not r.valid.any()]
            if empty:
                log.warning(
                    "%d training video(s) without tubes left out of training: %s%s",
                    len(empty),
                    ", ".join(empty[:5]),
                    " ..." if len(empty) > 5 else "",
                )
                records = [r for r in records if r.valid.any()]
            if not records:
                raise ValueError(
                    f"no training videos with tubes in split {self.train_split!r} "
                    f"({len(videos)} videos)"
                )
        return ActorTubeDataset(
            records,
            num_classes=len(self.label_names),
            num_frames=self.num_frames,
            num_tubes=self.num_tubes,
            train=train,
            flip=self.flip,
            frame_size=self.frame_size,
            seed=self.seed,
        )

    def split_videos(self, stage: str) -> list[str]:
        """Video ids that ``video_index`` indexes for a stage: ``fit``/``train`` (the train split
        minus the held-out videos; videos without tubes included, though training skips them),
        ``validate``/``val``, ``test``/``predict`` (the test split)."""
        if self.index is None:
            raise RuntimeError("call setup() first")
        name = {"fit": "train", "validate": "val", "predict": "test"}.get(stage, stage)
        if name in ("train", "val"):
            return self._videos[name]
        if name == "test":
            return list(self.index.split(self.test_split))
        raise ValueError(
            f"unknown stage {stage!r}; expected fit/train, validate/val, test, predict"
        )

    # ---------------------------------------------------------------------------- dataloaders
    def _loader(self, name: str, sampler: Sampler | None = None) -> DataLoader:
        if name not in self._datasets:
            self.setup({"train": "fit", "val": "validate", "test": "test"}[name])
        ds = self._datasets[name]
        return DataLoader(
            ds,
            batch_size=self.batch_size,
            sampler=sampler,
            shuffle=False,
            num_workers=self.num_workers,
            collate_fn=functools.partial(collate_tube_batch, videos=self.split_videos(name)),
            pin_memory=torch.cuda.is_available(),
            persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        """Shuffled (seeded per epoch), random frames per segment, random flips."""
        if "train" not in self._datasets:
            self.setup("fit")
        trainer = self.trainer  # set by Lightning while fitting; None when used by hand
        world, rank = (trainer.world_size, trainer.global_rank) if trainer is not None else (1, 0)
        sampler = EpochSampler(
            len(self._datasets["train"]),
            shuffle=True,
            seed=self.seed,
            num_replicas=world,
            rank=rank,
        )
        return self._loader("train", sampler)

    def val_dataloader(self) -> DataLoader | list:
        """Centre frames, no flip, split order; ``[]`` (no validation) without val videos."""
        if "val" not in self._datasets:
            self.setup("validate")
        if len(self._datasets["val"]) == 0:
            return []
        return self._loader("val")

    def test_dataloader(self) -> DataLoader:
        """The test split: centre frames, no flip, split order."""
        return self._loader("test")

    def predict_dataloader(self) -> DataLoader:
        """Same as :meth:`test_dataloader` (``video_index`` indexes ``split_videos("predict")``)."""
        return self._loader("test")

    def fixed_dataloader(self, name: str) -> DataLoader:
        """``train``, ``val`` or ``test`` with centre frames, no flip, split order and every video
        (tubeless ones masked): the fixed view a frozen encoder's feature cache reads."""
        if self.index is None:
            self._load()
        ds = self._build(name, augment=False)
        return DataLoader(
            ds,
            batch_size=self.batch_size,
            shuffle=False,
            num_workers=self.num_workers,
            collate_fn=functools.partial(collate_tube_batch, videos=self.split_videos(name)),
        )
