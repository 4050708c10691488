"""Evaluate a finished run again: ``python eval.py run_dir=outputs/train/<time> [ckpt=...] [evaluation.protocol=voc] [reranking=context]``.

With a checkpoint (``ckpt=auto``, the default: the run's ``checkpoints/best.ckpt``, else its
``last.ckpt``; or ``ckpt=PATH``) the run is *rebuilt*: the one route (:func:`wsal.app.route.run`)
runs on the run's saved ``.hydra/config.yaml`` with the trained method loaded from the
checkpoint's state dict (``weights_only``) instead of trained; the evaluation split is predicted
again and ``detections.npz`` (TubeDetections), ``results.json`` and pictures are written into
``<run_dir>/eval/<time>/``; ``reranking=<name>`` reranks the rebuilt run's tube scores with
``conf/reranking/<name>.yaml`` instead of the run's own reranking (STIL Fig. 5 on one trained
model); ``method.<key>=...`` changes an inference-only setting of the rebuilt method (e.g. STIL's
``method.tube_score=coverage``; :data:`wsal.configs.INFERENCE_KEYS` lists them; ``results.json``
records them under ``rebuilt_from``). Without one (methods that do not train, or ``ckpt=null``)
the run's ``detections.npz`` (or ``detections=PATH``) is re-evaluated.
"""

from __future__ import annotations

import logging
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

from wsal.app import route
from wsal.atomic import atomic_write_json
from wsal.configs import (  # also registers ${wsal.run_id:} for the output folder
    RULES,
    ConfigError,
    check_config,
    inference_overrides,
)
from wsal.errors import exit_on_input_error
from wsal.evaluation.results import EvaluationSpec, print_summary
from wsal.runs import CONFIG_FILE, check_checkpoint, load_run
from wsal.targets import check_targets

log = logging.getLogger("wsal.eval")


@hydra.main(version_base="1.3", config_path="conf", config_name="eval")
def main(cfg: DictConfig) -> float:
    try:
        return _main(cfg)
    except Exception as e:  # bad input (a missing run, a corrupt checkpoint...): one line, exit 2
        exit_on_input_error(e)
        raise


def _main(cfg: DictConfig) -> float:
    # evaluation.*, ckpt: named by key before any work (method.* is checked on the rebuilt config)
    check_config(cfg, {k: r for k, r in RULES.items() if not k.startswith("method.")})
    run = load_run(cfg.run_dir)  # FileNotFoundError unless a train.py run folder
    check_targets(run.config, run.path / CONFIG_FILE)  # a run folder is data: before instantiating
    out = Path(HydraConfig.get().runtime.output_dir)
    ckpt = run.checkpoint(cfg.get("ckpt", "auto"))
    method_over = inference_overrides(run.config.method, cfg.get("method") or {})
    if method_over and ckpt is None:
        raise ConfigError(
            f"eval.py method.{next(iter(method_over))}: rescoring needs the run's checkpoint "
            f"(none found in {run.path} or ckpt=null)"
        )
    if ckpt is not None:  # rebuild: the route with the trained method loaded, not fitted
        check_checkpoint(ckpt)
        run_cfg = run.config
        with open_dict(run_cfg):
            run_cfg.paths.output_dir = str(out)
            run_cfg.evaluation = cfg.evaluation
            run_cfg.logger = {}
        choices = dict(run.choices)
        if cfg.get("reranking") is not None:  # the trained model, reranked another way (Fig. 5)
            with open_dict(run_cfg):
                run_cfg.reranking = cfg.reranking
            choices["reranking"] = HydraConfig.get().runtime.choices.get("reranking")
        if method_over:  # the trained model, its test tubes scored another way
            with open_dict(run_cfg):
                for key, value in method_over.items():
                    run_cfg.method[key] = value
        check_config(run_cfg)  # the run's own config as rebuilt here
        res = route.run(run_cfg, fit=False, checkpoint=ckpt, choices=choices)
        assert res is not None
        res["rebuilt_from"] = {"run_dir": str(run.path), "checkpoint": str(ckpt)}
        if method_over:
            res["rebuilt_from"]["method"] = method_over
        log.info("rebuilt %s from %s: %s/results.json", run.path, ckpt, out)
    else:  # re-evaluate the saved detections
        dets = Path(cfg.detections) if cfg.detections else run.detections_path
        res = route.evaluate_saved(run.config, dets, EvaluationSpec(**cfg.evaluation))
        print_summary(res, f"re-evaluation of {run.path}")
    atomic_write_json(out / "results.json", res, indent=1)
    return float(next(iter(res["video_mAP"].values())))


if __name__ == "__main__":
    main()
