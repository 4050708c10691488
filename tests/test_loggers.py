"""Loggers: W&B offline unless an API key is configured (no network, no hang); a short training
with ``logger=many`` leaves W&B's offline run (metrics, config, tags, media), TensorBoard events
(scalars, images) and the CSV metrics in the run folder."""

from __future__ import annotations

import os

import pytest

from tests.tiny import TINY, TINY_ACTOR_ATTENTION, run_script
from wsal.loggers import results_rows, wandb_api_key_configured, wandb_mode


@pytest.fixture
def no_wandb_env(monkeypatch, tmp_path):
    for k in ("WANDB_API_KEY", "WANDB_MODE"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "netrc"))
    return tmp_path / "netrc"


def test_wandb_mode_offline_without_key_online_with_one(no_wandb_env, monkeypatch):
    assert not wandb_api_key_configured() and wandb_mode("auto") == "offline"
    no_wandb_env.write_text("machine api.wandb.ai\n  login user\n  password abc\n")
    assert wandb_api_key_configured() and wandb_mode("auto") == "online"
    no_wandb_env.write_text("machine example.com login u password p\n")
    assert wandb_mode("auto") == "offline"
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    assert wandb_mode("auto") == "online"
    monkeypatch.setenv("WANDB_MODE", "disabled")  # the user's explicit choice wins
    assert wandb_mode("auto") == "disabled"
    assert wandb_mode("offline") == "offline"
    with pytest.raises(ValueError, match="auto"):
        wandb_mode("sometimes")


def test_results_rows_state_the_protocol():
    res = {
        "video_mAP": {"0.2": 0.5, "0.5": 0.25},
        "mAP@0.5:0.95": 0.1,
        "AUC@0.1:0.6": 0.3,
        "proposal_recall": {"0.5": [0.1, 0.9]},
        "video_accuracy": 0.75,
        "protocol": "act",
        "nms": 0.3,
        "split": "test",
    }
    cols, rows = results_rows(res)
    assert "protocol=act" in cols[1]
    assert rows == [
        ["video-mAP@0.2", 0.5],
        ["video-mAP@0.5", 0.25],
        ["video-mAP@0.5:0.95", 0.1],
        ["AUC@0.1:0.6", 0.3],
        ["proposal_recall@0.5", 0.9],
        ["video_accuracy", 0.75],
    ]


def test_short_training_logs_offline_wandb_tensorboard_csv(tmp_path):
    run = tmp_path / "run"
    env = {k: v for k, v in os.environ.items() if k not in ("WANDB_API_KEY", "WANDB_MODE")}
    env.update(NETRC=str(tmp_path / "netrc"), OMP_NUM_THREADS="1", WANDB_SILENT="true")
    args = [
        f"paths.data_dir={tmp_path}/data",
        f"hydra.run.dir={run}",
        *TINY,
        *TINY_ACTOR_ATTENTION,
        f"dataset.root={tmp_path}/data/synth",
        "trainer.max_epochs=1",
        "trainer.log_every_n_steps=1",
        "logger=many",
    ]
    out = run_script("train.py", *args, env=env, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    # W&B: an offline run in the run folder (no key configured), with media files ...
    (wb,) = (run / "wandb").glob("offline-run-*")
    media = wb / "files" / "media"
    for name in ("tubes", "pr_curves", "proposal_recall"):
        (png,) = (media / "images" / "test").glob(f"{name}_*.png")
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert list((media / "table" / "test").glob("results_*.table.json"))
    # ... and the metrics, config and tags in its record log (protobuf strings are stored as is)
    blob = next(wb.glob("run-*.wandb")).read_bytes()
    for s in (
        b"train/loss",
        b"test/video_mAP@0.5",
        b"val/video_acc",
        b"method:actor_attention",
        b"linker:temporal_prim",
        b"encoder",  # a key of the resolved config logged as hyperparameters
        b'"efficientnet_lite0"',  # the demo's encoder
    ):
        assert s in blob, s
    assert "wandb_id" in (run / "run.json").read_text()
    # TensorBoard: scalars and the test pictures
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run / "tensorboard"), size_guidance={"images": 0})
    acc.Reload()
    tags = acc.Tags()
    assert "train/loss" in tags["scalars"] and "test/video_mAP@0.5" in tags["scalars"]
    assert {"test/tubes", "test/pr_curves", "test/proposal_recall"} <= set(tags["images"])
    # CSV
    metrics = (run / "csv" / "version_0" / "metrics.csv").read_text()
    assert "train/loss" in metrics and "test/video_mAP@0.5" in metrics
