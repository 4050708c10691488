"""OpenCV's HOG people detector (Dalal & Triggs 2005), multi-scale, on decoded video frames.

A real person detector that ships inside the ``opencv-python`` wheel
(``cv2.HOGDescriptor_getDefaultPeopleDetector``: a linear SVM on 64x128-pixel HOG windows,
trained on upright, whole-body INRIA pedestrians), so wsal can detect on real footage without
downloading anything. It is for trying and testing wsal; the published protocols use each
dataset's own detections (docs/real_footage.md).

Conventions: frames ``uint8 [H, W, 3]`` RGB (a video ``[T, H, W, 3]``), frames 0-based, boxes
``xyxy`` float pixels of the frame as given, continuous (the frame is ``[0, 0, W, H]``); scores are
the SVM margins of the windows (OpenCV's ``foundWeights``; about -1..3, 0 = the SVM's boundary);
``labels`` are 1 (COCO's person index, as :class:`wsal.detection.backends.TorchvisionDetector`
writes).

Steps for one frame (:func:`hog_windows`, then :func:`wsal.detection.model.filter_detections` in
:class:`wsal.detection.predict.HogDetectorModule`, the Lightning side):

1. resize the frame by ``resize`` (``> 1`` finds people smaller than the 128-pixel window,
   ``< 1`` is faster for large people);
2. pad it by replicating its border (``pad``: top, bottom, left/right as fractions of the frame
   size) so that windows may reach outside the frame: a close-up person whose legs are below the
   frame (the detector wants a whole body) is found by a window that extends below it;
3. every window of the image pyramid (``scale`` between levels, ``win_stride`` pixels apart)
   scoring ``>= score_thresh``, ungrouped (OpenCV's grouping is replaced by NMS below);
4. windows with less than ``min_inside`` of their area inside the frame are dropped (on padding
   the detector sees replicated stripes, not people); with ``body`` each window is mapped to the
   person's body box inside it (:func:`window_to_body`); the boxes are clipped to the frame;
5. NMS per frame (IoU ``> nms_iou`` suppresses) and the ``max_per_frame`` best.

The defaults of all these are :data:`HOG_DEFAULTS`, the one place they are written (the HOG
detector backend and ``conf/detector/hog.yaml`` repeat them for reading; a test checks).
This module needs OpenCV and numpy only (no torch), so the backends can import it cheaply.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

__all__ = [
    "BODY_MARGINS",
    "HOG_DEFAULTS",
    "PERSON_LABEL",
    "HogDefaults",
    "HogPeople",
    "hog_windows",
    "window_to_body",
]

PERSON_LABEL = 1  # COCO's person index (the torchvision backend's labels)

#: Margins of the 64x128 HOG window around the body it fires on, as fractions of the window's
#: ``(width left, height above, width right, height below)``. INRIA's training windows centre
#: a ~96-pixel-tall person with 16 pixels (0.125 of 128) above and below (Dalal & Triggs 2005),
#: the body filling about the middle half of the width. Tuned on the hand-labelled basketball
#: frames (``tests/fixtures/real/basketball_people.json``, docs/predict.md): a grid search over
#: margins in steps of 0.025 (left = right), maximising the mean IoU of each labelled person's
#: best-overlapping box after NMS over HOG at resize 1, 1.5 and 2, picked exactly 0.125 above
#: and below and 0.2 each side; mean IoU 0.38 -> 0.49 (best box), 0.35 -> 0.47 (top box).
BODY_MARGINS = (0.2, 0.125, 0.2, 0.125)


def window_to_body(boxes: np.ndarray, margins: Sequence[float] = BODY_MARGINS) -> np.ndarray:
    """HOG windows -> body boxes: ``float[n, 4]`` xyxy, each side moved inwards by its margin.

    ``margins``: ``(left, top, right, bottom)`` fractions of the window's width (left, right) and
    height (top, bottom), :data:`BODY_MARGINS` by default. Works on unclipped windows (a window
    reaching outside the frame keeps its proportions); clip afterwards.
    """
    m = np.asarray(margins, np.float64)
    if m.shape != (4,) or np.any(m < 0) or m[0] + m[2] >= 1 or m[1] + m[3] >= 1:
        raise ValueError(
            f"margins must be 4 fractions >= 0, left + right < 1, top + bottom < 1: {m}"
        )
    b = np.asarray(boxes, np.float64)
    w = (b[:, 2] - b[:, 0])[:, None]  # [n, 1]
    h = (b[:, 3] - b[:, 1])[:, None]  # [n, 1]
    scale = np.concatenate([w, h, w, h], axis=1)  # [n, 4]
    sign = np.array([1.0, 1.0, -1.0, -1.0])  # x1, y1 move right/down; x2, y2 left/up
    return b + sign * m * scale  # [n, 4]


@dataclass(frozen=True)
class HogDefaults:
    """The HOG people detector's default parameters (steps 1-5 of the module doc)."""

    resize: float = 1.0  # step 1: >1 finds people smaller than the 128-pixel window
    # step 2: replicated border (top, bottom, sides) as fractions of the frame: 1.5 below the
    # frame lets a window reach a close-up person's legs outside it
    pad: tuple[float, float, float] = (0.25, 1.5, 0.25)
    win_stride: int = 8  # step 3: window step, one HOG cell
    scale: float = 1.05  # step 3: OpenCV's default pyramid ratio
    score_thresh: float = 0.0  # step 3: the SVM's own boundary
    min_inside: float = 0.3  # step 4
    nms_iou: float | None = 0.4  # step 5
    max_per_frame: int = 20  # step 5


HOG_DEFAULTS = HogDefaults()


class HogPeople:
    """OpenCV's default HOG people detector with its multi-scale parameters (see the module doc).

    Args:
        resize: the frame is resized by this before detection (boxes are mapped back).
        pad: ``(top, bottom, sides)`` border replicated around the frame, as fractions of its
            height (top, bottom) and width (each side).
        win_stride: window step in pixels of each pyramid level (a multiple of 8, HOG's cell).
        scale: ratio between pyramid levels (OpenCV's ``scale``; 1.05 is its default).
        score_thresh: keep windows with SVM margin ``>= score_thresh``.
        min_inside: keep windows with at least this fraction of their area inside the frame.
        body: map each window to the body box inside it (:func:`window_to_body`): ``True`` with
            :data:`BODY_MARGINS`, 4 margins, or ``None``/``False`` for the raw window (the
            detection backends' default, which the cached stores were made with).
    """

    def __init__(
        self,
        resize: float = HOG_DEFAULTS.resize,
        pad: Sequence[float] = HOG_DEFAULTS.pad,
        win_stride: int = HOG_DEFAULTS.win_stride,
        scale: float = HOG_DEFAULTS.scale,
        score_thresh: float = HOG_DEFAULTS.score_thresh,
        min_inside: float = HOG_DEFAULTS.min_inside,
        body: bool | Sequence[float] | None = None,
    ) -> None:
        if resize <= 0:
            raise ValueError(f"resize must be > 0, got {resize}")
        pad = tuple(float(p) for p in pad)
        if len(pad) != 3 or min(pad) < 0:
            raise ValueError(f"pad must be 3 non-negative fractions (top, bottom, sides): {pad}")
        if win_stride < 8 or win_stride % 8:
            raise ValueError(f"win_stride must be a positive multiple of 8, got {win_stride}")
        if scale <= 1:
            raise ValueError(f"scale must be > 1, got {scale}")
        if not 0 <= min_inside <= 1:
            raise ValueError(f"min_inside must be in [0, 1], got {min_inside}")
        self.resize = float(resize)
        self.pad = pad
        self.win_stride = int(win_stride)
        self.scale = float(scale)
        self.score_thresh = float(score_thresh)
        self.min_inside = float(min_inside)
        if body is True:
            body = BODY_MARGINS
        self.body: tuple[float, ...] | None = tuple(float(m) for m in body) if body else None
        if self.body is not None:
            window_to_body(np.zeros((0, 4)), self.body)  # checks the margins now
        self._hog: Any = None  # built on first use: a cv2 object does not pickle

    def params(self) -> dict[str, Any]:
        """Everything that shapes the windows (for cache keys)."""
        return {
            "resize": self.resize,
            "pad": list(self.pad),
            "win_stride": self.win_stride,
            "scale": self.scale,
            "score_thresh": self.score_thresh,
            "min_inside": self.min_inside,
            **({"body": list(self.body)} if self.body is not None else {}),  # old keys unchanged
            "opencv": cv2.__version__,
        }

    @property
    def hog(self) -> Any:
        if self._hog is None:
            self._hog = cv2.HOGDescriptor()  # 64x128 window, 8x8 cells, 9 bins: Dalal & Triggs
            self._hog.setSVMDetector(cv2.HOGDescriptor_getDefaultPeopleDetector())  # type: ignore[attr-defined]
        return self._hog

    def __call__(self, frame: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """See :func:`hog_windows`."""
        return hog_windows(frame, self)


def hog_windows(frame: np.ndarray, det: HogPeople) -> tuple[np.ndarray, np.ndarray]:
    """Scored HOG windows of one frame, before NMS.

    Args:
        frame: uint8 ``[H, W, 3]`` RGB (HOG takes the largest gradient over the channels, so
            RGB and BGR give the same windows).
        det: the detector and its parameters.

    Returns:
        ``(boxes float32[n, 4] xyxy clipped to the frame, scores float32[n])``, by descending
        score, then by coordinates; body boxes when ``det.body`` is set, else the windows.
    """
    if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
        raise ValueError(f"frame must be uint8 [H, W, 3], got {frame.dtype} {frame.shape}")
    H, W = frame.shape[:2]
    img = np.ascontiguousarray(frame)
    if det.resize != 1.0:
        size = (max(1, round(W * det.resize)), max(1, round(H * det.resize)))
        interp = cv2.INTER_AREA if det.resize < 1 else cv2.INTER_LINEAR
        img = cv2.resize(img, size, interpolation=interp)
    h, w = img.shape[:2]
    top, bottom, side = (round(det.pad[0] * h), round(det.pad[1] * h), round(det.pad[2] * w))
    if top or bottom or side:
        img = cv2.copyMakeBorder(img, top, bottom, side, side, cv2.BORDER_REPLICATE)
    rects, weights = det.hog.detectMultiScale(
        img,
        hitThreshold=det.score_thresh,
        winStride=(det.win_stride, det.win_stride),
        padding=(0, 0),  # our own padding above: OpenCV's is for block computation only
        scale=det.scale,
        groupThreshold=0,  # raw windows: NMS happens afterwards, on scores
    )
    if len(rects) == 0:
        return np.zeros((0, 4), np.float32), np.zeros(0, np.float32)
    r = np.asarray(rects, np.float64).reshape(-1, 4)  # [n, 4] x, y, w, h in the padded image
    scores = np.asarray(weights, np.float64).reshape(-1)  # [n]
    sx, sy = w / W, h / H  # resized pixels per frame pixel (exact for the rounded size)
    x1 = (r[:, 0] - side) / sx  # [n] frame pixels, may be < 0 or > W (padding)
    y1 = (r[:, 1] - top) / sy
    x2 = x1 + r[:, 2] / sx
    y2 = y1 + r[:, 3] / sy
    boxes = np.stack([x1, y1, x2, y2], axis=1)  # [n, 4] unclipped windows
    clipped = np.clip(boxes, 0.0, [W, H, W, H])  # [n, 4]
    inside = (clipped[:, 2] - clipped[:, 0]) * (clipped[:, 3] - clipped[:, 1])  # [n]
    area = (x2 - x1) * (y2 - y1)  # [n]
    keep = (inside >= det.min_inside * area) & (inside > 0) & (scores >= det.score_thresh)
    if det.body is not None:  # the body inside the window, then clipped like the window
        clipped = np.clip(window_to_body(boxes, det.body), 0.0, [W, H, W, H])  # [n, 4]
    boxes, scores = clipped[keep].astype(np.float32), scores[keep].astype(np.float32)
    # OpenCV scans pyramid levels in parallel, so its order varies between calls: sort (by
    # descending score, then coordinates) to make the output, and NMS ties, deterministic
    order = np.lexsort((boxes[:, 3], boxes[:, 2], boxes[:, 1], boxes[:, 0], -scores))
    return boxes[order], scores[order]
