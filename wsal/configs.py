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

import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from hydra import compose as hydra_compose
from hydra import initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

__all__ = ["CONF_ENV", "compose", "conf_dir", "instantiate_node", "instantiate_stage", "override"]

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
