"""SynthActors parameters: the class and scene lists, :class:`SynthConfig` with its validation,
the simulated detector's :class:`DetectorNoise`, and :func:`config_hash`, the cache key of a
generated dataset."""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any

__all__ = [
    "CLASSES",
    "SCENES",
    "GENERATOR_VERSION",
    "PRESETS",
    "DetectorNoise",
    "SynthConfig",
    "config_hash",
]

#: Bump whenever a change to this package changes what is generated for a given config (cache key).
GENERATOR_VERSION = "2"  # 2: detector before thresholding, presets, co-performers

#: The action classes, in label order. Each is defined by joint motion only (see
#: ``wsal.data.synthactors.motion``).
CLASSES: tuple[str, ...] = ("wave", "jump", "run", "cartwheel", "crouch", "kick", "throw")

#: Scene types. ``SCENES[i]`` is the context scene of ``CLASSES[i]``: a video of class i is shot in
#: it with probability ``context_prob`` (otherwise in a uniformly random scene, possibly also i).
SCENES: tuple[str, ...] = ("meadow", "stripes", "checker", "sand", "diagonal", "blobs", "indoor")


@dataclass
class DetectorNoise:
    """Noise model of the simulated class-agnostic actor detector, which stands for a real person
    detector's output *before* score thresholding (what STIL links: every box of a frame).

    Deformation ``d`` in [0, 1] of a pose is ``max(d_rot, d_comp)`` where ``d_rot = (1 - cos φ) / 2``
    for the tilt φ of the torso from upright (0 upright, 0.5 horizontal, 1 upside down) and
    ``d_comp`` is the fraction of standing height lost (crouching). ``hidden`` ``h`` in [0, 1] is the
    fraction of the actor's box covered by nearer actors' boxes or outside the frame.

    Per actor and frame: a **true miss** (no box at all) with probability
    ``miss_base + miss_hidden * h``; otherwise ``proposals_per_actor`` jittered boxes. The actor's
    quality ``q = score_upright - score_deform * d - score_hidden * h + N(0, score_std)`` is shared
    by its proposals; each proposal scores ``q - score_loc * (1 - IoU) + N(0, proposal_score_std)``
    with ``IoU`` its overlap with the true box. A hard pose therefore gets low-scored boxes, not
    none. Per frame ``Poisson(fp_per_frame)`` background proposals, per video
    ``Poisson(fp_static_per_video)`` persistent ones.

    Fields:
        proposals_per_actor: jittered boxes on each detected actor per frame (the first one tight).
        miss_base: probability that a fully visible actor gets no box at all on a frame.
        miss_hidden: added true-miss probability per unit of ``hidden``.
        shift_std: std of the tight proposal's centre shift, fraction of the box width/height.
        scale_std: std of the log of its width/height scale factors (multiplicative jitter).
        pixel_std: std of the additive per-coordinate jitter, pixels.
        deform_jitter: ``shift_std`` and ``scale_std`` are multiplied by ``1 + deform_jitter * d``.
        proposal_spread: the other proposals' jitter is ``1 + proposal_spread * U(0, 1)`` times the
            tight one's (looser boxes, as around a real detection before NMS).
        score_upright: mean quality ``q`` of an upright, fully visible actor.
        score_deform: drop of ``q`` per unit of deformation ``d``.
        score_hidden: drop of ``q`` per unit of ``hidden``.
        score_std: std of the Gaussian noise of ``q`` (per actor and frame).
        score_loc: score drop of a proposal per unit of ``1 - IoU`` with the true box.
        proposal_score_std: std of the Gaussian score noise of each proposal.
        fp_per_frame: Poisson mean of background proposals per frame.
        fp_texture_frac: fraction of background proposals centred on textured pixels (sampled in
            proportion to the blurred gradient magnitude of the empty scene), the rest uniformly.
        fp_score_mean: mean score of a background proposal.
        fp_score_std: std of a background proposal's score.
        fp_static_per_video: Poisson mean of *persistent* false positives per video, each a fixed
            box on textured clutter that fires on a frame with probability ``fp_static_rate`` and
            scores ``fp_score_mean + 0.1`` on average (what a real detector does on a coat rack).
        fp_static_rate: per-frame firing probability of a persistent false positive.
        min_score: lower clip of every score (scores lie in ``[min_score, 1]``).
    """

    proposals_per_actor: int = 6
    miss_base: float = 0.01
    miss_hidden: float = 0.05
    shift_std: float = 0.04
    scale_std: float = 0.06
    pixel_std: float = 0.5
    deform_jitter: float = 1.5
    proposal_spread: float = 2.0
    score_upright: float = 0.9
    score_deform: float = 0.6
    score_hidden: float = 0.4
    score_std: float = 0.06
    score_loc: float = 0.5
    proposal_score_std: float = 0.03
    fp_per_frame: float = 16.0
    fp_texture_frac: float = 0.5
    fp_score_mean: float = 0.2
    fp_score_std: float = 0.1
    fp_static_per_video: float = 0.5
    fp_static_rate: float = 0.5
    min_score: float = 0.01

    def __post_init__(self) -> None:
        for f in fields(self):
            v = float(getattr(self, f.name))
            if not math.isfinite(v) or v < 0:
                raise ValueError(f"DetectorNoise.{f.name} must be finite and >= 0, got {v}")
            setattr(self, f.name, v)
        k = self.proposals_per_actor
        if k != int(k) or k < 1:
            raise ValueError(f"DetectorNoise.proposals_per_actor must be an integer >= 1, got {k}")
        self.proposals_per_actor = int(k)
        for name in ("miss_base", "fp_texture_frac", "fp_static_rate"):
            if getattr(self, name) > 1:
                raise ValueError(
                    f"DetectorNoise.{name} is a probability, got {getattr(self, name)}"
                )
        if self.miss_base + self.miss_hidden > 1:
            raise ValueError("DetectorNoise: need miss_base + miss_hidden <= 1 (a probability)")
        if not 0 < self.min_score <= 1:
            raise ValueError(f"DetectorNoise.min_score must be in (0, 1], got {self.min_score}")


#: The regimes of the real benchmarks, as the :class:`SynthConfig` fields they set (every other
#: field keeps its default). Targets measured from the real GT files with
#: :func:`wsal.data.synthactors.statistics.gt_statistics` (side by side in docs/synthactors.md):
#:
#: - ``trimmed``, like UCF Sports: the GT covers 100 % of every video, one tube per video. The
#:   default (``SynthConfig()`` is this preset): a video-length linker's tubes can match the GT, as
#:   in the setting where STIL and actor attention report their best numbers.
#: - ``untrimmed``, like UCF101-24: GT coverage of a video (union of its tubes) has median 100 %,
#:   mean 83 %, 10th percentile 36 %, 64 % of the videos >= 90 %; in the 39 % it does not cover
#:   wholly, coverage spreads roughly uniformly below 1 (deciles 0.26 ... 0.89). 22 % of videos have
#:   more than one GT tube, always of one class: with 1-3 actors, each distractor co-performs with
#:   probability 0.25 (``P(> 1 tube) = (3p - p^2) / 3 = 0.23``). Co-performers' stretches widen
#:   the union, so ``full_action_prob = 0.55`` and ``U(0.15, 1)`` (found by drawing the stretches
#:   alone, 6000 videos: mean 0.84, 10th percentile 0.39, 66 % >= 0.9). Not matched: UCF101-24's
#:   tails of 4-10 tubes (mean 1.40 tubes per video; here at most 3 actors, mean 1.25).
PRESETS: dict[str, dict[str, Any]] = {
    "trimmed": {
        "min_action_frac": 1.0,
        "max_action_frac": 1.0,
        "full_action_prob": 0.0,
        "co_performer_prob": 0.0,
        "min_actors": 1,
        "max_actors": 3,
    },
    "untrimmed": {
        "min_action_frac": 0.15,
        "max_action_frac": 1.0,
        "full_action_prob": 0.55,
        "co_performer_prob": 0.25,
        "min_actors": 1,
        "max_actors": 3,
    },
}


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
        min_action_frac, max_action_frac: fraction of the video covered by the action, uniform
            in this range (when the action does not span the whole video, see below).
        full_action_prob: probability that an action spans the whole video; otherwise its share
            is drawn from ``[min_action_frac, max_action_frac]``.
        co_performer_prob: probability that a distractor performs the video's class too, on its
            own stretch: a further GT tube with the same label (UCF101-24's group actions).
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
    min_action_frac: float = 1.0
    max_action_frac: float = 1.0
    full_action_prob: float = 0.0
    co_performer_prob: float = 0.0
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
            "full_action_prob",
            "co_performer_prob",
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
        for name in ("full_action_prob", "co_performer_prob", "hard_prob", "context_prob"):
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

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> SynthConfig:
        """The config of preset ``name`` (a key of :data:`PRESETS`), with ``overrides`` (any
        fields) applied on top. An empty or unknown name raises ``ValueError`` naming the valid
        ones."""
        if not isinstance(name, str) or name not in PRESETS:
            raise ValueError(
                f"unknown SynthActors preset {name!r}: valid presets are "
                + ", ".join(repr(k) for k in PRESETS)
            )
        return cls(**{**PRESETS[name], **overrides})


def config_hash(config: SynthConfig) -> str:
    """Cache key of a config: sha256 of every parameter and :data:`GENERATOR_VERSION` (16 hex)."""
    blob = json.dumps({"version": GENERATOR_VERSION, "config": config.to_dict()}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]
