"""wsal entry point: ``python train.py [group=option ...] [key=value ...]`` (Hydra).

Builds every stage from the config (the only place that reads it, with eval.py), runs the
pipeline on the chosen dataset and writes ``results.json``, ``detections.npz`` and pictures into
the run folder. A trainable method (a ``_partial_`` method config, e.g. ``method=actor_attention``)
is fitted with Lightning on the train split and predicts the evaluation split; the default method
(``oracle_label``) needs no training and labels each tube with its video's class (localization
only). ``make demo`` = ``train.py experiment=actor_attention_temporal_prim_synthactors_labels``.

Run folders (wsal/runs.py): ``run.json`` holds the run's key (a hash of what the config computes)
and status. ``resume=auto`` (default): rerunning a killed run's command finds it by key and resumes
from its ``checkpoints/last.ckpt`` (STIL's EM state included). In a sweep, a run that raises writes
``failed.json`` and the sweep goes on (``fail_fast=true`` stops it); ``python -m wsal.report``
lists the failures.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, NamedTuple

import hydra
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger("wsal.train")


class Stages(NamedTuple):
    """The instantiated stages of one run."""

    dataset: Any
    detector: Any
    linker: Any
    method: Any
    reranker: Any
    supervision: Any
    loggers: list
    spec: Any
    run_info: dict


def build_loggers(cfg: DictConfig, wandb_id: str | None = None) -> list:
    """The configured loggers; W&B gets the run folder as its name and, when resuming, the
    killed run's id (so its curves continue)."""
    from hydra.utils import instantiate
    from pytorch_lightning.utilities import rank_zero_only

    loggers = []
    for c in (cfg.get("logger") or {}).values():
        if "_target_" not in c:
            continue
        extra = {}
        if c["_target_"].endswith("wandb_logger"):
            extra = {"name": c.get("name") or Path(cfg.paths.output_dir).name, "id": wandb_id}
        loggers.append(instantiate(c, **extra))
        if extra and rank_zero_only.rank == 0:  # remember the W&B run so a resume continues it
            from wsal.runs import write_run

            write_run(cfg.paths.output_dir, wandb_id=loggers[-1].experiment.id)
    return loggers


def run(
    cfg: DictConfig,
    ckpt_path: str | None = None,
    fit: bool = True,
    wandb_id: str | None = None,
    choices: dict | None = None,
) -> dict | None:
    """Build every stage from ``cfg`` and run it; returns the results dict (None on DDP ranks
    other than 0). ``ckpt_path``: resume training from it (``fit``) or, with ``fit=False``, load the
    trained method from it and only predict and evaluate (eval.py)."""
    import functools

    import pytorch_lightning as pl
    from hydra.core.hydra_config import HydraConfig
    from hydra.utils import instantiate

    from wsal.app.stages import build_linker
    from wsal.pipeline import EvaluationSpec, print_summary, run_localization

    pl.seed_everything(cfg.seed, workers=True)
    dataset = instantiate(cfg.dataset)
    detector = instantiate(cfg.detector)
    linker = build_linker(cfg.linker)  # makes the actor linker's tracker first when needed
    method = instantiate(cfg.method, _convert_="all")  # plain lists: weights_only checkpoints
    reranker = instantiate(cfg.reranking)
    supervision = instantiate(cfg.supervision)
    loggers = build_loggers(cfg, wandb_id) if fit else []
    spec = EvaluationSpec(**cfg.evaluation)
    if choices is None:
        choices = dict(HydraConfig.get().runtime.choices) if HydraConfig.initialized() else {}
    run_info = {
        "linker": linker.name,
        "detector": detector.name,
        "supervision": getattr(supervision, "name", supervision.level),
        "reranking": reranker.name,
        "choices": {k: v for k, v in choices.items() if not k.startswith("hydra")},
        "study": OmegaConf.to_container(cfg.study) if cfg.get("study") else None,
    }
    st = Stages(dataset, detector, linker, method, reranker, supervision, loggers, spec, run_info)
    if isinstance(method, functools.partial) and getattr(
        method.func, "trains_on_box_features", False
    ):  # STIL and its baselines: box features + EM, no video decoding while training
        res = train_stil(cfg, st, ckpt_path, fit)
    elif isinstance(method, functools.partial):  # a trainable method, built once L is known
        res = train_and_evaluate(cfg, st, ckpt_path, fit)
    else:
        prepared = dataset.prepare()
        run_info["method"] = method.name
        res = run_localization(
            prepared,
            detector,
            linker,
            method,
            reranker,
            spec,
            cfg.paths.output_dir,
            cfg.paths.cache_dir,
            run_info,
        )
    if res is None:  # a DDP rank other than 0: rank 0 predicts and reports
        return None
    split = cfg.evaluation.split
    metrics = {f"{split}/video_mAP@{t}": m for t, m in res["video_mAP"].items()}
    metrics[f"{split}/video_mAP@0.5:0.95"] = res["mAP@0.5:0.95"]
    metrics[f"{split}/AUC@0.1:0.6"] = res["AUC@0.1:0.6"]
    metrics[f"{split}/video_acc"] = res["video_accuracy"]
    for t, r in res["proposal_recall"].items():
        metrics[f"{split}/proposal_recall@{t}"] = r[-1] if r else 0.0
    from wsal.loggers import log_test_media

    for lg in loggers:
        lg.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))
        lg.log_metrics(metrics)
    log_test_media(loggers, res, cfg.paths.output_dir)
    for lg in loggers:
        lg.save()
        if lg.__class__.__name__ == "WandbLogger":
            lg.experiment.finish()
    print_summary(res, f"{res['dataset']}: {res['linker']} tubes, method={res['method']}")
    log.info("results: %s/results.json  pictures: tubes.png, recall.png", cfg.paths.output_dir)
    return res


def checkpoint_callbacks(cfg: DictConfig, with_best: bool = True) -> list:
    """The configured callbacks; without ``with_best`` the monitored checkpoints are left out
    (methods without a validation loop: STIL's EM)."""
    from hydra.utils import instantiate

    cbs = [instantiate(c) for c in (cfg.get("callbacks") or {}).values() if "_target_" in c]
    if not with_best:
        cbs = [c for c in cbs if getattr(c, "monitor", None) is None]
    return cbs


def single_device_trainer(cfg: DictConfig):
    """A one-device Trainer like ``cfg.trainer`` for prediction: predicting under DDP would return
    only rank 0's share, and ``fast_dev_run`` would predict one batch."""
    from hydra.utils import instantiate

    return instantiate(
        cfg.trainer,
        devices=1,
        num_nodes=1,
        strategy="auto",
        sync_batchnorm=False,
        fast_dev_run=False,
        logger=False,
        callbacks=[],
        enable_checkpointing=False,
    )


def train_stil(cfg: DictConfig, st: Stages, ckpt_path=None, fit=True) -> dict:
    """STIL / MIL / GMIL: box features (cached), EM training with Lightning, test tubes."""
    from hydra.utils import instantiate

    from wsal.stil_pipeline import run_stil

    def make_trainer(max_epochs: int):
        # One EM round per epoch, checkpointed every round (resume). Full-batch: one device (the
        # solve is one batched tensor op; DDP would repeat it on every rank), no sanity checks.
        return instantiate(
            cfg.trainer,
            max_epochs=max_epochs,
            devices=1,
            num_nodes=1,
            strategy="auto",
            sync_batchnorm=False,
            logger=loggers or False,
            callbacks=checkpoint_callbacks(cfg, with_best=False),
            num_sanity_val_steps=0,
        )

    loggers = st.loggers
    run_info = {**st.run_info, "features": cfg.features.get("_target_", "").rsplit(".", 1)[-1]}
    return run_stil(
        st.dataset.prepare(),
        st.detector,
        st.linker,
        st.method,
        st.reranker,
        st.supervision,
        instantiate(cfg.features),
        make_trainer,
        st.spec,
        cfg.paths.output_dir,
        cfg.paths.cache_dir,
        run_info,
        ckpt_path=ckpt_path,
        fit=fit,
    )


def train_and_evaluate(cfg: DictConfig, st: Stages, ckpt_path=None, fit=True) -> dict | None:
    """Fit a trainable method on the train split (resuming from ``ckpt_path``), predict the
    evaluation split on one device, evaluate. ``fit=False``: load the method from ``ckpt_path``."""
    import functools

    from hydra.utils import instantiate

    from wsal.linking.cache import link_cached
    from wsal.pipeline import report, tube_scores_to_detections

    spec, reranker, loggers, method_factory = st.spec, st.reranker, st.loggers, st.method
    dm = instantiate(cfg.data)(
        dataset=st.dataset,
        tubes=functools.partial(
            link_cached, detector=st.detector, linker=st.linker, cache_dir=cfg.paths.cache_dir
        ),
        test_split=spec.split,
    )
    dm.prepare_data()
    dm.setup("fit")
    timings: dict[str, float] = {}
    epochs = None
    if fit:
        model = method_factory(num_classes=len(dm.label_names))
        trainer = instantiate(
            cfg.trainer, logger=loggers or False, callbacks=checkpoint_callbacks(cfg)
        )
        t = time.perf_counter()
        trainer.fit(model, datamodule=dm, ckpt_path=ckpt_path)
        timings["train_s"] = time.perf_counter() - t
        epochs = trainer.current_epoch
        if trainer.global_rank != 0:
            return None
    else:
        if ckpt_path is None:
            raise ValueError("fit=False needs a checkpoint to load the method from")
        model = method_factory.func.load_from_checkpoint(str(ckpt_path), map_location="cpu")
    t = time.perf_counter()
    dm.setup("predict")
    preds = single_device_trainer(cfg).predict(model, dataloaders=dm.predict_dataloader())
    videos = dm.split_videos("predict")
    results = tube_scores_to_detections(videos, dm.tubes, preds)
    if getattr(reranker, "context", False):  # global video classifier on the run's features
        from wsal.stil_pipeline import context_video_scores

        vs = context_video_scores(
            instantiate(cfg.features),
            dm.prepared,
            dm.index.split("train"),
            videos,
            cfg.paths.cache_dir,
        )
        results = reranker(results, video_scores=vs)
    else:
        results = reranker(results)
    timings["predict_s"] = time.perf_counter() - t
    info = {
        **st.run_info,
        "method": model.name,
        "epochs": epochs,
        "num_train_videos": len(dm.split_videos("fit")),
        "checkpoint": str(ckpt_path) if ckpt_path is not None else None,
    }
    return report(
        dm.prepared.name,
        dm.index,
        videos,
        dm.tubes,
        results,
        spec,
        cfg.paths.output_dir,
        info,
        timings,
    )


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> float:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode
    from pytorch_lightning.utilities import rank_zero_only

    from wsal import runs

    hc = HydraConfig.get()
    run_dir = Path(cfg.paths.output_dir)
    rank0 = rank_zero_only.rank == 0
    choices = {k: v for k, v in hc.runtime.choices.items() if not k.startswith("hydra")}
    overrides = list(hc.overrides.task)
    multirun = hc.mode == RunMode.MULTIRUN
    try:
        key = runs.run_key(OmegaConf.to_container(cfg, resolve=True))
        roots = [*cfg.get("resume_dirs", []), run_dir.parent]  # + this run's siblings
        ckpt, prev = runs.resolve_resume(cfg.get("resume", "auto"), key, roots)
        wandb_id = None
        if prev is not None:
            log.info("resuming %s from %s", run_dir, ckpt)
            wandb_id = (runs.read_run(prev) or {}).get("wandb_id")
        if rank0:
            runs.write_run(
                run_dir,
                key=key,
                status="running",
                started=time.time(),
                resumed_from=str(prev) if prev else None,
                overrides=overrides,
                choices=choices,
            )
        res = run(cfg, ckpt_path=str(ckpt) if ckpt else None, wandb_id=wandb_id)
    except Exception as e:
        if rank0:
            runs.record_failure(run_dir, e, overrides, choices)
        if multirun and not cfg.get("fail_fast", False):
            log.exception("run %s failed; the sweep goes on (see its failed.json)", run_dir)
            return float("nan")
        raise
    if res is None:
        return float("nan")
    runs.write_run(run_dir, status="done", finished=time.time())
    return float(res["video_mAP"].get("0.5", next(iter(res["video_mAP"].values()))))


if __name__ == "__main__":
    main()
