"""HOG + HOF box features: a training-free appearance + motion descriptor, the CPU default.

For each box (``xyxy`` float pixels on its 0-based frame) of a video:

- **HOG** (appearance): the box's grey crop, resized to ``box_width x box_height``, described by
  ``cv2.HOGDescriptor`` (blocks of 2x2 cells of ``hog_cell`` pixels, stride one cell,
  ``hog_bins`` unsigned orientations, L2-Hys block normalisation: Dalal & Triggs' defaults).
  The crop spans the pixels the box touches, ``[floor(x1), ceil(x2)) x [floor(y1), ceil(y2))``;
  it is shrunk with ``INTER_AREA`` when both sides shrink, else resized with ``INTER_LINEAR``.
- **HOF** (motion): dense optical flow of the frame, ``cv2.calcOpticalFlowFarneback`` on grey
  frames from frame ``f`` to ``f + 1`` (the last frame, which has no successor, uses ``f - 1 ->
  f``; a one-frame video has zero flow). The box is cut into ``hof_rows x hof_cols`` cells at the
  frame's own resolution (a pixel belongs to the cell containing its centre); every pixel casts one
  vote: ``w = min(1, |flow| / flow_saturation)`` split linearly between the two orientation bins
  nearest to the flow's direction and ``1 - w`` into a "no motion" bin (Laptev et al.'s HOF has
  such a bin). Each cell's histogram is the mean vote of its pixels (so it sums to 1).
  Orientation bin ``k`` is centred on angle ``2 pi k / hof_bins`` measured in image axes (x right,
  y down): bin 0 = moving right, bin ``hof_bins / 4`` = down, ``hof_bins / 2`` = left.

The box feature is ``l2(concat(l2(hog), hof_weight * l2(hof)))`` (STIL §4 L2-normalises each box
representation). HOF cells always hold votes, so a box's feature is never all-zero, even on a flat,
static patch whose HOG is 0; tiny, degenerate and out-of-frame boxes are first clipped and widened
to ``min_box_size`` (:func:`wsal.features.store.prepare_boxes`).

The video descriptor (STIL §3.4's global classifier input) is the same HOG + HOF computed on the
whole frame (resized to ``global_width x global_height``; HOF on a ``global_hof_rows x
global_hof_cols`` grid) at the sampled frames, each frame's vector L2-normalised, mean-pooled over
frames and L2-normalised.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from wsal.features.store import VideoJob, l2_normalize, prepare_boxes, run_jobs
from wsal.structures import Detections

__all__ = [
    "HogHofExtractor",
    "box_hof",
    "box_hog",
    "crop_resize",
    "farneback_flow",
    "flow_votes",
    "hog_descriptor",
]

#: cv2.calcOpticalFlowFarneback's (pyr_scale, levels, winsize, iterations, poly_n, poly_sigma):
#: OpenCV's sample values (pyramid halving, 3 levels, 15 px window).
FARNEBACK = (0.5, 3, 15, 3, 5, 1.2)
_VERSION = 1  # bump when the computation changes without a parameter changing


def hog_descriptor(width: int, height: int, cell: int = 8, bins: int = 9) -> cv2.HOGDescriptor:
    """``cv2.HOGDescriptor`` for a ``width x height`` window: 2x2-cell blocks of ``cell`` pixels,
    block stride one cell, ``bins`` unsigned orientations."""
    if width % cell or height % cell or width < 2 * cell or height < 2 * cell:
        raise ValueError(
            f"HOG window {width}x{height} must be a multiple of the cell size {cell} and at least "
            "2 cells on each side"
        )
    block = (2 * cell, 2 * cell)
    return cv2.HOGDescriptor((width, height), block, (cell, cell), (cell, cell), bins)


def crop_resize(grey: np.ndarray, box: np.ndarray, width: int, height: int) -> np.ndarray:
    """uint8 ``[height, width]``: the pixels box ``xyxy`` touches,
    ``grey[floor(y1):ceil(y2), floor(x1):ceil(x2)]``, resized (``INTER_AREA`` when shrinking
    both sides, else ``INTER_LINEAR``). ``box`` must lie inside the frame with positive area."""
    x1, y1 = int(np.floor(box[0])), int(np.floor(box[1]))
    x2, y2 = int(np.ceil(box[2])), int(np.ceil(box[3]))
    crop = grey[y1:y2, x1:x2]
    if crop.size == 0:
        raise ValueError(f"empty crop for box {box.tolist()} in a {grey.shape} frame")
    shrink = crop.shape[0] >= height and crop.shape[1] >= width
    return cv2.resize(
        crop, (width, height), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
    )


def box_hog(grey: np.ndarray, boxes: np.ndarray, hog: cv2.HOGDescriptor) -> np.ndarray:
    """Raw HOG of each box: grey uint8 ``[H, W]``, boxes float ``[n, 4]`` xyxy inside the frame ->
    float32 ``[n, hog.getDescriptorSize()]`` (each block L2-Hys normalised by OpenCV)."""
    w, h = hog.winSize
    out = np.empty((len(boxes), hog.getDescriptorSize()), np.float32)
    for i, box in enumerate(boxes):  # one cv2 call per box; ~30 us each at 32x64
        out[i] = np.asarray(hog.compute(crop_resize(grey, box, w, h))).reshape(-1)
    return out


def farneback_flow(grey: np.ndarray, t: int, params: Sequence[float] = FARNEBACK) -> np.ndarray:
    """Dense flow ``float32 [H, W, 2]`` (dx, dy pixels) of frame ``t`` of grey frames ``[T, H, W]``:
    ``t -> t + 1``, or ``t - 1 -> t`` for the last frame; zeros when ``T == 1``."""
    T = grey.shape[0]
    if T == 1:
        return np.zeros((*grey.shape[1:], 2), np.float32)
    a, b = (t, t + 1) if t + 1 < T else (t - 1, t)
    ps, lv, ws, it, pn, sg = params
    # flow=None: OpenCV allocates the output (its stubs do not admit None).
    return cv2.calcOpticalFlowFarneback(  # type: ignore[call-overload]
        grey[a], grey[b], None, float(ps), int(lv), int(ws), int(it), int(pn), float(sg), 0
    )


def flow_votes(flow: np.ndarray, bins: int = 8, saturation: float = 4.0) -> np.ndarray:
    """Per-pixel HOF votes ``float32 [H, W, bins + 1]`` of flow ``[H, W, 2]``; each pixel's votes
    sum to 1: ``min(1, |flow| / saturation)`` shared linearly between the two orientation bins
    around its direction (bin k centred on ``2 pi k / bins``, image axes: 0 = right, y down), the
    rest in the last ("no motion") bin."""
    H, W, _ = flow.shape
    dx, dy = flow[..., 0].reshape(-1), flow[..., 1].reshape(-1)  # [P]
    move = np.minimum(np.hypot(dx, dy) / saturation, 1.0)  # [P]
    pos = np.mod(np.arctan2(dy, dx), 2 * np.pi) * (bins / (2 * np.pi))  # [P] in [0, bins]
    lo = np.floor(pos)
    frac = pos - lo
    lo = lo.astype(np.int64) % bins  # pos == bins (angle rounding to 2 pi) wraps to bin 0
    hi = (lo + 1) % bins
    votes = np.zeros((H * W, bins + 1), np.float32)
    rows = np.arange(H * W)
    votes[rows, lo] = move * (1.0 - frac)  # lo != hi (bins >= 2): plain assignment is safe
    votes[rows, hi] = move * frac
    votes[:, bins] = 1.0 - move
    return votes.reshape(H, W, bins + 1)


def box_hof(votes: np.ndarray, boxes: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """HOF of each box from per-pixel votes ``[H, W, B]``: boxes float ``[n, 4]`` xyxy inside the
    frame -> float32 ``[n, rows * cols * B]`` (cells row-major, bins last), each cell the mean
    vote of the pixels whose centres fall in it (an empty cell is 0). Vectorised over boxes with
    one integral image per frame."""
    H, W, B = votes.shape
    n = len(boxes)
    # integ[y, x] = sum of votes[:y, :x]; cv2.integral is ~20x numpy's two cumsums.
    integ = cv2.integral(np.ascontiguousarray(votes, np.float32), sdepth=cv2.CV_64F)
    integ = integ.reshape(H + 1, W + 1, B)  # [H+1, W+1, B] (cv2 drops the axis when B == 1)
    b = np.asarray(boxes, np.float64)
    # Cell edges: pixel i (centre i + 0.5) is in cell j iff e_j <= i + 0.5 < e_{j+1}, i.e.
    # ceil(e_j - 0.5) <= i < ceil(e_{j+1} - 0.5).
    ex = b[:, [0]] + (b[:, [2]] - b[:, [0]]) * (np.arange(cols + 1) / cols)  # [n, cols+1]
    ey = b[:, [1]] + (b[:, [3]] - b[:, [1]]) * (np.arange(rows + 1) / rows)  # [n, rows+1]
    xs = np.clip(np.ceil(ex - 0.5), 0, W).astype(np.int64)  # [n, cols+1]
    ys = np.clip(np.ceil(ey - 0.5), 0, H).astype(np.int64)  # [n, rows+1]
    corner = integ[ys[:, :, None], xs[:, None, :]]  # [n, rows+1, cols+1, B]
    sums = corner[:, 1:, 1:] - corner[:, :-1, 1:] - corner[:, 1:, :-1] + corner[:, :-1, :-1]
    area = np.diff(ys, axis=1)[:, :, None] * np.diff(xs, axis=1)[:, None, :]  # [n, rows, cols]
    # Differences of float64 sums leave ~1e-17 residues (-0.0) in empty bins: clamp to 0.
    mean = np.maximum(sums, 0.0) / np.maximum(area, 1)[..., None]  # [n, rows, cols, B]
    return mean.reshape(n, rows * cols * B).astype(np.float32)


def _grey(frame: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)


class HogHofExtractor:
    """HOG + HOF box features and whole-frame video descriptors (module docstring).

    Args:
        box_width, box_height: HOG window each box is resized to (default 32x64, upright people).
        hog_cell, hog_bins: HOG cell size (pixels of the window) and orientations (0-180 deg).
        hof_bins, hof_rows, hof_cols: HOF orientations (0-360 deg, plus the no-motion bin) and
            grid of cells over the box.
        flow_saturation: flow magnitude (pixels / frame at the video's resolution) from which a
            pixel's whole vote goes to its direction.
        hof_weight: weight of the L2-normalised HOF part against the L2-normalised HOG part.
        min_box_size: boxes narrower/shorter are widened to this many pixels before cropping.
        global_width, global_height, global_hof_rows, global_hof_cols: the same for the whole-frame
            video descriptor.
        farneback: ``(pyr_scale, levels, winsize, iterations, poly_n, poly_sigma)`` of
            ``cv2.calcOpticalFlowFarneback``.
        workers: processes over videos in :meth:`extract_chunks` (1 = serial, in this process).

    ``dim`` = HOG size + ``hof_rows * hof_cols * (hof_bins + 1)`` (756 + 72 = 828 by default).
    """

    name = "hoghof"

    def __init__(
        self,
        box_width: int = 32,
        box_height: int = 64,
        hog_cell: int = 8,
        hog_bins: int = 9,
        hof_bins: int = 8,
        hof_rows: int = 4,
        hof_cols: int = 2,
        flow_saturation: float = 4.0,
        hof_weight: float = 1.0,
        min_box_size: float = 16.0,
        global_width: int = 64,
        global_height: int = 48,
        global_hof_rows: int = 3,
        global_hof_cols: int = 4,
        farneback: Sequence[float] = FARNEBACK,
        workers: int = 1,
    ) -> None:
        self.box_width, self.box_height = int(box_width), int(box_height)
        self.hog_cell, self.hog_bins = int(hog_cell), int(hog_bins)
        self.hof_bins, self.hof_rows, self.hof_cols = int(hof_bins), int(hof_rows), int(hof_cols)
        self.flow_saturation = float(flow_saturation)
        self.hof_weight = float(hof_weight)
        self.min_box_size = float(min_box_size)
        self.global_width, self.global_height = int(global_width), int(global_height)
        self.global_hof_rows, self.global_hof_cols = int(global_hof_rows), int(global_hof_cols)
        self.farneback = tuple(float(x) for x in farneback)
        self.workers = int(workers)
        if self.hof_bins < 2:
            raise ValueError(f"hof_bins must be >= 2, got {hof_bins}")
        if min(self.hof_rows, self.hof_cols, self.global_hof_rows, self.global_hof_cols) < 1:
            raise ValueError("HOF grids need at least one row and one column")
        if self.min_box_size < max(self.hof_rows, self.hof_cols):
            raise ValueError(  # fewer pixels than cells would leave empty HOF cells
                f"min_box_size {min_box_size} must be >= the HOF grid ({hof_rows}x{hof_cols})"
            )
        if self.flow_saturation <= 0 or self.hof_weight < 0:
            raise ValueError("flow_saturation must be > 0 and hof_weight >= 0")
        if len(self.farneback) != 6:
            raise ValueError(f"farneback takes 6 parameters, got {len(self.farneback)}")
        # Built once here to validate the sizes; rebuilt per call (cv2 objects do not pickle).
        self._hog_dim = self._hog().getDescriptorSize()
        self._global_hog_dim = self._global_hog().getDescriptorSize()

    # -- sizes and key ---------------------------------------------------------------------------
    @property
    def hog_dim(self) -> int:
        return int(self._hog_dim)

    @property
    def hof_dim(self) -> int:
        return self.hof_rows * self.hof_cols * (self.hof_bins + 1)

    @property
    def dim(self) -> int:
        """D: box feature size."""
        return self.hog_dim + self.hof_dim

    @property
    def descriptor_dim(self) -> int:
        """D_g: video descriptor size."""
        return int(self._global_hog_dim) + self.global_hof_rows * self.global_hof_cols * (
            self.hof_bins + 1
        )

    def cache_key(self) -> str:
        """12 hex characters hashing every parameter that shapes the features (not ``workers``)."""
        params = {
            k: v for k, v in self.__dict__.items() if not k.startswith("_") and k != "workers"
        }
        params |= {"name": self.name, "version": _VERSION, "cv2": cv2.__version__.split(".")[0]}
        return hashlib.sha1(json.dumps(params, sort_keys=True).encode()).hexdigest()[:12]

    def _hog(self) -> cv2.HOGDescriptor:
        return hog_descriptor(self.box_width, self.box_height, self.hog_cell, self.hog_bins)

    def _global_hog(self) -> cv2.HOGDescriptor:
        return hog_descriptor(self.global_width, self.global_height, self.hog_cell, self.hog_bins)

    def _combine(self, hog: np.ndarray, hof: np.ndarray) -> np.ndarray:
        """``l2(concat(l2(hog), hof_weight * l2(hof)))`` row-wise -> float32 ``[n, D]``."""
        x = np.concatenate([l2_normalize(hog), self.hof_weight * l2_normalize(hof)], axis=1)
        return l2_normalize(x)

    # -- per video -------------------------------------------------------------------------------
    def video_box_features(self, frames: np.ndarray, dets: Detections) -> np.ndarray:
        """Features of every box of one video.

        Args:
            frames: uint8 ``[T, H, W, 3]`` RGB, all frames of the video (frame ``f`` of ``dets``
                is ``frames[f]``; ``f + 1`` is needed for the flow).
            dets: the video's detections (0-based frames, xyxy pixels).

        Returns:
            float32 ``[N, dim]``, row ``i`` for ``dets.boxes[i]``, each row of L2 norm 1.
        """
        _check_frames(frames)
        if len(dets) and int(dets.frame.max()) >= frames.shape[0]:
            raise ValueError(
                f"detections reach frame {int(dets.frame.max())} but only {frames.shape[0]} "
                "frames were given"
            )
        T, H, W, _ = frames.shape
        boxes = prepare_boxes(dets.boxes, W, H, self.min_box_size)  # [N, 4] inside the frame
        hog = self._hog()
        out = np.empty((len(dets), self.dim), np.float32)
        grey: dict[int, np.ndarray] = {}  # grey frames converted so far (each at most once)
        for f in np.nonzero(dets.per_frame_counts())[0].tolist():  # frames with boxes
            sl = dets.in_frame(f)
            votes = self._votes(frames, grey, f)  # [H, W, B+1]
            out[sl] = self._combine(
                box_hog(grey[f], boxes[sl], hog),
                box_hof(votes, boxes[sl], self.hof_rows, self.hof_cols),
            )
        return out

    def video_descriptor(self, frames: np.ndarray, frame_ids: np.ndarray) -> np.ndarray:
        """Whole-frame HOG + HOF at ``frame_ids`` (0-based into ``frames`` uint8 ``[T, H, W, 3]``
        RGB, all frames of the video), each L2-normalised, mean-pooled, L2-normalised ->
        float32 ``[descriptor_dim]``."""
        _check_frames(frames)
        ids = np.asarray(frame_ids, np.int64).reshape(-1)
        if ids.size == 0 or ids.min() < 0 or ids.max() >= frames.shape[0]:
            raise ValueError(f"frame_ids must be non-empty and in [0, {frames.shape[0]})")
        T, H, W, _ = frames.shape
        whole = np.array([[0.0, 0.0, W, H]], np.float32)
        hog = self._global_hog()
        grey: dict[int, np.ndarray] = {}
        per_frame = np.empty((ids.size, self.descriptor_dim), np.float32)
        for i, f in enumerate(ids.tolist()):
            votes = self._votes(frames, grey, f)
            hof = box_hof(votes, whole, self.global_hof_rows, self.global_hof_cols)
            per_frame[i] = self._combine(box_hog(grey[f], whole, hog), hof)[0]
        return l2_normalize(per_frame.mean(axis=0))

    def _votes(self, frames: np.ndarray, grey: dict[int, np.ndarray], f: int) -> np.ndarray:
        """HOF votes ``[H, W, B+1]`` of frame ``f`` (flow ``f -> f+1``, the last frame ``f-1 ->
        f``, none for a one-frame video); fills ``grey`` with the grey frames it converts."""
        T = frames.shape[0]
        pair = (f, f + 1) if f + 1 < T else (max(f - 1, 0), f)
        for t in pair:
            if t not in grey:
                grey[t] = _grey(frames[t])
        if T == 1:
            flow = np.zeros((*grey[f].shape, 2), np.float32)
        else:
            flow = farneback_flow(np.stack([grey[pair[0]], grey[pair[1]]]), 0, self.farneback)
        return flow_votes(flow, self.hof_bins, self.flow_saturation)

    # -- many videos -----------------------------------------------------------------------------
    def extract_chunks(self, jobs: Sequence[VideoJob], chunk_dir: Path, progress: bool) -> None:
        """Compute the jobs lacking a chunk: serially or in a Pool of ``workers`` processes."""
        desc = "hoghof box features" if jobs and jobs[0].dets is not None else "hoghof descriptors"
        dim = self.dim if jobs and jobs[0].dets is not None else self.descriptor_dim
        run_jobs(self, jobs, chunk_dir, dim=dim, workers=self.workers, progress=progress, desc=desc)

    def __repr__(self) -> str:
        return f"HogHofExtractor(dim={self.dim}, key={self.cache_key()})"


def _check_frames(frames: np.ndarray) -> None:
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(
            f"frames must be uint8 [T, H, W, 3] RGB, got {frames.dtype} {frames.shape}"
        )
