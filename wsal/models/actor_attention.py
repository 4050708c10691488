"""Actor attention ("Guess Where?" §3.2): classify actor tubes from video labels alone.

encoder (per frame) -> actor-of-interest pooling (Eq. 1, bilinear X x Y grid inside each tube box,
mean over the tube's frames) -> linear classifier per tube -> attention over tubes (per class, the
mean of the top-k tube scores) -> softmax cross-entropy against the video label.

The plain network (``ActorAttentionNet``, ``forward`` = inference: tube logits) and the tube ->
video step (``attention_pool``) are in :mod:`wsal.nets.actor_attention`; ``ActorAttention`` here is
the LightningModule that owns the loss, metrics and optimiser (STYLE 6).
"""

from __future__ import annotations

from typing import Any, Literal

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import Tensor

from wsal.nets.actor_attention import ATTENTIONS, ActorAttentionNet, attention_pool
from wsal.nets.encoders import build_encoder

__all__ = ["ActorAttention", "TEST_SCORES"]

TEST_SCORES = ("softmax", "logit", "video")


class ActorAttention(pl.LightningModule):
    """Training system for actor attention.

    Args:
        num_classes: L.
        encoder / encoder_weights / frozen_bn / channels_last / trainable_encoder: see
            :func:`wsal.nets.encoders.build_encoder`.
        output_size: the X x Y pooling grid (paper: 5 x 5).
        attention: ``topk`` (paper), ``max`` or ``mean`` (the ablation).
        k: tubes averaged per class by ``topk`` (paper: 12 of 20).
        supervision: ``weak`` (video labels only) or ``box`` — the upper bound: the video's tube
            with the highest st-IoU with its GT is its only positive (``batch["gt_tube"]``).
        optimizer: ``sgd`` with momentum (the paper, for a pretrained encoder) or ``adam`` (an
            encoder trained from scratch on a CPU budget converges in far fewer steps with it).
        lr, momentum, weight_decay, lr_step, lr_gamma: the weight decay applies to the classifier
            only (paper); the learning rate is multiplied by ``lr_gamma`` every ``lr_step`` epochs.
        test_score: a test tube's score for class c: ``softmax`` (the tube's class probability,
            what the paper's per-tube classifier gives) or ``logit`` (its raw class score, which
            keeps how strongly the tube shows the class) or ``video``: ``log p(c | video)`` from
            the attention-pooled video logits (the training objective) plus the tube's logit
            minus the best tube's of its video — videos are ranked by their class evidence, tubes
            inside a video by their logit. docs/actor_attention.md compares them.
        normalize: L2-normalise each tube's pooled features before the classifier.

    A batch carries either clips (``frames``, ``boxes``, ``box_valid``: end to end) or stored
    tube features (``features [B, K, D]``: a frozen encoder, ``wsal.models.tube_features``);
    the classifier, attention and loss are the same.
    """

    def __init__(
        self,
        num_classes: int,
        encoder: str = "small",
        encoder_weights: str | None = None,
        frozen_bn: bool = False,
        channels_last: bool = False,
        trainable_encoder: bool = True,
        output_size: tuple[int, int] = (5, 5),
        dropout: float = 0.0,
        attention: Literal["topk", "max", "mean"] = "topk",
        k: int = 12,
        supervision: Literal["weak", "box"] = "weak",
        optimizer: Literal["sgd", "adam"] = "sgd",
        lr: float = 1e-3,
        momentum: float = 0.95,
        weight_decay: float = 1e-4,
        lr_step: int = 5,
        lr_gamma: float = 0.25,
        test_score: Literal["softmax", "logit", "video"] = "softmax",
        normalize: bool = False,
    ) -> None:
        super().__init__()
        if attention not in ATTENTIONS:
            raise ValueError(f"unknown attention {attention!r}; choose one of {ATTENTIONS}")
        if optimizer not in ("sgd", "adam"):
            raise ValueError(f"optimizer must be 'sgd' or 'adam', got {optimizer!r}")
        if supervision not in ("weak", "box"):
            raise ValueError(f"supervision must be 'weak' or 'box', got {supervision!r}")
        if test_score not in TEST_SCORES:
            raise ValueError(f"test_score must be one of {TEST_SCORES}, got {test_score!r}")
        self.save_hyperparameters()
        enc = build_encoder(
            encoder,
            encoder_weights,
            frozen_bn=frozen_bn,
            channels_last=channels_last,
            trainable=trainable_encoder,
        )
        oh, ow = output_size  # a list when it comes from a config
        self.net = ActorAttentionNet(enc, num_classes, (int(oh), int(ow)), dropout, normalize)
        self.name = "actor_attention"

    # ------------------------------------------------------------------------------- inference
    def forward(self, frames: Tensor, boxes: Tensor, box_valid: Tensor) -> Tensor:
        """Tube logits ``[B, K, L]``."""
        return self.net(frames, boxes, box_valid)

    def tube_logits(self, batch: dict[str, Tensor]) -> Tensor:
        """Tube logits ``[B, K, L]`` of a batch of clips or of stored tube features."""
        if "features" in batch:
            return self.net.classify(batch["features"])
        return self(batch["frames"], batch["boxes"], batch["box_valid"])

    def video_logits(self, tube_logits: Tensor, batch: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
        """(video logits ``[B, L]``, mask ``bool[B]`` of videos that carry a training signal)."""
        mask = batch["tube_mask"]  # [B, K]
        if self.hparams["supervision"] == "box":
            gt = batch["gt_tube"]  # [B]
            ok = gt >= 0
            idx = gt.clamp_min(0)
            ok = ok & mask.gather(1, idx[:, None]).squeeze(1)
            logits = tube_logits.gather(1, idx[:, None, None].expand(-1, 1, tube_logits.shape[2]))
            return logits.squeeze(1), ok  # [B, L]
        logits = attention_pool(tube_logits, mask, self.hparams["attention"], self.hparams["k"])
        return logits, mask.any(dim=1)

    # -------------------------------------------------------------------------------- training
    def _step(self, batch: dict[str, Tensor], split: str) -> Tensor:
        tube_logits = self.tube_logits(batch)  # [B, K, L]
        logits, ok = self.video_logits(tube_logits, batch)  # [B, L], [B]
        if ok.any():
            loss = F.cross_entropy(logits[ok].float(), batch["label"][ok])
        else:  # no video of this batch has a usable tube: a zero loss that keeps the graph
            loss = tube_logits.sum() * 0.0
        acc = (logits.argmax(dim=1) == batch["label"]).float().mean()
        bs = int(batch["label"].shape[0])
        self.log(
            f"{split}/loss",
            loss,
            prog_bar=split == "train",
            batch_size=bs,
            sync_dist=split != "train",
        )
        self.log(
            f"{split}/video_acc", acc, prog_bar=True, batch_size=bs, sync_dist=split != "train"
        )
        return loss

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        return self._step(batch, "train")

    # ------------------------------------------------------------------------------ validation
    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        return self._step(batch, "val")

    def test_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        return self._step(batch, "test")

    # ----------------------------------------------------------------------------- prediction
    def predict_step(self, batch: dict[str, Tensor], batch_idx: int) -> dict[str, Tensor]:
        """Per-tube class scores ``[B, K, L]``: ``test_score`` of each tube's logits."""
        tube_logits = self.tube_logits(batch).float()  # [B, K, L]
        mode = self.hparams["test_score"]
        if mode == "softmax":
            scores = tube_logits.softmax(dim=2)
        elif mode == "logit":
            scores = tube_logits
        else:  # the video's class evidence + the tube's logit relative to its video's best tube
            mask = batch["tube_mask"].bool()  # [B, K]
            video = attention_pool(tube_logits, mask, self.hparams["attention"], self.hparams["k"])
            masked = tube_logits.masked_fill(~mask[:, :, None], float("-inf"))
            best = masked.amax(dim=1, keepdim=True).clamp_min(-1e30)  # [B, 1, L]
            scores = video.log_softmax(dim=1)[:, None, :] + (tube_logits - best)
        return {
            "video_index": batch["video_index"].cpu(),
            "tube_scores": scores.cpu(),  # [B, K, L]
            "tube_mask": batch["tube_mask"].cpu(),
        }

    # ------------------------------------------------------------------------------ optimiser
    def configure_optimizers(self) -> dict[str, Any]:  # type: ignore[override]
        hp = self.hparams
        params = [
            {
                "params": [p for p in self.net.encoder.parameters() if p.requires_grad],
                "weight_decay": 0.0,
            },
            {"params": list(self.net.classifier.parameters()), "weight_decay": hp["weight_decay"]},
        ]
        if hp["optimizer"] == "adam":
            opt: torch.optim.Optimizer = torch.optim.Adam(params, lr=hp["lr"])
        else:
            opt = torch.optim.SGD(params, lr=hp["lr"], momentum=hp["momentum"])
        sched = torch.optim.lr_scheduler.StepLR(opt, step_size=hp["lr_step"], gamma=hp["lr_gamma"])
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "epoch"}}
