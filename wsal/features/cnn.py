"""CNN box features: a frame encoder + roi_align + pooling, run as a Lightning ``predict``.

STIL §4 takes the 4,096-D ROI-pooled representation of a person-detector Faster R-CNN per box and
L2-normalises it; wsal's equivalent is any :func:`wsal.nets.encoders.build_encoder` encoder
(random init, torchvision weights, a state-dict file) or the encoder of a trained wsal checkpoint
(e.g. an actor-attention run's ``last.ckpt``), then for each box

    roi_align(maps, box, output_size, spatial_scale=1/stride, sampling_ratio, aligned=True)
    -> [C, s, s] -> pooling ("avg": mean over the s x s grid -> [C]; "max"; "flatten": [C*s*s])
    -> L2-normalised.

Coordinates follow ``wsal/nets/pooling.py``: boxes ``xyxy`` in input pixels (x2/y2 the right /
bottom edges), feature cell ``u`` centred on input ``(u + 0.5) * stride``. Boxes are clipped to the
frame and widened to at least ``min_box_size`` pixels (default: one feature cell) first
(:func:`wsal.features.store.prepare_boxes`). Frames are ImageNet-normalised RGB, as the encoders'
weights expect. A box whose pooled ReLU responses are all 0 gives an all-zero row: kept (its
score under a linear model is the bias), counted in the store and logged; never NaN.

The video descriptor (STIL §4 "video features": frames at 2 fps, a CNN, average pooling, L2) is the
encoder's maps at the sampled frames, averaged over space and frames -> [C], L2-normalised.

Many videos: :meth:`CNNExtractor.extract_chunks` runs ``Trainer.predict`` over a dataset whose
items are videos (one video per batch; its frames go through the encoder ``batch_frames`` at a
time); a prediction writer saves each video's rows as a chunk file as soon as it is done. Under
DDP, Lightning gives each rank a disjoint share of the videos (``UnrepeatedDistributedSampler``);
the chunk files merge by video id and rank 0 assembles the store
(:func:`wsal.features.store.extract_box_features`). A multi-GPU run needs the entry script to be
re-runnable by Lightning's DDP launcher (``train.py`` is) or a ``torchrun`` launch.
"""

from __future__ import annotations

import collections
import hashlib
import json
import logging
import os
import pickle
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from pytorch_lightning.callbacks import BasePredictionWriter
from torch import Tensor
from torch.utils.data import DataLoader, Dataset
from torchvision.ops import roi_align

from wsal.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from wsal.features.store import (
    VideoJob,
    job_frame_ids,
    open_job_reader,
    prepare_boxes,
    write_chunk,
)
from wsal.nets.encoders import Encoder, build_encoder, load_backbone_state
from wsal.structures import Detections

__all__ = ["CNNExtractor", "load_checkpoint_encoder", "pool_boxes", "POOLINGS", "state_digest"]

log = logging.getLogger(__name__)

POOLINGS = ("avg", "max", "flatten")
_VERSION = 1  # bump when the computation changes without a parameter changing


# ------------------------------------------------------------------------------ tensor functions
def normalize_on_device(frames: Tensor) -> Tensor:
    """uint8 ``[T, H, W, 3]`` RGB (any device) -> float32 ``[T, 3, H, W]`` ImageNet-normalised."""
    x = frames.permute(0, 3, 1, 2).float().div_(255.0)  # [T, 3, H, W]
    mean = torch.tensor(IMAGENET_MEAN, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=x.device).view(1, 3, 1, 1)
    return (x - mean) / std


def pool_boxes(
    maps: Tensor,
    frame: Tensor,
    boxes: Tensor,
    stride: int,
    output_size: int = 7,
    sampling_ratio: int = 2,
    pooling: str = "avg",
) -> Tensor:
    """Pooled box features (not normalised).

    Args:
        maps: Tensor[T, C, h, w] encoder maps of T frames.
        frame: int Tensor[N], the row of ``maps`` each box is on.
        boxes: Tensor[N, 4] xyxy input pixels.
        stride: the encoder's stride (``spatial_scale = 1 / stride``, ``aligned=True``).
        output_size, sampling_ratio: roi_align's grid (s x s bins) and samples per bin side.
        pooling: ``avg`` / ``max`` over the grid -> [N, C], or ``flatten`` -> [N, C*s*s].
    """
    rois = torch.cat([frame.to(maps.dtype)[:, None], boxes.to(maps.dtype)], dim=1)  # [N, 5]
    pooled = roi_align(
        maps, rois, (output_size, output_size), 1.0 / stride, sampling_ratio, aligned=True
    )  # [N, C, s, s]
    if pooling == "avg":
        return pooled.mean(dim=(2, 3))  # [N, C]
    if pooling == "max":
        return pooled.amax(dim=(2, 3))  # [N, C]
    return pooled.flatten(1)  # [N, C*s*s]


# ---------------------------------------------------------------------------------- checkpoints
def _load_trusted(path: str) -> Any:
    """``torch.load(weights_only=True)``; Lightning checkpoints of Hydra runs keep hyper-parameters
    as omegaconf containers, so on refusal retry with exactly those data classes allowed."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        from omegaconf import DictConfig, ListConfig
        from omegaconf.base import ContainerMetadata, Metadata
        from omegaconf.nodes import AnyNode, BooleanNode, FloatNode, IntegerNode, StringNode

        allowed: list[Any] = [DictConfig, ListConfig, ContainerMetadata, Metadata, AnyNode]
        allowed += [BooleanNode, FloatNode, IntegerNode, StringNode, typing.Any]
        allowed += [collections.defaultdict]
        allowed += [int, float, str, bool, list, dict, tuple]
        with torch.serialization.safe_globals(allowed):
            return torch.load(path, map_location="cpu", weights_only=True)


def load_checkpoint_encoder(
    path: str | os.PathLike, encoder: str | None = None, prefix: str = "net.encoder."
) -> Encoder:
    """The encoder of a trained wsal model: a Lightning checkpoint (``state_dict`` +
    ``hyper_parameters``, as ``ActorAttention`` saves it) or a bare state dict. Keys
    ``<prefix><encoder key>`` (``ActorAttention`` keeps it at ``net.encoder``); the encoder type
    is ``encoder`` or the checkpoint's ``hyper_parameters["encoder"]`` (default ``small``)."""
    path = str(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"checkpoint not found: {path}")
    obj = _load_trusted(path)
    if not isinstance(obj, Mapping):
        raise ValueError(f"{path}: expected a checkpoint dict, got {type(obj).__name__}")
    state = obj.get("state_dict", obj)
    hp = obj.get("hyper_parameters") or {}
    name = str(hp.get("encoder", "small")) if encoder is None else encoder
    if encoder is not None and "encoder" in hp and hp["encoder"] != encoder:
        raise ValueError(f"{path}: the checkpoint's encoder is {hp['encoder']!r}, not {encoder!r}")
    own = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
    if not own:
        raise ValueError(
            f"{path}: no state-dict key starts with {prefix!r} (first keys: {list(state)[:3]})"
        )
    enc = build_encoder(name, None)
    load_backbone_state(enc, own, dropped_keys=set(), source=path)
    return enc


def state_digest(module: torch.nn.Module) -> str:
    """Short hash of a module's weights (part of feature cache keys)."""
    h = hashlib.sha1()
    for k, v in module.state_dict().items():
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:12]


# ----------------------------------------------------------------------------------- extractor
class CNNExtractor:
    """CNN box features and video descriptors (module docstring).

    Args:
        encoder: a :data:`wsal.nets.encoders.ENCODERS` name (default ``small``, or the
            checkpoint's encoder).
        weights: ``build_encoder`` weights: None (random init, seeded by ``seed``), a torchvision
            enum name, or a state-dict path.
        checkpoint: a trained wsal checkpoint whose encoder to use (instead of ``weights``).
        layers: ``build_encoder``'s depth for vgg16/resnet*.
        output_size, sampling_ratio: roi_align grid (s x s) and samples per bin side.
        pooling: ``avg`` (default) / ``max`` over the grid (D = C), or ``flatten`` (D = C*s*s).
        min_box_size: boxes are widened to at least this many pixels (default: the stride).
        seed: seeds the random init when ``weights`` and ``checkpoint`` are None.
        device: for the per-video methods: ``auto`` (cuda if available), ``cpu``, ``cuda``...
        batch_frames: frames per encoder call.
        num_workers: DataLoader workers decoding videos for ``predict``.
        precision, devices, strategy: the predict Trainer's (``"16-mixed"``, ``devices=4``,
            ``strategy="ddp"``...).
        input_scale: frames are resized by this factor (bilinear) before the encoder and boxes
            scaled alike: small videos (SynthActors' 160x120) give a stride-16 encoder only
            ~4 cells across a person; 2 gives ~8.
    """

    name = "cnn"

    def __init__(
        self,
        encoder: str | None = None,
        weights: str | None = None,
        checkpoint: str | None = None,
        layers: int | None = None,
        output_size: int = 7,
        sampling_ratio: int = 2,
        pooling: str = "avg",
        min_box_size: float | None = None,
        seed: int = 0,
        device: str = "auto",
        batch_frames: int = 32,
        num_workers: int = 0,
        precision: str = "32-true",
        devices: int | str = 1,
        strategy: str = "auto",
        input_scale: float = 1.0,
    ) -> None:
        if not input_scale > 0:
            raise ValueError(f"input_scale must be > 0, got {input_scale}")
        if pooling not in POOLINGS:
            raise ValueError(f"unknown pooling {pooling!r}; choose one of {POOLINGS}")
        if checkpoint is not None and weights is not None:
            raise ValueError("give either weights or checkpoint, not both")
        if checkpoint is not None:
            enc = load_checkpoint_encoder(checkpoint, encoder)
        else:
            with torch.random.fork_rng(devices=[]):  # a reproducible init, global RNG untouched
                torch.manual_seed(seed)
                enc = build_encoder(encoder or "small", weights, layers=layers)
        self.encoder: Encoder = enc.eval().requires_grad_(False)
        self.encoder_name = enc.name
        self.weights, self.checkpoint, self.layers, self.seed = weights, checkpoint, layers, seed
        self.output_size, self.sampling_ratio = int(output_size), int(sampling_ratio)
        self.pooling = pooling
        self.min_box_size = float(enc.stride if min_box_size is None else min_box_size)
        self.device = device
        self.batch_frames = int(batch_frames)
        self.num_workers = int(num_workers)
        self.precision, self.devices, self.strategy = str(precision), devices, strategy
        self.input_scale = float(input_scale)
        self._weights_digest = state_digest(self.encoder)

    # -- sizes and key ---------------------------------------------------------------------------
    @property
    def dim(self) -> int:
        """D: C for avg/max pooling, C * s * s for flatten."""
        c = self.encoder.out_channels
        return c * self.output_size**2 if self.pooling == "flatten" else c

    @property
    def descriptor_dim(self) -> int:
        """D_g = C."""
        return self.encoder.out_channels

    def cache_key(self) -> str:
        """Hash of the encoder's weights and every parameter that shapes the features."""
        params = {
            "name": self.name,
            "version": _VERSION,
            "encoder": self.encoder_name,
            "weights": self._weights_digest,
            "output_size": self.output_size,
            "sampling_ratio": self.sampling_ratio,
            "pooling": self.pooling,
            "min_box_size": self.min_box_size,
            "precision": self.precision,
            **({"input_scale": self.input_scale} if self.input_scale != 1.0 else {}),
        }
        return hashlib.sha1(json.dumps(params, sort_keys=True).encode()).hexdigest()[:12]

    def _device(self) -> torch.device:
        if self.device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        return torch.device(self.device)

    # -- the computation (shared by the per-video methods and predict) ----------------------------
    def box_features(self, encoder: Encoder, frames: Tensor, pos: Tensor, boxes: Tensor) -> Tensor:
        """frames uint8 ``[T', H, W, 3]`` (only frames with boxes), ``pos`` int64 ``[N]`` index
        into them, ``boxes`` float32 ``[N, 4]`` prepared -> float32 ``[N, D]`` on the CPU,
        L2-normalised (all-zero rows stay zero). Runs on ``encoder``'s device."""
        dev = next(encoder.parameters()).device
        out = torch.zeros(len(pos), self.dim)
        for s in range(0, frames.shape[0], self.batch_frames):
            sel = ((pos >= s) & (pos < s + self.batch_frames)).nonzero().squeeze(1)  # [n]
            if sel.numel() == 0:
                continue
            x = self._input(frames[s : s + self.batch_frames].to(dev))  # [t, 3, H', W']
            with self._autocast(dev):
                maps = encoder(x)  # [t, C, h, w]
                feats = pool_boxes(
                    maps,
                    (pos[sel] - s).to(dev),
                    boxes[sel].to(dev) * self.input_scale,
                    encoder.stride,
                    self.output_size,
                    self.sampling_ratio,
                    self.pooling,
                )  # [n, D]
            out[sel] = feats.float().cpu()
        return F.normalize(out, dim=1)

    def descriptor(self, encoder: Encoder, frames: Tensor) -> Tensor:
        """frames uint8 ``[T, H, W, 3]`` (the sampled ones) -> float32 ``[C]``: maps averaged over
        space and frames, L2-normalised."""
        dev = next(encoder.parameters()).device
        total = torch.zeros(self.descriptor_dim)
        for s in range(0, frames.shape[0], self.batch_frames):
            x = self._input(frames[s : s + self.batch_frames].to(dev))
            with self._autocast(dev):
                total += encoder(x).float().mean(dim=(2, 3)).sum(dim=0).cpu()  # [C]
        return F.normalize(total / max(frames.shape[0], 1), dim=0)

    def _input(self, frames: Tensor) -> Tensor:
        """uint8 ``[t, H, W, 3]`` -> the encoder's input ``[t, 3, H', W']`` (normalised, scaled)."""
        x = normalize_on_device(frames)
        if self.input_scale != 1.0:
            x = F.interpolate(
                x, scale_factor=self.input_scale, mode="bilinear", align_corners=False
            )
        return x

    def _autocast(self, dev: torch.device) -> torch.autocast:
        dtype = {"16": torch.float16, "bf16": torch.bfloat16}.get(self.precision.split("-")[0])
        return torch.autocast(dev.type, dtype=dtype, enabled=dtype is not None)

    # -- per video -------------------------------------------------------------------------------
    @torch.no_grad()
    def video_box_features(self, frames: np.ndarray, dets: Detections) -> np.ndarray:
        """frames uint8 ``[T, H, W, 3]`` RGB (all frames of the video), dets (0-based frames, xyxy
        pixels) -> float32 ``[N, dim]`` aligned with ``dets`` rows, L2-normalised."""
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
            raise ValueError(
                f"frames must be uint8 [T, H, W, 3], got {frames.dtype} {frames.shape}"
            )
        if len(dets) == 0:
            return np.zeros((0, self.dim), np.float32)
        if int(dets.frame.max()) >= frames.shape[0]:
            raise ValueError(
                f"detections reach frame {int(dets.frame.max())} but only {frames.shape[0]} "
                "frames were given"
            )
        uniq = np.unique(dets.frame)  # [T'] frames with boxes
        H, W = frames.shape[1:3]
        boxes = prepare_boxes(dets.boxes, W, H, self.min_box_size)
        enc = self.encoder.to(self._device())
        out = self.box_features(
            enc,
            torch.from_numpy(np.ascontiguousarray(frames[uniq])),
            torch.from_numpy(np.searchsorted(uniq, dets.frame)),
            torch.from_numpy(boxes),
        )
        return out.numpy()

    @torch.no_grad()
    def video_descriptor(self, frames: np.ndarray, frame_ids: np.ndarray) -> np.ndarray:
        """Encoder maps at ``frame_ids`` (0-based into ``frames`` uint8 ``[T, H, W, 3]``) averaged
        over space and frames, L2-normalised -> float32 ``[descriptor_dim]``."""
        ids = np.asarray(frame_ids, np.int64).reshape(-1)
        if ids.size == 0 or ids.min() < 0 or ids.max() >= frames.shape[0]:
            raise ValueError(f"frame_ids must be non-empty and in [0, {frames.shape[0]})")
        enc = self.encoder.to(self._device())
        return self.descriptor(enc, torch.from_numpy(np.ascontiguousarray(frames[ids]))).numpy()

    # -- many videos: Lightning predict ------------------------------------------------------------
    def extract_chunks(self, jobs: Sequence[VideoJob], chunk_dir: Path, progress: bool) -> None:
        """``Trainer.predict`` over the jobs (one video per batch); each video's rows are written
        to ``chunk_dir`` as soon as they are computed; videos with a chunk already are skipped."""
        if not jobs:
            return
        chunk_dir.mkdir(parents=True, exist_ok=True)
        boxes_kind = jobs[0].dets is not None
        dim = self.dim if boxes_kind else self.descriptor_dim
        accelerator = "gpu" if self._device().type == "cuda" else "cpu"
        trainer = pl.Trainer(
            accelerator=accelerator,
            devices=self.devices,
            strategy=self.strategy,
            precision=self.precision,  # type: ignore[arg-type]
            logger=False,
            enable_checkpointing=False,
            enable_model_summary=False,
            enable_progress_bar=progress,
            callbacks=[_ChunkWriter(jobs, chunk_dir, dim)],
        )
        loader = DataLoader(
            _JobDataset(jobs, chunk_dir, self.min_box_size),
            batch_size=1,
            collate_fn=_first,
            num_workers=self.num_workers,
        )
        trainer.predict(_PredictModule(self), dataloaders=loader, return_predictions=False)

    def __repr__(self) -> str:
        return (
            f"CNNExtractor(encoder={self.encoder_name!r}, pooling={self.pooling!r}, "
            f"dim={self.dim}, "
            f"key={self.cache_key()})"
        )


def _first(batch: list[dict[str, Any]]) -> dict[str, Any]:
    return batch[0]  # one video per batch: no padding of frames or boxes


class _JobDataset(Dataset):
    """Item ``i``: job ``i``'s decoded frames and prepared boxes (or ``skip`` when its chunk
    exists: every rank keeps the same job list, so the sharding is the same on all ranks)."""

    def __init__(self, jobs: Sequence[VideoJob], chunk_dir: Path, min_box_size: float) -> None:
        self.jobs, self.chunk_dir, self.min_box_size = list(jobs), chunk_dir, min_box_size

    def __len__(self) -> int:
        return len(self.jobs)

    def __getitem__(self, i: int) -> dict[str, Any]:
        job = self.jobs[i]
        if (self.chunk_dir / job.chunk_name).exists():
            return {"index": i, "skip": True}
        if job.dets is not None and len(job.dets) == 0:
            return {"index": i, "empty": True}
        reader = open_job_reader(job)
        if job.dets is None:
            ids = job_frame_ids(job, reader.num_frames, reader.fps)
            return {"index": i, "frames": torch.from_numpy(reader.get_frames(ids))}
        uniq = np.unique(job.dets.frame)  # decode only frames with boxes
        frames = reader.get_frames(uniq)  # [T', H, W, 3]
        H, W = frames.shape[1:3]
        return {
            "index": i,
            "frames": torch.from_numpy(frames),
            "pos": torch.from_numpy(np.searchsorted(uniq, job.dets.frame)),  # [N]
            "boxes": torch.from_numpy(prepare_boxes(job.dets.boxes, W, H, self.min_box_size)),
        }


class _PredictModule(pl.LightningModule):
    """Holds the extractor's encoder; ``predict_step`` -> ``{"index", "features"}`` (numpy, or
    None for a skipped video)."""

    def __init__(self, extractor: CNNExtractor) -> None:
        super().__init__()
        self.extractor = extractor
        self.encoder = extractor.encoder

    def predict_step(self, batch: dict[str, Any], batch_idx: int) -> dict[str, Any]:
        if batch.get("skip"):
            return {"index": batch["index"], "features": None}
        if batch.get("empty"):
            return {
                "index": batch["index"],
                "features": np.zeros((0, self.extractor.dim), np.float32),
            }
        if "boxes" in batch:
            feats = self.extractor.box_features(
                self.encoder, batch["frames"], batch["pos"], batch["boxes"]
            )  # [N, D]
        else:
            feats = self.extractor.descriptor(self.encoder, batch["frames"])[None]  # [1, C]
        return {"index": batch["index"], "features": feats.numpy()}

    def on_predict_start(self) -> None:
        self.encoder.eval()  # frozen: BatchNorm uses its running statistics


class _ChunkWriter(BasePredictionWriter):
    """Writes each predicted video's rows to its chunk file (checked, atomic)."""

    def __init__(self, jobs: Sequence[VideoJob], chunk_dir: Path, dim: int) -> None:
        super().__init__(write_interval="batch")
        self.jobs, self.chunk_dir, self.dim = list(jobs), chunk_dir, dim

    def write_on_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        prediction: Any,
        batch_indices: Sequence[int] | None,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        if prediction["features"] is not None:
            job = self.jobs[prediction["index"]]
            write_chunk(self.chunk_dir, job, prediction["features"], self.dim)
