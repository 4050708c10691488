"""Lightning callbacks of wsal."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks import Checkpoint

__all__ = ["EpochCheckpoint"]


class EpochCheckpoint(Checkpoint):
    """Save ``<dirpath>/<filename>`` at the end of every training epoch, written to a temp file
    and renamed (a kill mid-write leaves the previous checkpoint whole).

    For methods whose epochs take no optimiser step (STIL: one closed-form EM round per epoch):
    Lightning's ``ModelCheckpoint`` saves at most once per global step, which never advances there.
    """

    def __init__(self, dirpath: str | os.PathLike, filename: str = "last.ckpt") -> None:
        self.dirpath = Path(dirpath)
        self.filename = filename

    @property
    def path(self) -> Path:
        return self.dirpath / self.filename

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if getattr(trainer, "fast_dev_run", False) or trainer.sanity_checking:
            return
        self.dirpath.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.filename}.tmp{os.getpid()}")
        trainer.save_checkpoint(tmp, weights_only=False)  # the full state, to resume from
        if trainer.is_global_zero:
            os.replace(tmp, self.path)

    def state_dict(self) -> dict[str, Any]:
        return {"dirpath": str(self.dirpath), "filename": self.filename}
