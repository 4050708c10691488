"""The tiny SynthActors most tests run on: 3 classes x (2 train + 1 test) videos of 64x48 with
16-20 frames (seconds to generate), as a dataset source and as train.py overrides."""

from __future__ import annotations

from pathlib import Path

from wsal.data.datasets import SynthActors

# train.py overrides for a tiny SynthActors (7 classes x 1 + 1 videos; add
# dataset.videos_per_class_train=2 for two training videos per class)
TINY = [
    "dataset.videos_per_class_train=1",
    "dataset.videos_per_class_test=1",
    "dataset.width=64",
    "dataset.height=48",
    "dataset.min_frames=16",
    "dataset.max_frames=20",
    "dataset.progress=false",
]


def tiny_synthactors(root: str | Path, prepare: bool = True) -> SynthActors:
    """3 classes x (2 train + 1 test) videos, 64x48 (decord mis-decodes some widths, e.g. 48;
    64 keeps its fast path), 16-20 frames, generated under ``root/synthactors``."""
    ds = SynthActors(
        root=str(Path(root) / "synthactors"),
        progress=False,
        classes=("wave", "jump", "cartwheel"),
        videos_per_class_train=2,
        videos_per_class_test=1,
        width=64,
        height=48,
        min_frames=16,
        max_frames=20,
    )
    if prepare:
        ds.prepare()
    return ds


# + a tiny actor-attention run (the `make demo` experiment, 4 frames, 4 tubes, batches of 2)
TINY_ACTOR_ATTENTION = [
    "experiment=actor_attention_temporal_prim_synthactors_labels",
    "data.num_workers=0",
    "data.num_frames=4",
    "data.batch_size=2",
    "linker.num_tubes=4",
    "method.k=2",
    "trainer.enable_progress_bar=false",
]
