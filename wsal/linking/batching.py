"""What the batched linkers share: linking many videos a chunk at a time, and cache keys."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from tqdm import tqdm

from wsal.structures import Detections, Tubes

__all__ = ["link_in_batches", "params_key"]


def params_key(params: Mapping[str, Any]) -> str:
    """12 hex characters of the SHA-1 of the parameters that shape a linker's tubes."""
    return hashlib.sha1(json.dumps(params, sort_keys=True).encode()).hexdigest()[:12]


def link_in_batches(
    dets: Mapping[str, Detections],
    batch_videos: int,
    desc: str,
    progress: bool,
    link_batch: Callable[[list[Detections], list[str]], Sequence[Tubes]],
) -> dict[str, Tubes]:
    """Tubes per video (same keys as ``dets``): ``link_batch(dets, names)`` on ``batch_videos``
    videos per call, with a progress bar."""
    videos = list(dets)
    out: dict[str, Tubes] = {}
    with tqdm(total=len(videos), desc=desc, unit="video", disable=not progress) as bar:
        for i in range(0, len(videos), batch_videos):
            chunk = videos[i : i + batch_videos]
            out.update(zip(chunk, link_batch([dets[v] for v in chunk], chunk)))
            bar.update(len(chunk))
    return out
