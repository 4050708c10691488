"""The one route (DESIGN §2), written once: dataset -> detections -> linking -> tubes ->
``method.fit`` (or ``load``) -> ``method.predict`` -> reranking -> detections file -> evaluation ->
``results.json``, pictures and loggers.

:func:`run` reads top to bottom as the pipeline; ``train.py`` (fit) and ``eval.py`` (rebuild a
finished run from its saved config and checkpoint) both call it. Every stage is built here from
the composed config and nowhere else; the method is whatever ``method._target_`` names, run
through the :class:`wsal.models.methods.Method` protocol without asking what kind it is.
"""

from __future__ import annotations

import functools
import logging
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.utilities import rank_zero_only

from wsal import runs, viz
from wsal.app.stages import build_linker
from wsal.atomic import atomic_write_json
from wsal.data.annotations import DatasetIndex
from wsal.data.datasets import PreparedDataset
from wsal.data.validate import check_dataset
from wsal.evaluation import GroundTruth, pr_curves
from wsal.evaluation.bounds import true_class_detections
from wsal.evaluation.results import EvaluationSpec, evaluate, print_summary
from wsal.linking.cache import link_cached, tubes_to_detections
from wsal.loggers import log_test_media
from wsal.models.methods import RunInputs
from wsal.reranking import context_video_scores
from wsal.structures import TubeDetections, Tubes

log = logging.getLogger(__name__)

__all__ = ["Trainers", "build_loggers", "evaluate_saved", "prepare_checked", "run", "write_results"]


def build_loggers(cfg: DictConfig, wandb_id: str | None = None) -> list:
    """The configured loggers; W&B gets the run folder as its name and, when resuming, the
    killed run's id (so its curves continue)."""
    loggers = []
    for c in (cfg.get("logger") or {}).values():
        if "_target_" not in c:
            continue
        extra = {}
        if c["_target_"].endswith("wandb_logger"):
            extra = {"name": c.get("name") or Path(cfg.paths.output_dir).name, "id": wandb_id}
        loggers.append(instantiate(c, **extra))
        # remember the W&B run so that a resume continues it
        if extra and rank_zero_only.rank == 0:  # type: ignore[attr-defined]
            runs.write_run(cfg.paths.output_dir, wandb_id=loggers[-1].experiment.id)
    return loggers


class Trainers:
    """Lightning Trainers from the ``trainer`` and ``callbacks`` configs, for the methods."""

    def __init__(self, trainer: DictConfig, callbacks: DictConfig | None, loggers: list) -> None:
        self.trainer = trainer
        self.callbacks: Mapping[str, Any] = callbacks or {}
        self.loggers = loggers

    def fit(self, monitored_checkpoints: bool = True, **overrides: Any) -> pl.Trainer:
        """The configured Trainer with the run's loggers and callbacks (``overrides`` win);
        without ``monitored_checkpoints`` the checkpoints that watch a validation metric are left
        out (methods without a validation loop: STIL's EM)."""
        cbs = [instantiate(c) for c in self.callbacks.values() if "_target_" in c]
        if not monitored_checkpoints:
            cbs = [c for c in cbs if getattr(c, "monitor", None) is None]
        return instantiate(self.trainer, logger=self.loggers or False, callbacks=cbs, **overrides)

    def predict(self) -> pl.Trainer:
        """A one-device Trainer like the configured one: predicting under DDP would return only
        rank 0's share, and ``fast_dev_run`` would predict one batch."""
        return instantiate(
            self.trainer,
            devices=1,
            num_nodes=1,
            strategy="auto",
            sync_batchnorm=False,
            fast_dev_run=False,
            logger=False,
            callbacks=[],
            enable_checkpointing=False,
        )


def run(
    cfg: DictConfig,
    *,
    fit: bool = True,
    checkpoint: str | os.PathLike | None = None,
    choices: Mapping[str, str] | None = None,
    wandb_id: str | None = None,
) -> dict[str, Any] | None:
    """Run the route on ``cfg``; returns the results dict (None on a DDP rank that does not
    report). ``fit``: train the method (resuming from ``checkpoint`` when given); else load the
    trained method from ``checkpoint`` and only predict and evaluate (eval.py)."""
    pl.seed_everything(cfg.seed, workers=True)
    out_dir, cache_dir = Path(cfg.paths.output_dir), Path(cfg.paths.cache_dir)
    timings: dict[str, float] = {}

    # the stages, from the config
    dataset = instantiate(cfg.dataset)
    detector = instantiate(cfg.detector)
    linker = build_linker(cfg.linker)  # the actor linker's tracker is made first, if missing
    method = instantiate(cfg.method, _convert_="all")  # plain lists: weights_only checkpoints
    reranker = instantiate(cfg.reranking)
    supervision = instantiate(cfg.supervision)
    spec = EvaluationSpec(**cfg.evaluation)
    loggers = build_loggers(cfg, wandb_id) if fit else []

    # video -> detections -> linking -> tubes (cached per dataset, detector and linker)
    t = time.perf_counter()
    prepared = prepare_checked(dataset)
    link_tubes = functools.partial(
        link_cached, detector=detector, linker=linker, cache_dir=cache_dir
    )
    tubes = link_tubes(prepared)
    timings["detections+linking_s"] = time.perf_counter() - t
    inputs = RunInputs(
        dataset=dataset,
        prepared=prepared,
        detector=detector,
        linker=linker,
        tubes=tubes,
        link_tubes=link_tubes,
        supervision=supervision,
        make_features=functools.partial(instantiate, cfg.features),
        clip_data=instantiate(cfg.data),
        fit_trainer=Trainers(cfg.trainer, cfg.get("callbacks"), loggers).fit,
        predict_trainer=Trainers(cfg.trainer, None, []).predict,
        cache_dir=cache_dir,
        test_split=spec.split,
        resume_from=str(checkpoint) if fit and checkpoint is not None else None,
    )

    # the method: fit on the train split (or load the trained one), predict the evaluation split
    if fit:
        trained = method.fit(inputs)
        if trained is None:  # a DDP rank other than 0: rank 0 predicts and reports
            return None
    else:
        if checkpoint is None:
            raise ValueError("run(fit=False) needs the checkpoint to load the method from")
        trained = method.load(inputs, checkpoint)
    timings.update(trained.pop("timings", {}))
    t = time.perf_counter()
    results = method.predict(inputs)
    timings["predict_s"] = time.perf_counter() - t

    # reranking (contextual: a global video classifier on the run's features, §3.4)
    t = time.perf_counter()
    index = prepared.index
    test = index.split(spec.split)
    video_scores = None
    if reranker.context:
        video_scores = context_video_scores(
            inputs.features, index, prepared.cache_key, index.split("train"), test, cache_dir
        )
    results = reranker(results, video_scores=video_scores)
    timings["rerank_s"] = time.perf_counter() - t

    # detections file, evaluation, results.json and pictures; loggers; the printed table
    if choices is None:
        choices = {}
    info = {
        "dataset": prepared.name,
        "method": method.name,
        "linker": linker.name,
        "detector": detector.name,
        "supervision": getattr(supervision, "name", supervision.level),
        "reranking": reranker.name,
        "num_tubes": int(sum(tb.num_tubes for tb in tubes.values())),
        "choices": {k: v for k, v in choices.items() if not k.startswith("hydra")},
        "study": OmegaConf.to_container(cfg.study) if cfg.get("study") else None,
        "checkpoint": str(checkpoint) if checkpoint is not None else None,
        **trained,
    }
    res = write_results(out_dir, index, test, tubes, results, spec, info, timings)
    log_results(loggers, cfg, res, out_dir)
    print_summary(res, f"{res['dataset']}: {res['linker']} tubes, method={res['method']}")
    log.info("results: %s/results.json  pictures: tubes.png, recall.png, pr.png", out_dir)
    return res


def prepare_checked(dataset: Any) -> PreparedDataset:
    """``dataset.prepare()``, then every video checked before any work on it
    (:func:`wsal.data.validate.check_dataset`) unless the source says ``validate=False``; with
    ``skip_invalid`` the invalid videos are dropped (and listed) instead of stopping the run."""
    prepared = dataset.prepare()
    if not getattr(dataset, "validate", False):
        return prepared
    return check_dataset(
        prepared,
        frame_pattern=getattr(dataset, "frame_pattern", None),
        skip_invalid=bool(getattr(dataset, "skip_invalid", False)),
    )


def evaluate_saved(
    cfg: DictConfig, detections: str | os.PathLike, spec: EvaluationSpec
) -> dict[str, Any]:
    """Evaluate a saved detections file against the run's dataset (``cfg``: the run's config),
    proposal recall from the run's cached tubes; nothing is trained or predicted."""
    prepared = prepare_checked(instantiate(cfg.dataset))
    tubes = link_cached(
        prepared,
        detector=instantiate(cfg.detector),
        linker=build_linker(cfg.linker),
        cache_dir=cfg.paths.cache_dir,
    )
    videos = prepared.index.split(spec.split)
    results = TubeDetections.load(detections, label_names=prepared.index.labels)
    prior = true_class_detections(prepared.index, videos, tubes)
    res = evaluate(prepared.index, results, tubes_to_detections(videos, tubes), spec, prior)
    res["detections_file"] = str(detections)
    return res


def write_results(
    out_dir: str | os.PathLike,
    index: DatasetIndex,
    videos: Sequence[str],
    tubes: Mapping[str, Tubes],
    results: TubeDetections,
    spec: EvaluationSpec,
    info: Mapping[str, Any] | None = None,
    timings: Mapping[str, float] | None = None,
) -> dict[str, Any]:
    """Save ``detections.npz``, evaluate against the split's GT (proposal recall and the chance /
    prior / ceiling bounds from ``tubes``), write ``results.json`` and the pictures into
    ``out_dir``; return the results dict."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    results.save(out / "detections.npz")
    prior = true_class_detections(index, videos, tubes)
    res = evaluate(index, results, tubes_to_detections(videos, tubes), spec, prior)
    res["timings"] = dict(timings or {})
    res["environment"] = environment()
    res.update(info or {})
    atomic_write_json(out / "results.json", res, indent=1)
    try:
        save_pictures(index, videos, results, res, out, spec.num_pictures)
    except Exception as e:  # pictures must never cost a researcher the numbers above
        log.warning("could not draw pictures: %s", e)
    return res


def environment() -> dict[str, Any]:
    """What a result depends on beyond the config: the torch version, its intra-op threads (the
    float summation order, so STIL's EM moves with it), the device and the Lightning version."""
    return {
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "pytorch_lightning": pl.__version__,
    }


def log_results(loggers: Sequence[Any], cfg: DictConfig, res: Mapping[str, Any], out: Path) -> None:
    """The run's config, test metrics (``split/name``) and pictures to every logger."""
    if not loggers:
        return
    split = res["split"]
    metrics = {f"{split}/video_mAP@{t}": m for t, m in res["video_mAP"].items()}
    metrics[f"{split}/video_mAP@0.5:0.95"] = res["mAP@0.5:0.95"]
    metrics[f"{split}/AUC@0.1:0.6"] = res["AUC@0.1:0.6"]
    metrics[f"{split}/video_acc"] = res["video_accuracy"]
    for t, r in res["proposal_recall"].items():
        metrics[f"{split}/proposal_recall@{t}"] = r[-1] if r else 0.0
    metrics[f"{split}/top1"] = res["top1"]
    for name, b in res.get("bounds", {}).items():  # the bounds beside every number
        metrics.update({f"{split}/{name}/video_mAP@{t}": m for t, m in b["video_mAP"].items()})
        metrics[f"{split}/{name}/top1"] = b["top1"]
    for lg in loggers:
        lg.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))
        lg.log_metrics(metrics)
    log_test_media(loggers, res, out)
    for lg in loggers:
        lg.save()
        if lg.__class__.__name__ == "WandbLogger":
            lg.experiment.finish()


def save_pictures(
    index: DatasetIndex,
    videos: Sequence[str],
    results: TubeDetections,
    res: Mapping[str, Any],
    out: Path,
    num: int,
) -> None:
    """``tubes.png``: a few test videos with GT (blue) and the top detection (red);
    ``recall.png``: proposal recall against the number of tubes per video; ``pr.png``: per-class
    precision-recall curves at st-IoU 0.5."""
    if num > 0:
        # spread the pictures over classes: the first test video of each of `num` classes
        chosen: list[str] = []
        seen: set[int] = set()
        for v in videos:
            labs = index.videos[v].labels
            if labs and labs[0] not in seen:
                chosen.append(v)
                seen.add(labs[0])
            if len(chosen) == num:
                break
        strips = [
            viz.video_strip(index, v, results, num_frames=6, top_k=1, label_names=index.labels)
            for v in chosen
        ]
        viz.save_strips(out / "tubes.png", strips)
    curves = {f"st-IoU {t}": np.asarray(r) for t, r in res["proposal_recall"].items()}
    viz.plot_recall(curves, out / "recall.png", title=f"proposal recall ({res['protocol']})")
    pr = pr_curves(
        GroundTruth.from_index(index, res["split"]), results, 0.5, res["protocol"], res["nms"]
    )
    viz.plot_pr_curves(
        {f"{c} AP={ap:.3f}": (p, r) for c, (p, r, ap) in pr.items()},
        out / "pr.png",
        title=f"video PR at st-IoU 0.5 ({res['protocol']}, nms {res['nms']:g})",
    )
