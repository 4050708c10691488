"""Bad inputs, one case each: a clear error naming the file / key / video (one line and exit 2 in
the CLIs, a traceback only with ``--debug`` or ``HYDRA_FULL_ERROR=1``), or a correct result, and
nothing half-written left behind (docs/checks-inputs.md lists what is checked).

Sections: the evaluator's checks (API and CLI), the CLIs' error line, unreadable caches (logged,
deleted, rebuilt), run folders as data (``_target_`` allow-list) and checkpoints read once.
"""

from __future__ import annotations

import logging
import os
import pickle
import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import yaml

from wsal.data.annotations import DatasetIndex, GTTube, VideoInfo, write_wsal_json
from wsal.errors import InputError, error_line
from wsal.evaluation import GroundTruth, video_ap
from wsal.evaluation.__main__ import main as eval_main
from wsal.evaluation.protocol import DetectionError, frame_map, pr_curves
from wsal.structures import Detections, TubeDetections

ROOT = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------------------------ fixtures
def gt_index() -> DatasetIndex:
    """Two test videos of 20 frames (one GT tube each, frames 2..11) and one train video."""
    videos = {}
    for i, (vid, lab) in enumerate((("a/v0", 0), ("b/v1", 1), ("a/v2", 0))):
        frames = np.arange(2, 12)
        boxes = np.tile(np.array([10.0 + i, 20.0, 50.0 + i, 80.0], np.float32), (10, 1))
        videos[vid] = VideoInfo(
            nframes=20,
            labels=[lab],
            tubes=[GTTube(lab, frames, boxes)],
            width=160,
            height=120,
            fps=25.0,
            path=f"{vid}.mp4",
        )
    return DatasetIndex(["a", "b"], {"train": ["a/v2"], "test": ["a/v0", "b/v1"]}, videos)


def perfect_dets(index: DatasetIndex) -> list[tuple[str, int, float, np.ndarray]]:
    """The GT tubes of the test videos as detections (mAP 1.0)."""
    return [
        (v, t.label, 0.9, t.rows().astype(np.float64))
        for v in index.split("test")
        for t in index.videos[v].tubes
    ]


@pytest.fixture
def gt_files(tmp_path):
    index = gt_index()
    write_wsal_json(index, tmp_path / "gt.json")
    return index, tmp_path / "gt.json"


def spoil(items, i: int, how: str):
    """Detection ``i`` of ``items`` made bad in one way."""
    v, lab, s, rows = items[i]
    rows = rows.copy()
    if how == "negative frame":
        rows[:, 0] -= rows[0, 0] + 1  # frames -1, 0, ...
    elif how == "frame beyond nframes":
        rows[:, 0] += 15  # the video has 20 frames (0..19)
    elif how == "x2 < x1":
        rows[3, 3] = rows[3, 1] - 5
    elif how == "y2 < y1":
        rows[3, 4] = rows[3, 2] - 5
    elif how == "unknown video":
        v = "a/v0_typo"
    items = list(items)
    items[i] = (v, lab, s, rows)
    return items


BAD_DETECTIONS = {
    "negative frame": "negative frame -1",
    "frame beyond nframes": "beyond the video's last frame 19",
    "x2 < x1": "x2 < x1 or y2 < y1",
    "y2 < y1": "x2 < x1 or y2 < y1",
    "unknown video": "not one of the 2 evaluated videos",
}


def files_in(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


# ------------------------------------------------------------------- the evaluator's checks
def test_perfect_detections_give_map_one(gt_files):
    index, _ = gt_files
    gt = GroundTruth.from_index(index, "test")
    assert video_ap(gt, TubeDetections.from_list(perfect_dets(index)), [0.5]).map(0.5) == 1.0


@pytest.mark.parametrize("how", list(BAD_DETECTIONS))
def test_evaluator_refuses_bad_detection_naming_it_and_its_video(gt_files, how):
    """Each of these silently changed the mAP before (a negative frame 1.0 -> 0.8, x2 < x1
    1.0 -> 0.5, a misnamed video dropped)."""
    index, _ = gt_files
    gt = GroundTruth.from_index(index, "test")
    dets = TubeDetections.from_list(spoil(perfect_dets(index), 1, how))
    video = "a/v0_typo" if how == "unknown video" else "b/v1"
    for evaluate in (
        lambda: video_ap(gt, dets, [0.5]),
        lambda: pr_curves(gt, dets, 0.5),
        lambda: frame_map(gt, dets, [0.5]),
    ):
        with pytest.raises(DetectionError) as err:
            evaluate()
        assert f"detection 1 (video {video!r})" in str(err.value)
        assert BAD_DETECTIONS[how] in str(err.value)


@pytest.mark.parametrize("how", list(BAD_DETECTIONS))
def test_evaluation_cli_one_error_line_naming_the_file_and_no_output(
    gt_files, tmp_path, how, capsys
):
    index, gt_path = gt_files
    TubeDetections.from_list(spoil(perfect_dets(index), 1, how)).save(tmp_path / "d.npz")
    before = files_in(tmp_path)
    args = ["--gt", str(gt_path), "--detections", str(tmp_path / "d.npz")]
    assert eval_main([*args, "--json", str(tmp_path / "r.json")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert err.startswith(f"error: {tmp_path / 'd.npz'}: detection 1 (video ")
    assert BAD_DETECTIONS[how] in err
    assert files_in(tmp_path) == before  # no results file, no temp file


def test_unknown_videos_ignored_only_when_asked_and_counted(gt_files, tmp_path):
    index, gt_path = gt_files
    items = perfect_dets(index) + [("c/elsewhere", 0, 0.99, perfect_dets(index)[0][3])] * 3
    dets = TubeDetections.from_list(items)
    gt = GroundTruth.from_index(index, "test")
    res = video_ap(gt, dets, [0.5], ignore_unknown_videos=True)
    assert res.map(0.5) == 1.0 and res.ignored_unknown_videos == 3 and res.num_detections == 2
    assert res.to_json([0.5])["ignored_unknown_videos"] == 3
    assert "ignored_unknown_videos" not in video_ap(
        gt, TubeDetections.from_list(items[:2]), [0.5]
    ).to_json([0.5])
    dets.save(tmp_path / "d.npz")
    out = tmp_path / "r.json"
    args = ["--gt", str(gt_path), "--detections", str(tmp_path / "d.npz"), "--json", str(out)]
    assert eval_main(args) == 2 and not out.exists()
    assert eval_main([*args, "--ignore-unknown-videos"]) == 0
    import json

    res_json = json.loads(out.read_text())
    assert res_json["ignored_unknown_videos"] == 3 and res_json["iou"]["0.5"]["mAP"] == 1.0


def test_unknown_split_one_line_naming_the_gt(gt_files, tmp_path, capsys):
    index, gt_path = gt_files
    TubeDetections.from_list(perfect_dets(index)).save(tmp_path / "d.npz")
    args = ["--gt", str(gt_path), "--detections", str(tmp_path / "d.npz"), "--split", "val"]
    assert eval_main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {gt_path}: --split val: unknown split 'val'")


@pytest.mark.parametrize("iou", [["1.5"], ["-1"], ["0"], ["0.5", "nan"]])
def test_thresholds_outside_zero_one_are_refused(gt_files, tmp_path, iou, capsys):
    index, gt_path = gt_files
    TubeDetections.from_list(perfect_dets(index)).save(tmp_path / "d.npz")
    args = ["--gt", str(gt_path), "--detections", str(tmp_path / "d.npz"), "--iou", *iou]
    assert eval_main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --iou") and "must be in (0, 1]" in err
    gt = GroundTruth.from_index(index, "test")
    with pytest.raises(ValueError, match=r"must be in \(0, 1\]"):
        video_ap(gt, TubeDetections.from_list(perfect_dets(index)), [float(t) for t in iou])


# -------------------------------------------------------------------------- bad input files
class Evil:
    """Unpickling this runs a shell command that writes ``marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"echo pwned > {self.marker}",))


def write_bad(kind: str, folder: Path) -> Path:
    """A bad input file of ``kind``."""
    index = gt_index()
    if kind == "unsafe GT pickle":
        p = folder / "gt-evil.pkl"
        p.write_bytes(pickle.dumps({"gttubes": Evil(folder / "pwned.txt"), "labels": ["a"]}))
    elif kind == "truncated GT pickle":
        p = folder / "gt-cut.pkl"
        p.write_bytes(pickle.dumps({"gttubes": {}, "labels": ["a"] * 40, "nframes": {}})[:25])
    elif kind == "truncated detections npz":
        p = folder / "d-cut.npz"
        TubeDetections.from_list(perfect_dets(index)).save(p)
        p.write_bytes(p.read_bytes()[:200])
    elif kind == "NaN box":
        p = folder / "d-nan.npz"
        d = TubeDetections.from_list(perfect_dets(index))
        rows = d.rows.copy()
        rows[4, 2] = np.nan
        np.savez(
            p, video=d.video.astype(str), label=d.label, score=d.score, offsets=d.offsets, rows=rows
        )
    elif kind == "missing file":
        p = folder / "nowhere.npz"
    return p


EVAL_CASES = {
    # kind: (is it the GT?, what the line says)
    "unsafe GT pickle": (True, "refusing to load posix.system"),
    "truncated GT pickle": (True, "not a readable pickle"),
    "truncated detections npz": (False, "unreadable detections file"),
    "NaN box": (False, "non-finite values"),
    "missing file": (False, "not found"),
}


@pytest.mark.parametrize("kind", list(EVAL_CASES))
def test_evaluation_cli_bad_file_one_line_exit_2(kind, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    index = gt_index()
    write_wsal_json(index, tmp_path / "gt.json")
    TubeDetections.from_list(perfect_dets(index)).save(tmp_path / "d.npz")
    is_gt, says = EVAL_CASES[kind]
    bad = write_bad(kind, tmp_path)
    gt, dets = (bad, tmp_path / "d.npz") if is_gt else (tmp_path / "gt.json", bad)
    args = ["--gt", str(gt), "--detections", str(dets), "--json", str(tmp_path / "r.json")]
    before = files_in(tmp_path)
    assert eval_main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: {bad}: ") and says in err, err
    assert len(err.splitlines()) == 1
    assert files_in(tmp_path) == before and not (tmp_path / "pwned.txt").exists()
    # the traceback is there for whoever asks for it
    with pytest.raises((InputError, FileNotFoundError)):
        eval_main([*args, "--debug"])
    monkeypatch.setenv("HYDRA_FULL_ERROR", "1")
    with pytest.raises((InputError, FileNotFoundError)):
        eval_main(args)


@pytest.mark.parametrize("kind", ["truncated detections npz", "NaN box", "missing file"])
def test_linking_cli_bad_detections_one_line_exit_2(kind, tmp_path, capsys):
    from wsal.data.detections import save_detections
    from wsal.linking.__main__ import main as link_main

    good = {"v": Detections(np.arange(3), np.tile([0, 0, 10, 10.0], (3, 1)), np.ones(3), 3)}
    save_detections(tmp_path / "good.npz", good)
    bad = tmp_path / f"{kind.replace(' ', '_')}.npz"
    raw = (tmp_path / "good.npz").read_bytes()
    if kind == "truncated detections npz":
        bad.write_bytes(raw[: len(raw) // 2])
    elif kind == "NaN box":
        np.savez(
            bad,
            video=np.array(["v"] * 3),
            frame=np.arange(3),
            scores=np.ones(3),
            boxes=np.array([[0, 0, np.nan, 10.0]] * 3),
        )
    out = tmp_path / "tubes.npz"
    before = files_in(tmp_path)
    code = link_main(
        ["temporal_prim", "--detections", str(bad), "--out", str(out), "--num-tubes", "2"]
    )
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and err.startswith(f"error: {bad}")
    assert files_in(tmp_path) == before


def test_error_line_is_one_line():
    e = InputError("bad\n  thing\n", "f.npz")
    assert error_line(e) == "error: f.npz: bad thing"
    assert error_line(FileNotFoundError(2, "No such file or directory", "x.json")) == (
        "error: x.json: no such file or directory"
    )


def test_train_and_eval_py_bad_input_one_line_exit_2(tmp_path):
    """eval.py on a folder that is not a run, train.py on an unsafe GT pickle (through the
    dataset): one ``error:`` line naming the file on stderr, exit 2, no traceback (train.py still
    records the failure in its run folder)."""
    from tests.tiny import run_script

    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    r = run_script(
        "eval.py", f"run_dir={tmp_path / 'nope'}", f"hydra.run.dir={tmp_path / 'o'}", env=env
    )
    assert r.returncode == 2, r.stderr[-2000:]
    assert "Traceback" not in r.stderr
    last = r.stderr.strip().splitlines()[-1]
    assert last == f"error: {tmp_path / 'nope'}: not a run folder (no .hydra/config.yaml)"
    gt = write_bad("unsafe GT pickle", tmp_path)
    r = run_script(
        "train.py",
        "dataset=custom",
        f"dataset.annotations={gt}",
        f"dataset.root={tmp_path}",
        f"hydra.run.dir={tmp_path / 'run'}",
        f"paths.cache_dir={tmp_path / 'cache'}",
        env=env,
    )
    assert r.returncode == 2, r.stderr[-2000:]
    assert "Traceback" not in r.stderr + r.stdout
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: {gt}: refusing to load posix.system")
    assert (tmp_path / "run" / "failed.json").is_file() and not (tmp_path / "pwned.txt").exists()


# ----------------------------------------------------------------------- unreadable caches
def cut(path: Path) -> None:
    """Truncate ``path`` to half its size, as a kill during a copy or a full disk leaves it."""
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])


def random_dets(rng, videos, nf=12):
    out = {}
    for v in videos:
        frame = np.repeat(np.arange(nf), 3)
        xy = rng.uniform(0, 50, (frame.size, 2))
        boxes = np.c_[xy, xy + rng.uniform(10, 30, (frame.size, 2))].astype(np.float32)
        out[v] = Detections(frame, boxes, rng.random(frame.size).astype(np.float32), nf)
    return out


def test_truncated_tube_cache_is_named_deleted_and_rebuilt(tmp_path, caplog):
    from wsal.linking import TemporalPrimLinker
    from wsal.linking.cache import link_cached

    rng = np.random.default_rng(0)
    index = gt_index()
    dets = random_dets(rng, list(index.videos), nf=20)
    detector = SimpleNamespace(name="fake", cache_key=lambda d: "k", load=lambda i, d: dets)
    prepared = SimpleNamespace(index=index, cache_key="ds", detections=None)
    linker = TemporalPrimLinker(num_tubes=2, progress=False)
    first = link_cached(prepared, detector, linker, tmp_path)
    (path,) = tmp_path.glob("tubes__*.npz")
    cut(path)
    with caplog.at_level(logging.WARNING):
        again = link_cached(prepared, detector, linker, tmp_path)
    assert f"tube cache {path} cannot be read" in caplog.text
    assert path.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    for v in first:
        np.testing.assert_array_equal(again[v].boxes, first[v].boxes)
    assert set(link_cached(prepared, detector, linker, tmp_path)) == set(first)  # reads back


class FakeExtractor:
    """Box features without video decoding: a fixed function of the boxes (L2-normalised)."""

    name, dim, descriptor_dim = "fake", 4, 4
    calls: list[str] = []

    def cache_key(self) -> str:
        return "k1"

    def extract_chunks(self, jobs, chunk_dir, progress) -> None:
        from wsal.features.store import l2_normalize, write_chunk

        for job in jobs:
            if not (chunk_dir / job.chunk_name).exists():
                FakeExtractor.calls.append(job.video)
                write_chunk(chunk_dir, job, l2_normalize(job.dets.boxes + 1.0), self.dim)


@pytest.mark.parametrize("damaged", ["data", "index", "chunk"])
def test_unreadable_box_feature_cache_is_named_deleted_and_rebuilt(tmp_path, caplog, damaged):
    from wsal.features import extract_box_features

    rng = np.random.default_rng(1)
    index = gt_index()
    dets = random_dets(rng, list(index.videos))
    FakeExtractor.calls = []
    args = (FakeExtractor(), index, dets, tmp_path, "ds", "det")
    store = extract_box_features(*args, progress=False)
    want = {v: np.array(store[v]) for v in dets}
    (data,) = tmp_path.glob("boxfeat__*.npy")
    if damaged == "data":  # the "mmap length is greater than file size"
        bad = data
        cut(data)
    elif damaged == "index":
        (bad,) = tmp_path.glob("boxfeat__*.json")
        cut(bad)
    else:  # a resume chunk of a video still to be assembled (a store without a/v0 yet)
        from wsal.features.store import box_feature_key, detections_digest

        for f in tmp_path.glob("boxfeat__*"):
            f.unlink()
        chunk_dir = tmp_path / f"{box_feature_key(FakeExtractor(), 'ds', 'det')}.chunks"
        chunk_dir.mkdir()
        bad = chunk_dir / f"a__v0.{detections_digest(dets['a/v0'])}.npy"
        np.save(bad, np.zeros((len(dets["a/v0"]), 4), np.float32))
        cut(bad)
    FakeExtractor.calls = []
    with caplog.at_level(logging.WARNING):
        again = extract_box_features(*args, progress=False)
    assert f"{bad} cannot be read" in caplog.text
    assert FakeExtractor.calls  # extracted again
    for v in dets:
        np.testing.assert_array_equal(np.array(again[v]), want[v])
    assert not [p for p in tmp_path.rglob(".*") if p.is_file()]  # no temp files


def test_unreadable_detection_shards_and_merged_file_are_dropped(tmp_path, caplog):
    from wsal.data.detections import save_detections
    from wsal.detection.backends import merged_file_ok
    from wsal.detection.predict import completed_videos, discard_unreadable_shards

    rng = np.random.default_rng(2)
    dets = random_dets(rng, ["a/v0", "b/v1"])
    shard_dir = tmp_path / "out.npz.shards"
    save_detections(shard_dir, dets, per_video=True)
    save_detections(tmp_path / "out.npz", dets, per_video=False)
    (shard,) = [p for p in shard_dir.glob("*.npz") if p.name.startswith("b__v1")]
    cut(shard)
    with caplog.at_level(logging.WARNING):
        assert discard_unreadable_shards(shard_dir, list(dets)) == 1
        assert merged_file_ok(tmp_path / "out.npz")  # whole: kept
        cut(tmp_path / "out.npz")
        assert not merged_file_ok(tmp_path / "out.npz")
    assert completed_videos(shard_dir, list(dets)) == {"a/v0"}  # b/v1 is detected again
    assert f"detections shard {shard} cannot be read" in caplog.text
    assert f"merged detections file {tmp_path / 'out.npz'} cannot be read" in caplog.text
    assert not (tmp_path / "out.npz").exists() and not shard.exists()


def test_unreadable_tracker_checkpoint_is_named_deleted_and_trained_again(
    tmp_path, caplog, monkeypatch
):
    from wsal.models import tracker

    root = tmp_path / "data"
    root.mkdir()
    (root / "annotations.json").write_text("{}")  # its hash is the dataset's identity
    path = tracker.default_tracker_path(root, tmp_path / "trackers")
    path.parent.mkdir()
    path.write_bytes(b"PK\x03\x04 cut short")
    trained = []

    def fake_train(index, split, out, **kw):
        trained.append(out)
        import torch

        torch.save({"format": "x"}, out)
        return Path(out)

    monkeypatch.setattr(tracker, "train_tracker", fake_train)
    monkeypatch.setattr(tracker, "read_wsal_json", lambda *a, **k: None)
    with caplog.at_level(logging.WARNING):
        assert tracker.ensure_tracker(root, tmp_path / "trackers", progress=False) == path
    assert f"tracker checkpoint {path} cannot be read" in caplog.text and trained == [path]
    trained.clear()
    assert tracker.ensure_tracker(root, tmp_path / "trackers", progress=False) == path
    assert trained == []  # a whole checkpoint is reused


# ------------------------------------------------------------------ run folders are data
def conf_targets() -> dict[str, str]:
    """Every ``_target_`` value in the shipped configs -> the first file naming it."""
    out: dict[str, str] = {}

    def walk(node, file):
        if isinstance(node, dict):
            for k, v in node.items():
                if k == "_target_":
                    out.setdefault(v, file)
                else:
                    walk(v, file)
        elif isinstance(node, list):
            for v in node:
                walk(v, file)

    for f in sorted((ROOT / "conf").rglob("*.yaml")):
        walk(yaml.safe_load(f.read_text()), str(f.relative_to(ROOT)))
    return out


def test_allow_list_is_exactly_what_the_shipped_configs_need():
    from wsal.targets import ALLOWED_TARGETS, _kind, is_allowed_target

    targets = conf_targets()
    assert len(targets) > 15
    refused = {t: f for t, f in targets.items() if not is_allowed_target(t)}
    assert not refused, f"shipped configs name targets a rebuild would refuse: {refused}"
    # the explicit list holds what a wsal class rule does not cover, and nothing stale
    needed = {t for t in targets if _kind(*t.rsplit(".", 1)) != "class"}
    assert needed == set(ALLOWED_TARGETS)


HOSTILE = {
    "os.system": "os.system",
    "a wsal function that writes files": "wsal.atomic.atomic_write_text",
    "a module reached through wsal": "wsal.runs.os.system",
    "an interpolation": "${oc.env:EVIL}",
}


def hostile_run(tmp_path: Path, target: str) -> Path:
    run = tmp_path / "run"
    (run / ".hydra").mkdir(parents=True)
    marker = tmp_path / "pwned.txt"
    cfg = {
        "seed": 0,
        "paths": {"output_dir": str(run), "cache_dir": str(tmp_path / "cache")},
        "dataset": {"_target_": target, "path": str(marker), "text": "pwned", "_args_": []},
        "evaluation": {"split": "test", "protocol": "act"},
    }
    (run / ".hydra" / "config.yaml").write_text(yaml.safe_dump(cfg))
    return run


@pytest.mark.parametrize("what", list(HOSTILE))
def test_rebuilding_a_run_refuses_foreign_targets_before_instantiating(tmp_path, what, capsys):
    from wsal.runs import load_run
    from wsal.targets import UnsafeTargetError, check_targets
    from wsal.viz.__main__ import main as viz_main

    run = hostile_run(tmp_path, HOSTILE[what])
    with pytest.raises(UnsafeTargetError) as err:
        check_targets(load_run(run).config, run / ".hydra" / "config.yaml")
    msg = str(err.value)
    assert msg.startswith(str(run / ".hydra" / "config.yaml")) and "dataset._target_" in msg
    assert HOSTILE[what] in msg
    assert viz_main(["tubes", str(run)]) == 2
    assert "dataset._target_" in capsys.readouterr().err
    assert not (tmp_path / "pwned.txt").exists() and not (run / "viz").exists()


def test_eval_py_refuses_a_hostile_run_folder(tmp_path):
    from tests.tiny import run_script

    run = hostile_run(tmp_path, "wsal.atomic.atomic_write_text")
    r = run_script("eval.py", f"run_dir={run}", f"hydra.run.dir={tmp_path / 'o'}")
    assert r.returncode == 2, r.stderr[-2000:]
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: {run / '.hydra' / 'config.yaml'}: dataset._target_")
    assert not (tmp_path / "pwned.txt").exists()


# --------------------------------------------------------------- checkpoints read once
def test_resume_reads_the_checkpoint_once_weights_only_and_hands_it_to_lightning(
    tmp_path, monkeypatch, caplog
):
    """A resumed STIL run equals an uninterrupted one; the checkpoint is read once (by wsal's
    check, weights_only=True) and Lightning neither reads it again nor logs "`weights_only`
    was not set" (the per-epoch checkpoint is saved with weights_only=False explicitly)."""
    import warnings

    import torch

    from tests.test_resume import KillAfter, Killed, stil_data, trainer
    from wsal import runs
    from wsal.models.methods import fit_resuming
    from wsal.models.stil import STIL
    from wsal.models.stil_data import STILDataModule

    data = stil_data()
    kw = dict(folds=3, em_epochs=3, loss="squared_hinge", penalty=0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        full = STIL(2, **kw)
        trainer(tmp_path / "full", 3).fit(full, datamodule=STILDataModule(data))
        with pytest.raises(Killed):
            trainer(tmp_path / "run", 3, KillAfter(0)).fit(
                STIL(2, **kw), datamodule=STILDataModule(data)
            )
        loads = []
        real_load = torch.load

        def counting_load(f, *a, **k):
            loads.append((str(f), k.get("weights_only")))
            return real_load(f, *a, **k)

        monkeypatch.setattr(torch, "load", counting_load)
        ckpt = str(runs.check_checkpoint(tmp_path / "run" / "last.ckpt"))
        resumed = STIL(2, **kw)
        t = trainer(tmp_path / "run", 3)
        with caplog.at_level(logging.INFO):
            fit_resuming(t, resumed, STILDataModule(data), ckpt)
    assert loads == [(ckpt, True)]
    assert "weights_only` was not set" not in caplog.text
    assert t.current_epoch == 3
    torch.testing.assert_close(resumed.models_weight, full.models_weight, rtol=0, atol=0)
    assert not [p for p in (tmp_path / "run").iterdir() if p.name.startswith(".")]
    assert re.search(r"Restoring states from the checkpoint", caplog.text)
