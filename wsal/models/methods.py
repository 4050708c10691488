"""The methods as the one route uses them: ``fit`` on the train split, ``load`` a trained run,
``predict`` the evaluation split as :class:`TubeDetections` (DESIGN §2, the ``method`` box).

Every method implements :class:`Method`; the route (``wsal.app.route``) hands each one the same
:class:`RunInputs` — everything computed upstream (the prepared dataset, detections, cached
tubes, supervision, the feature extractor, how to build Lightning Trainers) — and never looks at
what kind of method it runs. A method takes its settings through its constructor (the
``method`` config group) and builds its LightningModule once the number of classes is known.

- :class:`OracleLabel` (``method=oracle_label``): no training; every tube gets its video's true
  class, scored by its linking score (the localization-only reference, the prior bound).
- :class:`ActorAttentionMethod` (``method=actor_attention``): clips + tubes DataModule, Lightning
  ``fit``, per-tube class scores from ``predict``.
- :class:`STILMethod` (``method=stil|stil_noprim|mil|gmil``): cached box features, priors plus
  supervision scores (Eq. 5-7), Temporal Prim training tubes, EM with Lightning, test tubes.
"""

from __future__ import annotations

import functools
import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pytorch_lightning as pl
import torch
from pytorch_lightning.plugins import TorchCheckpointIO

from wsal.data.annotations import DatasetIndex
from wsal.data.datasets import PreparedDataset
from wsal.evaluation.bounds import true_class_detections
from wsal.features import BoxFeatures, extract_box_features
from wsal.linking.base import Linker, link
from wsal.models.actor_attention import ActorAttention
from wsal.models.stil import STIL
from wsal.models.stil_data import STILDataModule, build_stil_data, selection_quality
from wsal.models.tube_features import TubeFeatureDataModule, cached_tube_features
from wsal.runs import take_checkpoint
from wsal.structures import Detections, TubeDetections, Tubes
from wsal.supervision import SupervisionSpec, annotation_cost, supervision_scores

log = logging.getLogger(__name__)

__all__ = [
    "ActorAttentionMethod",
    "Method",
    "OracleLabel",
    "RunInputs",
    "STILMethod",
    "load_weights",
    "training_tubes",
    "tube_scores_to_detections",
]


@dataclass
class RunInputs:
    """What the route hands every method: the stages' outputs upstream of the method.

    Attributes:
        dataset: the dataset source (``prepare() -> PreparedDataset``), for DataModules that
            prepare it themselves (DDP ranks).
        prepared: the prepared dataset (index, its own detections file, cache key).
        detector: the detection backend (``load(index, path) -> {video: Detections}``).
        linker: the linker that made ``tubes``.
        tubes: the cached tubes of every video (the proposals).
        link_tubes: ``prepared -> tubes`` through the tube cache; picklable (``ddp_spawn``).
        supervision: what annotation the training videos carry.
        make_features: builds the box/video feature extractor (``wsal.features``); built on
            first use of :attr:`features` (a CNN extractor loads its encoder), so methods that
            need none do not pay for it.
        clip_data: builds the clips + tubes DataModule (the ``data`` config group) from
            ``dataset=``, ``tubes=`` and ``test_split=``.
        fit_trainer: ``(**overrides) -> Trainer`` with the run's loggers and callbacks;
            ``monitored_checkpoints=False`` leaves out checkpoints that need a validation loop.
        predict_trainer: ``() -> Trainer`` on one device (every test video in one process).
        cache_dir: where features and tubes are cached.
        train_split / test_split: split names of the index.
        resume_from: a checkpoint to resume training from (``resume=auto`` found it), or None.
    """

    dataset: Any
    prepared: PreparedDataset
    detector: Any
    linker: Linker
    tubes: Mapping[str, Tubes]
    link_tubes: Callable[[PreparedDataset], Mapping[str, Tubes]]
    supervision: SupervisionSpec
    make_features: Callable[[], Any]
    clip_data: Callable[..., Any]
    fit_trainer: Callable[..., pl.Trainer]
    predict_trainer: Callable[[], pl.Trainer]
    cache_dir: Path
    train_split: str = "train"
    test_split: str = "test"
    resume_from: str | None = None

    @functools.cached_property
    def features(self) -> Any:
        """The feature extractor (built once)."""
        return self.make_features()

    @property
    def index(self) -> DatasetIndex:
        return self.prepared.index

    @property
    def num_classes(self) -> int:
        return len(self.prepared.index.labels)

    def videos(self, split: str) -> list[str]:
        return list(self.prepared.index.split(split))

    def detections(self) -> dict[str, Detections]:
        """The detector's boxes of every video (read once per call: cache the result)."""
        return self.detector.load(self.prepared.index, self.prepared.detections)

    @property
    def detector_key(self) -> str:
        return f"{self.detector.name}-{self.detector.cache_key(self.prepared.detections)}"


class Method(Protocol):
    """A method in the route. ``fit`` returns what ``results.json`` records about training
    (``timings`` under its own key), or None on a DDP rank that does not report; ``load``
    restores a trained method from a checkpoint (``weights_only``); ``predict`` scores the
    ``test_split`` tubes."""

    name: str

    def fit(self, run: RunInputs) -> dict[str, Any] | None: ...
    def load(self, run: RunInputs, checkpoint: str | os.PathLike) -> dict[str, Any]: ...
    def predict(self, run: RunInputs) -> TubeDetections: ...


def load_weights(model: torch.nn.Module, checkpoint: str | os.PathLike) -> dict[str, Any]:
    """Load a Lightning checkpoint's ``state_dict`` into ``model`` (``torch.load(weights_only=
    True)``: a checkpoint cannot run code; read once: :func:`wsal.runs.take_checkpoint`) and
    call the module's ``on_load_checkpoint`` with the checkpoint (extra state, e.g. STIL's EM
    state); returns the checkpoint dict."""
    ckpt = take_checkpoint(Path(checkpoint))
    model.load_state_dict(ckpt["state_dict"])
    hook = getattr(model, "on_load_checkpoint", None)
    if hook is not None:
        hook(ckpt)
    return ckpt


class _HandedCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint I/O, except that the checkpoint being resumed is the state wsal has
    already read with ``weights_only=True`` (handed over once), and any other read is
    ``weights_only=True`` too: Lightning would read the file again with ``weights_only=False``."""

    def __init__(self, path: str | os.PathLike, state: dict[str, Any]) -> None:
        super().__init__()
        self.path = str(path)
        self.state: dict[str, Any] | None = state

    def load_checkpoint(self, path: Any, map_location: Any = None, weights_only: Any = None) -> Any:
        if str(path) == self.path and self.state is not None:
            state, self.state = self.state, None
            return state
        return super().load_checkpoint(path, weights_only=True)


def fit_resuming(
    trainer: pl.Trainer, model: pl.LightningModule, datamodule: Any, resume: str | None
) -> None:
    """``trainer.fit``, resuming from the checkpoint ``resume`` when given: read once with
    ``weights_only=True`` (:func:`wsal.runs.take_checkpoint`) and handed to Lightning."""
    if resume is None:
        trainer.fit(model, datamodule=datamodule)
        return
    trainer.strategy.checkpoint_io = _HandedCheckpointIO(resume, take_checkpoint(resume))
    trainer.fit(model, datamodule=datamodule, ckpt_path=resume, weights_only=True)


# ------------------------------------------------------------------------------------- oracle
class OracleLabel:
    """Localization only: every tube of a test video is labelled with the video's true class(es)
    and scored by its linking score — the *prior* bound (:func:`wsal.evaluation.bounds.
    true_class_detections`); it reads test labels: a reference, not a weakly-supervised result."""

    name = "oracle_label"

    def fit(self, run: RunInputs) -> dict[str, Any]:
        return {}

    def load(self, run: RunInputs, checkpoint: str | os.PathLike) -> dict[str, Any]:
        return {}

    def predict(self, run: RunInputs) -> TubeDetections:
        return true_class_detections(run.index, run.videos(run.test_split), run.tubes)


# ---------------------------------------------------------------------------- actor attention
def tube_scores_to_detections(
    videos: Sequence[str], tubes: Mapping[str, Tubes], predictions: Sequence[Mapping[str, Any]]
) -> TubeDetections:
    """TubeDetections from per-tube class scores (e.g. ``trainer.predict`` batches).

    Each batch holds ``video_index int[B]`` (position in ``videos``), ``tube_scores float[B, K, L]``
    and ``tube_mask bool[B, K]``. Every scored tube gives one detection per class, with the tube's
    full extent (all its frames, not only the sampled ones). Tubes that had no box at any sampled
    frame (mask False) cannot be scored and are left out.
    """
    parts = []
    for batch in predictions:
        vidx = np.asarray(batch["video_index"])
        scores = np.asarray(batch["tube_scores"], dtype=np.float64)  # [B, K, L]
        mask = np.asarray(batch["tube_mask"], dtype=bool)  # [B, K]
        for b, vi in enumerate(vidx):
            v = videos[int(vi)]
            t = tubes[v]
            ks = np.nonzero(mask[b, : t.num_tubes])[0]
            if ks.size == 0:
                continue
            L = scores.shape[2]
            sub = t.select(ks)
            for c in range(L):
                parts.append(
                    TubeDetections.from_tubes(
                        v, sub, labels=np.full(ks.size, c), scores=scores[b, ks, c]
                    )
                )
    return TubeDetections.concat(parts)


class ActorAttentionMethod:
    """Actor attention ("Guess Where?" §3.2) in the route: the clips + tubes DataModule (the
    ``data`` config group), Lightning ``fit`` on the train split, per-tube class scores of the
    test split from ``predict``.

    Args:
        cache_features: with a frozen encoder (``trainable_encoder: false``), compute each
            video's tube features once (centre frames, no flip), cache them beside the tubes and
            train only the classifier on them (:mod:`wsal.models.tube_features`): the same
            objective as the frozen network end to end, one encoder pass per video instead of
            one per video and epoch. The CPU default; end-to-end fine-tuning is the paper's (GPU).
        feature_batch_size: videos per batch when training on cached features.
        settings: the :class:`wsal.models.actor_attention.ActorAttention` arguments except
            ``num_classes`` (known once the dataset is read).
    """

    name = "actor_attention"

    def __init__(
        self, cache_features: bool = False, feature_batch_size: int = 16, **settings: Any
    ) -> None:
        if cache_features and settings.get("trainable_encoder", True):
            raise ValueError(
                "method.cache_features=true needs a frozen encoder: set "
                "method.trainable_encoder=false (or cache_features=false to fine-tune end to end)"
            )
        self.cache_features = bool(cache_features)
        self.feature_batch_size = int(feature_batch_size)
        self.settings = settings
        self.model: ActorAttention | None = None
        self._dm: Any = None
        self._features: dict[str, dict[str, np.ndarray]] = {}

    def _datamodule(self, run: RunInputs) -> Any:
        if self._dm is None:
            self._dm = run.clip_data(
                dataset=run.dataset, tubes=run.link_tubes, test_split=run.test_split
            )
            self._dm.prepare_data()
        return self._dm

    def _build(self, num_classes: int) -> ActorAttention:
        self.model = ActorAttention(num_classes=num_classes, **self.settings)
        return self.model

    def _cached(self, run: RunInputs, name: str) -> dict[str, np.ndarray]:
        """Stored tube features of the ``train`` / ``val`` / ``test`` videos (computed once)."""
        if name not in self._features:
            assert self.model is not None
            dm = self._datamodule(run)
            dm.setup("fit" if name != "test" else "predict")
            videos = dm.split_videos(name)
            key = {
                "dataset": run.prepared.cache_key,
                "detector": run.detector_key,
                "linker": f"{run.linker.name}-{run.linker.cache_key()}",
                "encoder": self.settings.get("encoder"),
                "output_size": list(self.model.net.output_size),
                "num_frames": dm.num_frames,
                "num_tubes": dm.num_tubes,
                "frame_size": dm.frame_size,
            }
            device = "cuda" if torch.cuda.is_available() else "cpu"
            self._features[name] = cached_tube_features(
                self.model.net, dm.fixed_dataloader(name), videos, run.cache_dir, key, device
            )
        return self._features[name]

    def _feature_data(self, run: RunInputs, test: bool) -> TubeFeatureDataModule:
        val = self._cached(run, "val") if self._datamodule(run).split_videos("val") else None
        return TubeFeatureDataModule(
            self._cached(run, "train") if not test else {},
            None if test else val,
            self._cached(run, "test") if test else None,
            self.feature_batch_size,
        )

    def fit(self, run: RunInputs) -> dict[str, Any] | None:
        dm = self._datamodule(run)
        dm.setup("fit")
        model = self._build(len(dm.label_names))
        t = time.perf_counter()
        data = self._feature_data(run, test=False) if self.cache_features else dm
        timings = {"tube_features_s": time.perf_counter() - t} if self.cache_features else {}
        trainer = run.fit_trainer()
        t = time.perf_counter()
        fit_resuming(trainer, model, data, run.resume_from)
        if trainer.global_rank != 0:  # rank 0 predicts and reports
            return None
        return {
            "epochs": trainer.current_epoch,
            "num_train_videos": len(dm.split_videos("fit")),
            "timings": {**timings, "train_s": time.perf_counter() - t},
        }

    def load(self, run: RunInputs, checkpoint: str | os.PathLike) -> dict[str, Any]:
        load_weights(self._build(run.num_classes), checkpoint)
        dm = self._datamodule(run)
        dm.setup("fit")
        return {"epochs": None, "num_train_videos": len(dm.split_videos("fit"))}

    def predict(self, run: RunInputs) -> TubeDetections:
        if self.model is None:
            raise RuntimeError("actor attention: fit or load before predict")
        dm = self._datamodule(run)
        dm.setup("predict")
        if self.cache_features:
            loader = self._feature_data(run, test=True).predict_dataloader()
        else:
            loader = dm.predict_dataloader()
        preds = run.predict_trainer().predict(self.model, dataloaders=loader)
        batches: list[Mapping[str, Any]] = list(preds or [])  # type: ignore[arg-type]
        return tube_scores_to_detections(dm.split_videos("predict"), dm.tubes, batches)


# ---------------------------------------------------------------------------------------- STIL
def training_tubes(
    prior_tubes: Mapping[str, Tubes],
    linker: Linker,
    index: DatasetIndex,
    dets: Mapping[str, Detections],
    priors: Mapping[str, np.ndarray],
    supervised: bool,
) -> dict[str, Tubes]:
    """Tubes of the training videos linked on their priors (STIL §3.2).

    With video labels only the priors are the detector's scores, so the cached prior tubes
    (``prior_tubes``) serve; supervision scores (Eq. 5) change the priors, and those tubes are
    linked afresh on ``detector score + supervision score`` (Temporal Prim takes about a second
    per thousand videos).
    """
    if not supervised:
        return {v: prior_tubes[v] for v in dets}
    shifted = {v: d.with_scores(np.asarray(priors[v], np.float32)) for v, d in dets.items()}
    return link(linker, shifted, index)


class STILMethod:
    """STIL and its Table 1 baselines (Mettes & Snoek §3) in the route: cached box features of
    the train and test videos, priors = detector score + supervision score (Eq. 5-7), Temporal
    Prim training tubes, EM training with Lightning (one E/M round per epoch, one device), test
    tubes from the box scores.

    Args:
        folds / em_epochs / normalize / seed: see :class:`wsal.models.stil.STIL`; the training
            data is built with the same folds, seed and normalisation.
        model: every other :class:`~wsal.models.stil.STIL` argument (C, loss, selection, mu,
            penalty, ...), checked here by building the module once.
    """

    def __init__(
        self,
        folds: int = 3,
        em_epochs: int = 5,
        normalize: bool = True,
        seed: int = 0,
        **model: Any,
    ) -> None:
        self.folds = int(folds)
        self.em_epochs = int(em_epochs)
        self.normalize = bool(normalize)
        self.seed = int(seed)
        self.model_settings = {
            "folds": self.folds,
            "em_epochs": self.em_epochs,
            "normalize": self.normalize,
            "seed": self.seed,
            **model,
        }
        self.name = STIL(1, **self.model_settings).name  # checks the settings now, not after hours
        self.model: STIL | None = None
        self._dets: dict[str, Detections] | None = None
        self._features: BoxFeatures | None = None

    def _inputs(self, run: RunInputs) -> tuple[dict[str, Detections], BoxFeatures]:
        """Detections of every video and box features of the train + test videos (cached)."""
        if self._dets is None or self._features is None:
            self._dets = run.detections()
            videos = list(
                dict.fromkeys([*run.videos(run.train_split), *run.videos(run.test_split)])
            )
            self._features = extract_box_features(
                run.features,
                run.index,
                self._dets,
                run.cache_dir,
                run.prepared.cache_key,
                run.detector_key,
                videos=videos,
            )
        return self._dets, self._features

    def _info(self, run: RunInputs) -> dict[str, Any]:
        train = run.videos(run.train_split)
        return {
            "supervision": getattr(run.supervision, "name", run.supervision.level),
            # STIL Table 3's cost model on this dataset's own training-video lengths (s/video)
            "annotation_cost_s": annotation_cost(
                run.supervision, [run.index.videos[v].nframes for v in train]
            ),
            "features": type(run.features).__name__,
        }

    def fit(self, run: RunInputs) -> dict[str, Any]:
        index = run.index
        t = time.perf_counter()
        all_dets, feats = self._inputs(run)
        timings = {"detections+features_s": time.perf_counter() - t}
        t = time.perf_counter()
        train = run.videos(run.train_split)
        train_dets = {v: all_dets[v] for v in train if len(all_dets[v])}
        if len(train_dets) < len(train):
            log.warning("%d training videos have no detections", len(train) - len(train_dets))
        sup = supervision_scores(run.supervision, index, train_dets, list(train_dets))
        priors = {v: d.scores.astype(np.float32) + sup[v] for v, d in train_dets.items()}
        supervised = run.supervision.level != "labels"
        tubes = training_tubes(run.tubes, run.linker, index, train_dets, priors, supervised)
        data = build_stil_data(
            {v: np.asarray(feats[v]) for v in train_dets},
            priors,
            tubes,
            {v: list(index.videos[v].labels) for v in train_dets},
            run.num_classes,
            folds=max(1, self.folds),
            seed=self.seed,
            dets=train_dets,
            normalize=self.normalize,
        )
        timings["training_tubes_s"] = time.perf_counter() - t
        t = time.perf_counter()
        self.model = model = STIL(run.num_classes, **self.model_settings)
        # One EM round per epoch, checkpointed every round (resume). Full batch on one device (the
        # solve is one batched tensor op; DDP would repeat it on every rank), no sanity checks.
        trainer = run.fit_trainer(
            max_epochs=self.em_epochs,
            devices=1,
            num_nodes=1,
            strategy="auto",
            sync_batchnorm=False,
            num_sanity_val_steps=0,
            monitored_checkpoints=False,
        )
        fit_resuming(trainer, model, STILDataModule(data), run.resume_from)
        timings["train_s"] = time.perf_counter() - t
        selection = None
        if model.last_selection is not None and data.boxes is not None:
            selection = selection_quality(
                data.videos,
                data.box_video.cpu().numpy(),
                data.frame.cpu().numpy(),
                data.boxes.cpu().numpy(),
                model.last_selection.cpu().numpy(),
                index,
            )
        return {
            **self._info(run),
            "num_train_videos": len(train_dets),
            "num_train_boxes": int(data.num_boxes),
            # the last E-step's positives against the training GT (reporting only)
            "selection_quality": selection,
            "em_history": list(model.history),
            "timings": timings,
        }

    def load(self, run: RunInputs, checkpoint: str | os.PathLike) -> dict[str, Any]:
        self.model = STIL(run.num_classes, **self.model_settings)
        load_weights(self.model, checkpoint)
        all_dets, _ = self._inputs(run)
        return {
            **self._info(run),
            "num_train_videos": sum(1 for v in run.videos(run.train_split) if len(all_dets[v])),
            "num_train_boxes": None,
            "selection_quality": None,
            "em_history": list(self.model.history),
        }

    def predict(self, run: RunInputs) -> TubeDetections:
        if self.model is None:
            raise RuntimeError(f"{self.name}: fit or load before predict")
        all_dets, feats = self._inputs(run)
        test = run.videos(run.test_split)
        return self.model.predict_tubes(
            {v: np.asarray(feats[v]) for v in test},
            {v: all_dets[v] for v in test},
            proposals={v: run.tubes[v] for v in test if v in run.tubes},
        )
