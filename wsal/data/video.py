"""Video I/O: read frames from video files or frame folders; write mp4 files.

Conventions, everywhere in this module:

- frames are ``uint8`` arrays ``[T, H, W, 3]`` in **RGB** order (never BGR);
- frame numbers are **0-based**: frame ``i`` of a frame folder is its ``i``-th image in sorted
  order (or ``pattern.format(start_number + i)``), whatever number its file name carries;
- every failure to read a video raises :class:`VideoError`, whose message names the file (the
  video file, or the one image of a folder) and says what is wrong.

Backends: video files are decoded with decord (batched random access, ``get_batch``); frame
folders (jpg/png, the layout of the standard datasets, e.g. ``Frames/<video>/00001.jpg``) with
OpenCV. PyAV writes mp4 files, and decodes the files that decord mis-decodes (see
``VideoReader._open_file``). Nothing here needs Hydra, Lightning or torch.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from wsal.atomic import atomic_path
from wsal.errors import InputError

__all__ = [
    "IMAGE_EXTENSIONS",
    "VideoError",
    "VideoReader",
    "VideoWriter",
    "read_frames",
    "sample_segment_indices",
    "write_video",
]

log = logging.getLogger(__name__)

#: File name suffixes (compared lower-case) that count as frames in a folder listed without pattern.
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp")


class VideoError(InputError, RuntimeError):
    """A video file or frame folder that cannot be read as asked; the message names the file."""


def sample_segment_indices(
    num_frames: int,
    num_segments: int,
    train: bool,
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """Pick one frame per temporal segment (TSN-style sparse sampling).

    ``[0, num_frames)`` is cut into ``num_segments`` equal segments with float boundaries
    ``b_k = k * num_frames / num_segments``. Segment ``k`` contributes frame ``floor(b_k + u *
    (b_{k+1} - b_k))``: ``u ~ U[0, 1)`` drawn from ``rng`` when ``train`` (a uniformly random
    point of the segment, so a frame straddling two segments is picked by each in proportion to
    its overlap), ``u = 0.5`` otherwise (the segment centre; deterministic, ``rng`` unused).
    E.g. 10 frames, 5 segments, eval -> ``[1, 3, 5, 7, 9]``.

    Args:
        num_frames: frames in the video (>= 1).
        num_segments: frames to return (>= 1).
        train: random frame per segment if True, centre frame if False.
        rng: source of randomness for ``train``; a fresh unseeded generator if None. The result is
            a pure function of ``(num_frames, num_segments, rng state)``.

    Returns:
        ``int64[num_segments]`` 0-based frame indices, sorted (non-decreasing), all in
        ``[0, num_frames)``. When ``num_frames < num_segments`` frames repeat.
    """
    if num_frames < 1 or num_segments < 1:
        raise ValueError(
            f"need num_frames >= 1 and num_segments >= 1, got {num_frames} and {num_segments}"
        )
    k = np.arange(num_segments, dtype=np.int64)  # [S]
    if not train:
        # floor((k + 1/2) * N / S) in exact integer arithmetic.
        return (2 * k + 1) * num_frames // (2 * num_segments)  # [S]
    if rng is None:
        rng = np.random.default_rng()
    u = rng.random(num_segments)  # [S] in [0, 1)
    idx = np.floor((k + u) * (num_frames / num_segments)).astype(np.int64)  # [S]
    # (k + u) < S, so idx <= N - 1 mathematically; the clip only guards float rounding.
    return np.minimum(idx, num_frames - 1)


class VideoReader:
    """Random access to the frames of one video file or one frame folder.

    ``reader.get_frames([5, 0, 5])`` returns ``uint8 [3, H, W, 3]`` RGB frames 5, 0 and 5
    (0-based). Frames are read in file order and each only once, whatever the order and
    repetitions of the request. Opening decodes frame 0 (to learn the size and check the decoder).
    Not thread-safe: use one reader per thread / DataLoader worker.

    Args:
        path: a video file (anything FFmpeg reads: mp4, avi, webm, ...) or a folder of frames.
        pattern: folders only. ``str.format`` pattern of the frame file names, e.g.
            ``"{:05d}.jpg"``: frame ``i`` is ``pattern.format(start_number + i)``. Without it, the
            frames are the folder's files with a suffix in :data:`IMAGE_EXTENSIONS` (any case,
            hidden files skipped) in natural order (digit runs compare as numbers, so ``2.jpg`` <
            ``10.jpg``; for zero-padded names this is plain sorted order).
        start_number: with ``pattern``, the number in the file name of frame 0 (1 in the
            standard datasets).
        num_frames: with ``pattern`` only: trust this frame count (e.g. ``nframes`` from the
            annotation) instead of listing the folder; a missing file then fails when read. When
            None, the folder is listed, the frames counted as the files with the pattern's
            suffix, and every expected file checked to exist.
        fps: frame rate to report. Default: the container's average rate for files (None if it
            has none), None for folders.
        width, height: decode resolution, both or neither (default: native). Files are scaled by
            the decoder (FFmpeg's swscale), folders with ``cv2.INTER_AREA``; either way close to,
            not equal to, resizing the native frames yourself.
        num_threads: decoder threads for video files; 1 suits DataLoader workers, 0 lets FFmpeg
            choose.

    Raises:
        VideoError: missing path, empty file or folder, unreadable or corrupt file, missing frame
            file (pattern without ``num_frames``), frame 0 unreadable.
        ValueError: inconsistent arguments.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        pattern: str | None = None,
        start_number: int = 1,
        num_frames: int | None = None,
        fps: float | None = None,
        width: int | None = None,
        height: int | None = None,
        num_threads: int = 1,
    ) -> None:
        self._path = Path(path)
        if (width is None) != (height is None):
            raise ValueError(f"{path}: give both width and height or neither, got {width}x{height}")
        if width is not None and height is not None and (width < 1 or height < 1):
            raise ValueError(f"{path}: decode size must be positive, got {width}x{height}")
        self._size: tuple[int, int] | None = None  # (H, W) to decode at; None: native
        if width is not None and height is not None:
            self._size = (int(height), int(width))
        self._num_threads = int(num_threads)
        self._pattern = pattern
        self._start_number = int(start_number)
        self._vr: Any = None  # decord.VideoReader for the decord backend
        self._files: list[Path] = []  # frame files for the images backend

        if self._path.is_dir():
            self._open_folder(num_frames)
            self._fps = fps
        elif self._path.is_file():
            if pattern is not None or num_frames is not None:
                raise ValueError(f"{path}: pattern/num_frames apply to frame folders only")
            self._fps = self._open_file()
            if fps is not None:
                self._fps = fps
        elif self._path.exists():
            raise VideoError(f"{path}: neither a video file nor a frame folder")
        else:
            raise VideoError(f"{path}: no such video file or frame folder")

    # -- properties ------------------------------------------------------------------------------
    @property
    def path(self) -> Path:
        """The video file or frame folder."""
        return self._path

    @property
    def num_frames(self) -> int:
        """Number of frames; valid indices are ``0 .. num_frames - 1``."""
        return self._num_frames

    @property
    def fps(self) -> float | None:
        """Frames per second (see the ``fps`` argument); None when unknown."""
        return self._fps

    @property
    def width(self) -> int:
        """Width W of the returned frames (the decode width if one was given)."""
        return self._out_hw[1]

    @property
    def height(self) -> int:
        """Height H of the returned frames (the decode height if one was given)."""
        return self._out_hw[0]

    @property
    def backend(self) -> str:
        """``"decord"`` or ``"pyav"`` (video files), ``"images"`` (frame folders)."""
        return self._backend

    def __len__(self) -> int:
        return self._num_frames

    def __repr__(self) -> str:
        return (
            f"VideoReader({str(self._path)!r}, frames={self._num_frames}, "
            f"size={self.width}x{self.height}, fps={self._fps}, backend={self._backend!r})"
        )

    # -- reading ---------------------------------------------------------------------------------
    def get_frames(self, indices: Sequence[int] | np.ndarray) -> np.ndarray:
        """Frames at 0-based ``indices`` (any order, repeats allowed) -> ``uint8 [T, H, W, 3]`` RGB.

        Raises:
            VideoError: an index outside ``[0, num_frames)`` (negative indices are not wrapped),
                or a frame that cannot be decoded / a frame image missing, unreadable or of a
                different size than frame 0.
            TypeError: non-integer or non-1-D indices.
        """
        idx = np.asarray(indices)
        if idx.size == 0:
            return np.empty((0, self.height, self.width, 3), dtype=np.uint8)
        if idx.ndim != 1 or idx.dtype == np.bool_ or not np.issubdtype(idx.dtype, np.integer):
            raise TypeError(
                f"{self._path}: indices must be a 1-D integer sequence, got {idx.dtype} {idx.shape}"
            )
        bad = idx[(idx < 0) | (idx >= self._num_frames)]
        if bad.size:
            raise VideoError(
                f"{self._path}: frame index {int(bad[0])} out of range "
                f"[0, {self._num_frames}) ({bad.size} bad of {idx.size})"
            )
        uniq, inverse = np.unique(idx.astype(np.int64), return_inverse=True)  # [U], [T]
        if self._backend == "decord":
            frames = self._read_decord(uniq)
        elif self._backend == "pyav":
            frames = self._read_pyav(uniq)
        else:
            frames = np.stack([self._read_image(int(i)) for i in uniq])
        expected = (uniq.size, self.height, self.width, 3)
        if frames.shape != expected or frames.dtype != np.uint8:
            raise VideoError(  # a backend bug, not a user error; never return a wrong shape
                f"{self._path}: {self._backend} returned {frames.dtype} {frames.shape}, "
                f"expected uint8 {expected}"
            )
        if uniq.size == idx.size and np.array_equal(uniq, idx):
            return frames  # already sorted and unique: skip the copy
        return frames[inverse]  # [T, H, W, 3]

    # -- video files -----------------------------------------------------------------------------
    def _open_file(self) -> float | None:
        """Open with decord, decode frame 0; fall back to PyAV where decord gets frames wrong.

        decord 0.6 mis-sizes the RGB buffer for some output widths (1-4, 6, 8, 12, 16, 24, 48, 72
        px, native or requested): frames come back with 4, 6, ... "channels" and ``get_batch``
        fails (dmlc/decord#93, #336). Decoding frame 0 here detects that on any width, and those
        videos are then decoded with PyAV from the start up to the last frame asked: cheap for the
        tiny videos with such native widths; when *requesting* such a width on a long video,
        prefer a neighbouring width (e.g. 64 instead of 72) to keep decord's random access.
        Returns the container's average fps (None if unknown).
        """
        path = self._path
        if path.stat().st_size == 0:
            raise VideoError(f"{path}: empty video file (0 bytes)")
        import decord

        h, w = self._size if self._size is not None else (-1, -1)
        try:
            vr = decord.VideoReader(
                str(path), ctx=decord.cpu(0), width=w, height=h, num_threads=self._num_threads
            )
            n = len(vr)
            first = _to_numpy(vr[0])  # [H, W, C]; C != 3 is the decord bug above
            avg_fps = float(vr.get_avg_fps())
        # decord raises RuntimeError / DECORDError / AssertionError without the file's name.
        except Exception as err:
            raise VideoError(
                f"{path}: cannot decode video file (corrupt or unsupported?): {_first_line(err)}"
            ) from err
        if n < 1:
            raise VideoError(f"{path}: video file has no frames")
        self._num_frames = n
        wanted = self._size if self._size is not None else first.shape[:2]
        if first.ndim == 3 and first.shape == (*wanted, 3):
            self._backend = "decord"
            self._vr = vr
            self._out_hw = (int(first.shape[0]), int(first.shape[1]))
        else:
            log.debug("%s: decord returned %s, decoding with PyAV", path, first.shape)
            self._backend = "pyav"
            self._out_hw = (int(wanted[0]), int(wanted[1]))
        return avg_fps if np.isfinite(avg_fps) and avg_fps > 0 else None

    def _read_decord(self, uniq: np.ndarray) -> np.ndarray:
        """Sorted unique indices ``int64[U]`` -> ``uint8 [U, H, W, 3]`` with decord."""
        try:
            return _to_numpy(self._vr.get_batch(uniq.tolist()))
        except Exception as err:  # DECORDError carries a C++ trace and no file name
            raise VideoError(
                f"{self._path}: cannot decode frames {_span(uniq)}: {_first_line(err)}"
            ) from err

    def _read_pyav(self, uniq: np.ndarray) -> np.ndarray:
        """Sorted unique indices ``int64[U]`` -> ``uint8 [U, H, W, 3]``, decoding from the start."""
        import av

        h, w = self._out_hw
        out = np.empty((uniq.size, h, w, 3), dtype=np.uint8)  # [U, H, W, 3]
        scale_w, scale_h = (None, None) if self._size is None else (w, h)
        pos = 0
        try:
            with av.open(str(self._path)) as container:
                stream = container.streams.video[0]
                stream.thread_type = "AUTO"
                stream.codec_context.thread_count = self._num_threads
                for i, frame in enumerate(container.decode(stream)):  # display order
                    if i == uniq[pos]:
                        rgb = frame.reformat(width=scale_w, height=scale_h, format="rgb24")
                        out[pos] = rgb.to_ndarray()  # [H, W, 3]
                        pos += 1
                        if pos == uniq.size:
                            break
        except av.FFmpegError as err:
            raise VideoError(
                f"{self._path}: cannot decode frames {_span(uniq)}: {_first_line(err)}"
            ) from err
        if pos < uniq.size:
            raise VideoError(
                f"{self._path}: decoding ended before frame {int(uniq[pos])} "
                f"(the container claims {self._num_frames} frames)"
            )
        return out

    # -- frame folders ---------------------------------------------------------------------------
    def _open_folder(self, num_frames: int | None) -> None:
        folder = self._path
        self._backend = "images"
        if self._pattern is None:
            if num_frames is not None:
                raise ValueError(f"{folder}: num_frames needs a pattern (a listing counts frames)")
            files = [
                p
                for p in folder.iterdir()
                if p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith(".")
            ]
            if not files:
                raise VideoError(
                    f"{folder}: empty frame folder (no {'/'.join(IMAGE_EXTENSIONS)} files)"
                )
            self._files = sorted(files, key=lambda p: _natural_key(p.name))
            self._num_frames = len(self._files)
        else:
            try:
                self._pattern.format(self._start_number)
            except (IndexError, KeyError, ValueError) as err:
                raise ValueError(f"{folder}: bad frame pattern {self._pattern!r}: {err}") from err
            if num_frames is None:
                num_frames = self._count_pattern_frames(self._pattern)
            elif num_frames < 1:
                raise ValueError(f"{folder}: num_frames must be >= 1, got {num_frames}")
            self._num_frames = int(num_frames)
        first = self._load_image(0)  # [H0, W0, 3]
        self._native_hw = first.shape[:2]
        self._out_hw = self._size if self._size is not None else self._native_hw

    def _count_pattern_frames(self, pattern: str) -> int:
        """Count the files with the pattern's suffix and check frames 0..N-1 all exist."""
        folder = self._path
        suffix = Path(pattern.format(self._start_number)).suffix
        names = {p.name for p in folder.iterdir() if p.name.endswith(suffix)}
        if not names:
            raise VideoError(f"{folder}: empty frame folder (no *{suffix} files)")
        for i in range(len(names)):
            name = pattern.format(self._start_number + i)
            if name not in names:
                raise VideoError(
                    f"{folder / name}: frame {i} is missing (pattern {pattern!r}, start_number "
                    f"{self._start_number}; the folder has {len(names)} *{suffix} files)"
                )
        return len(names)

    def _frame_file(self, i: int) -> Path:
        if self._pattern is None:
            return self._files[i]
        return self._path / self._pattern.format(self._start_number + i)

    def _load_image(self, i: int) -> np.ndarray:
        """Frame ``i`` of the folder at native size -> ``uint8 [H, W, 3]`` RGB."""
        import cv2

        file = self._frame_file(i)
        try:
            # np.fromfile + imdecode, not imread: tells a missing file from a corrupt one.
            data = np.fromfile(file, dtype=np.uint8)
        except FileNotFoundError as err:
            raise VideoError(f"{file}: frame {i} is missing") from err
        except OSError as err:
            raise VideoError(f"{file}: cannot read frame {i}: {err.strerror}") from err
        bgr = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None  # [H, W, 3] BGR
        if bgr is None:
            raise VideoError(f"{file}: frame {i} is not a readable image (corrupt or empty?)")
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)

    def _read_image(self, i: int) -> np.ndarray:
        """Frame ``i``, size-checked against frame 0 and resized -> ``uint8 [H, W, 3]`` RGB."""
        img = self._load_image(i)
        if img.shape[:2] != self._native_hw:
            (h0, w0), (h, w) = self._native_hw, img.shape[:2]
            raise VideoError(
                f"{self._frame_file(i)}: frame {i} is {w}x{h}, but frame 0 "
                f"({self._frame_file(0).name}) is {w0}x{h0}"
            )
        if self._size is not None and self._size != self._native_hw:
            import cv2

            h, w = self._size
            img = cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA)
        return img


def read_frames(
    path: str | os.PathLike,
    indices: Sequence[int] | np.ndarray | None = None,
    *,
    pattern: str | None = None,
    start_number: int = 1,
    width: int | None = None,
    height: int | None = None,
) -> np.ndarray:
    """Frames of a video file or frame folder -> ``uint8 [T, H, W, 3]`` RGB.

    ``indices``: 0-based frames (any order, repeats allowed); all frames when None. The other
    arguments are those of :class:`VideoReader`. Raises :class:`VideoError` as it does.
    """
    reader = VideoReader(
        path, pattern=pattern, start_number=start_number, width=width, height=height
    )
    if indices is None:
        indices = np.arange(reader.num_frames)
    return reader.get_frames(indices)


def _to_numpy(x: object) -> np.ndarray:
    """decord output -> numpy, whatever decord bridge (native, torch, ...) is set globally."""
    if hasattr(x, "asnumpy"):
        return x.asnumpy()
    if hasattr(x, "numpy"):
        return x.numpy()
    return np.asarray(x)


def _first_line(err: BaseException) -> str:
    """The first non-empty line of an exception message (decord appends C++ stack traces)."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return f"{type(err).__name__}: {lines[0][:300] if lines else ''}"


def _span(idx: np.ndarray) -> str:
    return f"{int(idx[0])}" if idx.size == 1 else f"{int(idx[0])}..{int(idx[-1])} ({idx.size})"


def _natural_key(name: str) -> tuple:
    """Sort key where digit runs compare as numbers: ``img2.jpg`` < ``img10.jpg``."""
    parts = re.split(r"(\d+)", name)  # even positions str, odd positions digits
    return tuple(int(p) if j % 2 else p for j, p in enumerate(parts))


class VideoWriter:
    """Write uint8 RGB frames to an H.264 mp4 with PyAV, a chunk at a time, atomically.

    ``with VideoWriter(path, width, height, fps) as w: w.write(frames)`` (``[T, H, W, 3]`` or
    ``[H, W, 3]``); the file appears under ``path`` only when the block ends without an error.
    ``lossless=True`` uses ``libx264rgb`` at qp 0 (exact RGB round trip, for tests); otherwise
    ``libx264`` yuv420p at ``crf`` (needs even width and height).
    """

    def __init__(
        self,
        path: str | os.PathLike,
        width: int,
        height: int,
        fps: float = 25.0,
        lossless: bool = False,
        crf: int = 18,
    ) -> None:
        if not lossless and (height % 2 or width % 2):
            raise ValueError(f"{path}: lossy H.264 needs even width/height, got {width}x{height}")
        self.path = Path(path)
        self.size = (int(height), int(width))
        self.fps, self.lossless, self.crf = fps, lossless, crf
        self.frames_written = 0

    def __enter__(self) -> VideoWriter:
        import av

        self._atomic = atomic_path(self.path, suffix=self.path.suffix or ".mp4")
        tmp = self._atomic.__enter__()
        self._container = av.open(str(tmp), mode="w")
        from fractions import Fraction

        rate = Fraction(self.fps).limit_denominator(1000)
        if self.lossless:
            stream = self._container.add_stream("libx264rgb", rate=rate)
            stream.pix_fmt = "rgb24"
            stream.options = {"qp": "0", "preset": "ultrafast"}
        else:
            stream = self._container.add_stream("libx264", rate=rate)
            stream.pix_fmt = "yuv420p"
            stream.options = {"crf": str(self.crf), "preset": "veryfast"}
        stream.height, stream.width = self.size
        self._stream = stream
        return self

    def write(self, frames: np.ndarray) -> None:
        """Append uint8 RGB frames ``[T, H, W, 3]`` (or one ``[H, W, 3]``) of the writer's size."""
        import av

        frames = np.asarray(frames)
        if frames.ndim == 3:
            frames = frames[None]
        if frames.ndim != 4 or frames.shape[1:] != (*self.size, 3) or frames.dtype != np.uint8:
            raise ValueError(
                f"{self.path}: frames must be uint8 [T,{self.size[0]},{self.size[1]},3], got "
                f"{frames.dtype} {frames.shape}"
            )
        for img in frames:
            for packet in self._stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                self._container.mux(packet)
        self.frames_written += len(frames)

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        err: BaseException | None = exc
        try:
            if err is None and self.frames_written == 0:
                err = ValueError(f"{self.path}: no frames to write")
            if err is None:
                for packet in self._stream.encode():  # flush the encoder
                    self._container.mux(packet)
        except BaseException as e:  # a failed flush: nothing is left behind either
            err = e
        finally:
            self._container.close()
        if err is None:
            self._atomic.__exit__(None, None, None)  # rename the temp file to path
            return
        self._atomic.__exit__(type(err), err, err.__traceback__)  # delete the temp file
        if err is not exc:
            raise err


def write_video(
    path: str | os.PathLike,
    frames: np.ndarray,
    fps: float = 25.0,
    lossless: bool = False,
    crf: int = 18,
) -> None:
    """Write uint8 RGB frames ``[T, H, W, 3]`` to an H.264 mp4 with PyAV, atomically.

    ``lossless=True`` uses ``libx264rgb`` at qp 0 (exact RGB round trip, for tests); otherwise
    ``libx264`` yuv420p at ``crf`` (needs even width and height). See :class:`VideoWriter` to
    write a chunk at a time.
    """
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(
            f"{path}: frames must be uint8 [T,H,W,3], got {frames.dtype} {frames.shape}"
        )
    t, h, w, _ = frames.shape
    if t == 0:
        raise ValueError(f"{path}: no frames to write")
    with VideoWriter(path, w, h, fps, lossless, crf) as writer:
        writer.write(frames)
