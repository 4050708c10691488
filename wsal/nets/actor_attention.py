"""Actor attention's network ("Guess Where?" §3.2), without its training loop.

``ActorAttentionNet`` is encoder (per frame) -> actor-of-interest pooling (Eq. 1, bilinear X x Y
grid inside each tube box, mean over the tube's frames) -> linear classifier per tube
(``forward`` = inference: tube logits); ``attention_pool`` is the tube -> video step (per class,
the mean of the top-k tube scores). The LightningModule that adds the loss, metrics and optimiser
is ``wsal.models.actor_attention.ActorAttention`` (STYLE 6).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from wsal.nets.encoders import Encoder
from wsal.nets.pooling import actor_of_interest_pool

__all__ = ["attention_pool", "ActorAttentionNet", "ATTENTIONS"]

ATTENTIONS = ("topk", "max", "mean")


def attention_pool(
    tube_logits: Tensor, tube_mask: Tensor, mode: str = "topk", k: int = 12
) -> Tensor:
    """Video logits ``[B, L]`` from tube logits ``[B, K, L]`` and ``tube_mask bool[B, K]``.

    - ``topk`` (the paper): per class, the mean of the ``k`` highest tube logits among the video's
      valid tubes (``min(k, n_valid)`` when it has fewer); the gradient reaches the selected tubes
      only, i.e. the binary-mask subgradient of the selection.
    - ``max``: per class, the best valid tube (top-1); ``mean``: the mean over valid tubes.

    A video without any valid tube gets zero logits (a uniform softmax, so no gradient signal).
    """
    if mode not in ATTENTIONS:
        raise ValueError(f"unknown attention {mode!r}; choose one of {ATTENTIONS}")
    B, K, L = tube_logits.shape
    mask = tube_mask.bool()  # [B, K]
    n_valid = mask.sum(dim=1)  # [B]
    if mode == "mean":
        w = (
            mask.to(tube_logits.dtype) / n_valid.clamp_min(1).to(tube_logits.dtype)[:, None]
        )  # [B, K]
        return (tube_logits * w[:, :, None]).sum(dim=1)  # [B, L]
    kk = torch.ones_like(n_valid) if mode == "max" else n_valid.clamp(max=k)  # [B] k per video
    masked = tube_logits.masked_fill(~mask[:, :, None], float("-inf"))  # [B, K, L]
    top, _ = masked.sort(dim=1, descending=True)  # [B, K, L] per class, best tubes first
    rank = torch.arange(K, device=tube_logits.device)  # [K]
    sel = (rank[None, :] < kk[:, None]).to(tube_logits.dtype)  # [B, K] the first kk ranks
    top = torch.where(sel[:, :, None] > 0, top, torch.zeros_like(top))  # drop -inf of the rest
    return (top * sel[:, :, None]).sum(dim=1) / kk.clamp_min(1).to(tube_logits.dtype)[:, None]


class ActorAttentionNet(nn.Module):
    """Encoder + actor-of-interest pooling + a linear classifier per tube.

    ``forward(frames [B, T, 3, H, W], boxes [B, K, T, 4] xyxy input pixels, box_valid bool[B, K, T])
    -> tube logits [B, K, L]`` = ``classify(tube_features(...))``; ``normalize`` L2-normalises
    each tube's features before the classifier.
    """

    def __init__(
        self,
        encoder: Encoder,
        num_classes: int,
        output_size: tuple[int, int] = (5, 5),
        dropout: float = 0.0,
        normalize: bool = False,
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.normalize = bool(normalize)
        self.output_size = (int(output_size[0]), int(output_size[1]))
        in_features = encoder.out_channels * self.output_size[0] * self.output_size[1]
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(in_features, num_classes)
        nn.init.xavier_uniform_(self.classifier.weight)  # the paper: Xavier initialisation
        nn.init.zeros_(self.classifier.bias)

    def tube_features(self, frames: Tensor, boxes: Tensor, box_valid: Tensor) -> Tensor:
        """Pooled tube features ``[B, K, C * X * Y]``."""
        x = frames.flatten(0, 1)  # [B*T, 3, H, W] (the encoder applies channels_last itself)
        fmap = self.encoder(x)  # [B*T, C, h, w]
        pooled = actor_of_interest_pool(
            fmap, boxes, box_valid, 1.0 / self.encoder.stride, self.output_size
        )  # [B, K, C, X, Y]
        return pooled.flatten(2)  # [B, K, C*X*Y]

    def classify(self, feats: Tensor) -> Tensor:
        """Tube logits ``[B, K, L]`` from pooled tube features ``[B, K, D]`` (L2-normalised first
        when ``normalize``: frozen ImageNet maps vary in scale between tubes and videos)."""
        if self.normalize:
            feats = torch.nn.functional.normalize(feats, dim=-1)
        return self.classifier(self.dropout(feats))  # [B, K, L]

    def forward(self, frames: Tensor, boxes: Tensor, box_valid: Tensor) -> Tensor:
        return self.classify(self.tube_features(frames, boxes, box_valid))  # [B, K, L]
