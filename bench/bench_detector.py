"""Benchmark the torchvision detector backend: frames/s of the model, and of detection over videos.

    .venv/bin/python bench/bench_detector.py [--model fasterrcnn_mobilenet_v3_large_320_fpn]
        [--weights none] [--device cpu] [--sizes 160x120 320x240] [--batch-frames 16]
        [--iters 3] [--synthactors data/synthactors --videos 4] [--threads N]

1. Model only: one batch of ``--batch-frames`` random frames per size, inference mode, after one
   warm-up batch; frames/s over ``--iters`` batches. ``--min-size`` defaults to each size's
   height (detect at native resolution); pass ``--min-size 0`` for the model's own resize (320 for
   the ``_320`` models, 800 for the R-CNNs).
2. Whole path (``--synthactors`` given and present): ``run_detection`` over its first ``--videos``
   videos (decode, predict, person filter, shard writes, merge) in a temp folder; frames/s.

Random-init weights by default (no download): the network costs the same as a trained one, but
its scores (about 1/91) fall under ``--score-thresh`` so post-processing handles few boxes; with
real weights (``--weights DEFAULT``) expect slightly lower numbers. On a GPU use ``--device cuda``.
No assertions on time. Prints one line per measurement.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

import wsal  # noqa: F401  (OpenCV before decord)
from wsal.data.annotations import read_wsal_json
from wsal.detection.model import build_detector, class_ids
from wsal.detection.predict import DetectorModule, jobs_from_index, run_detection


def _size(text: str) -> tuple[int, int]:
    w, h = text.lower().split("x")
    return int(w), int(h)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--model", default="fasterrcnn_mobilenet_v3_large_320_fpn")
    p.add_argument("--weights", default="none", help="none (random init), DEFAULT, enum, path")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--sizes", nargs="+", default=["160x120", "320x240"], help="WxH frame sizes")
    p.add_argument("--min-size", type=int, default=None, help="model resize (default: height)")
    p.add_argument("--batch-frames", type=int, default=16)
    p.add_argument("--iters", type=int, default=3)
    p.add_argument("--score-thresh", type=float, default=0.5)
    p.add_argument("--synthactors", default="data/synthactors", help="videos for the whole path")
    p.add_argument("--videos", type=int, default=4, help="videos for the whole path (0: skip)")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch default)")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    weights = None if args.weights.lower() == "none" else args.weights
    dev = torch.device(args.device)
    print(
        f"model={args.model} weights={args.weights} device={args.device} "
        f"threads={torch.get_num_threads()} batch_frames={args.batch_frames}"
    )

    for text in args.sizes:
        w, h = _size(text)
        min_size = h if args.min_size is None else (args.min_size or None)
        net, _ = build_detector(
            args.model,
            weights,
            score_thresh=args.score_thresh,
            nms_iou=0.5,
            min_size=min_size,
            max_size=max(w, h) if min_size else None,
        )
        net = net.to(dev)
        gen = torch.Generator().manual_seed(0)
        frames = torch.randint(
            0, 256, (args.batch_frames, 3, h, w), dtype=torch.uint8, generator=gen
        )
        x = list(frames.to(dev).float().div(255).unbind(0))
        with torch.inference_mode():
            net(x)  # warm-up
            if dev.type == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            for _ in range(args.iters):
                net(x)
            if dev.type == "cuda":
                torch.cuda.synchronize()
            dt = time.perf_counter() - t0
        n = args.iters * args.batch_frames
        print(
            f"model only  {w}x{h} (resize min_size={min_size or 'model default'}): "
            f"{n / dt:.1f} frames/s ({dt / n * 1000:.1f} ms/frame)"
        )

    root = Path(args.synthactors)
    if args.videos and (root / "annotations.json").exists():
        index = read_wsal_json(root / "annotations.json")
        jobs = jobs_from_index(index, list(index.videos)[: args.videos])
        h = jobs[0].height or 120
        net, resolved = build_detector(
            args.model, weights, score_thresh=args.score_thresh, nms_iou=0.5, min_size=h
        )
        module = DetectorModule(net, class_ids(resolved.categories, ["person"]), args.score_thresh)
        accelerator = "gpu" if dev.type == "cuda" else "cpu"
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            run_detection(
                jobs,
                module,
                Path(tmp) / "dets.npz",
                batch_frames=args.batch_frames,
                accelerator=accelerator,
                num_workers=1,
                progress=False,
            )
            dt = time.perf_counter() - t0
        frames_total = sum(j.num_frames for j in jobs)
        print(
            f"whole path  {len(jobs)} SynthActors videos {jobs[0].width}x{jobs[0].height}, "
            f"{frames_total} frames (incl. Trainer start-up): {frames_total / dt:.1f} frames/s"
        )


if __name__ == "__main__":
    main()
