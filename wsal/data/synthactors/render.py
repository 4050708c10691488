"""SynthActors rendering: textured scenes, the actors' looks, drawing the stick figures with
OpenCV (antialiased, sub-pixel) and writing a video."""

from __future__ import annotations

import colorsys
import functools
import math
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from wsal.data.synthactors.skeleton import _FAR_SEGS, _HEAD, _HIP, _NEAR_SEGS, _NECK, _Body, _Track
from wsal.data.video import write_video


def _lowfreq(rng: np.random.Generator, H: int, W: int, cells: int) -> np.ndarray:
    """Smooth noise in [0, 1], float32[H, W]: a coarse random grid upsampled bicubically."""
    ch = max(2, round(cells * H / max(H, W)))
    cw = max(2, round(cells * W / max(H, W)))
    g = rng.random((ch, cw)).astype(np.float32)
    return np.clip(cv2.resize(g, (W, H), interpolation=cv2.INTER_CUBIC), 0, 1)


def _jit(rng: np.random.Generator, rgb: Sequence[float], amount: float = 25) -> np.ndarray:
    return np.clip(np.asarray(rgb, np.float32) + rng.uniform(-amount, amount, 3), 0, 255)


def _mix(a: np.ndarray, b: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Per-pixel blend of colours a and b with weight map w[H, W] -> float32[H, W, 3]."""
    return a[None, None] * (1 - w[..., None]) + b[None, None] * w[..., None]


def _scene(kind: str, rng: np.random.Generator, H: int, W: int) -> np.ndarray:
    """Background of a scene type, float32[H, W, 3] RGB in [0, 255]. Each type has its own texture
    and palette (the context signal); colours are jittered per video."""
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)  # [H,W] each
    if kind == "meadow":  # sky over grass, grass in blotchy greens
        horizon = rng.uniform(0.3, 0.5) * H
        sky = _mix(_jit(rng, (150, 190, 235)), _jit(rng, (205, 225, 245)), yy / H)
        grass = _mix(
            _jit(rng, (60, 120, 40)),
            _jit(rng, (110, 160, 60)),
            0.6 * _lowfreq(rng, H, W, 6) + 0.4 * _lowfreq(rng, H, W, 40),
        )
        img = np.where((yy < horizon)[..., None], sky, grass)
    elif kind == "stripes":  # horizontal bands
        period = rng.uniform(6, 14)
        w = 0.5 + 0.5 * np.sin(2 * np.pi * yy / period + rng.uniform(0, 6.3))
        img = _mix(_jit(rng, (200, 80, 70)), _jit(rng, (235, 215, 170)), w)
        img *= (0.8 + 0.4 * _lowfreq(rng, H, W, 3))[..., None]
    elif kind == "checker":
        cell = rng.uniform(8, 16)
        w = ((np.floor(xx / cell) + np.floor(yy / cell)) % 2).astype(np.float32)
        w = cv2.GaussianBlur(w, (3, 3), 0.8)
        img = _mix(_jit(rng, (60, 60, 140)), _jit(rng, (200, 200, 220)), w)
        img *= (0.85 + 0.3 * _lowfreq(rng, H, W, 3))[..., None]
    elif kind == "sand":  # pale sky over speckled dunes
        horizon = rng.uniform(0.2, 0.35) * H
        sky = np.broadcast_to(_jit(rng, (235, 225, 200)), (H, W, 3)).astype(np.float32)
        dunes = _mix(
            _jit(rng, (200, 160, 100)),
            _jit(rng, (240, 210, 150)),
            0.5 * _lowfreq(rng, H, W, 3) + 0.5 * _lowfreq(rng, H, W, 24),
        )
        img = np.where((yy < horizon)[..., None], sky, dunes)
    elif kind == "diagonal":
        period = rng.uniform(8, 16)
        ang = math.radians(rng.uniform(30, 60)) * (1 if rng.random() < 0.5 else -1)
        w = 0.5 + 0.5 * np.sign(
            np.sin(2 * np.pi * (xx * math.cos(ang) + yy * math.sin(ang)) / period)
        )
        w = cv2.GaussianBlur(w.astype(np.float32), (3, 3), 0.8)
        img = _mix(_jit(rng, (90, 150, 90)), _jit(rng, (230, 230, 120)), w)
    elif kind == "blobs":  # soft coloured circles on a dark-ish ground
        img = np.broadcast_to(_jit(rng, (110, 80, 120)), (H, W, 3)).astype(np.float32).copy()
        for _ in range(int(rng.integers(8, 16))):
            c = (rng.uniform(0, W), rng.uniform(0, H))
            r = rng.uniform(0.05, 0.18) * max(H, W)
            w = np.exp(-((xx - c[0]) ** 2 + (yy - c[1]) ** 2) / (2 * (r / 2) ** 2))
            img = (
                img * (1 - w[..., None]) + _jit(rng, (200, 150, 200), 60)[None, None] * w[..., None]
            )
    elif kind == "indoor":  # panelled wall over a plank floor
        horizon = rng.uniform(0.45, 0.65) * H
        period = rng.uniform(16, 30)
        panel = np.abs(((xx + rng.uniform(0, 30)) % period) - period / 2) > period / 2 - 1.5
        wall = _mix(
            _jit(rng, (225, 215, 195)), _jit(rng, (150, 135, 115)), panel.astype(np.float32) * 0.8
        )
        plank = ((yy - horizon) % rng.uniform(5, 9) < 1).astype(np.float32)
        floor = _mix(
            _jit(rng, (150, 100, 60)),
            _jit(rng, (90, 60, 35)),
            0.7 * plank + 0.3 * _lowfreq(rng, H, W, 8),
        )
        img = np.where((yy < horizon)[..., None], wall, floor)
    else:  # pragma: no cover - SCENES is closed
        raise ValueError(kind)
    return np.clip(img, 0, 255).astype(np.float32)


def _actor_look(rng: np.random.Generator, height_px: float, scene_px: np.ndarray) -> _Body:
    """Random proportions, line thickness and a colour that stands out from the scene.

    ``scene_px [n, 3]``: a sample of the scene's pixels. Of 8 random colours the one whose 10th
    percentile distance to those pixels is largest wins, so that a figure does not vanish into
    either tone of a two-tone texture (the mean colour of a checkerboard is neither tone).
    """
    scene_px = np.asarray(scene_px, np.float64).reshape(-1, 3)
    cands = []
    for _ in range(8):
        h = rng.random()
        rgb = np.array(colorsys.hsv_to_rgb(h, rng.uniform(0.55, 1.0), rng.uniform(0.1, 1.0))) * 255
        cands.append(rgb)
    color = max(cands, key=lambda c: float(np.percentile(np.abs(scene_px - c).sum(1), 10)))
    far = 0.7 * color + 0.3 * scene_px.mean(0)  # far limbs: a shade towards the scene (depth cue)
    v = rng.uniform(0.93, 1.07, 6)  # proportions vary by +-7 %
    return _Body(
        height=float(height_px),
        torso=0.32 * v[0],
        head_r=0.085 * v[1],
        upper_arm=0.19 * v[2],
        forearm=0.18 * v[3],
        thigh=0.25 * v[4],
        shin=0.25 * v[5],
        thickness=max(1, round(height_px * rng.uniform(0.03, 0.055))),
        head_filled=bool(rng.random() < 0.6),
        color=(int(color[0]), int(color[1]), int(color[2])),
        far_color=(int(far[0]), int(far[1]), int(far[2])),
    )


def _fx(p: np.ndarray) -> tuple[int, int]:
    # wsal's continuous pixel coordinates (pixel i spans [i, i+1]) to OpenCV's (pixel i is centred
    # on i), in fixed point (shift=4: 1/16 pixel) for sub-pixel antialiased drawing
    return int(round((p[0] - 0.5) * 16)), int(round((p[1] - 0.5) * 16))


_VISIBLE = 64  # a pixel counts as part of the figure from 25 % coverage (tight GT boxes)


@functools.cache
def _ink_reach(thickness: int) -> tuple[float, float, float]:
    """How far (pixels) visible ink reaches beyond the geometry it draws: ``(line, ring, disc)``
    for an antialiased line of ``thickness`` (sides and round caps), a circle outline of that
    thickness (beyond its radius) and a filled circle (beyond its radius). Measured once on this
    OpenCV build over sub-pixel offsets: its AA strokes are wider than the nominal thickness."""
    line_r = ring_r = disc_r = 0.0
    for off in np.arange(8) / 8:
        c = 20 + off
        img = np.zeros((40, 40), np.uint8)  # horizontal segment from x=10 to x=c at y=c
        cv2.line(
            img, _fx(np.array([10.0, c])), _fx(np.array([c, c])), 255, thickness, cv2.LINE_AA, 4
        )
        ys, xs = np.nonzero(img > _VISIBLE)
        line_r = max(line_r, ys.max() + 1 - c, xs.max() + 1 - c)  # side and cap
        for filled in (False, True):  # circle of radius 8 centred at (c, 20)
            img = np.zeros((40, 40), np.uint8)
            cv2.circle(
                img,
                _fx(np.array([c, 20.0])),
                8 * 16,
                255,
                -1 if filled else thickness,
                cv2.LINE_AA,
                4,
            )
            reach = np.nonzero(img > _VISIBLE)[1].max() + 1 - (c + 8)
            if filled:
                disc_r = max(disc_r, reach)
            else:
                ring_r = max(ring_r, reach)
    return float(line_r), float(ring_r), float(disc_r)


def _draw(img: np.ndarray, tr: _Track, f: int) -> None:
    j, b = tr.joints[f], tr.body
    for a, c in _FAR_SEGS:
        cv2.line(img, _fx(j[a]), _fx(j[c]), b.far_color, b.thickness, cv2.LINE_AA, 4)
    cv2.line(img, _fx(j[_HIP]), _fx(j[_NECK]), b.color, b.thickness, cv2.LINE_AA, 4)
    r = max(1, int(round(tr.head_r * 16)))
    cv2.circle(img, _fx(j[_HEAD]), r, b.color, -1 if b.head_filled else b.thickness, cv2.LINE_AA, 4)
    for a, c in _NEAR_SEGS:
        cv2.line(img, _fx(j[a]), _fx(j[c]), b.color, b.thickness, cv2.LINE_AA, 4)


def _render_video(
    path: Path,
    bg: np.ndarray,
    tracks: Sequence[_Track],
    noise_rng: np.random.Generator,
    frame_noise: float,
    fps: float,
    crf: int,
) -> None:
    """Draw ``tracks`` (painter's order: far first) over the scene ``bg float32[H, W, 3]`` on each
    of their frames, add Gaussian sensor noise of std ``frame_noise`` (uint8 units) and write the
    video to ``path`` (H.264 at ``crf``)."""
    T = len(tracks[0].joints)
    H, W = bg.shape[:2]
    # pixels: scene, actors, then sensor noise over everything
    base = np.clip(bg, 0, 255).astype(np.uint8)
    frames = np.empty((T, H, W, 3), np.uint8)
    for f in range(T):
        img = base.copy()
        for tr in tracks:
            _draw(img, tr, f)
        frames[f] = img
    if frame_noise > 0:
        noise = noise_rng.standard_normal(frames.shape, dtype=np.float32) * frame_noise
        frames = np.clip(frames.astype(np.float32) + noise, 0, 255).astype(np.uint8)
    write_video(path, frames, fps=fps, crf=crf)
