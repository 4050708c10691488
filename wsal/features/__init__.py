"""Box features and video descriptors (STIL §3.1 box representations ``x_ijk``, §3.4 the global
video classifier's input), with a memory-mapped cache keyed by dataset, detector and extractor.

- :class:`HogHofExtractor` (``features=hoghof``): HOG + HOF, training-free, the CPU default;
- :class:`CNNExtractor` (``features=cnn``): any ``build_encoder`` encoder or a trained wsal
  checkpoint's encoder + roi_align + pooling, run as a Lightning ``predict`` (imported lazily:
  it pulls in torch and Lightning);
- :func:`extract_box_features` -> :class:`BoxFeatures` (``store[video] -> float32 [N_v, D]``, rows
  aligned with the video's detections), :func:`extract_video_descriptors` -> ``{video: [D_g]}``.

See ``docs/features.md``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from wsal.features.hoghof import HogHofExtractor
from wsal.features.store import (
    BoxFeatures,
    FeatureStoreError,
    extract_box_features,
    extract_video_descriptors,
)

if TYPE_CHECKING:
    from wsal.features.cnn import CNNExtractor

__all__ = [
    "BoxFeatures",
    "CNNExtractor",
    "FeatureStoreError",
    "HogHofExtractor",
    "extract_box_features",
    "extract_video_descriptors",
]


def __getattr__(name: str) -> Any:
    if name == "CNNExtractor":  # lazy: `import wsal.features` stays free of torch / Lightning
        from wsal.features.cnn import CNNExtractor

        return CNNExtractor
    raise AttributeError(f"module 'wsal.features' has no attribute {name!r}")
