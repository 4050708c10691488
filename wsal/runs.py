"""Run folders: identity, status, failure records and resume lookup (no Hydra, no Lightning).

A run folder (``outputs/<task>/<time>/`` or ``multirun/<task>/<time>/<job>/``) holds
``run.json``: ``{"key", "status", "started", "finished", "resumed_from", "wandb_id"}``. The *key*
hashes the resolved config minus what does not shape the result (the run folder itself, the
resume switch, loggers, progress bars), so rerunning the same command finds the unfinished run it
repeats and resumes from its ``checkpoints/last.ckpt`` (:func:`find_resumable`). A run that raised
leaves ``failed.json`` (error line, traceback, overrides, choices), which the sweep report lists.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import traceback
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from wsal.atomic import atomic_write_json

__all__ = [
    "IGNORED_KEYS",
    "CorruptCheckpointError",
    "run_key",
    "read_run",
    "write_run",
    "record_failure",
    "find_resumable",
    "check_checkpoint",
    "resolve_resume",
]

RUN_FILE = "run.json"
FAILED_FILE = "failed.json"
LAST_CKPT = Path("checkpoints") / "last.ckpt"

# Config keys (dotted) that do not change what a run computes.
IGNORED_KEYS: tuple[str, ...] = (
    "hydra",
    "paths.output_dir",
    "resume",
    "resume_dirs",
    "fail_fast",
    "logger",
    "callbacks",
    "trainer.enable_progress_bar",
    "dataset.progress",
    "linker.progress",
    "detector.progress",
    "data.num_workers",  # items are seeded by (seed, epoch, index): workers do not change them
    "features.workers",
    "trainer.default_root_dir",
)


class CorruptCheckpointError(RuntimeError):
    """A checkpoint that cannot be read: never silently replaced by a fresh start."""


def _drop(cfg: dict[str, Any], dotted: str) -> None:
    *parents, last = dotted.split(".")
    node: Any = cfg
    for p in parents:
        node = node.get(p) if isinstance(node, dict) else None
        if node is None:
            return
    if isinstance(node, dict):
        node.pop(last, None)


def run_key(config: Mapping[str, Any], ignore: Iterable[str] = IGNORED_KEYS) -> str:
    """16 hex digits identifying what a resolved config computes (``ignore``: dotted keys left out)."""
    cfg = json.loads(json.dumps(config, default=str))
    for k in ignore:
        _drop(cfg, k)
    blob = json.dumps(cfg, sort_keys=True, separators=(",", ":"))
    return hashlib.sha1(blob.encode()).hexdigest()[:16]


def read_run(run_dir: str | os.PathLike) -> dict[str, Any] | None:
    """The folder's ``run.json`` or None (missing or unreadable)."""
    p = Path(run_dir) / RUN_FILE
    try:
        data = json.loads(p.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def write_run(run_dir: str | os.PathLike, **fields: Any) -> dict[str, Any]:
    """Update ``run.json`` with ``fields`` (atomically); returns the new record."""
    rec = read_run(run_dir) or {}
    rec.update(fields)
    Path(run_dir).mkdir(parents=True, exist_ok=True)
    atomic_write_json(Path(run_dir) / RUN_FILE, rec, indent=1)
    return rec


def record_failure(
    run_dir: str | os.PathLike,
    exc: BaseException,
    overrides: Sequence[str] = (),
    choices: Mapping[str, Any] | None = None,
) -> Path:
    """Write ``failed.json`` (``error`` = ``"Type: message"``, traceback, overrides, choices)."""
    out = Path(run_dir) / FAILED_FILE
    atomic_write_json(
        out,
        {
            "error": f"{type(exc).__name__}: {exc}",
            "traceback": "".join(traceback.format_exception(exc)),
            "overrides": list(overrides),
            "choices": dict(choices or {}),
            "time": time.strftime("%Y-%m-%d %H:%M:%S"),
        },
        indent=1,
    )
    write_run(run_dir, status="failed", finished=time.time())
    return out


def _candidates(roots: Iterable[str | os.PathLike]) -> list[Path]:
    found: set[Path] = set()
    for root in roots:
        r = Path(root)
        if not r.is_dir():
            continue
        for pattern in (RUN_FILE, f"*/{RUN_FILE}", f"*/*/{RUN_FILE}"):
            found.update(p.parent for p in r.glob(pattern))
    return sorted(found)


def find_resumable(roots: Iterable[str | os.PathLike], key: str) -> Path | None:
    """The newest unfinished run folder with this key and a ``checkpoints/last.ckpt``.

    Finished runs (status ``done``) are never resumed; a sweep rerun into the same fixed folder
    finds its own earlier attempt.
    """
    best: tuple[float, Path] | None = None
    for d in _candidates(roots):
        rec = read_run(d)
        if not rec or rec.get("key") != key or rec.get("status") == "done":
            continue
        ckpt = d / LAST_CKPT
        if not ckpt.exists():
            continue
        mtime = ckpt.stat().st_mtime
        if best is None or mtime > best[0]:
            best = (mtime, d)
    return best[1] if best else None


def check_checkpoint(path: str | os.PathLike) -> Path:
    """Open a Lightning checkpoint (``weights_only``) to make sure it is whole, or raise
    :class:`CorruptCheckpointError` naming it and what to do."""
    import torch

    p = Path(path)
    if not p.is_file():
        raise CorruptCheckpointError(f"checkpoint {p} does not exist")
    try:
        ckpt = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:
        raise CorruptCheckpointError(
            f"checkpoint {p} cannot be read ({type(e).__name__}: {str(e).strip().splitlines()[0]}"
            "). It is corrupt or was cut "
            "short: delete it (or its run folder) to start over, or pass resume=never to ignore it"
        ) from e
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt:
        raise CorruptCheckpointError(
            f"checkpoint {p} holds no 'state_dict': not a Lightning checkpoint"
        )
    return p


def resolve_resume(
    resume: str | None, key: str, roots: Iterable[str | os.PathLike]
) -> tuple[Path | None, Path | None]:
    """``(checkpoint, previous run folder)`` to resume from, or ``(None, None)``.

    ``resume``: ``auto`` (the newest unfinished run with the same key, else a fresh start),
    ``never``/None, or a checkpoint path (which must exist and be readable).
    """
    if resume in (None, "never", "none", False):
        return None, None
    if resume == "auto":
        prev = find_resumable(roots, key)
        if prev is None:
            return None, None
        return check_checkpoint(prev / LAST_CKPT), prev
    p = Path(str(resume))
    return check_checkpoint(p), p.parent.parent if p.parent.name == "checkpoints" else None
