"""Dataset sources: where annotations, videos and a dataset's own detections come from.

Each source has ``prepare() -> PreparedDataset``: the :class:`DatasetIndex` (with ``root`` set so
video paths resolve) and the path of the dataset's own detections file, if it ships one.
Plain constructors (Hydra instantiates them from ``conf/dataset/*.yaml``).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from wsal.data.annotations import DatasetIndex, load_index

__all__ = ["PreparedDataset", "SynthActors", "AnnotatedDataset"]


@dataclass
class PreparedDataset:
    name: str
    index: DatasetIndex
    detections: Path | None  # the dataset's own detections file (e.g. SynthActors' simulated one)
    cache_key: str  # changes whenever anything that shaped the data changes


class SynthActors:
    """The embedded benchmark, generated under ``root`` on first use (DESIGN §5).

    Arguments are :class:`wsal.data.synthetic.SynthConfig` fields; the folder is regenerated when
    they change (its ``meta.json`` holds their hash).
    """

    name = "synthactors"

    def __init__(
        self,
        root: str = "data/synthactors",
        workers: int = 2,
        progress: bool = True,
        **config: object,
    ) -> None:
        self.root = Path(root)
        self.workers = workers
        self.progress = progress
        self.config = config

    def prepare(self) -> PreparedDataset:
        from wsal.data.annotations import read_wsal_json
        from wsal.data.synthetic import SynthConfig, ensure_synthactors

        cfg = SynthConfig(**self.config)  # type: ignore[arg-type]
        root = ensure_synthactors(self.root, cfg, workers=self.workers, progress=self.progress)
        meta = json.loads((root / "meta.json").read_text())
        key = hashlib.sha1(
            json.dumps(meta.get("config_hash", meta), sort_keys=True, default=str).encode()
        ).hexdigest()[:12]
        return PreparedDataset(
            self.name,
            read_wsal_json(root / "annotations.json"),
            root / "detections.npz",
            f"{self.name}-{key}",
        )


class AnnotatedDataset:
    """A dataset on disk: an annotation file (wsal JSON, ACT ``*-GT.pkl`` or UCF101-24 pyannot)
    whose video paths are relative to ``root``, and optionally a detections file of its own."""

    def __init__(
        self,
        annotations: str,
        root: str | None = None,
        name: str = "custom",
        detections: str | None = None,
    ) -> None:
        self.annotations = Path(annotations)
        self.root = root
        self.name = name
        self.detections = Path(detections) if detections else None

    def prepare(self) -> PreparedDataset:
        index = load_index(self.annotations, root=self.root)
        st = self.annotations.stat()
        key = hashlib.sha1(f"{self.annotations.resolve()}:{st.st_size}:{st.st_mtime_ns}".encode())
        return PreparedDataset(
            self.name, index, self.detections, f"{self.name}-{key.hexdigest()[:12]}"
        )
