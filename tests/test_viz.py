"""Qualitative pictures: colours and places of drawn boxes, untouched frames, shapes, files.

Conventions under test: frames uint8 [T, H, W, 3] RGB, boxes xyxy pixels whose outline runs through
pixel columns ``x1 .. x2 - 1``, 0-based frame numbers, GT blue / predictions red, atomic writes.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from wsal.data.annotations import DatasetIndex, GTTube, VideoInfo, read_wsal_json, write_wsal_json
from wsal.data.video import write_video
from wsal.structures import TubeDetections
from wsal.viz import (
    draw_boxes,
    plot_map_vs_iou,
    plot_pr,
    plot_recall,
    save_strips,
    save_tube_video,
    tube_strip,
    video_strip,
)

T, H, W, S = 3, 48, 64, 2  # frames, height, width, scale
IDS = np.array([5, 6, 7])
GT_BOX = [10, 8, 30, 40]  # xyxy source pixels
PRED_BOX = [34, 12, 54, 44]
# Frame 5: GT only; frame 6: GT and prediction; frame 7: nothing but its number.
GT = [(np.array([[5, *GT_BOX], [6, *GT_BOX]], float), "wave")]
PRED = [(np.array([[6, *PRED_BOX]], float), "wave 0.82")]
NUMBER_AREA = (18, 30)  # rows, cols of the top-left "#f" tag (17 x 26 px at the default font)


def grey_frames(t: int = T, h: int = H, w: int = W) -> np.ndarray:
    """uint8 [T, H, W, 3] neutral grey with a faint per-frame pattern: no colour dominates."""
    yy, xx = np.mgrid[0:h, 0:w]  # [H, W] each
    base = (100 + (xx + yy) % 20).astype(np.uint8)  # [H, W]
    return np.stack([np.repeat(base[..., None] + i, 3, axis=-1) for i in range(t)])


def tile(strip: np.ndarray, t: int, band: int = 0) -> np.ndarray:
    """The t-th upscaled frame of a strip: [H*S, W*S, 3]."""
    return strip[band:, t * W * S : (t + 1) * W * S]


def dominant(px: np.ndarray, channel: int, margin: int = 60) -> bool:
    px = px.astype(int)
    others = [px[c] for c in range(3) if c != channel]
    return px[channel] > max(others) + margin


def red_pixels(img: np.ndarray) -> int:
    img = img.astype(int)
    return int(np.sum(img[..., 0] > np.maximum(img[..., 1], img[..., 2]) + 60))


def upscaled(frame: np.ndarray) -> np.ndarray:
    return np.repeat(np.repeat(frame, S, axis=0), S, axis=1)  # [H*S, W*S, 3]


# -- draw_boxes ----------------------------------------------------------------------------------
def test_draw_boxes_outline_columns_and_copy():
    frame = np.zeros((12, 12, 3), np.uint8)
    out = draw_boxes(frame, np.array([[2, 2, 8, 8]], np.float32), (0, 0, 255))
    assert not frame.any()  # input untouched
    assert out.shape == frame.shape and out.dtype == np.uint8
    blue = out[..., 2].astype(int)
    # Right/bottom edges are exclusive: outline through columns/rows 2 and 7, strongest there.
    assert blue[5, 2] > 200 and blue[5, 7] > 200 and blue[2, 5] > 200 and blue[7, 5] > 200
    assert blue[5, 4] == 0  # inside stays
    assert blue[5, 10] == 0 and blue[10, 5] == 0  # far outside stays
    assert not out[..., :2].any()  # only the requested colour


def test_draw_boxes_labels_and_errors():
    frame = np.full((40, 60, 3), 128, np.uint8)
    plain = draw_boxes(frame, [[10, 20, 40, 35]], (255, 0, 0))
    tagged = draw_boxes(frame, [[10, 20, 40, 35]], (255, 0, 0), labels=["run 0.5"])
    assert (tagged != plain).any(axis=-1)[:20].any()  # a tag above the box
    assert np.array_equal(draw_boxes(frame, np.zeros((0, 4)), (255, 0, 0)), frame)
    with pytest.raises(ValueError, match="labels"):
        draw_boxes(frame, [[1, 1, 5, 5]], (255, 0, 0), labels=["a", "b"])
    with pytest.raises(ValueError, match="uint8"):
        draw_boxes(frame.astype(np.float32), [[1, 1, 5, 5]], (255, 0, 0))
    # Non-finite rows are skipped, not drawn at garbage places.
    assert np.array_equal(draw_boxes(frame, [[np.nan, 1, 5, 5]], (255, 0, 0)), frame)


# -- tube_strip ----------------------------------------------------------------------------------
def test_tube_strip_colours_at_scaled_coordinates():
    frames = grey_frames()
    strip = tube_strip(frames, IDS, GT, PRED, scale=S)
    assert strip.shape == (H * S, T * W * S, 3) and strip.dtype == np.uint8

    def border_points(box):  # (row, col) mid-points of the four edges, in scaled pixels
        x1, y1, x2, y2 = (v * S for v in box)
        ym, xm = (y1 + y2) // 2, (x1 + x2) // 2
        return [(y1, xm), (y2 - 1, xm), (ym, x1), (ym, x2 - 1)]

    for t in (0, 1):  # GT on frames 5 and 6
        for r, c in border_points(GT_BOX):
            assert dominant(tile(strip, t)[r, c], channel=2), (t, r, c, tile(strip, t)[r, c])
    for r, c in border_points(PRED_BOX)[:1] + border_points(PRED_BOX)[2:]:
        # (the bottom edge carries the "wave 0.82" tag, red too, but white text may sit there)
        assert dominant(tile(strip, 1)[r, c], channel=0), (r, c, tile(strip, 1)[r, c])
    assert red_pixels(tile(strip, 0)) == 0  # no prediction on frame 5
    # Box interiors away from tags keep the frame's pixels.
    cy, cx = (GT_BOX[1] + GT_BOX[3]) * S // 2, (GT_BOX[0] + GT_BOX[2]) * S // 2
    assert np.array_equal(tile(strip, 0)[cy, cx], upscaled(frames[0])[cy, cx])


def test_tube_strip_frame_without_box_is_untouched_but_numbered():
    frames = grey_frames()
    strip = tube_strip(frames, IDS, GT, PRED, scale=S)
    changed = (tile(strip, 2) != upscaled(frames[2])).any(axis=-1)  # [H*S, W*S]
    rows, cols = np.nonzero(changed)
    assert rows.size > 0  # the frame number is there
    assert rows.max() < NUMBER_AREA[0] and cols.max() < NUMBER_AREA[1]
    # And the numbers differ per frame: tags of frames 5 and 7 are not the same picture.
    a = tile(strip, 0)[: NUMBER_AREA[0], : NUMBER_AREA[1]]
    b = tile(strip, 2)[: NUMBER_AREA[0], : NUMBER_AREA[1]]
    assert not np.array_equal(a, b)


def test_tube_strip_title_band_and_options():
    frames = grey_frames()
    plain = tube_strip(frames, IDS, GT, PRED, scale=S)
    titled = tube_strip(frames, IDS, GT, PRED, scale=S, title="video_a  [wave]")
    band = titled.shape[0] - H * S
    assert 0 < band < 30 and titled.shape[1:] == (T * W * S, 3)
    assert np.array_equal(titled[band:], plain)
    assert tube_strip(frames, IDS, scale=1).shape == (H, T * W, 3)
    cubic = tube_strip(frames, IDS, GT, PRED, scale=3, interpolation="cubic")
    assert cubic.shape == (H * 3, T * W * 3, 3)
    # A very long title is cut, not overflowing or failing.
    assert tube_strip(frames[:1], IDS[:1], title="x" * 500).shape[1] == W * S
    with pytest.raises(ValueError, match="frame_ids"):
        tube_strip(frames, IDS[:2])
    with pytest.raises(ValueError, match="interpolation"):
        tube_strip(frames, IDS, interpolation="bogus")


# -- files ---------------------------------------------------------------------------------------
def test_save_strips_png_round_trip(tmp_path):
    frames = grey_frames()
    a = tube_strip(frames, IDS, GT, PRED, scale=S, title="a")
    b = tube_strip(frames[:2], IDS[:2], GT, None, scale=S)
    path = tmp_path / "sub" / "strips.png"
    save_strips(path, [a, b], gap=4)
    back = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert back.shape == (a.shape[0] + 4 + b.shape[0], a.shape[1], 3)
    back = cv2.cvtColor(back, cv2.COLOR_BGR2RGB)  # written as BGR, read back as RGB
    assert np.array_equal(back[: a.shape[0]], a)
    assert np.array_equal(back[a.shape[0] + 4 :, : b.shape[1]], b)
    assert (back[a.shape[0] + 4 :, b.shape[1] :] == 255).all()  # white padding
    assert sorted(p.name for p in path.parent.iterdir()) == ["strips.png"]  # no temp left
    with pytest.raises(ValueError, match="no strips"):
        save_strips(tmp_path / "x.png", [])


def test_save_tube_video_mp4_and_gif(tmp_path):
    import decord
    from PIL import Image

    frames = grey_frames(4, 21, 31)  # odd sizes: the mp4 is padded to even ones
    ids = np.arange(4)
    gt = [(np.array([[0, 2, 2, 12, 12], [1, 3, 2, 13, 12]], float), "wave")]
    pred = [(np.array([[1, 4, 4, 14, 14]], float), "wave 0.9")]
    mp4 = tmp_path / "tube.mp4"
    save_tube_video(mp4, frames, ids, gt, pred, fps=10, scale=2)
    vr = decord.VideoReader(str(mp4))
    assert len(vr) == 4
    assert vr[0].asnumpy().shape == (42, 62, 3)

    gif = tmp_path / "tube.gif"
    save_tube_video(gif, frames, ids, gt, pred, fps=10, scale=1, title="t")
    with Image.open(gif) as im:
        assert im.n_frames == 4
        assert im.size[0] == 31 and im.size[1] > 21  # title band on top
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tube.gif", "tube.mp4"]
    with pytest.raises(ValueError, match="format"):
        save_tube_video(tmp_path / "tube.avi", frames, ids)


def test_plots_write_pngs(tmp_path):
    plot_recall(
        {"prim": np.linspace(0.2, 0.9, 10), "tracker": np.linspace(0.1, 0.8, 30)},
        tmp_path / "recall.png",
        "recall@0.5",
    )
    plot_pr(
        np.array([1.0, 1.0, 0.67, 0.75]),
        np.array([0.25, 0.5, 0.5, 0.75]),
        tmp_path / "pr.png",
        "wave",
        label="AP 0.61",
    )
    plot_map_vs_iou(
        [0.1, 0.3, 0.5],
        {"ours": [0.8, 0.6, 0.4], "base": [0.7, 0.5, 0.2]},
        tmp_path / "map.png",
        "video-mAP",
    )
    for name in ("recall.png", "pr.png", "map.png"):
        img = cv2.imread(str(tmp_path / name))
        assert img is not None and img.ndim == 3 and img.shape[0] > 100 and img.std() > 0
    assert len(list(tmp_path.iterdir())) == 3  # no temp files left
    with pytest.raises(ValueError, match="thresholds"):
        plot_map_vs_iou([0.1, 0.5], {"ours": [0.8]}, tmp_path / "bad.png", "x")


# -- video_strip ---------------------------------------------------------------------------------
@pytest.fixture
def tiny_dataset(tmp_path) -> DatasetIndex:
    """Two 12-frame 64x48 grey videos; ``a`` has a GT tube on frames 2..9, ``b`` none."""
    frames = grey_frames(12)
    write_video(tmp_path / "a.mp4", frames, fps=10, lossless=True)
    write_video(tmp_path / "b.mp4", frames, fps=10, lossless=True)
    gt_frames = np.arange(2, 10)
    index = DatasetIndex(
        labels=["wave", "run"],
        splits={"test": ["a", "b"]},
        videos={
            "a": VideoInfo(
                12, [0], [GTTube(0, gt_frames, np.tile(GT_BOX, (8, 1)))], 64, 48, 10.0, "a.mp4"
            ),
            "b": VideoInfo(12, [1], [], 64, 48, 10.0, "b.mp4"),
        },
    )
    write_wsal_json(index, tmp_path / "index.json")
    return read_wsal_json(tmp_path / "index.json")  # root = tmp_path


def test_video_strip_draws_gt_and_top_detection(tiny_dataset):
    rows = np.array([[f, *PRED_BOX] for f in range(12)], float)
    low = np.array([[f, 2, 30, 8, 44] for f in range(12)], float)  # a weaker one, bottom-left
    dets = TubeDetections.from_list([("a", 0, 0.9, rows), ("a", 1, 0.3, low), ("b", 1, 0.7, low)])
    strip = video_strip(tiny_dataset, "a", dets, num_frames=4, top_k=1)
    band = strip.shape[0] - H * S
    assert band > 0 and strip.shape[1:] == (4 * W * S, 3)
    for t in range(4):  # frames 2, 4, 7, 9: all inside the GT tube
        x1, y1, x2, _ = (v * S for v in GT_BOX)
        assert dominant(tile(strip, t, band)[y1, (x1 + x2) // 2], channel=2)
        x1, y1, x2, _ = (v * S for v in PRED_BOX)
        assert dominant(tile(strip, t, band)[y1, (x1 + x2) // 2], channel=0)
        # the 0.3 detection (top_k=1) is not drawn: its top edge keeps the frame's grey
        assert not dominant(tile(strip, t, band)[30 * S, 5 * S], channel=0)

    both = video_strip(tiny_dataset, "a", dets, num_frames=2, top_k=2)
    assert dominant(tile(both, 1, both.shape[0] - H * S)[30 * S, 5 * S], channel=0)


def test_video_strip_without_gt_or_detections(tiny_dataset):
    strip = video_strip(tiny_dataset, "b", None, num_frames=3)
    band = strip.shape[0] - H * S
    assert strip.shape[1] == 3 * W * S
    img = strip[band:].astype(int)
    blue = img[..., 2] > np.maximum(img[..., 0], img[..., 1]) + 60
    assert not blue.any() and red_pixels(strip[band:]) == 0
    with pytest.raises(KeyError, match="nope"):
        video_strip(tiny_dataset, "nope", None)


def test_plots_leave_the_global_backend_alone(tmp_path):
    """A notebook's pyplot backend must survive a wsal plot (Figure + Agg canvas, no pyplot)."""
    import matplotlib

    before = matplotlib.get_backend()
    plot_recall({"a": np.array([0.5, 0.7])}, tmp_path / "r.png", "t")
    assert matplotlib.get_backend() == before
