"""HOG people detector: windows against OpenCV's own output, the resize/padding geometry, the
module against a per-frame loop with a naive NMS, the detector backend, and one real frame."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch

from wsal.detection.backends import HogDetector
from wsal.detection.hog import PERSON_LABEL, HogPeople, hog_windows
from wsal.detection.predict import HogDetectorModule
from wsal.tube_ops import box_iou


@pytest.fixture(scope="module")
def bikes():
    rf = pytest.importorskip("wsal.app.real_footage")
    try:
        path = rf.clip_path("bikes")
    except FileNotFoundError as e:
        pytest.skip(str(e))
    from wsal.data.video import VideoReader

    return path, VideoReader(path).get_frames(np.arange(28, 36))  # [8, 272, 640, 3]


def test_no_padding_windows_are_opencvs(bikes):
    _, frames = bikes
    det = HogPeople(pad=(0, 0, 0), min_inside=0.0, score_thresh=-0.5)
    boxes, scores = hog_windows(frames[4], det)
    rects, weights = det.hog.detectMultiScale(
        frames[4], hitThreshold=-0.5, winStride=(8, 8), padding=(0, 0), scale=1.05,
        groupThreshold=0,
    )  # fmt: skip
    r = np.asarray(rects, np.float32).reshape(-1, 4)
    w = np.asarray(weights, np.float32).reshape(-1)
    keep = w >= -0.5
    want = np.c_[np.concatenate([r[:, :2], r[:, :2] + r[:, 2:]], axis=1), w][keep]
    assert len(boxes) > 10
    np.testing.assert_array_equal(_sorted_rows(np.c_[boxes, scores]), _sorted_rows(want))


def _sorted_rows(a):
    """Rows ``[x1, y1, x2, y2, score]`` by descending score, then coordinates (hog_windows)."""
    return a[np.lexsort((a[:, 3], a[:, 2], a[:, 1], a[:, 0], -a[:, 4]))]


def test_resize_and_padding_map_back_to_frame_pixels(bikes):
    _, frames = bikes
    frame = frames[4]
    H, W = frame.shape[:2]
    det = HogPeople(resize=0.5, pad=(0.25, 1.0, 0.25), min_inside=0.0, score_thresh=-0.5)
    boxes, scores = hog_windows(frame, det)
    # by hand: resize, pad, detect, shift back, scale back, clip
    small = cv2.resize(frame, (W // 2, H // 2), interpolation=cv2.INTER_AREA)
    h, w = small.shape[:2]
    top, bottom, side = round(0.25 * h), round(1.0 * h), round(0.25 * w)
    padded = cv2.copyMakeBorder(small, top, bottom, side, side, cv2.BORDER_REPLICATE)
    rects, weights = det.hog.detectMultiScale(padded, -0.5, (8, 8), (0, 0), 1.05, 0)
    want = []
    for (x, y, ww, hh), s in zip(np.asarray(rects).reshape(-1, 4), np.ravel(weights)):
        x1, y1 = (x - side) * 2.0, (y - top) * 2.0
        want.append([max(x1, 0), max(y1, 0), min(x1 + 2 * ww, W), min(y1 + 2 * hh, H), s])
    want = _sorted_rows(np.asarray(want, np.float32))
    np.testing.assert_allclose(np.c_[boxes, scores], want, atol=1e-4)
    assert (boxes[:, :2] >= 0).all() and (boxes[:, 2] <= W).all() and (boxes[:, 3] <= H).all()


def _nms_loop(boxes, scores, iou, top):
    """Naive greedy NMS (IoU > iou suppresses), best first, at most ``top`` kept."""
    order = sorted(range(len(scores)), key=lambda i: (-scores[i], i))
    kept = []
    for i in order:
        if all(box_iou(boxes[i : i + 1], boxes[j : j + 1])[0, 0] <= iou for j in kept):
            kept.append(i)
    return kept[:top]


def test_module_matches_a_per_frame_loop(bikes):
    _, frames = bikes
    det = HogPeople(resize=0.5)
    module = HogDetectorModule(det, nms_iou=0.4, max_per_frame=3)
    frame, boxes, scores, labels = module(torch.from_numpy(frames[:4]))
    assert (labels == PERSON_LABEL).all()
    for t in range(4):
        b, s = hog_windows(frames[t], det)
        kept = _nms_loop(b, s, 0.4, 3)
        sel = (frame == t).numpy()
        np.testing.assert_allclose(boxes[sel].numpy(), b[kept], atol=1e-5)
        np.testing.assert_allclose(scores[sel].numpy(), s[kept])


def test_hog_finds_the_man_in_the_suit_in_one_real_frame(bikes):
    # A fast real-clip test: the default detector (whole-body windows may reach below the frame)
    # finds the cyclist in the suit, whom it only sees from the waist up, in frame 32.
    rf = pytest.importorskip("wsal.app.real_footage")
    lf, lb, _ = rf.load_labels("bikes_suit")
    _, frames = bikes
    module = HogDetectorModule(HogPeople())
    frame, boxes, _, _ = module(torch.from_numpy(frames[4:5]))  # frame 32
    assert int(lf[1]) == 32
    assert box_iou(boxes.numpy(), lb[1:2]).max() >= 0.5


def test_backend_detects_caches_and_reads_like_a_store(bikes, tmp_path):
    from wsal.data.annotations import read_wsal_json

    path, frames = bikes
    ann = {
        "labels": ["person"],
        "splits": {"train": [], "test": ["bikes"]},
        "videos": {
            "bikes": {"path": str(path), "nframes": 33, "width": 640, "height": 272,
                      "fps": 25, "labels": ["person"], "tubes": []}
        },
    }  # fmt: skip
    (tmp_path / "annotations.json").write_text(json.dumps(ann))
    index = read_wsal_json(tmp_path / "annotations.json", tmp_path)
    hog = HogDetector(resize=0.5, out_dir=str(tmp_path / "dets"), progress=False, num_workers=0)
    with pytest.warns(UserWarning, match="detecting on the first 33"):
        dets = hog.load(index)["bikes"]
    out = hog.output_path(index)
    assert out.is_file() and "hog-" in out.name
    mtime = out.stat().st_mtime_ns
    from wsal.data.video import VideoReader

    f, b, s, _ = hog.build_module()(torch.from_numpy(VideoReader(path).get_frames(np.arange(33))))
    assert len(f) and (dets.frame[-1] >= 30)  # the shot with the man in the suit starts at 30
    np.testing.assert_array_equal(dets.frame, f.numpy())
    np.testing.assert_allclose(dets.boxes, b.numpy(), atol=1e-4)
    np.testing.assert_allclose(dets.scores, s.numpy())
    assert hog.load(index)["bikes"].num_frames == 33 and out.stat().st_mtime_ns == mtime  # cached
    assert HogDetector(resize=1.0).cache_key() != hog.cache_key()


@pytest.mark.parametrize(
    "kwargs", [{"resize": 0}, {"pad": (0, 1)}, {"win_stride": 4}, {"scale": 1.0}, {"min_inside": 2}]
)
def test_bad_parameters_are_refused(kwargs):
    with pytest.raises(ValueError):
        HogPeople(**kwargs)


def test_one_set_of_defaults():
    """HOG_DEFAULTS is the one place the defaults are written: the window detector, the Lightning
    module, the backend and conf/detector/hog.yaml all use (or document) the same values."""
    import dataclasses
    import inspect
    from pathlib import Path

    from omegaconf import OmegaConf

    from wsal.detection.hog import HOG_DEFAULTS

    want = dataclasses.asdict(HOG_DEFAULTS)
    assert want["pad"] == (0.25, 1.5, 0.25) and want["nms_iou"] == 0.4  # the documented values
    people = HogPeople().params()
    assert {
        k: people[k] for k in ("resize", "win_stride", "scale", "score_thresh", "min_inside")
    } == {k: want[k] for k in ("resize", "win_stride", "scale", "score_thresh", "min_inside")}
    assert tuple(people["pad"]) == want["pad"]
    module = HogDetectorModule(HogPeople())
    assert (module.nms_iou, module.max_per_frame) == (want["nms_iou"], want["max_per_frame"])
    backend = inspect.signature(HogDetector).parameters
    assert {k: backend[k].default for k in want} == want
    yaml = OmegaConf.load(Path(__file__).resolve().parents[1] / "conf" / "detector" / "hog.yaml")
    assert {k: yaml[k] for k in want} == {**want, "pad": list(want["pad"])}


# ------------------------------------------------------------------------- window -> body box
def test_window_to_body_by_hand():
    from wsal.detection.hog import BODY_MARGINS, window_to_body

    win = np.array([[100.0, 50.0, 164.0, 178.0], [-10.0, 0.0, 22.0, 64.0]])  # 64x128, 32x64
    body = window_to_body(win, (0.25, 0.125, 0.25, 0.125))
    np.testing.assert_allclose(body, [[116, 66, 148, 162], [-2, 8, 14, 56]])
    np.testing.assert_allclose(window_to_body(win, (0, 0, 0, 0)), win)
    assert window_to_body(np.zeros((0, 4))).shape == (0, 4)
    assert BODY_MARGINS[0] == BODY_MARGINS[2]
    with pytest.raises(ValueError, match="margins"):
        window_to_body(win, (0.5, 0.1, 0.5, 0.1))
    with pytest.raises(ValueError, match="margins"):
        HogPeople(body=(0.1, 0.1, 0.1))


def test_body_boxes_are_the_windows_mapped_then_clipped(bikes):
    """body=... moves each unclipped window's sides inwards by the margins, then clips: same
    windows kept, same scores; the raw windows stay the default (cached detection stores)."""
    from wsal.detection.hog import BODY_MARGINS, window_to_body

    _, frames = bikes
    frame = frames[4]
    H, W = frame.shape[:2]
    for pad in [(0, 0, 0), (0.25, 1.5, 0.25)]:  # windows inside the frame; reaching outside it
        kw = {"resize": 1.0, "pad": pad, "score_thresh": -0.5}
        raw = HogPeople(**kw)
        assert raw.body is None and "body" not in raw.params()
        rb, rs = hog_windows(frame, raw)
        mapped = HogPeople(**kw, body=True)
        assert mapped.body == BODY_MARGINS and mapped.params()["body"] == list(BODY_MARGINS)
        mb, ms = hog_windows(frame, mapped)
        assert len(rb) > 5 and len(mb) == len(rb)
        np.testing.assert_array_equal(np.sort(ms), np.sort(rs))
        w, h = rb[:, 2] - rb[:, 0], rb[:, 3] - rb[:, 1]
        assert (mb[:, 2] - mb[:, 0]).max() <= 0.6 * w.max() + 1e-3  # 60% of the widest window
        if pad == (0, 0, 0):  # nothing clipped: exactly the mapping, row for row
            assert np.allclose(w * 2, h, atol=2)  # 64x128 proportions (pyramid rounding)
            want = window_to_body(rb, BODY_MARGINS)
            np.testing.assert_allclose(
                _sorted_rows(np.c_[mb, ms]), _sorted_rows(np.c_[want, rs]), atol=1e-3
            )
        else:  # clipped afterwards: inside the frame, and inside the (clipped) windows' union
            assert np.all(mb >= 0) and np.all(mb[:, [2, 3]] <= [W, H])


def test_body_boxes_fit_the_hand_labelled_basketball_people():
    """On the hand-labelled frames, mapped boxes overlap each person more than raw windows: the
    mean IoU of each person's best box rises (measured 0.42 -> 0.52 at resize 1.5)."""
    from pathlib import Path

    from wsal.data.video import VideoReader
    from wsal.tube_ops import box_iou

    clip = Path(__file__).resolve().parents[2] / "shared" / "data" / "real"
    path = clip / "basketball_gym_426x240.mp4"
    if not path.is_file():
        pytest.skip(f"{path} absent")
    labels = json.loads(
        (Path(__file__).parent / "fixtures/real/basketball_people.json").read_text()
    )
    frames = VideoReader(path).get_frames(labels["frames"])
    module = {b: HogDetectorModule(HogPeople(resize=1.5, body=b)) for b in (None, True)}
    mean = {}
    for b, m in module.items():
        f, boxes, _, _ = m(torch.from_numpy(frames))
        best = []
        for i, people in enumerate(labels["boxes"]):
            on = boxes[f == i].numpy()
            iou = box_iou(on, np.asarray(people, np.float32)) if len(on) else np.zeros((1, 2))
            best += iou.max(axis=0).tolist()
        mean[b] = float(np.mean(best))
    assert mean[True] > mean[None] + 0.05, mean
    assert mean[True] > 0.45, mean
