"""Stages built from their config nodes where one needs something made first (DESIGN §3: only
the app composes; a linker never trains a network, the composing code makes its tracker).

``build_linker(cfg.linker)`` is how ``train.py``, ``eval.py`` and the CLIs of :mod:`wsal.app`
turn a ``conf/linker/*.yaml`` node into a linker.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from omegaconf import DictConfig, OmegaConf

from wsal.configs import instantiate_node
from wsal.linking.base import Linker
from wsal.models.tracker import default_tracker_checkpoint

__all__ = ["ACTOR_LINKERS", "build_linker"]

#: The ``_target_`` spellings of the actor linker (its package re-exports it).
ACTOR_LINKERS = ("wsal.linking.ActorLinker", "wsal.linking.actor.ActorLinker")


def build_linker(linker_cfg: DictConfig | Mapping[str, Any]) -> Linker:
    """The linker of a ``conf/linker/*.yaml`` node (interpolations resolved), instantiated
    (:func:`wsal.configs.instantiate_node`: a constructor's error comes out as itself).

    The node's ``default_tracker`` (the actor linker's: ``{backbone, data}``) is not a constructor
    argument but how to make the tracker checkpoint when ``checkpoint`` is null:
    :func:`wsal.models.tracker.default_tracker_checkpoint` is called first (on first use it
    trains the default tracker once, saying so) and its path becomes ``checkpoint``. An actor
    node without ``make_tracker`` (a run folder saved before the key existed) gets
    :func:`wsal.nets.siamfc.make_tracker`, what ``conf/linker/actor.yaml`` names.
    """
    node: dict[str, Any] = (
        OmegaConf.to_container(linker_cfg, resolve=True)  # type: ignore[assignment]
        if isinstance(linker_cfg, DictConfig)
        else dict(linker_cfg)
    )
    default = node.pop("default_tracker", None)
    if default is not None and not node.get("checkpoint") and node.get("tracker") is None:
        node["checkpoint"] = str(default_tracker_checkpoint(**default))
    if node.get("_target_") in ACTOR_LINKERS and node.get("make_tracker") is None:
        # a run saved before the linker took its tracker maker from the config: the network
        # comes from the composing code, so give it the one the config now names
        node["make_tracker"] = {"_target_": "wsal.nets.siamfc.make_tracker", "_partial_": True}
    return instantiate_node(node)
