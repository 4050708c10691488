"""Evaluate a finished run again: ``python eval.py run_dir=outputs/train/<time> [ckpt=...] [evaluation.protocol=voc]``.

With a checkpoint (``ckpt=auto``, the default: the run's ``checkpoints/best.ckpt``, else its
``last.ckpt``; or ``ckpt=PATH``) the run is *rebuilt*: dataset, detector, linker, method and
reranking from its saved ``.hydra/config.yaml``, the trained method from the checkpoint; the
evaluation split is predicted again and ``detections.npz`` (TubeDetections), ``results.json`` and
pictures are written into ``<run_dir>/eval/<time>/``. Without one (methods that do not train, or
``ckpt=null``) the run's ``detections.npz`` (or ``detections=PATH``) is re-evaluated.
"""

from __future__ import annotations

import logging
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf, open_dict

log = logging.getLogger("wsal.eval")


def find_checkpoint(run_dir: Path, ckpt: str | None) -> Path | None:
    """``auto``: best.ckpt, else last.ckpt, else None; a path must exist."""
    if ckpt in (None, "null", "none"):
        return None
    if ckpt != "auto":
        p = Path(ckpt)
        if not p.is_file():
            raise FileNotFoundError(f"checkpoint {p} not found")
        return p
    for name in ("best.ckpt", "last.ckpt"):
        p = run_dir / "checkpoints" / name
        if p.is_file():
            return p
    return None


def rebuild_and_predict(
    run_dir: Path, run_cfg: DictConfig, cfg: DictConfig, ckpt: Path, out: Path
) -> dict:
    """Rebuild the run from its config, load the method from ``ckpt``, predict and evaluate."""
    import train
    from wsal.runs import check_checkpoint

    check_checkpoint(ckpt)
    saved_choices = OmegaConf.load(run_dir / ".hydra" / "hydra.yaml").hydra.runtime.choices
    with open_dict(run_cfg):
        run_cfg.paths.output_dir = str(out)
        run_cfg.evaluation = cfg.evaluation
        run_cfg.logger = {}
    res = train.run(
        run_cfg,
        ckpt_path=str(ckpt),
        fit=False,
        choices={k: v for k, v in saved_choices.items() if not k.startswith("hydra")},
    )
    assert res is not None
    res["rebuilt_from"] = {"run_dir": str(run_dir), "checkpoint": str(ckpt)}
    return res


@hydra.main(version_base="1.3", config_path="conf", config_name="eval")
def main(cfg: DictConfig) -> float:
    from hydra.core.hydra_config import HydraConfig
    from hydra.utils import instantiate

    from wsal.app.stages import build_linker
    from wsal.atomic import atomic_write_json
    from wsal.linking.cache import link_cached, tubes_to_detections
    from wsal.pipeline import EvaluationSpec, evaluate, print_summary
    from wsal.structures import TubeDetections

    run_dir = Path(cfg.run_dir)
    saved = run_dir / ".hydra" / "config.yaml"
    if not saved.exists():
        raise FileNotFoundError(f"{saved} not found: run_dir must be a train.py run folder")
    run_cfg = OmegaConf.load(saved)
    out = Path(HydraConfig.get().runtime.output_dir)
    ckpt = find_checkpoint(run_dir, cfg.get("ckpt", "auto"))
    if ckpt is not None:
        res = rebuild_and_predict(run_dir, run_cfg, cfg, ckpt, out)
        atomic_write_json(out / "results.json", res, indent=1)
        log.info("rebuilt %s from %s: %s/results.json", run_dir, ckpt, out)
        return float(next(iter(res["video_mAP"].values())))
    dets_path = Path(cfg.detections) if cfg.detections else run_dir / "detections.npz"
    prepared = instantiate(run_cfg.dataset).prepare()
    tubes = link_cached(
        prepared,
        instantiate(run_cfg.detector),
        build_linker(run_cfg.linker),
        run_cfg.paths.cache_dir,
    )
    spec = EvaluationSpec(**cfg.evaluation)
    videos = prepared.index.split(spec.split)
    results = TubeDetections.load(dets_path, label_names=prepared.index.labels)
    res = evaluate(prepared.index, results, tubes_to_detections(videos, tubes), spec)
    res["detections_file"] = str(dets_path)
    atomic_write_json(out / "results.json", res, indent=1)
    print_summary(res, f"re-evaluation of {run_dir}")
    return float(next(iter(res["video_mAP"].values())))


if __name__ == "__main__":
    main()
