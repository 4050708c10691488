"""Reports over many runs.

``python -m wsal.report SWEEP_DIR [--out DIR]`` (or ``... sweep SWEEP_DIR``): every run folder
under ``SWEEP_DIR`` (a folder holding ``.hydra/config.yaml``: one run, a Hydra sweep, or a folder
of sweeps) becomes a row of a paper-style table, in ``--out`` (default ``SWEEP_DIR/report``):

- ``report.md``: rows = method (+ every other axis that varies in the sweep: linker, supervision,
  reranking, any override), columns = dataset x {mAP@0.2, 0.5, 0.75, mAP@0.5:0.95, AUC}; runs
  that differ only in seed or split (:data:`REPLICATE_KEYS`; J-HMDB's three splits) are averaged,
  ``mean ± std`` with n shown; the evaluation protocol under the table; a "Failed runs" section
  (``failed.json`` written by train.py, or neither results.json nor failed.json: incomplete);
- ``report.csv``: the same rows, one per (setting, dataset), means and stds in separate columns;
- ``map_vs_iou.png`` and, when the sweep varies ``supervision``, ``map_vs_cost.png``.

``python -m wsal.report stil MULTIRUN_DIR [--out DIR]`` gathers the ``results.json`` of a STIL
study multirun (``make stil-study``: one run per ``conf/study/*.yaml`` point) and writes, into
``--out`` (default: the multirun folder):

- ``stil_study.md``: Table 1 (MIL, GMIL µ = 5/10/40, STIL without / with Temporal Prim), Figure 5
  (reranking none / context / negative / both) and Figure 6 (supervision level, annotation cost,
  mAP) as markdown tables, each mAP with its protocol and the top-1 rate, the bounds (chance,
  prior, ceiling) of the runs' tubes, plus whether the paper's orderings hold;
- ``fig5_reranking.png`` and ``fig6_supervision.png``;
- ``stil_study.json``: the numbers behind them.

A Figure 5 point is either a study run (``study=fig5_<name>``) or the STIL point's trained model
reranked by ``eval.py run_dir=<stil run> reranking=<name>`` (written under ``<run>/eval/``): the
same model and tubes, so only the reranking differs, at the cost of one training instead of four.

Run folders are read with :func:`wsal.runs.load_run` (the one loader of a saved run); this
module is an entry point like train.py, reporting on runs that train.py made.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig, OmegaConf

from wsal import viz
from wsal.atomic import atomic_write_json, atomic_write_text
from wsal.data.annotations import DatasetIndex, load_index
from wsal.errors import cli_main
from wsal.runs import (
    CONFIG_FILE,
    SavedRun,
    find_runs,
    load_run,
    natural_key,
    parse_overrides,
    read_config,
)
from wsal.supervision import COST_LABEL, SupervisionSpec, annotation_cost

__all__ = [
    "collect",
    "collect_replicates",
    "stil_study",
    "SweepTable",
    "sweep_table",
    "sweep_report",
    "main",
]

STIL_HELP = "STIL study: Table 1, Figure 5, Figure 6"
BOUND_KEYS = ("0.2", "0.5", "top1")

TABLE1 = [
    ("table1_mil", "MIL"),
    ("table1_gmil5", "GMIL µ=5"),
    ("table1_gmil10", "GMIL µ=10"),
    ("table1_gmil40", "GMIL µ=40"),
    ("table1_stil_noprim", "STIL w/o Temporal Prim"),
    ("stil", "STIL"),
]
FIG5 = [("stil", "none"), ("fig5_context", "context"), ("fig5_negative", "negative")]
FIG5 += [("fig5_both", "both")]
FIG6 = [("stil", "labels")] + [
    (f"fig6_{lv}", lv) for lv in ("points_stride10", "mixture", "points", "boxes_stride10", "boxes")
]


def _replicate_key(run: Path) -> str:
    """``dataset.seed=<s> seed=<s>`` of a run folder (its saved config), or ``""`` if unknown.
    An ``eval.py`` result (``<run>/eval/<time>/``) is a replicate of the run it rebuilt."""
    if run.parent.name == "eval" and (run.parent.parent / CONFIG_FILE).exists():
        run = run.parent.parent
    if not (run / CONFIG_FILE).exists():
        return ""
    c = read_config(run)
    return f"dataset.seed={OmegaConf.select(c, 'dataset.seed')} seed={OmegaConf.select(c, 'seed')}"


def _study_point(res: dict[str, Any]) -> str | None:
    """The study point of a results.json: its ``study.point``, except that the STIL point
    reranked by ``eval.py ... reranking=<name>`` is the Figure 5 point ``fig5_<name>``."""
    point = (res.get("study") or {}).get("point")
    rerank = res.get("reranking")
    if point == "stil" and isinstance(rerank, str) and rerank not in ("", "none"):
        return f"fig5_{rerank}"
    return point


def _study_results(dirs: Sequence[str | Path]):
    """``(point, run folder, results)`` of every study run's ``results.json``, oldest first."""
    files = sorted(
        (f for d in dirs for f in Path(d).rglob("results.json")), key=lambda p: p.stat().st_mtime
    )
    for f in files:
        try:
            res = json.loads(f.read_text())
        except json.JSONDecodeError as e:
            raise ValueError(f"{f}: not valid JSON ({e})") from e
        point = _study_point(res)
        if point:
            res["_path"] = str(f.parent)
            yield point, f.parent, res


def collect_replicates(
    run_dirs: str | Path | Sequence[str | Path],
) -> dict[str, dict[str, dict[str, Any]]]:
    """``{study point: {replicate: results}}`` over every ``results.json`` under ``run_dirs``;
    a replicate is a (dataset seed, seed) pair read from the run's saved config (newest wins)."""
    dirs = [run_dirs] if isinstance(run_dirs, (str, Path)) else list(run_dirs)
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for point, folder, res in _study_results(dirs):
        out.setdefault(point, {})[_replicate_key(folder)] = res
    return out


def collect(run_dir: str | Path) -> dict[str, dict[str, Any]]:
    """``{study point: results}`` of every ``results.json`` under ``run_dir`` (newest wins)."""
    return {point: res for point, _, res in _study_results([run_dir])}


def _map(res: dict[str, Any] | None, iou: str = "0.5") -> float:
    """video-mAP@iou of a results.json; ``iou="top1"``: its top-1 rate (nan when missing)."""
    if iou == "top1":
        return float(res["top1"]) if res and res.get("top1") is not None else float("nan")
    return float(res["video_mAP"][iou]) if res and iou in res.get("video_mAP", {}) else float("nan")


def _bound(res: dict[str, Any], name: str, key: str) -> float:
    """A bound of a results.json (``bounds[name]``: mAP@key, or its top-1 rate), nan if absent."""
    b = (res.get("bounds") or {}).get(name) or {}
    v = b.get("top1") if key == "top1" else (b.get("video_mAP") or {}).get(key)
    return float(v) if v is not None else float("nan")


def _finite_mean(x: Sequence[float]) -> float:
    v = np.asarray(x, dtype=np.float64)
    v = v[np.isfinite(v)]
    return float(v.mean()) if v.size else float("nan")


def _fmt(x: float) -> str:
    return "–" if not np.isfinite(x) else f"{x:.4f}"


def _holds(values: Sequence[float]) -> str:
    v = [x for x in values if np.isfinite(x)]
    if len(v) < len(values):
        return "incomplete"
    return "holds" if all(a < b for a, b in zip(v, v[1:])) else "does not hold"


def _stats(reps: dict[str, dict[str, Any]] | None, iou: str = "0.5") -> tuple[float, float, int]:
    """Mean, sample std (nan for n < 2) and n of a point's mAP over its replicates."""
    v = np.array([_map(r, iou) for r in (reps or {}).values()], dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return float("nan"), float("nan"), 0
    return float(v.mean()), float(v.std(ddof=1)) if v.size > 1 else float("nan"), int(v.size)


def _study_cell(reps: dict[str, dict[str, Any]] | None, iou: str, multi: bool) -> str:
    m, sd, n = _stats(reps, iou)
    if not multi or n < 2:
        return _fmt(m)
    return f"{m:.4f} ± {sd:.4f} ({n})"


def _ordering(
    reps: dict[str, dict[str, dict[str, Any]]],
    points: Sequence[str],
    multi: bool,
    iou: str = "0.5",
) -> str:
    """Whether the points' mAP@iou increase in this order: on the means, and with replicates,
    in how many of the replicates every point has."""
    verdict = _holds([_stats(reps.get(p), iou)[0] for p in points])
    if not multi or verdict == "incomplete":
        return verdict
    common = set.intersection(*(set(reps.get(p, {})) for p in points))
    per = [_holds([_map(reps[p][k], iou) for p in points]) == "holds" for k in sorted(common)]
    return f"{verdict} on the means; holds in {sum(per)} of {len(per)} replicates"


def stil_study(
    run_dir: str | Path | Sequence[str | Path], out_dir: str | Path | None = None
) -> dict[str, Any]:
    """Write the study's tables and plots (see the module docstring); return the numbers.

    ``run_dir``: one multirun folder or several (e.g. one per dataset seed); runs of the same
    study point with different (dataset seed, seed) are replicates: each cell is then
    ``mean ± std (n)``, a per-replicate table follows and each ordering says in how many
    replicates it holds.
    """
    dirs = [run_dir] if isinstance(run_dir, (str, Path)) else list(run_dir)
    reps = collect_replicates(dirs)
    if not reps:
        raise FileNotFoundError(f"{run_dir}: no results.json with a study point under it")
    multi = any(len(r) > 1 for r in reps.values())
    all_res = [r for rr in reps.values() for r in rr.values()]
    out = Path(out_dir or dirs[0])
    out.mkdir(parents=True, exist_ok=True)
    any_res = next(iter(next(iter(reps.values())).values()))
    proto = f"protocol={any_res['protocol']}, nms={any_res['nms']:g}, split={any_res['split']}"
    t1 = {
        name: {
            "mAP@0.5": _stats(reps.get(p))[0],
            "mAP@0.2": _stats(reps.get(p), "0.2")[0],
            "top1": _stats(reps.get(p), "top1")[0],
        }
        for p, name in TABLE1
    }
    f5 = {name: _stats(reps.get(p))[0] for p, name in FIG5}

    def cost(p: str) -> float:
        c = [float(r["annotation_cost_s"]) for r in reps.get(p, {}).values()]
        return float(np.mean(c)) if c else float("nan")

    f6 = {name: {"cost_s": cost(p), "mAP@0.5": _stats(reps.get(p))[0]} for p, name in FIG6}
    orderings = {
        "Table 1: MIL < GMIL(10) < STIL w/o Prim < STIL": [
            "table1_mil",
            "table1_gmil10",
            "table1_stil_noprim",
            "stil",
        ],
        "Figure 5: none < both": ["stil", "fig5_both"],
        "Figure 6: labels < boxes": ["stil", "fig6_boxes"],
    }
    # at the paper's 0.5 (the keys), and at 0.2, where the benchmark's ceiling is 10x higher
    checks = {k: _ordering(reps, pts, multi) for k, pts in orderings.items()}
    checks_02 = {k: _ordering(reps, pts, multi, "0.2") for k, pts in orderings.items()}
    n_runs = sum(len(r) for r in reps.values())
    replicates = sorted({k for r in reps.values() for k in r})
    where = ", ".join(f"`{d}`" for d in dirs)
    lines = [
        f"# STIL study on {any_res.get('dataset', '?')} ({n_runs} runs, {proto})",
        "",
        f"Runs: {where}. Video-mAP as in the ACT/MOC reference (`{proto}`).",
    ]
    if multi:
        lines += [
            "",
            f"{len(replicates)} replicates ({'; '.join(r or '?' for r in replicates)}): each cell "
            "is mean ± sample std (n) over them.",
        ]

    def cells(p: str) -> str:
        return " | ".join(_study_cell(reps.get(p), k, multi) for k in ("0.2", "0.5", "top1"))

    # the bounds of the runs' tubes (true class given): the same for every point of a replicate
    bnd = {
        name: {k: _finite_mean([_bound(r, name, k) for r in all_res]) for k in BOUND_KEYS}
        for name in ("chance", "prior", "ceiling")
    }
    lines += ["", "## Bounds (the runs' tubes, true class given; mean over the runs)", ""]
    lines += ["| bound | video-mAP@0.2 | video-mAP@0.5 | top-1 |", "|---|---|---|---|"]
    lines += [
        f"| {n} | " + " | ".join(_fmt(b[k]) for k in BOUND_KEYS) + " |" for n, b in bnd.items()
    ]
    lines += [
        "",
        "top-1: test videos whose highest-scored tube of the true class has st-IoU >= 0.5 with "
        "the GT. Chance: a random tube of the video; prior: the linking score; ceiling: each "
        "video's best tube first.",
    ]
    lines += [
        "",
        "## Table 1: selection strategies (video labels only, no reranking)",
        "",
        "| method | video-mAP@0.2 | video-mAP@0.5 | top-1 |",
        "|---|---|---|---|",
    ]
    lines += [f"| {name} | {cells(p)} |" for p, name in TABLE1]
    lines += ["", "## Figure 5: reranking (STIL, video labels)", ""]
    lines += ["| reranking | video-mAP@0.2 | video-mAP@0.5 | top-1 |", "|---|---|---|---|"]
    lines += [f"| {name} | {cells(p)} |" for p, name in FIG5]
    lines += ["", "## Figure 6: supervision level vs annotation cost (STIL, no reranking)", ""]
    lines += [
        "| supervision | cost (s / training video) | video-mAP@0.2 | video-mAP@0.5 | top-1 |",
        "|---|---|---|---|---|",
    ]
    lines += [f"| {name} | {f6[name]['cost_s']:.2f} | {cells(p)} |" for p, name in FIG6]
    if multi:
        lines += ["", "## video-mAP@0.5 per replicate", ""]
        lines += ["| point | " + " | ".join(replicates) + " |"]
        lines += ["|---|" + "---|" * len(replicates)]
        for p, _ in TABLE1 + FIG5[1:] + FIG6[1:]:
            r = reps.get(p, {})
            lines += [f"| {p} | " + " | ".join(_fmt(_map(r.get(k))) for k in replicates) + " |"]
    lines += ["", "## The paper's orderings", ""]
    lines += [f"- {k} (mAP@0.5, the paper's): **{v}**" for k, v in checks.items()]
    lines += [f"- {k} (mAP@0.2): **{v}**" for k, v in checks_02.items()]
    atomic_write_text(out / "stil_study.md", "\n".join(lines) + "\n")
    viz.plot_bars(
        {k: v for k, v in f5.items() if np.isfinite(v)},
        out / "fig5_reranking.png",
        title="STIL reranking (video-mAP@0.5" + (", mean over replicates)" if multi else ")"),
        ylabel="video-mAP@0.5",
    )
    pts = {k: (v["cost_s"], v["mAP@0.5"]) for k, v in f6.items() if np.isfinite(v["mAP@0.5"])}
    viz.plot_cost(pts, out / "fig6_supervision.png", title="STIL: mAP@0.5 vs annotation cost")
    res = {"protocol": proto, "table1": t1, "fig5": f5, "fig6": f6, "checks": checks}
    res["bounds"] = bnd
    res["checks@0.2"] = checks_02
    res["runs"] = {p: {k: r["_path"] for k, r in rr.items()} for p, rr in reps.items()}
    res["replicates"] = replicates
    res["per_replicate"] = {p: {k: _map(r) for k, r in rr.items()} for p, rr in reps.items()}
    atomic_write_json(out / "stil_study.json", res, indent=1)
    return res


# ------------------------------------------------------------------------------ sweep reports
#: Config keys whose runs are *replicates* of one setting: averaged, never a row of their own.
#: ``evaluation.split``/``dataset.split`` make J-HMDB's three splits one number, as reported.
REPLICATE_KEYS = ("seed", "dataset.seed", "dataset.split", "evaluation.split")
#: Axes read from results.json (the names the run really used, whatever override chose them).
NAMED_AXES = ("method", "linker", "supervision", "reranking", "detector")
#: Overrides that do not change a result (names, progress bars): never a row parameter.
COSMETIC_KEYS = ("task_name", "trainer.enable_progress_bar", "dataset.progress", "dataset.workers")
INCOMPLETE = "incomplete (killed or still running)"


#: the bounds' columns (results.json's ``bounds``), shown when the runs have them
BOUND_METRICS = (
    "top1",
    "chance mAP@0.5",
    "prior mAP@0.5",
    "ceiling mAP@0.5",
    "chance top1",
    "prior top1",
    "ceiling top1",
)


def _metrics(res: dict[str, Any], taus: Sequence[str]) -> dict[str, float]:
    """The table's numbers of one run: mAP at each threshold, mAP@0.5:0.95, AUC@0.1:0.6, and the
    top-1 rate with the chance / prior / ceiling bounds (NaN where the run has none)."""
    out = {f"mAP@{t}": float(res.get("video_mAP", {}).get(t, np.nan)) for t in taus}
    out["mAP@0.5:0.95"] = float(res.get("mAP@0.5:0.95", np.nan))
    out["AUC@0.1:0.6"] = float(res.get("AUC@0.1:0.6", np.nan))
    out["top1"] = float(res.get("top1", np.nan))
    for name, b in (res.get("bounds") or {}).items():
        out[f"{name} mAP@0.5"] = float(b.get("video_mAP", {}).get("0.5", np.nan))
        out[f"{name} top1"] = float(b.get("top1", np.nan))
    return out


def _params(run: SavedRun) -> tuple[dict[str, str], str]:
    """(row parameters, dataset column) of a run: the named axes from results.json (falling back
    on the group choice), then every other override except replicate and dataset keys."""
    res = run.results or {}
    over = parse_overrides(run.overrides)
    params = {a: str(res.get(a) or run.choices.get(a) or "?") for a in NAMED_AXES}
    for k, v in over.items():
        if k in NAMED_AXES or k in REPLICATE_KEYS or k in COSMETIC_KEYS or k.startswith("hydra."):
            continue
        if k == "dataset" or k.startswith("dataset."):
            continue
        params[k] = v
    ds_over = [f"{k}={v}" for k, v in over.items() if k.startswith("dataset.")]
    ds_over = [o for o in ds_over if o.split("=", 1)[0] not in (*REPLICATE_KEYS, *COSMETIC_KEYS)]
    # a folder per dataset seed (``dataset.root=...${dataset.seed}``) names the replicate's data,
    # not another dataset
    ds_over = [o for o in ds_over if not (o.startswith("dataset.root=") and "dataset.seed" in o)]
    name = str(res.get("dataset") or run.choices.get("dataset") or "?")
    split = str(run.value("dataset.split") or "")
    if split not in ("", "1") and name.endswith(split):  # StandardDataset names split i "<name>i"
        name = name[: -len(split)]
    return params, (f"{name} ({', '.join(ds_over)})" if ds_over else name)


def _setting(run: SavedRun, key: str) -> str:
    """What a run used for a key it did not override: its group choice, else its config value."""
    value = run.choices[key] if key in run.choices else run.value(key)
    return "–" if value is None or value == "" else str(value)  # not set in this run


def _mean_std(x: Sequence[float]) -> tuple[float, float]:
    v = np.asarray(x, dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return float("nan"), float("nan")
    return float(v.mean()), float(v.std(ddof=1)) if v.size > 1 else 0.0


def _mean(x: Sequence[float]) -> float:
    return _mean_std(x)[0]


def _cell(mean: float, std: float, n: int) -> str:
    if not np.isfinite(mean):
        return "–"
    return f"{mean:.4f}" if n < 2 else f"{mean:.4f} ± {std:.4f}"


def _run_cost(run: SavedRun) -> float:
    """Annotation cost (s per training video) of a run: results.json's ``annotation_cost_s`` when
    the method recorded it (STIL), else :func:`wsal.supervision.annotation_cost` of the run's
    supervision config over its dataset's training videos (``nan`` when they cannot be read)."""
    res = run.results or {}
    if res.get("annotation_cost_s") is not None:
        return float(res["annotation_cost_s"])
    sup_cfg = run.config.get("supervision")
    plain: Any = OmegaConf.to_container(sup_cfg) if isinstance(sup_cfg, DictConfig) else {}
    sup = {k: v for k, v in plain.items() if k != "_target_"}
    try:
        spec = SupervisionSpec(**sup)
    except (TypeError, ValueError):
        return float("nan")
    if spec.level == "labels":
        return COST_LABEL
    try:
        index = _run_index(run)
        split = str(res.get("split") or run.value("evaluation.split") or "test")
        train = index.split(split.replace("test", "train", 1))
        return annotation_cost(spec, [index.videos[v].nframes for v in train])
    except (OSError, KeyError, ValueError):
        return float("nan")


def _run_index(run: SavedRun) -> DatasetIndex:
    """The run's DatasetIndex, read from files that already exist (never generates data)."""
    ds = run.config.dataset
    if ds.get("annotations"):
        return load_index(ds.annotations, root=ds.get("root"))
    return load_index(Path(ds.root) / "annotations.json", root=ds.root)


@dataclass
class SweepTable:
    """The sweep's table, one row per (setting, dataset).

    dims: names of the row parameters shown (``method`` first, then those that vary).
    metrics: metric names (``mAP@0.2`` ..., ``mAP@0.5:0.95``, ``AUC@0.1:0.6``).
    rows: per row ``{"params": {dim: value}, "dataset": str, "n": int, "runs": [Path],
        "seeds": [...], "splits": [...], "mean": {metric: float}, "std": {metric: float},
        "curve": {tau: mean mAP}, "cost_s": float}``.
    """

    dims: list[str]
    metrics: list[str]
    rows: list[dict[str, Any]]


def sweep_table(runs: Sequence[SavedRun], with_cost: bool = False) -> SweepTable:
    """Group the good runs by setting and dataset, averaging replicates (seed, split)."""
    ok = [r for r in runs if r.status == "ok"]
    taus = sorted({t for r in ok for t in (r.results or {}).get("video_mAP", {})}, key=float)
    metrics = [f"mAP@{t}" for t in taus] + ["mAP@0.5:0.95", "AUC@0.1:0.6"]
    if any("bounds" in (r.results or {}) for r in ok):
        metrics += list(BOUND_METRICS)
    params = [_params(r) for r in ok]
    keys = list(dict.fromkeys(k for p, _ in params for k in p))
    for run, (p, _) in zip(ok, params):  # a key another run overrode: this run's own value
        for k in keys:
            if k not in p:
                p[k] = _setting(run, k)
    varying = [k for k in keys if len({p.get(k) for p, _ in params}) > 1]
    dims = ["method"] + [k for k in varying if k != "method"]
    groups: dict[tuple, list[SavedRun]] = {}
    for run, (p, ds) in zip(ok, params):
        groups.setdefault((tuple(p.get(d, "") for d in dims), ds), []).append(run)
    rows = []
    for (values, ds), members in groups.items():
        per_run = [_metrics(m.results or {}, taus) for m in members]
        stats = {k: _mean_std([pr.get(k, np.nan) for pr in per_run]) for k in metrics}
        curve_taus = sorted(
            {t for m in members for t in (m.results or {}).get("mAP_curve", {})}, key=float
        )
        curve = {
            t: _mean([(m.results or {}).get("mAP_curve", {}).get(t, np.nan) for m in members])
            for t in curve_taus
        }
        row = {
            "params": dict(zip(dims, values)),
            "dataset": ds,
            "n": len(members),
            "runs": [m.path for m in members],
            "seeds": sorted({_seed_label(m) for m in members}, key=natural_key),
            "splits": sorted({_split_label(m) for m in members}, key=natural_key),
            "mean": {k: s[0] for k, s in stats.items()},
            "std": {k: s[1] for k, s in stats.items()},
            "curve": curve,
            "cost_s": _mean([_run_cost(m) for m in members]) if with_cost else float("nan"),
        }
        rows.append(row)
    return SweepTable(dims, metrics, rows)


def _seed_label(run: SavedRun) -> str:
    """``<seed>``, or ``<dataset seed>/<seed>`` when the run overrode the dataset's seed."""
    if "dataset.seed" in parse_overrides(run.overrides):
        return f"{run.value('dataset.seed')}/{run.value('seed')}"
    return str(run.value("seed"))


def _split_label(run: SavedRun) -> str:
    """The split a run evaluated: ``evaluation split`` or ``dataset split/evaluation split``
    (J-HMDB: ``dataset.split=2`` exposes its split 2 as train/test, so results say ``test``)."""
    ev = str((run.results or {}).get("split", run.value("evaluation.split")))
    ds = run.value("dataset.split")
    return ev if ds is None or ds == "" else f"{ds}/{ev}"


def _protocol_line(runs: Sequence[SavedRun]) -> str:
    """The evaluation protocol(s) of the good runs, in words (DESIGN §7)."""
    combos = sorted(
        {
            (str(r.results.get("protocol")), float(r.results.get("nms", np.nan)))
            for r in runs
            if r.results
        }
    )
    splits = sorted({str(r.results.get("split")) for r in runs if r.results}, key=natural_key)
    names = {"act": "ACT/MOC video-AP: +1-pixel areas, trapezoid AP", "voc": "VOC video-AP"}
    parts = [f"protocol={p} ({names.get(p, p)}), tube NMS at st-IoU {nms:g}" for p, nms in combos]
    return (
        f"Evaluation: {'; '.join(parts)}; split{'s' if len(splits) > 1 else ''} "
        f"{', '.join(splits)}. mAP@τ = video-mAP at spatio-temporal IoU τ; mAP@0.5:0.95 = mean "
        "over τ = 0.5, 0.55, ..., 0.95; AUC@0.1:0.6 = normalised area under mAP(τ), τ = 0.1–0.6."
    )


def _md_table(table: SweepTable, with_cost: bool) -> list[str]:
    datasets = list(dict.fromkeys(r["dataset"] for r in table.rows))
    multi = len(datasets) > 1
    head = list(table.dims)
    per_ds = ["n"] + (["cost (s)"] if with_cost else []) + table.metrics
    for ds in datasets:
        head += [f"{ds} {m}" if multi else m for m in per_ds]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    settings = list(dict.fromkeys(tuple(r["params"].items()) for r in table.rows))
    for setting in settings:
        cells = [str(v) for _, v in setting]
        for ds in datasets:
            row = next(
                (
                    r
                    for r in table.rows
                    if tuple(r["params"].items()) == setting and r["dataset"] == ds
                ),
                None,
            )
            if row is None:
                cells += ["0"] + ["–"] * (len(per_ds) - 1)
                continue
            cells.append(str(row["n"]))
            if with_cost:
                cells.append("–" if not np.isfinite(row["cost_s"]) else f"{row['cost_s']:.2f}")
            cells += [_cell(row["mean"][m], row["std"][m], row["n"]) for m in table.metrics]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _csv_text(table: SweepTable, with_cost: bool) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    head = [*table.dims, "dataset", "n", "seeds", "splits"] + (["cost_s"] if with_cost else [])
    for m in table.metrics:
        head += [f"{m}_mean", f"{m}_std"]
    w.writerow([*head, "runs"])
    for r in table.rows:
        row = [*(r["params"][d] for d in table.dims), r["dataset"], r["n"]]
        row += [";".join(r["seeds"]), ";".join(r["splits"])]
        if with_cost:
            row.append(f"{r['cost_s']:.6g}")
        for m in table.metrics:
            row += [f"{r['mean'][m]:.6g}", f"{r['std'][m]:.6g}"]
        w.writerow([*row, ";".join(str(p) for p in r["runs"])])
    return buf.getvalue()


def _row_name(row: dict[str, Any], dims: Sequence[str], multi_dataset: bool) -> str:
    name = ", ".join(str(row["params"][d]) for d in dims)
    return f"{name} [{row['dataset']}]" if multi_dataset else name


def sweep_report(
    sweep_dir: str | Path, out_dir: str | Path | None = None, *, title: str | None = None
) -> dict[str, Any]:
    """Report on every run folder under ``sweep_dir`` (a sweep, one run, or a parent of sweeps).

    Writes into ``out_dir`` (default ``sweep_dir/report``): ``report.md`` (the table, runs
    averaged over seeds and splits as ``mean ± sample std``, the protocol, and a "Failed runs"
    section listing failed and incomplete runs with their overrides and error line),
    ``report.csv`` (one row per setting and dataset: means, stds, seeds, splits, run folders),
    ``map_vs_iou.png`` (mean mAP against the st-IoU threshold, from results.json's
    ``mAP_curve``) and, when the sweep varies the supervision level, ``map_vs_cost.png``
    (mAP@0.5 against annotation cost, STIL Fig. 6). Returns the numbers.
    """
    sweep_dir = Path(sweep_dir)
    out = Path(out_dir) if out_dir is not None else sweep_dir / "report"
    runs = [load_run(p) for p in find_runs(sweep_dir)]
    if not runs:
        raise FileNotFoundError(f"{sweep_dir}: no run folder (.hydra/config.yaml) under it")
    ok = [r for r in runs if r.status == "ok"]
    bad = [r for r in runs if r.status != "ok"]
    with_cost = len({str((r.results or {}).get("supervision")) for r in ok}) > 1
    table = sweep_table(runs, with_cost=with_cost)
    lines = [
        f"# {title or f'Sweep report: {sweep_dir}'}",
        "",
        f"{len(runs)} runs: {len(ok)} finished, "
        f"{sum(r.status == 'failed' for r in runs)} failed, "
        f"{sum(r.status == 'incomplete' for r in runs)} incomplete.",
        "",
    ]
    if ok:
        datasets = sorted({r["dataset"] for r in table.rows})
        lines += [f"## Video-mAP on {', '.join(datasets)}", ""]
        lines += _md_table(table, with_cost)
        lines += [
            "",
            _protocol_line(ok),
            "",
            "Runs that differ only in seed or split are one row: each cell is the mean ± sample "
            "standard deviation over its n runs (n = 1: the run's value); seeds "
            f"{', '.join(sorted({s for r in table.rows for s in r['seeds']}, key=natural_key))}"
            f", splits {', '.join(sorted({s for r in table.rows for s in r['splits']}))}.",
        ]
        if with_cost:
            lines += [
                "",
                "cost (s) = annotation seconds per training video (STIL appendix A: label 5 s, "
                "box 15 s, point 1.5 s per annotated frame; `wsal.supervision.annotation_cost`).",
            ]
    else:
        lines.append("No run finished: no table.")
    lines += ["", "## Failed runs", ""]
    if bad:
        lines += ["| run | status | overrides | error |", "|---|---|---|---|"]
        for r in bad:
            err = r.error if r.status == "failed" else INCOMPLETE
            over = " ".join(r.overrides) or "(none)"
            err = str(err).replace("|", "\\|")  # a pipe would split the markdown cell
            lines.append(f"| `{_rel(r.path, sweep_dir)}` | {r.status} | `{over}` | {err} |")
    else:
        lines.append("None.")
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "report.md", "\n".join(lines) + "\n")
    atomic_write_text(out / "report.csv", _csv_text(table, with_cost))
    written = ["report.md", "report.csv"]
    multi = len({r["dataset"] for r in table.rows}) > 1
    curves = {_row_name(r, table.dims, multi): r["curve"] for r in table.rows if r["curve"]}
    if curves:
        taus = sorted({t for c in curves.values() for t in c}, key=float)
        protos = sorted({f"protocol={(r.results or {}).get('protocol')}" for r in ok})
        proto = ", ".join(protos)
        viz.plot_map_vs_iou(
            [float(t) for t in taus],
            {k: [c.get(t, np.nan) for t in taus] for k, c in curves.items()},
            out / "map_vs_iou.png",
            title=f"video-mAP vs st-IoU ({proto})",
            xlabel="st-IoU threshold",
        )
        written.append("map_vs_iou.png")
    if with_cost:
        pts = {
            _row_name(r, table.dims, multi): (r["cost_s"], r["mean"].get("mAP@0.5", np.nan))
            for r in table.rows
            if np.isfinite(r["cost_s"]) and np.isfinite(r["mean"].get("mAP@0.5", np.nan))
        }
        if pts:
            viz.plot_cost(pts, out / "map_vs_cost.png", title="video-mAP@0.5 vs annotation cost")
            written.append("map_vs_cost.png")
    return {
        "out": out,
        "files": written,
        "table": table,
        "runs": runs,
        "failed": [r for r in bad if r.status == "failed"],
        "incomplete": [r for r in bad if r.status == "incomplete"],
    }


def _rel(path: Path, root: Path) -> str:
    try:
        rel = path.relative_to(root)
        return str(rel) if str(rel) != "." else path.name
    except ValueError:
        return str(path)


@cli_main
def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["stil"]:
        p = argparse.ArgumentParser(prog="python -m wsal.report stil", description=STIL_HELP)
        p.add_argument(
            "run_dir",
            nargs="+",
            help="multirun folder(s), searched recursively for results.json (several: replicates,"
            " e.g. one sweep per dataset seed)",
        )
        p.add_argument("--out", default=None, help="report folder (default: the first run_dir)")
        args = p.parse_args(argv[1:])
        res = stil_study(args.run_dir, args.out)
        print((Path(args.out or args.run_dir[0]) / "stil_study.md").read_text())
        return 0 if res else 1
    if argv[:1] == ["sweep"]:  # explicit form, for a folder that happens to be called "stil"
        argv = argv[1:]
    p = argparse.ArgumentParser(
        prog="python -m wsal.report",
        description="Tables and plots of a Hydra sweep (`python -m wsal.report SWEEP_DIR`); "
        f"`python -m wsal.report stil DIR`: {STIL_HELP}",
    )
    p.add_argument("sweep_dir", help="a sweep, a run folder, or a folder of sweeps (recursive)")
    p.add_argument("--out", default=None, help="report folder (default: SWEEP_DIR/report)")
    p.add_argument("--title", default=None, help="report title (default: the folder)")
    args = p.parse_args(argv)
    res = sweep_report(args.sweep_dir, args.out, title=args.title)
    print((res["out"] / "report.md").read_text(), end="")
    print(f"wrote {', '.join(res['files'])} into {res['out']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
