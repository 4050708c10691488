"""``python -m wsal.report SWEEP_DIR``: run folders found recursively, replicates (seed, split)
averaged to mean ± sample std, failed / incomplete runs listed, CSV columns, plots.

Every number below is written into fake run folders and its mean / std computed by hand.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from wsal.data.annotations import DatasetIndex, VideoInfo, write_wsal_json
from wsal.report import main, sweep_report
from wsal.runs import find_runs, load_run, parse_overrides

CURVE_TAUS = ("0.1", "0.2", "0.3", "0.4", "0.5", "0.6", "0.75")


def make_run(
    run: Path,
    overrides: list[str],
    choices: dict[str, str],
    *,
    maps: tuple[float, float, float] | None = None,
    m5095: float = 0.0,
    auc: float = 0.0,
    split: str = "test",
    dataset: str = "synthactors",
    supervision: dict | None = None,
    extra: dict | None = None,
    failed: str | None = None,
    cwd: Path | None = None,
    config: dict | None = None,
) -> Path:
    """A train.py-like run folder. ``maps``: mAP@0.2/0.5/0.75 -> results.json; ``failed``: the
    error line -> failed.json; neither: only .hydra (killed or still running)."""
    over = parse_overrides(overrides)
    (run / ".hydra").mkdir(parents=True)
    cfg = {
        "seed": int(over.get("seed", 0)),
        "dataset": {"_target_": "wsal.data.datasets.SynthActors", "root": "ds"},
        "supervision": supervision
        or {"_target_": "wsal.supervision.SupervisionSpec", "level": "labels", "stride": 1},
        "evaluation": {"split": split, "protocol": "act", "nms": 0.3},
        **(config or {}),
    }
    (run / ".hydra" / "config.yaml").write_text(yaml.safe_dump(cfg))
    (run / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    runtime = {"cwd": str(cwd or run), "choices": {**choices, "hydra/launcher": "basic"}}
    (run / ".hydra" / "hydra.yaml").write_text(yaml.safe_dump({"hydra": {"runtime": runtime}}))
    if maps is not None:
        res = {
            "protocol": "act",
            "nms": 0.3,
            "split": split,
            "dataset": dataset,
            "video_mAP": dict(zip(("0.2", "0.5", "0.75"), maps)),
            "mAP@0.5:0.95": m5095,
            "AUC@0.1:0.6": auc,
            # a curve whose mean over the replicates is known: value = mAP@0.5 * (1 - tau)
            "mAP_curve": {t: maps[1] * (1 - float(t)) for t in CURVE_TAUS},
            "method": choices["method"],
            "linker": choices["linker"],
            "detector": "synthetic",
            "supervision": choices.get("supervision", "labels"),
            "reranking": "none",
            "choices": choices,
            **(extra or {}),
        }
        (run / "results.json").write_text(json.dumps(res))
    if failed is not None:
        (run / "failed.json").write_text(
            json.dumps(
                {
                    "error": failed,
                    "traceback": "Traceback (most recent call last):\n  ...\n" + failed,
                    "overrides": overrides,
                    "choices": choices,
                }
            )
        )
    return run


def stil(linker: str, **kw: str) -> dict[str, str]:
    return {"method": "stil", "linker": linker, "dataset": "synthetic", **kw}


@pytest.fixture
def sweep(tmp_path) -> Path:
    """Two sweeps under one parent: (a) temporal_prim, seeds 0 and 1; (b) viterbi over three
    splits (J-HMDB style), one failed run (actor) and one run killed before writing anything."""
    root = tmp_path / "multirun"
    a, b = root / "day1" / "10-00", root / "day1" / "11-00"
    for seed, maps, m, auc in [
        (0, (0.30, 0.10, 0.01), 0.05, 0.2),
        (1, (0.40, 0.20, 0.03), 0.07, 0.3),
    ]:
        make_run(
            a / str(seed),
            ["linker=temporal_prim", f"seed={seed}"],
            stil("temporal_prim"),
            maps=maps,
            m5095=m,
            auc=auc,
        )
    for i, (split, m05) in enumerate([("test", 0.3), ("test2", 0.4), ("test3", 0.8)]):
        make_run(
            b / str(i),
            ["linker=viterbi", f"evaluation.split={split}"],
            stil("viterbi"),
            maps=(0.9, m05, 0.0),
            m5095=0.1 * (i + 1),
            auc=0.5,
            split=split,
        )
    make_run(
        b / "3",
        ["linker=actor", "seed=0"],
        stil("actor"),
        failed="RuntimeError: boom | CUDA out of memory",
    )
    make_run(b / "4", ["linker=viterbi", "seed=7"], stil("viterbi"))  # killed
    return root


def test_find_and_read_runs(sweep):
    runs = find_runs(sweep)
    names = [str(p.relative_to(sweep)) for p in runs]
    assert names == [
        "day1/10-00/0",
        "day1/10-00/1",
        "day1/11-00/0",
        "day1/11-00/1",
        "day1/11-00/2",
        "day1/11-00/3",
        "day1/11-00/4",
    ]
    recs = {n: load_run(p) for n, p in zip(names, runs)}
    assert [r.status for r in recs.values()] == ["ok"] * 5 + ["failed", "incomplete"]
    failed = recs["day1/11-00/3"]
    assert failed.error == "RuntimeError: boom | CUDA out of memory"
    assert failed.overrides == ["linker=actor", "seed=0"] and failed.choices["linker"] == "actor"
    killed = recs["day1/11-00/4"]  # choices from .hydra/hydra.yaml, hydra/* groups dropped
    assert killed.choices == {"method": "stil", "linker": "viterbi", "dataset": "synthetic"}
    assert killed.value("seed") == "7" and recs["day1/10-00/1"].value("seed") == "1"
    assert parse_overrides(["+a.b=1", "~c", "d=x=y"]) == {"a.b": "1", "c": "", "d": "x=y"}
    with pytest.raises(FileNotFoundError, match="no such folder"):
        find_runs(sweep / "nope")


def test_sweep_table_means_failed_section_and_files(sweep, capsys):
    assert main([str(sweep)]) == 0
    out = sweep / "report"
    printed = capsys.readouterr().out
    md = (out / "report.md").read_text()
    assert printed.startswith(md)
    assert "7 runs: 5 finished, 1 failed, 1 incomplete." in md
    head = "| method | linker | n | mAP@0.2 | mAP@0.5 | mAP@0.75 | mAP@0.5:0.95 | AUC@0.1:0.6 |"
    assert head in md
    # seeds 0, 1: means (0.30+0.40)/2 ...; sample std |a-b|/sqrt(2): 0.0707, 0.0707, 0.0141 ...
    assert (
        "| stil | temporal_prim | 2 | 0.3500 ± 0.0707 | 0.1500 ± 0.0707 | 0.0200 ± 0.0141 | "
        "0.0600 ± 0.0141 | 0.2500 ± 0.0707 |" in md
    )
    # splits test/test2/test3: mAP@0.5 mean 0.5, std sqrt((0.04+0.01+0.09)/2) = 0.2646;
    # mAP@0.5:0.95 0.1/0.2/0.3: mean 0.2, std 0.1
    assert (
        "| stil | viterbi | 3 | 0.9000 ± 0.0000 | 0.5000 ± 0.2646 | 0.0000 ± 0.0000 | "
        "0.2000 ± 0.1000 | 0.5000 ± 0.0000 |" in md
    )
    assert "protocol=act" in md and "tube NMS at st-IoU 0.3" in md
    assert "splits test, test2, test3" in md and "seeds 0, 1" in md
    failed_part = md.split("## Failed runs")[1]
    assert (
        "| `day1/11-00/3` | failed | `linker=actor seed=0` | "
        "RuntimeError: boom \\| CUDA out of memory |" in failed_part
    )
    assert (
        "| `day1/11-00/4` | incomplete | `linker=viterbi seed=7` | "
        "incomplete (killed or still running) |" in failed_part
    )
    assert "| actor |" not in md.split("## Failed runs")[0]  # no row for the failed setting

    with open(out / "report.csv") as fh:
        rows = list(csv.DictReader(fh))
    metrics = ["mAP@0.2", "mAP@0.5", "mAP@0.75", "mAP@0.5:0.95", "AUC@0.1:0.6"]
    assert list(rows[0]) == [
        "method",
        "linker",
        "dataset",
        "n",
        "seeds",
        "splits",
        *[f"{m}_{s}" for m in metrics for s in ("mean", "std")],
        "runs",
    ]
    prim, vit = rows
    assert (prim["linker"], prim["n"], prim["seeds"], prim["splits"]) == (
        "temporal_prim",
        "2",
        "0;1",
        "test",
    )
    assert float(prim["mAP@0.5_mean"]) == pytest.approx(0.15)
    assert float(prim["mAP@0.5_std"]) == pytest.approx(0.1 / np.sqrt(2), rel=1e-5)
    assert (vit["n"], vit["splits"]) == ("3", "test;test2;test3")
    assert float(vit["mAP@0.5_std"]) == pytest.approx(np.sqrt(0.07), rel=1e-5)
    assert len(vit["runs"].split(";")) == 3
    img = cv2.imread(str(out / "map_vs_iou.png"))
    assert img is not None and img.ndim == 3 and img.std() > 0
    assert not (out / "map_vs_cost.png").exists()  # supervision does not vary
    assert sorted(p.name for p in out.iterdir()) == ["map_vs_iou.png", "report.csv", "report.md"]


def test_report_of_one_run_folder_and_explicit_out(sweep, tmp_path):
    run = sweep / "day1" / "10-00" / "1"
    res = sweep_report(run, tmp_path / "r1")
    assert [r.path for r in res["runs"]] == [run]
    md = (tmp_path / "r1" / "report.md").read_text()
    # one run: n = 1, plain values; no other axis varies, so only the method column
    assert "| method | n | mAP@0.2 |" in md
    assert "| stil | 1 | 0.4000 | 0.2000 | 0.0300 | 0.0700 | 0.3000 |" in md
    assert md.split("## Failed runs")[1].strip() == "None."
    assert res["table"].rows[0]["curve"]["0.5"] == pytest.approx(0.1)  # 0.2 * (1 - 0.5)


def test_mean_curve_and_plain_sweep_subcommand(sweep, tmp_path):
    assert main(["sweep", str(sweep / "day1" / "10-00"), "--out", str(tmp_path / "r")]) == 0
    res = sweep_report(sweep / "day1" / "10-00", tmp_path / "r")
    (row,) = res["table"].rows
    # curve = mAP@0.5 * (1 - tau), averaged over seeds: 0.15 * (1 - tau)
    for t in CURVE_TAUS:
        assert row["curve"][t] == pytest.approx(0.15 * (1 - float(t)))


def test_supervision_sweep_costs_and_datasets(tmp_path):
    """Costs: results.json's annotation_cost_s when recorded (STIL), 5 s for labels, else the cost
    model over the run's training videos (F = 10, 30: points = 5 + 1.5 * 20 = 35 s)."""
    ds = tmp_path / "ds"
    index = DatasetIndex(
        labels=["wave"],
        splits={"train": ["t0", "t1"], "test": ["e0"]},
        videos={
            "t0": VideoInfo(10, [0], [], 64, 48, 10.0, "t0.mp4"),
            "t1": VideoInfo(30, [0], [], 64, 48, 10.0, "t1.mp4"),
            "e0": VideoInfo(20, [0], [], 64, 48, 10.0, "e0.mp4"),
        },
    )
    write_wsal_json(index, ds / "annotations.json")
    root = tmp_path / "sup"
    spec = {"_target_": "wsal.supervision.SupervisionSpec"}
    for i, (level, cost, m05) in enumerate(
        [("labels", None, 0.1), ("points", None, 0.3), ("boxes", 865.27, 0.5)]
    ):
        make_run(
            root / str(i),
            [f"supervision={level}"],
            stil("temporal_prim", supervision=level),
            maps=(0.5, m05, 0.0),
            supervision={**spec, "level": level},
            extra={} if cost is None else {"annotation_cost_s": cost},
            cwd=tmp_path,  # the config's relative dataset root "ds" is under it
        )
    # the same method on a second dataset, labels only
    make_run(
        root / "3",
        ["supervision=labels", "dataset=custom"],
        stil("temporal_prim", supervision="labels"),
        maps=(0.6, 0.2, 0.0),
        dataset="ucfsports",
    )
    res = sweep_report(root)
    md = (root / "report" / "report.md").read_text()
    assert "| method | supervision | synthactors n | synthactors cost (s) |" in md
    assert "| ucfsports n | ucfsports cost (s) | ucfsports mAP@0.2 |" in md
    assert "| stil | labels | 1 | 5.00 | 0.5000 | 0.1000 |" in md
    assert "| 1 | 5.00 | 0.6000 | 0.2000 |" in md  # ucfsports cells of the labels row
    assert "| stil | points | 1 | 35.00 | 0.5000 | 0.3000 |" in md
    assert "| stil | boxes | 1 | 865.27 |" in md and "| 0 | – | – |" in md  # no ucfsports run
    costs = {r["params"]["supervision"]: r["cost_s"] for r in res["table"].rows}
    assert costs == {"labels": 5.0, "points": 35.0, "boxes": 865.27}
    assert "map_vs_cost.png" in res["files"]
    for name in ("map_vs_cost.png", "map_vs_iou.png"):
        assert (root / "report" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_failed_json_newer_than_results_wins_and_empty_sweeps(tmp_path):
    run = make_run(tmp_path / "s" / "0", ["seed=0"], stil("viterbi"), maps=(0.1, 0.1, 0.1))
    assert load_run(run).status == "ok"
    (run / "failed.json").write_text(json.dumps({"error": "ValueError: late failure"}))
    t = os.stat(run / "results.json").st_mtime
    os.utime(run / "failed.json", (t + 10, t + 10))
    rec = load_run(run)
    assert (rec.status, rec.error, rec.overrides) == (
        "failed",
        "ValueError: late failure",
        ["seed=0"],
    )
    (run / "results.json").write_text("{not json")
    os.utime(run / "results.json", (t + 20, t + 20))
    rec = load_run(run)
    assert rec.status == "failed" and rec.error.startswith("results.json: unreadable")
    res = sweep_report(tmp_path / "s")
    md = (tmp_path / "s" / "report" / "report.md").read_text()
    assert "No run finished: no table." in md and [r.path for r in res["failed"]] == [run]
    assert "`seed=0` | results.json: unreadable" in md
    with pytest.raises(FileNotFoundError, match="no run folder"):
        sweep_report(tmp_path / "s" / "report")


def test_unset_keys_take_the_run_config_and_cosmetic_keys_are_ignored(tmp_path):
    """A key one run overrides is a row parameter; the other runs show their config's value
    (and group with runs that set the same value); task_name never splits rows."""
    root = tmp_path / "s"
    for i, (over, m05) in enumerate(
        [(["linker.num_tubes=5"], 0.1), ([], 0.2), (["task_name=x"], 0.4)]
    ):
        make_run(
            root / str(i),
            over,
            stil("temporal_prim"),
            maps=(0.5, m05, 0.0),
            config={"linker": {"num_tubes": 10 if i else 5}},
        )
    table = sweep_report(root)["table"]
    assert table.dims == ["method", "linker.num_tubes"]
    got = {r["params"]["linker.num_tubes"]: (r["n"], r["mean"]["mAP@0.5"]) for r in table.rows}
    assert got == {"5": (1, pytest.approx(0.1)), "10": (2, pytest.approx(0.3))}


def test_dataset_splits_are_averaged_and_named(tmp_path):
    """J-HMDB: one run per dataset.split (each exposed as train/test): one row, n = 3, splits
    named ``dataset split/evaluation split``; a cosmetic dataset override splits no column."""
    root = tmp_path / "jhmdb"
    for i, m05 in enumerate([0.6, 0.7, 0.9]):
        make_run(
            root / str(i),
            [f"dataset.split={i + 1}", "dataset.progress=false"],
            stil("viterbi", dataset="jhmdb"),
            maps=(0.9, m05, 0.1),
            dataset="jhmdb" if i == 0 else f"jhmdb{i + 1}",  # as StandardDataset names split i
        )
    res = sweep_report(root)
    (row,) = res["table"].rows
    assert (row["dataset"], row["n"], row["splits"]) == ("jhmdb", 3, ["1/test", "2/test", "3/test"])
    # mean 0.7333, sample std sqrt(((0.6-m)^2 + (0.7-m)^2 + (0.9-m)^2) / 2) = 0.1528
    assert row["mean"]["mAP@0.5"] == pytest.approx(2.2 / 3)
    assert row["std"]["mAP@0.5"] == pytest.approx(np.std([0.6, 0.7, 0.9], ddof=1))
    md = (root / "report" / "report.md").read_text()
    assert "| stil | 3 | 0.9000 ± 0.0000 | 0.7333 ± 0.1528 | 0.1000 ± 0.0000 |" in md
    assert "splits 1/test, 2/test, 3/test" in md


def test_dataset_seeds_in_their_own_folders_are_replicates(tmp_path):
    """`make results-trimmed`: dataset.seed=0,1,2 with dataset.root=<folder per seed>: one row
    per method, n = 3, mean ± std over the dataset seeds, seeds named dataset seed/seed."""
    root = tmp_path / "sweep"
    for i, m05 in enumerate([0.6, 0.7, 0.9]):
        make_run(
            root / str(i),
            [f"dataset.seed={i}", "dataset.root=${paths.data_dir}/synth_s${dataset.seed}"],
            {"method": "actor_attention", "linker": "temporal_prim", "dataset": "synthetic"},
            maps=(0.9, m05, 0.1),
            config={"dataset": {"_target_": "x", "seed": i, "root": f"synth_s{i}"}},
        )
    res = sweep_report(root)
    (row,) = res["table"].rows
    assert (row["dataset"], row["n"], row["seeds"]) == ("synthactors", 3, ["0/0", "1/0", "2/0"])
    assert row["mean"]["mAP@0.5"] == pytest.approx(2.2 / 3)
    assert row["std"]["mAP@0.5"] == pytest.approx(np.std([0.6, 0.7, 0.9], ddof=1))
