"""Reports over many runs: ``python -m wsal.report stil MULTIRUN_DIR [--out DIR]``.

``stil`` gathers the ``results.json`` of a STIL study multirun (``make stil-study``: one run per
``conf/study/*.yaml`` point) and writes, into ``--out`` (default: the multirun folder):

- ``stil_study.md``: Table 1 (MIL, GMIL µ = 5/10/40, STIL without / with Temporal Prim), Figure 5
  (reranking none / context / negative / both) and Figure 6 (supervision level, annotation cost,
  mAP) as markdown tables, each mAP with its protocol, plus whether the paper's orderings hold;
- ``fig5_reranking.png`` and ``fig6_supervision.png``;
- ``stil_study.json``: the numbers behind them.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from wsal.atomic import atomic_write_json, atomic_write_text

__all__ = ["collect", "stil_study", "main"]

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


def collect(run_dir: str | Path) -> dict[str, dict[str, Any]]:
    """``{study point: results}`` of every ``results.json`` under ``run_dir`` (newest wins)."""
    out: dict[str, dict[str, Any]] = {}
    files = sorted(Path(run_dir).rglob("results.json"), key=lambda p: p.stat().st_mtime)
    for f in files:
        try:
            res = json.loads(f.read_text())
        except json.JSONDecodeError as e:
            raise ValueError(f"{f}: not valid JSON ({e})") from e
        point = (res.get("study") or {}).get("point")
        if point:
            res["_path"] = str(f.parent)
            out[point] = res
    return out


def _map(res: dict[str, Any] | None, iou: str = "0.5") -> float:
    return float(res["video_mAP"][iou]) if res and iou in res.get("video_mAP", {}) else float("nan")


def _fmt(x: float) -> str:
    return "–" if not np.isfinite(x) else f"{x:.4f}"


def _holds(values: Sequence[float]) -> str:
    v = [x for x in values if np.isfinite(x)]
    if len(v) < len(values):
        return "incomplete"
    return "holds" if all(a < b for a, b in zip(v, v[1:])) else "does not hold"


def stil_study(run_dir: str | Path, out_dir: str | Path | None = None) -> dict[str, Any]:
    """Write the study's tables and plots (see the module docstring); return the numbers."""
    from wsal import viz

    runs = collect(run_dir)
    if not runs:
        raise FileNotFoundError(f"{run_dir}: no results.json with a study point under it")
    out = Path(out_dir or run_dir)
    out.mkdir(parents=True, exist_ok=True)
    any_res = next(iter(runs.values()))
    proto = f"protocol={any_res['protocol']}, nms={any_res['nms']:g}, split={any_res['split']}"
    t1 = {
        name: {"mAP@0.5": _map(runs.get(p)), "mAP@0.2": _map(runs.get(p), "0.2")}
        for p, name in TABLE1
    }
    f5 = {name: _map(runs.get(p)) for p, name in FIG5}
    f6 = {
        name: {
            "cost_s": float(runs[p]["annotation_cost_s"]) if p in runs else float("nan"),
            "mAP@0.5": _map(runs.get(p)),
        }
        for p, name in FIG6
    }
    checks = {
        "Table 1: MIL < GMIL(10) < STIL w/o Prim < STIL": _holds(
            [t1[k]["mAP@0.5"] for k in ("MIL", "GMIL µ=10", "STIL w/o Temporal Prim", "STIL")]
        ),
        "Figure 5: none < both": _holds([f5["none"], f5["both"]]),
        "Figure 6: labels < boxes": _holds([f6["labels"]["mAP@0.5"], f6["boxes"]["mAP@0.5"]]),
    }
    lines = [
        f"# STIL study on {any_res.get('dataset', '?')} ({len(runs)} runs, {proto})",
        "",
        f"Runs: `{run_dir}`. Video-mAP as in the ACT/MOC reference (`{proto}`).",
        "",
        "## Table 1: selection strategies (video labels only, no reranking)",
        "",
        "| method | video-mAP@0.2 | video-mAP@0.5 |",
        "|---|---|---|",
    ]
    lines += [f"| {k} | {_fmt(v['mAP@0.2'])} | {_fmt(v['mAP@0.5'])} |" for k, v in t1.items()]
    lines += ["", "## Figure 5: reranking (STIL, video labels)", ""]
    lines += ["| reranking | video-mAP@0.2 | video-mAP@0.5 |", "|---|---|---|"]
    lines += [
        f"| {name} | {_fmt(_map(runs.get(p), '0.2'))} | {_fmt(f5[name])} |" for p, name in FIG5
    ]
    lines += ["", "## Figure 6: supervision level vs annotation cost (STIL, no reranking)", ""]
    lines += [
        "| supervision | cost (s / training video) | video-mAP@0.2 | video-mAP@0.5 |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| {name} | {f6[name]['cost_s']:.2f} | {_fmt(_map(runs.get(p), '0.2'))} | "
        f"{_fmt(f6[name]['mAP@0.5'])} |"
        for p, name in FIG6
    ]
    lines += ["", "## The paper's orderings", ""]
    lines += [f"- {k}: **{v}**" for k, v in checks.items()]
    atomic_write_text(out / "stil_study.md", "\n".join(lines) + "\n")
    viz.plot_bars(
        {k: v for k, v in f5.items() if np.isfinite(v)},
        out / "fig5_reranking.png",
        title="STIL reranking (video-mAP@0.5)",
        ylabel="video-mAP@0.5",
    )
    pts = {k: (v["cost_s"], v["mAP@0.5"]) for k, v in f6.items() if np.isfinite(v["mAP@0.5"])}
    viz.plot_cost(pts, out / "fig6_supervision.png", title="STIL: mAP@0.5 vs annotation cost")
    res = {"protocol": proto, "table1": t1, "fig5": f5, "fig6": f6, "checks": checks}
    res["runs"] = {p: r["_path"] for p, r in runs.items()}
    atomic_write_json(out / "stil_study.json", res, indent=1)
    return res


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m wsal.report", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="report", required=True)
    s = sub.add_parser("stil", help="STIL study: Table 1, Figure 5, Figure 6")
    s.add_argument("run_dir", help="multirun folder (searched recursively for results.json)")
    s.add_argument("--out", default=None, help="report folder (default: run_dir)")
    args = p.parse_args(argv)
    res = stil_study(args.run_dir, args.out)
    print((Path(args.out or args.run_dir) / "stil_study.md").read_text())
    return 0 if res else 1


if __name__ == "__main__":
    raise SystemExit(main())
