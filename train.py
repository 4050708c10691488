"""wsal entry point: ``python train.py [group=option ...] [key=value ...]`` (Hydra).

Runs the one route (:func:`wsal.app.route.run`) on the composed config: dataset -> detections ->
linking -> tubes -> ``method.fit`` -> ``method.predict`` -> reranking -> evaluation, and writes
``results.json``, ``detections.npz`` and pictures into the run folder. The default method
(``oracle_label``) needs no training and labels each tube with its video's class (localization
only). ``make demo`` = ``train.py experiment=actor_attention_temporal_prim_synthactors_labels``.

Every config value is checked first (:func:`wsal.configs.check_config`: the key and the value
named), and the dataset's videos before any detection, linking or training
(``dataset.validate``, ``dataset.skip_invalid``; docs/checks-runs.md).

Run folders (wsal/runs.py): ``outputs/train/<date_time>_<pid>-<random>`` (unique per run), and
``run.json`` holds the run's key (a hash of what the config computes), process id and status
(running, done, failed; killed when its process is gone). ``resume=auto`` (default): rerunning a
killed run's command finds it by key and resumes from its ``checkpoints/last.ckpt`` (STIL's EM
state included). In a sweep, a run that raises writes
``failed.json`` and the sweep goes on (``fail_fast=true`` stops it); ``python -m wsal.report``
lists the failures.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.utilities import rank_zero_only

from wsal import runs
from wsal.app import route
from wsal.configs import check_config  # also registers ${wsal.run_id:} for the run folder
from wsal.errors import exit_on_input_error

log = logging.getLogger("wsal.train")


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> float:
    hc = HydraConfig.get()
    run_dir = Path(cfg.paths.output_dir)
    rank0 = rank_zero_only.rank == 0
    choices = {k: v for k, v in hc.runtime.choices.items() if not k.startswith("hydra")}
    overrides = list(hc.overrides.task)
    multirun = hc.mode == RunMode.MULTIRUN
    try:
        check_config(cfg)  # every value, named by its key, before any work
        key = runs.run_key(OmegaConf.to_container(cfg, resolve=True))
        roots = [*cfg.get("resume_dirs", []), run_dir.parent]  # + this run's siblings
        if rank0:  # runs whose process is gone: status killed, their checkpoint temps deleted
            runs.mark_killed(roots)
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
                **runs.owner(),  # pid + host: a later run tells killed from running
            )
        res = route.run(cfg, checkpoint=ckpt, choices=choices, wandb_id=wandb_id)
    except Exception as e:
        if rank0:
            runs.record_failure(run_dir, e, overrides, choices)
        if multirun and not cfg.get("fail_fast", False):
            log.exception("run %s failed; the sweep goes on (see its failed.json)", run_dir)
            return float("nan")
        exit_on_input_error(e)  # bad input: one line "error: <file>: ..." and exit 2
        raise
    if res is None:
        return float("nan")
    runs.write_run(run_dir, status="done", finished=time.time())
    return float(res["video_mAP"].get("0.5", next(iter(res["video_mAP"].values()))))


if __name__ == "__main__":
    main()
