"""Run folders: identity, status, failure records, resume lookup and the one loader of a saved
run (no Hydra app, no Lightning, no dataset).

A run folder (``outputs/<task>/<time>_<pid>-<hex>/`` or ``multirun/<task>/<time>_<pid>-<hex>/<job>/``,
unique per process: ``conf/config.yaml``) holds
``.hydra/{config,hydra,overrides}.yaml`` (what Hydra saved), ``run.json``
(``{"key", "status", "started", "finished", "resumed_from", "wandb_id", ...}``), and when the run
got that far ``results.json``, ``detections.npz`` and ``checkpoints/{best,last}.ckpt``. The *key*
hashes the resolved config minus what does not shape the result (the run folder itself, the
resume switch, loggers, progress bars), so rerunning the same command finds the unfinished run it
repeats and resumes from its ``checkpoints/last.ckpt`` (:func:`find_resumable`: the newest
unfinished run of that key that no later run took further: never again a killed attempt that a
later run resumed and finished). A run that raised leaves ``failed.json``
(error line, traceback, overrides, choices), which the sweep report lists.

``run.json``'s ``status`` is ``running`` (with the process id and host), ``done``, ``failed`` or
``killed``: :func:`run_status` reads a ``running`` whose process is gone as ``killed``, and
:func:`mark_killed` (train.py, at its start) records it so and deletes the checkpoint temp that
the kill left.

:func:`load_run` reads a saved run into a :class:`SavedRun` (eval.py, the sweep report and
``python -m wsal.viz`` all read runs through it); :func:`find_runs` lists the run folders under
a folder. Rebuilding the run's dataset from ``SavedRun.config`` is the caller's business.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import socket
import time
import traceback
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, OmegaConf

from wsal.atomic import atomic_write_json, pid_alive, remove_stale_temps
from wsal.errors import InputError

__all__ = [
    "IGNORED_KEYS",
    "CorruptCheckpointError",
    "run_key",
    "read_run",
    "write_run",
    "record_failure",
    "owner",
    "run_status",
    "mark_killed",
    "find_resumable",
    "check_checkpoint",
    "take_checkpoint",
    "resolve_resume",
    "SavedRun",
    "load_run",
    "read_config",
    "read_results",
    "find_runs",
    "parse_overrides",
    "natural_key",
]

RUN_FILE = "run.json"
FAILED_FILE = "failed.json"
RESULTS_FILE = "results.json"
DETECTIONS_FILE = "detections.npz"
CONFIG_FILE = Path(".hydra") / "config.yaml"
HYDRA_FILE = Path(".hydra") / "hydra.yaml"
OVERRIDES_FILE = Path(".hydra") / "overrides.yaml"
CKPT_DIR = "checkpoints"
LAST_CKPT = Path(CKPT_DIR) / "last.ckpt"

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


class CorruptCheckpointError(InputError, RuntimeError):
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


def _boot_id() -> str | None:
    """This boot of the machine (Linux), so that a process id from before a reboot is never
    mistaken for a live one that reuses it."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip() or None
    except OSError:
        return None


def owner() -> dict[str, Any]:
    """``{"pid", "host", "boot"}`` of this process: what a ``running`` record holds so that a
    later reader can tell a live run from a killed one."""
    return {"pid": os.getpid(), "host": socket.gethostname(), "boot": _boot_id()}


def run_status(rec: Mapping[str, Any] | None) -> str:
    """The status of a ``run.json`` record: ``done``, ``failed``, ``killed``, ``running`` or
    ``unknown`` (no record). A ``running`` record of this host whose process is gone (or that was
    written before the machine last booted) is ``killed``; one of another host, or without a process id (older runs), stays ``running``."""
    if not rec:
        return "unknown"
    status = str(rec.get("status") or "unknown")
    if status == "running":
        pid, host = rec.get("pid"), rec.get("host")
        if isinstance(pid, int) and host == socket.gethostname() and pid != os.getpid():
            boot = rec.get("boot")
            if (boot is not None and boot != _boot_id()) or not pid_alive(pid):
                return "killed"  # its process is gone (or the machine rebooted since)
    return status


def _candidates(roots: Iterable[str | os.PathLike]) -> list[Path]:
    found: set[Path] = set()
    for root in roots:
        r = Path(root)
        if not r.is_dir():
            continue
        for pattern in (RUN_FILE, f"*/{RUN_FILE}", f"*/*/{RUN_FILE}"):
            found.update(p.parent for p in r.glob(pattern))
    return sorted(found)


def mark_killed(roots: Iterable[str | os.PathLike]) -> list[Path]:
    """Record ``status: killed`` in the run folders under ``roots`` whose ``running`` process is
    gone (:func:`run_status`), and delete the checkpoint temps their kill left
    (:func:`wsal.atomic.remove_stale_temps`); return those folders."""
    killed = []
    for d in _candidates(roots):
        rec = read_run(d)
        if rec is not None and rec.get("status") == "running" and run_status(rec) == "killed":
            remove_stale_temps(d / CKPT_DIR, LAST_CKPT.name)
            write_run(d, status="killed", killed_seen=time.time())
            killed.append(d)
    return killed


def _resolved(path: str | os.PathLike) -> Path:
    try:
        return Path(path).resolve()
    except OSError:
        return Path(path).absolute()


def find_resumable(roots: Iterable[str | os.PathLike], key: str) -> Path | None:
    """The newest unfinished run folder with this key and a ``checkpoints/last.ckpt``, or None.

    Finished runs (status ``done``) are never resumed, nor runs still going (``running`` and
    their process alive: :func:`run_status`), nor a run that a later run already resumed and took
    further (one with a checkpoint of its own, or finished): its progress lives on there, so a
    command that finished after a resume is not resumed again from the killed attempt. Newest =
    latest ``last.ckpt``. A sweep rerun into the same fixed folder finds its own earlier attempt.
    """
    found: list[tuple[Path, dict[str, Any], str]] = []
    for d in _candidates(roots):
        rec = read_run(d)
        if rec and rec.get("key") == key:
            found.append((d, rec, run_status(rec)))
    superseded = {
        _resolved(rec["resumed_from"])
        for d, rec, status in found
        if rec.get("resumed_from") and (status == "done" or (d / LAST_CKPT).exists())
    }
    best: tuple[float, Path] | None = None
    for d, rec, status in found:
        if status == "done" or _resolved(d) in superseded:
            continue
        if status == "running" and rec.get("pid") is not None:
            continue  # alive (else run_status says killed): not ours to take over
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
    _READ.clear()  # one at a time: the checkpoint about to be resumed or rebuilt from
    _READ[str(p.resolve())] = (_stamp(p), ckpt)
    return p


# The checkpoint check_checkpoint read last, handed to whoever loads it next (Lightning's resume,
# eval.py's rebuild: take_checkpoint) so that the file is read once, with weights_only=True.
_READ: dict[str, tuple[tuple[int, int], Any]] = {}


def _stamp(p: Path) -> tuple[int, int]:
    st = p.stat()
    return st.st_mtime_ns, st.st_size


def take_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """The Lightning checkpoint dict at ``path``, read with ``torch.load(weights_only=True)``:
    the one :func:`check_checkpoint` has just read (handed over, not kept), else read now.
    Raises :class:`CorruptCheckpointError` naming the file when it cannot be read."""
    p = Path(path)
    held = _READ.pop(str(p.resolve()), None)
    if held is not None and p.is_file() and held[0] == _stamp(p):
        return held[1]
    check_checkpoint(p)
    return _READ.pop(str(p.resolve()))[1]


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


# ------------------------------------------------------------------------------------ saved runs
def natural_key(name: str | os.PathLike) -> list[Any]:
    """Sort key putting ``run/2`` before ``run/10`` (digit runs compare as numbers)."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", str(name))]


def find_runs(root: str | os.PathLike) -> list[Path]:
    """Run folders under ``root`` (``root`` itself included): folders holding
    ``.hydra/config.yaml``, in natural order. A run folder is not searched further."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such folder")
    found: list[Path] = []
    for dirpath, dirnames, _ in os.walk(root):
        here = Path(dirpath)
        if (here / CONFIG_FILE).is_file():
            found.append(here)
            dirnames[:] = []  # checkpoints, csv logs ...: nothing more to find in a run
        else:
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
    return sorted(found, key=natural_key)


def parse_overrides(overrides: Sequence[str]) -> dict[str, str]:
    """``["linker=viterbi", "+x.y=2", "~z"]`` -> ``{"linker": "viterbi", "x.y": "2", "z": ""}``
    (values as typed; ``+``/``++``/``~`` prefixes dropped)."""
    out: dict[str, str] = {}
    for o in overrides:
        key, _, value = str(o).partition("=")
        out[key.lstrip("+~")] = value
    return out


def _read_yaml(path: Path) -> Any:
    """Plain data of a YAML file; ValueError naming the file when it is not valid YAML."""
    try:
        return yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise InputError(f"{path}: not valid YAML ({e})") from e


def _read_json(path: Path) -> tuple[dict[str, Any] | None, str | None]:
    """``(object, None)``, or ``(None, why not)`` when the file cannot be read as a JSON object."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        return None, f"unreadable ({e})"
    if not isinstance(data, dict):
        return None, "expected a JSON object"
    return data, None


def _runtime(hydra_data: Any) -> dict[str, Any]:
    """``hydra.runtime`` of a loaded ``.hydra/hydra.yaml`` ({} when absent)."""
    return ((hydra_data or {}).get("hydra") or {}).get("runtime") or {}


def _config(run_dir: Path, hydra_data: Any) -> DictConfig:
    cfg_file = run_dir / CONFIG_FILE
    if not cfg_file.is_file():
        raise FileNotFoundError(f"{run_dir}: not a run folder (no {CONFIG_FILE})")
    try:
        cfg = OmegaConf.load(cfg_file)
    except yaml.YAMLError as e:
        raise InputError(f"{cfg_file}: not valid YAML ({e})") from e
    if not isinstance(cfg, DictConfig):
        raise InputError(f"{cfg_file}: expected a mapping, got a list")
    if isinstance(cfg.get("paths"), DictConfig):  # ${hydra:...} resolves only inside a run
        cfg.paths.output_dir = str(run_dir)
    cwd = _runtime(hydra_data).get("cwd")
    ds = cfg.get("dataset")
    if isinstance(ds, DictConfig) and cwd:
        for key in ("root", "annotations", "detections"):
            value = OmegaConf.select(ds, key, default=None, throw_on_resolution_failure=False)
            if isinstance(value, str) and not Path(value).is_absolute():
                there = Path(cwd) / value
                if there.exists() and not Path(value).exists():
                    ds[key] = str(there)
    return cfg


def read_config(run_dir: str | os.PathLike) -> DictConfig:
    """A run's ``.hydra/config.yaml`` whose paths resolve as in the run (interpolations kept).

    ``paths.output_dir`` becomes the run folder (it was ``${hydra:runtime.output_dir}``), and
    ``dataset.root``/``annotations``/``detections`` that were relative are taken relative to the
    run's working directory (``hydra.runtime.cwd`` of ``.hydra/hydra.yaml``) when they exist
    there and not here. FileNotFoundError when the folder is not a run folder; ValueError naming
    the file when a YAML file cannot be read.
    """
    run_dir = Path(run_dir)
    hydra_file = run_dir / HYDRA_FILE
    return _config(run_dir, _read_yaml(hydra_file) if hydra_file.is_file() else None)


def read_results(run_dir: str | os.PathLike) -> dict[str, Any] | None:
    """A folder's ``results.json``; None when there is none, ValueError naming the file when it
    is not a readable JSON object."""
    path = Path(run_dir) / RESULTS_FILE
    if not path.is_file():
        return None
    data, why = _read_json(path)
    if data is None:
        raise InputError(f"{path}: {why}")
    return data


@dataclass(frozen=True)
class SavedRun:
    """A run folder as train.py left it, read by :func:`load_run` (nothing is rebuilt).

    path: the run folder.
    config: ``.hydra/config.yaml`` as an OmegaConf config, paths resolved as in the run
        (:func:`read_config`), interpolations unresolved.
    overrides: the run's command-line overrides (``.hydra/overrides.yaml``; failed.json's for a
        failed run), e.g. ``["seed=1"]``.
    choices: Hydra config-group choices without ``hydra/*`` groups: results.json's ``choices``
        (finished runs), else failed.json's (failed runs), else ``.hydra/hydra.yaml``'s
        ``hydra.runtime.choices``.
    results: ``results.json``, or None (missing or unreadable).
    failure: ``failed.json``, or None.
    record: ``run.json`` (key, status, times, resumed_from, wandb_id), or None.
    status: ``"ok"`` (a readable results.json), ``"failed"`` (a failed.json newer than any
        results.json, or a results.json that cannot be read) or ``"incomplete"`` (neither file:
        killed or still running).
    error: for a failed run, one line saying why (``"ExcType: message"``, or
        ``"results.json: unreadable (...)"``); else None.
    """

    path: Path
    config: DictConfig
    overrides: list[str] = field(default_factory=list)
    choices: dict[str, Any] = field(default_factory=dict)
    results: dict[str, Any] | None = None
    failure: dict[str, Any] | None = None
    record: dict[str, Any] | None = None
    status: str = "incomplete"
    error: str | None = None

    @property
    def detections_path(self) -> Path:
        """``detections.npz``: the run's TubeDetections on its evaluation split (may not exist)."""
        return self.path / DETECTIONS_FILE

    def checkpoint(self, which: str | os.PathLike | None = "auto") -> Path | None:
        """The checkpoint to rebuild the trained method from.

        ``which``: ``"auto"`` = ``checkpoints/best.ckpt``, else ``checkpoints/last.ckpt``, else
        None (a method that does not train); None (or ``"null"``/``"none"``) = None; a path = that
        file, which must exist (FileNotFoundError). The file's contents are not checked here
        (:func:`check_checkpoint`).
        """
        if which is None or which in ("null", "none"):
            return None
        if which != "auto":
            p = Path(which)
            if not p.is_file():
                raise FileNotFoundError(f"checkpoint {p} not found")
            return p
        for name in ("best.ckpt", "last.ckpt"):
            p = self.path / CKPT_DIR / name
            if p.is_file():
                return p
        return None

    @cached_property
    def _plain(self) -> Any:
        return OmegaConf.to_container(self.config, resolve=False)

    def value(self, key: str) -> Any:
        """A dotted config key's value as the run set it: its override (as typed, a string)
        when it has one, else the saved config's value (unresolved), else None."""
        over = parse_overrides(self.overrides)
        if key in over:
            return over[key]
        node: Any = self._plain
        for part in key.split("."):
            if not isinstance(node, dict) or part not in node:
                return None
            node = node[part]
        return node


def load_run(run_dir: str | os.PathLike) -> SavedRun:
    """Read the run folder ``run_dir`` (see :class:`SavedRun`).

    A failed.json newer than results.json wins (the run was resumed or rerun, and failed).
    Raises FileNotFoundError when ``run_dir`` holds no ``.hydra/config.yaml`` (not a run folder)
    and ValueError naming the file when one of the ``.hydra`` YAML files cannot be read; an
    unreadable results.json or failed.json makes a ``"failed"`` run, not an error.
    """
    path = Path(run_dir)
    hydra_file, over_file = path / HYDRA_FILE, path / OVERRIDES_FILE
    hydra_data = _read_yaml(hydra_file) if hydra_file.is_file() else None
    config = _config(path, hydra_data)
    overrides = [str(o) for o in (_read_yaml(over_file) or [])] if over_file.is_file() else []
    choices = dict(_runtime(hydra_data).get("choices") or {})
    res_file, fail_file = path / RESULTS_FILE, path / FAILED_FILE
    results, res_why = _read_json(res_file) if res_file.is_file() else (None, None)
    failure, fail_why = _read_json(fail_file) if fail_file.is_file() else (None, None)
    status, error = "incomplete", None
    if res_file.is_file() and not (
        fail_file.is_file() and fail_file.stat().st_mtime > res_file.stat().st_mtime
    ):
        if results is not None:
            status = "ok"
            choices = dict(results.get("choices") or choices)
        else:
            status, error = "failed", f"{RESULTS_FILE}: {res_why}"
    elif fail_file.is_file():
        status, error = "failed", f"{FAILED_FILE}: {fail_why}"
        if failure is not None:
            lines = str(failure.get("error") or "unknown error").strip().splitlines()
            error = lines[0] if lines else "unknown error"
            overrides = [str(o) for o in failure.get("overrides") or overrides]
            choices = dict(failure.get("choices") or choices)
    choices = {k: v for k, v in choices.items() if not str(k).startswith("hydra")}
    return SavedRun(
        path=path,
        config=config,
        overrides=overrides,
        choices=choices,
        results=results,
        failure=failure,
        record=read_run(path),
        status=status,
        error=error,
    )
