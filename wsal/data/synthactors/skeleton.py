"""The SynthActors stick figure: the pose vector, body proportions and look, joint positions of a
pose, its extent and deformation, the tight box of its ink in a frame, and an actor's track.

Coordinates: body units (fractions of the standing height, x forward, y up) for a skeleton;
pixels (continuous, ``xyxy``, y down) for a track's joints and boxes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# A pose is a float vector of 11 numbers. Limb angles are in degrees measured from straight down,
# positive towards the actor's facing direction (0 = hanging, 90 = pointing forward, 180 = up),
# before the whole-body rotation ROT. Elbow/knee angles are relative to the upper segment (knees
# bend backwards: negative). LEAN tilts the torso forward. ROT rotates the whole body forwards
# (cartwheel). LIFT raises the lowest point above the ground, in body heights (jump, run flight).
# "n"/"f" = the limb nearer to / farther from the camera (drawn over / under the torso).
_POSE_KEYS = ("lean", "shn", "eln", "shf", "elf", "hpn", "knn", "hpf", "knf", "rot", "lift")
_LEAN, _SHN, _ELN, _SHF, _ELF, _HPN, _KNN, _HPF, _KNF, _ROT, _LIFT = range(11)
# standing: arms and legs slightly apart so that a side-view figure is not a single bar
_NEUTRAL = np.array([2, 12, 8, -10, 10, 6, -3, -5, -2, 0, 0], dtype=np.float64)


def _pose(**kw: float) -> np.ndarray:
    p = _NEUTRAL.copy()
    for k, v in kw.items():
        p[_POSE_KEYS.index(k)] = v
    return p


@dataclass
class _Body:
    """Proportions (in body heights), pixel height, and look of one stick figure."""

    height: float  # pixels, foot to head top when standing
    torso: float
    head_r: float
    upper_arm: float
    forearm: float
    thigh: float
    shin: float
    thickness: int  # pixels
    head_filled: bool
    color: tuple[int, int, int]
    far_color: tuple[int, int, int]


# joint rows of a skeleton
_HIP, _NECK, _HEAD, _SHOULDER = range(4)
_ELBN, _HANDN, _ELBF, _HANDF, _KNEEN, _FOOTN, _KNEEF, _FOOTF = range(4, 12)
# segments, in drawing order: far leg and arm, torso, near leg and arm (head drawn after torso)
_FAR_SEGS = ((_HIP, _KNEEF), (_KNEEF, _FOOTF), (_SHOULDER, _ELBF), (_ELBF, _HANDF))
_NEAR_SEGS = ((_HIP, _KNEEN), (_KNEEN, _FOOTN), (_SHOULDER, _ELBN), (_ELBN, _HANDN))


def _unit(deg: float) -> np.ndarray:
    """Direction of a limb at ``deg`` from straight down, towards +x (forward); y points up."""
    a = math.radians(deg)
    return np.array([math.sin(a), -math.cos(a)])


def _skeleton(p: np.ndarray, b: _Body) -> np.ndarray:
    """Joint positions ``[12, 2]`` in body heights, x forward, y up, lowest point at ``y = LIFT``."""
    up = np.array([math.sin(math.radians(p[_LEAN])), math.cos(math.radians(p[_LEAN]))])
    j = np.zeros((12, 2))
    j[_NECK] = b.torso * up
    j[_HEAD] = j[_NECK] + b.head_r * up
    j[_SHOULDER] = 0.9 * b.torso * up
    j[_ELBN] = j[_SHOULDER] + b.upper_arm * _unit(p[_SHN])
    j[_HANDN] = j[_ELBN] + b.forearm * _unit(p[_SHN] + p[_ELN])
    j[_ELBF] = j[_SHOULDER] + b.upper_arm * _unit(p[_SHF])
    j[_HANDF] = j[_ELBF] + b.forearm * _unit(p[_SHF] + p[_ELF])
    j[_KNEEN] = b.thigh * _unit(p[_HPN])
    j[_FOOTN] = j[_KNEEN] + b.shin * _unit(p[_HPN] + p[_KNN])
    j[_KNEEF] = b.thigh * _unit(p[_HPF])
    j[_FOOTF] = j[_KNEEF] + b.shin * _unit(p[_HPF] + p[_KNF])
    if p[_ROT]:
        # forward roll = clockwise in these y-up coordinates, about the hip
        a = -math.radians(p[_ROT])
        rot = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
        j = j @ rot.T  # [12,2]
    lowest = min(j[:, 1].min(), j[_HEAD, 1] - b.head_r)
    j[:, 1] += p[_LIFT] - lowest  # stand on the ground (or LIFT above it)
    return j


def _extent(j: np.ndarray, b: _Body) -> np.ndarray:
    """``[x1, y1, x2, y2]`` of a skeleton in body units (y up): joints and the head circle."""
    x1 = min(j[:, 0].min(), j[_HEAD, 0] - b.head_r)
    x2 = max(j[:, 0].max(), j[_HEAD, 0] + b.head_r)
    y1 = min(j[:, 1].min(), j[_HEAD, 1] - b.head_r)
    y2 = max(j[:, 1].max(), j[_HEAD, 1] + b.head_r)
    return np.array([x1, y1, x2, y2])


def _deformation(p: np.ndarray, ext: np.ndarray, stand_h: float) -> float:
    """Pose deformation in [0, 1] that the simulated detector's misses and scores depend on."""
    tilt = math.radians(p[_LEAN] + p[_ROT])
    d_rot = (1 - math.cos(tilt)) / 2  # 0 upright, 0.5 horizontal, 1 upside down
    d_comp = min(max(1 - (ext[3] - ext[1]) / stand_h, 0.0), 1.0)  # height lost (crouching)
    return max(d_rot, d_comp)


_SEGS = (*_FAR_SEGS, (_HIP, _NECK), *_NEAR_SEGS)


def _clip_segment(
    p: np.ndarray, q: np.ndarray, lo: np.ndarray, hi: np.ndarray
) -> tuple[np.ndarray, np.ndarray] | None:
    """Part of segment p-q inside the box [lo, hi] (Liang-Barsky), or None."""
    t0, t1 = 0.0, 1.0
    d = q - p
    for k in range(2):
        for num, den in ((p[k] - lo[k], -d[k]), (hi[k] - p[k], d[k])):
            if den == 0:
                if num < 0:
                    return None
                continue
            t = num / den
            if den < 0:
                t0 = max(t0, t)
            else:
                t1 = min(t1, t)
    if t0 > t1:
        return None
    return p + t0 * d, p + t1 * d


def _visible_box(
    j: np.ndarray, head_r: float, line_r: float, W: int, H: int
) -> tuple[np.ndarray, float]:
    """Tight xyxy box of the ink of a figure inside the frame, and the area of its unclipped box.

    ``j [12, 2]`` joints in pixels; every segment is a capsule of radius ``line_r`` (visible ink
    of the stroke), the head a disc of radius ``head_r``. Segments are clipped to the frame grown
    by ``line_r`` first, so limbs outside the frame do not stretch the box along the border.
    """
    full = np.array(
        [
            min(j[:, 0].min() - line_r, j[_HEAD, 0] - head_r),
            min(j[:, 1].min() - line_r, j[_HEAD, 1] - head_r),
            max(j[:, 0].max() + line_r, j[_HEAD, 0] + head_r),
            max(j[:, 1].max() + line_r, j[_HEAD, 1] + head_r),
        ]
    )
    raw_area = float((full[2] - full[0]) * (full[3] - full[1]))
    lo, hi = np.array([-line_r, -line_r]), np.array([W + line_r, H + line_r])
    ext: list[np.ndarray] = []
    for a, b in _SEGS:
        seg = _clip_segment(j[a], j[b], lo, hi)
        if seg is not None:
            ext += [seg[0] - line_r, seg[0] + line_r, seg[1] - line_r, seg[1] + line_r]
    # head disc inside the frame: its widest chords are those nearest its centre
    hx, hy = j[_HEAD]
    xc, yc = min(max(hx, 0), W), min(max(hy, 0), H)
    dx2, dy2 = head_r**2 - (yc - hy) ** 2, head_r**2 - (xc - hx) ** 2
    if dx2 > 0 and dy2 > 0:
        dx, dy = math.sqrt(dx2), math.sqrt(dy2)
        ext += [np.array([hx - dx, hy - dy]), np.array([hx + dx, hy + dy])]
    if not ext:  # entirely outside (cannot happen for an actor whose hip is kept inside)
        c = np.clip(j[_HIP], 0, [W, H])
        return np.array([c[0], c[1], c[0], c[1]]), raw_area
    e = np.array(ext)  # [n,2]
    box = np.concatenate([e.min(0), e.max(0)])
    return np.clip(box, 0, [W, H, W, H]), raw_area


@dataclass
class _Track:
    """One actor's rendered trajectory: joints in pixels per frame and what is derived from it."""

    body: _Body
    ground: float  # pixel row of the ground under the actor (depth order)
    joints: np.ndarray  # float64[T, 12, 2] pixel (x, y), y down
    head_r: float  # pixels
    boxes: np.ndarray  # float64[T, 4] tight xyxy, clipped to the frame
    raw_area: np.ndarray  # float64[T] area of the unclipped tight box
    deform: np.ndarray  # float64[T]
    action: tuple[int, int, int] | None  # (class index into CLASSES, first frame, last frame)
