"""Whole-process benchmark: ``python -m wsal.linking temporal_prim`` against a literal Python
transcription of STIL §3.2 (``bench/literal_temporal_prim.py``), start-up included.

    .venv/bin/python bench/bench_linking_cli.py [--videos 16 --frames 4000 --boxes 50 --tubes 8]
        [--runs 3] [--literal-runs 1]

Writes the structured case of ``bench/bench_temporal_prim.py`` (actors on random walks, ~3
jittered boxes each per frame, clutter up to ~``--boxes`` per frame) as one detections store,
checks on its first two videos (first 300 frames) that both commands link the same tubes, then
runs each command as a separate process (``--runs`` / ``--literal-runs`` times) and prints the
wall-clock medians, the ratio and whether the CLI imported torch (it should not: the numpy path
needs none). No assertions on time.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from wsal.data.detections import save_detections
from wsal.structures import TubeDetections

HERE = Path(__file__).resolve().parent


def _make_video():
    spec = importlib.util.spec_from_file_location("_btp", HERE / "bench_temporal_prim.py")
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module.make_video


def cli(det: Path, out: Path, k: int) -> list[str]:
    return [sys.executable, "-m", "wsal.linking", "temporal_prim", "--detections", str(det),
            "--out", str(out), "--num-tubes", str(k)]  # fmt: skip


def literal(det: Path, out: Path, k: int) -> list[str]:
    return [sys.executable, str(HERE / "literal_temporal_prim.py"), str(det), str(out), str(k)]


def timed(cmd: list[str], runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        out.append(time.perf_counter() - t)
    return out


def same_tubes(det: Path, ours: Path, theirs: Path) -> bool:
    """The CLI's tubes (boxes per frame) equal the literal's (box rows of the store), per video
    in order."""
    with np.load(det) as z:
        video, frame, boxes = z["video"], z["frame"], z["boxes"]
    mine = TubeDetections.load(ours)
    with np.load(theirs) as z:
        lit_video, lengths, index = z["video"], z["lengths"], z["box_index"]
    starts = np.concatenate([[0], np.cumsum(lengths)])
    for v in dict.fromkeys(lit_video.tolist()):
        rows = np.nonzero(video == v)[0]
        lit = [
            np.sort(frame[rows][index[starts[i] : starts[i + 1]]]).tolist()
            for i in np.nonzero(lit_video == v)[0]
        ]
        lit_boxes = [
            boxes[rows][index[starts[i] : starts[i + 1]]][
                np.argsort(frame[rows][index[starts[i] : starts[i + 1]]])
            ]
            for i in np.nonzero(lit_video == v)[0]
        ]
        own = [i for i in range(len(mine)) if mine.video[i] == v]
        if len(own) != len(lit):
            return False
        for i, fr, bx in zip(own, lit, lit_boxes):
            t = mine.tube(i)
            if t[:, 0].astype(int).tolist() != fr or not np.allclose(t[:, 1:], bx, atol=1e-3):
                return False
    return True


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--videos", type=int, default=16)
    ap.add_argument("--frames", type=int, default=4000)
    ap.add_argument("--boxes", type=int, default=50)
    ap.add_argument("--tubes", type=int, default=8)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--literal-runs", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    make_video = _make_video()
    rng = np.random.default_rng(args.seed)
    dets = {f"video{i:02d}": make_video(rng, args.frames, args.boxes) for i in range(args.videos)}
    n = sum(len(d) for d in dets.values())
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        small = tmp_path / "small.npz"
        save_detections(small, {v: d.select(d.frame < 300) for v, d in list(dets.items())[:2]})
        subprocess.run(cli(small, tmp_path / "a.npz", args.tubes), check=True, capture_output=True)
        subprocess.run(
            literal(small, tmp_path / "b.npz", args.tubes), check=True, capture_output=True
        )
        same = same_tubes(small, tmp_path / "a.npz", tmp_path / "b.npz")
        det = tmp_path / "case.npz"
        save_detections(det, dets)
        probe = subprocess.run(
            [sys.executable, "-c", "import sys, runpy\nsys.argv[0] = 'wsal.linking'\ntry:\n"
             "    runpy.run_module('wsal.linking', run_name='__main__', alter_sys=True)\n"
             "finally:\n    print('torch' in sys.modules, file=sys.stderr)",
             *cli(det, tmp_path / "p.npz", args.tubes)[3:]],
            capture_output=True, text=True,
        )  # fmt: skip
        print(
            f"case: {args.videos} videos x {args.frames} frames, {n:,} boxes "
            f"({n / (args.videos * args.frames):.1f}/frame), K={args.tubes}; same tubes on the "
            f"check case: {same}; the CLI imports torch: {probe.stderr.strip().splitlines()[-1]}"
        )
        fast = timed(cli(det, tmp_path / "a.npz", args.tubes), args.runs)
        slow = timed(literal(det, tmp_path / "b.npz", args.tubes), args.literal_runs)
    mf, ms = statistics.median(fast), statistics.median(slow)
    print(f"python -m wsal.linking temporal_prim: median {mf:.2f} s over {len(fast)} runs {fast}")
    print(f"literal transcription:                median {ms:.2f} s over {len(slow)} runs")
    print(f"ratio literal / CLI: {ms / mf:.1f}x (whole processes, start-up included)")


if __name__ == "__main__":
    main()
