"""The Hydra configs outside ``train.py``: compose them and instantiate one stage (DESIGN §3).

The command-line tools build their stages from the same ``conf/`` files as ``train.py``
(``_target_`` is the registry), e.g.::

    cfg = compose(["linker=viterbi", override("linker.num_tubes", 5)])
    linker = instantiate_node(cfg.linker)

:func:`conf_dir` finds ``conf/`` (``$WSAL_CONF``, else the one beside the ``wsal`` package in a
source checkout); :func:`compose` uses Hydra's compose API, leaving any Hydra already initialised
(a ``train.py`` run, a test) as it was, so it can be called any number of times.
"""

from __future__ import annotations

import math
import os
import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra import compose as hydra_compose
from hydra import initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, ListConfig, OmegaConf

from wsal.errors import InputError

__all__ = [
    "CONF_ENV",
    "RULES",
    "ConfigError",
    "INFERENCE_KEYS",
    "inference_overrides",
    "Rule",
    "check_config",
    "compose",
    "conf_dir",
    "instantiate_node",
    "instantiate_stage",
    "override",
]

#: Environment variable naming the config folder (default: ``conf/`` of the source checkout).
CONF_ENV = "WSAL_CONF"


def conf_dir() -> Path:
    """The config folder ``train.py`` uses: ``$WSAL_CONF`` or ``<checkout>/conf`` (absolute)."""
    env = os.environ.get(CONF_ENV)
    path = Path(env) if env else Path(__file__).resolve().parents[1] / "conf"
    if not (path / "config.yaml").is_file():
        raise FileNotFoundError(
            f"wsal's Hydra configs not found: {path}/config.yaml does not exist. Run from a "
            f"source checkout (pip install -e .) or set {CONF_ENV} to its conf/ folder"
        )
    return path.resolve()


def compose(
    overrides: Sequence[str] = (), config_name: str = "config", output_dir: str | None = None
) -> DictConfig:
    """The composed config (``conf/<config_name>.yaml`` with ``overrides``, Hydra's syntax).

    Outside a Hydra run ``paths.output_dir`` (``${hydra:runtime.output_dir}`` in the config) is
    set to ``output_dir`` (default ``outputs/<task_name>``) so that resolving it does not fail;
    an override of ``paths.output_dir`` wins. The ``hydra`` node is not included.
    """
    pre: list[str] = []
    if output_dir is not None or not HydraConfig.initialized():
        pre.append(override("paths.output_dir", output_dir or "outputs/${task_name}"))
    gh = GlobalHydra.instance()
    previous = gh.hydra if gh.is_initialized() else None  # e.g. a test's or train.py's
    gh.clear()
    try:
        with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
            return hydra_compose(config_name=config_name, overrides=[*pre, *overrides])
    finally:
        GlobalHydra.instance().clear()
        if previous is not None:
            GlobalHydra.instance().initialize(previous)


def override(key: str, value: Any) -> str:
    """A Hydra override ``key=value`` for a Python value: None -> ``null``, bools, numbers,
    lists/tuples, and strings quoted (any characters, e.g. paths with ``,`` or ``=``, or
    ``"{:05d}.png"``; ``${...}`` stays an interpolation)."""
    return f"{key}={_literal(value)}"


def _literal(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_literal(v) for v in value) + "]"
    text = str(value)
    # quoted string: escape quotes, and double the backslashes that precede a quote or the end
    text = re.sub(r"(\\*)('|$)", lambda m: m.group(1) * 2 + ("\\'" if m.group(2) else ""), text)
    return f"'{text}'"


def instantiate_node(
    node: DictConfig | Mapping[str, Any], *, drop: Sequence[str] = (), **kwargs: Any
) -> Any:
    """Instantiate one stage's node (e.g. ``cfg.linker``), interpolations resolved, without the
    keys in ``drop`` (notes for the composing code, e.g. the actor linker's ``default_tracker``)
    and with ``kwargs`` over the node's values. An error the constructor raises comes out as
    itself (not wrapped by Hydra), so a command line shows its message."""
    plain: dict[str, Any] = (
        OmegaConf.to_container(node, resolve=True)  # type: ignore[assignment]
        if isinstance(node, DictConfig)
        else dict(node)
    )
    for key in drop:
        plain.pop(key, None)
    try:
        return instantiate(plain, **kwargs)
    except InstantiationException as e:
        if e.__cause__ is not None:
            raise e.__cause__ from None
        raise


def instantiate_stage(group: str, overrides: Sequence[str] = (), **kwargs: Any) -> Any:
    """The stage of config group ``group`` (``dataset``, ``detector``, ``linker``, ...) composed
    with ``overrides`` and instantiated (:func:`instantiate_node`, ``kwargs`` passed on)."""
    return instantiate_node(compose(overrides)[group], **kwargs)


# ------------------------------------------------------------------------------- value checks
class ConfigError(InputError):
    """A config value that cannot work, named by its full key: raised before any work (bad
    input: ``train.py``/``eval.py`` end with its one line and exit status 2)."""


@dataclass(frozen=True)
class Rule:
    """What a config key accepts.

    kind: ``int``, ``number`` (int or float), ``bool``, ``str``, ``choice`` (one of ``choices``)
        or ``list`` (each item checked by ``item``; ``length`` items when given).
    lo / hi: inclusive bounds of a number (``lo_open`` / ``hi_open``: exclusive).
    nullable: None is accepted.
    """

    kind: str
    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    hi_open: bool = False
    choices: tuple[Any, ...] = ()
    nullable: bool = False
    item: Rule | None = None
    length: int | None = None

    def problem(self, value: Any) -> str | None:
        """Why ``value`` is refused (None: accepted)."""
        if value is None:
            return None if self.nullable else "must be set (null given)"
        if self.kind == "bool":
            return None if isinstance(value, bool) else "must be true or false"
        if self.kind == "str":
            return None if isinstance(value, str) else "must be a string"
        if self.kind == "choice":
            if value in self.choices:
                return None
            shown = " | ".join("null" if c is None else str(c) for c in self.choices)
            return f"must be one of {shown}"
        if self.kind == "list":
            if not isinstance(value, (list, tuple)):
                return "must be a list"
            if self.length is not None and len(value) != self.length:
                return f"must be a list of {self.length} items"
            for i, v in enumerate(value):
                why = self.item.problem(v) if self.item is not None else None
                if why:
                    return f"item {i} ({v!r}) {why}"
            return None
        is_int = isinstance(value, int) and not isinstance(value, bool)
        if self.kind == "int" and not is_int:
            return "must be an integer"
        if self.kind == "number" and not (is_int or isinstance(value, float)):
            return "must be a number"
        if isinstance(value, float) and not math.isfinite(value):
            return "must be finite"
        if self.lo is not None and (value <= self.lo if self.lo_open else value < self.lo):
            return f"must be {'>' if self.lo_open else '>='} {self.lo:g}" + self._range()
        if self.hi is not None and (value >= self.hi if self.hi_open else value > self.hi):
            return f"must be {'<' if self.hi_open else '<='} {self.hi:g}" + self._range()
        return None

    def _range(self) -> str:
        if self.lo is None or self.hi is None:
            return ""
        left, right = "(" if self.lo_open else "[", ")" if self.hi_open else "]"
        return f" (range {left}{self.lo:g}, {self.hi:g}{right})"


def _int(lo: float | None = None, hi: float | None = None, *, null: bool = False) -> Rule:
    return Rule("int", lo, hi, nullable=null)


def _num(
    lo: float | None = None,
    hi: float | None = None,
    *,
    lo_open: bool = False,
    hi_open: bool = False,
    null: bool = False,
) -> Rule:
    return Rule("number", lo, hi, lo_open, hi_open, nullable=null)


def _choice(*choices: Any) -> Rule:
    return Rule("choice", choices=choices, nullable=None in choices)


_BOOL = Rule("bool")
_STR = Rule("str")
_POS = _int(1)  # a count: at least one
_NONNEG = _int(0)  # workers, pictures: zero allowed
_FRACTION = _num(0, 1)  # probabilities, IoU thresholds, fractions
_IOU_LIST = Rule("list", item=_num(0, 1, lo_open=True))  # st-IoU thresholds: (0, 1]
_POSITIVE = _num(0, lo_open=True)

#: Every checked key (dotted, as in ``conf/``) and what it accepts. A key a config does not have
#: is not checked (each group's options have different keys); keys not listed are checked by
#: the constructor that takes them. The choices are those of the code (tests/test_bad_inputs_runs.py
#: compares them with the constants they mirror).
RULES: dict[str, Rule] = {
    # top level
    "seed": _int(),
    "fail_fast": _BOOL,
    # dataset (conf/dataset/*.yaml)
    "dataset.workers": _NONNEG,
    "dataset.progress": _BOOL,
    "dataset.preset": _choice(None, "trimmed", "untrimmed"),
    "dataset.seed": _int(),
    "dataset.videos_per_class_train": _NONNEG,
    "dataset.videos_per_class_test": _NONNEG,
    "dataset.width": _int(32),
    "dataset.height": _int(32),
    "dataset.min_frames": _int(4),
    "dataset.max_frames": _int(4),
    "dataset.hard": _BOOL,
    "dataset.context_prob": _FRACTION,
    "dataset.split": _int(1, null=True),
    "dataset.validate": _BOOL,
    "dataset.skip_invalid": _BOOL,
    # detector (conf/detector/*.yaml)
    "detector.score_thresh": _num(),
    "detector.nms_iou": _num(0, 1, null=True),
    "detector.max_per_frame": _POS,
    "detector.batch_frames": _POS,
    "detector.num_workers": _NONNEG,
    "detector.progress": _BOOL,
    "detector.resize": _POSITIVE,
    "detector.pad": Rule("list", item=_num(0), length=3),
    "detector.win_stride": _POS,
    "detector.scale": _num(1, lo_open=True),
    "detector.min_inside": _FRACTION,
    "detector.min_size": _int(1, null=True),
    "detector.max_size": _int(1, null=True),
    "detector.num_nodes": _POS,
    "detector.download": _BOOL,
    # linker (conf/linker/*.yaml)
    "linker.num_tubes": _POS,
    "linker.min_iou": _FRACTION,
    "linker.min_score": _num(),
    "linker.suppress_iou": _FRACTION,
    "linker.snap_iou": _num(0, 1, null=True),
    "linker.batch_seeds": _int(1, null=True),
    "linker.batch_videos": _POS,
    "linker.iou_weight": _num(0),
    "linker.trim": _BOOL,
    "linker.trim_thresh": _num(),
    "linker.cache_mb": _POSITIVE,
    "linker.progress": _BOOL,
    "linker.tracker_config.num_scales": _POS,
    "linker.tracker_config.scale_step": _num(1),
    "linker.tracker_config.scale_penalty": _num(0, 1, lo_open=True),
    "linker.tracker_config.scale_lr": _FRACTION,
    "linker.tracker_config.window_influence": _FRACTION,
    "linker.default_tracker.backbone": _choice("alexnet", "efficientnet_lite0"),
    # method (conf/method/*.yaml): actor attention
    "method.frozen_bn": _BOOL,
    "method.channels_last": _BOOL,
    "method.trainable_encoder": _BOOL,
    "method.cache_features": _BOOL,
    "method.feature_batch_size": _POS,
    "method.output_size": Rule("list", item=_POS, length=2),
    "method.dropout": _num(0, 1, hi_open=True),
    "method.attention": _choice("topk", "max", "mean"),
    "method.k": _POS,
    "method.supervision": _choice("weak", "box"),
    "method.test_score": _choice("softmax", "logit", "video"),
    "method.optimizer": _choice("sgd", "adam"),
    "method.lr": _POSITIVE,
    "method.momentum": _num(0, 1, hi_open=True),
    "method.weight_decay": _num(0),
    "method.lr_step": _POS,
    "method.lr_gamma": _POSITIVE,
    # method: STIL and its baselines
    "method.C": _POSITIVE,
    "method.loss": _choice("squared_hinge", "hinge"),
    "method.selection": _choice("stil", "stil_noprim", "mil", "gmil"),
    "method.mu": _POS,
    "method.folds": _POS,
    "method.em_epochs": _POS,
    "method.penalty": _num(0),
    "method.prior_penalty": _num(0, null=True),
    "method.init": _choice("prior", "random"),
    "method.negatives": _choice("all", "selected"),
    "method.background_negatives": _BOOL,
    "method.background_iou": _FRACTION,
    "method.max_background": _int(1, null=True),
    "method.normalize": _BOOL,
    "method.num_tubes_per_class": _POS,
    "method.test_tubes": _choice("link", "proposals"),
    "method.tube_score": _choice("mean", "coverage"),
    "method.min_iou": _FRACTION,
    "method.max_iter": _POS,
    "method.tol": _POSITIVE,
    "method.class_weight": _choice(None, "balanced"),
    "method.seed": _int(),
    # reranking, supervision
    "reranking.context": _BOOL,
    "reranking.negative": _BOOL,
    "reranking.softmax": _BOOL,
    "reranking.context_weight": _num(),
    "supervision.level": _choice(
        "labels", "points_stride10", "mixture", "points", "boxes_stride10", "boxes"
    ),
    "supervision.stride": _int(1, null=True),
    "supervision.mixture_fraction": _FRACTION,
    "supervision.seed": _int(),
    # evaluation (conf/evaluation/*.yaml)
    "evaluation.protocol": _choice("act", "voc"),
    "evaluation.iou": _IOU_LIST,
    "evaluation.nms": _FRACTION,
    "evaluation.recall_iou": _IOU_LIST,
    "evaluation.num_pictures": _NONNEG,
    # data (conf/data/tubes.yaml): clips + tubes for trainable methods
    "data.num_frames": _POS,
    "data.num_tubes": _POS,
    "data.batch_size": _POS,
    "data.num_workers": _NONNEG,
    "data.val_fraction": _num(0, 1, hi_open=True),
    "data.flip": _BOOL,
    "data.frame_size": Rule("list", item=_POS, length=2, nullable=True),
    "data.seed": _int(),
    # features (conf/features/*.yaml)
    "features.output_size": _POS,
    "features.sampling_ratio": _NONNEG,
    "features.pooling": _choice("avg", "max", "flatten"),
    "features.min_box_size": _num(0, null=True),
    "features.seed": _int(),
    "features.batch_frames": _POS,
    "features.num_workers": _NONNEG,
    "features.input_scale": _POSITIVE,
    "features.box_width": _POS,
    "features.box_height": _POS,
    "features.hog_cell": _POS,
    "features.hog_bins": _POS,
    "features.hof_bins": _POS,
    "features.hof_rows": _POS,
    "features.hof_cols": _POS,
    "features.flow_saturation": _POSITIVE,
    "features.hof_weight": _num(0),
    "features.global_width": _POS,
    "features.global_height": _POS,
    "features.global_hof_rows": _POS,
    "features.global_hof_cols": _POS,
    "features.farneback": Rule("list", item=_num(), length=6),
    "features.workers": _POS,
    # trainer (conf/trainer/*.yaml): what wsal reads itself; Lightning checks the rest
    "trainer.max_epochs": _int(-1, null=True),
    "trainer.num_nodes": _POS,
    # evaluation in eval.py (conf/eval.yaml)
    "ckpt": Rule("str", nullable=True),
}

# (smaller key, larger key): the first may not exceed the second
_ORDERED: tuple[tuple[str, str], ...] = (("dataset.min_frames", "dataset.max_frames"),)

_UNSET = object()


def _value(cfg: DictConfig, key: str) -> Any:
    """The resolved value at ``key`` (``_UNSET`` when absent, missing ``???`` or unresolvable
    here, e.g. ``${hydra:...}`` outside a Hydra run)."""
    try:
        if OmegaConf.is_missing(cfg, key):
            return _UNSET
    except Exception:  # a parent node is absent or not a mapping
        pass
    try:
        node = OmegaConf.select(cfg, key, default=_UNSET, throw_on_resolution_failure=True)
    except Exception:  # an interpolation that resolves only in a Hydra run
        return _UNSET
    if isinstance(node, (DictConfig, ListConfig)):
        return OmegaConf.to_container(node, resolve=True)
    return node


def check_config(cfg: DictConfig, rules: Mapping[str, Rule] | None = None) -> None:
    """Check every value of ``cfg`` that :data:`RULES` knows (ranges of thresholds and IoUs,
    positive counts, the choices of protocols, losses, ...); raise one :class:`ConfigError`
    listing every bad value by its full key, before any work is done. Values the config does
    not have, or that resolve only inside a Hydra run, are skipped."""
    rules = RULES if rules is None else rules
    problems: list[str] = []
    for key, rule in rules.items():
        value = _value(cfg, key)
        if value is _UNSET:
            continue
        why = rule.problem(value)
        if why:
            problems.append(f"{key}={value!r}: {why}")
    for small, large in _ORDERED:
        a, b = _value(cfg, small), _value(cfg, large)
        if isinstance(a, (int, float)) and isinstance(b, (int, float)) and a > b:
            problems.append(f"{small}={a!r}: must not exceed {large}={b!r}")
    if problems:
        head = "bad config value" if len(problems) == 1 else f"{len(problems)} bad config values"
        raise ConfigError(f"{head}: " + "; ".join(problems))


#: Method keys that change only how a trained model scores the test tubes, by the method's
#: ``_target_``: ``eval.py run_dir=... method.<key>=...`` may set them on a rebuilt run.
INFERENCE_KEYS: dict[str, tuple[str, ...]] = {
    "wsal.models.methods.STILMethod": (
        "test_tubes",
        "tube_score",
        "num_tubes_per_class",
        "min_iou",
    ),
    "wsal.models.methods.ActorAttentionMethod": ("test_score",),
}


def inference_overrides(method: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Check ``overrides`` (eval.py's ``method.*``) against the run's ``method`` config: only the
    inference keys of its ``_target_`` (:data:`INFERENCE_KEYS`) may change, so a re-evaluation
    never claims a training setting the checkpoint was not trained with. Returns them as a dict;
    raises :class:`ConfigError` naming the key."""
    target = str(method.get("_target_", ""))
    allowed = INFERENCE_KEYS.get(target, ())
    out = {k: v for k, v in dict(overrides).items() if v is not None}  # null: the run's own
    bad = [k for k in out if k not in allowed]
    if bad:
        raise ConfigError(
            f"eval.py method.{bad[0]}: not an inference setting of {target or 'this method'} "
            f"(can change on a trained run: {', '.join(allowed) or 'none'})"
        )
    return out


# ------------------------------------------------------------------------------- run folders
def _run_id() -> str:
    """This process's id and 4 random hex digits: the suffix that keeps two runs started in the
    same second out of each other's folder (``${wsal.run_id:}`` in ``conf/config.yaml``)."""
    return _RUN_ID


_RUN_ID = f"{os.getpid()}-{secrets.token_hex(2)}"
if not OmegaConf.has_resolver("wsal.run_id"):
    # cached like Hydra's ${now:}: a config resolved once keeps its folder (sweep configs copy
    # the cache to their jobs; Lightning's DDP children are handed the parent's folder)
    OmegaConf.register_new_resolver("wsal.run_id", _run_id, use_cache=True)
