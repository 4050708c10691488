"""Columnar containers passed between pipeline stages (DESIGN §4).

Conventions, everywhere in wsal:
- frames are **0-based** integers;
- boxes are ``xyxy`` float32 pixels (``x2``/``y2`` are the right/bottom edges);
- one container holds one video (``Detections``, ``Tubes``) or a whole result set
  (``TubeDetections``); every field is an array indexed along the first axis, never a Python
  object per box.

The containers check their shapes on construction, index all fields together and hold numpy arrays
(``to_torch`` gives tensors on a device for batched GPU work).
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from wsal.atomic import atomic_path, atomic_write_json
from wsal.errors import InputError

if TYPE_CHECKING:  # torch is imported lazily: the evaluator and the CLIs never need it
    import torch

__all__ = ["Detections", "Tubes", "TubeDetections", "atomic_savez"]


def _as(array: object, dtype: type | np.dtype, name: str) -> np.ndarray:
    out = np.asarray(array)
    if out.dtype != dtype:
        if (
            np.issubdtype(np.dtype(dtype), np.integer)
            and out.size
            and not np.issubdtype(out.dtype, np.integer)
        ):
            if not np.all(np.isfinite(out)) or np.any(np.asarray(out) != np.round(out)):
                raise ValueError(f"{name}: expected integers, got non-integer values")
        out = out.astype(dtype)
    return out


def atomic_savez(path: str | os.PathLike, **arrays: np.ndarray) -> None:
    """Write an uncompressed ``.npz`` to a temp file in the same folder, then rename it.

    Nothing half-written is ever left at ``path`` (DESIGN §4: caches are written atomically).
    """
    with atomic_path(path, suffix=".npz") as tmp, open(tmp, "wb") as fh:
        np.savez(fh, **arrays)  # type: ignore[arg-type]


@dataclass
class Detections:
    """Boxes of one video, sorted by frame, with a CSR index per frame.

    Fields:
        frame: int64[N], 0-based, non-decreasing.
        boxes: float32[N, 4], xyxy pixels.
        scores: float32[N], detector (prior) scores.
        num_frames: F, the video's frame count (every ``frame < F``).
        labels: optional int64[N] class per box (-1 = class-agnostic).
        features: optional [N, D] per-box features.
        frame_ptr: int64[F + 1] (derived): boxes of frame f are rows ``frame_ptr[f]:frame_ptr[f+1]``.

    Construct with rows in any order via :meth:`from_unsorted`; the constructor itself requires
    sorted frames so that row indices (``Tubes.box_index``) stay meaningful.
    """

    frame: np.ndarray
    boxes: np.ndarray
    scores: np.ndarray
    num_frames: int
    labels: np.ndarray | None = None
    features: np.ndarray | None = None
    frame_ptr: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.frame = _as(self.frame, np.int64, "frame").reshape(-1)
        n = self.frame.shape[0]
        self.boxes = (
            _as(self.boxes, np.float32, "boxes").reshape(n, 4)
            if n
            else np.zeros((0, 4), np.float32)
        )
        self.scores = _as(self.scores, np.float32, "scores").reshape(-1)
        self.num_frames = int(self.num_frames)
        if self.scores.shape != (n,):
            raise ValueError(f"scores has shape {self.scores.shape}, expected ({n},)")
        if self.labels is not None:
            self.labels = _as(self.labels, np.int64, "labels").reshape(-1)
            if self.labels.shape != (n,):
                raise ValueError(f"labels has shape {self.labels.shape}, expected ({n},)")
        if self.features is not None:
            self.features = np.asarray(self.features)
            if self.features.ndim != 2 or self.features.shape[0] != n:
                raise ValueError(f"features has shape {self.features.shape}, expected ({n}, D)")
        if n:
            if self.frame.min() < 0 or self.frame.max() >= self.num_frames:
                raise ValueError(
                    f"frame indices must lie in [0, {self.num_frames}), got "
                    f"[{self.frame.min()}, {self.frame.max()}]"
                )
            if np.any(np.diff(self.frame) < 0):
                raise ValueError("frame must be sorted (use Detections.from_unsorted)")
        counts = np.bincount(self.frame, minlength=self.num_frames)
        self.frame_ptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)

    @classmethod
    def from_unsorted(
        cls,
        frame: np.ndarray,
        boxes: np.ndarray,
        scores: np.ndarray,
        num_frames: int,
        labels: np.ndarray | None = None,
        features: np.ndarray | None = None,
    ) -> Detections:
        """Sort rows by frame (stable, so the order within a frame is kept) and build."""
        order = np.argsort(np.asarray(frame), kind="stable")
        return cls(
            np.asarray(frame)[order],
            np.asarray(boxes)[order],
            np.asarray(scores)[order],
            num_frames,
            None if labels is None else np.asarray(labels)[order],
            None if features is None else np.asarray(features)[order],
        )

    @classmethod
    def empty(cls, num_frames: int) -> Detections:
        return cls(
            np.zeros(0, np.int64), np.zeros((0, 4), np.float32), np.zeros(0, np.float32), num_frames
        )

    def __len__(self) -> int:
        return int(self.frame.shape[0])

    def in_frame(self, f: int) -> slice:
        """Row slice of frame ``f``."""
        return slice(int(self.frame_ptr[f]), int(self.frame_ptr[f + 1]))

    def per_frame_counts(self) -> np.ndarray:
        """int64[F]: number of boxes in each frame."""
        return np.diff(self.frame_ptr)

    def select(self, mask_or_index: np.ndarray) -> Detections:
        """Rows selected by a boolean mask or a sorted index array (frames stay sorted)."""
        idx = np.asarray(mask_or_index)
        if idx.dtype != bool and np.any(np.diff(idx) < 0):
            raise ValueError("index must be sorted to keep frames sorted")
        return Detections(
            self.frame[idx],
            self.boxes[idx],
            self.scores[idx],
            self.num_frames,
            None if self.labels is None else self.labels[idx],
            None if self.features is None else self.features[idx],
        )

    def with_scores(self, scores: np.ndarray) -> Detections:
        """Same boxes, new scores (e.g. model scores instead of priors)."""
        return Detections(
            self.frame, self.boxes, scores, self.num_frames, self.labels, self.features
        )

    def to_torch(self, device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
        """Tensors on ``device``: frame int64[N], boxes float32[N,4], scores float32[N]."""
        import torch

        out = {
            "frame": torch.from_numpy(self.frame).to(device),
            "boxes": torch.from_numpy(self.boxes).to(device),
            "scores": torch.from_numpy(self.scores).to(device),
        }
        if self.features is not None:
            out["features"] = torch.from_numpy(np.ascontiguousarray(self.features)).to(device)
        return out


@dataclass
class Tubes:
    """Tubes of one video: a box per frame over a contiguous stretch of time.

    Fields:
        boxes: float32[K, F, 4], xyxy pixels; rows where ``valid`` is False are zeros.
        valid: bool[K, F], True on the frames the tube covers (one contiguous run per tube).
        box_index: int64[K, F], the row in the video's ``Detections`` each box came from, -1 where
            the box was made by a tracker or by interpolation, or where ``valid`` is False.
        scores: float32[K], tube scores (e.g. mean box score).
        labels: optional int64[K], class per tube (-1 = class-agnostic).

    F is the video's frame count, so a tube's time is its column index (0-based frames).
    """

    boxes: np.ndarray
    valid: np.ndarray
    box_index: np.ndarray
    scores: np.ndarray
    labels: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.valid = np.asarray(self.valid, dtype=bool)
        if self.valid.ndim != 2:
            raise ValueError(f"valid must be [K, F], got shape {self.valid.shape}")
        k, f = self.valid.shape
        self.boxes = _as(self.boxes, np.float32, "boxes").reshape(k, f, 4)
        self.box_index = _as(self.box_index, np.int64, "box_index").reshape(k, f)
        self.scores = _as(self.scores, np.float32, "scores").reshape(k)
        if self.labels is not None:
            self.labels = _as(self.labels, np.int64, "labels").reshape(k)
        # Contiguity: each row's valid mask is one run (or empty).
        if k and f:
            starts = np.diff(self.valid.astype(np.int8), axis=1, prepend=0) == 1  # [K, F]
            if np.any(starts.sum(axis=1) > 1):
                bad = int(np.nonzero(starts.sum(axis=1) > 1)[0][0])
                raise ValueError(f"tube {bad} is not contiguous in time (use interpolate_gaps)")

    @property
    def num_tubes(self) -> int:
        return int(self.valid.shape[0])

    @property
    def num_frames(self) -> int:
        return int(self.valid.shape[1])

    def __len__(self) -> int:
        return self.num_tubes

    @classmethod
    def empty(cls, num_frames: int) -> Tubes:
        return cls(
            np.zeros((0, num_frames, 4), np.float32),
            np.zeros((0, num_frames), bool),
            np.zeros((0, num_frames), np.int64),
            np.zeros(0, np.float32),
        )

    def extent(self) -> tuple[np.ndarray, np.ndarray]:
        """(start int64[K], end int64[K]) first and last valid frame, inclusive; -1 if empty."""
        any_valid = self.valid.any(axis=1)
        start = np.where(any_valid, self.valid.argmax(axis=1), -1)
        end = np.where(any_valid, self.num_frames - 1 - self.valid[:, ::-1].argmax(axis=1), -1)
        return start.astype(np.int64), end.astype(np.int64)

    def lengths(self) -> np.ndarray:
        """int64[K] number of frames of each tube."""
        return self.valid.sum(axis=1).astype(np.int64)

    def select(self, index: np.ndarray) -> Tubes:
        idx = np.asarray(index)
        return Tubes(
            self.boxes[idx],
            self.valid[idx],
            self.box_index[idx],
            self.scores[idx],
            None if self.labels is None else self.labels[idx],
        )

    def rows(self, k: int) -> np.ndarray:
        """float64[n, 5] ``[frame, x1, y1, x2, y2]`` rows of tube ``k`` (its valid frames)."""
        frames = np.nonzero(self.valid[k])[0]
        return np.concatenate(
            [frames[:, None].astype(np.float64), self.boxes[k, frames].astype(np.float64)], axis=1
        )

    def to_torch(self, device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
        import torch

        return {
            "boxes": torch.from_numpy(self.boxes).to(device),
            "valid": torch.from_numpy(self.valid).to(device),
            "box_index": torch.from_numpy(self.box_index).to(device),
            "scores": torch.from_numpy(self.scores).to(device),
        }


@dataclass
class TubeDetections:
    """Results: one row per (video, label, score, tube), the columnar file form of DESIGN §4.

    Fields:
        video: str[N] video ids.
        label: int64[N] class index into the dataset's label list.
        score: float64[N].
        offsets: int64[N+1]; tube i is ``rows[offsets[i]:offsets[i+1]]``.
        rows: float64[M, 5] ``[frame, x1, y1, x2, y2]``, 0-based frames, sorted within each tube.
    """

    video: np.ndarray
    label: np.ndarray
    score: np.ndarray
    offsets: np.ndarray
    rows: np.ndarray

    def __post_init__(self) -> None:
        self.video = np.asarray(self.video).astype(str).reshape(-1)
        n = self.video.shape[0]
        self.label = _as(self.label, np.int64, "label").reshape(-1)
        self.score = _as(self.score, np.float64, "score").reshape(-1)
        self.offsets = _as(self.offsets, np.int64, "offsets").reshape(-1)
        self.rows = _as(self.rows, np.float64, "rows").reshape(-1, 5)
        if self.label.shape != (n,) or self.score.shape != (n,):
            raise ValueError(
                f"video/label/score lengths differ: {n}, {self.label.shape[0]}, {self.score.shape[0]}"
            )
        if self.offsets.shape != (n + 1,):
            raise ValueError(f"offsets has shape {self.offsets.shape}, expected ({n + 1},)")
        if (
            self.offsets[0] != 0
            or self.offsets[-1] != self.rows.shape[0]
            or np.any(np.diff(self.offsets) < 0)
        ):
            raise ValueError("offsets must start at 0, be non-decreasing and end at len(rows)")
        if not np.all(np.isfinite(self.rows)):
            bad = int(np.nonzero(~np.isfinite(self.rows).all(axis=1))[0][0])
            tube = int(np.searchsorted(self.offsets, bad, side="right") - 1)
            raise ValueError(f"tube {tube} (video {self.video[tube]!r}) has non-finite values")
        if not np.all(np.isfinite(self.score)):
            bad = int(np.nonzero(~np.isfinite(self.score))[0][0])
            raise ValueError(f"detection {bad} (video {self.video[bad]!r}) has a non-finite score")

    def __len__(self) -> int:
        return int(self.video.shape[0])

    def tube(self, i: int) -> np.ndarray:
        """float64[n, 5] rows of detection ``i``."""
        return self.rows[self.offsets[i] : self.offsets[i + 1]]

    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def __iter__(self) -> Iterator[tuple[str, int, float, np.ndarray]]:
        for i in range(len(self)):
            yield str(self.video[i]), int(self.label[i]), float(self.score[i]), self.tube(i)

    @classmethod
    def empty(cls) -> TubeDetections:
        return cls(
            np.zeros(0, str),
            np.zeros(0, np.int64),
            np.zeros(0),
            np.zeros(1, np.int64),
            np.zeros((0, 5)),
        )

    @classmethod
    def from_tubes(
        cls,
        video: str,
        tubes: Tubes,
        labels: np.ndarray | None = None,
        scores: np.ndarray | None = None,
    ) -> TubeDetections:
        """One row per tube of one video; labels/scores default to the tubes' own."""
        k = tubes.num_tubes
        labels = tubes.labels if labels is None else labels
        if labels is None:
            labels = np.full(k, -1, np.int64)
        scores = tubes.scores if scores is None else scores
        kk, ff = np.nonzero(tubes.valid)  # row-major: grouped by tube, frames ascending
        rows = np.concatenate(
            [ff[:, None].astype(np.float64), tubes.boxes[kk, ff].astype(np.float64)], axis=1
        )
        offsets = np.concatenate([[0], np.cumsum(tubes.lengths())])
        return cls(np.full(k, video, dtype=object), labels, scores, offsets, rows)

    @classmethod
    def from_list(cls, items: Sequence[tuple[str, int, float, np.ndarray]]) -> TubeDetections:
        """From ``(video, label, score, rows float[n,5])`` tuples."""
        if not items:
            return cls.empty()
        rows = [np.asarray(t[3], dtype=np.float64).reshape(-1, 5) for t in items]
        offsets = np.concatenate([[0], np.cumsum([len(r) for r in rows])])
        return cls(
            np.array([t[0] for t in items], dtype=object),
            np.array([t[1] for t in items], dtype=np.int64),
            np.array([t[2] for t in items], dtype=np.float64),
            offsets,
            np.concatenate(rows, axis=0),
        )

    @staticmethod
    def concat(parts: Sequence[TubeDetections]) -> TubeDetections:
        parts = [p for p in parts if len(p)]
        if not parts:
            return TubeDetections.empty()
        lengths = np.concatenate([p.lengths() for p in parts])
        return TubeDetections(
            np.concatenate([p.video.astype(object) for p in parts]),
            np.concatenate([p.label for p in parts]),
            np.concatenate([p.score for p in parts]),
            np.concatenate([[0], np.cumsum(lengths)]),
            np.concatenate([p.rows for p in parts], axis=0),
        )

    def select(self, index: np.ndarray) -> TubeDetections:
        idx = np.asarray(index)
        if idx.dtype == bool:
            idx = np.nonzero(idx)[0]
        lengths = self.lengths()[idx]
        starts = self.offsets[idx]
        # gather rows of the selected tubes without a Python loop
        row_idx = np.repeat(
            starts - np.concatenate([[0], np.cumsum(lengths)[:-1]]), lengths
        ) + np.arange(int(lengths.sum()))
        return TubeDetections(
            self.video[idx],
            self.label[idx],
            self.score[idx],
            np.concatenate([[0], np.cumsum(lengths)]),
            self.rows[row_idx],
        )

    # ----------------------------------------------------------------------------------------- I/O
    def to_json(self, label_names: Sequence[str] | None = None) -> list[dict[str, Any]]:
        """The ``"detections"`` list of the JSON form (DESIGN §4): one ``{"video", "label",
        "score", "tube": [[frame, x1, y1, x2, y2], ...]}`` per row, labels as names when
        ``label_names`` is given (else indices), frames 0-based ints."""
        return [
            {
                "video": v,
                "label": label_names[lab] if (label_names is not None and lab >= 0) else lab,
                "score": s,
                "tube": [[int(r[0]), *map(float, r[1:])] for r in rows],
            }
            for v, lab, s, rows in self
        ]

    def save(self, path: str | os.PathLike, label_names: Sequence[str] | None = None) -> None:
        """Write the columnar ``.npz`` or, for a ``.json`` path, the JSON form (DESIGN §4).

        Both are written to a temp file and renamed. In JSON, labels are written as names when
        ``label_names`` is given, else as indices.
        """
        path = Path(path)
        if path.suffix == ".json":
            atomic_write_json(path, {"detections": self.to_json(label_names)})
        else:
            atomic_savez(
                path,
                video=self.video.astype(str),
                label=self.label,
                score=self.score,
                offsets=self.offsets,
                rows=self.rows,
            )

    @classmethod
    def load(
        cls, path: str | os.PathLike, label_names: Sequence[str] | None = None
    ) -> TubeDetections:
        """Read either file form; JSON labels may be names (then ``label_names`` is required).

        A file that cannot be read (truncated, not JSON/npz, non-finite values...) raises
        :class:`~wsal.errors.InputError` naming it; a missing one ``FileNotFoundError``."""
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"detections file not found: {path}")
        try:
            return cls._load(path, label_names)
        except InputError:
            raise
        except (ValueError, OSError, EOFError, zipfile.BadZipFile) as e:
            text = str(e) if str(path) in str(e) else f"unreadable detections file ({e})"
            raise InputError(text, path) from e

    @classmethod
    def _load(cls, path: Path, label_names: Sequence[str] | None) -> TubeDetections:
        if path.suffix == ".json":
            import json

            try:
                with open(path) as fh:
                    data = json.load(fh)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}: not valid JSON ({e})") from e
            if not isinstance(data, dict) or "detections" not in data:
                raise ValueError(f'{path}: expected an object with a "detections" list')
            name_to_idx = {n: i for i, n in enumerate(label_names or [])}
            items = []
            for i, d in enumerate(data["detections"]):
                try:
                    lab = d["label"]
                    if isinstance(lab, str):
                        if lab not in name_to_idx:
                            raise ValueError(f"label {lab!r} is not in the dataset's label list")
                        lab = name_to_idx[lab]
                    rows = np.asarray(d["tube"], dtype=np.float64)
                    if rows.ndim != 2 or rows.shape[1] != 5:
                        raise ValueError(
                            f"tube must be [[frame,x1,y1,x2,y2],...], got {rows.shape}"
                        )
                    items.append((str(d["video"]), int(lab), float(d["score"]), rows))
                except (KeyError, TypeError, ValueError) as e:
                    raise ValueError(
                        f"{path}: detection {i} (video {d.get('video') if isinstance(d, dict) else '?'!r}): {e}"
                    ) from e
            return cls.from_list(items)
        try:
            with np.load(path, allow_pickle=False) as z:
                missing = {"video", "label", "score", "offsets", "rows"} - set(z.files)
                if missing:
                    raise ValueError(f"{path}: missing arrays {sorted(missing)}")
                return cls(z["video"], z["label"], z["score"], z["offsets"], z["rows"])
        except ValueError as e:
            if str(path) in str(e):
                raise
            raise ValueError(f"{path}: {e}") from e
