"""Actor attention with a frozen encoder: tube features computed once, cached, and only the
classifier trained on them (the CPU option of "Guess Where?" §3.2).

With the encoder frozen (``trainable_encoder: false``) and each video's frames fixed (the segment
centres, no flip), everything before the classifier — encoder maps, actor-of-interest pooling,
the mean over the tube's frames — is the same at every epoch. Computing it once per video and
training ``classifier`` + attention + cross-entropy on the stored ``[K, C*X*Y]`` tube features
optimises exactly the same objective as the end-to-end network with that encoder frozen, minus
the frame and flip augmentation, at the cost of one encoder pass per video instead of one per
video and epoch. The file is keyed by everything that shapes the features (encoder weights,
pooling grid, frames, frame size, the tubes' key and the video list), written atomically.
"""

from __future__ import annotations

import hashlib
import json
import logging
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from wsal.atomic import file_lock
from wsal.features.cnn import state_digest
from wsal.nets.actor_attention import ActorAttentionNet
from wsal.structures import atomic_savez

__all__ = [
    "TubeFeatureDataModule",
    "cached_tube_features",
    "extract_tube_features",
]

log = logging.getLogger(__name__)

_VERSION = 1  # bump when the computation changes without a parameter changing
_KEYS = ("features", "tube_mask", "label", "gt_tube")


@torch.inference_mode()
def extract_tube_features(
    net: ActorAttentionNet,
    loader: DataLoader,
    num_videos: int,
    device: str | torch.device = "cpu",
    progress: bool = True,
) -> dict[str, np.ndarray]:
    """Tube features of every video of a fixed-view loader (``ActorTubeDataModule.
    fixed_dataloader``): ``features`` float16 ``[V, K, D]`` (the network's pre-classifier
    features), ``tube_mask`` bool ``[V, K]``, ``label`` int64 ``[V]``, ``gt_tube`` int64 ``[V]``,
    rows in ``video_index`` order."""
    net = net.to(device).eval()
    out: dict[str, np.ndarray] = {}
    with tqdm(total=num_videos, desc="tube features", unit="video", disable=not progress) as bar:
        for batch in loader:
            feats = net.tube_features(
                batch["frames"].to(device), batch["boxes"].to(device), batch["box_valid"].to(device)
            )  # [B, K, D]
            if not out:
                K, D = feats.shape[1:]
                out = {
                    "features": np.zeros((num_videos, K, D), np.float16),
                    "tube_mask": np.zeros((num_videos, K), bool),
                    "label": np.full(num_videos, -1, np.int64),
                    "gt_tube": np.full(num_videos, -1, np.int64),
                }
            rows = batch["video_index"].numpy()
            out["features"][rows] = feats.float().cpu().numpy()
            for key in ("tube_mask", "label", "gt_tube"):
                out[key][rows] = batch[key].numpy()
            bar.update(len(rows))
    return out


def cached_tube_features(
    net: ActorAttentionNet,
    loader: DataLoader,
    videos: Sequence[str],
    cache_dir: str | Path,
    key: Mapping[str, Any],
    device: str | torch.device = "cpu",
    progress: bool = True,
) -> dict[str, np.ndarray]:
    """:func:`extract_tube_features`, read from ``cache_dir`` when the same ``key`` (plus the
    encoder's weights and the video list) was computed before; an unreadable file is named,
    deleted and recomputed."""
    full = {
        **dict(key),
        "version": _VERSION,
        "encoder": state_digest(net.encoder),
        "videos": videos,
    }
    digest = hashlib.sha1(json.dumps(full, sort_keys=True, default=str).encode()).hexdigest()[:12]
    path = Path(cache_dir) / f"tubefeat__{digest}.npz"
    with file_lock(path, "tube features"):  # concurrent runs extract once
        if path.exists():
            try:
                with np.load(path, allow_pickle=False) as z:
                    cached = {k: z[k] for k in _KEYS}
                if len(cached["label"]) == len(videos):
                    log.info("tube features from cache %s", path)
                    return cached
                log.warning(
                    "%s holds %d videos, expected %d: recomputing",
                    path,
                    len(cached["label"]),
                    len(videos),
                )
            except (
                OSError,
                ValueError,
                KeyError,
                EOFError,
                zipfile.BadZipFile,
            ) as err:  # truncated
                log.warning("unreadable tube-feature cache %s (%s): recomputing", path, err)
            path.unlink(missing_ok=True)
        data = extract_tube_features(net, loader, len(videos), device, progress)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_savez(path, **data)
        log.info("tube features of %d videos cached in %s", len(videos), path)
        return data


class _Videos(Dataset):
    """Item ``i``: video ``i``'s stored tube features as a batch element."""

    def __init__(self, data: Mapping[str, np.ndarray], rows: np.ndarray) -> None:
        self.data, self.rows = data, rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict[str, Tensor]:
        r = int(self.rows[i])
        return {
            "features": torch.from_numpy(self.data["features"][r].astype(np.float32)),
            "tube_mask": torch.from_numpy(self.data["tube_mask"][r]),
            "label": torch.tensor(self.data["label"][r]),
            "gt_tube": torch.tensor(self.data["gt_tube"][r]),
            "video_index": torch.tensor(r),
        }


class TubeFeatureDataModule(pl.LightningDataModule):
    """Batches of stored tube features (``features [B, K, D]``, ``tube_mask``, ``label``,
    ``gt_tube``, ``video_index``) for the classifier of actor attention.

    ``train`` / ``val`` / ``test``: the outputs of :func:`cached_tube_features` (``val`` may be
    None); training batches are shuffled (seeded per epoch by Lightning's seed); videos without
    a usable tube are left out of training.
    """

    def __init__(
        self,
        train: Mapping[str, np.ndarray],
        val: Mapping[str, np.ndarray] | None,
        test: Mapping[str, np.ndarray] | None,
        batch_size: int = 16,
    ) -> None:
        super().__init__()
        self.train, self.val, self.test = train, val, test
        self.batch_size = int(batch_size)

    def _loader(
        self, data: Mapping[str, np.ndarray], rows: np.ndarray, shuffle: bool
    ) -> DataLoader:
        return DataLoader(_Videos(data, rows), batch_size=self.batch_size, shuffle=shuffle)

    def train_dataloader(self) -> DataLoader:
        rows = np.nonzero(self.train["tube_mask"].any(axis=1))[0]
        if rows.size == 0:
            raise ValueError("no training video has a tube with a box at its sampled frames")
        return self._loader(self.train, rows, shuffle=True)

    def val_dataloader(self) -> DataLoader | list:
        if self.val is None or len(self.val["label"]) == 0:
            return []
        return self._loader(self.val, np.arange(len(self.val["label"])), shuffle=False)

    def predict_dataloader(self) -> DataLoader:
        if self.test is None:
            raise RuntimeError("TubeFeatureDataModule: no test features to predict")
        return self._loader(self.test, np.arange(len(self.test["label"])), shuffle=False)
