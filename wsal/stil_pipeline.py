"""The STIL pipeline (DESIGN §2, lower branch): detections -> box features -> priors (+ supervision,
Eq. 5-7) -> Temporal Prim training tubes -> EM training (Lightning) -> box scores -> test tubes ->
reranking -> evaluation.

Plain functions over already-built stage objects (``train.py`` builds them from the config), so a
notebook can run STIL and its baselines without Hydra. Every expensive stage is cached on disk:
the prior tubes (``pipeline.link_cached``), the box features and the video descriptors
(``wsal.features``), so a sweep over methods, reranking or supervision levels extracts once.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from wsal.data.annotations import DatasetIndex
from wsal.data.datasets import PreparedDataset
from wsal.linking.base import Linker, link
from wsal.linking.cache import link_cached
from wsal.pipeline import EvaluationSpec, report
from wsal.structures import Detections, Tubes

log = logging.getLogger(__name__)

__all__ = ["context_video_scores", "training_tubes", "run_stil"]


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
    (``prior_tubes``, from ``pipeline.link_cached``) serve; supervision scores (Eq. 5) change the priors, and those tubes are linked afresh
    on ``detector score + supervision score`` (Temporal Prim takes about a second per thousand
    videos).
    """
    if not supervised:
        return {v: prior_tubes[v] for v in dets}
    shifted = {v: d.with_scores(np.asarray(priors[v], np.float32)) for v, d in dets.items()}
    return link(linker, shifted, index)


def context_video_scores(
    extractor: Any,
    prepared: PreparedDataset,
    train: Sequence[str],
    test: Sequence[str],
    cache_dir: str | os.PathLike,
    C: float = 10.0,
) -> dict[str, np.ndarray]:
    """Global video classifier scores ``{test video: float[L]}`` for contextual reranking (§3.4).

    Whole-frame descriptors at 2 fps from the run's feature extractor (cached), one linear
    classifier per class trained on the training videos' labels, applied to the test videos.
    """
    from wsal.features import extract_video_descriptors
    from wsal.reranking import fit_video_classifier, labels_matrix, video_scores

    index = prepared.index
    desc = extract_video_descriptors(
        extractor, index, cache_dir, prepared.cache_key, videos=list(train) + list(test)
    )
    W, b = fit_video_classifier(
        np.stack([desc[v] for v in train]), labels_matrix(index, list(train)), C=C
    )
    return video_scores(W, b, {v: desc[v] for v in test})


def _labels(index: DatasetIndex, videos: Sequence[str]) -> dict[str, list[int]]:
    return {v: list(index.videos[v].labels) for v in videos}


def selection_quality(
    videos: Sequence[str],
    box_video: np.ndarray,
    frame: np.ndarray,
    boxes: np.ndarray,
    selected: np.ndarray,
    index: DatasetIndex,
    iou: float = 0.5,
) -> dict[str, float]:
    """How well a latent selection found the actors, measured against the training videos' GT
    (reporting only: training never sees it).

    Args:
        videos: V video ids; ``box_video int[N]``, ``frame int[N]``, ``boxes float[N, 4]`` the
            training boxes; ``selected bool[N, L]`` the positives of each class (the last E-step).
    Returns ``precision``: the fraction of selected (box, class) pairs on a GT box of that class
    (IoU >= ``iou``, same frame); ``videos_hit``: the fraction of (video, class) selections with at
    least one such box; ``boxes``: selected pairs.
    """
    n_idx, c_idx = np.nonzero(selected)  # [P] box rows and classes of the selected pairs
    hit = np.zeros(n_idx.size, bool)  # [P]
    for v in np.unique(box_video[n_idx]):
        info = index.videos[videos[int(v)]]
        in_v = np.nonzero(box_video[n_idx] == v)[0]
        for tube in info.tubes:
            gt = np.full((info.nframes, 4), np.nan, np.float32)  # [F, 4] GT box per frame
            gt[tube.frames] = tube.boxes
            rows = in_v[c_idx[in_v] == tube.label]
            g = gt[frame[n_idx[rows]]]  # [R, 4]
            ok = ~np.isnan(g[:, 0])
            ious = np.zeros(rows.size)
            if ok.any():
                from wsal.tube_ops import box_iou_paired

                ious[ok] = box_iou_paired(boxes[n_idx[rows[ok]]], g[ok])
            hit[rows] |= ious >= iou
    pairs = {(int(box_video[n]), int(c)) for n, c in zip(n_idx, c_idx)}
    pairs_hit = {(int(box_video[n]), int(c)) for n, c in zip(n_idx[hit], c_idx[hit])}
    return {
        "precision": float(hit.mean()) if hit.size else float("nan"),
        "videos_hit": len(pairs_hit) / max(len(pairs), 1),
        "boxes": float(hit.size),
    }


def run_stil(
    prepared: PreparedDataset,
    detector: Any,
    linker: Linker,
    method_factory: Callable[..., Any],
    reranker: Any,
    supervision: Any,
    extractor: Any,
    make_trainer: Callable[..., Any],
    spec: EvaluationSpec,
    out_dir: str | os.PathLike,
    cache_dir: str | os.PathLike,
    run_info: dict[str, Any] | None = None,
    train_split: str = "train",
    ckpt_path: str | os.PathLike | None = None,
    fit: bool = True,
) -> dict[str, Any]:
    """Train STIL (or a Table 1 baseline) on ``train_split``, localize ``spec.split``, evaluate.

    Args:
        method_factory: ``num_classes -> STIL`` (the ``_partial_`` method config).
        reranker: :class:`wsal.reranking.Reranking`; when it uses context, the global video
            classifier is trained here on the same training videos and labels.
        supervision: :class:`wsal.supervision.SupervisionSpec` of the training videos.
        extractor: box feature extractor (``wsal.features``: hoghof | cnn).
        make_trainer: ``max_epochs -> pytorch_lightning.Trainer`` (one EM round per epoch).
        ckpt_path: a STIL checkpoint: with ``fit`` it resumes the EM where it stopped (models and
            EM state); without, the trained models are loaded from it and only test tubes are made.
    Writes ``detections.npz``, ``results.json`` and pictures into ``out_dir``.
    """
    from wsal.features import extract_box_features
    from wsal.models.stil import STILDataModule, build_stil_data
    from wsal.supervision import annotation_cost, supervision_scores

    index = prepared.index
    train, test = index.split(train_split), index.split(spec.split)
    timings: dict[str, float] = {}
    t = time.perf_counter()
    all_dets = detector.load(index, prepared.detections)
    det_key = f"{detector.name}-{detector.cache_key(prepared.detections)}"
    videos = list(dict.fromkeys([*train, *test]))
    feats = extract_box_features(
        extractor, index, all_dets, cache_dir, prepared.cache_key, det_key, videos=videos
    )
    timings["detections+features_s"] = time.perf_counter() - t

    t = time.perf_counter()
    train_dets = {v: all_dets[v] for v in train if len(all_dets[v])}
    if len(train_dets) < len(train):
        log.warning("%d training videos have no detections", len(train) - len(train_dets))
    # the prior tubes: training tubes without supervision, and the proposals for recall
    prior_tubes = link_cached(prepared, detector, linker, cache_dir)
    if fit:
        sup = supervision_scores(supervision, index, train_dets, list(train_dets))
        priors = {v: d.scores.astype(np.float32) + sup[v] for v, d in train_dets.items()}
        supervised = supervision.level != "labels"
        tubes = training_tubes(prior_tubes, linker, index, train_dets, priors, supervised)
        model = method_factory(num_classes=len(index.labels))
        data = build_stil_data(
            {v: np.asarray(feats[v]) for v in train_dets},
            priors,
            tubes,
            _labels(index, list(train_dets)),
            len(index.labels),
            folds=max(1, int(model.hparams["folds"])),
            seed=int(model.hparams["seed"]),
            dets=train_dets,
            normalize=bool(model.hparams["normalize"]),
        )
        timings["training_tubes_s"] = time.perf_counter() - t
        t = time.perf_counter()
        trainer = make_trainer(int(model.hparams["em_epochs"]))
        trainer.fit(
            model,
            datamodule=STILDataModule(data),
            ckpt_path=str(ckpt_path) if ckpt_path is not None else None,
        )
        timings["train_s"] = time.perf_counter() - t
        num_train_boxes = int(data.num_boxes)
        selection = None
        if getattr(model, "_prev_mask", None) is not None and data.boxes is not None:
            selection = selection_quality(
                data.videos,
                data.box_video.cpu().numpy(),
                data.frame.cpu().numpy(),
                data.boxes.cpu().numpy(),
                model._prev_mask.cpu().numpy(),
                index,
            )
    else:
        if ckpt_path is None:
            raise ValueError("run_stil(fit=False) needs ckpt_path (a trained STIL checkpoint)")
        cls = getattr(method_factory, "func", method_factory)
        model = cls.load_from_checkpoint(str(ckpt_path), map_location="cpu")
        num_train_boxes = None
        selection = None

    t = time.perf_counter()
    test_dets = {v: all_dets[v] for v in test}
    results = model.predict_tubes({v: np.asarray(feats[v]) for v in test}, test_dets)
    timings["predict_s"] = time.perf_counter() - t
    t = time.perf_counter()
    if getattr(reranker, "context", False):
        vs = context_video_scores(extractor, prepared, train, test, cache_dir)
        results = reranker(results, video_scores=vs)
    else:
        results = reranker(results)
    timings["rerank_s"] = time.perf_counter() - t
    info = {
        **(run_info or {}),
        "method": model.name,
        "supervision": getattr(supervision, "name", supervision.level),
        "num_train_videos": len(train_dets),
        # STIL Table 3's cost model on this dataset's own training-video lengths (seconds/video)
        "annotation_cost_s": annotation_cost(supervision, [index.videos[v].nframes for v in train]),
        "num_train_boxes": num_train_boxes,
        # the last E-step's positives against the training GT (reporting only)
        "selection_quality": selection,
        "checkpoint": str(ckpt_path) if ckpt_path is not None else None,
        "em_history": list(getattr(model, "history", [])),
    }
    return report(prepared.name, index, test, prior_tubes, results, spec, out_dir, info, timings)
