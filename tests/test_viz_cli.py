"""``python -m wsal.viz``: tube pictures (png strip, gif, mp4) of a run or of loose files, recall
and PR plots, and the PR curves behind them (same matching as ``video_ap``).

A tiny SynthActors (3 classes, 64x48, 16-24 frames) is generated once; detections are made by
hand: one red tube at a fixed box on every frame of each test video. Frames 0-based, xyxy pixels.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from wsal.data.annotations import DatasetIndex, GTTube, VideoInfo, read_wsal_json
from wsal.data.synthactors import SynthConfig, generate
from wsal.evaluation import GroundTruth, video_ap
from wsal.evaluation.protocol import pr_curves
from wsal.structures import TubeDetections
from wsal.viz import GT_COLOR, PRED_COLOR
from wsal.viz.__main__ import main, pick_videos
from wsal.viz.draw import _title_band

W, H, S = 64, 48, 2  # frame size, default upscaling
CFG = dict(
    classes=("wave", "run", "cartwheel"),
    videos_per_class_train=1,
    videos_per_class_test=1,
    width=W,
    height=H,
    min_frames=16,
    max_frames=24,
    max_actors=2,
    seed=5,
)
PRED_BOX = [2.0, 14.0, 22.0, 34.0]  # the hand-made prediction, on every frame
BAND = _title_band("x", 10).shape[0]  # title band height above every strip / animation frame


@pytest.fixture(scope="module")
def synth(tmp_path_factory) -> Path:
    return generate(
        tmp_path_factory.mktemp("viz") / "synth", SynthConfig(**CFG), workers=1, progress=False
    )


@pytest.fixture(scope="module")
def index(synth) -> DatasetIndex:
    return read_wsal_json(synth / "annotations.json")


@pytest.fixture(scope="module")
def dets_file(synth, index, tmp_path_factory) -> Path:
    """Per test video: label = its class at 0.9 with PRED_BOX on every frame, and a weaker (0.2)
    tube of another class at the bottom-right corner (not drawn with top_k=1)."""
    items = []
    for v in index.split("test"):
        n = index.videos[v].nframes
        lab = index.videos[v].labels[0]
        rows = np.array([[f, *PRED_BOX] for f in range(n)], float)
        low = np.array([[f, 44, 30, 62, 46] for f in range(n)], float)
        items += [(v, lab, 0.9, rows), (v, (lab + 1) % 3, 0.2, low)]
    path = tmp_path_factory.mktemp("dets") / "dets.npz"
    TubeDetections.from_list(items).save(path)
    return path


def near(px: np.ndarray, color, tol: int = 40) -> bool:
    return bool(np.all(np.abs(px.astype(int) - np.array(color)) <= tol))


def strip_frame_ids(index: DatasetIndex, video: str, num: int) -> np.ndarray:
    """The frames video_strip documents: ``num`` evenly spaced among the GT-annotated frames."""
    pool = np.unique(np.concatenate([t.frames for t in index.videos[video].tubes]))
    return pool[np.unique(np.rint(np.linspace(0, pool.size - 1, num)).astype(int))]


def test_tubes_png_strip_from_files(synth, index, dets_file, tmp_path, capsys):
    video = index.split("test")[0]
    out = tmp_path / "out"
    argv = ["tubes", "--annotations", str(synth / "annotations.json"), "--root", str(synth)]
    argv += ["--detections", str(dets_file), "--videos", video, "--frames", "3"]
    assert main([*argv, "--out", str(out)]) == 0
    assert f"wrote {out / 'tubes.png'}" in capsys.readouterr().out
    img = cv2.cvtColor(cv2.imread(str(out / "tubes.png")), cv2.COLOR_BGR2RGB)
    ids = strip_frame_ids(index, video, 3)
    assert img.shape == (BAND + H * S, ids.size * W * S, 3)
    (tube,) = index.videos[video].tubes
    for t, f in enumerate(ids):
        tile = img[BAND:, t * W * S : (t + 1) * W * S]  # [H*S, W*S, 3]
        x1, y1, x2, y2 = (tube.boxes[list(tube.frames).index(f)] * S).round().astype(int)
        # GT blue on the left edge (the top edge carries the class tag), mid-height
        assert near(tile[(y1 + y2) // 2, x1], GT_COLOR), (f, tile[(y1 + y2) // 2, x1])
        px1, py1, px2, py2 = (int(v * S) for v in PRED_BOX)
        assert near(tile[(py1 + py2) // 2, px1], PRED_COLOR)  # the 0.9 tube, left edge
        assert near(tile[py1, (px1 + px2) // 2], PRED_COLOR)  # and top edge
        # the 0.2 tube (bottom-right) is not drawn: no red on its left edge
        assert not near(tile[38 * S, 44 * S], PRED_COLOR)
    blue = np.all(np.abs(img.astype(int) - GT_COLOR) <= 40, axis=-1)
    red = np.all(np.abs(img.astype(int) - PRED_COLOR) <= 40, axis=-1)
    assert blue.sum() > 50 and red.sum() > 50


def write_run(run: Path, synth: Path, cwd: Path) -> None:
    """A train.py-like run folder on the tiny SynthActors: config with a *relative* dataset root
    (resolved against hydra.runtime.cwd), results.json and detections.npz."""
    (run / ".hydra").mkdir(parents=True)
    cfg = {
        "seed": 0,
        "paths": {"data_dir": "${oc.env:WSAL_TEST_NOPE,data}", "output_dir": "${hydra:x}"},
        "dataset": {
            "_target_": "wsal.data.datasets.SynthActors",
            "root": str(synth.relative_to(cwd)),
            "workers": 1,
            "progress": False,
            **{k: list(v) if isinstance(v, tuple) else v for k, v in CFG.items()},
        },
        "evaluation": {"split": "test", "protocol": "act", "nms": 0.3},
    }
    (run / ".hydra" / "config.yaml").write_text(yaml.safe_dump(cfg))
    hydra = {"hydra": {"runtime": {"cwd": str(cwd), "choices": {"dataset": "synthetic"}}}}
    (run / ".hydra" / "hydra.yaml").write_text(yaml.safe_dump(hydra))
    (run / ".hydra" / "overrides.yaml").write_text("[]\n")


def test_tubes_from_a_run_gif_mp4_and_label_top(synth, index, dets_file, tmp_path):
    import decord
    from PIL import Image

    run = tmp_path / "run"
    write_run(run, synth, synth.parent)
    (run / "detections.npz").write_bytes(dets_file.read_bytes())
    meta_before = (synth / "meta.json").read_text()

    assert main(["tubes", str(run), "--num", "2", "--frames", "2"]) == 0
    img = cv2.imread(str(run / "viz" / "tubes.png"))
    assert img.shape == (2 * (BAND + H * S) + 4, 2 * W * S, 3)  # two strips, 4 px gap
    assert (synth / "meta.json").read_text() == meta_before  # the dataset was reused, not remade

    videos = pick_videos(index, index.split("test"), 2)
    assert len({index.videos[v].labels[0] for v in videos}) == 2  # spread over classes
    assert main(["tubes", str(run), "--videos", videos[0], "--format", "gif"]) == 0
    gif = run / "viz" / f"{videos[0].replace('/', '__')}.gif"
    with Image.open(gif) as im:
        assert im.n_frames == index.videos[videos[0]].nframes
        assert im.size == (W * S, H * S + BAND)
        im.seek(0)
        first = np.asarray(im.convert("RGB"))
    px1, py1, px2, py2 = (int(v * S) for v in PRED_BOX)
    assert near(first[BAND + (py1 + py2) // 2, px1], PRED_COLOR, tol=60)  # GIF palette: looser

    out = tmp_path / "anim"
    argv = ["tubes", str(run), "--videos", videos[1], "--format", "mp4", "--out", str(out)]
    assert main([*argv, "--scale", "1", "--label-top"]) == 0
    vr = decord.VideoReader(str(out / f"{videos[1].replace('/', '__')}.mp4"))
    assert len(vr) == index.videos[videos[1]].nframes
    assert vr[0].asnumpy().shape == (H + BAND + (H + BAND) % 2, W, 3)  # padded to even


def test_label_top_draws_the_best_tube_of_the_true_class(index):
    from wsal.viz import video_tubes

    v = index.split("test")[0]
    lab = index.videos[v].labels[0]
    rows = np.array([[0, 1, 1, 5, 5]], float)
    other = (lab + 1) % 3
    dets = TubeDetections.from_list([(v, other, 0.95, rows), (v, lab, 0.4, rows + [0, 1, 1, 1, 1])])
    _, pred, title = video_tubes(index, v, dets, top_k=1)
    assert [t for _, t in pred] == [f"{index.labels[other]} 0.95"]  # best of any class
    _, pred, _ = video_tubes(index, v, dets, top_k=1, per_label=True)
    assert [t for _, t in pred] == [f"{index.labels[lab]} 0.40"]  # best of the video's class
    assert title == f"{v}  [{index.labels[lab]}]"


def test_span_tubes_keeps_only_covered_frames(synth, index, tmp_path):
    from PIL import Image

    from wsal.viz import save_video_animation

    v = index.split("test")[0]
    (tube,) = index.videos[v].tubes
    rows = np.array([[f, *PRED_BOX] for f in (3, 4)], float)  # inside or before the GT span
    dets = TubeDetections.from_list([(v, 0, 0.5, rows)])
    n = save_video_animation(tmp_path / "a.gif", index, v, dets, span="tubes", scale=1)
    first, last = min(3, int(tube.frames.min())), max(4, int(tube.frames.max()))
    assert n == last - first + 1
    with Image.open(tmp_path / "a.gif") as im:
        assert im.n_frames == n
    with pytest.raises(ValueError, match="span"):
        save_video_animation(tmp_path / "b.gif", index, v, dets, span="all")


# -- PR curves -------------------------------------------------------------------------------------
def two_video_index() -> DatasetIndex:
    box = np.array([[10, 10, 30, 30]] * 5, float)
    tube = GTTube(0, np.arange(5), box)
    return DatasetIndex(
        labels=["wave", "run"],
        splits={"test": ["a", "b"]},
        videos={v: VideoInfo(5, [0], [tube], 64, 48, 10.0, f"{v}.mp4") for v in "ab"},
    )


def test_pr_curve_hand_computed():
    gt = GroundTruth.from_index(two_video_index(), "test")
    hit = np.array([[f, 10, 10, 30, 30] for f in range(5)], float)
    miss = np.array([[f, 40, 30, 60, 46] for f in range(5)], float)
    # by score: a hit (TP), b miss (FP), b hit (TP); 2 GT tubes
    dets = TubeDetections.from_list([("a", 0, 0.9, hit), ("b", 0, 0.8, miss), ("b", 0, 0.7, hit)])
    curves = pr_curves(gt, dets, 0.5, "act", nms=0.0)
    p, r, ap = curves["wave"]
    np.testing.assert_allclose(p, [1, 1, 0.5, 2 / 3], rtol=1e-6)
    np.testing.assert_allclose(r, [0, 0.5, 0.5, 1.0])
    # trapezoids: 0.5 * (1 + 1) / 2 + 0 + 0.5 * (0.5 + 2/3) / 2
    assert ap == pytest.approx(0.5 + 0.5 * (0.5 + 2 / 3) / 2, rel=1e-6)
    assert curves["run"][2] == 0.0 and curves["run"][0].tolist() == [1.0]  # no detections
    p, r, ap = pr_curves(gt, dets, 0.5, "voc", nms=0.0)["wave"]
    np.testing.assert_allclose(p, [1, 0.5, 2 / 3])
    assert ap == pytest.approx(0.5 * 1 + 0.5 * 2 / 3)  # interpolated envelope


@pytest.mark.parametrize("protocol", ["act", "voc"])
def test_pr_curve_ap_matches_video_ap(index, protocol):
    """On random tubes over the tiny dataset, each class's curve gives video_ap's AP."""
    rng = np.random.default_rng(0)
    gt = GroundTruth.from_index(index, "test")
    items = []
    for v in index.split("test"):
        for (tube,) in [index.videos[v].tubes]:
            for _ in range(6):
                jitter = rng.normal(0, 1.5, size=(len(tube.frames), 4))
                rows = np.column_stack([tube.frames, tube.boxes + jitter])
                items.append((v, int(rng.integers(0, 3)), float(rng.random()), rows))
    dets = TubeDetections.from_list(items)
    for tau in (0.2, 0.5):
        ref = video_ap(gt, dets, thresholds=[tau], protocol=protocol, nms=0.3, with_coco=False)
        curves = pr_curves(gt, dets, tau, protocol, nms=0.3)
        np.testing.assert_allclose([curves[n][2] for n in index.labels], ref.ap[tau], atol=1e-12)
        assert ref.ap[tau].max() > 0  # the case is not trivially empty


def test_pr_and_recall_commands(synth, index, dets_file, tmp_path, capsys):
    run = tmp_path / "run"
    write_run(run, synth, synth.parent)
    (run / "detections.npz").write_bytes(dets_file.read_bytes())
    gt = GroundTruth.from_index(index, "test")
    dets = TubeDetections.load(dets_file)
    m = video_ap(gt, dets, thresholds=[0.5], with_coco=False).map(0.5)
    res = {"protocol": "act", "nms": 0.3, "split": "test", "video_mAP": {"0.5": m}}
    res["proposal_recall"] = {"0.2": [0.5, 0.75, 1.0], "0.5": [0.25, 0.5, 0.5]}
    (run / "results.json").write_text(json.dumps(res))
    assert main(["pr", str(run)]) == 0
    text = capsys.readouterr().out
    assert f"video-mAP@0.5 = {m:.4f}  protocol=act nms=0.3" in text and "says" not in text
    assert main(["recall", str(run)]) == 0
    for name in ("pr@0.5.png", "recall.png"):
        img = cv2.imread(str(run / "viz" / name))
        assert img is not None and img.shape[0] > 100 and img.std() > 0
    (tmp_path / "bare").mkdir()
    with pytest.raises(SystemExit, match="no results.json"):
        main(["recall", str(tmp_path / "bare")])
    capsys.readouterr()
    assert main(["pr", str(tmp_path / "bare")]) == 2  # bad input: one line, exit 2
    assert (
        capsys.readouterr().err
        == f"error: {tmp_path / 'bare'}: not a run folder (no .hydra/config.yaml)\n"
    )


def test_module_entry_points_run():
    """``python -m wsal.viz`` and ``python -m wsal.report`` are the documented commands."""
    import subprocess
    import sys

    for module, word in (("wsal.viz", "tubes"), ("wsal.report", "sweep")):
        out = subprocess.run(
            [sys.executable, "-m", module, "--help"], capture_output=True, text=True, check=True
        ).stdout
        assert f"python -m {module}" in out and word in out


def test_unreadable_results_json_is_an_error_naming_it(synth, tmp_path, capsys):
    run = tmp_path / "run"
    write_run(run, synth, synth.parent)
    (run / "results.json").write_text("{cut short")
    for cmd in ("recall", "pr"):
        assert main([cmd, str(run)]) == 2  # bad input: one line naming the file, exit 2
        err = capsys.readouterr().err
        assert re.match(r"error: \S*run/results.json: unreadable", err) and err.count("\n") == 1
        with pytest.raises(ValueError, match=r"run/results.json: unreadable"):
            main([cmd, str(run), "--debug"])  # the traceback on request
