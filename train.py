"""wsal entry point: ``python train.py [group=option ...] [key=value ...]`` (Hydra).

Builds every stage from the config (the only place that reads it, with eval.py), runs the
pipeline on the chosen dataset and writes ``results.json``, ``detections.npz`` and pictures into
the run folder. A trainable method (a ``_partial_`` method config, e.g. ``method=actor_attention``)
is fitted with Lightning on the train split and predicts the evaluation split; the default method
(``oracle_label``) needs no training and labels each tube with its video's class (localization
only). ``make demo`` = ``train.py experiment=actor_attention_synthetic_cpu``.
"""

from __future__ import annotations

import logging

import hydra
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger("wsal.train")


def run(cfg: DictConfig) -> dict:
    import functools

    import pytorch_lightning as pl
    from hydra.core.hydra_config import HydraConfig
    from hydra.utils import instantiate

    from wsal.pipeline import EvaluationSpec, print_summary, run_localization

    pl.seed_everything(cfg.seed, workers=True)
    dataset = instantiate(cfg.dataset)
    detector = instantiate(cfg.detector)
    linker = instantiate(cfg.linker)
    method = instantiate(cfg.method)
    reranker = instantiate(cfg.reranking)
    supervision = instantiate(cfg.supervision)
    loggers = [instantiate(c) for c in (cfg.get("logger") or {}).values() if "_target_" in c]
    spec = EvaluationSpec(**cfg.evaluation)
    choices = dict(HydraConfig.get().runtime.choices) if HydraConfig.initialized() else {}
    run_info = {
        "linker": linker.name,
        "detector": detector.name,
        "supervision": getattr(supervision, "name", supervision.level),
        "reranking": reranker.name,
        "choices": {k: v for k, v in choices.items() if not k.startswith("hydra")},
        "study": OmegaConf.to_container(cfg.study) if cfg.get("study") else None,
    }
    if isinstance(method, functools.partial) and getattr(
        method.func, "trains_on_box_features", False
    ):  # STIL and its baselines: box features + EM, no video decoding while training
        res = train_stil(
            cfg, dataset, detector, linker, method, reranker, supervision, loggers, spec, run_info
        )
    elif isinstance(method, functools.partial):  # a trainable method, built once L is known
        res = train_and_evaluate(
            cfg, dataset, detector, linker, method, reranker, loggers, spec, run_info
        )
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
    split = cfg.evaluation.split
    metrics = {f"{split}/video_mAP@{t}": m for t, m in res["video_mAP"].items()}
    metrics[f"{split}/video_mAP@0.5:0.95"] = res["mAP@0.5:0.95"]
    metrics[f"{split}/AUC@0.1:0.6"] = res["AUC@0.1:0.6"]
    metrics[f"{split}/video_acc"] = res["video_accuracy"]
    for t, r in res["proposal_recall"].items():
        metrics[f"{split}/proposal_recall@{t}"] = r[-1] if r else 0.0
    for lg in loggers:
        lg.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))
        lg.log_metrics(metrics)
        lg.save()
        if lg.__class__.__name__ == "WandbLogger":
            lg.experiment.finish()
    print_summary(res, f"{res['dataset']}: {res['linker']} tubes, method={res['method']}")
    log.info("results: %s/results.json  pictures: tubes.png, recall.png", cfg.paths.output_dir)
    return res


def train_stil(
    cfg, dataset, detector, linker, method_factory, reranker, supervision, loggers, spec, run_info
) -> dict:
    """STIL / MIL / GMIL: box features (cached), EM training with Lightning, test tubes."""
    from hydra.utils import instantiate

    from wsal.stil_pipeline import run_stil

    def make_trainer(max_epochs: int):
        # one EM round per epoch; full-batch, so no checkpoint callbacks or sanity checks needed
        return instantiate(
            cfg.trainer,
            max_epochs=max_epochs,
            logger=loggers or False,
            enable_checkpointing=False,
            num_sanity_val_steps=0,
        )

    run_info = {**run_info, "features": cfg.features.get("_target_", "").rsplit(".", 1)[-1]}
    return run_stil(
        dataset.prepare(),
        detector,
        linker,
        method_factory,
        reranker,
        supervision,
        instantiate(cfg.features),
        make_trainer,
        spec,
        cfg.paths.output_dir,
        cfg.paths.cache_dir,
        run_info,
    )


def train_and_evaluate(
    cfg, dataset, detector, linker, method_factory, reranker, loggers, spec, run_info
) -> dict:
    """Fit a trainable method on the train split, predict the evaluation split, evaluate."""
    import time

    from hydra.utils import instantiate

    from wsal.pipeline import report, tube_scores_to_detections

    dm = instantiate(cfg.data)(
        dataset=dataset,
        detector=detector,
        linker=linker,
        cache_dir=cfg.paths.cache_dir,
        test_split=spec.split,
    )
    dm.prepare_data()
    dm.setup("fit")
    model = method_factory(num_classes=len(dm.label_names))
    callbacks = [instantiate(c) for c in (cfg.get("callbacks") or {}).values() if "_target_" in c]
    trainer = instantiate(cfg.trainer, logger=loggers or False, callbacks=callbacks)
    t = time.perf_counter()
    trainer.fit(model, datamodule=dm)
    timings = {"train_s": time.perf_counter() - t}
    t = time.perf_counter()
    dm.setup("predict")
    preds = trainer.predict(model, dataloaders=dm.predict_dataloader())
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
        **run_info,
        "method": model.name,
        "epochs": trainer.current_epoch,
        "num_train_videos": len(dm.split_videos("fit")),
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
    res = run(cfg)
    return float(res["video_mAP"].get("0.5", next(iter(res["video_mAP"].values()))))


if __name__ == "__main__":
    main()
