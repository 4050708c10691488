"""Every option of every config group composes and instantiates; train.py/eval.py run end to end."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import open_dict

from tests.tiny import TINY, TINY_ACTOR_ATTENTION, run_script
from wsal.app.stages import build_linker
from wsal.structures import TubeDetections

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"
GROUPS = sorted(p.name for p in CONF.iterdir() if p.is_dir())
OPTIONS = [(g, p.stem) for g in GROUPS for p in sorted((CONF / g).glob("*.yaml"))]
# values a user must give for options with mandatory (???) fields; and a tracker checkpoint, so
# that building the actor linker trains no default tracker (test_actor_linker_default_tracker)
REQUIRED = {
    ("dataset", "custom"): ["dataset.annotations={gt}"],
    ("detector", "file"): ["detector.path={dets}"],
    ("linker", "actor"): ["linker.checkpoint={ckpt}"],
}


def compose_cfg(tmp_path, overrides, name="config"):
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name=name, overrides=overrides, return_hydra_config=True)
    with open_dict(cfg):
        cfg.hydra.runtime.output_dir = str(tmp_path / "run")
    HydraConfig.instance().set_config(cfg)
    return cfg


def test_every_group_is_covered():
    assert {
        "dataset",
        "detector",
        "linker",
        "method",
        "reranking",
        "supervision",
        "trainer",
        "logger",
        "evaluation",
    } <= set(GROUPS)


@pytest.mark.parametrize(("group", "option"), OPTIONS, ids=[f"{g}={o}" for g, o in OPTIONS])
def test_option_composes_and_instantiates(tmp_path, group, option):
    from wsal.data.annotations import DatasetIndex, write_wsal_json

    gt = tmp_path / "gt.json"
    write_wsal_json(DatasetIndex(["a"], {"train": [], "test": []}, {}), gt)
    dets = tmp_path / "dets.npz"
    dets.write_bytes(b"")
    ckpt = tmp_path / "tracker.pt"  # never read: the linker loads its tracker on first use
    ckpt.write_bytes(b"")
    extra = [o.format(gt=gt, dets=dets, ckpt=ckpt) for o in REQUIRED.get((group, option), [])]
    cfg = compose_cfg(tmp_path, [f"{group}={option}", f"paths.data_dir={tmp_path}/data", *extra])
    if group == "debug":  # a global package over the default run: it still instantiates
        assert cfg.task_name.startswith("debug") and cfg.resume == "never"
        assert instantiate(cfg.trainer) is not None
        return
    if group == "experiment":  # a global package: everything it sets must still instantiate
        import torch

        if "default_tracker" in cfg.linker:  # the actor linker: a checkpoint, no training
            cfg.linker.checkpoint = str(ckpt)
        for g in ("dataset", "detector", "linker", "method", "data", "trainer"):
            if (
                g == "trainer"
                and cfg[g].get("accelerator") == "gpu"
                and not torch.cuda.is_available()
            ):
                continue  # composes; instantiating it needs a CUDA device
            assert (build_linker(cfg[g]) if g == "linker" else instantiate(cfg[g])) is not None
        return
    node = cfg[group]
    if group == "trainer" and node.get("accelerator") == "gpu":
        import torch

        if not torch.cuda.is_available():
            pytest.skip("trainer=gpu composes; instantiating it needs a CUDA device")
    if group in ("data", "callbacks"):
        objs = [
            instantiate(c)
            for c in (node.values() if group == "callbacks" else [node])
            if "_target_" in c
        ]
        assert group == "callbacks" or objs
        return
    if group == "evaluation":
        from wsal.evaluation.results import EvaluationSpec

        EvaluationSpec(**node)
        return
    if group == "logger":
        objs = [instantiate(c) for c in node.values()]
        assert objs or option == "none"
        return
    obj = build_linker(node) if group == "linker" else instantiate(node)
    assert obj is not None


def test_slurm_launcher_configs_compose():
    """hydra/launcher=slurm|slurm_ddp extend the submitit plugin's config (wsal[slurm])."""
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(
            "config",
            overrides=["hydra/launcher=slurm_ddp", "trainer=ddp", "trainer.devices=4"],
            return_hydra_config=True,
        )
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("submitit_launcher.SlurmLauncher")
    assert launcher.gpus_per_node == launcher.tasks_per_node == 4 and launcher.nodes == 1
    assert launcher.timeout_min == 240 and launcher.max_num_timeout == 3


def test_unknown_option_names_the_valid_ones(tmp_path):
    with pytest.raises(Exception, match="temporal_prim"):
        compose_cfg(tmp_path, ["linker=nope"])


def assert_eval_rebuilds(run, res):
    """eval.py rebuilds the run from its saved config + last.ckpt, predicts the evaluation split
    again and gets the training run's detections (same mAP and per-class AP)."""
    out = run_script("eval.py", f"run_dir={run}", f"hydra.run.dir={run}/eval", timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    res2 = json.loads((run / "eval" / "results.json").read_text())
    assert res2["rebuilt_from"]["checkpoint"].endswith("last.ckpt")
    assert res2["video_mAP"] == res["video_mAP"] and res2["AP"] == res["AP"]
    assert (run / "eval" / "detections.npz").exists()


def test_train_then_eval_end_to_end(tmp_path):
    """train.py on a tiny SynthActors, then eval.py re-evaluates the run under the VOC protocol."""
    run = tmp_path / "run"
    env_args = [f"paths.data_dir={tmp_path}/data", f"hydra.run.dir={run}", *TINY]
    out = run_script("train.py", *env_args, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    res = json.loads((run / "results.json").read_text())
    assert res["protocol"] == "act" and res["dataset"] == "synthactors"
    assert set(res["video_mAP"]) == {"0.2", "0.5", "0.75"}
    assert all(0 <= v <= 1 for v in res["video_mAP"].values())
    assert res["num_videos"] == 7 and res["num_gt_tubes"] >= 7
    assert len(res["proposal_recall"]["0.2"]) == 10
    assert (run / "tubes.png").stat().st_size > 1000 and (run / "recall.png").exists()
    assert (run / "detections.npz").exists()
    assert "protocol=act" in out.stdout
    out = run_script(
        "eval.py",
        f"run_dir={run}",
        "evaluation.protocol=voc",
        f"hydra.run.dir={run}/eval",
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    res2 = json.loads((run / "eval" / "results.json").read_text())
    assert res2["protocol"] == "voc" and res2["num_videos"] == 7
    # the proposals (and thus recall) are the cached ones of the training run
    assert res2["num_detections"] == res["num_detections"]


def test_train_actor_attention_end_to_end(tmp_path):
    """The trainable path: fit actor attention for one epoch on a tiny SynthActors, predict the
    test split, evaluate, write results, checkpoint and pictures."""
    run = tmp_path / "run"
    args = [
        f"paths.data_dir={tmp_path}/data",
        f"hydra.run.dir={run}",
        *TINY,
        *TINY_ACTOR_ATTENTION,
        "trainer.max_epochs=1",
        "trainer.log_every_n_steps=1",
    ]
    out = run_script("train.py", *args, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    res = json.loads((run / "results.json").read_text())
    assert res["method"] == "actor_attention" and res["epochs"] == 1
    assert res["num_detections"] > 0 and 0 <= res["video_mAP"]["0.5"] <= 1
    assert (run / "checkpoints" / "last.ckpt").exists()
    assert (run / "tubes.png").exists()
    metrics = (run / "csv" / "version_0" / "metrics.csv").read_text()
    assert "train/loss" in metrics and "test/video_mAP@0.5" in metrics
    # eval.py rebuilds the run from its config + checkpoint and predicts the same detections
    assert_eval_rebuilds(run, res)


def test_train_stil_end_to_end_with_context_and_supervision(tmp_path):
    """The STIL path: hoghof box features (cached), boxes-supervised priors, EM with Lightning,
    test tubes, contextual + negative reranking, results with the annotation cost."""
    run = tmp_path / "run"
    args = [
        f"paths.data_dir={tmp_path}/data",
        f"hydra.run.dir={run}",
        *TINY,
        "dataset.videos_per_class_train=2",
        "method=stil",
        "method.em_epochs=2",
        "method.folds=2",
        "method.loss=squared_hinge",
        "reranking=both",
        "supervision=boxes_stride10",
        "trainer.enable_progress_bar=false",
        "logger=csv",
    ]
    out = run_script("train.py", *args, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    res = json.loads((run / "results.json").read_text())
    assert res["method"] == "stil" and res["reranking"] == "both"
    assert res["supervision"] == "boxes_stride10" and res["annotation_cost_s"] > 5.0
    assert len(res["em_history"]) == 2 and res["num_train_videos"] == 14
    env = res["environment"]  # what the numbers depend on beyond the config
    assert env["torch"] == torch.__version__ and env["torch_threads"] >= 1
    assert 0 <= res["video_mAP"]["0.5"] <= 1 and res["num_detections"] > 0
    # a second run reuses the feature cache (no second extraction)
    feats = list((tmp_path / "data" / "cache").rglob("*.json"))
    assert feats
    # the EM is checkpointed every round; eval.py rebuilds STIL from it: same test detections
    assert_eval_rebuilds(run, res)
    # the same trained model reranked another way: the same tubes, other scores
    out = run_script(
        "eval.py", f"run_dir={run}", "reranking=none", f"hydra.run.dir={run}/eval_none", timeout=300
    )
    assert out.returncode == 0, out.stderr[-3000:]
    res3 = json.loads((run / "eval_none" / "results.json").read_text())
    assert res3["reranking"] == "none" and res3["num_detections"] == res["num_detections"]
    both = TubeDetections.load(run / "eval" / "detections.npz")
    plain = TubeDetections.load(run / "eval_none" / "detections.npz")
    np.testing.assert_array_equal(both.rows, plain.rows)
    assert not np.allclose(both.score, plain.score)
    # an inference setting of the trained model changed on rebuild: its proposals, coverage-scored
    out = run_script(
        "eval.py",
        f"run_dir={run}",
        "reranking=none",
        "method.test_tubes=proposals",
        "method.tube_score=coverage",
        f"hydra.run.dir={run}/eval_cov",
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    cov = TubeDetections.load(run / "eval_cov" / "detections.npz")
    assert (cov.score >= 0).all() and (cov.score <= 1).all()  # sigmoid sums over the frames
    assert "tube_score: mean" in (run / ".hydra" / "config.yaml").read_text()  # run untouched
    res4 = json.loads((run / "eval_cov" / "results.json").read_text())
    assert res4["tube_length"] != res3["tube_length"]  # whole proposals, not runs of positives
    assert res4["rebuilt_from"]["method"] == {"test_tubes": "proposals", "tube_score": "coverage"}
    # rescoring needs the trained model: without its checkpoint, one line naming the key
    out = run_script(
        "eval.py",
        f"run_dir={run}",
        "ckpt=null",
        "method.tube_score=coverage",
        f"hydra.run.dir={run}/eval_bad",
        timeout=300,
    )
    assert out.returncode == 2 and "method.tube_score" in out.stderr and "checkpoint" in out.stderr


def test_eval_yaml_lists_every_inference_key():
    """eval.py can only set the method keys conf/eval.yaml declares (Hydra's struct mode): they
    must be exactly the inference keys that inference_overrides accepts."""
    from omegaconf import OmegaConf

    from wsal.configs import INFERENCE_KEYS

    declared = set(OmegaConf.load(CONF / "eval.yaml").method)
    assert declared == {k for keys in INFERENCE_KEYS.values() for k in keys}


def test_eval_inference_overrides_only_inference_keys():
    """eval.py's method.* may change how a trained model scores test tubes, never how it was
    trained; the refusal names the key and what may change."""
    from wsal.configs import ConfigError, inference_overrides

    stil = {"_target_": "wsal.models.methods.STILMethod", "C": 10.0, "test_tubes": "link"}
    got = inference_overrides(stil, {"tube_score": "coverage", "min_iou": None, "test_score": None})
    assert got == {"tube_score": "coverage"}  # null keeps the run's own
    with pytest.raises(ConfigError, match=r"method\.C: .*tube_score"):
        inference_overrides(stil, {"C": 1.0})
    aa = {"_target_": "wsal.models.methods.ActorAttentionMethod"}
    assert inference_overrides(aa, {"test_score": "logit"}) == {"test_score": "logit"}
    with pytest.raises(ConfigError, match=r"method\.tube_score"):
        inference_overrides(aa, {"tube_score": "coverage"})


def test_multirun_sweep_over_experiments_with_fast_dev_run(tmp_path):
    """`-m 'experiment=glob(...)' debug=fast_dev_run`: every SynthActors experiment runs end to end
    (one training batch, then prediction and evaluation) in one Hydra multirun on a tiny
    SynthActors. Not in the glob: the real-dataset experiments (they need the datasets and
    pretrained weights; composed and instantiated above) and the actor-linker one (its first run
    trains the SiamFC tracker, minutes)."""
    sweep = tmp_path / "sweep"
    args = [
        "-m",
        "experiment=glob(*synthactors*,exclude=actor_attention_actor_*)",
        "debug=fast_dev_run",
        f"paths.data_dir={tmp_path}/data",
        f"hydra.sweep.dir={sweep}",
        *TINY,
        "dataset.videos_per_class_train=2",
        "dataset.root=${paths.data_dir}/synth",
        "linker.num_tubes=4",
        "trainer.enable_progress_bar=false",
    ]
    out = run_script("train.py", *args, timeout=1800)
    assert out.returncode == 0, out.stderr[-3000:]
    exps = sorted(
        p.stem
        for p in (CONF / "experiment").glob("*synthactors*.yaml")
        if not p.stem.startswith("actor_attention_actor_")
    )
    runs_ = sorted(p for p in sweep.iterdir() if p.is_dir() and p.name.isdigit())
    assert len(runs_) == len(exps) >= 3
    for r in runs_:
        assert not (r / "failed.json").exists(), (r / "failed.json").read_text()
        res = json.loads((r / "results.json").read_text())
        assert res["choices"]["debug"] == "fast_dev_run"
        assert 0 <= res["video_mAP"]["0.5"] <= 1 and res["num_videos"] == 7
    from wsal.report import sweep_report

    sweep_report(sweep, tmp_path / "report")
    assert "## Failed runs\n\nNone." in (tmp_path / "report" / "report.md").read_text()


@pytest.mark.slow
def test_multirun_sweep_over_real_dataset_experiments_on_stand_ins(tmp_path):
    """The other experiments, `-m 'experiment=glob(*,exclude=*synthactors*)' debug=fast_dev_run`,
    on stand-ins of UCF Sports, J-HMDB and UCF101-24 laid out as their configs expect (frame
    folders, ACT pickle, the dataset's own detections: tests/tiny.py), on the CPU with randomly
    initialised VGG16s on small frames. The actor linker's default tracker comes from
    data/trackers when this checkout has trained it (else it is trained here, minutes)."""
    from tests.tiny import fake_standard_dataset, tiny_synthactors

    data = tmp_path / "data"
    src = tiny_synthactors(tmp_path / "src")
    for name in ("ucfsports", "jhmdb", "ucf101_24"):
        fake_standard_dataset(name, data / name, src)
    for sub in ("synthactors", "trackers"):
        if (ROOT / "data" / sub).exists():
            (data / sub).symlink_to(ROOT / "data" / sub)
    sweep = tmp_path / "sweep"
    args = [
        "-m",
        "experiment=glob(*,exclude=*synthactors*)",
        "debug=fast_dev_run",
        "trainer=cpu",
        "detector=synthetic",  # the stand-ins' own detections.npz
        "weights.vgg16=null",
        f"paths.data_dir={data}",
        f"hydra.sweep.dir={sweep}",
        "data.frame_size=[48,64]",
        "data.num_frames=4",
        "data.batch_size=2",
        "data.num_tubes=4",
        "data.num_workers=0",
        "linker.num_tubes=4",
        "trainer.enable_progress_bar=false",
    ]
    out = run_script("train.py", *args, timeout=3000)
    assert out.returncode == 0, out.stderr[-3000:]
    exps = [p for p in (CONF / "experiment").glob("*.yaml") if "synthactors" not in p.stem]
    runs_ = sorted(p for p in sweep.iterdir() if p.is_dir() and p.name.isdigit())
    assert len(runs_) == len(exps) == 6
    seen = set()
    for r in runs_:
        assert not (r / "failed.json").exists(), (r / "failed.json").read_text()[-2000:]
        res = json.loads((r / "results.json").read_text())
        seen.add((res["dataset"], res["method"], res["linker"]))
        assert 0 <= res["video_mAP"]["0.5"] <= 1 and res["num_videos"] == 3
    assert {d for d, _, _ in seen} == {"ucfsports", "jhmdb", "ucf101_24"}
    assert {m for _, m, _ in seen} == {"actor_attention", "stil"}
