"""Benchmark SiamFC tracking throughput: tracked boxes per second, batched over K targets.

    .venv/bin/python bench/bench_tracker.py [--ks 1 8 20 --frames 60 --size 160x120
                                             --threads N --device cpu --checkpoint PATH
                                             --pretrained]

The case: one video of ``--frames`` random frames (uint8, ``--size`` W x H; speed does not depend
on the pixels), K targets starting in the middle frame with boxes of SynthActors size (~25 x 55
px), each tracked forward to the end and backward to frame 0 by one ``SiamFCTracker.track`` call
(K x 3 search crops per frame in one batch). A tracked box is one target-step: K * (T - 1) per
call. One warm-up call, then the best of ``--repeats`` timed calls. Also the per-target loop
(``init`` + ``update``, forward only) for the largest K, for comparison. A random-init network is
used unless ``--checkpoint`` is given (speed does not depend on the weights); ``--pretrained``
times the tracker of real video instead (``SiamFCConfig(**PRETRAINED_CONFIG)``: the frozen
EfficientNet-Lite0 embedding on 64/128-pixel crops, e.g. with ``--size 426x240``). No assertions.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

import wsal  # noqa: F401  (import order: OpenCV before decord)
from wsal.linking.siamfc import PRETRAINED_CONFIG, SiamFCConfig, SiamFCTracker
from wsal.nets.siamfc import SiamFCNet, make_tracker


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--ks", type=int, nargs="+", default=[1, 8, 20])
    p.add_argument("--frames", type=int, default=60)
    p.add_argument("--size", default="160x120", help="frame size WxH")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    p.add_argument("--device", default="cpu")
    p.add_argument("--checkpoint", default=None)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument(
        "--pretrained", action="store_true", help="the EfficientNet-Lite0 tracker of real video"
    )
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    W, H = (int(v) for v in args.size.lower().split("x"))
    T = args.frames
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (T, H, W, 3), dtype=np.uint8)
    if args.checkpoint and args.pretrained:
        p.error("give --checkpoint or --pretrained, not both")
    if args.checkpoint:
        tracker = make_tracker(checkpoint=args.checkpoint, device=args.device)
    elif args.pretrained:
        net = SiamFCNet(SiamFCConfig(**PRETRAINED_CONFIG))
        tracker = SiamFCTracker(net, device=args.device)
    else:
        torch.manual_seed(0)
        tracker = SiamFCTracker(SiamFCNet(), device=args.device)
    sync = torch.cuda.synchronize if tracker.device.type == "cuda" else (lambda: None)
    print(
        f"SiamFC track(): {T} frames {W}x{H}, device {tracker.device}, "
        f"{torch.get_num_threads()} threads, {tracker.config.num_scales} scales, crops "
        f"{tracker.config.exemplar_size}/{tracker.config.search_size}"
    )
    for K in args.ks:
        centre = rng.uniform([0.3 * W, 0.3 * H], [0.7 * W, 0.7 * H], (K, 2))
        size = np.array([0.16 * W, 0.46 * H]) * rng.uniform(0.8, 1.2, (K, 1))
        boxes0 = np.concatenate([centre - size / 2, centre + size / 2], 1).astype(np.float32)
        frame0 = np.full(K, T // 2, np.int64)
        tracker.track(frames[: min(T, 4)], np.minimum(frame0, 3), boxes0)  # warm-up
        best = float("inf")
        for _ in range(args.repeats):
            sync()
            t0 = time.perf_counter()
            tracker.track(frames, frame0, boxes0)
            sync()
            best = min(best, time.perf_counter() - t0)
        n = K * (T - 1)
        print(
            f"  K={K:3d}: {n / best:8.0f} tracked boxes/s  ({best * 1e3 / (T - 1):7.1f} ms per "
            f"frame, {best:.2f} s per video)"
        )
    K = max(args.ks)
    boxes0 = np.tile(np.array([[0.4 * W, 0.3 * H, 0.56 * W, 0.76 * H]], np.float32), (K, 1))
    sync()
    t0 = time.perf_counter()
    for k in range(K):
        tracker.init(frames[0], boxes0[k])
        for t in range(1, T):
            tracker.update(frames[t])
    sync()
    dt = time.perf_counter() - t0
    print(f"  per-target init/update loop, K={K}: {K * (T - 1) / dt:8.0f} tracked boxes/s")


if __name__ == "__main__":
    main()
