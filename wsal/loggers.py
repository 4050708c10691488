"""Experiment loggers: W&B that never needs a network unless a key is configured, and the
test-time media (results table, PR / recall curves, tube pictures) every logger gets.

``conf/logger/*.yaml`` instantiate these (or Lightning's own CSV / TensorBoard loggers); train.py
passes the run's identity (``name``, ``id`` for resuming) and calls :func:`log_test_media`.
"""

from __future__ import annotations

import logging
import netrc
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

__all__ = [
    "wandb_api_key_configured",
    "wandb_mode",
    "wandb_logger",
    "results_rows",
    "log_test_media",
]

MODES = ("auto", "online", "offline", "disabled")


def wandb_api_key_configured() -> bool:
    """True when W&B could authenticate: ``WANDB_API_KEY`` or a ``api.wandb.ai`` netrc entry."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    path = os.environ.get("NETRC") or str(Path.home() / ".netrc")
    try:
        return netrc.netrc(path).authenticators("api.wandb.ai") is not None
    except (OSError, netrc.NetrcParseError):
        return False


def wandb_mode(mode: str = "auto") -> str:
    """The W&B mode to run in: ``auto`` = ``WANDB_MODE`` when set, else online with a configured
    API key and offline without one (no network needed, no login prompt, no hang)."""
    if mode not in MODES:
        raise ValueError(f"logger mode {mode!r} is not one of {MODES}")
    if mode != "auto":
        return mode
    env = os.environ.get("WANDB_MODE")
    if env in ("online", "offline", "disabled"):
        return env
    return "online" if wandb_api_key_configured() else "offline"


def wandb_logger(
    project: str = "wsal",
    save_dir: str = ".",
    mode: str = "auto",
    name: str | None = None,
    group: str | None = None,
    tags: Sequence[str] = (),
    id: str | None = None,
    job_type: str | None = "train",
    **kwargs: Any,
) -> Any:
    """A Lightning ``WandbLogger`` in :func:`wandb_mode` (``id`` set: resume that run)."""
    from pytorch_lightning.loggers import WandbLogger

    m = wandb_mode(mode)
    Path(save_dir).mkdir(parents=True, exist_ok=True)
    log.info("W&B logger: mode=%s project=%s group=%s", m, project, group)
    return WandbLogger(
        project=project,
        save_dir=save_dir,
        name=name,
        group=group,
        tags=[str(t) for t in tags if t is not None],
        id=id,
        resume="allow" if id else None,
        mode=m,
        job_type=job_type,
        **kwargs,
    )


def results_rows(res: Mapping[str, Any]) -> tuple[list[str], list[list[Any]]]:
    """A results table (one row per metric) from ``results.json``: columns and rows."""
    rows: list[list[Any]] = [[f"video-mAP@{t}", float(m)] for t, m in res["video_mAP"].items()]
    rows.append(["video-mAP@0.5:0.95", float(res["mAP@0.5:0.95"])])
    rows.append(["AUC@0.1:0.6", float(res["AUC@0.1:0.6"])])
    for t, r in res.get("proposal_recall", {}).items():
        if r:
            rows.append([f"proposal_recall@{t}", float(r[-1])])
    rows.append(["video_accuracy", float(res.get("video_accuracy", float("nan")))])
    if "top1" in res:
        rows.append(["top1 (top tube on the performer)", float(res["top1"])])
    for name, b in (res.get("bounds") or {}).items():  # chance / prior / ceiling on the same tubes
        rows += [[f"{name}: video-mAP@{t}", float(m)] for t, m in b["video_mAP"].items()]
        rows.append([f"{name}: top1", float(b["top1"])])
    proto = f"protocol={res.get('protocol')} nms={res.get('nms')} split={res.get('split')}"
    return ["metric", f"value ({proto})"], rows


def log_test_media(
    loggers: Sequence[Any], res: Mapping[str, Any], out_dir: str | os.PathLike
) -> None:
    """Give each logger the test results table and the run's pictures (``pr.png``,
    ``recall.png``, ``tubes.png`` when they exist). CSV loggers get nothing: the files are
    already in the run folder."""
    out = Path(out_dir)
    pictures = {
        "test/pr_curves": out / "pr.png",
        "test/proposal_recall": out / "recall.png",
        "test/tubes": out / "tubes.png",
    }
    pictures = {k: p for k, p in pictures.items() if p.exists()}
    columns, rows = results_rows(res)
    for lg in loggers:
        kind = type(lg).__name__
        try:
            if kind == "WandbLogger":
                lg.log_table("test/results", columns=columns, data=rows)
                for key, p in pictures.items():
                    lg.log_image(key, images=[str(p)], caption=[p.name])
            elif kind == "TensorBoardLogger":
                import numpy as np
                from PIL import Image

                table = "\n".join(
                    [" | ".join(columns), "---|---"] + [f"{a} | {b:.4f}" for a, b in rows]
                )
                lg.experiment.add_text("test/results", table)
                for key, p in pictures.items():
                    img = np.asarray(Image.open(p).convert("RGB"))
                    lg.experiment.add_image(key, img, dataformats="HWC")
                lg.experiment.flush()
        except Exception as e:  # media must never cost a researcher the numbers
            log.warning("could not log test media to %s: %s", kind, e)
