"""The STIL study report: tables, orderings and plots from a folder of results.json files."""

from __future__ import annotations

import json

import numpy as np
import pytest

from wsal.report import _map, collect, collect_replicates, main, stil_study


def _write(root, point, map05, cost=5.0, map02=None):
    d = root / point
    d.mkdir(parents=True)
    res = {
        "study": {"point": point, "part": "x"},
        "protocol": "act",
        "nms": 0.3,
        "split": "test",
        "dataset": "synthactors",
        "video_mAP": {"0.2": map02 if map02 is not None else map05 + 0.1, "0.5": map05},
        "annotation_cost_s": cost,
    }
    (d / "results.json").write_text(json.dumps(res))


def test_stil_study_tables_and_orderings(tmp_path):
    runs = tmp_path / "multirun"
    for p, m in [
        ("table1_mil", 0.1),
        ("table1_gmil5", 0.12),
        ("table1_gmil10", 0.15),
        ("table1_gmil40", 0.14),
        ("table1_stil_noprim", 0.2),
        ("stil", 0.3),
        ("fig5_context", 0.31),
        ("fig5_negative", 0.29),
        ("fig5_both", 0.35),
        ("fig6_boxes", 0.5),
    ]:
        _write(runs, p, m, cost=865.27 if p == "fig6_boxes" else 5.0)
    (runs / "not_a_study").mkdir()
    (runs / "not_a_study" / "results.json").write_text(json.dumps({"video_mAP": {}}))
    assert len(collect(runs)) == 10
    res = stil_study(runs, tmp_path / "out")
    assert res["table1"]["STIL"]["mAP@0.5"] == pytest.approx(0.3)
    assert res["table1"]["MIL"]["mAP@0.2"] == pytest.approx(0.2)
    assert res["fig5"]["both"] == pytest.approx(0.35)
    assert res["fig6"]["boxes"] == {"cost_s": 865.27, "mAP@0.5": 0.5}
    assert res["checks"]["Table 1: MIL < GMIL(10) < STIL w/o Prim < STIL"] == "holds"
    assert res["checks"]["Figure 5: none < both"] == "holds"
    assert res["checks"]["Figure 6: labels < boxes"] == "holds"
    md = (tmp_path / "out" / "stil_study.md").read_text()
    assert "| GMIL µ=10 | 0.2500 | 0.1500 |" in md and "| mixture | nan | – | – |" in md
    assert "| both | 0.4500 | 0.3500 |" in md and "| boxes | 865.27 | 0.6000 | 0.5000 |" in md
    for png in ("fig5_reranking.png", "fig6_supervision.png"):
        assert (tmp_path / "out" / png).read_bytes()[:4] == b"\x89PNG"


def test_orderings_that_fail_are_reported(tmp_path):
    runs = tmp_path / "m"
    _write(runs, "table1_mil", 0.4)
    _write(runs, "table1_gmil10", 0.3)
    _write(runs, "table1_stil_noprim", 0.2)
    _write(runs, "stil", 0.1)
    res = stil_study(runs)
    assert res["checks"]["Table 1: MIL < GMIL(10) < STIL w/o Prim < STIL"] == "does not hold"
    assert res["checks"]["Figure 5: none < both"] == "incomplete"
    assert (runs / "stil_study.json").exists()


def test_cli_and_empty_folder(tmp_path, capsys):
    assert main(["stil", str(tmp_path)]) == 2  # bad input: one line naming the folder, exit 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and str(tmp_path) in err and "no results.json" in err
    with pytest.raises(FileNotFoundError, match="no results.json"):
        main(["stil", str(tmp_path), "--debug"])  # the traceback on request
    _write(tmp_path, "stil", 0.2)
    assert main(["stil", str(tmp_path), "--out", str(tmp_path / "r")]) == 0
    assert "STIL study" in capsys.readouterr().out


def test_stil_study_over_replicates_mean_std_and_per_seed_orderings(tmp_path):
    """Two sweeps (dataset seeds 0 and 1): cells are mean ± std (n); an ordering that holds on
    the means but not in every replicate says so."""
    for seed, vals in [(0, {"stil": 0.3, "fig5_both": 0.4}), (1, {"stil": 0.5, "fig5_both": 0.45})]:
        root = tmp_path / f"sweep{seed}"
        for p, m in vals.items():
            _write(root, p, m)
            hyd = root / p / ".hydra"
            hyd.mkdir()
            (hyd / "config.yaml").write_text(f"seed: 0\ndataset:\n  seed: {seed}\n")
    res = stil_study([tmp_path / "sweep0", tmp_path / "sweep1"], tmp_path / "out")
    assert res["replicates"] == ["dataset.seed=0 seed=0", "dataset.seed=1 seed=0"]
    assert res["table1"]["STIL"]["mAP@0.5"] == pytest.approx(0.4)
    assert res["fig5"]["both"] == pytest.approx(0.425)
    # 0.4 < 0.425 on the means; per seed 0.3 < 0.4 holds, 0.5 < 0.45 does not
    assert (
        res["checks"]["Figure 5: none < both"] == "holds on the means; holds in 1 of 2 replicates"
    )
    md = (tmp_path / "out" / "stil_study.md").read_text()
    sd = float(np.std([0.3, 0.5], ddof=1))
    assert f"| STIL | 0.5000 ± {sd:.4f} (2) | 0.4000 ± {sd:.4f} (2) |" in md
    assert "| fig5_both | 0.4000 | 0.4500 |" in md  # per-replicate table
    assert (
        main(
            [
                "stil",
                str(tmp_path / "sweep0"),
                str(tmp_path / "sweep1"),
                "--out",
                str(tmp_path / "o2"),
            ]
        )
        == 0
    )


def test_eval_reranking_of_the_stil_run_is_a_fig5_point_with_top1_and_bounds(tmp_path):
    """``eval.py run_dir=<stil run> reranking=context`` writes ``<run>/eval/<time>/results.json``
    with the run's study point ``stil``: the report counts it as ``fig5_context`` (a replicate of
    the run it rebuilt), not as a newer STIL result; tables carry the top-1 rate and the bounds."""
    runs = tmp_path / "multirun"
    _write(runs, "stil", 0.3)
    stil_run = runs / "stil"
    (stil_run / ".hydra").mkdir()
    (stil_run / ".hydra" / "config.yaml").write_text("seed: 0\ndataset:\n  seed: 3\n")
    res = json.loads((stil_run / "results.json").read_text())
    res["reranking"] = "none"
    res["top1"] = 0.6
    bounds = {
        "chance": {"video_mAP": {"0.2": 0.4, "0.5": 0.25}, "top1": 0.3},
        "prior": {"video_mAP": {"0.2": 0.35, "0.5": 0.3}, "top1": 0.4},
        "ceiling": {"video_mAP": {"0.2": 0.98, "0.5": 0.9}, "top1": 0.9},
    }
    res["bounds"] = bounds
    (stil_run / "results.json").write_text(json.dumps(res))
    ev = stil_run / "eval" / "2026-01-01_00-00-00"
    ev.mkdir(parents=True)
    (ev / ".hydra").mkdir()  # eval.py's own Hydra folder: not the run's config
    (ev / ".hydra" / "config.yaml").write_text("run_dir: x\n")
    reranked = dict(res, reranking="context", top1=0.7, video_mAP={"0.2": 0.45, "0.5": 0.35})
    (ev / "results.json").write_text(json.dumps(reranked))
    reps = collect_replicates(runs)
    assert set(reps) == {"stil", "fig5_context"}
    assert list(reps["fig5_context"]) == ["dataset.seed=3 seed=0"]
    assert _map(reps["stil"]["dataset.seed=3 seed=0"]) == pytest.approx(0.3)  # not replaced
    out = stil_study(runs, tmp_path / "out")
    assert out["fig5"]["none"] == pytest.approx(0.3)
    assert out["fig5"]["context"] == pytest.approx(0.35)
    assert out["table1"]["STIL"]["top1"] == pytest.approx(0.6)
    assert out["bounds"]["prior"] == {"0.2": 0.35, "0.5": 0.3, "top1": 0.4}
    md = (tmp_path / "out" / "stil_study.md").read_text()
    assert "| STIL | 0.4000 | 0.3000 | 0.6000 |" in md
    assert "| context | 0.4500 | 0.3500 | 0.7000 |" in md
    assert "| ceiling | 0.9800 | 0.9000 | 0.9000 |" in md
