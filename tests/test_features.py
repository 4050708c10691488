"""Box features and video descriptors: HOG against OpenCV on hand-cropped boxes, HOF against a pixel
loop and a known translation, the cache (round trip, resume, keys, alignment errors), and the CNN
extractor against a direct roi_align computation and through Lightning predict."""

from __future__ import annotations

import pickle
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from omegaconf import ListConfig, OmegaConf
from torchvision.ops import roi_align

from wsal.data.annotations import DatasetIndex, VideoInfo
from wsal.data.video import VideoError
from wsal.features import (
    BoxFeatures,
    FeatureStoreError,
    HogHofExtractor,
    extract_box_features,
    extract_video_descriptors,
)
from wsal.features.hoghof import box_hof, box_hog, flow_votes, hog_descriptor
from wsal.features.store import check_rows, l2_normalize, prepare_boxes, sample_frame_ids
from wsal.structures import Detections

ROOT = Path(__file__).resolve().parents[1]
H, W, T = 48, 64, 8


# ------------------------------------------------------------------------------------ fixtures
def textured_frames(seed: int, n: int = T) -> np.ndarray:
    """uint8 [n, H, W, 3]: a smooth random background and a textured 16x16 square moving 2 px
    right per frame."""
    rng = np.random.default_rng(seed)
    bg = cv2.GaussianBlur(rng.integers(0, 255, (H, W, 3), dtype=np.uint8), (5, 5), 0)
    tex = rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)
    frames = np.repeat(bg[None], n, axis=0)
    for t in range(n):
        frames[t, 16:32, 8 + 2 * t : 24 + 2 * t] = tex
    return frames


def random_dets(seed: int, num_frames: int = T) -> Detections:
    rng = np.random.default_rng(seed)
    n = 12
    frame = rng.integers(0, num_frames, n)
    xy = rng.uniform([-8, -8], [W - 4, H - 4], (n, 2))
    wh = rng.uniform(0, 40, (n, 2))
    boxes = np.concatenate([xy, xy + wh], axis=1)
    boxes[0] = [10.0, 10.0, 10.0, 10.0]  # zero area
    boxes[1] = [W + 5.0, 3.0, W + 20.0, 30.0]  # wholly outside the frame
    return Detections.from_unsorted(frame, boxes, rng.random(n), num_frames)


def write_folder(folder: Path, frames: np.ndarray) -> None:
    folder.mkdir(parents=True)
    for i, f in enumerate(frames):
        assert cv2.imwrite(str(folder / f"{i:05d}.png"), cv2.cvtColor(f, cv2.COLOR_RGB2BGR))


@pytest.fixture()
def dataset(tmp_path):
    """Three lossless frame-folder videos; v2 has no detections."""
    videos, dets = {}, {}
    for i, v in enumerate(["a/v0", "a/v1", "b/v2"]):
        write_folder(tmp_path / "frames" / v, textured_frames(i))
        videos[v] = VideoInfo(T, [0], width=W, height=H, fps=25.0, path=f"frames/{v}")
        dets[v] = random_dets(i) if i < 2 else Detections.empty(T)
    index = DatasetIndex(["x"], {"train": list(videos)}, videos, root=tmp_path)
    return index, dets, tmp_path / "cache"


def count_calls(monkeypatch, cls, method: str) -> list[str]:
    calls: list[str] = []
    real = getattr(cls, method)

    def wrapped(self, *args, **kwargs):
        calls.append(method)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(cls, method, wrapped)
    return calls


# ---------------------------------------------------------------------------- shared helpers
def test_prepare_boxes_clips_and_widens():
    boxes = np.array(
        [
            [-5.0, -5.0, 30.0, 20.0],  # partly outside: clipped
            [10.0, 10.0, 10.0, 10.0],  # zero area: widened to 16 about its centre
            [60.0, 40.0, 63.0, 47.0],  # tiny at the corner: widened, shifted inside
            [80.0, 60.0, 90.0, 70.0],  # wholly outside: flattened on the border, then widened
        ]
    )
    out = prepare_boxes(boxes, W, H, 16.0)
    expected = [[0, 0, 30, 20], [2, 2, 18, 18], [48, 32, 64, 48], [48, 32, 64, 48]]
    np.testing.assert_allclose(out, expected)
    assert out.dtype == np.float32
    with pytest.raises(ValueError, match="finite"):
        prepare_boxes(np.array([[0.0, np.nan, 1.0, 1.0]]), W, H, 16.0)


def test_sample_frame_ids_at_2_fps():
    # 50 frames at 25 fps, 2 fps: the middles of the 0.5 s intervals, floor((k + 0.5) * 12.5)
    np.testing.assert_array_equal(sample_frame_ids(50, 25.0, 2.0), [6, 18, 31, 43])
    np.testing.assert_array_equal(sample_frame_ids(3, 25.0, 2.0), [2])  # short: one frame, clipped
    np.testing.assert_array_equal(sample_frame_ids(4, 2.0, 2.0), [0, 1, 2, 3])


def test_check_rows_names_the_video_and_counts_zero_rows():
    good = l2_normalize(np.random.default_rng(0).random((3, 4)))
    assert check_rows("v", good, 3, 4) == 0
    with pytest.raises(FeatureStoreError, match=r"'v'.*\(4, 4\)"):
        check_rows("v", good, 4, 4)
    bad = good.copy()
    bad[1, 2] = np.nan
    with pytest.raises(FeatureStoreError, match="'v'.*NaN"):
        check_rows("v", bad, 3, 4)
    with pytest.raises(FeatureStoreError, match="not L2-normalised"):
        check_rows("v", good * 2, 3, 4)
    zero = good.copy()
    zero[0] = 0
    assert check_rows("v", zero, 3, 4) == 1  # documented: an all-zero row is kept, counted


# ------------------------------------------------------------------------------------- HOG+HOF
def test_hog_part_equals_opencv_on_a_hand_cropped_box():
    frames = textured_frames(0)
    grey = cv2.cvtColor(frames[3], cv2.COLOR_RGB2GRAY)
    box = np.array([[5.3, 4.7, 30.2, 40.0]], np.float32)  # 26x36 px touched: enlarged to 32x64
    hand = grey[4:40, 5:31]  # floor(y1):ceil(y2), floor(x1):ceil(x2)
    ref = cv2.HOGDescriptor((32, 64), (16, 16), (8, 8), (8, 8), 9).compute(
        cv2.resize(hand, (32, 64), interpolation=cv2.INTER_LINEAR)
    )
    raw = box_hog(grey, box, hog_descriptor(32, 64, 8, 9))
    np.testing.assert_array_equal(raw[0], ref.reshape(-1))

    # In the full feature the HOG part is l2(hog) / sqrt(1 + hof_weight^2) (both parts non-zero).
    ext = HogHofExtractor(hof_weight=0.5)
    dets = Detections(np.array([3]), box, np.array([1.0]), T)
    feat = ext.video_box_features(frames, dets)
    assert feat.shape == (1, 756 + 72) and ext.hog_dim == 756
    np.testing.assert_allclose(
        feat[0, :756], ref.reshape(-1) / np.linalg.norm(ref) / np.sqrt(1.25), atol=1e-6
    )


def hof_loop(votes, box, rows, cols):
    """Slow twin of box_hof: each pixel whose centre lies in cell (r, c) adds its votes."""
    B = votes.shape[2]
    sums = np.zeros((rows, cols, B))
    count = np.zeros((rows, cols))
    x1, y1, x2, y2 = (float(v) for v in box)
    for y in range(votes.shape[0]):
        for x in range(votes.shape[1]):
            cx, cy = x + 0.5, y + 0.5
            if not (x1 <= cx < x2 and y1 <= cy < y2):
                continue
            c = min(int((cx - x1) / (x2 - x1) * cols), cols - 1)
            r = min(int((cy - y1) / (y2 - y1) * rows), rows - 1)
            sums[r, c] += votes[y, x]
            count[r, c] += 1
    return (sums / np.maximum(count, 1)[..., None]).reshape(-1)


def test_box_hof_matches_pixel_loop():
    rng = np.random.default_rng(0)
    votes = rng.random((H, W, 5)).astype(np.float32)
    x1y1 = rng.uniform(0, 30, (20, 2))
    boxes = np.concatenate([x1y1, x1y1 + rng.uniform(6, 30, (20, 2))], axis=1)
    boxes = prepare_boxes(boxes, W, H, 8.0)
    fast = box_hof(votes, boxes, rows=3, cols=2)
    for b, f in zip(boxes, fast):
        np.testing.assert_allclose(f, hof_loop(votes, b, 3, 2), rtol=1e-5, atol=1e-6)


def test_flow_votes_hand_computed():
    flow = np.zeros((1, 4, 2), np.float32)
    flow[0, 0] = [1.0, 0.0]  # right, 1/4 of saturation
    flow[0, 1] = [0.0, 8.0]  # down (y grows downwards), saturated
    flow[0, 2] = [np.cos(np.pi / 8) * 4, np.sin(np.pi / 8) * 4]  # 22.5 deg: half bin 0, half bin 1
    flow[0, 3] = [-3.0, 0.0]  # left
    v = flow_votes(flow, bins=8, saturation=4.0)[0]  # [4, 9]
    np.testing.assert_allclose(v.sum(axis=1), 1.0, atol=1e-6)
    expect = np.zeros((4, 9))
    expect[0, [0, 8]] = [0.25, 0.75]
    expect[1, 2] = 1.0
    expect[2, [0, 1]] = [0.5, 0.5]
    expect[3, [4, 8]] = [0.75, 0.25]
    np.testing.assert_allclose(v, expect, atol=1e-6)


@pytest.mark.parametrize(("direction", "bin_"), [((1, 0), 0), ((0, 1), 2), ((-1, 0), 4)])
def test_hof_follows_a_known_translation(direction, bin_):
    """A textured square moving 2 px/frame: the box's motion mass sits in the direction's bin."""
    rng = np.random.default_rng(1)
    tex = cv2.GaussianBlur(rng.integers(0, 255, (20, 20, 3), dtype=np.uint8), (3, 3), 0)
    frames = np.full((4, 64, 64, 3), 90, np.uint8)
    dx, dy = direction
    for t in range(4):
        x, y = 22 + 2 * dx * t, 22 + 2 * dy * t
        frames[t, y : y + 20, x : x + 20] = tex
    ext = HogHofExtractor(hof_rows=1, hof_cols=1)
    box = np.array([[24.0, 24.0, 40.0, 40.0]], np.float32)  # inside the square at frames 0 and 1
    feat = ext.video_box_features(frames, Detections(np.array([0]), box, np.array([1.0]), 4))
    hof = feat[0, ext.hog_dim :]  # [9]: 8 directions + no-motion
    raw = hof / hof.sum()  # one cell: the raw histogram sums to 1, so this undoes the L2 scaling
    assert raw[:8].argmax() == bin_
    assert raw[bin_] > 0.9 * raw[:8].sum()
    # 2 px/frame is half of flow_saturation=4: half of each pixel's vote is motion
    assert raw[bin_] == pytest.approx(0.5, abs=0.05) and raw[8] == pytest.approx(0.5, abs=0.05)

    static = frames.copy()
    static[1:] = static[0]
    feat = ext.video_box_features(static, Detections(np.array([0]), box, np.array([1.0]), 4))
    assert feat[0, ext.hog_dim + 8] > 0.99 * np.linalg.norm(feat[0, ext.hog_dim :])


def test_hoghof_rows_aligned_unit_norm_and_never_zero():
    frames = textured_frames(0)
    frames[:, 28:, 36:] = 128  # a flat, static patch: its HOG is 0
    dets = random_dets(0)
    flat = Detections(
        np.concatenate([dets.frame, [T - 1]]),
        np.concatenate([dets.boxes, [[40.0, 30.0, 62.0, 47.0]]]),
        np.concatenate([dets.scores, [0.5]]),
        T,
    )
    ext = HogHofExtractor()
    feats = ext.video_box_features(frames, flat)
    assert feats.shape == (len(flat), ext.dim) and feats.dtype == np.float32
    assert np.isfinite(feats).all()
    np.testing.assert_allclose(np.linalg.norm(feats, axis=1), 1.0, atol=1e-5)
    assert np.all(feats[-1, : ext.hog_dim] == 0)  # flat: HOG 0, HOF still a unit vector
    # Row i describes box i: recomputing one box alone gives its row.
    i = 5
    alone = ext.video_box_features(frames, flat.select(np.array([i])))
    np.testing.assert_allclose(alone[0], feats[i], atol=1e-6)
    assert pickle.loads(pickle.dumps(ext)).cache_key() == ext.cache_key()


def test_hoghof_video_descriptor():
    frames = textured_frames(2)
    ext = HogHofExtractor()
    d = ext.video_descriptor(frames, np.array([1, 4, T - 1]))
    assert d.shape == (ext.descriptor_dim,) == (1260 + 108,)
    assert np.isclose(np.linalg.norm(d), 1.0, atol=1e-6)
    # mean-pooled: the descriptor of frames {1, 4} is l2 of the mean of the single-frame ones
    one = [ext.video_descriptor(frames, np.array([f])) for f in (1, 4)]
    np.testing.assert_allclose(
        ext.video_descriptor(frames, np.array([1, 4])), l2_normalize(np.mean(one, 0)), atol=1e-6
    )
    with pytest.raises(ValueError, match="frame_ids"):
        ext.video_descriptor(frames, np.array([T]))


def test_cache_key_changes_with_every_shaping_parameter():
    base = HogHofExtractor().cache_key()
    assert HogHofExtractor(workers=2).cache_key() == base  # workers do not change features
    for kw in (
        {"hof_bins": 6},
        {"box_width": 40},
        {"flow_saturation": 2.0},
        {"min_box_size": 20.0},
        {"farneback": (0.5, 2, 15, 3, 5, 1.2)},
    ):
        assert HogHofExtractor(**kw).cache_key() != base, kw


# ----------------------------------------------------------------------------------- the store
def test_cache_round_trip_does_not_recompute(dataset, monkeypatch):
    index, dets, cache = dataset
    ext = HogHofExtractor()
    calls = count_calls(monkeypatch, HogHofExtractor, "video_box_features")
    store = extract_box_features(ext, index, dets, cache, "ds", "det", progress=False)
    assert len(calls) == 2  # the video without detections is not decoded
    assert isinstance(store, BoxFeatures) and store.dim == ext.dim
    assert store.videos == ["a/v0", "a/v1", "b/v2"]
    assert store.num_rows == len(dets["a/v0"]) + len(dets["a/v1"])
    frames = textured_frames(1)
    np.testing.assert_allclose(
        store["a/v1"], ext.video_box_features(frames, dets["a/v1"]), atol=1e-6
    )
    assert store["b/v2"].shape == (0, ext.dim)
    assert isinstance(store["a/v0"], np.memmap)
    assert not (cache / f"{store.path.stem}.chunks").exists()  # chunks removed once assembled

    again = extract_box_features(ext, index, dets, cache, "ds", "det", progress=False)
    assert len(calls) == 3  # the direct call above; nothing recomputed
    np.testing.assert_array_equal(again["a/v0"], store["a/v0"])
    other = extract_box_features(HogHofExtractor(hof_bins=6), index, dets, cache, "ds", "det",
                                 progress=False)  # fmt: skip
    assert other.path != store.path and other.dim == 756 + 4 * 2 * (6 + 1)
    with_feats = store.attach(dets)
    np.testing.assert_array_equal(with_feats["a/v0"].features, store["a/v0"])


def test_resume_after_a_crash_keeps_finished_videos(dataset, monkeypatch):
    index, dets, cache = dataset
    ext = HogHofExtractor()
    real = HogHofExtractor.video_box_features
    calls: list[int] = []

    def crash_on_second(self, frames, d):
        calls.append(len(d))
        if len(calls) == 2:
            raise RuntimeError("simulated crash")
        return real(self, frames, d)

    monkeypatch.setattr(HogHofExtractor, "video_box_features", crash_on_second)
    with pytest.raises(RuntimeError, match="simulated crash"):
        extract_box_features(ext, index, dets, cache, "ds", "det", progress=False)
    stem = f"boxfeat__ds__det__hoghof-{ext.cache_key()}"
    assert not (cache / f"{stem}.json").exists()  # nothing committed
    assert len(list((cache / f"{stem}.chunks").glob("*.npy"))) == 1  # the finished video
    assert not list(cache.glob(f"{stem}.*.npy"))  # no half-written store

    store = extract_box_features(ext, index, dets, cache, "ds", "det", progress=False)
    assert len(calls) == 3  # only the unfinished video was computed again
    assert calls[2] == calls[1]
    monkeypatch.setattr(HogHofExtractor, "video_box_features", real)
    for i, v in enumerate(["a/v0", "a/v1"]):
        np.testing.assert_allclose(
            store[v], ext.video_box_features(textured_frames(i), dets[v]), atol=1e-6
        )


def test_subset_then_the_rest(dataset, monkeypatch):
    index, dets, cache = dataset
    ext = HogHofExtractor()
    calls = count_calls(monkeypatch, HogHofExtractor, "video_box_features")
    first = extract_box_features(ext, index, dets, cache, "ds", "det", ["a/v1"], progress=False)
    assert first.videos == ["a/v1"] and len(calls) == 1
    keep = np.array(first["a/v1"])
    full = extract_box_features(ext, index, dets, cache, "ds", "det", progress=False)
    assert full.videos == ["a/v0", "a/v1", "b/v2"] and len(calls) == 2
    np.testing.assert_array_equal(full["a/v1"], keep)
    assert len(list(cache.glob("boxfeat__*.npy"))) == 1  # the old data file was removed


def test_features_not_matching_the_detections_are_refused(dataset):
    index, dets, cache = dataset
    store = extract_box_features(HogHofExtractor(), index, dets, cache, "ds", "det",
                                 progress=False)  # fmt: skip
    fewer = dets["a/v0"].select(np.arange(len(dets["a/v0"]) - 1))
    with pytest.raises(FeatureStoreError, match=r"'a/v0' has 12 feature rows but .* 11 boxes"):
        store.get("a/v0", fewer)
    moved = Detections(dets["a/v0"].frame, dets["a/v0"].boxes + 1, dets["a/v0"].scores, T)
    with pytest.raises(FeatureStoreError, match="'a/v0'.*differ"):
        store.check({"a/v0": moved})
    with pytest.raises(FeatureStoreError, match="'zz'"):
        store.attach({"zz": fewer})
    # The same call with changed detections re-extracts that video instead of serving stale rows.
    again = extract_box_features(HogHofExtractor(), index, {**dets, "a/v0": fewer}, cache, "ds",
                                 "det", progress=False)  # fmt: skip
    assert again["a/v0"].shape[0] == 11 and again.get("a/v0", fewer).shape[0] == 11


def test_detections_past_the_video_end_name_the_video(dataset):
    index, dets, cache = dataset
    index.videos["a/v0"].nframes = T + 5  # the index claims more frames than the folder holds
    long = Detections(np.array([T + 2]), np.array([[0.0, 0.0, 20.0, 20.0]]), np.ones(1), T + 5)
    with pytest.raises(VideoError, match="'a/v0'.*frame 10"):
        extract_box_features(HogHofExtractor(), index, {"a/v0": long}, cache, "ds", "det",
                             progress=False)  # fmt: skip


def test_pool_workers_give_the_serial_result(dataset):
    index, dets, cache = dataset
    serial = extract_box_features(HogHofExtractor(), index, dets, cache / "s", "ds", "det",
                                  progress=False)  # fmt: skip
    pooled = extract_box_features(HogHofExtractor(workers=2), index, dets, cache / "p", "ds",
                                  "det", progress=False)  # fmt: skip
    for v in serial.videos:
        np.testing.assert_array_equal(pooled[v], serial[v])


RANK_SCRIPT = """
import json, sys
import wsal
from wsal.data.annotations import read_wsal_json
from wsal.data.detections import load_detections
from wsal.features import HogHofExtractor, extract_box_features

root = sys.argv[1]
index = read_wsal_json(root + "/gt.json")
nframes = {v: i.nframes for v, i in index.videos.items()}
dets = load_detections(root + "/dets.npz", num_frames=nframes)
done = []
real = HogHofExtractor.video_box_features
HogHofExtractor.video_box_features = lambda self, f, d: done.append(len(d)) or real(self, f, d)
store = extract_box_features(HogHofExtractor(), index, dets, root + "/cache", "ds", "det",
                             progress=False)
print(json.dumps({"computed": done, "videos": store.videos, "rows": store.num_rows}))
"""


def test_ranks_without_a_process_group_share_the_videos(dataset):
    """Two processes launched with RANK/WORLD_SIZE (torchrun-style, no process group): each
    computes every other video, rank 0 assembles, both return the complete store."""
    import json
    import os
    import subprocess
    import sys

    from wsal.data.annotations import write_wsal_json
    from wsal.data.detections import save_detections

    index, dets, cache = dataset
    root = cache.parent
    write_wsal_json(index, root / "gt.json")
    save_detections(root / "dets.npz", {v: d for v, d in dets.items() if len(d)})
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", RANK_SCRIPT, str(root)],
            cwd=ROOT,
            env={**os.environ, "RANK": str(r), "WORLD_SIZE": "2"},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for r in (0, 1)
    ]
    outs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1][-2000:] for o in outs]
    res = [json.loads(o[0].strip().splitlines()[-1]) for o in outs]
    # dets.npz holds a/v0 and a/v1 (12 boxes each): rank 0 takes a/v0, rank 1 a/v1
    assert res[0]["computed"] == [12] and res[1]["computed"] == [12]
    assert res[0]["videos"] == res[1]["videos"] == ["a/v0", "a/v1"]
    assert res[0]["rows"] == res[1]["rows"] == 24


def test_video_descriptors_cached(dataset, monkeypatch):
    index, _, cache = dataset
    ext = HogHofExtractor()
    calls = count_calls(monkeypatch, HogHofExtractor, "video_descriptor")
    desc = extract_video_descriptors(ext, index, cache, "ds", fps=2.0, progress=False)
    assert set(desc) == set(index.videos) and len(calls) == 3
    # 8 frames at 25 fps sampled at 2 fps: one frame, floor(0.5 * 12.5) clipped to 7
    frames = textured_frames(0)
    np.testing.assert_allclose(desc["a/v0"], ext.video_descriptor(frames, np.array([6])), atol=1e-6)
    again = extract_video_descriptors(ext, index, cache, "ds", fps=2.0, progress=False)
    assert len(calls) == 4  # the direct call above only
    np.testing.assert_array_equal(again["b/v2"], desc["b/v2"])
    extract_video_descriptors(ext, index, cache, "ds", fps=5.0, videos=["a/v0"], progress=False)
    assert len(calls) == 5  # another rate is another cache


# ------------------------------------------------------------------------------------------ CNN
def test_cnn_matches_a_direct_roi_align_on_one_frame():
    from wsal.data.transforms import normalize_frames
    from wsal.features import CNNExtractor
    from wsal.nets.encoders import build_encoder

    ext = CNNExtractor("small", weights=None, seed=3, output_size=5, device="cpu")
    frames = textured_frames(0)
    boxes = np.array([[4.0, 6.0, 40.0, 44.0], [20.5, 3.2, 60.1, 30.0]], np.float32)
    dets = Detections(np.array([2, 2]), boxes, np.ones(2), T)
    feats = ext.video_box_features(frames, dets)

    torch.manual_seed(3)
    enc = build_encoder("small", weights=None).eval()
    with torch.no_grad():
        maps = enc(normalize_frames(frames[2:3]))  # [1, 128, 6, 8]
        rois = torch.tensor([[0.0, *b] for b in boxes])
        pooled = roi_align(maps, rois, (5, 5), 1 / 8, sampling_ratio=2, aligned=True)
    direct = torch.nn.functional.normalize(pooled.mean(dim=(2, 3)), dim=1).numpy()
    assert feats.shape == (2, 128) == (2, ext.dim)
    np.testing.assert_allclose(feats, direct, atol=1e-5)

    d = ext.video_descriptor(frames, np.array([2]))
    with torch.no_grad():
        g = torch.nn.functional.normalize(maps.mean(dim=(2, 3))[0], dim=0).numpy()
    np.testing.assert_allclose(d, g, atol=1e-5)
    assert CNNExtractor("small", seed=4).cache_key() != ext.cache_key()  # other weights
    flat = CNNExtractor("small", seed=3, output_size=5, pooling="flatten")
    assert flat.dim == 128 * 25 and flat.cache_key() != ext.cache_key()


def test_cnn_lightning_predict_equals_per_video_calls(dataset):
    from wsal.features import CNNExtractor

    index, dets, cache = dataset
    ext = CNNExtractor("small", seed=0, device="cpu", batch_frames=3)
    # A chunk left by an interrupted run is used as is (resume), not recomputed.
    stem = f"boxfeat__ds__det__cnn-{ext.cache_key()}"
    planted = l2_normalize(np.random.default_rng(0).random((len(dets["a/v0"]), 128)))
    (cache / f"{stem}.chunks").mkdir(parents=True)
    from wsal.features.store import detections_digest

    np.save(cache / f"{stem}.chunks" / f"a__v0.{detections_digest(dets['a/v0'])}.npy", planted)
    store = extract_box_features(ext, index, dets, cache, "ds", "det", progress=False)
    np.testing.assert_array_equal(store["a/v0"], planted)
    for i, v in enumerate(["a/v1"], start=1):
        np.testing.assert_allclose(
            store[v], ext.video_box_features(textured_frames(i), dets[v]), atol=1e-5
        )
        np.testing.assert_allclose(np.linalg.norm(store[v], axis=1), 1.0, atol=1e-5)
    assert store["b/v2"].shape == (0, 128)
    desc = extract_video_descriptors(ext, index, cache, "ds", progress=False)
    np.testing.assert_allclose(
        desc["a/v1"], ext.video_descriptor(textured_frames(1), np.array([6])), atol=1e-5
    )


def test_cnn_takes_a_trained_checkpoints_encoder(tmp_path):
    from wsal.features import CNNExtractor
    from wsal.models.actor_attention import ActorAttention

    torch.manual_seed(0)
    model = ActorAttention(num_classes=3, encoder="small")
    with torch.no_grad():
        model.net.encoder.block1.conv.weight.mul_(2.0)  # "trained": unlike any fresh init
    ckpt = tmp_path / "last.ckpt"
    # As Lightning + Hydra save it: hyper-parameters may hold omegaconf containers.
    hp = {"encoder": "small", "output_size": ListConfig([5, 5])}
    torch.save({"state_dict": model.state_dict(), "hyper_parameters": hp}, ckpt)
    ext = CNNExtractor(checkpoint=str(ckpt))
    for k, v in model.net.encoder.state_dict().items():
        torch.testing.assert_close(ext.encoder.state_dict()[k], v)
    assert ext.cache_key() != CNNExtractor().cache_key()
    with pytest.raises(ValueError, match="resnet18"):
        CNNExtractor(encoder="resnet18", checkpoint=str(ckpt))
    torch.save({"state_dict": {"other.weight": torch.zeros(1)}}, tmp_path / "bad.ckpt")
    with pytest.raises(ValueError, match="net.encoder."):
        CNNExtractor(checkpoint=str(tmp_path / "bad.ckpt"))


@pytest.mark.parametrize("name", ["hoghof", "cnn"])
def test_configs_instantiate(name):
    ext = instantiate(OmegaConf.load(ROOT / "conf" / "features" / f"{name}.yaml"))
    assert ext.name == name and ext.dim > 0 and len(ext.cache_key()) == 12
