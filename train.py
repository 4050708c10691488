"""wsal entry point: ``python train.py [group=option ...] [key=value ...]`` (Hydra).

Builds every stage from the config (the only place that reads it, with eval.py), runs the
pipeline on the chosen dataset and writes ``results.json``, ``detections.npz`` and pictures into
the run folder. Until a learning method lands, the default method labels each tube with its
video's class (localization only): the demo reports proposal recall and localization video-mAP.
"""

from __future__ import annotations

import logging

import hydra
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger("wsal.train")


def run(cfg: DictConfig) -> dict:
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
    if getattr(method, "trainable", False):
        raise NotImplementedError(f"method {method.name!r} is trainable; no training loop yet")
    loggers = [instantiate(c) for c in (cfg.get("logger") or {}).values() if "_target_" in c]

    prepared = dataset.prepare()
    choices = dict(HydraConfig.get().runtime.choices) if HydraConfig.initialized() else {}
    run_info = {
        "method": method.name,
        "linker": linker.name,
        "detector": detector.name,
        "supervision": supervision.level,
        "reranking": reranker.name,
        "choices": {k: v for k, v in choices.items() if not k.startswith("hydra")},
    }
    res = run_localization(
        prepared,
        detector,
        linker,
        method,
        reranker,
        EvaluationSpec(**cfg.evaluation),
        cfg.paths.output_dir,
        cfg.paths.cache_dir,
        run_info,
    )
    metrics = {f"{cfg.evaluation.split}/video_mAP@{t}": m for t, m in res["video_mAP"].items()}
    metrics[f"{cfg.evaluation.split}/video_mAP@0.5:0.95"] = res["mAP@0.5:0.95"]
    metrics[f"{cfg.evaluation.split}/AUC@0.1:0.6"] = res["AUC@0.1:0.6"]
    for t, r in res["proposal_recall"].items():
        metrics[f"{cfg.evaluation.split}/proposal_recall@{t}"] = r[-1] if r else 0.0
    for lg in loggers:
        lg.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))
        lg.log_metrics(metrics)
        lg.save()
        if hasattr(lg, "experiment") and lg.__class__.__name__ == "WandbLogger":
            lg.experiment.finish()
    print_summary(res, f"{prepared.name}: {linker.name} tubes, method={method.name}")
    log.info("results: %s/results.json  pictures: tubes.png, recall.png", cfg.paths.output_dir)
    return res


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> float:
    res = run(cfg)
    return float(res["video_mAP"].get("0.5", next(iter(res["video_mAP"].values()))))


if __name__ == "__main__":
    main()
