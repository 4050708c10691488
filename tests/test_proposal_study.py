"""The proposal-quality study and the actor subcommand of the linker CLI, on a tiny SynthActors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.tiny import TINY_SYNTH
from wsal.app.study import coverage_bound, format_table, run_study
from wsal.data.datasets import SynthActors
from wsal.structures import TubeDetections


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth") / "s"
    return SynthActors(
        root=str(root), workers=1, progress=False, **{**TINY_SYNTH, "videos_per_class_test": 2}
    ).prepare()


class GTTracker:
    """An oracle tracker that returns the ideal full-video tube: the GT boxes of the video's tube
    on its frames, its first/last box before/after. Used to check the bound and the plumbing."""

    def __init__(self, index, videos):
        from wsal.data.video import read_frames

        self.index = index
        self.video_of = {read_frames(index.video_path(v)).tobytes(): v for v in videos}

    def track(self, frames, frame0, boxes0, progress=False):
        T = frames.shape[0]
        tube = self.index.videos[self.video_of[frames.tobytes()]].tubes[0]
        f = np.clip(np.arange(T), tube.frames[0], tube.frames[-1])
        pos = np.searchsorted(tube.frames, f)
        one = tube.boxes[pos].astype(np.float32)  # [T,4]
        return np.repeat(one[None], len(frame0), 0), np.ones((len(frame0), T), np.float32)


def test_study_tables_plot_and_bound(prepared, tmp_path):
    from wsal.linking import ActorLinker, TemporalPrimLinker
    from wsal.linking.viterbi import ViterbiLinker

    index = prepared.index
    test = index.split("test")
    oracle = ActorLinker(num_tubes=3, tracker=GTTracker(index, test), snap_iou=None, progress=False)
    res = run_study(
        prepared,
        {
            "temporal_prim": TemporalPrimLinker(num_tubes=3, progress=False),
            "viterbi": ViterbiLinker(num_tubes=3, progress=False),
            "actor": oracle,
        },
        tmp_path / "out",
        tmp_path / "cache",
        num_tubes=3,
    )
    assert res["num_videos"] == 4 and res["num_gt_tubes"] == 4
    for name in ("temporal_prim", "viterbi", "actor"):
        for t in ("0.2", "0.5"):
            curve = np.array(res["linkers"][name]["recall"][t])
            assert curve.shape == (3,) and np.all(np.diff(curve) >= 0)
    # the oracle tube is the ideal whole-video tube: its recall is exactly the bound
    bound = res["bound_full_video_tube"]
    assert res["linkers"]["actor"]["recall"]["0.5"][0] == pytest.approx(bound["0.5"])
    assert res["linkers"]["actor"]["mean_length_fraction"] == pytest.approx(1.0)
    assert bound["0.5"] == coverage_bound(index, "test", 0.5)
    saved = json.loads((tmp_path / "out" / "recall.json").read_text())
    assert saved["linkers"].keys() == res["linkers"].keys()
    md = (tmp_path / "out" / "recall.md").read_text()
    assert md == format_table(res) and "| actor |" in md
    assert (tmp_path / "out" / "recall.png").read_bytes()[:4] == b"\x89PNG"


def test_coverage_bound_by_hand(prepared):
    index = prepared.index
    cov = [
        len(t.frames) / index.videos[v].nframes
        for v in index.split("test")
        for t in index.videos[v].tubes
    ]
    for tau in (0.2, 0.5, 0.9):
        assert coverage_bound(index, "test", tau) == pytest.approx(np.mean(np.array(cov) >= tau))


def test_actor_cli_with_a_checkpoint(prepared, tmp_path, capsys):
    """``python -m wsal.linking actor`` reads detections + annotations, tracks with a checkpoint
    (a random-init net here: the plumbing, not the tracking quality) and writes TubeDetections."""
    from wsal.linking.__main__ import main
    from wsal.nets.siamfc import SiamFCNet, save_checkpoint

    ckpt = save_checkpoint(tmp_path / "t.pt", SiamFCNet())
    root = prepared.index.root
    out = tmp_path / "tubes.npz"
    args = ["actor", "--detections", str(prepared.detections), "--annotations"]
    args += [str(root / "annotations.json"), "--out", str(out), "--num-tubes", "2"]
    args += ["--tracker", str(ckpt)]
    assert main(args) == 0
    td = TubeDetections.load(out)
    videos = set(prepared.index.videos)
    assert set(td.video.tolist()) <= videos and len(td) <= 2 * len(videos)
    for v in videos:
        rows = td.select(np.flatnonzero(td.video == v))
        for i in range(len(rows)):  # whole-video tubes
            assert len(rows.tube(i)) == prepared.index.videos[v].nframes
    capsys.readouterr()
    assert main([*args[:-1], str(tmp_path / "missing.pt")]) == 2  # bad input: one line, exit 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "tracker checkpoint" in err and "missing.pt" in err
    with pytest.raises(FileNotFoundError, match="tracker checkpoint"):
        main([*args[:-1], str(tmp_path / "missing.pt"), "--debug"])


def test_study_linkers_come_from_the_configs(tmp_path, monkeypatch):
    """`--linkers a,b` are conf/linker/<name>.yaml with the flags as overrides; the actor linker
    without --tracker gets the default tracker of --tracker-data (made by the composing code)."""
    from wsal.app import stages
    from wsal.app.study import _parser, make_linker
    from wsal.linking import ActorLinker, TemporalPrimLinker
    from wsal.linking.viterbi import ViterbiLinker

    ckpt = tmp_path / "t.pt"
    ckpt.write_bytes(b"tracker")
    args = _parser().parse_args(["--out", "x", "--tracker", str(ckpt), "--snap-iou", "-1"])
    prim, vit = make_linker("temporal_prim", 7, args), make_linker("viterbi", 7, args)
    assert isinstance(prim, TemporalPrimLinker) and isinstance(vit, ViterbiLinker)
    assert prim.cache_key() == TemporalPrimLinker(num_tubes=7).cache_key()
    assert vit.cache_key() == ViterbiLinker(num_tubes=7).cache_key()
    actor = make_linker("actor", 5, args)
    assert isinstance(actor, ActorLinker) and actor.checkpoint == str(ckpt)
    assert actor.num_tubes == 5 and actor.snap_iou is None
    calls = []
    monkeypatch.setattr(stages, "default_tracker_checkpoint", lambda **kw: calls.append(kw) or ckpt)
    args = _parser().parse_args(["--out", "x", "--tracker-data", str(tmp_path / "sa")])
    actor = make_linker("actor", 5, args)
    assert calls == [{"backbone": "alexnet", "data": str(tmp_path / "sa")}]
    assert actor.checkpoint == str(ckpt) and actor.snap_iou == 0.5


def test_actor_cli_without_a_tracker_says_how_to_make_one(prepared, tmp_path):
    from wsal.linking.__main__ import main

    root = prepared.index.root
    args = ["actor", "--detections", str(prepared.detections), "--annotations"]
    args += [str(root / "annotations.json"), "--out", str(tmp_path / "t.npz")]
    with pytest.raises(
        SystemExit, match="give --tracker CKPT.*python -m wsal.models.tracker train"
    ):
        main(args)
    assert not (tmp_path / "t.npz").exists()
