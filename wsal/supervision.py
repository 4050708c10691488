"""Supervision levels (DESIGN §2, STIL §3.3): what annotation a training video carries.

Only ``labels`` (video-level class labels, the weakly-supervised setting) exists so far; points,
boxes, strided frames and mixtures, with STIL's Eq. 5-7 and the annotation-cost model, come with
STIL. The spec is recorded with every run so results say what supervision produced them.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["SupervisionSpec", "LEVELS"]

LEVELS = ("labels",)


@dataclass(frozen=True)
class SupervisionSpec:
    """``level``: one of :data:`LEVELS`; ``stride``: annotate every n-th frame (1 = every)."""

    level: str = "labels"
    stride: int = 1

    def __post_init__(self) -> None:
        if self.level not in LEVELS:
            raise ValueError(f"unknown supervision level {self.level!r}; implemented: {LEVELS}")
        if self.stride < 1:
            raise ValueError(f"stride must be >= 1, got {self.stride}")
