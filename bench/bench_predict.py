"""End-to-end speed of ``python -m wsal.predict`` (frames/s of the original video) and where the
time goes (decode, detect, link, score, write), on an HD clip and a 320x240 clip.

Both clips are made from the real basketball clip (``../shared/data/real/``, 426x240): upscaled
to 1920x1080 and resized to 320x240, the first ``--frames`` frames, written once to ``bench/out/``
(git-ignored). Each setting runs :func:`wsal.app.predict.predict_video` in this process on
``--threads`` CPU threads (torch and OpenCV; decoding uses FFmpeg's own), overlay included; the
pretrained tracker and HOG are built before the clock starts, as the command builds them before
the first video.

    python bench/bench_predict.py [--threads 2] [--frames 90] [--device cpu]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch

import wsal  # noqa: F401  (OpenCV before decord)
from wsal.app.predict import Settings, build_detector, predict_video
from wsal.data.video import VideoReader, VideoWriter
from wsal.linking.siamfc import PRETRAINED_CONFIG, SiamFCConfig
from wsal.nets.siamfc import make_tracker

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT.parent / "shared" / "data" / "real" / "basketball_gym_426x240.mp4"
OUT = ROOT / "bench" / "out"

#: (clip, label, Settings overrides): the default first, then the levers
SETTINGS = [
    ("hd", "default (short side 360, every frame, 5 tubes/shot)", {}),
    ("hd", "seeds tracked 4 at a time (batch_seeds 4)", {"batch_seeds": 4}),
    ("hd", "short side 240", {"short_side": 240}),
    ("hd", "stride 3", {"stride": 3}),
    ("hd", "short side 240, stride 3", {"short_side": 240, "stride": 3}),
    ("hd", "short side 240, stride 3, 3 tubes/shot", {"short_side": 240, "stride": 3, "num_tubes": 3}),
    ("hd", "short side 240, stride 3, 3 tubes/shot, no overlay",
     {"short_side": 240, "stride": 3, "num_tubes": 3, "overlay": "none"}),
    ("hd", "temporal_prim linker (no tracker)", {"linker": "temporal_prim"}),
    ("hd", "temporal_prim linker, short side 240, stride 3",
     {"linker": "temporal_prim", "short_side": 240, "stride": 3}),
    ("qvga", "default (short side 360, every frame, 5 tubes/shot)", {}),
    ("qvga", "short side 240 (native), stride 3, 3 tubes/shot",
     {"short_side": 240, "stride": 3, "num_tubes": 3}),
]  # fmt: skip


def make_clip(name: str, size: tuple[int, int], frames: int) -> Path:
    """``bench/out/<name>_<W>x<H>_<frames>.mp4`` from the basketball clip, made once."""
    path = OUT / f"{name}_{size[0]}x{size[1]}_{frames}.mp4"
    if path.is_file():
        return path
    reader = VideoReader(SOURCE)
    with VideoWriter(path, *size, fps=reader.fps or 30.0, crf=20) as writer:
        for c in range(0, min(frames, reader.num_frames), 16):
            idx = np.arange(c, min(c + 16, frames, reader.num_frames))
            chunk = reader.get_frames(idx)
            writer.write(
                np.stack([cv2.resize(f, size, interpolation=cv2.INTER_CUBIC) for f in chunk])
            )
    return path


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--frames", type=int, default=90, help="frames of each clip")
    p.add_argument("--device", default="cpu")
    p.add_argument("--only", default=None, help="run only settings whose label contains this")
    args = p.parse_args()
    if not SOURCE.is_file():
        raise SystemExit(f"{SOURCE} is absent (the shared real clip)")
    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    clips = {
        "hd": make_clip("basketball", (1920, 1080), args.frames),
        "qvga": make_clip("basketball", (320, 240), args.frames),
    }
    tracker = make_tracker(config=SiamFCConfig(**PRETRAINED_CONFIG), device=args.device)
    detect = build_detector("hog", args.device)
    print(f"torch threads {torch.get_num_threads()}, OpenCV threads {cv2.getNumThreads()}, "
          f"device {args.device}, {args.frames} frames per clip")  # fmt: skip
    print(
        f"{'clip':<10} {'setting':<56} {'frames/s':>8}  {'s':>6}  decode detect link score write  tubes"
    )
    for clip, label, over in SETTINGS:
        if args.only and args.only not in label:
            continue
        settings = Settings(device=args.device, progress=False, **over)
        with tempfile.TemporaryDirectory(dir=OUT) as tmp:
            t = time.perf_counter()
            res = predict_video(clips[clip], settings, detect, tracker, None, Path(tmp))
            secs = time.perf_counter() - t
        i = res.info
        tm = i["timings_s"]
        W, H = i["width"], i["height"]
        print(
            f"{f'{W}x{H}':<10} {label:<56} {i['nframes'] / secs:>8.2f}  {secs:>6.1f}  "
            f"{tm['decode']:>6.1f} {tm['detect']:>6.1f} {tm['link']:>4.1f} {tm['score']:>5.1f} "
            f"{tm['write']:>5.1f}  {i['num_tubes']:>5}",
            flush=True,
        )


if __name__ == "__main__":
    main()
