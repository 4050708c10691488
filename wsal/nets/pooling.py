"""Actor-of-interest pooling (Guess Where §3.2, Eq. 1): bilinear X×Y sampling inside each tube box
on its frame's response map, then the mean over the tube's frames.

Coordinate convention (shared with ``wsal/nets/encoders.py``). Boxes are ``xyxy`` float pixels of
the encoder's *input* frames, continuous: pixel column ``i`` spans ``[i, i + 1)``, so a box that
covers columns ``0..9`` fully is ``x1 = 0, x2 = 10`` (x2/y2 are the right/bottom edges). Feature
cell ``u`` covers input ``[u * stride, (u + 1) * stride)`` and sits at its centre; so an input
coordinate ``x`` is the feature-map coordinate (in cell-index units, cell centres at integers)

    u = x * spatial_scale - 0.5,        spatial_scale = 1 / stride,

which is what ``roi_align(..., aligned=True)`` computes. Inside a box the X×Y grid has one sample at
the centre of each bin, ``x_j = x1 + (j + 0.5) * (x2 - x1) / out_w`` (likewise for y), read by
bilinear interpolation: Eq. 1 with the kernel ``k(d) = max(0, 1 - |d|)``.

Map border: roi_align and the literal Eq. 1 agree wherever the sample lies within the cell centres,
``0 <= u <= w - 1``, i.e. input ``x`` in ``[stride/2, w * stride - stride/2]``. Outside that,
roi_align replicates the edge: a sample with ``-1 <= u < 0`` (input ``x`` in
``[-stride/2, stride/2)``: from half a cell outside the map to the first cell's centre) is
clamped to ``u = 0`` and gets the edge value with full weight, whereas Eq. 1 literally gives
``(1 + u) * U[0]`` (zero padding, fading to 0 at ``u = -1``); the same at ``w - 1 < u <= w``.
Both give 0 beyond one cell outside (``u < -1`` or ``u > w``). Edge replication is the
better-behaved choice for boxes touching the frame border (an actor at the edge is not darkened),
so wsal keeps roi_align's behaviour; the tests compare with Eq. 1 where samples stay within the
cell centres. (The map ends at ``w * stride`` input pixels: before the frame's edge when the
encoder floors odd sizes, after it when it rounds up; see ``Encoder``.)
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torchvision.ops import roi_align

__all__ = ["ActorOfInterestPooling", "actor_of_interest_pool"]


def actor_of_interest_pool(
    features: Tensor,
    boxes: Tensor,
    valid: Tensor,
    spatial_scale: float,
    output_size: tuple[int, int] = (5, 5),
) -> Tensor:
    """Pool each tube's boxes on their frames' response maps and average over the tube's frames.

    Args:
        features: Tensor[B*T, C, h, w] encoder maps, frame-major per video: row ``b * T + t`` is
            sampled frame ``t`` (0-based) of video ``b``.
        boxes: Tensor[B, K, T, 4] ``xyxy`` in input-frame pixels, continuous (see the module
            docstring); entries where ``valid`` is False are ignored (may be anything, even NaN).
        valid: bool Tensor[B, K, T]: tube ``k`` of video ``b`` has a box in sampled frame ``t``.
        spatial_scale: ``1 / encoder.stride``; input pixel ``x`` is feature coordinate
            ``x * spatial_scale - 0.5``.
        output_size: ``(out_h, out_w)``, rows × columns of the sampling grid, as in roi_align
            (the paper's X × Y; Eq. 1 indexes U as W'×H', wsal keeps torch's [C, h, w] layout).

    Returns:
        Tensor[B, K, C, out_h, out_w], ``features.dtype``/device: for each tube the mean over its
        valid frames of Eq. 1's bilinear samples at the bin centres; zeros for a tube with no valid
        frame (callers mask such tubes). Differentiable w.r.t. ``features`` (not ``boxes``).
    """
    if features.dim() != 4:
        raise ValueError(f"features must be [B*T, C, h, w], got shape {tuple(features.shape)}")
    if boxes.dim() != 4 or boxes.shape[-1] != 4:
        raise ValueError(f"boxes must be [B, K, T, 4], got shape {tuple(boxes.shape)}")
    B, K, T, _ = boxes.shape
    BT, C, h, w = features.shape
    if valid.shape != (B, K, T):
        raise ValueError(f"valid must be [B, K, T] = {(B, K, T)}, got {tuple(valid.shape)}")
    if valid.dtype != torch.bool:
        raise TypeError(f"valid must be a bool mask, got {valid.dtype}")
    if BT != B * T:
        raise ValueError(
            f"features hold {BT} frames but boxes [B={B}, K={K}, T={T}, 4] imply B*T = {B * T}"
        )
    out_h, out_w = output_size

    # One roi per valid (b, k, t), all in a single roi_align call; nonzero's row-major order is
    # also the order of boxes[valid].
    b, k, t = valid.nonzero().unbind(1)  # each [R]
    frame = (b * T + t).to(features.dtype)  # [R] row of `features` holding the box
    rois = torch.cat([frame[:, None], boxes[b, k, t].to(features.dtype)], dim=1)  # [R, 5]
    # sampling_ratio=1: one sample at each bin centre, the uniform X×Y grid of Eq. 1.
    pooled = roi_align(
        features, rois, (out_h, out_w), spatial_scale, sampling_ratio=1, aligned=True
    )  # [R, C, out_h, out_w]

    # Scatter into a dense per-(b, k, t) tensor and sum over t rather than index_add_ per tube:
    # index_put with unique indices is deterministic on CUDA (its backward is a gather), whereas
    # index_add_ accumulates with atomics. At most the size of `pooled` when every box is valid.
    dense = pooled.new_zeros(B * K * T, C * out_h * out_w)  # [B*K*T, C*out_h*out_w]
    dense = dense.index_put(((b * K + k) * T + t,), pooled.flatten(1))  # rows of valid boxes
    sums = dense.view(B, K, T, C, out_h, out_w).sum(dim=2)  # [B, K, C, out_h, out_w]
    counts = valid.sum(dim=2).clamp(min=1).to(features.dtype)  # [B, K]; 0 valid -> sums are 0
    return sums / counts[:, :, None, None, None]  # [B, K, C, out_h, out_w]


class ActorOfInterestPooling(nn.Module):
    """Module form of :func:`actor_of_interest_pool`, holding ``spatial_scale`` and
    ``output_size``; ``forward(features [B*T, C, h, w], boxes [B, K, T, 4], valid [B, K, T])
    -> Tensor[B, K, C, out_h, out_w]``."""

    def __init__(self, spatial_scale: float, output_size: tuple[int, int] = (5, 5)) -> None:
        super().__init__()
        self.spatial_scale = float(spatial_scale)
        self.output_size = (int(output_size[0]), int(output_size[1]))

    def forward(self, features: Tensor, boxes: Tensor, valid: Tensor) -> Tensor:
        return actor_of_interest_pool(features, boxes, valid, self.spatial_scale, self.output_size)

    def extra_repr(self) -> str:
        return f"spatial_scale={self.spatial_scale}, output_size={self.output_size}"
