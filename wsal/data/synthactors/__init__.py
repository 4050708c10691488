"""SynthActors: wsal's embedded benchmark, generated from a seed (DESIGN §5).

A dataset of short videos in which articulated stick-figure actors perform one of seven actions
defined purely by joint motion (``wave``, ``jump``, ``run``, ``cartwheel``, ``crouch``, ``kick``,
``throw``), idle or walk otherwise, on textured scenes. It is written **exactly like a real
dataset**, so the real-data code path is the one exercised::

    OUT/
      videos/<class>/<class>_NNNN.mp4   H.264 (``wsal.data.video.write_video``)
      annotations.json                 wsal annotation JSON (``write_wsal_json``): labels, splits,
                                       per-video nframes/size/fps/labels, GT tubes with points
      detections.npz                   the *simulated* actor detector (format below)
      meta.json                        generator version, every parameter, their hash, stats

Conventions: frames are 0-based; boxes are ``xyxy`` float pixels (``x2``/``y2`` are the right and
bottom edges, continuous coordinates, clipped to ``[0, W] x [0, H]``); points are ``(x, y)`` pixels.

Regimes. :data:`PRESETS` name the real ones: ``trimmed`` (like UCF Sports, the default: the action
spans the whole video, one GT tube per video) and ``untrimmed`` (like UCF101-24: the action spans
the whole video in 55 % of the videos, otherwise 15-100 % of it, and a distractor may co-perform
the class). ``SynthConfig.preset(name, **overrides)`` builds one.

Ground truth. A GT tube is a performer's tight box on exactly the frames of its action, one
contiguous stretch. The box encloses the visible ink of every limb and the head (pixels of at
least 25 % coverage: antialiased strokes are measured once on the installed OpenCV), limited to the
part inside the frame. The tube's point on each frame is the torso centre jittered by 3 % of the
actor's height (kept inside the box). Distractors idle or walk; a co-performer does the video's
class on its own stretch (a further tube with the same label); in ``hard`` mode a distractor may
perform another class, and the video then has two labels.

Detections. ``detections.npz`` is **not** the output of a learned detector: it is a *simulated,
class-agnostic actor detector* that behaves like a real one *before* score thresholding
(:class:`DetectorNoise`), applied to every actor (performers and distractors alike): several
jittered proposals on each actor in each frame, scored lower for deformed poses (``cartwheel``
mid-rotation, deep ``crouch``), hidden actors and loose boxes (a hard pose gets low-scored boxes,
not none); a true miss (no box at all) only at a small rate; tens of person-sized background
proposals per frame (half of them on textured parts of the scene, plus some that fire persistently
on the same clutter) with low scores. The file has the layout a real detector produces:
``video str[N]`` (unicode), ``frame int64[N]`` (0-based), ``boxes float32[N, 4]`` (xyxy pixels,
clipped), ``scores float32[N]`` in ``(0, 1]``; no ``labels`` (class-agnostic); written compressed.
Rows are grouped by video (in annotation order) and sorted by frame (then by descending score) in a
video.

Determinism. Every video draws from its own ``numpy`` generators seeded by ``(seed, class, split,
index)``, so the output is identical for any worker count, and a video depends only on those and
the generation parameters (in hard mode also on the class list).

Run ``python -m wsal.data.synthactors --out DIR [--preset untrimmed]`` (see ``--help``), or call
:func:`generate` / :func:`ensure_synthactors`. ``docs/synthactors.md`` describes the classes and the noise model and
lists what the default configuration produces.

Modules, each importing only those above it: ``config`` (:class:`SynthConfig`,
:class:`DetectorNoise`, :func:`config_hash`), ``skeleton`` (the stick figure and an actor's track),
``render`` (scenes, looks, drawing, writing a video), ``motion`` (the classes' motion and an
actor's trajectory), ``detector_sim`` (the simulated detector), ``statistics`` (:func:`stats`,
:func:`gt_statistics` of any dataset), ``generator`` (:func:`generate`,
:func:`ensure_synthactors`, the on-disk layout) and ``__main__`` (the CLI).
"""

from wsal.data.synthactors.config import (
    CLASSES,
    GENERATOR_VERSION,
    PRESETS,
    SCENES,
    DetectorNoise,
    SynthConfig,
    config_hash,
)
from wsal.data.synthactors.generator import ensure_synthactors, generate
from wsal.data.synthactors.statistics import (
    format_comparison,
    format_stats,
    gt_statistics,
    stats,
)

__all__ = [
    "CLASSES",
    "SCENES",
    "GENERATOR_VERSION",
    "PRESETS",
    "DetectorNoise",
    "SynthConfig",
    "config_hash",
    "generate",
    "ensure_synthactors",
    "stats",
    "format_stats",
    "gt_statistics",
    "format_comparison",
]
