"""Benchmark actor attention's frozen-encoder tube features on SynthActors (the `make demo` path).

    .venv/bin/python bench/bench_tube_features.py [--root data/synthactors] [--videos N]
        [--encoder efficientnet_lite0] [--frame-size 240 320] [--frames 16] [--tubes 10]
        [--workers 0]

Links Temporal Prim tubes (from the tube cache), then runs
:func:`wsal.models.tube_features.cached_tube_features` from scratch into a fresh temporary cache
(decoding, resizing, the encoder, actor-of-interest pooling, writing) over the training videos
(or the first ``--videos``), then again (the warm path: the cache is read). Prints wall time,
videos/s and encoded frames/s. The dataset is generated on first use as ``dataset=synthetic``
does. No assertions on time.
"""

from __future__ import annotations

import argparse
import functools
import tempfile
import time

import torch

import wsal  # noqa: F401  (OpenCV before decord)
from wsal.data.datamodule import ActorTubeDataModule
from wsal.data.datasets import SynthActors
from wsal.detection.backends import StoredDetections
from wsal.linking.cache import link_cached
from wsal.linking.temporal_prim import TemporalPrimLinker
from wsal.models.actor_attention import ActorAttention
from wsal.models.tube_features import cached_tube_features


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--root", default="data/synthactors")
    ap.add_argument("--videos", type=int, default=None, help="only the first N training videos")
    ap.add_argument("--encoder", default="efficientnet_lite0")
    ap.add_argument("--weights", default="imagenet")
    ap.add_argument("--frame-size", type=int, nargs=2, default=[240, 320], metavar=("H", "W"))
    ap.add_argument("--frames", type=int, default=16)
    ap.add_argument("--tubes", type=int, default=10)
    ap.add_argument("--workers", type=int, default=0, help="DataLoader workers decoding videos")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as cache:
        dataset = SynthActors(root=args.root, progress=False)
        dm = ActorTubeDataModule(
            dataset,
            functools.partial(
                link_cached,
                detector=StoredDetections(name="synthetic"),
                linker=TemporalPrimLinker(num_tubes=args.tubes, progress=False),
                cache_dir=f"{args.root}/../cache",
            ),
            num_frames=args.frames,
            num_tubes=args.tubes,
            batch_size=4,
            num_workers=args.workers,
            frame_size=args.frame_size,
        )
        dm.prepare_data()
        dm.setup("fit")
        videos = dm.split_videos("train")[: args.videos]
        dm._videos["train"] = videos  # the benchmark's subset
        model = ActorAttention(
            num_classes=len(dm.label_names),
            encoder=args.encoder,
            encoder_weights=args.weights,
            trainable_encoder=False,
        )
        key = {"bench": True, "frame_size": args.frame_size, "frames": args.frames}
        device = "cuda" if torch.cuda.is_available() else "cpu"
        print(
            f"{len(videos)} videos x {args.frames} frames at {args.frame_size[1]}x"
            f"{args.frame_size[0]}, {args.tubes} tubes, {args.encoder}, {device}, "
            f"{torch.get_num_threads()} threads, {args.workers} workers"
        )
        for label in ("cold", "warm"):
            t = time.perf_counter()
            data = cached_tube_features(
                model.net, dm.fixed_dataloader("train"), videos, cache, key, device, progress=False
            )
            dt = time.perf_counter() - t
            n = len(videos)
            print(
                f"{label}: {dt:7.2f} s  {n / dt:7.2f} videos/s  {n * args.frames / dt:8.1f} frames/s"
                f"  features {tuple(data['features'].shape)} float16"
            )


if __name__ == "__main__":
    main()
