"""SynthActors: wsal's embedded benchmark, generated from a seed (DESIGN §5).

A dataset of short untrimmed videos in which articulated stick-figure actors perform one of seven
actions defined purely by joint motion (``wave``, ``jump``, ``run``, ``cartwheel``, ``crouch``,
``kick``, ``throw``), idle or walk otherwise, on textured scenes. It is written **exactly like a
real dataset**, so the real-data code path is the one exercised::

    OUT/
      videos/<class>/<class>_NNNN.mp4   H.264 (``wsal.data.video.write_video``)
      annotations.json                 wsal annotation JSON (``write_wsal_json``): labels, splits,
                                       per-video nframes/size/fps/labels, GT tubes with points
      detections.npz                   the *simulated* actor detector (format below)
      meta.json                        generator version, every parameter, their hash, stats

Conventions: frames are 0-based; boxes are ``xyxy`` float pixels (``x2``/``y2`` are the right and
bottom edges, continuous coordinates, clipped to ``[0, W] x [0, H]``); points are ``(x, y)`` pixels.

Ground truth. A GT tube is the performer's tight box on exactly the frames of its action, one
contiguous stretch covering 40-100 % of the video. The box encloses the visible ink of every limb
and the head (pixels of at least 25 % coverage: antialiased strokes are measured once on the
installed OpenCV), limited to the part inside the frame. The tube's point on each frame is the
torso centre jittered by 3 % of the actor's height (kept inside the box). Distractors idle or walk; in ``hard`` mode a
distractor may perform another class, and the video then has two labels and two tubes.

Detections. ``detections.npz`` is **not** the output of a learned detector: it is a *simulated,
class-agnostic actor detector* whose noise model (:class:`DetectorNoise`) is applied to the true
boxes of every actor (performers and distractors alike): each actor is missed with a probability
that grows with its pose deformation (``cartwheel`` mid-rotation, deep ``crouch``) and with the
fraction of it hidden by nearer actors or the frame border; found boxes are jittered; scores are high
for upright poses and lower for deformed ones, plus noise; a few false positives per frame (half of
them on textured parts of the scene, plus some that fire persistently on the same clutter) carry
low-ish scores; true boxes are sometimes duplicated. The file has the layout a real detector
produces: ``video str[N]`` (unicode), ``frame int64[N]`` (0-based), ``boxes float32[N, 4]`` (xyxy
pixels, clipped), ``scores float32[N]`` in ``(0, 1]``; no ``labels`` (class-agnostic). Rows are
grouped by video (in annotation order) and sorted by frame (then by descending score) in a video.

Determinism. Every video draws from its own ``numpy`` generators seeded by ``(seed, class, split,
index)``, so the output is identical for any worker count, and a video depends only on those and
the generation parameters (in hard mode also on the class list).

Run ``python -m wsal.data.synthetic --out DIR`` (see ``--help``), or call :func:`generate` /
:func:`ensure_synthactors`. ``docs/synthactors.md`` describes the classes and the noise model and
lists what the default configuration produces.
"""

from __future__ import annotations

import argparse
import colorsys
import functools
import hashlib
import json
import math
import multiprocessing as mp
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from wsal.data.annotations import DatasetIndex, GTTube, VideoInfo, read_wsal_json, write_wsal_json
from wsal.data.video import write_video

__all__ = [
    "CLASSES",
    "SCENES",
    "GENERATOR_VERSION",
    "DetectorNoise",
    "SynthConfig",
    "config_hash",
    "generate",
    "ensure_synthactors",
    "stats",
    "main",
]

#: Bump whenever a change to this file changes what is generated for a given config (cache key).
GENERATOR_VERSION = "1"

#: The action classes, in label order. Each is defined by joint motion only (see ``_ACTIONS``).
CLASSES: tuple[str, ...] = ("wave", "jump", "run", "cartwheel", "crouch", "kick", "throw")

#: Scene types. ``SCENES[i]`` is the context scene of ``CLASSES[i]``: a video of class i is shot in
#: it with probability ``context_prob`` (otherwise in a uniformly random scene, possibly also i).
SCENES: tuple[str, ...] = ("meadow", "stripes", "checker", "sand", "diagonal", "blobs", "indoor")

_SPLIT_CODE = {"train": 0, "test": 1}


# --------------------------------------------------------------------------------------------
# Parameters
# --------------------------------------------------------------------------------------------


@dataclass
class DetectorNoise:
    """Noise model of the simulated class-agnostic actor detector (per actor, per frame).

    Deformation ``d`` in [0, 1] of a pose is ``max(d_rot, d_comp)`` where ``d_rot = (1 - cos φ) / 2``
    for the tilt φ of the torso from upright (0 upright, 0.5 horizontal, 1 upside down) and
    ``d_comp`` is the fraction of standing height lost (crouching). ``hidden`` in [0, 1] is the
    fraction of the actor's box covered by nearer actors' boxes or outside the frame.

    Fields:
        miss_base: probability of missing an upright, fully visible actor.
        miss_deform: added miss probability per unit of deformation ``d``.
        miss_hidden: added miss probability per unit of ``hidden``.
        shift_std: std of the box-centre shift, as a fraction of the box width/height.
        scale_std: std of the log of the width/height scale factors (multiplicative jitter).
        pixel_std: std of the additive per-coordinate jitter, pixels.
        deform_jitter: ``shift_std`` and ``scale_std`` are multiplied by ``1 + deform_jitter * d``.
        score_upright: mean score of an upright actor.
        score_deform: score drop per unit of deformation ``d``.
        score_std: std of the Gaussian score noise of a true detection.
        dup_prob: probability that a true detection comes with a duplicate box.
        dup_shift: std of the duplicate's extra jitter (centre and log-size), fraction of the box.
        dup_score: mean factor of the duplicate's score relative to the original (±10 % noise).
        fp_per_frame: Poisson mean of transient false positives per frame.
        fp_texture_frac: fraction of false positives centred on textured pixels (sampled in
            proportion to the blurred gradient magnitude of the empty scene), the rest uniformly.
        fp_score_mean: mean score of a false positive.
        fp_score_std: std of a false positive's score.
        fp_static_per_video: Poisson mean of *persistent* false positives per video, each a fixed
            box on textured clutter that fires on a frame with probability ``fp_static_rate`` and
            scores ``fp_score_mean + 0.1`` on average (what a real detector does on a coat rack).
        fp_static_rate: per-frame firing probability of a persistent false positive.
        min_score: lower clip of every score (scores lie in ``[min_score, 1]``).
    """

    miss_base: float = 0.03
    miss_deform: float = 0.55
    miss_hidden: float = 0.6
    shift_std: float = 0.04
    scale_std: float = 0.06
    pixel_std: float = 0.5
    deform_jitter: float = 1.5
    score_upright: float = 0.9
    score_deform: float = 0.45
    score_std: float = 0.06
    dup_prob: float = 0.1
    dup_shift: float = 0.12
    dup_score: float = 0.75
    fp_per_frame: float = 1.0
    fp_texture_frac: float = 0.5
    fp_score_mean: float = 0.3
    fp_score_std: float = 0.12
    fp_static_per_video: float = 0.5
    fp_static_rate: float = 0.5
    min_score: float = 0.01

    def __post_init__(self) -> None:
        for f in fields(self):
            v = float(getattr(self, f.name))
            if not math.isfinite(v) or v < 0:
                raise ValueError(f"DetectorNoise.{f.name} must be finite and >= 0, got {v}")
            setattr(self, f.name, v)
        for name in ("miss_base", "dup_prob", "fp_texture_frac", "fp_static_rate"):
            if getattr(self, name) > 1:
                raise ValueError(
                    f"DetectorNoise.{name} is a probability, got {getattr(self, name)}"
                )
        if not 0 < self.min_score <= 1:
            raise ValueError(f"DetectorNoise.min_score must be in (0, 1], got {self.min_score}")


@dataclass
class SynthConfig:
    """Everything that shapes a SynthActors dataset (all of it goes into the cache key).

    Fields:
        classes: subset of :data:`CLASSES` to generate, in label order.
        videos_per_class_train / videos_per_class_test: videos per class in each split.
        width, height: frame size in pixels (even: lossy H.264 needs it).
        min_frames, max_frames: video length range in frames (inclusive, uniform).
        fps: frame rate of the videos (motion is defined in seconds, so fps changes sampling).
        min_actors, max_actors: actors per video (one performer, the rest distractors).
        min_action_frac, max_action_frac: fraction of the video covered by the action.
        hard: let distractors perform another class (then the video has two labels/tubes).
        hard_prob: in hard mode, probability that a video with distractors gets such a second
            performer.
        context_prob: probability that a video is shot in its class's scene (``SCENES``);
            otherwise the scene is uniformly random.
        frame_noise: std of the per-frame Gaussian pixel noise (uint8 units).
        crf: H.264 constant rate factor of the videos (lower = better quality).
        detector: the simulated detector's noise model.
        seed: master seed.
    """

    classes: tuple[str, ...] = CLASSES
    videos_per_class_train: int = 24
    videos_per_class_test: int = 12
    width: int = 160
    height: int = 120
    min_frames: int = 40
    max_frames: int = 72
    fps: float = 25.0
    min_actors: int = 1
    max_actors: int = 3
    min_action_frac: float = 0.4
    max_action_frac: float = 1.0
    hard: bool = False
    hard_prob: float = 0.5
    context_prob: float = 0.5
    frame_noise: float = 3.0
    crf: int = 18
    detector: DetectorNoise = field(default_factory=DetectorNoise)
    seed: int = 0

    def __post_init__(self) -> None:
        if isinstance(self.classes, str):
            self.classes = tuple(c.strip() for c in self.classes.split(",") if c.strip())
        self.classes = tuple(str(c) for c in self.classes)
        if isinstance(self.detector, dict):
            self.detector = DetectorNoise(**self.detector)
        unknown = [c for c in self.classes if c not in CLASSES]
        if unknown or not self.classes or len(set(self.classes)) != len(self.classes):
            raise ValueError(
                f"classes must be a non-empty subset of {CLASSES} without repeats, "
                f"got {self.classes}"
            )
        for name in (
            "videos_per_class_train",
            "videos_per_class_test",
            "width",
            "height",
            "min_frames",
            "max_frames",
            "min_actors",
            "max_actors",
            "crf",
            "seed",
        ):
            setattr(self, name, int(getattr(self, name)))
        for name in (
            "fps",
            "min_action_frac",
            "max_action_frac",
            "hard_prob",
            "context_prob",
            "frame_noise",
        ):
            setattr(self, name, float(getattr(self, name)))
        self.hard = bool(self.hard)
        if self.videos_per_class_train < 0 or self.videos_per_class_test < 0:
            raise ValueError("videos per class must be >= 0")
        if self.videos_per_class_train + self.videos_per_class_test == 0:
            raise ValueError("the dataset would have no videos")
        if self.width < 32 or self.height < 32 or self.width % 2 or self.height % 2:
            raise ValueError(f"frame size must be even and >= 32, got {self.width}x{self.height}")
        if not 4 <= self.min_frames <= self.max_frames:
            raise ValueError(
                f"need 4 <= min_frames <= max_frames, got {self.min_frames}, {self.max_frames}"
            )
        if not 1 <= self.min_actors <= self.max_actors:
            raise ValueError(
                f"need 1 <= min_actors <= max_actors, got {self.min_actors}, {self.max_actors}"
            )
        if not 0 < self.min_action_frac <= self.max_action_frac <= 1:
            raise ValueError("need 0 < min_action_frac <= max_action_frac <= 1")
        if self.fps <= 0:
            raise ValueError(f"fps must be positive, got {self.fps}")
        for name in ("hard_prob", "context_prob"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} is a probability, got {getattr(self, name)}")
        if self.frame_noise < 0 or not 0 <= self.crf <= 51:
            raise ValueError("need frame_noise >= 0 and 0 <= crf <= 51")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["classes"] = list(self.classes)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SynthConfig:
        return cls(**d)


def config_hash(config: SynthConfig) -> str:
    """Cache key of a config: sha256 of every parameter and :data:`GENERATOR_VERSION` (16 hex)."""
    blob = json.dumps({"version": GENERATOR_VERSION, "config": config.to_dict()}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


# --------------------------------------------------------------------------------------------
# Poses and motion
# --------------------------------------------------------------------------------------------
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


def _cyclic(u: float, keys: Sequence[tuple[float, np.ndarray]]) -> np.ndarray:
    """Smooth-step interpolation between keyframes ``(u_i, pose_i)``, ``u_0 = 0 < ... < 1``."""
    u = u % 1.0
    for (u0, p0), (u1, p1) in zip(keys[:-1], keys[1:]):
        if u <= u1:
            w = (u - u0) / (u1 - u0)
            w = w * w * (3 - 2 * w)  # smoothstep: zero velocity at keyframes, like real joints
            return p0 + (p1 - p0) * w
    return keys[-1][1].copy()


# An action maps (seconds since its start, speed factor s ~ 1, side) to (pose, forward speed in
# body heights per second). Periods are divided by s so actors differ in tempo.
Motion = Callable[[float, float, int], tuple[np.ndarray, float]]


def _idle(t: float, s: float, side: int) -> tuple[np.ndarray, float]:
    p = _NEUTRAL.copy()
    sway = math.sin(2 * math.pi * 0.35 * s * t)  # slow weight shift / breathing
    p[_SHN] += 4 * sway
    p[_SHF] -= 3 * sway
    p[_LEAN] += 1.5 * math.sin(2 * math.pi * 0.25 * s * t)
    return p, 0.0


def _walk(t: float, s: float, side: int) -> tuple[np.ndarray, float]:
    ph = 2 * math.pi * 1.6 * s * t  # ~1.6 strides/s
    sw, c = math.sin(ph), math.cos(ph)
    # hips swing in antiphase; a knee bends while its leg swings forward (d(hip)/dt > 0, c > 0);
    # arms swing against the legs.
    p = _pose(
        lean=4,
        hpn=22 * sw,
        knn=-(4 + 45 * max(0.0, c)),
        hpf=-22 * sw,
        knf=-(4 + 45 * max(0.0, -c)),
        shn=-18 * sw,
        eln=15,
        shf=18 * sw,
        elf=15,
    )
    return p, 0.5 * s


def _run(t: float, s: float, side: int) -> tuple[np.ndarray, float]:
    ph = 2 * math.pi * 2.6 * s * t
    sw, c = math.sin(ph), math.cos(ph)
    p = _pose(
        lean=16,
        hpn=12 + 42 * sw,
        knn=-(25 + 75 * max(0.0, c)),
        hpf=12 - 42 * sw,
        knf=-(25 + 75 * max(0.0, -c)),
        shn=10 - 50 * sw,
        eln=95,
        shf=10 + 50 * sw,
        elf=95,
        lift=0.04 * abs(sw),  # short flight phase twice per stride
    )
    return p, 1.6 * s


def _wave(t: float, s: float, side: int) -> tuple[np.ndarray, float]:
    p, _ = _idle(t, s, side)
    ph = 2 * math.pi * 2.0 * s * t
    sh, el = (_SHN, _ELN) if side == 0 else (_SHF, _ELF)
    p[sh] = 125 + 5 * math.sin(ph / 2)  # upper arm raised forward-up
    p[el] = 40 + 45 * math.sin(ph)  # forearm swings 120..210 deg: up beside the head and back
    return p, 0.0


# fmt: off
_JUMP_KEYS = [
    (0.00, _pose(lean=3, shn=-10, eln=15, shf=-14, elf=15)),
    (0.25, _pose(lean=30, shn=-50, eln=20, shf=-55, elf=20, hpn=65, knn=-100, hpf=60, knf=-95)),
    (0.42, _pose(lean=5, shn=160, eln=5, shf=150, elf=5, hpn=0, knn=-5, hpf=-5, knf=-5, lift=0.2)),
    (0.58, _pose(lean=5, shn=170, eln=5, shf=165, elf=5, hpn=30, knn=-60, hpf=25, knf=-55,
                 lift=0.32)),
    (0.78, _pose(lean=25, shn=70, eln=20, shf=60, elf=20, hpn=50, knn=-80, hpf=45, knf=-75)),
    (1.00, _pose(lean=3, shn=-10, eln=15, shf=-14, elf=15)),
]
# fmt: on


def _jump(t: float, s: float, side: int) -> tuple[np.ndarray, float]:
    # crouch, swing the arms up and take off, tuck at the apex, land bent, stand: ~1 jump/s
    return _cyclic(t * s / 1.0, _JUMP_KEYS), 0.0


def _cartwheel(t: float, s: float, side: int) -> tuple[np.ndarray, float]:
    # arms straight up and spread, legs spread, the whole body rotating forwards at 0.75 rev/s
    p = _pose(
        lean=0,
        shn=160,
        eln=0,
        shf=200,
        elf=0,
        hpn=35,
        knn=-5,
        hpf=-35,
        knf=-5,
        rot=360 * 0.75 * s * t,
    )
    return p, 0.9 * s


def _crouch(t: float, s: float, side: int) -> tuple[np.ndarray, float]:
    c = (1 - math.cos(2 * math.pi * t * s / 1.7)) / 2  # squat depth 0..1, one squat per 1.7 s
    p = _pose(
        lean=2 + 35 * c,  # torso forward, arms forward for balance, thighs to horizontal
        shn=12 + 75 * c,
        eln=10,
        shf=-10 + 90 * c,
        elf=10,
        hpn=6 + 82 * c,
        knn=-3 - 120 * c,
        hpf=-5 + 91 * c,
        knf=-2 - 118 * c,
    )
    return p, 0.0


# fmt: off
_KICK_KEYS = [
    (0.00, _NEUTRAL.copy()),
    (0.25, _pose(lean=8, shn=-25, eln=15, shf=35, elf=15, hpn=-30, knn=-75, hpf=0, knf=-8)),
    (0.45, _pose(lean=-15, shn=-45, eln=10, shf=70, elf=10, hpn=95, knn=-5, hpf=-5, knf=-5)),
    (0.65, _pose(lean=-5, shn=-20, eln=15, shf=40, elf=15, hpn=45, knn=-90, hpf=-3, knf=-5)),
    (1.00, _NEUTRAL.copy()),
]
# fmt: on


def _kick(t: float, s: float, side: int) -> tuple[np.ndarray, float]:
    # near leg: wind back with a bent knee, snap forward to hip height with the knee straight,
    # retract; arms counter-balance, torso leans back at the peak. One kick per 1.2 s.
    return _cyclic(t * s / 1.2, _KICK_KEYS), 0.0


# fmt: off
_THROW_KEYS = [
    (0.00, _NEUTRAL.copy()),
    # wind-up: throwing arm back and up, forearm vertical behind the head, other arm aims forward,
    # step forward with the far leg, lean back
    (0.30, _pose(lean=-12, shn=-140, eln=-40, shf=75, elf=10, hpn=-15, knn=-10, hpf=25, knf=-5)),
    # release: the arm comes over the top (-140 -> -250 = 110 deg forward), lean forward
    (0.48, _pose(lean=18, shn=-250, eln=5, shf=-10, elf=15, hpn=-20, knn=-15, hpf=28, knf=-8)),
    (0.62, _pose(lean=25, shn=-320, eln=15, shf=-30, elf=15, hpn=-20, knn=-20, hpf=25, knf=-8)),
    (1.00, _pose(shn=_NEUTRAL[_SHN] - 360)),  # back to hanging, the long way round (overhand)
]
# fmt: on


def _throw(t: float, s: float, side: int) -> tuple[np.ndarray, float]:
    return _cyclic(t * s / 1.4, _THROW_KEYS), 0.0


_ACTIONS: dict[str, Motion] = {
    "wave": _wave,
    "jump": _jump,
    "run": _run,
    "cartwheel": _cartwheel,
    "crouch": _crouch,
    "kick": _kick,
    "throw": _throw,
}
assert tuple(_ACTIONS) == CLASSES
_TRANSLATING = {"run", "cartwheel"}  # actions that move the actor across the scene


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


def _activity_weights(rng: np.random.Generator, T: int) -> np.ndarray:
    """Per-frame weight of walking (vs idling) of a non-performing actor, float64[T] in [0, 1].

    A two-state Markov chain (mean stay 40 frames) smoothed over 7 frames so gaits blend.
    """
    state = float(rng.random() < 0.5)
    raw = np.empty(T)
    for f in range(T):
        if rng.random() < 1 / 40:
            state = 1 - state
        raw[f] = state
    pad = np.pad(raw, 3, mode="edge")  # [T+6]
    return np.convolve(pad, np.ones(7) / 7, mode="valid")  # [T]


def _simulate_actor(
    rng: np.random.Generator,
    cfg: SynthConfig,
    T: int,
    body: _Body,
    ground: float,
    x0: float,
    action: tuple[int, int, int] | None,
) -> _Track:
    """Pose, position and tight box of one actor on every frame.

    ``action = (class, s, e)`` makes the actor perform ``CLASSES[class]`` on frames ``s..e``
    (inclusive), blending in and out over the first and last 3 frames of the stretch (so the GT
    covers the whole visible onset and offset); idle/walk otherwise.
    """
    W, Hf, fps = cfg.width, cfg.height, cfg.fps
    H = body.height
    walk_w = _activity_weights(rng, T)  # [T]
    speed = rng.uniform(0.85, 1.15)  # tempo of this actor
    side = int(rng.integers(2))
    t0 = rng.uniform(0, 10)  # phase of the idle/walk cycles
    facing = 1.0 if rng.random() < 0.5 else -1.0
    act_w = np.zeros(T)
    if action is not None:
        _, s, e = action
        f = np.arange(s, e + 1)
        act_w[s : e + 1] = np.minimum(1.0, np.minimum(f - s + 1, e - f + 1) / 4.0)
    stand_h = _extent(_skeleton(_NEUTRAL, body), body)
    stand_h = stand_h[3] - stand_h[1]
    lo, hi = 0.3 * H, W - 0.3 * H  # keep the hip inside; limbs may leave the frame
    x = float(np.clip(x0, lo, hi))
    joints = np.empty((T, 12, 2))
    boxes = np.empty((T, 4))
    raw_area = np.empty(T)
    deform = np.empty(T)
    line_r, ring_r, disc_r = _ink_reach(body.thickness)  # visible ink beyond the geometry
    head_r = body.head_r * H + (disc_r if body.head_filled else ring_r)
    for fi in range(T):
        t = fi / fps
        pi, _ = _idle(t + t0, speed, side)
        pw, vw = _walk(t + t0, speed, side)
        p = (1 - walk_w[fi]) * pi + walk_w[fi] * pw
        v = walk_w[fi] * vw
        if act_w[fi] > 0:
            assert action is not None
            cls, s, _ = action
            if fi == s and CLASSES[cls] in _TRANSLATING:
                facing = 1.0 if x < W / 2 else -1.0  # translating actions head for the open side
            pa, va = _ACTIONS[CLASSES[cls]]((fi - s) / fps, speed, side)
            # blend the rotation towards the nearest full turn, not back through 0
            p[_ROT] = pa[_ROT] - ((pa[_ROT] + 180) % 360 - 180)
            p = (1 - act_w[fi]) * p + act_w[fi] * pa
            v = (1 - act_w[fi]) * v + act_w[fi] * va
        j = _skeleton(p, body)  # [12,2] body units, y up
        ext = _extent(j, body)
        deform[fi] = _deformation(p, ext, stand_h)
        joints[fi, :, 0] = x + facing * j[:, 0] * H
        joints[fi, :, 1] = ground - j[:, 1] * H
        boxes[fi], raw_area[fi] = _visible_box(joints[fi], head_r, line_r, W, Hf)
        x += facing * v * H / fps
        if not lo <= x <= hi:  # turn around at the border
            x = float(np.clip(x, lo, hi))
            facing = -facing
    return _Track(body, ground, joints, body.head_r * H, boxes, raw_area, deform, action)


# --------------------------------------------------------------------------------------------
# Scenes, actors' looks, rendering
# --------------------------------------------------------------------------------------------


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


def _texture_cdf(bg: np.ndarray) -> np.ndarray:
    """CDF over pixels (float64[H*W]) proportional to the scene's blurred gradient magnitude:
    where the simulated detector's textured false positives are centred."""
    gray = bg.mean(axis=2)  # [H,W]
    mag = np.hypot(cv2.Sobel(gray, cv2.CV_32F, 1, 0), cv2.Sobel(gray, cv2.CV_32F, 0, 1))
    mag = cv2.GaussianBlur(mag, (9, 9), 3).astype(np.float64).ravel() + 1e-6  # [H*W]
    cdf = np.cumsum(mag)
    return cdf / cdf[-1]


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


# --------------------------------------------------------------------------------------------
# The simulated detector
# --------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------
# One video
# --------------------------------------------------------------------------------------------


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
    """First and last frame (inclusive) of a contiguous action covering 40-100 % (config) of T."""
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
    tracks: list[_Track] = []
    for a in range(n_act):
        depth = rng.uniform(0, 1)  # 0 far .. 1 near
        ground = (0.72 + 0.24 * depth) * H
        height_px = (0.33 + 0.25 * depth) * H * rng.uniform(0.92, 1.08)
        body = _actor_look(rng, height_px, scene_px)
        x0 = (slots[a] + rng.uniform(0.25, 0.75)) * W / n_act
        tracks.append(_simulate_actor(rng, cfg, T, body, ground, x0, actions[a]))
    order = sorted(range(n_act), key=lambda a: tracks[a].ground)  # far first (painter's order)

    # pixels: scene, actors, then sensor noise over everything
    base = np.clip(bg, 0, 255).astype(np.uint8)
    frames = np.empty((T, H, W, 3), np.uint8)
    for f in range(T):
        img = base.copy()
        for a in order:
            _draw(img, tracks[a], f)
        frames[f] = img
    if cfg.frame_noise > 0:
        noise = noise_rng.standard_normal(frames.shape, dtype=np.float32) * cfg.frame_noise
        frames = np.clip(frames.astype(np.float32) + noise, 0, 255).astype(np.uint8)
    write_video(Path(task.root) / task.path, frames, fps=cfg.fps, crf=cfg.crf)

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
    dframe, dboxes, dscores = _simulate_detector(
        det_rng, tracks, hidden, _texture_cdf(bg), W, H, T, cfg.detector
    )
    return {
        "video": task.video,
        "path": task.path,
        "nframes": T,
        "tubes": tubes,
        "scene": SCENES[scene],
        "frame": dframe,
        "boxes": dboxes,
        "scores": dscores,
    }


def _init_worker() -> None:
    cv2.setNumThreads(1)  # one process per core already


# --------------------------------------------------------------------------------------------
# Dataset
# --------------------------------------------------------------------------------------------


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
    """Generate SynthActors into ``out_dir`` and return it (see the module docstring for layout).

    Everything is written into a temporary sibling folder that is renamed to ``out_dir`` at the
    end, so an interrupted or failed run leaves nothing half-written (and a previous dataset at
    ``out_dir`` intact until the new one is complete). An existing ``out_dir`` that is not a
    SynthActors dataset and not empty is refused rather than replaced. ``workers`` processes
    render the videos; the result does not depend on their number.
    """
    cfg = config if config is not None else SynthConfig()
    out = Path(out_dir).absolute()
    if out.exists() and not _is_synthactors(out) and (not out.is_dir() or any(out.iterdir())):
        raise FileExistsError(f"{out} exists and is not a SynthActors dataset; not replacing it")
    out.parent.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
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
            "generator": "wsal.data.synthetic",
            "version": GENERATOR_VERSION,
            "config_hash": config_hash(cfg),
            "config": cfg.to_dict(),
            "scenes": {r["video"]: r["scene"] for r in results},
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
            # numpy, OpenCV and PyAV through this module.
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
    # Plain np.savez: the whole folder is renamed into place at the end, which is what makes the
    # dataset atomic (and keeps torch, which wsal.structures.atomic_savez pulls in, out of here).
    with open(root / "detections.npz", "wb") as fh:
        np.savez(
            fh,
            video=np.repeat(np.array([t.video for t in tasks], dtype=str), counts),  # str[N]
            frame=np.concatenate([r["frame"] for r in results]).astype(np.int64),  # [N]
            boxes=np.concatenate([r["boxes"] for r in results]).astype(np.float32).reshape(-1, 4),
            scores=np.concatenate([r["scores"] for r in results]).astype(np.float32),  # [N]
        )


def _publish(tmp: Path, out: Path) -> None:
    """Rename the finished ``tmp`` to ``out``, swapping out a previous dataset there."""
    if not out.exists():
        os.rename(tmp, out)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
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
    """
    cfg = config if config is not None else SynthConfig()
    root = Path(root).absolute()
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
    return generate(root, cfg, workers=workers, progress=progress)


# --------------------------------------------------------------------------------------------
# Statistics
# --------------------------------------------------------------------------------------------


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of xyxy boxes ``a [G, 4]`` and ``b [N, 4]`` with continuous areas -> ``[G, N]``."""
    lt = np.maximum(a[:, None, :2], b[None, :, :2])  # [G,N,2]
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])  # [G,N,2]
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)  # [G,N]
    area_a = np.prod(a[:, 2:] - a[:, :2], axis=1)  # [G]
    area_b = np.prod(b[:, 2:] - b[:, :2], axis=1)  # [N]
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-9)


def stats(root: str | os.PathLike, iou: float = 0.5) -> dict[str, Any]:
    """Summary of a generated dataset, computed from its files on disk.

    Returns ``videos`` (per split), ``tubes``, ``mean_tube_length`` (frames),
    ``mean_action_fraction`` (tube length / video length), ``frames``, ``detections``,
    ``detections_per_frame``, ``recall`` (fraction of GT boxes with a detection of IoU >= ``iou``,
    continuous areas, in the same frame), ``recall_per_class``, ``context_rate`` (fraction of
    videos in their class's scene, from ``meta.json``) and ``wall_time_s`` when known.
    """
    root = Path(root)
    index = read_wsal_json(root / "annotations.json")
    with np.load(root / "detections.npz") as z:
        dv, df, db = z["video"], z["frame"], z["boxes"]
    # rows are grouped by video: one slice per video
    uniq, first, cnt = np.unique(dv, return_index=True, return_counts=True)
    rows = {str(v): slice(int(s), int(s + c)) for v, s, c in zip(uniq, first, cnt)}
    hit = np.zeros(len(index.labels))
    tot = np.zeros(len(index.labels))
    lengths, fracs = [], []
    for vid, info in index.videos.items():
        sl = rows.get(vid, slice(0, 0))
        vf, vb = df[sl], db[sl].astype(np.float64)
        for tube in info.tubes:
            lengths.append(len(tube.frames))
            fracs.append(len(tube.frames) / info.nframes)
            if len(vf):
                ious = _iou(tube.boxes.astype(np.float64), vb)  # [n,N]
                ious[tube.frames[:, None] != vf[None, :]] = 0  # only detections of that frame
                hit[tube.label] += int(np.sum(ious.max(axis=1) >= iou))
            tot[tube.label] += len(tube.frames)
    frames = sum(v.nframes for v in index.videos.values())
    out: dict[str, Any] = {
        "videos": {k: len(v) for k, v in index.splits.items()},
        "classes": list(index.labels),
        "tubes": len(lengths),
        "mean_tube_length": round(float(np.mean(lengths)), 2) if lengths else 0.0,
        "mean_action_fraction": round(float(np.mean(fracs)), 3) if fracs else 0.0,
        "frames": int(frames),
        "detections": len(df),
        "detections_per_frame": round(len(df) / max(frames, 1), 3),
        "recall": round(float(hit.sum() / max(tot.sum(), 1)), 4),
        "recall_per_class": {
            lab: round(float(h / t), 4) if t else None for lab, h, t in zip(index.labels, hit, tot)
        },
        "iou": iou,
    }
    try:
        meta = json.loads((root / "meta.json").read_text())
    except (OSError, ValueError):
        meta = {}
    scenes = meta.get("scenes")
    if scenes:
        ok = [
            scenes.get(v) == SCENES[CLASSES.index(index.labels[info.tubes[0].label])]
            for v, info in index.videos.items()
            if info.tubes
        ]
        out["context_rate"] = round(float(np.mean(ok)), 3) if ok else None
    if "wall_time_s" in meta:
        out["wall_time_s"] = meta["wall_time_s"]
    return out


def format_stats(st: dict[str, Any]) -> str:
    """Human-readable lines of :func:`stats` output (what the CLI prints)."""
    per = ", ".join(f"{k} {v:.3f}" for k, v in st["recall_per_class"].items() if v is not None)
    lines = [
        "  videos:       " + ", ".join(f"{k} {v}" for k, v in st["videos"].items()),
        f"  GT tubes:     {st['tubes']} (mean length {st['mean_tube_length']:.1f} frames, "
        f"{100 * st['mean_action_fraction']:.1f} % of the video)",
        f"  frames:       {st['frames']}",
        f"  detections:   {st['detections']} ({st['detections_per_frame']:.2f} per frame)",
        f"  detector recall @ IoU {st['iou']}: {st['recall']:.3f}",
        f"    per class:  {per}",
    ]
    if st.get("context_rate") is not None:
        lines.append(f"  in-context scenes: {100 * st['context_rate']:.1f} % of videos")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    d = SynthConfig()
    ap = argparse.ArgumentParser(
        prog="python -m wsal.data.synthetic",
        description="Generate the SynthActors benchmark (videos, annotations, simulated "
        "detections) and print what was produced.",
    )
    ap.add_argument("--out", required=True, help="dataset folder to write (replaced atomically)")
    ap.add_argument("--seed", type=int, default=d.seed)
    ap.add_argument(
        "--classes",
        default=",".join(d.classes),
        help=f"comma-separated subset of {','.join(CLASSES)}",
    )
    ap.add_argument("--videos-per-class-train", type=int, default=d.videos_per_class_train)
    ap.add_argument("--videos-per-class-test", type=int, default=d.videos_per_class_test)
    ap.add_argument("--width", type=int, default=d.width)
    ap.add_argument("--height", type=int, default=d.height)
    ap.add_argument("--min-frames", type=int, default=d.min_frames)
    ap.add_argument("--max-frames", type=int, default=d.max_frames)
    ap.add_argument("--fps", type=float, default=d.fps)
    ap.add_argument("--min-actors", type=int, default=d.min_actors)
    ap.add_argument("--max-actors", type=int, default=d.max_actors)
    ap.add_argument("--hard", action="store_true", help="distractors may perform another class")
    ap.add_argument("--hard-prob", type=float, default=d.hard_prob)
    ap.add_argument("--context-prob", type=float, default=d.context_prob)
    ap.add_argument(
        "--fp-per-frame",
        type=float,
        default=d.detector.fp_per_frame,
        help="simulated detector: mean transient false positives per frame",
    )
    ap.add_argument(
        "--miss-deform",
        type=float,
        default=d.detector.miss_deform,
        help="simulated detector: added miss probability per unit deformation",
    )
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument(
        "--reuse",
        action="store_true",
        help="keep an existing dataset at --out if it was made with the same config",
    )
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args(argv)
    det = DetectorNoise(fp_per_frame=args.fp_per_frame, miss_deform=args.miss_deform)
    try:
        cfg = SynthConfig(
            classes=args.classes,
            videos_per_class_train=args.videos_per_class_train,
            videos_per_class_test=args.videos_per_class_test,
            width=args.width,
            height=args.height,
            min_frames=args.min_frames,
            max_frames=args.max_frames,
            fps=args.fps,
            min_actors=args.min_actors,
            max_actors=args.max_actors,
            hard=args.hard,
            hard_prob=args.hard_prob,
            context_prob=args.context_prob,
            detector=det,
            seed=args.seed,
        )
    except ValueError as e:
        ap.error(str(e))
    t0 = time.perf_counter()
    if args.reuse:
        out = ensure_synthactors(args.out, cfg, workers=args.workers, progress=not args.no_progress)
    else:
        out = generate(args.out, cfg, workers=args.workers, progress=not args.no_progress)
    wall = time.perf_counter() - t0
    st = stats(out)
    print(f"SynthActors v{GENERATOR_VERSION} -> {out}")
    print(
        f"  config:       seed {cfg.seed}, {len(cfg.classes)} classes, "
        f"{cfg.width}x{cfg.height}, {cfg.min_frames}-{cfg.max_frames} frames @ {cfg.fps:g} fps, "
        f"{cfg.min_actors}-{cfg.max_actors} actors, hard={cfg.hard}, "
        f"context_prob={cfg.context_prob:g} (hash {config_hash(cfg)})"
    )
    print(format_stats(st))
    print(f"  wall time:    {wall:.1f} s ({args.workers} workers)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
