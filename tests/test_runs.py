"""``wsal.runs.load_run``: the one loader of a saved run folder (config with the run's paths,
overrides, choices, results, failure, run.json, detections file, checkpoint choice) and its
errors, which name the folder or file at fault."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml
from omegaconf import DictConfig

from wsal import runs


def make_run(run: Path, cwd: Path, **config) -> Path:
    """A train.py-like run folder: ``.hydra/`` with a relative dataset root and two choices."""
    (run / ".hydra").mkdir(parents=True)
    cfg = {
        "seed": 3,
        "paths": {"data_dir": "data", "output_dir": "${hydra:runtime.output_dir}"},
        "dataset": {"_target_": "x.Dataset", "root": "ds", "split": "${seed}"},
        **config,
    }
    (run / ".hydra" / "config.yaml").write_text(yaml.safe_dump(cfg))
    (run / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(["seed=3", "+x.y=1"]))
    choices = {"method": "stil", "linker": "viterbi", "hydra/launcher": "basic"}
    hydra = {"hydra": {"runtime": {"cwd": str(cwd), "choices": choices}}}
    (run / ".hydra" / "hydra.yaml").write_text(yaml.safe_dump(hydra))
    return run


def test_load_run_reads_every_piece(tmp_path):
    cwd = tmp_path / "project"
    (cwd / "ds").mkdir(parents=True)  # the dataset root exists under the run's cwd, not here
    run = make_run(tmp_path / "run", cwd)
    saved = runs.load_run(run)
    assert saved.path == run and isinstance(saved.config, DictConfig)
    assert saved.config.paths.output_dir == str(run)  # was ${hydra:...}: the run folder now
    assert saved.config.dataset.root == str(cwd / "ds")  # relative to the run's cwd
    assert saved.config.dataset.split == 3  # interpolations still resolve
    assert saved.overrides == ["seed=3", "+x.y=1"]
    assert saved.choices == {"method": "stil", "linker": "viterbi"}  # hydra/* dropped
    assert (saved.status, saved.error) == ("incomplete", None)
    assert saved.results is saved.failure is saved.record is None
    assert saved.detections_path == run / "detections.npz"
    # overrides (as typed) before the config; unresolved config values; None when unset
    assert saved.value("seed") == "3" and saved.value("x.y") == "1"
    assert saved.value("dataset.split") == "${seed}" and saved.value("no.such") is None
    assert runs.read_config(run).dataset.root == str(cwd / "ds")

    runs.write_run(run, key="k", status="done")
    res = {"video_mAP": {"0.5": 0.25}, "choices": {"method": "mil", "hydra/x": "y"}}
    (run / "results.json").write_text(json.dumps(res))
    saved = runs.load_run(run)
    assert saved.status == "ok" and saved.results["video_mAP"] == {"0.5": 0.25}
    assert saved.choices == {"method": "mil"} and saved.record == {"key": "k", "status": "done"}
    assert runs.read_results(run) == saved.results


def test_a_later_failure_wins_and_keeps_the_results(tmp_path):
    run = make_run(tmp_path / "run", tmp_path)
    (run / "results.json").write_text(json.dumps({"video_mAP": {}}))
    fail = {"error": "RuntimeError: boom\nmore", "overrides": ["seed=9"], "choices": {"a": "b"}}
    (run / "failed.json").write_text(json.dumps(fail))
    t = os.stat(run / "results.json").st_mtime
    os.utime(run / "failed.json", (t + 10, t + 10))
    saved = runs.load_run(run)
    assert (saved.status, saved.error) == ("failed", "RuntimeError: boom")
    assert saved.failure == fail and saved.results == {"video_mAP": {}}
    assert saved.overrides == ["seed=9"] and saved.choices == {"a": "b"}
    (run / "failed.json").write_text("[1, 2]")
    os.utime(run / "failed.json", (t + 20, t + 20))
    saved = runs.load_run(run)
    assert (saved.status, saved.error) == ("failed", "failed.json: expected a JSON object")


def test_checkpoint_choice(tmp_path):
    run = make_run(tmp_path / "run", tmp_path)
    saved = runs.load_run(run)
    assert saved.checkpoint() is None and saved.checkpoint(None) is None  # nothing trained
    ckpts = run / "checkpoints"
    ckpts.mkdir()
    (ckpts / "last.ckpt").write_bytes(b"x")
    assert saved.checkpoint("auto") == ckpts / "last.ckpt"
    (ckpts / "best.ckpt").write_bytes(b"x")
    assert saved.checkpoint() == ckpts / "best.ckpt"  # best before last
    assert saved.checkpoint(ckpts / "last.ckpt") == ckpts / "last.ckpt"
    assert saved.checkpoint("null") is None and saved.checkpoint("none") is None
    with pytest.raises(FileNotFoundError, match="checkpoint .*nope.ckpt not found"):
        saved.checkpoint(str(tmp_path / "nope.ckpt"))


def test_errors_name_the_folder_or_file(tmp_path):
    bare = tmp_path / "bare"
    bare.mkdir()
    with pytest.raises(FileNotFoundError, match=r"bare: not a run folder \(no .hydra/config"):
        runs.load_run(bare)
    with pytest.raises(FileNotFoundError, match="not a run folder"):
        runs.read_config(bare)
    assert runs.read_results(bare) is None
    (bare / "results.json").write_text("{not json")
    with pytest.raises(ValueError, match=r"bare/results.json: unreadable"):
        runs.read_results(bare)

    run = make_run(tmp_path / "run", tmp_path)
    (run / ".hydra" / "hydra.yaml").write_text("hydra: [unclosed")
    with pytest.raises(ValueError, match=r"run/.hydra/hydra.yaml: not valid YAML"):
        runs.load_run(run)
    (run / ".hydra" / "hydra.yaml").unlink()
    (run / ".hydra" / "config.yaml").write_text("- a list\n- not a mapping\n")
    with pytest.raises(ValueError, match=r"run/.hydra/config.yaml: expected a mapping"):
        runs.load_run(run)
    (run / ".hydra" / "config.yaml").write_text("a: {b: [")
    with pytest.raises(ValueError, match=r"run/.hydra/config.yaml: not valid YAML"):
        runs.load_run(run)


def test_find_runs_natural_order_and_no_descent_into_runs(tmp_path):
    for name in ("10", "2", "2/eval/x"):  # an eval.py folder inside run 2 is not a sweep run
        make_run(tmp_path / "sweep" / name, tmp_path)
    assert runs.find_runs(tmp_path / "sweep") == [tmp_path / "sweep" / n for n in ("2", "10")]
    assert sorted(["b10", "b2", "a"], key=runs.natural_key) == ["a", "b2", "b10"]
    with pytest.raises(FileNotFoundError, match="no such folder"):
        runs.find_runs(tmp_path / "nope")
