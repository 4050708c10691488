"""Training and evaluation of the SiamFC tracker (:mod:`wsal.linking.siamfc` holds inference).

- :class:`TrackingPairs`: (exemplar, search) crop pairs from the GT tubes of any
  :class:`DatasetIndex`; SynthActors by default. Class-agnostic: a GT tube is just a track, as
  SiamFC is trained on generic tracking data (ImageNet VID in the paper).
- :class:`SiamFCModule`: the LightningModule: balanced logistic loss on the response map (SiamFC
  §2.2, Eq. 1-2), Adam with a cosine schedule, ``val/loss`` and ``val/center_error``.
- :func:`train_tracker` writes a checkpoint (:func:`wsal.nets.siamfc.save_checkpoint`);
  :func:`ensure_tracker` returns the default tracker's checkpoint, training it on first use;
  :func:`default_tracker_checkpoint` is what the composing code (``wsal.app.stages``) calls
  before building an actor linker without a checkpoint (linkers never train).
- :func:`evaluate_tracker`: OTB-style one-pass evaluation on held-out GT tubes.

CLI::

    python -m wsal.models.tracker train --data data/synthactors --out data/trackers/siamfc_synth.pt
    python -m wsal.models.tracker eval --data data/synthactors --checkpoint data/trackers/siamfc_synth.pt

Frames 0-based, boxes xyxy float pixels (continuous, see :mod:`wsal.linking.siamfc`).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, TypedDict

import numpy as np
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from wsal.atomic import atomic_write_json, file_lock
from wsal.data.annotations import DatasetIndex, load_index, read_wsal_json
from wsal.data.synthactors import ensure_synthactors
from wsal.data.video import read_frames
from wsal.errors import discard_unreadable, zip_problem
from wsal.linking.siamfc import SiamFCConfig, SiamFCTracker, crop_regions, exemplar_regions
from wsal.nets.siamfc import (
    SiamFCNet,
    make_tracker,
    pretrained_tracker_checkpoint,
    save_checkpoint,
)
from wsal.tube_ops import box_iou_paired

__all__ = [
    "TRACKER_VERSION",
    "PairBatch",
    "TrackerTrainConfig",
    "TrackingPairs",
    "SiamFCModule",
    "response_labels",
    "balanced_logistic_loss",
    "train_tracker",
    "default_tracker_checkpoint",
    "default_tracker_path",
    "ensure_tracker",
    "evaluate_tracker",
    "tracking_metrics",
]

log = logging.getLogger(__name__)

#: Bump when the training code changes what a given configuration produces (ensure_tracker key).
TRACKER_VERSION = "1"


@dataclass
class TrackerTrainConfig:
    """Everything that shapes a trained tracker besides :class:`SiamFCConfig` and the data.

    epochs, pairs_per_epoch, batch_size: the schedule (pairs are drawn afresh every epoch).
    lr, weight_decay: Adam; the learning rate follows a cosine from ``lr`` to ``lr * lr_final``.
    max_gap: largest distance between exemplar and search box, in annotations of the tube
        (= frames for tubes annotated in every frame), either direction.
    max_shift: search-crop centre jitter, uniform in ``±max_shift`` search-crop pixels per axis
        (the target is then off-centre by as much: no centre bias to learn).
    scale_jitter: search-crop side multiplied by ``exp(U(-log(1+j), log(1+j)))``.
    radius: response cells within ``radius`` search-crop pixels of the target are positives
        (SiamFC: R = 16 px at stride 8, i.e. 2 cells; here 8 px at stride 4).
    val_fraction, val_pairs: videos of the split held out for ``val/*`` metrics, and fixed pairs
        drawn from them.
    seed: every random draw (pairs, init, split of validation videos).
    accelerator: Lightning's (``auto``: a GPU when there is one).
    """

    epochs: int = 8
    pairs_per_epoch: int = 4096
    batch_size: int = 32
    lr: float = 3e-3
    lr_final: float = 0.02
    weight_decay: float = 5e-4
    max_gap: int = 20
    max_shift: float = 16.0
    scale_jitter: float = 0.05
    radius: float = 8.0
    val_fraction: float = 0.1
    val_pairs: int = 512
    seed: int = 0
    accelerator: str = "auto"

    def __post_init__(self) -> None:
        for name in ("epochs", "pairs_per_epoch", "batch_size", "max_gap", "val_pairs", "seed"):
            setattr(self, name, int(getattr(self, name)))
        if self.epochs < 1 or self.batch_size < 1 or self.pairs_per_epoch < self.batch_size:
            raise ValueError(
                "need epochs >= 1, batch_size >= 1 and pairs_per_epoch >= batch_size (incomplete "
                f"batches are dropped), got {self.epochs}, {self.batch_size}, "
                f"{self.pairs_per_epoch}"
            )
        if not 0 <= self.val_fraction < 1 or self.max_gap < 0 or self.max_shift < 0:
            raise ValueError("need 0 <= val_fraction < 1, max_gap >= 0 and max_shift >= 0")

    def key(self) -> dict[str, Any]:
        """The fields that shape the result (``accelerator`` does not, beyond float noise)."""
        d = asdict(self)
        d.pop("accelerator")
        return d


class PairBatch(TypedDict):
    exemplar: Tensor  # [B, 3, ez, ez] float RGB 0-255
    search: Tensor  # [B, 3, sx, sx] float RGB 0-255
    offset: Tensor  # [B, 2] (x, y) target centre minus search-crop centre, search-crop pixels


# ------------------------------------------------------------------------------------- data
class TrackingPairs(Dataset):
    """(exemplar, search) pairs from GT tubes, SiamFC-style.

    Item ``i`` is a pure function of ``(seed, epoch, i)``: a GT box drawn uniformly over all GT
    boxes of the videos (so long tubes count more), a second box of the same tube at most
    ``max_gap`` annotations away (either direction), the exemplar crop of the first box and a
    jittered search crop around the second (see :class:`TrackerTrainConfig`), both flipped
    horizontally with probability 1/2.

    The frames of the tubes are decoded once (``wsal.data.video.read_frames``) and kept in memory
    as uint8 (SynthActors' 168 train videos: ~0.4 GB); pass ``frames`` to share them.

    Args:
        index: the dataset; ``videos``: the video ids to use (those without GT tubes are
            skipped). ``config``: crop sizes and context. ``train``: sampling parameters.
        epoch: chosen by the training loop (``set_epoch``) so each epoch sees new pairs.
        augment: False for fixed validation pairs (no flip, no scale jitter; centre jitter
            kept, so that "predict the centre" is not a perfect answer).
    """

    def __init__(
        self,
        index: DatasetIndex,
        videos: list[str],
        config: SiamFCConfig | None = None,
        train: TrackerTrainConfig | None = None,
        num_pairs: int | None = None,
        seed: int | None = None,
        augment: bool = True,
        frames: dict[str, np.ndarray] | None = None,
        progress: bool = False,
    ) -> None:
        self.config = config if config is not None else SiamFCConfig()
        self.train = train if train is not None else TrackerTrainConfig()
        self.num_pairs = int(num_pairs if num_pairs is not None else self.train.pairs_per_epoch)
        self.seed = int(seed if seed is not None else self.train.seed)
        self.augment = augment
        self.epoch = 0
        tube_video, tube_rows, tube_boxes = [], [], []
        self.frames: dict[str, Tensor] = {}
        self.means: dict[str, Tensor] = {}
        todo = [v for v in videos if index.videos[v].tubes]
        for v in tqdm(todo, desc="decoding tracks", unit="video", disable=not progress):
            tubes = [t for t in index.videos[v].tubes if len(t.frames)]
            need = np.unique(np.concatenate([t.frames for t in tubes]))  # sorted frame numbers
            if frames is not None and v in frames:
                pix = frames[v][need]
            else:
                pix = read_frames(index.video_path(v), need)
            self.frames[v] = torch.from_numpy(np.ascontiguousarray(pix))  # [n, H, W, 3] uint8
            # padding colour of each frame (crop_regions' default, computed once here)
            self.means[v] = torch.from_numpy(pix.reshape(len(pix), -1, 3).mean(axis=1))  # [n, 3]
            for t in tubes:
                tube_video.append(v)
                tube_rows.append(np.searchsorted(need, t.frames))  # rows of self.frames[v]
                tube_boxes.append(t.boxes.astype(np.float64))
        if not tube_video:
            raise ValueError(f"no GT tubes in the {len(videos)} videos given: nothing to train on")
        self.tube_video = tube_video
        self.tube_rows = tube_rows
        self.tube_boxes = tube_boxes
        self.offsets = np.cumsum([0] + [len(r) for r in tube_rows])  # [num_tubes + 1] CSR

    def __len__(self) -> int:
        return self.num_pairs

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __getitem__(self, i: int) -> PairBatch:
        cfg, tr = self.config, self.train
        rng = np.random.default_rng([self.seed, self.epoch, int(i)])
        j = int(rng.integers(self.offsets[-1]))
        k = int(np.searchsorted(self.offsets, j, side="right") - 1)  # tube of box j
        n = len(self.tube_rows[k])
        a = j - int(self.offsets[k])
        b = int(np.clip(a + rng.integers(-tr.max_gap, tr.max_gap + 1), 0, n - 1))
        v = self.tube_video[k]
        ra, rb = int(self.tube_rows[k][a]), int(self.tube_rows[k][b])
        boxes = torch.as_tensor(self.tube_boxes[k][[a, b]])  # [2, 4] float64
        centre, _, x_sz = exemplar_regions(boxes, cfg.context, cfg.exemplar_size, cfg.search_size)
        z_sz = x_sz[:1] * (cfg.exemplar_size / cfg.search_size)  # [1]
        frames, means = self.frames[v], self.means[v]
        za = frames[ra].permute(2, 0, 1).float()  # [3, H, W]
        z = crop_regions(za, centre[:1].float(), z_sz.float(), cfg.exemplar_size, means[ra].float())
        s = np.exp(rng.uniform(-1, 1) * np.log1p(tr.scale_jitter)) if self.augment else 1.0
        side = x_sz[1:] * s  # [1] float64
        shift = torch.as_tensor(rng.uniform(-tr.max_shift, tr.max_shift, 2))  # [2] crop px
        xc = centre[1:] + shift * (side / cfg.search_size)  # [1, 2] crop centre, frame px
        xb = frames[rb].permute(2, 0, 1).float()  # [3, H, W]
        x = crop_regions(xb, xc.float(), side.float(), cfg.search_size, means[rb].float())
        z, x = z[0], x[0]  # [3, ez, ez], [3, sx, sx]
        offset = -shift  # the target sits at -shift from the crop centre
        if self.augment and rng.random() < 0.5:
            z, x = z.flip(-1), x.flip(-1)
            offset = offset * torch.tensor([-1.0, 1.0], dtype=offset.dtype)
        return {"exemplar": z.float(), "search": x.float(), "offset": offset.float()}


# ------------------------------------------------------------------------------------- loss
def response_labels(
    offset: Tensor, size: tuple[int, int], stride: int, radius: float
) -> tuple[Tensor, Tensor]:
    """SiamFC labels and balanced weights for responses of ``size = (h, w)``.

    Cell ``(u, v)`` stands for a displacement ``((v - (w-1)/2) * stride, (u - (h-1)/2) * stride)``
    search-crop pixels (see :mod:`wsal.linking.siamfc`). Returns ``labels [B, h, w]`` (1 where that
    displacement is within ``radius`` of ``offset [B, 2]`` (x, y), else 0) and ``weights [B, h,
    w]``: positives share 1/2 and negatives 1/2 of each pair's weight (SiamFC balances the two
    classes); a pair without positives puts all its weight on its negatives.
    """
    h, w = size
    ys = (torch.arange(h, dtype=offset.dtype, device=offset.device) - (h - 1) / 2) * stride  # [h]
    xs = (torch.arange(w, dtype=offset.dtype, device=offset.device) - (w - 1) / 2) * stride  # [w]
    dx = xs[None, None, :] - offset[:, 0, None, None]  # [B, 1, w]
    dy = ys[None, :, None] - offset[:, 1, None, None]  # [B, h, 1]
    labels = ((dx**2 + dy**2) <= radius**2).to(offset.dtype)  # [B, h, w]
    npos = labels.sum(dim=(1, 2), keepdim=True)  # [B, 1, 1]
    nneg = h * w - npos
    wpos = torch.where(npos > 0, 0.5 / npos.clamp_min(1), torch.zeros_like(npos))
    wneg = torch.where(npos > 0, 0.5 / nneg.clamp_min(1), 1.0 / nneg.clamp_min(1))
    return labels, labels * wpos + (1 - labels) * wneg


def balanced_logistic_loss(response: Tensor, labels: Tensor, weights: Tensor) -> Tensor:
    """SiamFC Eq. 1-2: ``log(1 + exp(-y v))`` with ``y = ±1``, weighted per cell, summed per pair
    and averaged over pairs. ``response [B, 1, h, w]`` logits, ``labels``/``weights [B, h, w]``."""
    bce = F.binary_cross_entropy_with_logits(response[:, 0], labels, reduction="none")  # [B,h,w]
    return (bce * weights).sum(dim=(1, 2)).mean()


# ------------------------------------------------------------------------------------ module
class SiamFCModule(pl.LightningModule):
    """Training system for :class:`SiamFCNet` (loss, metrics, optimiser; the net stays plain).

    Args:
        config: SiamFC architecture (a dict is accepted, as stored in hparams).
        lr, lr_final, weight_decay, radius: see :class:`TrackerTrainConfig`.
    """

    def __init__(
        self,
        config: SiamFCConfig | dict[str, Any] | None = None,
        lr: float = 3e-3,
        lr_final: float = 0.02,
        weight_decay: float = 5e-4,
        radius: float = 8.0,
    ) -> None:
        super().__init__()
        if isinstance(config, dict):
            config = SiamFCConfig.from_dict(config)
        config = config if config is not None else SiamFCConfig()
        self.save_hyperparameters({"config": config.to_dict(), "lr": lr, "lr_final": lr_final,
                                   "weight_decay": weight_decay, "radius": radius})  # fmt: skip
        self.net = SiamFCNet(config)

    def forward(self, exemplar: Tensor, search: Tensor) -> Tensor:
        """Response logits ``[B, 1, h, w]`` of pairs."""
        return self.net(exemplar, search)

    def _step(self, batch: PairBatch, split: str) -> Tensor:
        response = self(batch["exemplar"], batch["search"])  # [B, 1, h, w]
        B, _, h, w = response.shape
        labels, weights = response_labels(
            batch["offset"], (h, w), SiamFCNet.stride, self.hparams["radius"]
        )
        loss = balanced_logistic_loss(response, labels, weights)
        # centre error: distance from the response peak to the true target, search-crop pixels
        peak = response.detach().flatten(1).argmax(dim=1)  # [B]
        u = torch.div(peak, w, rounding_mode="floor")
        pos = torch.stack([peak - u * w - (w - 1) / 2, u - (h - 1) / 2], dim=1) * SiamFCNet.stride
        err = (pos - batch["offset"]).norm(dim=1).mean()
        on_step = split == "train"
        self.log(f"{split}/loss", loss, prog_bar=True, batch_size=B, on_step=on_step,
                 on_epoch=True, sync_dist=not on_step)  # fmt: skip
        self.log(f"{split}/center_error", err, prog_bar=True, batch_size=B, on_step=on_step,
                 on_epoch=True, sync_dist=not on_step)  # fmt: skip
        return loss

    def training_step(self, batch: PairBatch, batch_idx: int) -> Tensor:
        return self._step(batch, "train")

    def validation_step(self, batch: PairBatch, batch_idx: int) -> Tensor:
        return self._step(batch, "val")

    def configure_optimizers(self) -> Any:
        opt = torch.optim.Adam(
            self.net.parameters(), lr=self.hparams["lr"], weight_decay=self.hparams["weight_decay"]
        )
        steps = max(1, int(self.trainer.estimated_stepping_batches))
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(
            opt, T_max=steps, eta_min=self.hparams["lr"] * self.hparams["lr_final"]
        )
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


class _PairEpochs(pl.Callback):
    """New pairs every epoch: hand the epoch number to the training dataset."""

    def __init__(self, dataset: TrackingPairs) -> None:
        self.dataset = dataset

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.dataset.set_epoch(trainer.current_epoch)


# --------------------------------------------------------------------------------- training
def _split_videos(
    index: DatasetIndex, split: str, val_fraction: float, seed: int
) -> tuple[list[str], list[str]]:
    """(train, val) video ids of a split's videos that have GT tubes; val drawn with ``seed``."""
    vids = [v for v in index.split(split) if index.videos[v].tubes]
    if not vids:
        raise ValueError(f"split {split!r} has no video with a GT tube: nothing to train on")
    n_val = int(round(val_fraction * len(vids)))
    if n_val == 0 or n_val >= len(vids):
        return vids, []
    perm = np.random.default_rng(seed).permutation(len(vids))
    val = set(perm[:n_val].tolist())
    return [v for i, v in enumerate(vids) if i not in val], [
        v for i, v in enumerate(vids) if i in val
    ]


def train_tracker(
    index: DatasetIndex,
    split: str = "train",
    out: str | os.PathLike = "data/trackers/siamfc.pt",
    *,
    config: SiamFCConfig | None = None,
    train: TrackerTrainConfig | None = None,
    progress: bool = True,
    extra: dict[str, Any] | None = None,
    **overrides: Any,
) -> Path:
    """Train SiamFC on the GT tubes of ``index``'s ``split`` and write the checkpoint ``out``.

    ``overrides`` are :class:`TrackerTrainConfig` fields (``epochs=2``, ...). The checkpoint
    (written atomically, loadable with ``weights_only=True``) holds the SiamFCConfig, the state
    dict and, under ``extra``, the training config, the final validation metrics, the training
    time and whatever ``extra`` adds. Returns ``out``.
    """
    cfg = config if config is not None else SiamFCConfig()
    tr = train if train is not None else TrackerTrainConfig()
    if overrides:
        tr = TrackerTrainConfig(**{**asdict(tr), **overrides})
    pl.seed_everything(tr.seed, workers=True, verbose=False)
    t0 = time.perf_counter()
    train_v, val_v = _split_videos(index, split, tr.val_fraction, tr.seed)
    pairs = TrackingPairs(index, train_v, cfg, tr, progress=progress)
    train_loader = DataLoader(
        pairs, batch_size=tr.batch_size, shuffle=False, drop_last=True, num_workers=0
    )
    val_loader = None
    if val_v:
        val = TrackingPairs(
            index, val_v, cfg, tr, num_pairs=tr.val_pairs, seed=tr.seed + 1, augment=False
        )
        val_loader = DataLoader(val, batch_size=64, num_workers=0)
    t_data = time.perf_counter() - t0
    module = SiamFCModule(cfg, tr.lr, tr.lr_final, tr.weight_decay, tr.radius)
    trainer = pl.Trainer(
        max_epochs=tr.epochs,
        accelerator=tr.accelerator,
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=progress,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        limit_val_batches=1.0 if val_v else 0,
        callbacks=[_PairEpochs(pairs)],
    )
    trainer.fit(module, train_dataloaders=train_loader, val_dataloaders=val_loader)
    seconds = time.perf_counter() - t0
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val/")}
    info = {
        "train": asdict(tr),
        "split": split,
        "videos": len(train_v),
        "val_videos": len(val_v),
        "seconds": round(seconds, 1),
        "decode_seconds": round(t_data, 1),
        "val": metrics,
        "tracker_version": TRACKER_VERSION,
        **(extra or {}),
    }
    path = save_checkpoint(out, module.net.cpu(), info)
    log.info("trained SiamFC in %.0f s -> %s (%s)", seconds, path, metrics)
    return path


def _dataset_id(root: Path) -> str:
    """Identity of a dataset folder for cache keys: SynthActors' config hash, else the hash of
    its annotation file."""
    meta = root / "meta.json"
    if meta.is_file():
        m = json.loads(meta.read_text())
        if "config_hash" in m:
            return f"synthactors-{m.get('version')}-{m['config_hash']}"
    return "sha1-" + hashlib.sha1((root / "annotations.json").read_bytes()).hexdigest()[:16]


def default_tracker_path(
    dataset_root: str | os.PathLike = "data/synthactors",
    cache_dir: str | os.PathLike | None = None,
    *,
    config: SiamFCConfig | None = None,
    train: TrackerTrainConfig | None = None,
) -> Path:
    """Where :func:`ensure_tracker` keeps the tracker trained on the (existing) dataset at
    ``dataset_root``: ``cache_dir/siamfc_<hash>.pt`` (see there); nothing is trained or read
    but the dataset's identity."""
    root = Path(dataset_root)
    key = _tracker_key(root, config, train)
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]
    out = Path(cache_dir if cache_dir is not None else root.parent / "trackers")
    return out / f"siamfc_{digest}.pt"


def _tracker_key(
    root: Path, config: SiamFCConfig | None, train: TrackerTrainConfig | None
) -> dict[str, Any]:
    cfg = config if config is not None else SiamFCConfig()
    tr = train if train is not None else TrackerTrainConfig()
    return {
        "version": TRACKER_VERSION,
        "config": cfg.to_dict(),
        "train": tr.key(),
        "dataset": _dataset_id(root),
    }


def ensure_tracker(
    dataset_root: str | os.PathLike = "data/synthactors",
    cache_dir: str | os.PathLike | None = None,
    *,
    config: SiamFCConfig | None = None,
    train: TrackerTrainConfig | None = None,
    progress: bool = True,
) -> Path:
    """The default tracker's checkpoint, trained on first use (like SynthActors generation).

    The file is ``cache_dir/siamfc_<hash>.pt`` (``cache_dir`` default: ``trackers/`` beside
    the dataset folder, e.g. ``data/trackers``), the hash covering the SiamFCConfig, the training
    config, :data:`TRACKER_VERSION` and the dataset's identity (SynthActors' config hash, or the
    annotation file's hash). If missing, it is trained on the ``train`` split of the dataset at
    ``dataset_root`` (a wsal dataset folder with ``annotations.json``); a missing folder is
    generated as the default SynthActors first (an existing one is used as it is). A checkpoint
    that cannot be read (cut or corrupt) is logged, deleted and trained again. Concurrent runs
    train it once (:func:`wsal.atomic.file_lock`): the others wait and read it.
    """
    root = Path(dataset_root)
    if not (root / "annotations.json").is_file():
        ensure_synthactors(root, progress=progress)
    cfg = config if config is not None else SiamFCConfig()
    tr = train if train is not None else TrackerTrainConfig()
    path = default_tracker_path(root, cache_dir, config=cfg, train=tr)
    if path.is_file() and zip_problem(path, full=True) is None:  # whole: read it, no lock
        return path
    with file_lock(path, "the default tracker"):  # concurrent runs train it once
        if path.is_file():
            why = zip_problem(path, full=True)  # a cut or corrupt checkpoint is trained again
            if why is None:
                return path
            discard_unreadable(path, why, "tracker checkpoint", log)
        log.warning("training the default SiamFC tracker on %s (first use) -> %s", root, path)
        index = read_wsal_json(root / "annotations.json", root)
        key = _tracker_key(root, cfg, tr)
        return train_tracker(
            index, "train", path, config=cfg, train=tr, progress=progress, extra={"key": key}
        )


#: The trackers :func:`default_tracker_checkpoint` makes.
TRACKER_BACKBONES = ("alexnet", "efficientnet_lite0")


def default_tracker_checkpoint(
    backbone: str = "alexnet",
    data: str | os.PathLike = "data/synthactors",
    cache_dir: str | os.PathLike | None = None,
    *,
    progress: bool = True,
) -> Path:
    """The default SiamFC tracker checkpoint of ``backbone``, made once and then reused: what an
    actor linker configured without a checkpoint uses (``default_tracker`` in
    ``conf/linker/actor.yaml``). The composing code calls this first; linkers never train.

    - ``alexnet``: SiamFC trained on the train split of the SynthActors at ``data`` (generated
      first when missing), :func:`ensure_tracker`: about 5 minutes on 2 CPU cores the first time,
      then found by its hash;
    - ``efficientnet_lite0``: the frozen ImageNet EfficientNet-Lite0 embedding, untrained
      (:func:`wsal.nets.siamfc.pretrained_tracker_checkpoint`): written once, nothing trained
      and ``data`` not read.

    Both live in ``cache_dir`` (default ``trackers/`` beside ``data``). Says so (a warning on the
    ``wsal.models.tracker`` logger) before training.
    """
    if backbone not in TRACKER_BACKBONES:
        raise ValueError(f"backbone must be one of {TRACKER_BACKBONES}, got {backbone!r}")
    root = Path(data)
    folder = Path(cache_dir) if cache_dir is not None else root.parent / "trackers"
    if backbone == "efficientnet_lite0":
        return pretrained_tracker_checkpoint(folder)
    if not ((root / "annotations.json").is_file() and default_tracker_path(root, folder).is_file()):
        log.warning(
            "the actor linker needs a SiamFC tracker; training the default one once on %s "
            "(~5 min on 2 CPU cores; a missing SynthActors is generated first), kept in %s",
            root,
            folder,
        )
    return ensure_tracker(root, folder, progress=progress)


# ------------------------------------------------------------------------------- evaluation
#: IoU thresholds of the success curve (OTB: 0, 0.05, ..., 1).
SUCCESS_THRESHOLDS = np.linspace(0.0, 1.0, 21)


def tracking_metrics(pred: np.ndarray, gt: np.ndarray) -> dict[str, float]:
    """OTB metrics of one track: ``pred``, ``gt`` float ``[n, 4]`` xyxy boxes of the same frames.

    ``success_auc``: mean over IoU thresholds ``t`` in :data:`SUCCESS_THRESHOLDS` of the fraction
    of frames with IoU > t (continuous areas); ``precision@20px`` / ``precision@5px``: fraction
    of frames whose box centre is within 20 / 5 pixels of the GT centre (``<=``).
    """
    iou = box_iou_paired(pred.astype(np.float64), gt.astype(np.float64))  # [n]
    succ = (iou[None, :] > SUCCESS_THRESHOLDS[:, None]).mean(axis=1)  # [21]
    err = np.linalg.norm(
        (pred[:, :2] + pred[:, 2:]) / 2 - (gt[:, :2] + gt[:, 2:]) / 2, axis=1
    )  # [n] centre error, pixels
    return {
        "success_auc": float(succ.mean()),
        "precision@20px": float((err <= 20).mean()),
        "precision@5px": float((err <= 5).mean()),
        "mean_iou": float(iou.mean()),
    }


def evaluate_tracker(
    tracker: SiamFCTracker,
    index: DatasetIndex,
    split: str = "test",
    progress: bool = True,
    max_videos: int | None = None,
    videos: list[str] | None = None,
) -> dict[str, Any]:
    """One-pass evaluation (OTB's OPE) on the GT tubes of ``split`` (or of ``videos``).

    Each GT tube is initialised on its first box and tracked forward (all tubes of a video in one
    :meth:`SiamFCTracker.track` call) through the tube's frames; its boxes are scored against the
    GT in the tube's annotated frames after the first (the init frame is not counted, as in
    GOT-10k). Metrics (:func:`tracking_metrics`) are averaged over tubes (OTB's per-sequence
    mean). The same metrics for a box that stays still at the first GT box are reported as
    ``static_*``: the baseline a tracker must beat. ``boxes_per_s`` counts tracked boxes
    (target-steps) over the time of the ``track`` calls (decoding excluded).
    """

    vids = [
        v
        for v in (index.split(split) if videos is None else videos)
        if any(len(t.frames) > 1 for t in index.videos[v].tubes)
    ]
    if max_videos is not None:
        vids = vids[:max_videos]
    if not vids:
        raise ValueError(f"split {split!r} has no GT tube with 2+ frames to evaluate on")
    per_tube: list[dict[str, float]] = []
    static: list[dict[str, float]] = []
    steps, seconds, frames_eval = 0, 0.0, 0
    for v in tqdm(vids, desc=f"evaluating tracker ({split})", unit="video", disable=not progress):
        tubes = [t for t in index.videos[v].tubes if len(t.frames) > 1]
        last = max(int(t.frames[-1]) for t in tubes)
        frames = read_frames(index.video_path(v), np.arange(last + 1))
        f0 = np.array([t.frames[0] for t in tubes], dtype=np.int64)
        b0 = np.stack([t.boxes[0] for t in tubes]).astype(np.float32)
        t0 = time.perf_counter()
        boxes, _ = tracker.track(frames, f0, b0, backward=False)
        seconds += time.perf_counter() - t0
        steps += int(np.sum(last - f0))
        for k, t in enumerate(tubes):
            gt = t.boxes[1:]
            per_tube.append(tracking_metrics(boxes[k, t.frames[1:]], gt))
            static.append(tracking_metrics(np.repeat(t.boxes[:1], len(gt), axis=0), gt))
            frames_eval += len(gt)
    out: dict[str, Any] = {
        name: float(np.mean([m[name] for m in per_tube])) for name in per_tube[0]
    }
    out.update({f"static_{n}": float(np.mean([m[n] for m in static])) for n in static[0]})
    out.update(
        {
            "split": split,
            "videos": len(vids),
            "tubes": len(per_tube),
            "frames": frames_eval,
            "tracked_boxes": steps,
            "track_seconds": seconds,
            "boxes_per_s": steps / seconds if seconds > 0 else float("nan"),
        }
    )
    return out


# -------------------------------------------------------------------------------------- CLI
def _load_index(data: str, annotations: str | None) -> DatasetIndex:

    root = Path(data)
    ann = Path(annotations) if annotations else root / "annotations.json"
    if not ann.exists():
        raise FileNotFoundError(f"no annotations at {ann} (give --annotations)")
    return load_index(ann, root)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(
        prog="python -m wsal.models.tracker", description=__doc__.split("\n")[0]
    )
    sub = p.add_subparsers(dest="cmd", required=True)
    pt = sub.add_parser("train", help="train SiamFC on a dataset's GT tubes")
    pe = sub.add_parser("eval", help="one-pass evaluation: success AUC, precision, boxes/s")
    for q in (pt, pe):
        q.add_argument("--data", default="data/synthactors", help="dataset folder (videos root)")
        q.add_argument(
            "--annotations", default=None, help="annotation file (default DATA/annotations.json)"
        )
        q.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    pt.add_argument("--out", required=True, help="checkpoint to write")
    pt.add_argument("--split", default="train")
    for f in fields(TrackerTrainConfig):
        pt.add_argument(f"--{f.name.replace('_', '-')}", type=type(f.default), default=f.default)
    net_defaults = SiamFCConfig()
    for f in fields(SiamFCConfig):  # architecture and crop geometry of the net to train
        d = getattr(net_defaults, f.name)
        if f.name == "channels":
            pt.add_argument(
                "--channels", default=",".join(map(str, d)), help="5 comma-separated ints"
            )
        else:
            pt.add_argument(f"--{f.name.replace('_', '-')}", type=type(d), default=d)
    pe.add_argument(
        "--checkpoint", default=None, help="default: the default tracker (ensure_tracker)"
    )
    pe.add_argument("--split", default="test")
    pe.add_argument("--device", default=None)
    pe.add_argument("--max-videos", type=int, default=None)
    pe.add_argument("--json", default=None, help="also write the metrics to this JSON file")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.threads:
        torch.set_num_threads(args.threads)
    index = _load_index(args.data, args.annotations)
    if args.cmd == "train":
        tr = TrackerTrainConfig(
            **{f.name: getattr(args, f.name) for f in fields(TrackerTrainConfig)}
        )
        net_cfg = {f.name: getattr(args, f.name) for f in fields(SiamFCConfig)}
        net_cfg["channels"] = tuple(int(c) for c in args.channels.split(","))
        path = train_tracker(index, args.split, args.out, config=SiamFCConfig(**net_cfg), train=tr)
        blob = torch.load(path, map_location="cpu", weights_only=True)
        print(f"wrote {path} in {blob['extra']['seconds']:.0f} s; val: {blob['extra']['val']}")
        return
    ckpt = args.checkpoint or ensure_tracker(args.data)
    tracker = make_tracker(checkpoint=ckpt, device=args.device)
    res = evaluate_tracker(tracker, index, args.split, max_videos=args.max_videos)
    res["checkpoint"] = str(ckpt)
    res["torch_threads"] = torch.get_num_threads()
    print(
        f"SiamFC one-pass evaluation on {res['split']} ({res['tubes']} GT tubes, {res['frames']} "
        f"frames): success AUC {res['success_auc']:.3f}, precision@20px "
        f"{res['precision@20px']:.3f}, precision@5px {res['precision@5px']:.3f}, mean IoU "
        f"{res['mean_iou']:.3f}\n"
        f"static box (baseline): success AUC {res['static_success_auc']:.3f}, precision@20px "
        f"{res['static_precision@20px']:.3f}, precision@5px {res['static_precision@5px']:.3f}, "
        f"mean IoU {res['static_mean_iou']:.3f}\n"
        f"speed: {res['boxes_per_s']:.0f} tracked boxes/s ({res['tracked_boxes']} boxes in "
        f"{res['track_seconds']:.1f} s, {tracker.device}, {res['torch_threads']} threads)"
    )
    if args.json:
        atomic_write_json(args.json, res, indent=1)


if __name__ == "__main__":
    main()
