"""Actor linking throughput on SynthActors videos: one process against ``--workers`` processes.

    .venv/bin/python bench/bench_actor_workers.py --data data/synthactors --videos 24 --workers 2

Links the first ``--videos`` test videos of a SynthActors folder (its simulated detections) with
the default tracker checkpoint (``--tracker``; default: the one ``ensure_tracker`` made for that
folder, trained on first use) through ``ActorLinker(workers=...)``, 20 tubes per video as
``conf/linker/actor.yaml``, and prints seconds, videos/s, the torch threads and the load average.
``--workers 1 --threads 2`` is one process with two torch threads; ``--workers 2`` is two
processes with one thread each (process start-up included: time the whole command to compare).
No assertions on time; the tubes are the same for any ``--workers`` (tests/test_actor_linking.py).
"""

from __future__ import annotations

import argparse
import os
import time

import torch

from wsal.data.annotations import read_wsal_json
from wsal.data.detections import load_detections
from wsal.linking.actor import ActorLinker
from wsal.models.tracker import ensure_tracker
from wsal.nets.siamfc import make_tracker


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", default="data/synthactors", help="SynthActors folder")
    p.add_argument("--videos", type=int, default=24, help="first N test videos")
    p.add_argument("--workers", type=int, default=1, help="linking processes")
    p.add_argument("--threads", type=int, default=None, help="torch threads of this process")
    p.add_argument("--tracker", default=None, help="SiamFC checkpoint (default: ensure_tracker)")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    index = read_wsal_json(os.path.join(args.data, "annotations.json"), args.data)
    videos = index.split("test")[: args.videos]
    frames = {v: info.nframes for v, info in index.videos.items()}
    every = load_detections(os.path.join(args.data, "detections.npz"), frames)
    dets = {v: every[v] for v in videos}
    ckpt = args.tracker or ensure_tracker(args.data)
    linker = ActorLinker(
        num_tubes=20, checkpoint=ckpt, make_tracker=make_tracker, workers=args.workers,
        progress=False,
    )  # fmt: skip
    t0 = time.perf_counter()
    tubes = linker.link(dets, index=index)
    sec = time.perf_counter() - t0
    n = sum(t.num_tubes for t in tubes.values())
    print(
        f"workers {args.workers}  torch threads {torch.get_num_threads()}  videos {len(tubes)}  "
        f"tubes {n}  {sec:.1f} s  {len(tubes) / sec:.2f} videos/s  "
        f"load average {os.getloadavg()[0]:.2f}"
    )


if __name__ == "__main__":
    main()
