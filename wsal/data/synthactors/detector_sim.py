"""The simulated class-agnostic actor detector of SynthActors: what a real person detector outputs
*before* score thresholding (noise model: :class:`~wsal.data.synthactors.config.DetectorNoise`).

Conventions: boxes ``xyxy`` float pixels clipped to ``[0, W] x [0, H]``, continuous areas (no
``+1``); frames 0-based. Every draw comes from the video's own detector generator, in a fixed
order, so a video's detections depend only on its seed and the parameters.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from wsal.data.synthactors.config import DetectorNoise
from wsal.data.synthactors.skeleton import _Track
from wsal.tube_ops import box_iou_paired


@dataclass
class SimulatedDetections:
    """One video's simulated detections and what the simulation knows about them.

    ``frame int64[N]`` sorted, ``boxes float32[N, 4]`` xyxy clipped, ``scores float32[N]``
    (descending within a frame); ``actor_frames`` = (actor, frame) pairs simulated,
    ``true_misses`` = those that got no box at all.
    """

    frame: np.ndarray
    boxes: np.ndarray
    scores: np.ndarray
    actor_frames: int
    true_misses: int


def _texture_cdf(bg: np.ndarray) -> np.ndarray:
    """CDF over pixels (float64[H*W]) proportional to the scene's blurred gradient magnitude:
    where the simulated detector's textured false positives are centred."""
    gray = bg.mean(axis=2)  # [H,W]
    mag = np.hypot(cv2.Sobel(gray, cv2.CV_32F, 1, 0), cv2.Sobel(gray, cv2.CV_32F, 0, 1))
    mag = cv2.GaussianBlur(mag, (9, 9), 3).astype(np.float64).ravel() + 1e-6  # [H*W]
    cdf = np.cumsum(mag)
    return cdf / cdf[-1]


def _inter(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """float64[T]: intersection areas of paired boxes ``a, b`` float[T, 4]."""
    w = np.minimum(a[:, 2], b[:, 2]) - np.maximum(a[:, 0], b[:, 0])  # [T]
    h = np.minimum(a[:, 3], b[:, 3]) - np.maximum(a[:, 1], b[:, 1])  # [T]
    return np.maximum(w, 0.0) * np.maximum(h, 0.0)


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
            hidden[a] += _inter(tb.boxes, tracks[n].boxes) / area
    return np.clip(hidden, 0, 1)


def _jitter(
    rng: np.random.Generator,
    box: np.ndarray,
    shift: np.ndarray,
    scale: np.ndarray,
    pixel: float,
) -> np.ndarray:
    """float64[..., 4]: ``box`` float[..., 4] with its centre shifted by ``N(0, shift)`` of its
    size, its width/height scaled by ``exp(N(0, scale))`` and each coordinate moved by
    ``N(0, pixel)`` pixels (``shift``, ``scale`` broadcast to ``box[..., 0]``)."""
    c = (box[..., :2] + box[..., 2:]) / 2  # [...,2] centre
    wh = box[..., 2:] - box[..., :2]  # [...,2]
    z = rng.standard_normal((*box.shape[:-1], 8))  # [...,8]
    c = c + z[..., 0:2] * shift[..., None] * wh
    wh = wh * np.exp(z[..., 2:4] * scale[..., None])
    return np.concatenate([c - wh / 2, c + wh / 2], axis=-1) + z[..., 4:8] * pixel


def _random_boxes(
    rng: np.random.Generator, n: int, W: int, H: int, cdf: np.ndarray | None
) -> np.ndarray:
    """float64[n, 4]: person-sized boxes (30-65 % of the frame height, aspect w/h 0.3-0.8),
    centred on textured pixels (``cdf`` given) or uniformly."""
    h = rng.uniform(0.3, 0.65, n) * H  # [n]
    w = h * rng.uniform(0.3, 0.8, n)  # [n]
    if cdf is not None:
        i = np.minimum(np.searchsorted(cdf, rng.random(n)), W * H - 1)  # [n] pixel index
        cx, cy = i % W + 0.5, i // W + 0.5
    else:
        cx, cy = rng.uniform(0, W, n), rng.uniform(0, H, n)
    return np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)  # [n,4]


def _simulate_detector(
    rng: np.random.Generator,
    tracks: list[_Track],
    hidden: np.ndarray,
    cdf: np.ndarray,
    W: int,
    H: int,
    T: int,
    n: DetectorNoise,
) -> SimulatedDetections:
    """Detections of one video (see :class:`DetectorNoise` for the model).

    ``tracks`` the actors (true boxes ``float64[T, 4]``, deformation ``float64[T]``), ``hidden``
    float64[A, T] their hidden fractions, ``cdf`` the scene's texture CDF (:func:`_texture_cdf`).
    """
    K = n.proposals_per_actor
    frames, boxes, scores = [], [], []
    misses = 0
    spread = np.ones(K)  # [K] jitter multiplier of each proposal: the first one tight
    for tr, h in zip(tracks, hidden):
        d = tr.deform  # [T]
        miss = rng.random(T) < n.miss_base + n.miss_hidden * h  # [T] true misses: no box at all
        misses += int(miss.sum())
        q = n.score_upright - n.score_deform * d - n.score_hidden * h  # [T] actor quality
        q = q + n.score_std * rng.standard_normal(T)
        spread[1:] = 1 + n.proposal_spread * rng.random(K - 1)
        k = (1 + n.deform_jitter * d)[:, None] * spread[None, :]  # [T,K] deformed: sloppier
        true = np.broadcast_to(tr.boxes[:, None, :], (T, K, 4))  # [T,K,4]
        prop = _jitter(rng, true, n.shift_std * k, n.scale_std * k, n.pixel_std)  # [T,K,4]
        prop = np.clip(prop, 0, [W, H, W, H])
        iou = box_iou_paired(prop.reshape(-1, 4), true.reshape(-1, 4)).reshape(T, K)  # [T,K]
        s = (
            q[:, None]
            - n.score_loc * (1 - iou)
            + n.proposal_score_std * rng.standard_normal((T, K))
        )
        keep = np.broadcast_to(~miss[:, None], (T, K))  # [T,K]
        frames.append(np.broadcast_to(np.arange(T)[:, None], (T, K))[keep])
        boxes.append(prop[keep])
        scores.append(s[keep])
    # persistent false positives: a fixed box on clutter, firing on some frames
    for _ in range(int(rng.poisson(n.fp_static_per_video))):
        fires = np.flatnonzero(rng.random(T) < n.fp_static_rate)  # [m]
        base = np.broadcast_to(_random_boxes(rng, 1, W, H, cdf), (len(fires), 4))
        ones = np.ones(len(fires))
        frames.append(fires)
        boxes.append(_jitter(rng, base, 0.02 * ones, 0.03 * ones, n.pixel_std))
        scores.append(n.fp_score_mean + 0.1 + n.fp_score_std * rng.standard_normal(len(fires)))
    # background proposals: person-sized boxes, some centred on texture, low scores
    count = rng.poisson(n.fp_per_frame, T)  # [T]
    m = int(count.sum())
    textured = rng.random(m) < n.fp_texture_frac  # [m]
    bg = np.empty((m, 4))
    bg[textured] = _random_boxes(rng, int(textured.sum()), W, H, cdf)
    bg[~textured] = _random_boxes(rng, int((~textured).sum()), W, H, None)
    frames.append(np.repeat(np.arange(T), count))
    boxes.append(bg)
    scores.append(n.fp_score_mean + n.fp_score_std * rng.standard_normal(m))

    f = np.concatenate(frames).astype(np.int64)  # [N]
    b = np.clip(np.concatenate(boxes).reshape(-1, 4), 0, [W, H, W, H])  # [N,4]
    s = np.clip(np.concatenate(scores), n.min_score, 1.0)  # [N]
    ok = (b[:, 2] - b[:, 0] >= 1) & (b[:, 3] - b[:, 1] >= 1)  # nothing left after clipping
    f, b, s = f[ok], b[ok], s[ok]
    b32, s32 = b.astype(np.float32), s.astype(np.float32)
    order = np.lexsort((-s32, f))  # by frame, then descending (stored) score, stable
    return SimulatedDetections(f[order], b32[order], s32[order], len(tracks) * T, misses)
