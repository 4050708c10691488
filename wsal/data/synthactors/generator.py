"""Generating SynthActors: one video per task (render, encode, annotate, detect) in worker
processes, the dataset written to a temporary folder and renamed into place, and
:func:`ensure_synthactors`, which reuses a dataset generated with the same config."""

from __future__ import annotations

import json
import math
import multiprocessing as mp
import os
import shutil
import sys
import tempfile
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from wsal.atomic import file_lock, remove_stale_temps, temp_tag
from wsal.data.annotations import DatasetIndex, GTTube, VideoInfo, write_wsal_json
from wsal.data.synthactors.config import (
    CLASSES,
    GENERATOR_VERSION,
    SCENES,
    SynthConfig,
    config_hash,
)
from wsal.data.synthactors.detector_sim import _hidden_fraction, _simulate_detector, _texture_cdf
from wsal.data.synthactors.motion import _simulate_actor
from wsal.data.synthactors.render import _actor_look, _render_video, _scene
from wsal.data.synthactors.skeleton import _HIP, _NECK, _Track
from wsal.data.synthactors.statistics import stats

__all__ = ["generate", "ensure_synthactors"]

_SPLIT_CODE = {"train": 0, "test": 1}


@dataclass
class _Task:
    video: str  # id
    path: str  # relative to the dataset root
    cls: str
    split: str
    index: int
    root: str  # dataset (temp) folder
    config: SynthConfig


def _action_stretch(rng: np.random.Generator, cfg: SynthConfig, T: int) -> tuple[int, int]:
    """First and last frame (inclusive) of a contiguous action: the whole video with probability
    ``full_action_prob``, else covering ``U(min_action_frac, max_action_frac)`` of its T frames."""
    if rng.random() < cfg.full_action_prob:
        return 0, T - 1
    lo = math.ceil(cfg.min_action_frac * T - 1e-9)
    hi = math.floor(cfg.max_action_frac * T + 1e-9)
    n = int(np.clip(round(rng.uniform(cfg.min_action_frac, cfg.max_action_frac) * T), lo, hi))
    s = int(rng.integers(0, T - n + 1))
    return s, s + n - 1


def _make_video(task: _Task) -> dict[str, Any]:
    """Render, encode and annotate one video; returns its annotation and detections."""
    cfg = task.config
    W, H = cfg.width, cfg.height
    ss = np.random.SeedSequence(
        [cfg.seed, CLASSES.index(task.cls), _SPLIT_CODE[task.split], task.index]
    )
    rng, noise_rng, det_rng = (np.random.default_rng(s) for s in ss.spawn(3))

    T = int(rng.integers(cfg.min_frames, cfg.max_frames + 1))
    cls_full = CLASSES.index(task.cls)
    in_context = rng.random() < cfg.context_prob
    scene = cls_full if in_context else int(rng.integers(len(SCENES)))
    bg = _scene(SCENES[scene], rng, H, W)  # [H,W,3] float32
    scene_px = bg.reshape(-1, 3)[rng.integers(0, H * W, 256)]  # [256,3] for colour contrast

    n_act = int(rng.integers(cfg.min_actors, cfg.max_actors + 1))
    # horizontal slots so actors start apart; depth (ground row) sets scale: farther = smaller
    slots = rng.permutation(n_act)
    actions: list[tuple[int, int, int] | None] = [(cls_full, *_action_stretch(rng, cfg, T))]
    others = [c for c in cfg.classes if c != task.cls]
    second = bool(cfg.hard and n_act > 1 and others) and rng.random() < cfg.hard_prob
    for _ in range(1, n_act):
        actions.append(None)
    if second:
        c2 = CLASSES.index(others[int(rng.integers(len(others)))])
        actions[1] = (c2, *_action_stretch(rng, cfg, T))
    for a in range(1 + int(second), n_act):  # co-performers: the same class on their own stretch
        if rng.random() < cfg.co_performer_prob:
            actions[a] = (cls_full, *_action_stretch(rng, cfg, T))
    tracks: list[_Track] = []
    for a in range(n_act):
        depth = rng.uniform(0, 1)  # 0 far .. 1 near
        ground = (0.72 + 0.24 * depth) * H
        height_px = (0.33 + 0.25 * depth) * H * rng.uniform(0.92, 1.08)
        body = _actor_look(rng, height_px, scene_px)
        x0 = (slots[a] + rng.uniform(0.25, 0.75)) * W / n_act
        tracks.append(_simulate_actor(rng, cfg, T, body, ground, x0, actions[a]))
    order = sorted(range(n_act), key=lambda a: tracks[a].ground)  # far first (painter's order)

    _render_video(
        Path(task.root) / task.path,
        bg,
        [tracks[a] for a in order],
        noise_rng,
        frame_noise=cfg.frame_noise,
        fps=cfg.fps,
        crf=cfg.crf,
    )

    # ground truth: one tube per performing actor, on exactly its action frames
    tubes = []
    for tr in tracks:
        if tr.action is None:
            continue
        c, s, e = tr.action
        fr = np.arange(s, e + 1)
        box = tr.boxes[s : e + 1].astype(np.float32)  # [n,4]
        torso = (tr.joints[s : e + 1, _HIP] + tr.joints[s : e + 1, _NECK]) / 2  # [n,2]
        pts = torso + rng.normal(0, 0.03 * tr.body.height, torso.shape)
        pts = np.clip(pts, box[:, :2], box[:, 2:]).astype(np.float32)  # annotators click inside
        tubes.append((CLASSES[c], fr, box, pts))

    hidden = _hidden_fraction(tracks, order, T)
    det = _simulate_detector(det_rng, tracks, hidden, _texture_cdf(bg), W, H, T, cfg.detector)
    return {
        "video": task.video,
        "path": task.path,
        "nframes": T,
        "tubes": tubes,
        "scene": SCENES[scene],
        "frame": det.frame,
        "boxes": det.boxes,
        "scores": det.scores,
        "actor_frames": det.actor_frames,
        "true_misses": det.true_misses,
    }


def _init_worker() -> None:
    cv2.setNumThreads(1)  # one process per core already


def _video_ids(cfg: SynthConfig) -> list[tuple[str, str, str, int]]:
    """(video id, class, split, index) of every video, in annotation order: train then test,
    class by class. Indices run on from train into test, so ids are unique and stable."""
    out = []
    for split, lo, n in (
        ("train", 0, cfg.videos_per_class_train),
        ("test", cfg.videos_per_class_train, cfg.videos_per_class_test),
    ):
        for c in cfg.classes:
            for i in range(lo, lo + n):
                out.append((f"{c}/{c}_{i:04d}", c, split, i))
    return out


def _is_synthactors(path: Path) -> bool:
    try:
        return json.loads((path / "meta.json").read_text()).get("name") == "SynthActors"
    except (OSError, ValueError, AttributeError):
        return False


def generate(
    out_dir: str | os.PathLike,
    config: SynthConfig | None = None,
    workers: int = 2,
    progress: bool = True,
) -> Path:
    """Generate SynthActors into ``out_dir`` and return it (layout: :mod:`wsal.data.synthactors`).

    Everything is written into a temporary sibling folder that is renamed to ``out_dir`` at the
    end, so an interrupted or failed run leaves nothing half-written (and a previous dataset at
    ``out_dir`` intact until the new one is complete). An existing ``out_dir`` that is not a
    SynthActors dataset and not empty is refused rather than replaced. ``workers`` processes
    render the videos; the result does not depend on their number.

    Concurrent generations of one ``out_dir`` run one after the other (a lock beside it,
    :func:`wsal.atomic.file_lock`); a generation starts by deleting the temporary folders that
    killed generations of ``out_dir`` left (:func:`wsal.atomic.remove_stale_temps`).
    """
    out = Path(out_dir).absolute()
    with file_lock(out, "SynthActors"):
        return _generate(out, config, workers, progress)


def _generate(out: Path, config: SynthConfig | None, workers: int, progress: bool) -> Path:
    """:func:`generate` with the lock held."""
    cfg = config if config is not None else SynthConfig()
    if out.exists() and not _is_synthactors(out) and (not out.is_dir() or any(out.iterdir())):
        raise FileExistsError(f"{out} exists and is not a SynthActors dataset; not replacing it")
    out.parent.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    # folders that killed generations of this dataset left (their process is gone)
    remove_stale_temps(out.parent, out.name, older_than=time.time())
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.{temp_tag()}-", dir=out.parent))
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes it private; the dataset is not
        tasks = [
            _Task(v, f"videos/{v}.mp4", c, s, i, str(tmp), cfg) for v, c, s, i in _video_ids(cfg)
        ]
        results = _run_tasks(tasks, workers, progress)
        _write_dataset(tmp, cfg, tasks, results)
        meta: dict[str, Any] = {
            "name": "SynthActors",
            "generator": "wsal.data.synthactors",
            "version": GENERATOR_VERSION,
            "config_hash": config_hash(cfg),
            "config": cfg.to_dict(),
            "scenes": {r["video"]: r["scene"] for r in results},
            # what only the simulation knows: (actor, frame) pairs and those without any box
            "detector_sim": {
                "actor_frames": sum(r["actor_frames"] for r in results),
                "true_misses": sum(r["true_misses"] for r in results),
            },
        }
        (tmp / "meta.json").write_text(json.dumps(meta, indent=1))
        st = stats(tmp)
        meta["stats"] = st
        meta["wall_time_s"] = round(time.perf_counter() - t_start, 2)
        meta["workers"] = workers
        (tmp / "meta.json").write_text(json.dumps(meta, indent=1))
        # the atomic writers create private (0600) temp files; a dataset is for everyone
        for f in tmp.rglob("*"):
            os.chmod(f, (0o777 if f.is_dir() else 0o666) & ~umask)
        _publish(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def _run_tasks(tasks: list[_Task], workers: int, progress: bool) -> list[dict[str, Any]]:
    from tqdm import tqdm

    bar = tqdm(
        total=len(tasks), desc="SynthActors", unit="video", disable=not progress, file=sys.stderr
    )
    done: dict[str, dict[str, Any]] = {}
    try:
        if workers <= 1 or len(tasks) <= 1:
            for t in tasks:
                done[t.video] = _make_video(t)
                bar.update()
        else:
            # spawn, not fork: the parent may hold torch/OpenMP threads; the workers import only
            # numpy, OpenCV and PyAV through this package.
            ctx = mp.get_context("spawn")
            with ctx.Pool(min(workers, len(tasks)), initializer=_init_worker) as pool:
                for r in pool.imap_unordered(_make_video, tasks, chunksize=1):
                    done[r["video"]] = r
                    bar.update()
    finally:
        bar.close()
    return [done[t.video] for t in tasks]  # annotation order, whatever order workers finished


def _write_dataset(
    root: Path, cfg: SynthConfig, tasks: list[_Task], results: list[dict[str, Any]]
) -> None:
    labels = list(cfg.classes)
    videos: dict[str, VideoInfo] = {}
    splits: dict[str, list[str]] = {"train": [], "test": []}
    for t, r in zip(tasks, results):
        tubes = [GTTube(labels.index(c), fr, box, pts) for c, fr, box, pts in r["tubes"]]
        videos[t.video] = VideoInfo(
            nframes=r["nframes"],
            labels=sorted({x.label for x in tubes}),
            tubes=tubes,
            width=cfg.width,
            height=cfg.height,
            fps=cfg.fps,
            path=r["path"],
        )
        splits[t.split].append(t.video)
    write_wsal_json(DatasetIndex(labels, splits, videos, root), root / "annotations.json")
    counts = [len(r["frame"]) for r in results]
    _savez_fixed(
        root / "detections.npz",
        video=np.repeat(np.array([t.video for t in tasks], dtype=str), counts),  # str[N]
        frame=np.concatenate([r["frame"] for r in results]).astype(np.int64),  # [N]
        boxes=np.concatenate([r["boxes"] for r in results]).astype(np.float32).reshape(-1, 4),
        scores=np.concatenate([r["scores"] for r in results]).astype(np.float32),  # [N]
    )


def _savez_fixed(path: Path, **arrays: np.ndarray) -> None:
    """``np.savez_compressed`` with a fixed timestamp on every member, so that the same arrays
    give the same bytes (np.savez stamps the current time).

    Compressed: the repeated video ids shrink to nothing and the file to about a seventh;
    ``np.load`` reads it like any ``.npz``. Not an atomic writer: the whole dataset folder is renamed
    into place at the end, which is what makes the dataset atomic (and keeps torch, which
    ``wsal.structures.atomic_savez`` pulls in, out of the generator's workers).
    """
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, value in arrays.items():
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            with zf.open(info, "w", force_zip64=True) as fh:
                np.lib.format.write_array(fh, np.asanyarray(value), allow_pickle=False)


def _publish(tmp: Path, out: Path) -> None:
    """Rename the finished ``tmp`` to ``out``, swapping out a previous dataset there."""
    if not out.exists():
        os.rename(tmp, out)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old{temp_tag()[3:]}-", dir=out.parent))
    os.rmdir(old)
    os.rename(out, old)
    try:
        os.rename(tmp, out)
    except BaseException:
        os.rename(old, out)
        raise
    shutil.rmtree(old, ignore_errors=True)


def ensure_synthactors(
    root: str | os.PathLike,
    config: SynthConfig | None = None,
    workers: int = 2,
    progress: bool = True,
) -> Path:
    """Return the SynthActors dataset folder ``root``, generating it on first use.

    A dataset already there is reused when its ``meta.json`` has this :data:`GENERATOR_VERSION`
    and :func:`config_hash` and its files exist; otherwise it is regenerated (atomically).
    Concurrent calls on one ``root`` generate it once: the others wait for the lock and reuse it.
    """
    cfg = config if config is not None else SynthConfig()
    root = Path(root).absolute()
    with file_lock(root, "SynthActors"):  # concurrent runs: one generates, the others reuse
        return _ensure(root, cfg, workers, progress)


def _ensure(root: Path, cfg: SynthConfig, workers: int, progress: bool) -> Path:
    try:
        meta = json.loads((root / "meta.json").read_text())
        fresh = (
            meta.get("version") == GENERATOR_VERSION
            and meta.get("config_hash") == config_hash(cfg)
            and (root / "annotations.json").is_file()
            and (root / "detections.npz").is_file()
        )
    except (OSError, ValueError, AttributeError):
        fresh = False
    if fresh:
        return root
    return generate(root, cfg, workers=workers, progress=progress)  # the lock is re-entrant
