"""Re-evaluate a finished run: ``python eval.py run_dir=outputs/train/<time> [evaluation.protocol=voc]``.

Rebuilds the run's dataset, detector and linker from its saved ``.hydra/config.yaml`` (tubes come
from the cache), reads its ``detections.npz`` (or ``detections=PATH``) and writes ``results.json``
into ``<run_dir>/eval/<time>/``.
"""

from __future__ import annotations

import logging
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger("wsal.eval")


@hydra.main(version_base="1.3", config_path="conf", config_name="eval")
def main(cfg: DictConfig) -> float:
    from hydra.core.hydra_config import HydraConfig
    from hydra.utils import instantiate

    from wsal.atomic import atomic_write_json
    from wsal.pipeline import (
        EvaluationSpec,
        evaluate,
        link_cached,
        print_summary,
        tubes_to_detections,
    )
    from wsal.structures import TubeDetections

    run_dir = Path(cfg.run_dir)
    saved = run_dir / ".hydra" / "config.yaml"
    if not saved.exists():
        raise FileNotFoundError(f"{saved} not found: run_dir must be a train.py run folder")
    run_cfg = OmegaConf.load(saved)
    dets_path = Path(cfg.detections) if cfg.detections else run_dir / "detections.npz"
    prepared = instantiate(run_cfg.dataset).prepare()
    tubes = link_cached(
        prepared,
        instantiate(run_cfg.detector),
        instantiate(run_cfg.linker),
        run_cfg.paths.cache_dir,
    )
    spec = EvaluationSpec(**cfg.evaluation)
    videos = prepared.index.split(spec.split)
    results = TubeDetections.load(dets_path, label_names=prepared.index.labels)
    res = evaluate(prepared.index, results, tubes_to_detections(videos, tubes), spec)
    res["detections_file"] = str(dets_path)
    out = Path(HydraConfig.get().runtime.output_dir)
    atomic_write_json(out / "results.json", res, indent=1)
    print_summary(res, f"re-evaluation of {run_dir}")
    return float(next(iter(res["video_mAP"].values())))


if __name__ == "__main__":
    main()
