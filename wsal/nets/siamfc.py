"""The SiamFC network: embedding + cross-correlation head, and its checkpoint files.

The tracking around it (crops, scales, the response's peak, many targets at once) is
:mod:`wsal.linking.siamfc`, which takes a built network; this module builds and loads one, and
:func:`make_tracker` hands it to a :class:`~wsal.linking.siamfc.SiamFCTracker` (what the actor
linker's ``make_tracker`` is given by its config). Training is :mod:`wsal.models.tracker`.

Two embeddings (``SiamFCConfig.backbone``): SiamFC's AlexNet-style net (trained on SynthActors)
and a frozen ImageNet EfficientNet-Lite0 trunk (:func:`wsal.nets.encoders.build_encoder`,
usable untrained; docs/real_footage.md).
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from wsal.atomic import atomic_path
from wsal.errors import discard_unreadable, zip_problem
from wsal.linking.siamfc import PRETRAINED_CONFIG, SiamFCConfig, SiamFCTracker, xcorr
from wsal.nets.encoders import (
    LiteInput,
    build_encoder,
    fold_batch_norms,
    inplace_block_activations,
    replace_same_padding,
)

__all__ = [
    "CHECKPOINT_FORMAT",
    "SiamFCNet",
    "load_checkpoint",
    "make_tracker",
    "pretrained_tracker_checkpoint",
    "save_checkpoint",
]

log = logging.getLogger(__name__)

CHECKPOINT_FORMAT = "wsal-siamfc-v1"
# RGB mean/std of ImageNet in 0-255 units: the embedding's fixed input normalisation.
_MEAN = (123.675, 116.28, 103.53)
_STD = (58.395, 57.12, 57.375)


class SiamFCNet(nn.Module):
    """AlexNet-style embedding + cross-correlation head.

    ``embed(x [B, 3, s, s] float RGB in 0-255) -> [B, C, f, f]``: conv5x5/2-BN-ReLU, maxpool3/2,
    3 x (conv3x3-BN-ReLU), conv3x3 (linear, like SiamFC's last layer); no padding, stride 4.
    ``forward(z [K, 3, ez, ez], x [K*m, 3, sx, sx]) -> response [K*m, 1, h, w]`` raw logits
    ``gain * xcorr + bias`` (SiamFC's "adjust" layer; ``m = 1`` is the plain pairwise case).

    With ``config.backbone == "efficientnet_lite0"`` the embedding is instead a frozen ImageNet
    EfficientNet-Lite0 trunk (stages 1-3: 40 channels, padded convs, stride 8, frozen BatchNorm;
    :func:`wsal.nets.encoders.build_encoder`), and the head correlates with the exemplar
    features divided by their energy (``gain`` 1, ``bias`` 0: a perfect match gives about 1).
    ``stride`` is then 8 (an instance attribute; the class attribute is the AlexNet's 4).
    """

    stride = 4
    mean: Tensor  # [1, 3, 1, 1] input normalisation (buffers)
    std: Tensor

    def __init__(self, config: SiamFCConfig | None = None) -> None:
        super().__init__()
        self.config = config if config is not None else SiamFCConfig()
        self.register_buffer("mean", torch.tensor(_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(_STD).view(1, 3, 1, 1), persistent=False)
        self.pretrained = self.config.backbone != "alexnet"
        self.features: nn.Sequential
        if self.pretrained:
            self.stride = self.config.stride  # type: ignore[misc]
            # stage 3 (stride 8) keeps cells small enough to place a head in a 176x144 video;
            # ImageNet-normalised input, as embed() below gives every backbone
            self.features = build_encoder(
                self.config.backbone, "imagenet", frozen_bn=True, trainable=False, layers=3
            )
            self.gain = nn.Parameter(torch.tensor(1.0))
            self.bias = nn.Parameter(torch.tensor(0.0))
            return
        c1, c2, c3, c4, c5 = self.config.channels
        self.features = nn.Sequential(
            nn.Conv2d(3, c1, 5, stride=2),
            nn.BatchNorm2d(c1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(3, stride=2),
            nn.Conv2d(c1, c2, 3),
            nn.BatchNorm2d(c2),
            nn.ReLU(inplace=True),
            nn.Conv2d(c2, c3, 3),
            nn.BatchNorm2d(c3),
            nn.ReLU(inplace=True),
            nn.Conv2d(c3, c4, 3),
            nn.BatchNorm2d(c4),
            nn.ReLU(inplace=True),
            nn.Conv2d(c4, c5, 3),
        )
        # correlation sums ~C * 36 products of unit-scale features: start the logits small
        self.gain = nn.Parameter(torch.tensor(1.0 / (c5 * 36)))
        self.bias = nn.Parameter(torch.tensor(0.0))
        for m in self.modules():
            if isinstance(m, nn.Conv2d) and m.bias is not None:
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)

    def embed(self, x: Tensor) -> Tensor:
        """Features ``[B, C, f, f]`` of crops ``[B, 3, s, s]`` (float RGB, 0-255)."""
        return self.features((x - self.mean) / self.std)

    def inference_embedding(self) -> nn.Sequential:
        """A frozen copy of :meth:`embed` for inference, same function up to float rounding:
        the input normalisation folded into conv1, each BatchNorm (eval statistics) folded into
        its convolution, in channels_last layout (faster pooling and convolutions on CPU).
        A pretrained backbone is copied with one input normalisation (padded convs: it stays a
        layer; :meth:`LiteInput.after`), its frozen BatchNorms folded into their convolutions
        (:func:`fold_batch_norms`), its TF "same" padding done by the convolutions where it is
        symmetric (:func:`replace_same_padding`) and in-place block activations
        (:func:`inplace_block_activations`); the net itself is unchanged."""
        if self.pretrained:
            features = copy.deepcopy(self.features)
            mean, std = self.mean, self.std
            lite = getattr(features, "input", None)
            if isinstance(lite, LiteInput):  # and the net's normalisation: one normalisation
                mean, std = lite.after(mean, std)
                features.input = nn.Identity()
            trunk = nn.Sequential(_Normalize(mean, std), features)
            fold_batch_norms(trunk.eval())
            replace_same_padding(trunk)
            inplace_block_activations(trunk)
            trunk = trunk.eval().to(memory_format=torch.channels_last)  # type: ignore[call-overload]
            return trunk.requires_grad_(False)
        layers: list[nn.Module] = []
        mods = list(copy.deepcopy(self.features).eval())
        i = 0
        while i < len(mods):
            m = mods[i]
            if (
                isinstance(m, nn.Conv2d)
                and i + 1 < len(mods)
                and isinstance(mods[i + 1], nn.BatchNorm2d)
            ):
                m = fuse_conv_bn_eval(m, mods[i + 1])  # type: ignore[arg-type]
                i += 1
            layers.append(m)
            i += 1
        conv1 = layers[0]
        assert isinstance(conv1, nn.Conv2d)
        assert conv1.bias is not None  # every conv has a bias (a fused one too)
        with torch.no_grad():  # conv1((x - mean) / std) = conv1'(x): valid convs, so exact
            w = conv1.weight / self.std.view(1, 3, 1, 1)
            conv1.bias.sub_((w * self.mean.view(1, 3, 1, 1)).sum(dim=(1, 2, 3)))
            conv1.weight.copy_(w)
        out = nn.Sequential(*layers).eval().to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        for p in out.parameters():
            p.requires_grad_(False)
        return out

    def head(self, zf: Tensor, xf: Tensor) -> Tensor:
        """Response logits ``[K*m, 1, h, w]`` of features (see :func:`xcorr`)."""
        if self.pretrained:  # untrained features: make a perfect match about 1 for every target
            zf = zf / zf.pow(2).sum(dim=(1, 2, 3), keepdim=True).clamp_min(1e-12)  # [K, C, f, f]
        return xcorr(zf, xf) * self.gain + self.bias

    def forward(self, z: Tensor, x: Tensor) -> Tensor:
        return self.head(self.embed(z), self.embed(x))


class _Normalize(nn.Module):
    """``(x - mean) / std`` with fixed buffers (0-255 RGB in, ImageNet-normalised out)."""

    mean: Tensor
    std: Tensor

    def __init__(self, mean: Tensor, std: Tensor) -> None:
        super().__init__()
        self.register_buffer("mean", mean.detach().clone(), persistent=False)
        self.register_buffer("std", std.detach().clone(), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        return (x - self.mean) / self.std


def save_checkpoint(
    path: str | os.PathLike, net: SiamFCNet, extra: dict[str, Any] | None = None
) -> Path:
    """Write ``{"format", "config" (SiamFCConfig fields), "state_dict", "extra"}`` atomically."""
    state = {k: v.detach().cpu() for k, v in net.state_dict().items()}
    blob = {
        "format": CHECKPOINT_FORMAT,
        "config": net.config.to_dict(),
        "state_dict": state,
        "extra": extra or {},
    }
    with atomic_path(path) as tmp:
        torch.save(blob, tmp)
    return Path(path)


def load_checkpoint(path: str | os.PathLike) -> tuple[SiamFCNet, dict[str, Any]]:
    """``(net in eval mode on CPU, extra)`` from a :func:`save_checkpoint` file, loaded with
    ``weights_only=True``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"SiamFC checkpoint {path} not found")
    blob = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(blob, dict) or blob.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path} is not a wsal SiamFC checkpoint ({CHECKPOINT_FORMAT})")
    net = SiamFCNet(SiamFCConfig.from_dict(blob["config"]))
    net.load_state_dict(blob["state_dict"])
    return net.eval(), dict(blob.get("extra", {}))


def make_tracker(
    net: SiamFCNet | None = None,
    checkpoint: str | os.PathLike | None = None,
    config: SiamFCConfig | Mapping[str, Any] | None = None,
    device: str | torch.device | None = None,
) -> SiamFCTracker:
    """A :class:`~wsal.linking.siamfc.SiamFCTracker` on ``net``, on the network of a
    :func:`save_checkpoint` file (``torch.load(weights_only=True)``), or, with neither, on a new
    :class:`SiamFCNet` built from ``config`` (random weights for the AlexNet embedding, for tests
    and speed measurements; the frozen ImageNet trunk for ``backbone: efficientnet_lite0``).

    ``config``: a full :class:`SiamFCConfig`, or a mapping of fields to change in the net's /
    checkpoint's config (architecture fields must stay the net's). ``device``: default ``cpu``
    for a checkpoint or a new net, the net's own device for a given net."""
    if net is not None and checkpoint is not None:
        raise ValueError("give a net or a checkpoint, not both")
    meta: dict[str, Any] = {}
    if checkpoint is not None:
        net, meta = load_checkpoint(checkpoint)
    if net is None:
        # a mapping: fields over the defaults (from_dict names unknown ones)
        net = SiamFCNet(
            SiamFCConfig.from_dict(dict(config)) if isinstance(config, Mapping) else config
        )
    return SiamFCTracker(
        net,
        config=config,
        device=device,
        checkpoint=None if checkpoint is None else str(checkpoint),
        meta=meta,
    )


def pretrained_tracker_checkpoint(folder: str | os.PathLike) -> Path:
    """The SiamFC tracker with the frozen ImageNet EfficientNet-Lite0 embedding
    (``SiamFCConfig(**PRETRAINED_CONFIG)``, untrained: docs/real_footage.md) as a checkpoint file
    ``folder/siamfc_lite0_<hash>.pt``, written once (so tube caches key on it like any tracker)."""
    cfg = SiamFCConfig(**PRETRAINED_CONFIG)
    digest = hashlib.sha256(json.dumps(cfg.to_dict(), sort_keys=True).encode()).hexdigest()[:12]
    path = Path(folder) / f"siamfc_lite0_{digest}.pt"
    if path.is_file() and (why := zip_problem(path, full=True)) is not None:
        discard_unreadable(path, why, "tracker checkpoint", log)  # written again below
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        save_checkpoint(path, SiamFCNet(cfg), extra={"pretrained": "efficientnet_lite0 ImageNet"})
    return path
