"""The simulated class-agnostic actor detector of SynthActors (noise model:
:class:`~wsal.data.synthactors.config.DetectorNoise`)."""

from __future__ import annotations

import math

import cv2
import numpy as np

from wsal.data.synthactors.config import DetectorNoise
from wsal.data.synthactors.skeleton import _Track


def _texture_cdf(bg: np.ndarray) -> np.ndarray:
    """CDF over pixels (float64[H*W]) proportional to the scene's blurred gradient magnitude:
    where the simulated detector's textured false positives are centred."""
    gray = bg.mean(axis=2)  # [H,W]
    mag = np.hypot(cv2.Sobel(gray, cv2.CV_32F, 1, 0), cv2.Sobel(gray, cv2.CV_32F, 0, 1))
    mag = cv2.GaussianBlur(mag, (9, 9), 3).astype(np.float64).ravel() + 1e-6  # [H*W]
    cdf = np.cumsum(mag)
    return cdf / cdf[-1]


def _inter(a: np.ndarray, b: np.ndarray) -> float:
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    return max(w, 0.0) * max(h, 0.0)


def _hidden_fraction(tracks: list[_Track], order: list[int], T: int) -> np.ndarray:
    """float64[A, T]: fraction of each actor's unclipped box outside the frame or covered by the
    boxes of actors drawn after it (nearer the camera), capped at 1."""
    A = len(tracks)
    hidden = np.zeros((A, T))
    for a in range(A):
        tb = tracks[a]
        area = np.maximum(tb.raw_area, 1e-6)  # [T]
        clipped = (tb.boxes[:, 2] - tb.boxes[:, 0]) * (tb.boxes[:, 3] - tb.boxes[:, 1])  # [T]
        hidden[a] = 1 - clipped / area
        for n in order[order.index(a) + 1 :]:
            for f in range(T):
                hidden[a, f] += _inter(tb.boxes[f], tracks[n].boxes[f]) / area[f]
    return np.clip(hidden, 0, 1)


def _jitter(
    rng: np.random.Generator, box: np.ndarray, shift: float, scale: float, pixel: float
) -> np.ndarray:
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    w, h = box[2] - box[0], box[3] - box[1]
    z = rng.standard_normal(8)
    cx, cy = cx + z[0] * shift * w, cy + z[1] * shift * h
    w, h = w * math.exp(z[2] * scale), h * math.exp(z[3] * scale)
    return np.array([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]) + z[4:] * pixel


def _random_box(rng: np.random.Generator, W: int, H: int, cdf: np.ndarray | None) -> np.ndarray:
    """A person-sized box (30-65 % of the frame height, aspect w/h 0.3-0.8), centred on a textured
    pixel (``cdf`` given) or uniformly."""
    h = rng.uniform(0.3, 0.65) * H
    w = h * rng.uniform(0.3, 0.8)
    if cdf is not None:
        i = min(int(np.searchsorted(cdf, rng.random())), W * H - 1)
        cx, cy = i % W + 0.5, i // W + 0.5
    else:
        cx, cy = rng.uniform(0, W), rng.uniform(0, H)
    return np.array([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2])


def _simulate_detector(
    rng: np.random.Generator,
    tracks: list[_Track],
    hidden: np.ndarray,
    cdf: np.ndarray,
    W: int,
    H: int,
    T: int,
    n: DetectorNoise,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Detections of one video: ``frame int64[N]`` sorted, ``boxes float32[N, 4]`` xyxy clipped,
    ``scores float32[N]`` (descending within a frame). See :class:`DetectorNoise`."""
    lim = np.array([W, H, W, H], np.float64)
    static = [_random_box(rng, W, H, cdf) for _ in range(int(rng.poisson(n.fp_static_per_video)))]
    frames: list[int] = []
    boxes: list[np.ndarray] = []
    scores: list[float] = []

    def emit(f: int, box: np.ndarray, score: float) -> None:
        box = np.clip(box, 0, lim)
        if box[2] - box[0] >= 1 and box[3] - box[1] >= 1:  # nothing left after clipping: dropped
            frames.append(f)
            boxes.append(box)
            scores.append(min(max(score, n.min_score), 1.0))

    for f in range(T):
        start = len(frames)
        for a, tr in enumerate(tracks):
            d = tr.deform[f]
            p_miss = n.miss_base + n.miss_deform * d + n.miss_hidden * hidden[a, f]
            if rng.random() < p_miss:
                continue
            k = 1 + n.deform_jitter * d
            box = _jitter(rng, tr.boxes[f], n.shift_std * k, n.scale_std * k, n.pixel_std)
            score = n.score_upright - n.score_deform * d + n.score_std * rng.standard_normal()
            emit(f, box, score)
            if rng.random() < n.dup_prob:
                dup = _jitter(rng, box, n.dup_shift, n.dup_shift, n.pixel_std)
                emit(f, dup, score * n.dup_score * rng.uniform(0.9, 1.1))
        for sbox in static:
            if rng.random() < n.fp_static_rate:
                emit(
                    f,
                    _jitter(rng, sbox, 0.02, 0.03, n.pixel_std),
                    n.fp_score_mean + 0.1 + n.fp_score_std * rng.standard_normal(),
                )
        for _ in range(int(rng.poisson(n.fp_per_frame))):
            box = _random_box(rng, W, H, cdf if rng.random() < n.fp_texture_frac else None)
            emit(f, box, n.fp_score_mean + n.fp_score_std * rng.standard_normal())
        order = np.argsort(-np.asarray(scores[start:]), kind="stable") + start
        boxes[start:] = [boxes[i] for i in order]
        scores[start:] = [scores[i] for i in order]
    return (
        np.asarray(frames, np.int64),
        np.asarray(boxes, np.float32).reshape(-1, 4),
        np.asarray(scores, np.float32),
    )
