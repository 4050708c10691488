"""Run a torchvision detector over a dataset: ``python -m wsal.detection ... --out dets.npz``.

Examples::

    # people in the embedded benchmark, random init (no weights needed; for trying things out)
    python -m wsal.detection --synthactors data/synthactors --weights none --device cpu \\
        --model fasterrcnn_mobilenet_v3_large_320_fpn --out data/dets.npz
    # a real person detector on 4 GPUs (weights from $TORCH_HOME/hub/checkpoints)
    python -m wsal.detection --annotations data/ucf101-24/annotations.json \\
        --root data/ucf101-24 --out data/ucf101-24/frcnn_person.npz --devices 4 --strategy ddp

Writes one detections store (``video``, ``frame`` 0-based, ``boxes`` xyxy pixels, ``scores``,
``labels`` = category index) and, beside it, ``<out>.shards/`` with one file per finished video:
run the same command again after an interruption and it resumes from there. Use it with
``detector=file detector.path=<out>``.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from wsal.data.annotations import load_index, read_wsal_json
from wsal.detection.backends import TorchvisionDetector, merged_file_ok
from wsal.errors import cli_main


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m wsal.detection",
        description="Detect the actors of interest in every frame of a dataset's videos.",
    )
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--annotations", help="annotation file (wsal JSON, ACT *-GT.pkl, pyannot)")
    src.add_argument("--synthactors", help="a SynthActors folder (its annotations.json)")
    p.add_argument("--root", help="folder the annotations' video paths are relative to")
    p.add_argument("--split", help="only this split's videos (default: all videos)")
    p.add_argument("--out", required=True, help="merged detections .npz")
    p.add_argument("--model", default="fasterrcnn_resnet50_fpn_v2", help="torchvision model name")
    p.add_argument(
        "--weights", default="DEFAULT", help="DEFAULT, an enum name, a local path, or none"
    )
    p.add_argument("--download", action="store_true", help="download missing pretrained weights")
    p.add_argument("--classes", nargs="+", default=["person"], help="COCO classes to keep")
    p.add_argument("--score-thresh", type=float, default=0.5, help="keep boxes scoring >= this")
    p.add_argument("--nms", type=float, default=0.5, help="class-wise NMS IoU (<= 0: model's)")
    p.add_argument("--max-per-frame", type=int, default=100, help="most boxes kept per frame")
    p.add_argument("--min-size", type=int, help="model's resize: shorter side (default: model's)")
    p.add_argument("--max-size", type=int, help="model's resize: longer side at most")
    p.add_argument("--batch-frames", type=int, default=16, help="frames per forward pass")
    p.add_argument("--device", default="auto", help="Lightning accelerator: cpu, gpu, auto")
    p.add_argument("--devices", default="1", help="devices per node (int, list or 'auto')")
    p.add_argument("--num-nodes", type=int, default=1, help="nodes (multi-node DDP)")
    p.add_argument("--strategy", default="auto", help="Lightning strategy, e.g. ddp")
    p.add_argument("--precision", default="32-true", help="Lightning precision, e.g. 16-mixed")
    p.add_argument("--workers", type=int, default=2, help="video-decoding workers per device")
    p.add_argument("--seed", type=int, default=0, help="random-init seed (--weights none)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def _devices(text: str) -> int | str | list[int]:
    if text == "auto":
        return text
    if "," in text:
        return [int(x) for x in text.split(",") if x]
    return int(text)


@cli_main
def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.synthactors:
        index = read_wsal_json(Path(args.synthactors) / "annotations.json", root=args.root)
    else:
        index = load_index(args.annotations, root=args.root)
    videos = index.split(args.split) if args.split else None
    detector = TorchvisionDetector(
        model=args.model,
        weights=None if args.weights.lower() == "none" else args.weights,
        classes=args.classes,
        score_thresh=args.score_thresh,
        nms_iou=args.nms if args.nms > 0 else None,
        max_per_frame=args.max_per_frame,
        min_size=args.min_size,
        max_size=args.max_size,
        batch_frames=args.batch_frames,
        device=args.device,
        devices=_devices(args.devices),
        num_nodes=args.num_nodes,
        strategy=args.strategy,
        precision=args.precision,
        num_workers=args.workers,
        progress=not args.no_progress,
        download=args.download,
        seed=args.seed,
    )
    t0 = time.perf_counter()
    out = Path(args.out)
    if merged_file_ok(out):  # a cut file is deleted (logged) and merged again from its shards
        print(f"{out} exists; delete it to detect again (shards in {out}.shards are reused)")
        return 0
    detector.detect(index, out=out, videos=videos)
    n = len(videos) if videos is not None else len(index.videos)
    print(f"{out}: detections of {n} videos ({time.perf_counter() - t0:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
