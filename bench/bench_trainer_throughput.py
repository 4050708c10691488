"""Actor-attention training throughput through the Lightning Trainer: plain vs DDP on one device,
0 vs N dataloader workers (samples/s of the fit loop, after warm-up steps).

What it answers: does the DDP wrapper cost anything on one device (it should not: one process,
no all-reduce partner), and do the dataloader workers keep the model fed (decode overlaps the
step)? Run on a GPU machine for the figures that matter:

    python bench/bench_trainer_throughput.py --accelerator gpu --encoder vgg16 --size 224 224
    python bench/bench_trainer_throughput.py --accelerator cpu --encoder small --size 120 160   # laptop

Samples/s = videos (clips of --frames frames) per second, measured between the end of warm-up
and the end of the last step by a callback (synchronising CUDA first). Figures are printed,
never asserted.
"""

from __future__ import annotations

import argparse
import functools
import time
import warnings
from pathlib import Path

import pytorch_lightning as pl
import torch

import wsal  # noqa: F401  (OpenCV before decord)
from wsal.data.datamodule import ActorTubeDataModule
from wsal.data.datasets import SynthActors
from wsal.detection.backends import StoredDetections
from wsal.linking import TemporalPrimLinker, link_cached
from wsal.models.actor_attention import ActorAttention

ROOT = Path(__file__).resolve().parents[1]


class Clock(pl.Callback):
    """Samples/s between batch ``warmup`` and the last batch."""

    def __init__(self, warmup: int) -> None:
        self.warmup, self.n, self.t0, self.samples = warmup, 0, None, 0

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        self.n += 1
        if self.n == self.warmup:
            self.t0 = time.perf_counter()
        elif self.n > self.warmup:
            self.samples += int(batch["label"].shape[0])
            self.t1 = time.perf_counter()

    @property
    def rate(self) -> float:
        return self.samples / (self.t1 - self.t0) if self.t0 and self.samples else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--accelerator", default="gpu" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--encoder", default="small")
    ap.add_argument("--size", type=int, nargs=2, default=[120, 160], metavar=("H", "W"))
    ap.add_argument("--frames", type=int, default=8)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--workers", type=int, default=2, help="the 'with workers' setting")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--precision", default=None, help="default: bf16-mixed on GPU, 32 on CPU")
    ap.add_argument("--data-dir", default=str(ROOT / "data"))
    args = ap.parse_args()
    precision = args.precision or ("bf16-mixed" if args.accelerator == "gpu" else "32-true")
    ds = SynthActors(root=str(Path(args.data_dir) / "synthactors"), progress=False)
    rows = []
    for strategy in ("auto", "ddp"):
        for workers in (0, args.workers):
            dm = ActorTubeDataModule(
                ds,
                functools.partial(
                    link_cached,
                    detector=StoredDetections(name="synthetic"),
                    linker=TemporalPrimLinker(num_tubes=20, progress=False),
                    cache_dir=str(Path(args.data_dir) / "cache"),
                ),
                num_frames=args.frames,
                num_tubes=20,
                batch_size=args.batch,
                num_workers=workers,
                val_fraction=0.0,
                frame_size=tuple(args.size),
            )
            model = ActorAttention(
                num_classes=7, encoder=args.encoder, channels_last=args.accelerator == "gpu"
            )
            clock = Clock(args.warmup)
            trainer = pl.Trainer(
                accelerator=args.accelerator,
                devices=1,
                strategy=strategy,
                precision=precision,
                max_steps=args.warmup + args.steps,
                logger=False,
                enable_checkpointing=False,
                enable_progress_bar=False,
                enable_model_summary=False,
                num_sanity_val_steps=0,
                callbacks=[clock],
            )
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                trainer.fit(model, datamodule=dm)
            rows.append((strategy, workers, clock.rate))
            print(
                f"strategy={strategy:4s} workers={workers}: {clock.rate:.2f} samples/s", flush=True
            )
    dev = torch.cuda.get_device_name(0) if args.accelerator == "gpu" else "CPU"
    print(
        f"\n{dev}, torch {torch.__version__}, {torch.get_num_threads()} threads, encoder "
        f"{args.encoder}, {args.frames} frames of {args.size[0]}x{args.size[1]}, batch "
        f"{args.batch}, {precision}\n"
    )
    print("| strategy | dataloader workers | samples/s |\n|---|---|---|")
    for s, w, r in rows:
        print(f"| {'plain' if s == 'auto' else 'ddp (1 device)'} | {w} | {r:.2f} |")


if __name__ == "__main__":
    main()
