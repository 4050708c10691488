"""A run folder is data, not code: the ``_target_`` check run before a saved config is rebuilt.

``eval.py run_dir=...`` and ``python -m wsal.viz --run-dir ...`` instantiate a run's saved
``.hydra/config.yaml``, which anyone who shares a run folder can edit; Hydra would call any
importable callable named in a ``_target_`` (``os.system``, or ``wsal.atomic.atomic_write_text``
writing a file anywhere). :func:`check_targets` refuses such a config, naming the key and the
target, before anything is instantiated. Admitted:

- a class defined in a wsal module, named by its module path (``wsal.linking.viterbi.
  ViterbiLinker``) or by a wsal package that re-exports it (``wsal.linking.TemporalPrimLinker``):
  wsal classes do no work when constructed (DESIGN: no hidden work);
- the targets in :data:`ALLOWED_TARGETS`: the Lightning classes and the wsal functions that the
  shipped configs (``conf/``) use; a test derives this set from ``conf/`` so it cannot drift.

Targets are resolved statically (the wsal sources are parsed, nothing is imported), so the
check is the same whether or not torch is installed; a ``${...}`` interpolation as a target is
refused (its value could come from anywhere).
"""

from __future__ import annotations

import ast
import functools
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from wsal.errors import InputError

__all__ = ["ALLOWED_TARGETS", "UnsafeTargetError", "check_targets", "is_allowed_target"]

#: The non-class or non-wsal ``_target_`` values of the shipped configs (``conf/``), and only
#: those (tests/test_bad_inputs.py checks both directions).
ALLOWED_TARGETS: frozenset[str] = frozenset(
    {
        "pytorch_lightning.Trainer",
        "pytorch_lightning.callbacks.ModelCheckpoint",
        "pytorch_lightning.loggers.CSVLogger",
        "pytorch_lightning.loggers.TensorBoardLogger",
        "wsal.loggers.wandb_logger",
        "wsal.nets.siamfc.make_tracker",  # the actor linker's, a partial: loads weights_only
    }
)

_ROOT = Path(__file__).resolve().parent  # the wsal package


class UnsafeTargetError(InputError):
    """A saved config names a ``_target_`` that a rebuild must not call."""


def _module_file(module: str) -> Path | None:
    """Source file of the wsal module ``module`` (``wsal.a.b``), or None when there is none."""
    parts = module.split(".")
    if parts[0] != "wsal" or not all(p.isidentifier() for p in parts):
        return None
    base = _ROOT.joinpath(*parts[1:])
    for f in (base / "__init__.py", base.with_suffix(".py")):
        if f.is_file():
            return f
    return None


def _top_level(nodes: list[ast.stmt]) -> Iterator[ast.stmt]:
    """Statements at module level, also inside ``if``/``try`` blocks (``if TYPE_CHECKING:``)."""
    for node in nodes:
        yield node
        if isinstance(node, ast.If):
            yield from _top_level(node.body)
            yield from _top_level(node.orelse)
        elif isinstance(node, ast.Try):
            yield from _top_level(node.body)


@functools.lru_cache(maxsize=256)
def _kind(module: str, name: str, depth: int = 0) -> str | None:
    """``"class"`` or ``"function"`` when the wsal module ``module`` defines ``name`` at module
    level, or imports it from a wsal module that does; else None (an attribute of a non-wsal
    import, an alias, a module...)."""
    file = _module_file(module)
    if file is None or depth > 8:
        return None
    tree = ast.parse(file.read_text(encoding="utf-8"))
    is_pkg = file.name == "__init__.py"
    for node in _top_level(tree.body):
        if isinstance(node, ast.ClassDef) and node.name == name:
            return "class"
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == name:
            return "function"
        if isinstance(node, ast.ImportFrom):
            for alias in node.names:
                if (alias.asname or alias.name) != name:
                    continue
                src = node.module or ""
                if node.level:
                    anchor = module.split(".") if is_pkg else module.split(".")[:-1]
                    anchor = anchor[: len(anchor) - (node.level - 1)]
                    src = ".".join(anchor + ([src] if src else []))
                return _kind(src, alias.name, depth + 1) if src.startswith("wsal.") else None
    return None


def is_allowed_target(target: object) -> bool:
    """True for a target a rebuild may call: a wsal class, or one of :data:`ALLOWED_TARGETS`."""
    if not isinstance(target, str):
        return False
    if target in ALLOWED_TARGETS:
        return True
    module, _, name = target.rpartition(".")
    return bool(module) and _kind(module, name) == "class"


def _targets(node: Any, key: str) -> Iterator[tuple[str, Any]]:
    """``(dotted key, value)`` of every ``_target_`` in a plain config tree."""
    if isinstance(node, dict):
        for k, v in node.items():
            here = f"{key}.{k}" if key else str(k)
            if k == "_target_":
                yield here, v
            else:
                yield from _targets(v, here)
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _targets(v, f"{key}[{i}]")


def check_targets(cfg: DictConfig | ListConfig | dict, source: str | os.PathLike) -> None:
    """Refuse (:class:`UnsafeTargetError` naming ``source``, the key and the target) a config
    that names a ``_target_`` a rebuild must not call; call it before instantiating anything.

    ``source``: where the config was read (e.g. the run's ``.hydra/config.yaml``)."""
    plain = (
        OmegaConf.to_container(cfg, resolve=False)
        if isinstance(cfg, DictConfig | ListConfig)
        else cfg
    )
    for key, target in _targets(plain, ""):
        if isinstance(target, str) and "${" in target:
            why = "an interpolation (its value could come from anywhere)"
        elif is_allowed_target(target):
            continue
        else:
            why = "neither a wsal class nor one of the Lightning classes the shipped configs use"
        raise UnsafeTargetError(
            f"{key} = {target!r} is {why}; a run folder is rebuilt only from wsal's own "
            f"targets and {sorted(ALLOWED_TARGETS - {'wsal.loggers.wandb_logger'})}: "
            "refusing to instantiate anything",
            source,
        )
