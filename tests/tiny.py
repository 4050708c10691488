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


# SynthConfig fields of the smallest SynthActors the linking/detection tests use: 2 classes,
# 1 train + 1 test video each, 64x48, 16-20 frames, at most 2 actors (override per test)
TINY_SYNTH = dict(
    classes=("wave", "run"),
    videos_per_class_train=1,
    videos_per_class_test=1,
    width=64,
    height=48,
    min_frames=16,
    max_frames=20,
    max_actors=2,
)


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


def fake_standard_dataset(name: str, root: str | Path, source: SynthActors) -> Path:
    """A stand-in for UCF Sports / J-HMDB / UCF101-24 under ``root`` in the layout their configs
    expect (``Frames/<video>/00001.jpg``, an ACT ``*-GT.pkl`` under the spec's file name with its
    class list and splits, and a ``detections.npz`` of the dataset's own), made of the tiny
    SynthActors videos of ``source`` relabelled: every class gets one training video (so STIL has
    a positive per class), the first three classes one test video; J-HMDB's three splits are the
    same partition. For running the real-dataset experiment configs end to end without the data."""
    import cv2
    import numpy as np

    from wsal.data.annotations import DatasetIndex, GTTube, VideoInfo, write_act_pkl
    from wsal.data.datasets import SPECS
    from wsal.data.detections import load_detections, save_detections
    from wsal.data.video import read_frames

    spec = SPECS[name]
    root = Path(root)
    src = source.prepare()
    src_dets = load_detections(src.detections)
    pool = list(src.index.videos)
    train_n, test_n = len(spec.labels), 3
    videos, dets, splits = {}, {}, {"train": [], "test": []}
    ext = ".png" if "png" in (spec.frame_pattern or "") else ".jpg"
    for i in range(train_n + test_n):
        s = pool[i % len(pool)]
        label = i if i < train_n else i - train_n
        vid = f"{spec.labels[label]}/v{i:03d}"
        info = src.index.videos[s]
        t0 = info.tubes[0]
        videos[vid] = VideoInfo(
            nframes=info.nframes,
            labels=[label],
            tubes=[GTTube(label, t0.frames, t0.boxes)],
            width=info.width,
            height=info.height,
        )
        splits["train" if i < train_n else "test"].append(vid)
        dets[vid] = src_dets[s]
        folder = root / (spec.media_dir or "Frames") / vid
        folder.mkdir(parents=True, exist_ok=True)
        for f, img in enumerate(read_frames(src.index.video_path(s))):
            cv2.imwrite(str(folder / f"{f + 1:05d}{ext}"), np.ascontiguousarray(img[..., ::-1]))
    if spec.num_splits > 1:
        for k in range(2, spec.num_splits + 1):
            splits[f"train{k}"], splits[f"test{k}"] = list(splits["train"]), list(splits["test"])
    write_act_pkl(DatasetIndex(list(spec.labels), splits, videos), root / spec.annotations)
    save_detections(root / "detections.npz", dets)
    return root


def run_script(script: str, *args: str, timeout: int = 300, env=None):
    """``python <script> args...`` from the repository root (train.py, eval.py), output captured;
    returns the CompletedProcess (callers assert on ``returncode``)."""
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    return subprocess.run(
        [sys.executable, script, *args],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
