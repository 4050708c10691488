"""``python -m wsal.app.prepare`` end to end on a tiny SynthActors laid out as a real dataset
(ACT ``*-GT.pkl`` + ``Frames/<video>/00001.png``), with the dataset's stored detections."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.fixtures.datasets.layouts import synth_as_act
from wsal.app.prepare import detection_stats, expected_vs_found, main, tube_stats
from wsal.data.annotations import UCFSPORTS_LABELS, read_act_pkl, write_act_pkl
from wsal.data.datasets import AnnotatedDataset
from wsal.detection.backends import StoredDetections
from wsal.linking import TemporalPrimLinker
from wsal.linking.temporal_prim import temporal_prim

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def layout(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(dataset folder with GT.pkl + Frames/, the SynthActors folder with detections.npz)."""
    out = tmp_path_factory.mktemp("prep")
    _, synth, _ = synth_as_act(out)
    return out, synth


def _args(root: Path, synth: Path, cache: Path, *extra: str) -> list[str]:
    return [
        "--root", str(root), "--frame-pattern", "{:05d}.png", "--detector", "file",
        "--detections", str(synth / "detections.npz"), "--linker", "temporal_prim",
        "--num-tubes", "3", "--cache-dir", str(cache), "--no-progress", *extra,
    ]  # fmt: skip


def test_prepare_custom_end_to_end(
    tmp_path: Path, layout: tuple[Path, Path], capsys: pytest.CaptureFixture
) -> None:
    root, synth = layout
    cache = tmp_path / "cache"
    args = ["custom", *_args(root, synth, cache, "--annotations", str(root / "GT.pkl"))]
    assert main([*args, "--media-dir", "Frames"]) == 0
    out = capsys.readouterr().out
    assert "OK: no problems found" in out
    (cached,) = cache.glob("tubes__*.npz")
    # the counts printed are those of the data: detections per frame and tubes per video
    index = read_act_pkl(root / "GT.pkl")
    dets = StoredDetections(str(synth / "detections.npz")).load(index)
    d = detection_stats(dets)
    frames = sum(i.nframes for i in index.videos.values())
    assert d["frames"] == frames and d["videos"] == 4
    assert (
        f"4 videos, {frames} frames, {d['boxes']} boxes: {d['boxes_per_frame_mean']:.2f} per frame"
        in out
    )
    # hand-check the tubes against Temporal Prim run directly on one video
    v = next(iter(index.videos))
    direct = temporal_prim(dets[v], num_tubes=3, min_iou=0.1)
    prepared = AnnotatedDataset(str(root / "GT.pkl"), root=str(root / "Frames")).prepare()
    linker = TemporalPrimLinker(num_tubes=3, progress=False)
    from wsal.linking.cache import link_cached

    tubes = link_cached(prepared, StoredDetections(str(synth / "detections.npz")), linker, cache)
    assert list(cache.glob("tubes__*.npz")) == [cached]  # same key: the cache of the CLI run
    np.testing.assert_array_equal(tubes[v].boxes, direct.boxes)
    t = tube_stats(tubes)
    assert f"{t['tubes']} tubes in 4 videos" in out
    # a second run reads both caches: nothing rewritten
    mtime = cached.stat().st_mtime_ns
    assert main([*args, "--media-dir", "Frames"]) == 0
    assert cached.stat().st_mtime_ns == mtime


def test_prepare_standard_dataset_prints_expected_counts(
    tmp_path: Path, layout: tuple[Path, Path], capsys: pytest.CaptureFixture
) -> None:
    """The tiny set under UCF Sports' name: the standard counts (150 videos, 103/47) are printed
    against the 4 found, and preparation carries on (a subset is allowed)."""
    root, synth = layout
    ds = tmp_path / "ucfsports"
    ds.mkdir()
    (ds / "Frames").symlink_to(root / "Frames")
    index = read_act_pkl(root / "GT.pkl")
    index.labels = list(UCFSPORTS_LABELS)  # labels 0, 1 = Diving, Golf
    write_act_pkl(index, ds / "UCFSports-GT.pkl")
    assert main(["ucfsports", *_args(ds, synth, tmp_path / "cache")]) == 0
    out = capsys.readouterr().out
    assert "videos                       150         4   <-- MISMATCH" in out
    assert "train videos                 103         2   <-- MISMATCH" in out
    assert "labels                        10        10\n" in out
    assert "media under" in out and str(ds / "Frames") in out


def test_prepare_broken_download_stops_before_detection(
    tmp_path: Path, layout: tuple[Path, Path], capsys: pytest.CaptureFixture
) -> None:
    root, synth = layout
    ds = tmp_path / "ds"
    shutil.copytree(root / "Frames", ds / "Frames")
    shutil.copy(root / "GT.pkl", ds / "annotations.pkl")
    vids = sorted(p.relative_to(ds / "Frames") for p in (ds / "Frames").glob("*/*"))
    shutil.rmtree(ds / "Frames" / vids[0])  # one video never downloaded
    (ds / "Frames" / vids[1] / "00004.png").unlink()  # one frame missing
    args = ["custom", *_args(ds, synth, tmp_path / "cache"), "--media-dir", "Frames",
            "--annotations", str(ds / "annotations.pkl")]  # fmt: skip
    assert main(args) == 1
    cap = capsys.readouterr()
    assert "[missing_video] 1" in cap.out and "[missing_frame] 1" in cap.out
    assert "frames missing, 0-based 3 (e.g. 00004.png)" in cap.out
    assert "layout problems: fix them" in cap.err
    assert not (tmp_path / "cache").exists()  # nothing detected or linked


def test_prepare_bad_arguments(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["jhmdb", "--root", str(tmp_path), "--split", "4", "--detector", "dataset"]) == 2
    assert "split 4 is out of range; this dataset has splits 1..3" in capsys.readouterr().err
    assert main(["ucfsports", "--root", str(tmp_path), "--detector", "file"]) == 2
    assert "--detector file needs --detections" in capsys.readouterr().err
    # no annotation file: says which file and what to download
    assert main(["ucf101_24", "--root", str(tmp_path), "--detector", "dataset"]) == 1
    err = capsys.readouterr().err
    assert "pyannot_with_class_names.pkl not found" in err and "corrected-UCF101-Annots" in err


def test_expected_vs_found_rows(layout: tuple[Path, Path]) -> None:
    index = read_act_pkl(layout[0] / "GT.pkl")
    rows = expected_vs_found(index, {"videos": 4, "train": 3})
    assert rows[0] == ("videos", 4, 4)
    assert ("train videos", 3, 2) in rows and ("test GT tubes", None, 2) in rows


def test_cli_subprocess(tmp_path: Path, layout: tuple[Path, Path]) -> None:
    root, synth = layout
    args = ["custom", *_args(root, synth, tmp_path / "c"), "--media-dir", "Frames",
            "--annotations", str(root / "GT.pkl")]  # fmt: skip
    out = subprocess.run([sys.executable, "-m", "wsal.app.prepare", *args], cwd=ROOT,
                         capture_output=True, text=True, timeout=300)  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    assert "tubes (temporal_prim)" in out.stdout


def test_stages_come_from_the_configs(tmp_path: Path, layout: tuple[Path, Path]) -> None:
    """The flags are overrides of train.py's configs: the same stages (and cache keys) as the
    classes built by hand with those values."""
    from wsal.app.prepare import build_stages, parser, stage_overrides
    from wsal.configs import compose
    from wsal.detection.backends import TorchvisionDetector
    from wsal.linking import ActorLinker

    root, synth = layout
    cache = tmp_path / "c"
    args = parser().parse_args(
        ["custom", "--root", str(root), "--media-dir", "Frames", "--frame-pattern", "{:05d}.png",
         "--weights", "none", "--device", "cpu", "--cache-dir", str(cache), "--num-tubes", "4"]
    )  # fmt: skip
    dataset, detector, make_linker = build_stages(compose(stage_overrides(args)))
    assert isinstance(dataset, AnnotatedDataset) and dataset.root == str(root / "Frames")
    assert dataset.annotations == root / "annotations.json" and dataset.split is None
    assert dataset.frame_pattern == "{:05d}.png"
    by_hand = TorchvisionDetector(
        weights=None, classes=("person",), device="cpu", num_workers=2,
        out_dir=str(cache / "detections"),
    )  # fmt: skip
    assert isinstance(detector, TorchvisionDetector) and detector.classes == ("person",)
    assert detector.out_dir == cache / "detections" and detector.num_workers == 2
    assert detector.cache_key() == by_hand.cache_key()
    linker = make_linker()
    assert isinstance(linker, TemporalPrimLinker) and linker.num_tubes == 4
    assert linker.cache_key() == TemporalPrimLinker(num_tubes=4).cache_key()
    ckpt = tmp_path / "t.pt"
    ckpt.write_bytes(b"tracker")
    args = parser().parse_args(
        ["jhmdb", "--root", str(root), "--split", "2", "--detector", "dataset", "--linker",
         "actor", "--tracker-checkpoint", str(ckpt), "--cache-dir", str(cache)]
    )  # fmt: skip
    dataset, detector, make_linker = build_stages(compose(stage_overrides(args)))
    assert (dataset.name, dataset.split, dataset.frame_pattern) == ("jhmdb", 2, "{:05d}.png")
    assert isinstance(detector, StoredDetections) and detector.path is None
    assert detector.name == "dataset"  # its cache keys as before
    actor = make_linker()
    assert isinstance(actor, ActorLinker) and actor.checkpoint == str(ckpt)
    assert actor.num_tubes == 10
