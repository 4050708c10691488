"""Qualitative pictures: tube strips, tube animations and evaluation curves.

Conventions, everywhere in this module:

- frames are ``uint8`` arrays ``[T, H, W, 3]`` (one frame ``[H, W, 3]``) in **RGB** order;
- frame numbers are **0-based** (those of :class:`~wsal.data.video.VideoReader`);
- boxes are ``xyxy`` float pixels of the frame they are drawn on; ``x2``/``y2`` are the right/bottom
  edges, so a box ``[x1, y1, x2, y2]`` is outlined through pixel columns ``x1 .. x2 - 1``;
- a *tube* given to a drawing function is a pair ``(rows float[n, 5], text)``: rows
  ``[frame, x1, y1, x2, y2]`` (the form of ``GTTube.rows()`` / ``TubeDetections.tube(i)``) and a
  label drawn next to its box (``None``: no label). A tube is drawn only on the frames it has a
  row for: nothing is interpolated, so a GT tube with annotation gaps shows no box there;
- ground truth is drawn in **blue** (:data:`GT_COLOR`), labels above the box; predictions in
  **red** (:data:`PRED_COLOR`), labels below the box, so that the labels of a prediction that
  overlaps its GT do not cover each other.

Every writer goes to a temp file in the destination folder and renames it (DESIGN §4), so a
reader never sees half a picture. Plots use matplotlib's Agg canvas on a ``Figure`` object, not
``pyplot``: nothing here changes the process-wide backend of a notebook that imports wsal.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from wsal.atomic import atomic_path
from wsal.data.annotations import DatasetIndex
from wsal.data.video import VideoReader, write_video
from wsal.structures import TubeDetections

__all__ = [
    "GT_COLOR",
    "PRED_COLOR",
    "TubeList",
    "draw_boxes",
    "tube_strip",
    "save_strips",
    "video_tubes",
    "read_video_frames",
    "video_strip",
    "save_video_animation",
    "save_tube_video",
    "plot_recall",
    "plot_pr",
    "plot_pr_curves",
    "plot_map_vs_iou",
    "plot_bars",
    "plot_cost",
]

#: RGB colour of ground-truth boxes (blue).
GT_COLOR: tuple[int, int, int] = (40, 110, 255)
#: RGB colour of predicted boxes (red).
PRED_COLOR: tuple[int, int, int] = (235, 35, 35)

#: Tubes to draw: ``(rows float[n, 5] [frame, x1, y1, x2, y2], label text or None)`` pairs.
TubeList = Sequence[tuple[np.ndarray, str | None]]

# Hershey simplex at 0.4 is ~9 px tall: legible on a 320x240 frame (160x120 at scale 2) while a
# "label 0.82" tag stays narrower than a typical person box.
_FONT_SCALE = 0.4
_TITLE_FONT_SCALE = 0.5
_TEXT_COLOR = (255, 255, 255)
_NUMBER_BG = (0, 0, 0)
_TITLE_BG = (32, 32, 32)
_PAD = 2  # px between text and its background edge


# ------------------------------------------------------------------------------------- drawing
def _check_frame(frame: np.ndarray, what: str = "frame") -> np.ndarray:
    frame = np.asarray(frame)
    if frame.ndim != 3 or frame.shape[-1] != 3 or frame.dtype != np.uint8:
        raise ValueError(f"{what} must be uint8 [H, W, 3] RGB, got {frame.dtype} {frame.shape}")
    return frame


def _check_frames(
    frames: np.ndarray, frame_ids: Sequence[int] | np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(
            f"frames must be uint8 [T, H, W, 3] RGB, got {frames.dtype} {frames.shape}"
        )
    ids = np.asarray(frame_ids).reshape(-1)
    if ids.size and not np.issubdtype(ids.dtype, np.integer):
        raise TypeError(f"frame_ids must be integers, got {ids.dtype}")
    if ids.shape[0] != frames.shape[0]:
        raise ValueError(f"{frames.shape[0]} frames but {ids.shape[0]} frame_ids")
    if frames.shape[0] == 0:
        raise ValueError("no frames to draw")
    return frames, ids.astype(np.int64)


def _text_size(text: str, font_scale: float) -> tuple[int, int, int]:
    """(width, height above baseline, baseline) in pixels of ``text`` in Hershey simplex."""
    import cv2

    (w, h), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, font_scale, 1)
    return w, h, base


def _put_tag(
    img: np.ndarray, text: str, x: int, y: int, bg: tuple[int, int, int], font_scale: float
) -> tuple[int, int, int, int]:
    """Draw ``text`` on a filled ``bg`` rectangle whose top-left corner is ``(x, y)``, clamped to
    the image. Returns the rectangle ``(x1, y1, x2, y2)`` (inclusive pixel corners)."""
    import cv2

    h_img, w_img = img.shape[:2]
    tw, th, base = _text_size(text, font_scale)
    bw, bh = tw + 2 * _PAD, th + base + 2 * _PAD  # tag size
    x = int(min(max(x, 0), max(w_img - bw, 0)))
    y = int(min(max(y, 0), max(h_img - bh, 0)))
    cv2.rectangle(img, (x, y), (x + bw - 1, y + bh - 1), bg, thickness=cv2.FILLED)
    cv2.putText(
        img,
        text,
        (x + _PAD, y + _PAD + th),
        cv2.FONT_HERSHEY_SIMPLEX,
        font_scale,
        _TEXT_COLOR,
        1,
        cv2.LINE_AA,
    )
    return x, y, x + bw - 1, y + bh - 1


def draw_boxes(
    frame: np.ndarray,
    boxes: np.ndarray,
    color: tuple[int, int, int],
    labels: Sequence[str | None] | None = None,
    thickness: int = 1,
    *,
    label_at: str = "top",
    font_scale: float = _FONT_SCALE,
) -> np.ndarray:
    """Outline boxes on a copy of one frame.

    Args:
        frame: uint8 [H, W, 3] RGB; not modified.
        boxes: float [N, 4] xyxy pixels of this frame (right/bottom edges exclusive: the outline
            runs through pixel columns ``round(x1) .. round(x2) - 1``). Non-finite rows are skipped.
        color: RGB triple of the outline and of the label's background.
        labels: optional N texts (e.g. ``"wave 0.82"``; None or ``""`` for no label), drawn in white
            on a ``color`` tag.
        thickness: outline width in pixels.
        label_at: ``"top"`` puts a label above the box's top-left corner, ``"bottom"`` below its
            bottom-left corner; a tag that would leave the frame is moved inside the box.
        font_scale: OpenCV Hershey font scale of the labels.

    Returns:
        uint8 [H, W, 3] RGB, antialiased outlines (``cv2.LINE_AA``).
    """
    import cv2

    if label_at not in ("top", "bottom"):
        raise ValueError(f"label_at must be 'top' or 'bottom', got {label_at!r}")
    out = np.ascontiguousarray(_check_frame(frame)).copy()  # [H, W, 3]; cv2 draws in place
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)  # [N, 4]
    if labels is not None and len(labels) != boxes.shape[0]:
        raise ValueError(f"{boxes.shape[0]} boxes but {len(labels)} labels")
    color = (int(color[0]), int(color[1]), int(color[2]))  # numpy ints -> what cv2 accepts
    h_img = out.shape[0]
    for i, box in enumerate(boxes):
        if not np.all(np.isfinite(box)):
            continue
        x1, y1 = int(round(box[0])), int(round(box[1]))
        x2, y2 = max(int(round(box[2])) - 1, x1), max(int(round(box[3])) - 1, y1)  # inclusive
        cv2.rectangle(
            out, (x1, y1), (x2, y2), color, thickness=int(thickness), lineType=cv2.LINE_AA
        )
        text = None if labels is None else labels[i]
        if not text:
            continue
        _, th, base = _text_size(text, font_scale)
        tag_h = th + base + 2 * _PAD
        half = int(thickness) // 2  # keep the tag off the outline itself
        if label_at == "top":
            y = y1 - half - tag_h
            if y < 0:  # no room above: inside, under the top edge
                y = y1 + half + 1
        else:
            y = y2 + half + 1
            if y + tag_h > h_img:  # no room below: inside, above the bottom edge
                y = y2 - half - tag_h
        _put_tag(out, text, x1 - half, y, color, font_scale)
    return out


def _boxes_at(tubes: TubeList | None, frame_id: int) -> tuple[np.ndarray, list[str | None]]:
    """Boxes float[N, 4] and texts of the tubes that have a row for ``frame_id``."""
    boxes: list[np.ndarray] = []
    texts: list[str | None] = []
    for rows, text in tubes or ():
        rows = np.asarray(rows, dtype=np.float64).reshape(-1, 5)  # [n, 5]
        hit = np.rint(rows[:, 0]) == frame_id  # [n]
        for box in rows[hit, 1:]:
            boxes.append(box)
            texts.append(text)
    return (np.stack(boxes) if boxes else np.zeros((0, 4))), texts


def _upscale(frame: np.ndarray, scale: int, interpolation: str) -> np.ndarray:
    import cv2

    if scale == 1:
        return frame.copy()
    modes = {"nearest": cv2.INTER_NEAREST, "cubic": cv2.INTER_CUBIC}
    if interpolation not in modes:
        raise ValueError(f"interpolation must be one of {sorted(modes)}, got {interpolation!r}")
    h, w = frame.shape[:2]
    return cv2.resize(frame, (w * scale, h * scale), interpolation=modes[interpolation])


def _render_frame(
    frame: np.ndarray,
    frame_id: int,
    gt: TubeList | None,
    pred: TubeList | None,
    scale: int,
    interpolation: str,
) -> np.ndarray:
    """One frame upscaled, with GT (blue, labels above), predictions (red, labels below) and its
    frame number in the top-left corner -> uint8 [H * scale, W * scale, 3]."""
    img = _upscale(frame, scale, interpolation)  # [H*s, W*s, 3]
    # Outlines ~1 source pixel wide, at most 3 px: visible after upscaling, without hiding the actor.
    thickness = max(1, min(3, scale))
    for tubes, color, where in ((gt, GT_COLOR, "top"), (pred, PRED_COLOR, "bottom")):
        boxes, texts = _boxes_at(tubes, frame_id)
        if boxes.shape[0]:
            img = draw_boxes(img, boxes * scale, color, texts, thickness, label_at=where)
    _put_tag(img, f"#{frame_id}", 0, 0, _NUMBER_BG, _FONT_SCALE)  # last: always legible
    return img


def _fit_text(text: str, width: int, font_scale: float) -> str:
    """``text`` cut to fit ``width`` pixels, ending in ``...`` when cut."""
    if _text_size(text, font_scale)[0] <= width:
        return text
    while text and _text_size(text + "...", font_scale)[0] > width:
        text = text[:-1]
    return text + "..."


def _title_band(title: str, width: int) -> np.ndarray:
    """uint8 [h, width, 3]: white ``title`` on a dark band; h = text height + 4 * _PAD."""
    import cv2

    _, th, base = _text_size("Ag", _TITLE_FONT_SCALE)  # one height for every title
    band = np.empty((th + base + 4 * _PAD, width, 3), np.uint8)  # [h, W, 3]
    band[:] = _TITLE_BG
    text = _fit_text(title, width - 4 * _PAD, _TITLE_FONT_SCALE)
    cv2.putText(
        band,
        text,
        (2 * _PAD, 2 * _PAD + th),
        cv2.FONT_HERSHEY_SIMPLEX,
        _TITLE_FONT_SCALE,
        _TEXT_COLOR,
        1,
        cv2.LINE_AA,
    )
    return band


def tube_strip(
    frames: np.ndarray,
    frame_ids: Sequence[int] | np.ndarray,
    gt: TubeList | None = None,
    pred: TubeList | None = None,
    scale: int = 2,
    title: str | None = None,
    *,
    interpolation: str = "nearest",
) -> np.ndarray:
    """A horizontal strip of frames with GT tubes in blue and predicted tubes in red.

    Args:
        frames: uint8 [T, H, W, 3] RGB, in the order they are laid out left to right.
        frame_ids: int[T] 0-based frame number of each frame; a tube row ``[f, x1, y1, x2, y2]``
            is drawn on the frame whose id is ``f`` (no interpolation between rows).
        gt: ground-truth tubes, ``(rows float[n, 5], text)`` pairs in source-frame pixels, drawn
            blue with the text above the box.
        pred: predicted tubes, same form, drawn red with the text (e.g. ``"wave 0.82"``) below.
        scale: integer upscaling factor (2 makes 160x120 frames legible); boxes are scaled with
            the frames.
        title: optional text on a dark band above the frames.
        interpolation: ``"nearest"`` (source pixels stay exact) or ``"cubic"`` (smoother).

    Returns:
        uint8 [H * scale + band, T * W * scale, 3] RGB; ``band`` is 0 without a title, else the
        title band's height (25 px at the default font). Frame ``t`` occupies columns
        ``t * W * scale .. (t + 1) * W * scale - 1``; its number ``#f`` sits in its top-left corner.
    """
    frames, ids = _check_frames(frames, frame_ids)
    scale = int(scale)
    if scale < 1:
        raise ValueError(f"scale must be a positive integer, got {scale}")
    tiles = [
        _render_frame(frame, int(f), gt, pred, scale, interpolation)
        for frame, f in zip(frames, ids)
    ]  # T x [H*s, W*s, 3]
    strip = np.concatenate(tiles, axis=1)  # [H*s, T*W*s, 3]
    if title is not None:
        strip = np.concatenate([_title_band(title, strip.shape[1]), strip], axis=0)
    return strip


# --------------------------------------------------------------------------------------- files
def _write_png(path: str | os.PathLike, image: np.ndarray) -> None:
    import cv2

    with atomic_path(path) as tmp:
        # cv2 picks the encoder from the suffix and expects BGR.
        if not cv2.imwrite(str(tmp), cv2.cvtColor(image, cv2.COLOR_RGB2BGR)):
            raise OSError(f"{path}: OpenCV could not write the image (unsupported suffix?)")


def save_strips(path: str | os.PathLike, strips: Sequence[np.ndarray], gap: int = 4) -> None:
    """Stack strips vertically and write one image (PNG), atomically.

    Args:
        path: destination, normally ``*.png`` (any suffix OpenCV can encode works).
        strips: uint8 [H_i, W_i, 3] RGB images (e.g. from :func:`tube_strip`), top to bottom;
            narrower ones are padded on the right with white.
        gap: white rows between consecutive strips.

    The image is ``sum(H_i) + gap * (len - 1)`` rows by ``max(W_i)`` columns.
    """
    if not strips:
        raise ValueError(f"{path}: no strips to save")
    strips = [_check_frame(s, "strip") for s in strips]
    width = max(s.shape[1] for s in strips)
    parts: list[np.ndarray] = []
    for i, s in enumerate(strips):
        if i and gap > 0:
            parts.append(np.full((gap, width, 3), 255, np.uint8))  # [gap, W, 3]
        parts.append(np.pad(s, ((0, 0), (0, width - s.shape[1]), (0, 0)), constant_values=255))
    _write_png(path, np.concatenate(parts, axis=0))  # [sum H + gaps, W, 3]


def save_tube_video(
    path: str | os.PathLike,
    frames: np.ndarray,
    frame_ids: Sequence[int] | np.ndarray,
    gt: TubeList | None = None,
    pred: TubeList | None = None,
    fps: float = 10.0,
    *,
    scale: int = 2,
    title: str | None = None,
    interpolation: str = "nearest",
) -> None:
    """Animate frames with their tubes, drawn as in :func:`tube_strip`, one frame per video frame.

    Args:
        path: ``*.mp4`` (H.264 with :func:`wsal.data.video.write_video`; odd sizes are padded with
            black to even ones, which yuv420p needs) or ``*.gif`` (Pillow, looping).
        frames: uint8 [T, H, W, 3] RGB.
        frame_ids: int[T] 0-based frame numbers; tube rows are matched to them.
        gt, pred: tubes as in :func:`tube_strip` (blue / red).
        fps: playback rate.
        scale, title, interpolation: as in :func:`tube_strip` (the title band tops every frame).

    The file is written to a temp name and renamed.
    """
    frames, ids = _check_frames(frames, frame_ids)
    suffix = Path(path).suffix.lower()
    if suffix not in (".mp4", ".gif"):
        raise ValueError(f"{path}: unsupported animation format {suffix!r} (use .mp4 or .gif)")
    if not fps > 0:
        raise ValueError(f"fps must be positive, got {fps}")
    scale = int(scale)
    if scale < 1:
        raise ValueError(f"scale must be a positive integer, got {scale}")
    out = np.stack(
        [
            _render_frame(frame, int(f), gt, pred, scale, interpolation)
            for frame, f in zip(frames, ids)
        ]
    )  # [T, H*s, W*s, 3]
    if title is not None:
        band = _title_band(title, out.shape[2])  # [h, W*s, 3]
        out = np.concatenate([np.broadcast_to(band, (out.shape[0], *band.shape)), out], axis=1)
    if suffix == ".mp4":
        h, w = out.shape[1:3]
        out = np.pad(out, ((0, 0), (0, h % 2), (0, w % 2), (0, 0)))  # [T, even H, even W, 3]
        write_video(path, out, fps=fps)  # atomic itself
        return
    try:
        from PIL import Image
    except ImportError as err:  # matplotlib depends on Pillow, so this should not happen
        raise ImportError(f"{path}: writing a GIF needs Pillow (pip install pillow)") from err
    images = [Image.fromarray(img) for img in out]
    with atomic_path(path) as tmp:
        images[0].save(
            tmp,
            format="GIF",
            save_all=True,
            append_images=images[1:],
            duration=max(int(round(1000.0 / fps)), 10),
            loop=0,
        )


# ------------------------------------------------------------------------------------- dataset
def _label_name(names: Sequence[str], label: int) -> str:
    return names[label] if 0 <= label < len(names) else str(label)


def video_tubes(
    index: DatasetIndex,
    video: str,
    dets: TubeDetections | None = None,
    top_k: int = 1,
    label_names: Sequence[str] | None = None,
    *,
    per_label: bool = False,
) -> tuple[list[tuple[np.ndarray, str | None]], list[tuple[np.ndarray, str | None]], str]:
    """GT and predicted tubes of one dataset video, ready for :func:`tube_strip`, and a title.

    Returns ``(gt, pred, title)``: ``gt`` = every GT tube of the video labelled with its class
    name; ``pred`` = the ``top_k`` highest-scoring rows of ``dets`` for this video (any label;
    ties keep file order), labelled ``"<class> <score>"`` — or, with ``per_label``, the ``top_k``
    best rows of *each class the video is labelled with* (what the papers' qualitative figures
    show: the tube the method ranks first for the true action); title
    ``"<video>  [<class names of the video>]"``. Tube rows are ``[frame, x1, y1, x2, y2]``,
    0-based frames, xyxy pixels of the annotation.
    """
    if video not in index.videos:
        raise KeyError(f"unknown video {video!r}")
    names = list(index.labels if label_names is None else label_names)
    info = index.videos[video]
    gt: list[tuple[np.ndarray, str | None]] = [
        (t.rows(), _label_name(names, t.label)) for t in info.tubes
    ]
    pred: list[tuple[np.ndarray, str | None]] = []
    if dets is not None and len(dets) and top_k > 0:
        mine = np.nonzero(dets.video == video)[0]  # [D] rows of this video
        groups = [mine[dets.label[mine] == lab] for lab in info.labels] if per_label else [mine]
        for rows in groups:
            best = rows[np.argsort(-dets.score[rows], kind="stable")[:top_k]]  # [<=k]
            pred += [
                (dets.tube(int(i)), f"{_label_name(names, int(dets.label[i]))} {dets.score[i]:.2f}")
                for i in best
            ]
    labels = ", ".join(_label_name(names, lab) for lab in info.labels)
    return gt, pred, (f"{video}  [{labels}]" if labels else video)


def read_video_frames(
    index: DatasetIndex, video: str, frame_ids: Sequence[int] | np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Frames of a dataset video in annotation pixels.

    Args:
        index: the dataset; the video is read from ``index.video_path(video)``.
        video: video id.
        frame_ids: 0-based frames to read; None = every frame (``min(VideoInfo.nframes, decoded)``).

    Returns:
        ``(frames uint8 [T, H, W, 3] RGB, frame_ids int64[T])``. When ``VideoInfo.width``/``height``
        are known and differ from the decoded size, frames are resized to them (``INTER_AREA``)
        so that the annotation's boxes fit.
    """
    import cv2

    if video not in index.videos:
        raise KeyError(f"unknown video {video!r}")
    info = index.videos[video]
    reader = VideoReader(index.video_path(video))
    if frame_ids is None:
        n = min(int(info.nframes), reader.num_frames) if info.nframes else reader.num_frames
        frame_ids = np.arange(n)
    ids = np.asarray(frame_ids, dtype=np.int64).reshape(-1)  # [T]
    frames = reader.get_frames(ids)  # [T, h, w, 3]
    if info.width and info.height and (reader.width, reader.height) != (info.width, info.height):
        frames = np.stack(
            [
                cv2.resize(f, (int(info.width), int(info.height)), interpolation=cv2.INTER_AREA)
                for f in frames
            ]
        )  # [T, H, W, 3] in annotation pixels
    return frames, ids


def video_strip(
    index: DatasetIndex,
    video: str,
    dets: TubeDetections | None = None,
    num_frames: int = 6,
    top_k: int = 1,
    label_names: Sequence[str] | None = None,
    *,
    scale: int = 2,
    per_label: bool = False,
) -> np.ndarray:
    """Strip of one dataset video with its GT tubes and its best detections.

    Frames: ``num_frames`` evenly spaced (rounded, duplicates dropped) among the frames annotated
    in any of the video's GT tubes, so every frame shows GT even where a tube skips frames; the
    whole video when it has no GT tube. They are read with :func:`read_video_frames` (resized to
    the annotation's size when the decoded size differs, so that the boxes fit).

    Drawn (:func:`video_tubes`): every GT tube of the video in blue, labelled with its class
    name; the ``top_k`` highest-scoring rows of ``dets`` for this video (any label; with
    ``per_label``, of each of the video's classes) in red, labelled ``"<class> <score>"``.
    Title: ``"<video>  [<class names of the video>]"``.

    Args:
        index: the dataset (0-based frames, xyxy boxes).
        video: video id in ``index.videos``.
        dets: results (rows of other videos are ignored), or None for GT only.
        num_frames: frames in the strip (fewer when the span is shorter).
        top_k: detections drawn.
        label_names: class names of ``dets.label`` and of GT labels; default ``index.labels``.
        scale: as in :func:`tube_strip`.
        per_label: see :func:`video_tubes`.

    Returns:
        uint8 [H * scale + band, T * W * scale, 3] RGB, as :func:`tube_strip`.
    """
    if video not in index.videos:
        raise KeyError(f"unknown video {video!r}")
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    info = index.videos[video]
    num_decoded = VideoReader(index.video_path(video)).num_frames
    n = min(int(info.nframes), num_decoded) if info.nframes else num_decoded
    annotated = np.unique(
        np.concatenate([t.frames for t in info.tubes] + [np.zeros(0, np.int64)])
    )  # [A] sorted 0-based
    annotated = annotated[annotated < num_decoded]
    pool = annotated if annotated.size else np.arange(n)  # [P] candidate frames
    pick = np.rint(np.linspace(0, pool.size - 1, num_frames)).astype(np.int64)  # [num_frames]
    frames, frame_ids = read_video_frames(index, video, pool[np.unique(pick)])  # [T, H, W, 3]
    gt, pred, title = video_tubes(index, video, dets, top_k, label_names, per_label=per_label)
    return tube_strip(frames, frame_ids, gt, pred, scale=scale, title=title)


def save_video_animation(
    path: str | os.PathLike,
    index: DatasetIndex,
    video: str,
    dets: TubeDetections | None = None,
    top_k: int = 1,
    label_names: Sequence[str] | None = None,
    *,
    fps: float | None = None,
    scale: int = 2,
    per_label: bool = False,
    span: str = "video",
) -> int:
    """Animate one dataset video with its tubes (:func:`video_tubes`) as ``*.gif`` or ``*.mp4``.

    Args:
        path: destination; the format follows the suffix (see :func:`save_tube_video`).
        index, video, dets, top_k, label_names, per_label: as in :func:`video_strip`.
        fps: playback rate; None = the video's ``VideoInfo.fps`` (10 when unknown).
        scale: integer upscaling factor.
        span: ``"video"`` = every frame; ``"tubes"`` = from the first to the last frame that any
            drawn tube (GT or prediction) covers.

    Returns:
        The number of frames written.
    """
    if span not in ("video", "tubes"):
        raise ValueError(f"span must be 'video' or 'tubes', got {span!r}")
    gt, pred, title = video_tubes(index, video, dets, top_k, label_names, per_label=per_label)
    frames, ids = read_video_frames(index, video)  # [T, H, W, 3], [T]
    if span == "tubes" and (gt or pred):
        covered = np.concatenate([np.asarray(rows)[:, 0] for rows, _ in [*gt, *pred]])  # [R]
        keep = (ids >= covered.min()) & (ids <= covered.max())  # [T]
        if keep.any():
            frames, ids = frames[keep], ids[keep]
    info_fps = index.videos[video].fps
    rate = float(fps) if fps else (float(info_fps) if info_fps else 10.0)
    save_tube_video(path, frames, ids, gt, pred, fps=rate, scale=scale, title=title)
    return int(ids.size)


# --------------------------------------------------------------------------------------- plots
def _figure(title: str, xlabel: str, ylabel: str) -> tuple[Any, Any]:
    """A matplotlib ``Figure`` on its own Agg canvas, and its axes."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.0, 3.75), dpi=120)
    FigureCanvasAgg(fig)  # attaches itself to fig: savefig renders with Agg, no pyplot state
    ax = fig.add_subplot()
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    return fig, ax


def _save_figure(fig: Any, path: str | os.PathLike) -> None:
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")


def _top(values: Sequence[np.ndarray]) -> float:
    """Upper y limit: 1.02 for fractions, a bit above the data otherwise (e.g. percentages)."""
    finite = [v[np.isfinite(v)] for v in values]
    vmax = max((float(v.max()) for v in finite if v.size), default=1.0)
    return 1.02 if vmax <= 1.0 else vmax * 1.02


def plot_recall(
    curves: Mapping[str, np.ndarray],
    path: str | os.PathLike,
    title: str,
    xlabel: str = "proposals per video",
    ylabel: str = "recall",
    styles: Mapping[str, dict[str, Any]] | None = None,
) -> None:
    """Recall against the number of proposals kept, one line per method, as a PNG (atomic).

    Args:
        curves: name -> float[N] recall when keeping the top 1, 2, ..., N proposals per video
            (x = 1..N; curves may differ in N).
        path: ``*.png``.
        title, xlabel, ylabel: texts of the plot.
        styles: optional matplotlib line keywords per curve name (e.g. colour, linestyle).
    """
    fig, ax = _figure(title, xlabel, ylabel)
    ys = []
    for label, y in curves.items():
        y = np.asarray(y, dtype=np.float64).reshape(-1)  # [N]
        x = np.arange(1, y.size + 1)  # [N]
        kw = {"marker": "o" if y.size <= 20 else None, "markersize": 3}
        kw.update((styles or {}).get(label, {}))
        ax.plot(x, y, label=label, **kw)
        ys.append(y)
    ax.set_ylim(0.0, _top(ys))
    ax.set_xlim(left=1)
    if curves:
        ax.legend(loc="lower right", fontsize="small")
    _save_figure(fig, path)


def plot_pr(
    precision: np.ndarray,
    recall: np.ndarray,
    path: str | os.PathLike,
    title: str,
    *,
    label: str | None = None,
) -> None:
    """Precision-recall curve as a PNG (atomic).

    Args:
        precision: float[N] precision after each ranked detection.
        recall: float[N] recall after each ranked detection (same order).
        path: ``*.png``.
        title: plot title (e.g. ``"wave, video-AP@0.5 = 0.61"``).
        label: optional legend entry.
    """
    p = np.asarray(precision, dtype=np.float64).reshape(-1)  # [N]
    r = np.asarray(recall, dtype=np.float64).reshape(-1)  # [N]
    if p.shape != r.shape:
        raise ValueError(f"precision has {p.size} points, recall {r.size}")
    fig, ax = _figure(title, "recall", "precision")
    ax.plot(r, p, label=label)
    ax.set_xlim(0.0, 1.0)
    ax.set_ylim(0.0, 1.02)
    if label is not None:
        ax.legend(loc="lower left", fontsize="small")
    _save_figure(fig, path)


def plot_pr_curves(
    curves: Mapping[str, tuple[np.ndarray, np.ndarray]],
    path: str | os.PathLike,
    title: str,
) -> None:
    """Several precision-recall curves (e.g. one per class) in one PNG (atomic).

    Args:
        curves: legend entry (e.g. ``"wave AP=0.61"``) -> ``(precision float[N], recall float[N])``,
            points in rank order (as :func:`plot_pr`).
        path: ``*.png``.
        title: plot title (state the threshold and protocol).
    """
    fig, ax = _figure(title, "recall", "precision")
    for label, (precision, recall) in curves.items():
        p = np.asarray(precision, dtype=np.float64).reshape(-1)  # [N]
        r = np.asarray(recall, dtype=np.float64).reshape(-1)  # [N]
        if p.shape != r.shape:
            raise ValueError(f"{label!r}: precision has {p.size} points, recall {r.size}")
        ax.plot(r, p, label=label, linewidth=1.2)
    ax.set_xlim(0.0, 1.0)
    ax.set_ylim(0.0, 1.02)
    if curves:
        ax.legend(loc="upper right", fontsize="x-small")
    _save_figure(fig, path)


def plot_map_vs_iou(
    thresholds: Sequence[float] | np.ndarray,
    maps: Mapping[str, Sequence[float]],
    path: str | os.PathLike,
    title: str,
    *,
    xlabel: str = "IoU threshold",
    ylabel: str = "video-mAP",
) -> None:
    """mAP against the IoU threshold, one line per method, as a PNG (atomic).

    Args:
        thresholds: float[K] IoU thresholds (x).
        maps: name -> K mAP values (fractions or percentages), one per threshold.
        path: ``*.png``.
        title, xlabel, ylabel: texts of the plot.
    """
    x = np.asarray(thresholds, dtype=np.float64).reshape(-1)  # [K]
    fig, ax = _figure(title, xlabel, ylabel)
    ys = []
    for label, m in maps.items():
        y = np.asarray(m, dtype=np.float64).reshape(-1)  # [K]
        if y.shape != x.shape:
            raise ValueError(f"{label!r}: {y.size} mAP values for {x.size} thresholds")
        ax.plot(x, y, label=label, marker="o", markersize=3)
        ys.append(y)
    ax.set_ylim(0.0, _top(ys))
    if maps:
        ax.legend(loc="best", fontsize="small")
    _save_figure(fig, path)


def plot_bars(
    values: Mapping[str, float], path: str | os.PathLike, title: str, ylabel: str = "video-mAP"
) -> None:
    """One bar per named value (e.g. mAP per reranking option), value printed on top; PNG."""
    fig, ax = _figure(title, "", ylabel)
    names = list(values)
    y = np.array([values[n] for n in names], dtype=np.float64)  # [n]
    bars = ax.bar(np.arange(len(names)), y, color="tab:blue")
    ax.set_xticks(np.arange(len(names)), names)
    for bar, v in zip(bars, y):
        ax.annotate(f"{v:.3f}", (bar.get_x() + bar.get_width() / 2, v), ha="center", va="bottom")
    ax.set_ylim(0.0, max(float(y.max()) * 1.15, 1e-3) if y.size else 1.0)
    _save_figure(fig, path)


def plot_cost(
    points: Mapping[str, tuple[float, float]],
    path: str | os.PathLike,
    title: str,
    xlabel: str = "annotation cost (s per training video, log scale)",
    ylabel: str = "video-mAP@0.5",
) -> None:
    """Accuracy against annotation cost, one labelled point per supervision level (STIL Fig. 6)."""
    fig, ax = _figure(title, xlabel, ylabel)
    for name, (cost, value) in points.items():
        ax.scatter([cost], [value], s=25)
        ax.annotate(name, (cost, value), textcoords="offset points", xytext=(4, 4), fontsize=7)
    ax.set_xscale("log")
    vals = np.array([v for _, v in points.values()], dtype=np.float64)
    ax.set_ylim(0.0, max(float(vals.max()) * 1.2, 1e-3) if vals.size else 1.0)
    _save_figure(fig, path)
