"""SynthActors motion: each class as a function of time that gives a pose, the idle and walking
gaits between actions, and an actor's trajectory through a video (:func:`_simulate_actor`)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

from wsal.data.synthactors.config import CLASSES, SynthConfig
from wsal.data.synthactors.render import _ink_reach
from wsal.data.synthactors.skeleton import (
    _ELF,
    _ELN,
    _LEAN,
    _NEUTRAL,
    _ROT,
    _SHF,
    _SHN,
    _Body,
    _deformation,
    _extent,
    _pose,
    _skeleton,
    _Track,
    _visible_box,
)


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
