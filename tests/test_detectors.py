"""Detector backends: the actor filter against a naive loop, detection over a dataset (Lightning
predict, shards, merge, resume, DDP), torchvision models and weights, and the errors.

Known answers come from ``FakeDetector``: a model whose boxes are integer functions of three pixels
of each image, so a per-frame loop over the decoded video (``expected_detections``) predicts the
merged file exactly. The real torchvision path runs a random-init
``fasterrcnn_mobilenet_v3_large_320_fpn`` (no weights, no network) on a tiny SynthActors.
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from tests.tiny import TINY_SYNTH
from wsal.data.annotations import DatasetIndex, read_wsal_json
from wsal.data.detections import DetectionsFormatError, load_detections
from wsal.data.synthactors import SynthConfig, generate
from wsal.data.video import VideoError, read_frames
from wsal.detection.backends import StoredDetections, TorchvisionDetector
from wsal.detection.model import (
    WeightsNotFoundError,
    build_detector,
    class_ids,
    filter_detections,
    hub_file,
    resolve_weights,
)
from wsal.detection.predict import (
    DetectorModule,
    completed_videos,
    jobs_from_index,
    merge_shards,
    run_detection,
    shard_videos,
)

SMALL_MODEL = "fasterrcnn_mobilenet_v3_large_320_fpn"
# 4 videos of 16-24 frames, 64x48 (a width decord decodes directly)
CFG = SynthConfig(**{**TINY_SYNTH, "max_frames": 24}, seed=0)


@pytest.fixture(scope="module")
def synth(tmp_path_factory) -> Path:
    return generate(tmp_path_factory.mktemp("synth") / "sa", CFG, workers=1, progress=False)


@pytest.fixture(scope="module")
def index(synth):
    return read_wsal_json(synth / "annotations.json")


# ------------------------------------------------------------------------------ the fake detector
LABELS = (1, 1, 1, 3, 1, 18)  # person x4, car, sheep
HALF_W = (8, 9, 8, 4, 12, 8)
HALF_H = (10, 11, 10, 6, 12, 10)
DX = (0, 1, 3, 0, -2, 6)
DY = (0, 1, 2, 0, 0, 3)


def fake_rows(img: Tensor) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """6 boxes of one image ``float [3, H, W]`` in [0, 1] from three of its pixels (as integers,
    so batching cannot change them): overlapping persons (NMS), a car on a person (other class),
    a sheep (filtered), distinct scores in [0, 0.5)."""
    a, b, c = (
        int(round(float(img[ch, y, x]) * 255)) for ch, y, x in ((0, 5, 7), (1, 20, 30), (2, 40, 60))
    )
    cx, cy = 14 + a % 30, 12 + b % 20  # box extents below keep every box inside 64x48
    k = np.arange(6)
    boxes = np.stack(
        [
            cx + np.array(DX) - np.array(HALF_W),
            cy + np.array(DY) - np.array(HALF_H),
            cx + np.array(DX) + np.array(HALF_W),
            cy + np.array(DY) + np.array(HALF_H),
        ],
        1,
    ).astype(np.float32)  # [6, 4]
    scores = (((a + 7 * b + c + 31 * k) % 50) / 100 + k / 1000).astype(np.float32)  # distinct
    return boxes, scores, np.array(LABELS, np.int64)


class FakeDetector(nn.Module):
    """torchvision's detection interface with :func:`fake_rows`; counts the images it sees."""

    def __init__(self) -> None:
        super().__init__()
        self.unused = nn.Parameter(torch.zeros(1))  # Lightning wants a module with parameters
        self.images = 0

    def forward(self, images: list[Tensor]) -> list[dict[str, Tensor]]:
        self.images += len(images)
        out = []
        for img in images:
            boxes, scores, labels = fake_rows(img)
            out.append(
                {
                    "boxes": torch.from_numpy(boxes),
                    "scores": torch.from_numpy(scores),
                    "labels": torch.from_numpy(labels),
                }
            )
        return out


FAKE_FILTER = {"keep_labels": [1, 3], "score_thresh": 0.2, "nms_iou": 0.5, "max_per_frame": 3}


def iou_py(a, b) -> float:
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def naive_filter(frame, boxes, scores, labels, keep_labels, score_thresh, nms_iou, max_per_frame):
    """Slow twin of filter_detections: one frame, one class at a time, greedy NMS by hand."""
    out = []
    for f in sorted(set(frame.tolist())):
        cand = [
            i
            for i in range(len(frame))
            if frame[i] == f and labels[i] in keep_labels and scores[i] >= score_thresh
        ]
        kept = []
        for lab in sorted({int(labels[i]) for i in cand}):
            group = sorted((i for i in cand if labels[i] == lab), key=lambda i: (-scores[i], i))
            chosen: list[int] = []
            for i in group:
                if nms_iou is None or all(
                    iou_py(boxes[i].astype(float), boxes[j].astype(float)) <= nms_iou
                    for j in chosen
                ):
                    chosen.append(i)
            kept += chosen
        kept.sort(key=lambda i: (-scores[i], i))
        out += kept[: max_per_frame if max_per_frame is not None else None]
    idx = np.array(out, np.int64)
    return frame[idx], boxes[idx], scores[idx], labels[idx]


def expected_detections(index, videos=None) -> dict[str, tuple[np.ndarray, ...]]:
    """(frame, boxes, scores, labels) per video: the fake detector frame by frame, then the naive
    filter, on frames decoded independently of the pipeline (read_frames, whole video)."""
    out = {}
    for v in videos or index.videos:
        frames = read_frames(index.video_path(v))[: index.videos[v].nframes]  # [T, H, W, 3]
        cols = [fake_rows(torch.from_numpy(f).permute(2, 0, 1).float() / 255) for f in frames]
        frame = np.repeat(np.arange(len(cols)), [len(c[1]) for c in cols])
        boxes, scores, labels = (np.concatenate([c[i] for c in cols]) for i in range(3))
        out[v] = naive_filter(frame, boxes, scores, labels, **FAKE_FILTER)
    return out


def run_fake(index, out, videos=None, **kw) -> FakeDetector:
    model = FakeDetector()
    module = DetectorModule(model, **FAKE_FILTER)
    kw = {"batch_frames": 5, "accelerator": "cpu", "num_workers": 0, "progress": False, **kw}
    run_detection(jobs_from_index(index, videos), module, out, **kw)
    return model


def read_columns(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


# ------------------------------------------------------------------------------ filter_detections
def test_filter_detections_hand_example():
    boxes = torch.tensor(
        [
            [0, 0, 10, 10],  # A person .9: kept
            [1, 0, 11, 10],  # B person .8: IoU(A, B) = 90 / 110 > .5, suppressed
            [0, 0, 10, 10],  # C car .7 on A: another class, kept
            [30, 30, 40, 40],  # D person .2 < threshold
            [50, 50, 60, 60],  # E label 2 (bicycle) not an actor of interest
            [20, 0, 30, 10],  # F person .6 in frame 0 but listed first (sorted by frame after)
        ],
        dtype=torch.float32,
    )
    frame = torch.tensor([1, 1, 1, 1, 1, 0])
    scores = torch.tensor([0.9, 0.8, 0.7, 0.2, 0.95, 0.6])
    labels = torch.tensor([1, 1, 3, 1, 2, 1])
    f, b, s, lab = filter_detections(frame, boxes, scores, labels, [1, 3], 0.5, 0.5, None)
    assert f.tolist() == [0, 1, 1]
    assert s.tolist() == pytest.approx([0.6, 0.9, 0.7])
    assert lab.tolist() == [1, 1, 3]
    assert b.tolist() == [[20, 0, 30, 10], [0, 0, 10, 10], [0, 0, 10, 10]]
    # IoU(A, B) = 0.818: a 0.85 NMS keeps B; top-1 per frame keeps F and A only
    f, _, s, _ = filter_detections(frame, boxes, scores, labels, [1, 3], 0.5, 0.85, None)
    assert s.tolist() == pytest.approx([0.6, 0.9, 0.8, 0.7])
    f, _, s, _ = filter_detections(frame, boxes, scores, labels, [1, 3], 0.5, 0.5, 1)
    assert f.tolist() == [0, 1] and s.tolist() == pytest.approx([0.6, 0.9])
    # nothing kept -> empty columns of the right shapes
    f, b, s, lab = filter_detections(frame, boxes, scores, labels, [5], 0.0, 0.5, 2)
    assert f.shape == (0,) and b.shape == (0, 4) and s.shape == (0,) and lab.shape == (0,)


@pytest.mark.parametrize("nms_iou", [None, 0.3, 0.5])
@pytest.mark.parametrize("max_per_frame", [None, 4])
def test_filter_detections_matches_naive_loop(nms_iou, max_per_frame):
    rng = np.random.default_rng(7)
    n = 400
    frame = rng.integers(0, 6, n)
    centers = rng.uniform(20, 200, (4, 2))[rng.integers(0, 4, n)]  # clusters: many overlaps
    c = centers + rng.normal(0, 4, (n, 2))
    wh = rng.uniform(10, 40, (n, 2))
    boxes = np.concatenate([c - wh / 2, c + wh / 2], 1).astype(np.float32)
    scores = rng.random(n).astype(np.float32)
    labels = rng.integers(1, 4, n)
    args = ([1, 3], 0.3, nms_iou, max_per_frame)
    got = filter_detections(
        torch.from_numpy(frame),
        torch.from_numpy(boxes),
        torch.from_numpy(scores),
        torch.from_numpy(labels),
        *args,
    )
    want = naive_filter(frame, boxes, scores, labels, *args)
    for g, w in zip(got, want, strict=True):
        np.testing.assert_array_equal(g.numpy(), w)
    assert 0 < len(want[0]) < n


# ------------------------------------------------------------------------------------ sharding
def test_shard_videos_hand_example_and_partition():
    # longest first to the least-loaded rank: 10 -> r0, 7 -> r1, 5 -> r1 (7 < 10), 3 -> r0
    assert shard_videos([10, 7, 5, 3], 0, 2) == [0, 3]
    assert shard_videos([10, 7, 5, 3], 1, 2) == [1, 2]
    rng = np.random.default_rng(0)
    nf = rng.integers(1, 500, 53).tolist()
    for world in (1, 2, 3, 8):
        parts = [shard_videos(nf, r, world) for r in range(world)]
        assert sorted(i for p in parts for i in p) == list(range(53))  # each video exactly once
        assert all(p == sorted(p) for p in parts)  # input order within a rank
        loads = [sum(nf[i] for i in p) for p in parts]
        assert max(loads) - min(loads) <= max(nf)  # greedy balance bound
    assert shard_videos([5], 1, 2) == []
    with pytest.raises(ValueError, match="rank 2"):
        shard_videos([1], 2, 2)


# ------------------------------------------------------------------- detection over a dataset
def test_detection_matches_frame_by_frame_twin_and_merges_in_index_order(index, tmp_path):
    out = tmp_path / "dets.npz"
    model = run_fake(index, out)
    nframes = {v: i.nframes for v, i in index.videos.items()}
    assert model.images == sum(nframes.values())  # every frame once (chunks of 5 frames)
    cols = read_columns(out)
    assert set(cols) == {"video", "frame", "boxes", "scores", "labels"}
    want = expected_detections(index)
    # merged file: videos in index order, each sorted by frame then descending score
    videos = list(index.videos)
    ids = np.concatenate([np.full(len(want[v][0]), v) for v in videos])
    np.testing.assert_array_equal(cols["video"], ids)
    for key, i in (("frame", 0), ("boxes", 1), ("scores", 2), ("labels", 3)):
        np.testing.assert_array_equal(cols[key], np.concatenate([want[v][i] for v in videos]))
    # the shard folder is a detections store too, and the store backend reads the merged file
    dets = StoredDetections(str(out)).load(index)
    shards = load_detections(out.with_name("dets.npz.shards"), num_frames=nframes)
    for v in videos:
        assert dets[v].num_frames == nframes[v]
        np.testing.assert_array_equal(dets[v].frame, want[v][0])
        np.testing.assert_array_equal(dets[v].labels, want[v][3])
        np.testing.assert_array_equal(np.sort(shards[v].scores), np.sort(want[v][2]))


def test_resume_recomputes_only_missing_videos(index, tmp_path):
    out = tmp_path / "dets.npz"
    shard_dir = tmp_path / "dets.npz.shards"
    run_fake(index, out, meta={"what": "test"})
    first = read_columns(out)
    assert (shard_dir / "meta.json").exists()
    videos = list(index.videos)
    assert completed_videos(shard_dir, videos) == set(videos)
    # an interruption: merged file and two shards lost
    out.unlink()
    lost = [videos[1], videos[3]]
    for v in lost:
        (shard_dir / (v.replace("/", "__") + ".npz")).unlink()
    assert completed_videos(shard_dir, videos) == {videos[0], videos[2]}
    model = run_fake(index, out, num_workers=2)  # two decoding workers, one video each
    assert model.images == sum(index.videos[v].nframes for v in lost)
    second = read_columns(out)
    for k in first:
        np.testing.assert_array_equal(first[k], second[k])
    # every shard present: only the merge runs
    out.unlink()
    assert run_fake(index, out).images == 0
    np.testing.assert_array_equal(read_columns(out)["scores"], first["scores"])


def test_merge_names_missing_shards(index, tmp_path):
    jobs = jobs_from_index(index)
    run_fake(index, tmp_path / "a.npz", videos=[jobs[0].video])
    with pytest.raises(FileNotFoundError, match="no detections for 3 of 4 videos"):
        merge_shards(tmp_path / "a.npz.shards", jobs, tmp_path / "b.npz")


def test_video_shorter_than_its_index_is_a_clear_error(index, tmp_path):
    bad = copy.deepcopy(index)
    v = next(iter(bad.videos))
    n = bad.videos[v].nframes
    bad.videos[v].nframes = n + 4
    with pytest.raises(VideoError, match=rf"{v}.*index says {n + 4} frames but the file has {n}"):
        run_fake(bad, tmp_path / "dets.npz", videos=[v])


def test_detections_beyond_the_frame_count_are_a_clear_error(index, tmp_path):
    out = tmp_path / "dets.npz"
    run_fake(index, out)
    v = next(iter(index.videos))
    short = copy.deepcopy(index)
    short.videos[v].nframes -= 3  # the detections now reach past the video's end
    with pytest.raises(DetectionsFormatError, match=rf"{v}.*>= the video's frame count"):
        StoredDetections(str(out)).load(short)
    # a file longer than its index: detected on the index's frames only, with a warning
    with pytest.warns(UserWarning, match="detecting on the first"):
        run_fake(short, tmp_path / "short.npz", videos=[v])
    d = load_detections(tmp_path / "short.npz", num_frames={v: short.videos[v].nframes})[v]
    assert d.frame.max() < short.videos[v].nframes


@pytest.mark.slow
def test_ddp_spawn_two_processes_match_one(index, tmp_path):
    """Two CPU ranks (gloo) split the videos; the merged file is the single-process one."""
    run_fake(index, tmp_path / "one.npz")
    run_fake(index, tmp_path / "two.npz", devices=2, strategy="ddp_spawn")
    one, two = read_columns(tmp_path / "one.npz"), read_columns(tmp_path / "two.npz")
    for k in one:
        np.testing.assert_array_equal(one[k], two[k])


# ---------------------------------------------------------------- torchvision models and weights
def test_unknown_model_class_and_mismatched_weights():
    with pytest.raises(ValueError, match="unknown torchvision detection model 'nope'"):
        resolve_weights("nope", None)
    with pytest.raises(ValueError, match="not a detection model"):
        resolve_weights("resnet18", None)
    r = resolve_weights(SMALL_MODEL, None)
    assert len(r.categories) == 91 and r.categories[1] == "person" and r.key == "random"
    assert class_ids(r.categories, ["person", "dog"]) == [1, 18]
    with pytest.raises(ValueError, match="unknown detector class 'persn'.*'person'"):
        class_ids(r.categories, ["persn"])
    with pytest.raises(ValueError, match="not for model"):
        resolve_weights(SMALL_MODEL, "FasterRCNN_ResNet50_FPN_V2_Weights.COCO_V1")
    with pytest.raises(WeightsNotFoundError, match="no/such.pth"):
        resolve_weights(SMALL_MODEL, "no/such.pth")


@pytest.fixture
def torch_home(tmp_path, monkeypatch) -> Path:
    """An empty torch hub cache, and no network: any download attempt fails the test."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))

    def no_network(*args, **kwargs):
        raise AssertionError("tried to download")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    return tmp_path / "torch"


def test_missing_weights_say_where_to_put_them(index, torch_home, tmp_path):
    det = TorchvisionDetector(SMALL_MODEL, "DEFAULT", device="cpu", out_dir=str(tmp_path / "o"))
    expected = (
        torch_home / "hub" / "checkpoints" / "fasterrcnn_mobilenet_v3_large_320_fpn-907ea3f9.pth"
    )
    with pytest.raises(WeightsNotFoundError) as err:
        det.load(index)
    msg = str(err.value)
    assert str(expected) in msg and "download=True" in msg and "local path" in msg
    assert "https://download.pytorch.org/models/" in msg
    assert not (tmp_path / "o").exists()  # failed before any detection output


def test_weights_from_hub_cache_enum_name_and_local_path(torch_home, tmp_path):
    random_net, _ = build_detector(SMALL_MODEL, None, seed=3)
    state = {k: v for k, v in random_net.state_dict().items() if "num_batches_tracked" not in k}
    key = "roi_heads.box_predictor.cls_score.weight"
    state[key] = torch.full_like(state[key], 0.25)  # a value that random init never gives
    enum = resolve_weights(SMALL_MODEL, "DEFAULT").enum
    hub = hub_file(enum)
    hub.parent.mkdir(parents=True)
    torch.save(state, hub)
    for weights in ("DEFAULT", str(enum)):
        net, resolved = build_detector(SMALL_MODEL, weights)
        assert resolved.key == "FasterRCNN_MobileNet_V3_Large_320_FPN_Weights.COCO_V1"
        assert torch.equal(net.state_dict()[key], state[key])
        # the architecture torchvision builds for pretrained weights (frozen BN)
        assert any(type(m).__name__ == "FrozenBatchNorm2d" for m in net.modules())
    local = tmp_path / "ckpt.pth"
    torch.save({"model": state, "epoch": 3}, local)  # torchvision reference-script layout
    net, resolved = build_detector(SMALL_MODEL, local)
    assert torch.equal(net.state_dict()[key], state[key]) and str(local.resolve()) in resolved.key
    torch.save({"backbone.nope": torch.zeros(1)}, local)
    with pytest.raises(ValueError, match=rf"{local}: not a state dict of torchvision's"):
        build_detector(SMALL_MODEL, local)


@pytest.fixture(scope="module")
def test_index(index) -> DatasetIndex:
    """The test split only (2 videos, 35 frames): the real model is slow on a loaded CPU."""
    videos = index.split("test")
    return DatasetIndex(
        index.labels, {"test": videos}, {v: index.videos[v] for v in videos}, index.root
    )


@pytest.fixture(scope="module")
def random_detector(test_index, tmp_path_factory):
    """A random-init small Faster R-CNN over the test videos (score 0, so it outputs boxes)."""
    det = TorchvisionDetector(
        SMALL_MODEL,
        weights=None,
        score_thresh=0.0,
        max_per_frame=10,
        min_size=48,
        max_size=64,
        device="cpu",
        num_workers=0,
        progress=False,
        out_dir=str(tmp_path_factory.mktemp("dets")),
    )
    return det, det.load(test_index)


def test_torchvision_detector_end_to_end(test_index, random_detector, monkeypatch):
    index = test_index
    det, dets = random_detector
    assert list(dets) == list(index.videos)
    total = 0
    for v, d in dets.items():
        info = index.videos[v]
        assert d.num_frames == info.nframes
        total += len(d)
        if not len(d):
            continue
        assert set(d.labels.tolist()) == {1}  # persons only
        assert d.per_frame_counts().max() <= 10
        assert (d.boxes[:, :2] >= 0).all() and (d.boxes[:, 2] <= 64).all()
        assert (d.boxes[:, 3] <= 48).all()
        same = d.frame[1:] == d.frame[:-1]
        assert (d.scores[1:][same] <= d.scores[:-1][same]).all()  # descending within a frame
    assert total > 0
    path = det.output_path(index)
    assert path.exists() and path.name.startswith("detections__")
    # a second load reads the cached file: no detection runs
    import wsal.detection.predict as predict

    def boom(*a, **k):
        raise AssertionError("detected again")

    monkeypatch.setattr(predict, "run_detection", boom)
    again = det.load(index)
    for v in dets:
        np.testing.assert_array_equal(again[v].boxes, dets[v].boxes)


def test_cache_key_follows_what_shapes_the_boxes():
    base = TorchvisionDetector(SMALL_MODEL, weights=None, score_thresh=0.0)
    same = TorchvisionDetector(
        SMALL_MODEL, weights=None, score_thresh=0.0, batch_frames=3, devices=2, num_workers=7
    )
    assert base.cache_key() == same.cache_key()
    for other in (
        TorchvisionDetector(SMALL_MODEL, weights=None, score_thresh=0.1),
        TorchvisionDetector(SMALL_MODEL, weights=None, score_thresh=0.0, seed=1),
        TorchvisionDetector(SMALL_MODEL, weights=None, score_thresh=0.0, classes=["dog"]),
        TorchvisionDetector(SMALL_MODEL, weights=None, score_thresh=0.0, min_size=100),
        TorchvisionDetector(SMALL_MODEL, weights="DEFAULT", score_thresh=0.0),
    ):
        assert other.cache_key() != base.cache_key()


def test_cli_matches_the_backend(synth, test_index, random_detector, tmp_path):
    from wsal.detection.__main__ import main

    det, _ = random_detector
    out = tmp_path / "cli.npz"
    argv = [
        "--synthactors",
        str(synth),
        "--model",
        SMALL_MODEL,
        "--weights",
        "none",
        "--score-thresh",
        "0",
        "--max-per-frame",
        "10",
        "--min-size",
        "48",
        "--max-size",
        "64",
        "--device",
        "cpu",
        "--workers",
        "0",
        "--no-progress",
        "--split",
        "test",
        "--out",
        str(out),
    ]
    assert main(argv) == 0
    a, b = read_columns(out), read_columns(det.output_path(test_index))  # same seed, same model
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
