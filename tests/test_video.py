"""Video reader tests: exact round trips through lossless mp4 / png, sampling, every error path."""

from __future__ import annotations

import re
from pathlib import Path

import cv2
import numpy as np
import pytest

from wsal.data.video import (
    VideoError,
    VideoReader,
    read_frames,
    sample_segment_indices,
    write_video,
)


def random_frames(t: int, h: int, w: int, seed: int = 0) -> np.ndarray:
    """uint8 [T, H, W, 3] noise: any decoding error, channel swap or frame shift shows."""
    return np.random.default_rng(seed).integers(0, 256, (t, h, w, 3), dtype=np.uint8)


def smooth_frames(t: int, h: int, w: int) -> np.ndarray:
    """uint8 [T, H, W, 3] gradients, distinct per frame: survive jpg and resizing nearly intact."""
    yy, xx = np.mgrid[0:h, 0:w]  # [H, W] each
    out = np.empty((t, h, w, 3), dtype=np.uint8)
    for i in range(t):
        out[i, ..., 0] = xx * 255 // max(w - 1, 1)
        out[i, ..., 1] = yy * 255 // max(h - 1, 1)
        out[i, ..., 2] = (40 + 20 * i) % 256
    return out


def write_folder(folder: Path, frames: np.ndarray, names: list[str]) -> Path:
    """One image per RGB frame, written in BGR as OpenCV expects."""
    folder.mkdir(parents=True, exist_ok=True)
    for img, name in zip(frames, names, strict=True):
        assert cv2.imwrite(str(folder / name), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    return folder


def raises_naming(name: str):
    """pytest.raises(VideoError) whose message must contain ``name``."""
    return pytest.raises(VideoError, match=re.escape(name))


# -- video files ---------------------------------------------------------------------------------
# Width 40 decodes with decord; width 48 hits decord's RGB buffer bug and must fall back to PyAV.
@pytest.mark.parametrize(("width", "backend"), [(40, "decord"), (48, "pyav")])
def test_file_exact_round_trip(tmp_path, width, backend):
    frames = random_frames(12, 24, width)
    path = tmp_path / "clip.mp4"
    write_video(path, frames, fps=12.5, lossless=True)

    reader = VideoReader(path)
    assert reader.backend == backend
    assert (reader.num_frames, len(reader), reader.width, reader.height) == (12, 12, width, 24)
    assert reader.fps == pytest.approx(12.5)

    np.testing.assert_array_equal(reader.get_frames(range(12)), frames)
    idx = [7, 2, 2, 11, 0, 7]  # out of order, repeated
    out = reader.get_frames(idx)
    assert out.dtype == np.uint8 and out.shape == (6, 24, width, 3)
    np.testing.assert_array_equal(out, frames[idx])
    np.testing.assert_array_equal(reader.get_frames(np.array([5], dtype=np.int32)), frames[[5]])
    assert reader.get_frames([]).shape == (0, 24, width, 3)

    np.testing.assert_array_equal(read_frames(path), frames)
    np.testing.assert_array_equal(read_frames(path, [3, 1]), frames[[3, 1]])


def test_file_fps_override_and_decode_size(tmp_path):
    frames = smooth_frames(4, 48, 64)
    path = tmp_path / "smooth.mp4"
    write_video(path, frames, fps=10, lossless=True)
    assert VideoReader(path, fps=30.0).fps == 30.0

    # 32 decodes with decord's scaler, 24 goes through the PyAV fallback: both must be right.
    for w, h in [(32, 24), (24, 16)]:
        reader = VideoReader(path, width=w, height=h)
        assert (reader.width, reader.height) == (w, h)
        out = reader.get_frames([3, 0])
        assert out.shape == (2, h, w, 3)
        ref = np.stack(
            [cv2.resize(f, (w, h), interpolation=cv2.INTER_AREA) for f in frames[[3, 0]]]
        )
        assert np.abs(out.astype(int) - ref).mean() < 3.0, reader.backend

    with pytest.raises(ValueError):
        VideoReader(path, width=32)


# -- frame folders -------------------------------------------------------------------------------
def test_png_folder_exact_sorted_and_pattern(tmp_path):
    frames = random_frames(6, 20, 30, seed=1)
    folder = write_folder(tmp_path / "Frames" / "v1", frames, [f"{i:05d}.png" for i in range(1, 7)])
    (folder / "notes.txt").write_text("not a frame")

    for reader in [
        VideoReader(folder),
        VideoReader(folder, pattern="{:05d}.png"),
        VideoReader(folder, pattern="{:05d}.png", num_frames=6),
    ]:
        assert reader.backend == "images"
        assert (reader.num_frames, reader.width, reader.height, reader.fps) == (6, 30, 20, None)
        np.testing.assert_array_equal(reader.get_frames(range(6)), frames)
        np.testing.assert_array_equal(reader.get_frames([4, 0, 4]), frames[[4, 0, 4]])

    assert VideoReader(folder, fps=25.0).fps == 25.0
    np.testing.assert_array_equal(read_frames(folder, [2]), frames[[2]])
    resized = VideoReader(folder, width=15, height=10).get_frames([1])
    assert resized.shape == (1, 10, 15, 3)


def test_folder_natural_order_and_start_number(tmp_path):
    frames = random_frames(11, 8, 8, seed=2)
    # Unpadded names: natural order puts 10.png last, not between 1.png and 2.png.
    folder = write_folder(tmp_path / "a", frames, [f"{i}.png" for i in range(11)])
    np.testing.assert_array_equal(VideoReader(folder).get_frames(range(11)), frames)
    # Pattern with start_number 0: frame 0 is img_0000.png.
    folder = write_folder(tmp_path / "b", frames, [f"img_{i:04d}.png" for i in range(11)])
    reader = VideoReader(folder, pattern="img_{:04d}.png", start_number=0)
    assert reader.num_frames == 11
    np.testing.assert_array_equal(reader.get_frames([10, 0]), frames[[10, 0]])


def test_jpg_folder_approximate(tmp_path):
    frames = smooth_frames(3, 32, 48)
    folder = write_folder(tmp_path / "jpg", frames, [f"{i:05d}.jpg" for i in range(1, 4)])
    out = VideoReader(folder).get_frames([2, 0])
    assert out.shape == (2, 32, 48, 3)
    # Mean error of a few levels at quality 95; a BGR/RGB swap would be off by ~100.
    assert np.abs(out.astype(int) - frames[[2, 0]]).mean() < 4.0


# -- sampling ------------------------------------------------------------------------------------
def test_sample_eval_centres():
    np.testing.assert_array_equal(sample_segment_indices(10, 5, train=False), [1, 3, 5, 7, 9])
    np.testing.assert_array_equal(sample_segment_indices(10, 10, train=False), np.arange(10))
    # 7 frames, 3 segments of 7/3: centres 7/6, 7/2, 35/6 -> 1, 3, 5.
    np.testing.assert_array_equal(sample_segment_indices(7, 3, train=False), [1, 3, 5])
    # Fewer frames than segments: centres (k + 1/2) * 3/5 -> 0, 0, 1, 2, 2.
    np.testing.assert_array_equal(sample_segment_indices(3, 5, train=False), [0, 0, 1, 2, 2])
    out = sample_segment_indices(1, 4, train=False)
    assert out.dtype == np.int64 and out.tolist() == [0, 0, 0, 0]


@pytest.mark.parametrize(("num_frames", "num_segments"), [(10, 5), (7, 3), (100, 16), (3, 5)])
def test_sample_train_in_segments_and_seeded(num_frames, num_segments):
    bounds = np.arange(num_segments + 1) * num_frames / num_segments  # [S+1]
    lo = np.floor(bounds[:-1])  # first frame touching segment k
    hi = np.ceil(bounds[1:]) - 1  # last frame touching segment k
    rng = np.random.default_rng(0)
    draws = np.stack(
        [sample_segment_indices(num_frames, num_segments, True, rng) for _ in range(200)]
    )
    assert draws.dtype == np.int64 and draws.shape == (200, num_segments)
    assert np.all((draws >= lo) & (draws <= hi))
    assert np.all(np.diff(draws, axis=1) >= 0) and draws.max() < num_frames
    # Every frame of segment k is reachable when segments are whole frames (10 / 5 = 2).
    if num_frames == 10:
        assert all(set(draws[:, k]) == {2 * k, 2 * k + 1} for k in range(5))

    a = sample_segment_indices(num_frames, num_segments, True, np.random.default_rng(7))
    b = sample_segment_indices(num_frames, num_segments, True, np.random.default_rng(7))
    np.testing.assert_array_equal(a, b)


def test_sample_rejects_bad_counts():
    with pytest.raises(ValueError):
        sample_segment_indices(0, 3, train=False)
    with pytest.raises(ValueError):
        sample_segment_indices(5, 0, train=True)


# -- errors --------------------------------------------------------------------------------------
def test_errors_video_files(tmp_path):
    with raises_naming("missing.mp4"):
        VideoReader(tmp_path / "missing.mp4")

    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    with raises_naming("empty.mp4"):
        VideoReader(empty)

    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(np.random.default_rng(0).bytes(2000))
    with raises_naming("garbage.mp4"):
        VideoReader(garbage)

    good = tmp_path / "good.mp4"
    write_video(good, random_frames(30, 16, 32), fps=10, lossless=True)
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size * 6 // 10])
    with raises_naming("truncated.mp4"):
        read_frames(truncated)

    reader = VideoReader(good)
    for bad in ([30], [0, -1], [29, 31]):
        with raises_naming("good.mp4"):
            reader.get_frames(bad)
    with pytest.raises(TypeError):
        reader.get_frames([1.5])


def test_errors_frame_folders(tmp_path):
    empty = tmp_path / "empty_video"
    empty.mkdir()
    (empty / "readme.txt").write_text("no frames")
    with raises_naming("empty_video"):
        VideoReader(empty)
    with raises_naming("empty_video"):
        VideoReader(empty, pattern="{:05d}.jpg")

    frames = random_frames(4, 10, 12, seed=3)
    gap = write_folder(tmp_path / "gap", frames[:3], ["00001.png", "00002.png", "00004.png"])
    with raises_naming("00003.png"):  # found when listing
        VideoReader(gap, pattern="{:05d}.png")
    reader = VideoReader(gap, pattern="{:05d}.png", num_frames=4)  # trusted count
    np.testing.assert_array_equal(reader.get_frames([1]), frames[[1]])
    with raises_naming("00003.png"):  # found when read
        reader.get_frames([3, 2])

    folder = write_folder(tmp_path / "ok", frames, [f"{i:05d}.png" for i in range(1, 5)])
    with raises_naming("ok"):
        VideoReader(folder).get_frames([4])

    mixed = write_folder(tmp_path / "mixed", frames[:2], ["00001.png", "00002.png"])
    write_folder(mixed, random_frames(1, 11, 12), ["00003.png"])
    reader = VideoReader(mixed)
    reader.get_frames([0, 1])
    with raises_naming("00003.png"):
        reader.get_frames([2])

    broken = write_folder(tmp_path / "broken", frames[:2], ["00001.png", "00002.png"])
    (broken / "00003.png").write_bytes(b"not a png")
    with raises_naming("00003.png"):
        VideoReader(broken).get_frames([0, 1, 2])
