"""Checkpoints and resume: a run killed after some epochs and resumed from its last checkpoint
ends with exactly the model of an uninterrupted run (STIL's EM state included); run folders are
found by config key; corrupt checkpoints and failing sweep runs give clear records."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback

from tests.test_stil import planted_toy
from tests.tiny import TINY as TINY_BASE
from tests.tiny import TINY_ACTOR_ATTENTION, tiny_synthactors
from wsal import runs
from wsal.callbacks import EpochCheckpoint
from wsal.models.stil import STIL
from wsal.models.stil_data import STILDataModule, build_stil_data

ROOT = Path(__file__).resolve().parents[1]


class Killed(RuntimeError):
    pass


class KillAfter(Callback):
    """Raise as epoch ``epoch + 1`` starts (epoch ``epoch`` is done and checkpointed)."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        if trainer.current_epoch == self.epoch + 1:
            raise Killed(f"killed after epoch {self.epoch}")


def trainer(tmp: Path, max_epochs: int, *extra: Callback) -> pl.Trainer:
    ckpt = EpochCheckpoint(tmp)  # conf/callbacks/default.yaml's last.ckpt, for every method
    return pl.Trainer(
        max_epochs=max_epochs,
        accelerator="cpu",
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        callbacks=[ckpt, *extra],
    )


def stil_data():
    feats, priors, dets, tubes, labels, _ = planted_toy(num_videos=9, F=8)
    return build_stil_data(feats, priors, tubes, labels, 2, folds=3, dets=dets)


def test_stil_killed_and_resumed_equals_uninterrupted(tmp_path):
    data = stil_data()
    kw = dict(folds=3, em_epochs=4, loss="squared_hinge", penalty=0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        full = STIL(2, **kw)
        trainer(tmp_path / "full", 4).fit(full, datamodule=STILDataModule(data))
        killed = STIL(2, **kw)
        with pytest.raises(Killed):
            trainer(tmp_path / "run", 4, KillAfter(1)).fit(killed, datamodule=STILDataModule(data))
        ckpt = runs.check_checkpoint(tmp_path / "run" / "last.ckpt")
        saved = torch.load(ckpt, weights_only=True)
        assert saved["epoch"] == 1 and len(saved["stil_em"]["history"]) == 2
        resumed = STIL(2, **kw)  # a fresh process: nothing but the checkpoint
        t = trainer(tmp_path / "run", 4)
        t.fit(resumed, datamodule=STILDataModule(data), ckpt_path=str(ckpt))
    assert t.current_epoch == 4
    torch.testing.assert_close(resumed.models_weight, full.models_weight, rtol=0, atol=0)
    torch.testing.assert_close(resumed.models_bias, full.models_bias, rtol=0, atol=0)
    # the EM statistics go on as if never stopped (selection change needs the last selection)
    assert [h["selection_change"] for h in resumed.history][2:] == pytest.approx(
        [h["selection_change"] for h in full.history][2:], nan_ok=True
    )
    assert len(resumed.history) == 4


def test_actor_attention_killed_and_resumed_equals_uninterrupted(tmp_path):
    from tests.test_ddp import make_dm
    from wsal.models.actor_attention import ActorAttention

    ds = tiny_synthactors(tmp_path)
    synth = (ds, tmp_path / "cache")

    def model():
        pl.seed_everything(0)
        return ActorAttention(num_classes=3, encoder="small", k=2, lr=0.01, lr_step=1)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        full = model()
        trainer(tmp_path / "full", 3).fit(full, datamodule=make_dm(synth, 2))
        with pytest.raises(Killed):
            trainer(tmp_path / "run", 3, KillAfter(0)).fit(model(), datamodule=make_dm(synth, 2))
        pl.seed_everything(123)  # a new process has another global RNG state: must not matter
        resumed = ActorAttention(num_classes=3, encoder="small", k=2, lr=0.01, lr_step=1)
        ckpt = runs.check_checkpoint(tmp_path / "run" / "last.ckpt")
        trainer(tmp_path / "run", 3).fit(resumed, datamodule=make_dm(synth, 2), ckpt_path=str(ckpt))
    a, b = full.state_dict(), resumed.state_dict()
    for k in a:
        torch.testing.assert_close(b[k], a[k], rtol=0, atol=0, msg=k)


def test_run_key_ignores_where_and_how_but_not_what():
    base = {
        "seed": 0,
        "method": {"C": 0.1},
        "paths": {"output_dir": "outputs/a", "data_dir": "data"},
        "logger": {"csv": {"save_dir": "outputs/a"}},
        "callbacks": {"ckpt": {"dirpath": "outputs/a/checkpoints"}},
        "resume": "auto",
    }
    moved = json.loads(json.dumps(base))
    moved["paths"]["output_dir"] = "outputs/b"
    moved["logger"] = {}
    moved["callbacks"]["ckpt"]["dirpath"] = "outputs/b/checkpoints"
    moved["resume"] = "never"
    assert runs.run_key(base) == runs.run_key(moved)
    other = json.loads(json.dumps(base))
    other["method"]["C"] = 10
    assert runs.run_key(other) != runs.run_key(base)
    other = json.loads(json.dumps(base))
    other["paths"]["data_dir"] = "elsewhere"
    assert runs.run_key(other) != runs.run_key(base)


def _fake_run(d: Path, key: str, status: str, ckpt: bytes | None, mtime: float) -> Path:
    runs.write_run(d, key=key, status=status)
    if ckpt is not None:
        p = d / "checkpoints" / "last.ckpt"
        p.parent.mkdir(parents=True)
        p.write_bytes(ckpt)
        os.utime(p, (mtime, mtime))
    return d


def test_find_resumable_newest_unfinished_with_checkpoint(tmp_path):
    root = tmp_path / "outputs" / "train"
    _fake_run(root / "a", "k1", "running", b"x", 100)  # older
    newest = _fake_run(root / "b", "k1", "failed", b"x", 200)
    _fake_run(root / "c", "k1", "done", b"x", 300)  # finished: never resumed
    _fake_run(root / "d", "k2", "running", b"x", 400)  # another config
    _fake_run(root / "e", "k1", "running", None, 500)  # killed before any checkpoint
    sweep = tmp_path / "multirun" / "train" / "2026-01-01" / "3"
    assert runs.find_resumable([root], "k1") == newest
    _fake_run(sweep, "k1", "running", b"x", 250)
    assert runs.find_resumable([root, tmp_path / "multirun" / "train"], "k1") == sweep
    assert runs.find_resumable([root], "nope") is None
    assert runs.find_resumable([tmp_path / "missing"], "k1") is None


def test_corrupt_checkpoint_is_a_clear_error_never_a_fresh_start(tmp_path):
    d = _fake_run(tmp_path / "outputs" / "r", "k", "running", b"not a checkpoint", 1)
    with pytest.raises(runs.CorruptCheckpointError, match="last.ckpt cannot be read.*resume=never"):
        runs.resolve_resume("auto", "k", [tmp_path / "outputs"])
    assert runs.resolve_resume("never", "k", [tmp_path / "outputs"]) == (None, None)
    torch.save({"weights": torch.zeros(2)}, d / "checkpoints" / "last.ckpt")
    with pytest.raises(runs.CorruptCheckpointError, match="state_dict"):
        runs.resolve_resume("auto", "k", [tmp_path / "outputs"])
    with pytest.raises(runs.CorruptCheckpointError, match="does not exist"):
        runs.resolve_resume(str(tmp_path / "nope.ckpt"), "k", [])


def test_record_failure(tmp_path):
    try:
        raise ValueError("bad option")
    except ValueError as e:
        p = runs.record_failure(tmp_path, e, ["method=x"], {"method": "x"})
    rec = json.loads(p.read_text())
    assert rec["error"] == "ValueError: bad option" and "Traceback" in rec["traceback"]
    assert rec["overrides"] == ["method=x"] and runs.read_run(tmp_path)["status"] == "failed"


TINY = [*TINY_BASE, "dataset.videos_per_class_train=2"]


def _train(args, **kw):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "train.py", *args], cwd=ROOT, env=env, text=True, **kw)


def test_sweep_with_a_failing_run_keeps_the_others(tmp_path):
    """A sweep run that raises writes failed.json; the others finish; the report lists it."""
    sweep = tmp_path / "sweep"
    p = _train(
        [
            "-m",
            f"paths.data_dir={tmp_path}/data",
            f"hydra.sweep.dir={sweep}",
            *TINY,
            "evaluation.protocol=act,nope",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    out, _ = p.communicate(timeout=600)
    assert p.returncode == 0, out[-3000:]
    assert (sweep / "0" / "results.json").exists()
    assert runs.read_run(sweep / "0")["status"] == "done"
    failed = json.loads((sweep / "1" / "failed.json").read_text())
    assert "nope" in failed["error"] and "evaluation.protocol=nope" in failed["overrides"]
    from wsal.report import sweep_report

    rep = sweep_report(sweep, tmp_path / "report")
    text = (tmp_path / "report" / "report.md").read_text()
    assert "Failed runs" in text and "evaluation.protocol=nope" in text
    assert rep is not None


def test_train_py_killed_with_sigkill_then_rerun_resumes(tmp_path):
    """The real thing: SIGKILL a training process once its first checkpoint exists, rerun the
    same command, and get the results of an uninterrupted run (actor attention, 5 epochs)."""
    common = [
        f"paths.data_dir={tmp_path}/data",
        *TINY,
        *TINY_ACTOR_ATTENTION,
        f"dataset.root={tmp_path}/data/synth",
        "trainer.max_epochs=5",
    ]
    ref = _train([*common, f"hydra.run.dir={tmp_path}/ref", "resume=never"])
    assert ref.wait(timeout=600) == 0
    first = tmp_path / "runs" / "first"
    p = _train([*common, f"hydra.run.dir={first}"], start_new_session=True)
    ckpt = first / "checkpoints" / "last.ckpt"
    deadline = time.time() + 600
    while not ckpt.exists() and p.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert p.poll() is None, "the run ended before it could be killed"
    os.killpg(p.pid, signal.SIGKILL)
    p.wait()
    assert not (first / "results.json").exists()
    assert runs.read_run(first)["status"] == "running"
    second = tmp_path / "runs" / "second"
    q = _train([*common, f"hydra.run.dir={second}"])
    assert q.wait(timeout=600) == 0
    rec = runs.read_run(second)
    assert rec["resumed_from"] == str(first) and rec["status"] == "done"
    assert runs.read_run(first)["status"] == "killed"  # recorded by the rerun
    assert not list((first / "checkpoints").glob(".last.ckpt.tmp*"))
    a = json.loads((tmp_path / "ref" / "results.json").read_text())
    b = json.loads((second / "results.json").read_text())
    assert b["video_mAP"] == a["video_mAP"] and b["AP"] == a["AP"]
    assert b["epochs"] == a["epochs"] == 5
