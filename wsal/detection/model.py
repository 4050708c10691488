"""torchvision detection models by name, their weights, and the actor filter applied to their boxes.

Conventions: images go in as ``float [3, H, W]`` in ``[0, 1]`` (the model normalises and resizes
them itself); boxes come out ``xyxy`` float pixels of the input image; a box's ``label`` is an
index into the weights' category list (``meta["categories"]``: the COCO 91-entry list with
``"__background__"`` at 0 and ``"N/A"`` holes, so ``person`` = 1).

Weights (``weights`` argument):

- ``None``: random init (tests, benchmarks); seeded, so every process builds the same model;
- ``"DEFAULT"`` or a torchvision enum name (``"FasterRCNN_ResNet50_FPN_V2_Weights.COCO_V1"``):
  read from the torch hub cache, ``$TORCH_HOME/hub/checkpoints/<file>``; a missing file is an error
  that says where to put it (or downloads it when ``download=True``);
- a local path to a state dict (a torchvision checkpoint, or ``{"model": state_dict}`` as the
  torchvision reference scripts save them) for the same architecture and category list.

Every checkpoint is read with ``torch.load(..., weights_only=True)``.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import torch
import torchvision
from torch import Tensor, nn
from torchvision.ops import batched_nms

__all__ = [
    "ResolvedWeights",
    "WeightsNotFoundError",
    "build_detector",
    "class_ids",
    "filter_detections",
    "resolve_weights",
]

_NO_CAP = 10**6  # boxes per image the model may return before the actor filter
_ENUM_NAME = re.compile(r"^\w+_Weights\.\w+$")  # "FasterRCNN_ResNet50_FPN_V2_Weights.COCO_V1"


class WeightsNotFoundError(FileNotFoundError):
    """Pretrained detector weights are neither in the torch hub cache nor at the given path."""


@dataclass(frozen=True)
class ResolvedWeights:
    """What ``weights`` names: a torchvision enum, a local file, or nothing (random init).

    ``key`` identifies the weights in cache keys: the enum's full name, the file's path, size and
    mtime, or ``"random"``. ``categories`` is the class-name list the model's labels index.
    """

    enum: Any  # torchvision WeightsEnum member or None
    path: Path | None
    categories: tuple[str, ...]
    key: str


def _model_weights(model: str) -> Any:
    try:
        return torchvision.models.get_model_weights(model)
    except (ValueError, KeyError) as e:
        names = torchvision.models.list_models(module=torchvision.models.detection)
        raise ValueError(f"unknown torchvision detection model {model!r}; known: {names}") from e


def resolve_weights(model: str, weights: str | os.PathLike | None) -> ResolvedWeights:
    """Interpret ``weights`` for ``model`` without reading any checkpoint (see the module doc)."""
    enums = _model_weights(model)
    if model not in torchvision.models.list_models(module=torchvision.models.detection):
        raise ValueError(f"{model!r} is a torchvision model but not a detection model")
    # The model's own default weights define its architecture's category list, also at random
    # init (metadata only: nothing is downloaded). keypointrcnn has 2 categories, the rest 91.
    default_categories = tuple(enums.DEFAULT.meta["categories"])
    if weights is None:
        return ResolvedWeights(None, None, default_categories, "random")
    w = str(weights)
    if w == "DEFAULT" or (_ENUM_NAME.match(w) and not os.path.exists(w)):
        try:
            enum = enums.DEFAULT if w == "DEFAULT" else torchvision.models.get_weight(w)
        except (ValueError, KeyError) as e:
            raise ValueError(f"unknown torchvision weights {w!r}: {e}") from e
        if not isinstance(enum, enums):
            raise ValueError(f"weights {w} are not for model {model!r} (use {list(enums)})")
        return ResolvedWeights(enum, None, tuple(enum.meta["categories"]), str(enum))
    path = Path(w).expanduser()
    if not path.is_file():
        raise WeightsNotFoundError(
            f"detector weights file not found: {path} (weights must be None, 'DEFAULT', an enum "
            f"name such as {enums.DEFAULT}, or the path of a state dict)"
        )
    st = path.stat()
    return ResolvedWeights(
        None, path, default_categories, f"{path.resolve()}:{st.st_size}:{st.st_mtime_ns}"
    )


def hub_file(enum: Any) -> Path:
    """Where torch looks for ``enum``'s checkpoint: ``torch.hub.get_dir()/checkpoints/<file>``."""
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urlparse(enum.url).path)


def _read_state(resolved: ResolvedWeights, model: str, download: bool) -> Mapping[str, Tensor]:
    if resolved.path is not None:
        state = torch.load(resolved.path, map_location="cpu", weights_only=True)
        if isinstance(state, Mapping) and "model" in state and isinstance(state["model"], Mapping):
            state = state["model"]  # torchvision reference-script checkpoint
        if not isinstance(state, Mapping):
            raise ValueError(f"{resolved.path}: expected a state dict, got {type(state).__name__}")
        return state
    enum = resolved.enum
    cached = hub_file(enum)
    if not cached.is_file() and not download:
        raise WeightsNotFoundError(
            f"detector weights {enum} for {model!r} are not in the torch hub cache ({cached} does "
            f"not exist) and downloading is off. Either download {enum.url} to {cached} (on a "
            f'machine with internet: python -c "import torchvision; '
            f"torchvision.models.get_model('{model}', weights='{enum}')\", then copy "
            f"$TORCH_HOME/hub/checkpoints/ over; TORCH_HOME defaults to ~/.cache/torch), or pass "
            f"download=True (detector.download=true, --download), or pass the file's local path "
            f"as weights."
        )
    # check_hash: torchvision file names carry the sha256 prefix; verified on download.
    return torch.hub.load_state_dict_from_url(
        enum.url, map_location="cpu", progress=True, check_hash=True, weights_only=True
    )


@contextlib.contextmanager
def _serve_state(enum_cls: type, state: Mapping[str, Tensor]) -> Iterator[None]:
    """Make ``enum_cls.get_state_dict`` return ``state`` while a torchvision builder runs.

    The builders read checkpoints through ``WeightsEnum.get_state_dict`` (torch.hub's loader with
    ``weights_only=False``, downloading on a cache miss). Handing them the state dict we read with
    ``weights_only=True`` keeps the exact architecture torchvision builds for pretrained weights
    (FrozenBatchNorm2d with its eps, the weights' class count) without either. Not thread-safe:
    build models from one thread at a time.
    """

    def get_state_dict(self: Any, *args: Any, **kwargs: Any) -> Mapping[str, Tensor]:
        return state

    enum_cls.get_state_dict = get_state_dict  # type: ignore[attr-defined]
    try:
        yield
    finally:
        del enum_cls.get_state_dict  # type: ignore[attr-defined]


def _load_local(model: str, resolved: ResolvedWeights, state: Mapping[str, Tensor]) -> nn.Module:
    """A local state dict: first as the pretrained architecture (what a copy of the hub file or a
    fine-tuned torchvision checkpoint has), then as the random-init one (BatchNorm2d)."""
    enum = _model_weights(model).DEFAULT
    try:
        with _serve_state(type(enum), state):
            return torchvision.models.get_model(model, weights=enum, weights_backbone=None)
    except RuntimeError as first:
        net = torchvision.models.get_model(
            model, weights=None, weights_backbone=None, num_classes=len(resolved.categories)
        )
        try:
            net.load_state_dict(state)
        except RuntimeError:
            raise ValueError(
                f"{resolved.path}: not a state dict of torchvision's {model!r} with "
                f"{len(resolved.categories)} classes: {str(first).splitlines()[0][:500]}"
            ) from first
        return net


def build_detector(
    model: str,
    weights: str | os.PathLike | None = "DEFAULT",
    *,
    score_thresh: float = 0.05,
    nms_iou: float | None = None,
    max_per_frame: int = 100,
    min_size: int | None = None,
    max_size: int | None = None,
    download: bool = False,
    seed: int = 0,
) -> tuple[nn.Module, ResolvedWeights]:
    """A torchvision detection model in eval mode, and what its weights are.

    Args:
        model: a name of ``torchvision.models.list_models(module=torchvision.models.detection)``.
        weights: see the module doc. ``None`` = random init with ``seed`` (the global RNG is
            left untouched).
        score_thresh, nms_iou, max_per_frame: written into the model's own post-processing so
            that it keeps every box :func:`filter_detections` may keep: boxes scoring at least
            ``score_thresh`` (the models test ``>``, hence ``nextafter``), class-wise NMS at
            ``nms_iou`` (None: the model's default) and no cap on boxes per image (the model's
            top-k would run over all classes, before the actor classes are picked).
        min_size, max_size: the model's internal resize (shorter side to ``min_size``, longer
            side at most ``max_size``); None keeps the model's default (800/1333 for the R-CNNs,
            320/640 for the ``_320`` models). Boxes come back in input pixels either way.
        download: fetch missing pretrained weights into the torch hub cache instead of raising
            :class:`WeightsNotFoundError`.
    """
    resolved = resolve_weights(model, weights)
    if resolved.enum is None and resolved.path is None:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            net = torchvision.models.get_model(
                model, weights=None, weights_backbone=None, num_classes=len(resolved.categories)
            )
    else:
        state = _read_state(resolved, model, download)
        if resolved.path is not None:
            net = _load_local(model, resolved, state)
        else:
            with _serve_state(type(resolved.enum), state):
                net = torchvision.models.get_model(
                    model, weights=resolved.enum, weights_backbone=None
                )
    _set_postprocessing(net, model, score_thresh, nms_iou, max_per_frame)
    transform = getattr(net, "transform", None)
    if min_size is not None or max_size is not None:
        if transform is None or not hasattr(transform, "min_size"):
            raise ValueError(f"model {model!r} has no resizing transform to set min/max_size on")
        if getattr(transform, "fixed_size", None) is not None:
            raise ValueError(f"model {model!r} resizes to a fixed size; min/max_size do not apply")
        if min_size is not None:
            transform.min_size = (int(min_size),)
        if max_size is not None:
            transform.max_size = int(max_size)
    return net.eval(), resolved


def _set_postprocessing(
    net: nn.Module, model: str, score_thresh: float, nms_iou: float | None, max_per_frame: int
) -> None:
    # R-CNNs keep these on roi_heads; RetinaNet, FCOS and SSD on the model itself.
    owner = getattr(net, "roi_heads", net)
    if not all(hasattr(owner, a) for a in ("score_thresh", "nms_thresh", "detections_per_img")):
        raise ValueError(f"model {model!r}: unknown post-processing (no score_thresh/nms_thresh)")
    owner.score_thresh = math.nextafter(float(score_thresh), -math.inf)
    if nms_iou is not None:
        owner.nms_thresh = float(nms_iou)
    # No cap here: the model's top-k runs over all classes, before the actor classes are picked,
    # and could drop actors behind other classes' boxes; filter_detections caps per frame after.
    owner.detections_per_img = max(int(max_per_frame), _NO_CAP)


def class_ids(categories: Sequence[str], classes: Sequence[str]) -> list[int]:
    """Label indices of ``classes`` (names, e.g. ``("person",)``) in ``categories``."""
    valid = [c for c in categories if c not in ("__background__", "N/A")]
    ids = []
    for name in classes:
        if name not in valid:
            raise ValueError(f"unknown detector class {name!r}; the model's classes are {valid}")
        ids.append(list(categories).index(name))
    if not ids:
        raise ValueError("no classes of interest given (e.g. classes=['person'])")
    return ids


def weights_digest(resolved: ResolvedWeights, seed: int) -> str:
    """Short hash of the weights' identity (random init includes its seed)."""
    key = resolved.key if resolved.key != "random" else f"random-seed{seed}"
    return hashlib.sha1(key.encode()).hexdigest()[:8]


def filter_detections(
    frame: Tensor,
    boxes: Tensor,
    scores: Tensor,
    labels: Tensor,
    keep_labels: Sequence[int] | Tensor,
    score_thresh: float,
    nms_iou: float | None,
    max_per_frame: int | None,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Keep the actors of interest: class filter, score threshold, class-wise NMS, per-frame top-k.

    Args:
        frame: int64[N] frame of each box; boxes: float[N, 4] xyxy pixels; scores: float[N];
            labels: int64[N] category indices.
        keep_labels: the category indices to keep (the actors of interest).
        score_thresh: keep ``score >= score_thresh``.
        nms_iou: NMS per (frame, label): a box is dropped when it overlaps a higher-scoring kept
            box of its frame and label with IoU ``>`` nms_iou (torchvision's rule); None = no NMS.
        max_per_frame: keep the highest-scoring boxes of each frame, at most this many.

    Returns:
        ``(frame, boxes, scores, labels)`` of the kept boxes, sorted by frame, then by descending
        score (ties in input order).
    """
    keep_t = torch.as_tensor(keep_labels, dtype=torch.int64, device=labels.device)
    keep = torch.isin(labels, keep_t) & (scores >= score_thresh)  # [N]
    frame, boxes, scores, labels = frame[keep], boxes[keep], scores[keep], labels[keep]
    if nms_iou is not None and frame.numel():
        # One NMS group per (frame, label), numbered compactly: batched_nms shifts each group by
        # group * (max coordinate + 1), which float32 would round for large group numbers;
        # float64 keeps the shifted coordinates, and so the IoUs, exact.
        _, group = torch.unique(torch.stack([frame, labels]), dim=1, return_inverse=True)  # [n]
        idx = batched_nms(boxes.double(), scores.double(), group, float(nms_iou))
        idx = idx.sort().values  # back to input order: ties below stay in input order
        frame, boxes, scores, labels = frame[idx], boxes[idx], scores[idx], labels[idx]
    order = torch.sort(scores, descending=True, stable=True).indices  # [n]
    order = order[torch.sort(frame[order], stable=True).indices]  # by frame, then -score
    frame, boxes, scores, labels = frame[order], boxes[order], scores[order], labels[order]
    if max_per_frame is not None and frame.numel():
        first = torch.searchsorted(frame, frame)  # [n] row of each frame's first box
        rank = torch.arange(frame.numel(), device=frame.device) - first  # [n] 0 = best of frame
        keep = rank < max_per_frame
        frame, boxes, scores, labels = frame[keep], boxes[keep], scores[keep], labels[keep]
    return frame, boxes, scores, labels
