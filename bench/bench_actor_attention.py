"""Throughput of actor-attention training steps: clips/s, peak memory, and data-wait share.

Feeds real batches from the DataModule (SynthActors, decoded with decord, resized to --size) to
training steps of ActorAttention, in fp32 and in bf16 autocast + channels_last, and reports for each:
clips/s of the whole loop, clips/s of the model step alone, the share of loop time spent waiting
for the next batch (decode must keep up: raise --workers or lower the decode size until it is
small), and peak GPU memory. The paper's setting is the default (VGG16, 16 x 224 x 224, batch 4,
20 tubes); on a CPU use e.g. --encoder small --size 120 160 --steps 5.

    python bench/bench_actor_attention.py [--device cuda] [--workers 8] [--steps 30]
"""

from __future__ import annotations

import argparse
import functools
import time
from pathlib import Path

import torch

import wsal  # noqa: F401  (OpenCV before decord)
from wsal.data.datamodule import ActorTubeDataModule
from wsal.data.datasets import SynthActors
from wsal.detection.backends import StoredDetections
from wsal.linking import TemporalPrimLinker, link_cached
from wsal.models.actor_attention import ActorAttention

ROOT = Path(__file__).resolve().parents[1]


def run(dm, device, encoder, precision, steps, warmup):
    torch.manual_seed(0)
    model = ActorAttention(
        num_classes=len(dm.label_names), encoder=encoder, channels_last=precision == "bf16"
    ).to(device)
    opt = model.configure_optimizers()["optimizer"]
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    loader = iter(dm.train_dataloader())
    wait = step_t = 0.0
    n = 0
    t_all = None
    for i in range(warmup + steps):
        t0 = time.perf_counter()
        try:
            batch = next(loader)
        except StopIteration:
            loader = iter(dm.train_dataloader())
            batch = next(loader)
        batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
        t1 = time.perf_counter()
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
            tube_logits = model(batch["frames"], batch["boxes"], batch["box_valid"])
            logits, ok = model.video_logits(tube_logits, batch)
        loss = torch.nn.functional.cross_entropy(logits[ok].float(), batch["label"][ok])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        t2 = time.perf_counter()
        if i == warmup:
            t_all = t0
        if i >= warmup:
            wait += t1 - t0
            step_t += t2 - t1
            n += batch["frames"].shape[0]
    total = time.perf_counter() - t_all
    peak = torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else float("nan")
    print(
        f"{precision:>5}: {n / total:7.2f} clips/s (loop), {n / step_t:7.2f} clips/s (step only), "
        f"data wait {100 * wait / total:5.1f}% of loop time, peak GPU memory {peak:.2f} GiB"
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--encoder", default="vgg16")
    ap.add_argument("--size", type=int, nargs=2, default=[224, 224], metavar=("H", "W"))
    ap.add_argument("--frames", type=int, default=16)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--data-dir", default=str(ROOT / "data"))
    args = ap.parse_args()
    device = torch.device(args.device)
    dm = ActorTubeDataModule(
        SynthActors(root=f"{args.data_dir}/synthactors", progress=False),
        functools.partial(
            link_cached,
            detector=StoredDetections(name="synthetic"),
            linker=TemporalPrimLinker(num_tubes=20, progress=False),
            cache_dir=f"{args.data_dir}/cache",
        ),
        num_frames=args.frames,
        num_tubes=20,
        batch_size=args.batch,
        num_workers=args.workers,
        frame_size=tuple(args.size),
    )
    dm.prepare_data()
    dm.setup("fit")
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(
        f"device={name} encoder={args.encoder} clip={args.frames}x{args.size[0]}x{args.size[1]} "
        f"batch={args.batch} tubes=20 workers={args.workers} steps={args.steps}"
    )
    for precision in ("fp32", "bf16"):
        run(dm, device, args.encoder, precision, args.steps, args.warmup)


if __name__ == "__main__":
    main()
