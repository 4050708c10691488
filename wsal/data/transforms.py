"""Frame and box transforms shared by the clip DataModule, the CNN box features and the encoders:
ImageNet normalisation (the one mean/std), resizing and horizontal flips of frames with their
boxes (xyxy pixels)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "denormalize_frames",
    "hflip_boxes",
    "normalize_frames",
    "resize_boxes",
    "resize_frames",
]

#: ImageNet RGB mean / std of pixel values in [0, 1] (torchvision's pretrained weights)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def normalize_frames(frames: np.ndarray | Tensor) -> Tensor:
    """uint8 RGB ``[T, H, W, 3]`` -> float32 ``[T, 3, H, W]``, ``(x / 255 - mean) / std``."""
    x = torch.as_tensor(frames).permute(0, 3, 1, 2).float().div_(255.0)  # [T, 3, H, W]
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)  # [1, 3, 1, 1]
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return (x - mean) / std


def denormalize_frames(frames: Tensor) -> Tensor:
    """Inverse of :func:`normalize_frames`: float ``[..., 3, H, W]`` -> float ``[..., H, W, 3]``
    RGB in ``[0, 255]`` (not rounded, not clipped: a resize may overshoot slightly)."""
    mean = torch.tensor(IMAGENET_MEAN, device=frames.device).view(3, 1, 1)  # [3, 1, 1]
    std = torch.tensor(IMAGENET_STD, device=frames.device).view(3, 1, 1)
    return ((frames * std + mean) * 255.0).movedim(-3, -1)  # [..., H, W, 3]


def resize_frames(frames: Tensor, size: tuple[int, int]) -> Tensor:
    """float ``[T, 3, H, W]`` -> ``[T, 3, *size]``, bilinear with antialiasing.

    ``align_corners=False`` maps pixel *edges* onto pixel edges, so the paired box transform is a
    plain scale (:func:`resize_boxes`).
    """
    return F.interpolate(frames, size=size, mode="bilinear", align_corners=False, antialias=True)


def resize_boxes(boxes: Tensor, in_hw: tuple[int, int], out_hw: tuple[int, int]) -> Tensor:
    """xyxy pixel boxes ``[..., 4]`` of an ``in_hw`` frame -> the same boxes on an ``out_hw`` frame."""
    sy, sx = out_hw[0] / in_hw[0], out_hw[1] / in_hw[1]
    scale = torch.tensor([sx, sy, sx, sy], dtype=boxes.dtype, device=boxes.device)  # [4]
    return boxes * scale


def hflip_boxes(boxes: Tensor, width: int, valid: Tensor | None = None) -> Tensor:
    """Mirror xyxy pixel boxes ``[..., 4]`` like ``frames.flip(-1)`` mirrors a ``width``-wide
    frame: ``x1' = W - x2``, ``x2' = W - x1`` (y unchanged). Where ``valid bool[...]`` is False
    the box is left as it is (zeros stay zeros)."""
    x1, y1, x2, y2 = boxes.unbind(-1)
    out = torch.stack([width - x2, y1, width - x1, y2], dim=-1)  # [..., 4]
    if valid is not None:
        out = torch.where(valid[..., None], out, boxes)  # [..., 4]
    return out
