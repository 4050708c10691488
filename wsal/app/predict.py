"""Run wsal on any video: ``python -m wsal.predict VIDEO [VIDEO ...] --out DIR`` (docs/predict.md).

From video files to labelled action tubes and an overlay video, with no dataset, annotation file
or training: every stage is the library's own, composed here for one video at a time.

1. **decode** each video at the *working size*: its short side scaled to ``--short-side`` pixels
   (default :data:`DEFAULT_SHORT_SIDE`; the decoder scales), every ``--stride``-th frame;
2. **detect** people at that size (HOG with body boxes, :data:`HOG_PAD`; torchvision; or a
   detections file in original pixels) and find the **shot cuts** from frame differences;
3. **link** actor tubes shot by shot, so that no tube crosses a cut (actor linking with the
   pretrained EfficientNet-Lite0 SiamFC embedding by default: nothing is trained on first use;
   or Temporal Prim / Viterbi on the detections alone);
4. map the tubes back to the **original pixels and frames** (linear interpolation between the
   processed frames when ``--stride`` > 1);
5. **score**: without ``--run`` every tube is labelled ``person`` with its linking score; with
   ``--run`` the trained run's model (actor attention or STIL) scores them with its classes;
6. **write** ``DIR/tubes.json`` (TubeDetections JSON, DESIGN §4, plus a ``videos`` entry per
   input) and ``DIR/<stem>.mp4`` (H.264, the ``--top`` tubes drawn), and print a table.

Conventions: frames 0-based; boxes ``xyxy`` float pixels of the original video; video id = the
file's stem. A video that cannot be read is reported (naming the file) and skipped, the others go
on, and the command exits with status 1 at the end. Everything that can be checked without
decoding (output folder, run folder and its checkpoint, detector weights, detections file) is
checked before the first video is decoded.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from hydra.utils import instantiate
from tqdm import tqdm

from wsal.app.predict_cli import DEFAULT_SHORT_SIDE, parser
from wsal.app.real_footage import (
    cuts_from_differences,
    frame_differences,
    link_per_shot,
    shot_bounds,
)
from wsal.atomic import atomic_write_json, atomic_write_text
from wsal.data.datamodule import ActorTubeDataset, VideoRecord, collate_tube_batch
from wsal.data.detections import load_detections
from wsal.data.video import VideoError, VideoReader, VideoWriter
from wsal.detection.backends import TorchvisionDetector
from wsal.detection.hog import HogPeople
from wsal.detection.predict import HogDetectorModule
from wsal.linking.actor import actor_link
from wsal.linking.siamfc import PRETRAINED_CONFIG, SiamFCConfig
from wsal.linking.temporal_prim import temporal_prim
from wsal.linking.viterbi import viterbi
from wsal.models.actor_attention import ActorAttention
from wsal.models.methods import ActorAttentionMethod, STILMethod, load_weights
from wsal.models.stil import STIL
from wsal.nets.siamfc import make_tracker
from wsal.runs import check_checkpoint, load_run
from wsal.structures import Detections, TubeDetections, Tubes
from wsal.viz import draw_boxes

__all__ = [
    "DEFAULT_SHORT_SIDE",
    "HOG_PAD",
    "PredictError",
    "RunScorer",
    "VideoResult",
    "expand_rows",
    "load_scorer",
    "main",
    "predict_video",
    "prepare_out_dir",
    "run_args",
    "working_size",
]

#: Replicated border (top, bottom, sides; fractions of the frame) for HOG in predict: 0.3 below
#: lets a window reach the feet of a person cut at the knees by the frame's bottom edge, at 2.5x
#: less work than the detector backend's 1.5 (made for close-ups).
HOG_PAD = (0.1, 0.3, 0.1)
#: Frames decoded, detected and (for the overlay) drawn per chunk.
CHUNK = 32
#: Marks a folder written by this command: ``--overwrite`` only ever clears such a folder.
MARKER = ".wsal-predict"
#: Colours of the drawn tubes, by rank (RGB).
COLORS = [(235, 35, 35), (40, 110, 255), (20, 170, 60), (240, 160, 0), (170, 60, 220)]


class PredictError(RuntimeError):
    """A bad argument, output folder, run folder or detections file: reported before decoding."""


# ------------------------------------------------------------------------------- geometry
def working_size(width: int, height: int, short_side: int) -> tuple[int, int]:
    """``(w, h)`` with the short side scaled to ``short_side`` (aspect kept, both even, for
    H.264); ``short_side <= 0`` keeps the native size (rounded down to even)."""
    if short_side <= 0:
        return max(2, width // 2 * 2), max(2, height // 2 * 2)
    s = short_side / min(width, height)
    return max(2, round(width * s / 2) * 2), max(2, round(height * s / 2) * 2)


def expand_rows(
    rows: np.ndarray, frames: np.ndarray, scale: tuple[float, float], num_frames: int
) -> np.ndarray:
    """Tube rows of the processed frames -> rows of the original video.

    Args:
        rows: float ``[n, 5]`` ``[i, x1, y1, x2, y2]``, ``i`` an index into ``frames``, ascending,
            boxes in working pixels.
        frames: int64 ``[T']`` the original frame number of each processed frame (ascending).
        scale: ``(sx, sy)`` original pixels per working pixel.
        num_frames: T, frames of the original video.

    Returns:
        float64 ``[m, 5]`` ``[frame, x1, y1, x2, y2]`` in original frames and pixels: every
        processed row, and between two consecutive processed frames that the tube holds both of,
        the linearly interpolated boxes of the frames in between; after the video's last
        processed frame the last box is held to the end (``--stride`` > 1).
    """
    rows = np.asarray(rows, np.float64).reshape(-1, 5)
    if len(rows) == 0:
        return np.zeros((0, 5))
    i = rows[:, 0].astype(np.int64)  # [n]
    f = frames[i]  # [n] original frames
    boxes = rows[:, 1:] * np.array([scale[0], scale[1], scale[0], scale[1]])  # [n, 4]
    out_f, out_b = [f[:1]], [boxes[:1]]
    for j in range(1, len(i)):
        if i[j] == i[j - 1] + 1 and f[j] > f[j - 1] + 1:  # consecutive processed: fill the gap
            t = np.arange(f[j - 1] + 1, f[j])  # [g]
            w = ((t - f[j - 1]) / (f[j] - f[j - 1]))[:, None]  # [g, 1]
            out_f.append(t)
            out_b.append((1 - w) * boxes[j - 1] + w * boxes[j])  # [g, 4]
        out_f.append(f[j : j + 1])
        out_b.append(boxes[j : j + 1])
    if i[-1] == len(frames) - 1 and f[-1] < num_frames - 1:  # hold the last box to the end
        t = np.arange(f[-1] + 1, num_frames)
        out_f.append(t)
        out_b.append(np.repeat(boxes[-1:], len(t), axis=0))
    ff = np.concatenate(out_f).astype(np.float64)  # [m]
    return np.concatenate([ff[:, None], np.concatenate(out_b)], axis=1)  # [m, 5]


def _dense(rows: Sequence[np.ndarray], num_frames: int) -> Tubes:
    """Tubes ``[K, T]`` from per-tube rows ``[n_k, 5]`` (original frames); scores 0."""
    K = len(rows)
    boxes = np.zeros((K, num_frames, 4), np.float32)
    valid = np.zeros((K, num_frames), bool)
    for k, r in enumerate(rows):
        f = r[:, 0].astype(np.int64)
        boxes[k, f] = r[:, 1:]
        valid[k, f] = True
    return Tubes(boxes, valid, np.full((K, num_frames), -1, np.int64), np.zeros(K, np.float32))


# ------------------------------------------------------------------------------- output folder
def prepare_out_dir(out: Path, overwrite: bool) -> None:
    """Make ``out`` ready for a new run's files, or raise :class:`PredictError`.

    An empty or new folder is used as it is. A non-empty one is refused, unless ``overwrite``
    and it was written by this command (it holds :data:`MARKER`) and holds nothing else than
    what this command writes (``tubes.json``, ``*.mp4``, the marker): those files are removed
    first, so that the new ``tubes.json`` and videos are never mixed with an earlier run's.
    """
    if out.exists() and not out.is_dir():
        raise PredictError(f"--out {out}: exists and is not a folder")
    entries = sorted(out.iterdir()) if out.is_dir() else []
    if entries:
        if not overwrite:
            raise PredictError(
                f"--out {out}: the folder is not empty ({len(entries)} entries); choose a new "
                "folder, or pass --overwrite to replace the files an earlier "
                "`python -m wsal.predict` wrote there"
            )
        ours = [p for p in entries if p.name in (MARKER, "tubes.json") or p.suffix == ".mp4"]
        foreign = [p.name for p in entries if p not in ours]
        if not (out / MARKER).is_file() or foreign:
            raise PredictError(
                f"--out {out}: --overwrite only replaces a folder written by "
                f"`python -m wsal.predict`; this one {'holds ' + str(foreign[:5]) if foreign else 'has no ' + MARKER}"
            )
        for p in ours:
            p.unlink()
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / MARKER, "written by python -m wsal.predict\n")


# ------------------------------------------------------------------------------- scoring a run
@dataclass
class RunScorer:
    """A trained run's model, to score a new video's tubes (``--run``).

    ``kind``: ``"actor_attention"`` (per-tube class scores from the run's ActorAttention network
    on ``num_frames`` frames resized to ``frame_size``) or ``"stil"`` (box scores of the run's
    STIL model on the run's box features, tubes from them per shot, STIL §3.4).
    """

    kind: str
    run_dir: Path
    checkpoint: Path
    class_names: list[str]
    model: Any
    data: Mapping[str, Any] = field(default_factory=dict)
    features: Any = None  # STIL: the run's box feature extractor

    @property
    def needs_frames(self) -> bool:
        return self.kind == "stil"


def _class_names(run: Any, num_classes: int) -> list[str]:
    """The run's class names in index order: its results.json's per-class AP keys (the
    dataset's label list), else ``class0, class1, ...``."""
    ap = (run.results or {}).get("AP") or {}
    for per_class in ap.values():
        names = list(per_class)
        if len(names) == num_classes:
            return names
    print(
        f"note: {run.path} has no results.json with its {num_classes} class names; "
        "labelling them class0..",
        file=sys.stderr,
    )
    return [f"class{i}" for i in range(num_classes)]


def load_scorer(run_dir: str | os.PathLike, device: str = "cpu") -> RunScorer:
    """Rebuild a trained run's model from its folder, as ``eval.py run_dir=...`` does (the run's
    saved config, its ``checkpoints/best.ckpt`` else ``last.ckpt``, ``weights_only``), before
    any video is decoded. Raises :class:`PredictError` naming the folder when it is not a run,
    has no usable checkpoint, or its method cannot score new videos."""
    path = Path(run_dir)
    try:
        run = load_run(path)
        ckpt = run.checkpoint("auto")
    except (FileNotFoundError, ValueError) as e:
        raise PredictError(f"--run {path}: {e}") from e
    if ckpt is None:
        raise PredictError(
            f"--run {path}: no checkpoints/best.ckpt or checkpoints/last.ckpt (a run that did "
            "not train, or was stopped before its first epoch, has no model to score with)"
        )
    try:
        check_checkpoint(ckpt)
        method = instantiate(run.config.method, _convert_="all")
    except Exception as e:
        raise PredictError(f"--run {path}: {e}") from e
    state = torch.load(ckpt, map_location="cpu", weights_only=True)["state_dict"]
    if isinstance(method, ActorAttentionMethod):
        L = int(state["net.classifier.weight"].shape[0])  # [L, C]
        model: Any = ActorAttention(num_classes=L, **method.settings)
        load_weights(model, ckpt)
        data_cfg = run.config.get("data") or {}
        data = {
            "num_frames": int(data_cfg.get("num_frames", 16)),
            "num_tubes": int(data_cfg.get("num_tubes", 20)),
            "frame_size": data_cfg.get("frame_size"),
        }
        kind, features = "actor_attention", None
    elif isinstance(method, STILMethod):
        L = int(state["models_bias"].shape[1])  # [M, L]
        model = STIL(L, **method.model_settings)
        load_weights(model, ckpt)
        kind, data = "stil", {}
        features = instantiate(run.config.features)
    else:
        raise PredictError(
            f"--run {path}: method {getattr(method, 'name', type(method).__name__)!r} cannot "
            "score new videos (actor attention and STIL runs can)"
        )
    model.eval().to(device)
    return RunScorer(kind, path, ckpt, _class_names(run, L), model, data, features)


def _score_actor_attention(
    scorer: RunScorer,
    video: str,
    path: Path,
    tubes: Tubes,
    size: tuple[int, int],
    work: tuple[int, int],
    all_labels: bool,
) -> TubeDetections:
    """Per-tube class scores of the run's actor attention model: the tubes (original pixels,
    ``[K, T]``) on ``num_frames`` segment-centre frames of the video, resized to the run's
    ``frame_size`` (else the working size ``work`` (w, h)); each tube gets its best class, or
    one row per class with ``all_labels``."""
    K = min(tubes.num_tubes, scorer.data["num_tubes"])
    if K == 0:
        return TubeDetections.empty()
    fs = scorer.data["frame_size"]
    rec = VideoRecord(
        video=video,
        position=0,
        path=str(path),
        nframes=tubes.num_frames,
        size=(size[1], size[0]),
        label=-1,
        labels=[],
        boxes=tubes.boxes[:K],
        valid=tubes.valid[:K],
        gt_tube=-1,
    )
    ds = ActorTubeDataset(
        [rec],
        len(scorer.class_names),
        num_frames=scorer.data["num_frames"],
        num_tubes=K,
        train=False,
        frame_size=tuple(fs) if fs else (work[1], work[0]),
    )
    dev = next(scorer.model.parameters()).device
    collated = cast(dict[str, torch.Tensor], collate_tube_batch([ds[0]]))  # one video
    batch = {k: v.to(dev) for k, v in collated.items()}
    with torch.inference_mode():
        out = scorer.model.predict_step(batch, 0)
    scores = out["tube_scores"][0].double().numpy()  # [K, L]
    mask = out["tube_mask"][0].numpy()  # [K]
    items = []
    for k in np.flatnonzero(mask):
        rows = tubes.rows(int(k))
        labels = range(scores.shape[1]) if all_labels else [int(scores[k].argmax())]
        items += [(video, c, float(scores[k, c]), rows) for c in labels]
    return TubeDetections.from_list(items)


def _score_stil(
    scorer: RunScorer,
    video: str,
    frames: np.ndarray,
    dets: Detections,
    cuts: np.ndarray,
    tubes_w: Tubes,
) -> TubeDetections:
    """STIL §3.4 on the processed frames, shot by shot: box features with the run's extractor,
    box scores of its class models, tubes linked on them (or the proposals scored, the run's
    ``test_tubes``); rows in processed-frame indices and working pixels."""
    if len(dets) == 0:
        return TubeDetections.empty()
    feats = scorer.features.video_box_features(frames, dets)  # [N, D]
    parts = []
    for a, b in shot_bounds(cuts, dets.num_frames):
        rows = np.flatnonzero((dets.frame >= a) & (dets.frame < b))
        if len(rows) == 0:
            continue
        sub = Detections.from_unsorted(
            dets.frame[rows] - a, dets.boxes[rows], dets.scores[rows], int(b - a)
        )
        inside = tubes_w.valid[:, a:b].any(axis=1)  # [K] the proposals of this shot
        to_sub = np.full(len(dets), -1, np.int64)  # row of dets -> row of sub
        to_sub[rows] = np.arange(len(rows))
        bi = tubes_w.box_index[inside, a:b]  # [k, b - a] rows of dets, -1: tracker-made
        props = Tubes(
            tubes_w.boxes[inside, a:b],
            tubes_w.valid[inside, a:b],
            np.where(bi >= 0, to_sub[np.maximum(bi, 0)], -1),  # rows of sub
            tubes_w.scores[inside],
        )
        res = scorer.model.predict_tubes(
            {video: feats[rows]}, {video: sub}, proposals={video: props}
        )
        if len(res):
            rows_all = res.rows.copy()
            rows_all[:, 0] += a  # back to processed-frame indices of the whole video
            parts.append(TubeDetections(res.video, res.label, res.score, res.offsets, rows_all))
    return TubeDetections.concat(parts) if parts else TubeDetections.empty()


# ------------------------------------------------------------------------------- detection
FrameDetector = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray, np.ndarray]]


def build_detector(name: str, device: str) -> FrameDetector | None:
    """``frames uint8 [t, h, w, 3] -> (frame int64[n] in 0..t-1, boxes float32[n, 4], scores
    float32[n])`` at the working size; None for ``file`` (the boxes come from the file). Builds
    the model now (torchvision: weights missing on disk fail here, before decoding)."""
    if name == "file":
        return None
    if name == "hog":
        module: Any = HogDetectorModule(HogPeople(pad=HOG_PAD, body=True))
    elif name == "torchvision":
        try:
            module = TorchvisionDetector(device=device, progress=False).build_module()
        except FileNotFoundError as e:  # WeightsNotFoundError: says where the file goes
            raise PredictError(f"--detector torchvision: {e}") from e
        module = module.eval().to(device)
    else:
        raise PredictError(f"--detector {name!r}: expected hog, torchvision or file")

    def detect(frames: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        with torch.inference_mode():
            f, b, s, _ = module(torch.from_numpy(frames).to(device))
        return f.cpu().numpy(), b.cpu().float().numpy(), s.cpu().float().numpy()

    return detect


# ------------------------------------------------------------------------------- one video
@dataclass
class VideoResult:
    """What :func:`predict_video` found in one video (``error`` set when it failed)."""

    video: str
    path: str
    info: dict[str, Any]
    detections: TubeDetections
    error: str | None = None


@dataclass
class Settings:
    """The command's options (see ``--help``)."""

    short_side: int = DEFAULT_SHORT_SIDE
    stride: int = 1
    detector: str = "hog"
    linker: str = "actor"
    num_tubes: int = 5
    batch_seeds: int = 1
    top: int = 3
    device: str = "cpu"
    overlay: str = "working"  # working | native | none
    all_labels: bool = False
    progress: bool = True


@dataclass
class _ShowTracking:
    """A tracker that shows its own progress bar ("tracking", over frames) on every call: actor
    linking calls ``track`` without one, and tracking is where an actor-linked video's time goes."""

    tracker: Any
    progress: bool

    def track(
        self, frames: Any, frame0: Any, boxes0: Any, progress: bool = False, **kw: Any
    ) -> Any:
        return self.tracker.track(frames, frame0, boxes0, self.progress or progress, **kw)


def _link(
    linker: str,
    frames: np.ndarray | None,
    dets: Detections,
    cuts: np.ndarray,
    num_tubes: int,
    tracker: Any,
    video: str,
    batch_seeds: int = 1,
) -> Tubes:
    """Tubes ``[K, T']`` of the processed frames, linked shot by shot (no tube crosses a cut)."""

    def link_one(a: int, b: int, sub: Detections) -> Tubes:
        if len(sub) == 0:
            return Tubes.empty(b - a)
        if linker == "actor":
            assert frames is not None
            return actor_link(
                frames[a:b], sub, tracker, num_tubes=num_tubes, batch_seeds=batch_seeds, snap_iou=0.5,
                video=f"{video}[{a}:{b}]",
            )  # fmt: skip
        if linker == "temporal_prim":
            return temporal_prim(sub, num_tubes, backend="numpy")
        return viterbi(sub, num_tubes, trim=True, backend="numpy")

    return link_per_shot(dets, cuts, link_one)


def predict_video(
    path: Path,
    settings: Settings,
    detect: FrameDetector | None,
    tracker: Any,
    scorer: RunScorer | None,
    out_dir: Path,
    file_dets: Mapping[str, Detections] | None = None,
) -> VideoResult:
    """Detect, link, score and draw one video (module doc, steps 1-6); writes
    ``out_dir/<stem>.mp4`` and returns its tubes (original frames and pixels) and a summary.
    Raises :class:`VideoError` naming the file when it cannot be decoded."""
    video = path.stem
    t_all = time.perf_counter()
    timings = dict.fromkeys(["decode", "detect", "link", "score", "write"], 0.0)
    t = time.perf_counter()
    native = VideoReader(path)  # opens and decodes frame 0: VideoError naming the file
    W, H, T, fps = native.width, native.height, native.num_frames, native.fps or 25.0
    w, h = working_size(W, H, settings.short_side)
    reader = native if (w, h) == (W, H) else VideoReader(path, width=w, height=h, num_threads=0)
    processed = np.arange(0, T, settings.stride, dtype=np.int64)  # [T'] original frames
    Tp = len(processed)
    keep_frames = settings.linker == "actor" or (scorer is not None and scorer.needs_frames)
    frames = np.empty((Tp, h, w, 3), np.uint8) if keep_frames else None
    timings["decode"] += time.perf_counter() - t
    parts_f, parts_b, parts_s, diffs = [], [], [], []
    prev = None
    bar = tqdm(
        total=Tp, desc=f"{video}: decode+detect", unit="frame", disable=not settings.progress
    )
    for c in range(0, Tp, CHUNK):
        t = time.perf_counter()
        chunk = reader.get_frames(processed[c : c + CHUNK])  # [t, h, w, 3]
        if frames is not None:
            frames[c : c + len(chunk)] = chunk
        diffs.append(frame_differences(chunk, prev))
        prev = chunk[-1]
        timings["decode"] += time.perf_counter() - t
        if detect is not None:
            t = time.perf_counter()
            f, b, s = detect(chunk)
            parts_f.append(f + c)
            parts_b.append(b)
            parts_s.append(s)
            timings["detect"] += time.perf_counter() - t
        bar.update(len(chunk))
    bar.close()
    sx, sy = W / w, H / h  # original pixels per working pixel
    if detect is not None:
        dets = Detections.from_unsorted(
            np.concatenate(parts_f) if parts_f else np.zeros(0, np.int64),
            np.concatenate(parts_b) if parts_b else np.zeros((0, 4), np.float32),
            np.concatenate(parts_s) if parts_s else np.zeros(0, np.float32),
            Tp,
        )
    else:
        dets = _file_detections(file_dets or {}, video, T, processed, settings.stride, (sx, sy))
    cuts = cuts_from_differences(np.concatenate(diffs))  # [c] processed-frame indices

    t = time.perf_counter()
    tubes_w = _link(
        settings.linker,
        frames,
        dets,
        cuts,
        settings.num_tubes,
        tracker,
        video,
        settings.batch_seeds,
    )
    timings["link"] = time.perf_counter() - t

    t = time.perf_counter()
    rows = [expand_rows(tubes_w.rows(k), processed, (sx, sy), T) for k in range(tubes_w.num_tubes)]
    if scorer is None:
        names = ["person"]
        results = TubeDetections.from_list(
            [(video, 0, float(tubes_w.scores[k]), r) for k, r in enumerate(rows)]
        )
    elif scorer.kind == "actor_attention":
        names = scorer.class_names
        results = _score_actor_attention(
            scorer, video, path, _dense(rows, T), (W, H), (w, h), settings.all_labels
        )
    else:
        names = scorer.class_names
        assert frames is not None
        found = _score_stil(scorer, video, frames, dets, cuts, tubes_w)
        results = TubeDetections.from_list(
            [(v, lab, s, expand_rows(r, processed, (sx, sy), T)) for v, lab, s, r in found]
        )
    if len(results):
        results = results.select(np.argsort(-results.score, kind="stable"))
    timings["score"] = time.perf_counter() - t

    t = time.perf_counter()
    overlay = None
    if settings.overlay != "none":
        overlay = f"{video}.mp4"
        reuse = frames if (settings.stride == 1 and settings.overlay == "working") else None
        _write_overlay(
            out_dir / overlay, path, results, names, settings, (W, H), (w, h), T, fps, reuse
        )
    timings["write"] = time.perf_counter() - t
    seconds = time.perf_counter() - t_all
    info = {
        "path": str(path),
        "nframes": T,
        "width": W,
        "height": H,
        "fps": native.fps,
        "working_size": [w, h],
        "stride": settings.stride,
        "shot_cuts": processed[cuts].tolist(),
        "num_detections": len(dets),
        "num_tubes": len(results),
        "overlay": overlay,
        "seconds": round(seconds, 3),
        "frames_per_s": round(T / seconds, 2) if seconds > 0 else None,
        "timings_s": {k: round(v, 3) for k, v in timings.items()},
        "labels": names,
    }
    if len(results) == 0:
        info["note"] = "no person found" if len(dets) == 0 else "no tube linked"
    return VideoResult(video, str(path), info, results)


def _file_detections(
    file_dets: Mapping[str, Detections],
    video: str,
    T: int,
    processed: np.ndarray,
    stride: int,
    scale: tuple[float, float],
) -> Detections:
    """The detections file's boxes of ``video`` (original frames and pixels) -> the processed
    frames' boxes in working pixels; a video missing from the file has none."""
    d = file_dets.get(video)
    if d is None or len(d) == 0:
        return Detections.empty(len(processed))
    if d.frame.max() >= T:
        raise VideoError(
            f"detections of video {video!r} reach frame {int(d.frame.max())} but the video has "
            f"{T} frames (0-based): wrong file?"
        )
    on = d.frame % stride == 0  # only the processed frames' boxes
    inv = np.array([1 / scale[0], 1 / scale[1], 1 / scale[0], 1 / scale[1]], np.float32)
    return Detections.from_unsorted(
        d.frame[on] // stride, d.boxes[on] * inv, d.scores[on], len(processed)
    )


def _write_overlay(
    dst: Path,
    path: Path,
    results: TubeDetections,
    names: Sequence[str],
    settings: Settings,
    size: tuple[int, int],
    work: tuple[int, int],
    T: int,
    fps: float,
    frames: np.ndarray | None,
) -> None:
    """``dst``: the video at the working (or native) size with the ``--top`` tubes drawn, one
    colour each, labelled ``<class> <score>`` (H.264, written atomically)."""
    ow, oh = work if settings.overlay == "working" else working_size(*size, 0)
    top = results.select(np.arange(min(settings.top, len(results))))
    boxes = np.full((len(top), T, 4), np.nan)  # [k, T, 4] NaN where the tube has no box
    for k in range(len(top)):
        r = top.tube(k)
        scale = np.array([ow / size[0], oh / size[1], ow / size[0], oh / size[1]])
        boxes[k, r[:, 0].astype(np.int64)] = r[:, 1:] * scale
    texts = [f"#{k + 1} {names[int(top.label[k])]} {top.score[k]:.2f}" for k in range(len(top))]
    reader = None if frames is not None else VideoReader(path, width=ow, height=oh, num_threads=0)
    with VideoWriter(dst, ow, oh, fps) as writer:
        for c in range(0, T, CHUNK):
            idx = np.arange(c, min(T, c + CHUNK))
            chunk = frames[idx] if frames is not None else reader.get_frames(idx)  # type: ignore[union-attr]
            for i, f in enumerate(idx):
                img = chunk[i]
                for k in range(len(top)):
                    if np.isfinite(boxes[k, f]).all():
                        img = draw_boxes(img, boxes[k, f][None], COLORS[k % len(COLORS)],
                                         [texts[k]], thickness=2)  # fmt: skip
                chunk[i] = img
            writer.write(chunk)


# ------------------------------------------------------------------------------- the command
def _print_table(res: VideoResult, top: int) -> None:
    i = res.info
    if res.error:
        print(f"\n{res.video}: ERROR {res.error}")
        return
    print(
        f"\n{res.video}: {i['nframes']} frames {i['width']}x{i['height']}, working size "
        f"{i['working_size'][0]}x{i['working_size'][1]}, {len(i['shot_cuts']) + 1} shot(s), "
        f"{i['num_detections']} boxes, {i['num_tubes']} tubes, {i['seconds']:.1f} s "
        f"({i['frames_per_s']} frames/s; "
        + ", ".join(f"{k} {v:.1f}" for k, v in i["timings_s"].items())
        + ")"
    )
    if i.get("note"):
        print(f"  {i['note']}: an empty entry in tubes.json")
        return
    print(f"  {'#':>3}  {'label':<20} {'score':>8}  frames")
    names = i["labels"]
    for k in range(min(top, len(res.detections))):
        r = res.detections.tube(k)
        print(
            f"  {k + 1:>3}  {names[int(res.detections.label[k])]:<20} "
            f"{res.detections.score[k]:>8.3f}  {int(r[0, 0])}-{int(r[-1, 0])}"
        )


def main(argv: Sequence[str] | None = None) -> int:
    """The command; returns the exit status (1 when a video failed, 2 when a check refused)."""
    return run_args(parser().parse_args(argv))


def run_args(args: argparse.Namespace) -> int:
    """The command on parsed arguments (:func:`wsal.app.predict_cli.parser`)."""
    try:
        return _main(args)
    except PredictError as e:
        if args.debug:
            raise
        print(f"error: {e}", file=sys.stderr)
        return 2


def _check_args(args: argparse.Namespace) -> list[Path]:
    for name in ("num_tubes", "stride", "top", "batch_seeds"):
        if getattr(args, name) < 1:
            raise PredictError(f"--{name.replace('_', '-')} must be >= 1")
    if args.short_side < 0:
        raise PredictError("--short-side must be >= 0")
    if (args.detector == "file") != (args.detections is not None):
        raise PredictError("--detections FILE goes with --detector file (and only with it)")
    paths = [Path(v) for v in args.videos]
    stems: dict[str, Path] = {}
    for p in paths:
        if p.stem in stems:
            raise PredictError(
                f"{p} and {stems[p.stem]} have the same stem {p.stem!r} (the video id in "
                "tubes.json and the overlay's name): rename one"
            )
        stems[p.stem] = p
    return paths


def _main(args: argparse.Namespace) -> int:
    paths = _check_args(args)
    if args.threads > 0:
        import cv2

        torch.set_num_threads(args.threads)
        cv2.setNumThreads(args.threads)
    out = Path(args.out)
    # every check that needs no decoding, before the first video is decoded
    scorer = load_scorer(args.run, args.device) if args.run else None
    file_dets = None
    if args.detector == "file":
        try:
            file_dets = load_detections(args.detections)
        except (FileNotFoundError, ValueError) as e:
            raise PredictError(f"--detections {args.detections}: {e}") from e
    detect = build_detector(args.detector, args.device)
    tracker = None
    if args.linker == "actor":
        tracker = make_tracker(config=SiamFCConfig(**PRETRAINED_CONFIG), device=args.device)
    prepare_out_dir(out, args.overwrite)
    settings = Settings(
        short_side=args.short_side,
        stride=args.stride,
        detector=args.detector,
        linker=args.linker,
        num_tubes=args.num_tubes,
        batch_seeds=args.batch_seeds,
        top=args.top,
        device=args.device,
        overlay=args.overlay,
        all_labels=args.all_labels,
        progress=not args.no_progress,
    )
    results: list[VideoResult] = []
    for path in paths:
        try:
            res = predict_video(path, settings, detect, tracker, scorer, out, file_dets)
        except Exception as e:  # noqa: BLE001 - one bad video must not stop the others
            if args.debug:
                raise
            msg = str(e) if isinstance(e, VideoError) else f"{path}: {type(e).__name__}: {e}"
            if not isinstance(e, VideoError):
                traceback.print_exc(file=sys.stderr)
            print(f"error: {msg}", file=sys.stderr)
            res = VideoResult(
                path.stem, str(path), {"path": str(path)}, TubeDetections.empty(), msg
            )
            res.info["error"] = msg
        results.append(res)
        _print_table(res, args.top)
    names = scorer.class_names if scorer is not None else ["person"]
    dets = TubeDetections.concat([r.detections for r in results if len(r.detections)])
    doc = {
        "detections": dets.to_json(names) if len(dets) else [],
        "labels": names,
        "videos": {r.video: r.info for r in results},
        "settings": {
            **{k: v for k, v in vars(settings).items() if k != "progress"},
            "run": str(args.run) if args.run else None,
            "checkpoint": str(scorer.checkpoint) if scorer is not None else None,
            "detections_file": args.detections,
        },
    }
    atomic_write_json(out / "tubes.json", doc, indent=1)
    failed = [r for r in results if r.error]
    print(
        f"\n{len(results) - len(failed)} of {len(results)} videos done: {out / 'tubes.json'}"
        + (f"; FAILED: {', '.join(str(r.path) for r in failed)}" if failed else "")
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
