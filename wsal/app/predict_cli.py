"""The arguments of ``python -m wsal.predict`` (argparse only: ``--help`` answers without
importing torch; the work is :mod:`wsal.app.predict`, docs/predict.md)."""

from __future__ import annotations

import argparse

__all__ = ["DEFAULT_SHORT_SIDE", "parser"]

#: Default working size: the short side of the frames detection and linking run on. HOG finds
#: people from about 100 pixels tall (its 128-pixel window holds a 96-pixel body), so at 360 a
#: person half the frame's height is found; 240 is 2.3x faster and misses people under 2/5 of it.
DEFAULT_SHORT_SIDE = 360


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m wsal.predict",
        description="Run wsal on any video file: people detected, linked into actor tubes "
        "(shot by shot), scored (by a trained run with --run, else labelled 'person'); writes "
        "DIR/tubes.json (TubeDetections JSON: video = file stem, 0-based frames, boxes in the "
        "video's own pixels) and DIR/<stem>.mp4 (overlay of the top tubes). See docs/predict.md.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument(
        "videos", nargs="+", metavar="VIDEO", help="video files (anything decord or PyAV reads)"
    )
    p.add_argument(
        "--out", required=True, metavar="DIR", help="output folder (new or empty; see --overwrite)"
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the files of an earlier `python -m wsal.predict` in DIR (refused for any other non-empty folder)",
    )
    p.add_argument(
        "--run",
        metavar="RUN_DIR",
        default=None,
        help="a trained train.py run folder (actor attention or STIL): its model scores the tubes and its classes label them; without it tubes are labelled 'person' with their linking score",
    )
    p.add_argument(
        "--detector",
        choices=["hog", "torchvision", "file"],
        default="hog",
        help="hog: OpenCV's HOG people detector (no download), windows mapped to tight body boxes; torchvision: Faster R-CNN (weights must be on disk); file: boxes from --detections",
    )
    p.add_argument(
        "--detections",
        metavar="FILE",
        default=None,
        help="with --detector file: a wsal detections store (.npz file or folder; video id = file stem, 0-based frames, xyxy boxes in the video's own pixels)",
    )
    p.add_argument(
        "--linker",
        choices=["actor", "temporal_prim", "viterbi"],
        default="actor",
        help="actor: detections tracked by SiamFC with the pretrained EfficientNet-Lite0 embedding (Guess Where? Alg. 1); temporal_prim (STIL §3.2) and viterbi: detections only, faster",
    )
    p.add_argument("--num-tubes", type=int, default=5, metavar="N", help="most tubes per shot")
    p.add_argument(
        "--batch-seeds",
        type=int,
        default=1,
        metavar="B",
        help="actor linking: seeds tracked together per tracker call (speed only, the tubes do not depend on it; on a CPU 1 and 4 measured the same, on a GPU a batch fills the device; a seed that an earlier one of its batch suppresses is tracked for nothing)",
    )
    p.add_argument(
        "--short-side",
        type=int,
        default=DEFAULT_SHORT_SIDE,
        metavar="PX",
        help="working size: frames are decoded with their short side scaled to this for detection and linking (0 = the video's own size); boxes are mapped back to the original pixels",
    )
    p.add_argument(
        "--stride",
        type=int,
        default=1,
        metavar="S",
        help="detect and link every S-th frame only, boxes interpolated in between (S times less detection and tracking)",
    )
    p.add_argument(
        "--top",
        type=int,
        default=3,
        metavar="K",
        help="tubes drawn in the overlay video and printed",
    )
    p.add_argument(
        "--overlay",
        choices=["working", "native", "none"],
        default="working",
        help="overlay video size: the working size, the video's own size, or no overlay",
    )
    p.add_argument(
        "--all-labels",
        action="store_true",
        help="with --run: one tubes.json entry per (tube, class) (what evaluation wants) instead of each tube's best class",
    )
    p.add_argument(
        "--device",
        default="cpu",
        help="torch device for the tracker, detector and model (cpu, cuda, cuda:1)",
    )
    p.add_argument(
        "--threads",
        type=int,
        default=0,
        metavar="N",
        help="CPU threads for torch and OpenCV (0: their defaults)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument(
        "--debug", action="store_true", help="stop at the first error with its traceback"
    )
    return p  # fmt: skip
