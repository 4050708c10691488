"""Lightning callbacks of wsal."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks import Checkpoint

from wsal.atomic import remove_stale_temps, temp_tag

__all__ = ["EpochCheckpoint"]


class EpochCheckpoint(Checkpoint):
    """Save ``<dirpath>/<filename>`` at the end of every training epoch, written to a temp file
    (``.<filename>.tmp<pid>.<host>``) and renamed: a kill mid-write leaves the previous checkpoint
    whole, and the temp it leaves is deleted when the next fit that writes here starts
    (:func:`wsal.atomic.remove_stale_temps`: its process is gone).

    For methods whose epochs take no optimiser step (STIL: one closed-form EM round per epoch):
    Lightning's ``ModelCheckpoint`` saves at most once per global step, which never advances there.
    """

    def __init__(self, dirpath: str | os.PathLike, filename: str = "last.ckpt") -> None:
        self.dirpath = Path(dirpath)
        self.filename = filename

    @property
    def path(self) -> Path:
        return self.dirpath / self.filename

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.is_global_zero:
            remove_stale_temps(self.dirpath, self.filename)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if getattr(trainer, "fast_dev_run", False) or trainer.sanity_checking:
            return
        self.dirpath.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.filename}.{temp_tag()}")
        trainer.save_checkpoint(tmp, weights_only=False)  # the full state, to resume from
        if trainer.is_global_zero:
            os.replace(tmp, self.path)

    def state_dict(self) -> dict[str, Any]:
        return {"dirpath": str(self.dirpath), "filename": self.filename}
