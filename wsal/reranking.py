"""Reranking of tube scores after a method (DESIGN §2, STIL §3.4).

``NoReranking`` returns the detections unchanged. Contextual and negative-evidence reranking
arrive with STIL (they need a video classifier and per-class scores of every tube).
"""

from __future__ import annotations

from wsal.structures import TubeDetections

__all__ = ["NoReranking"]


class NoReranking:
    name = "none"

    def __call__(self, dets: TubeDetections) -> TubeDetections:
        return dets
