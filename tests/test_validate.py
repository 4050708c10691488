"""The dataset validator: every problem of a broken dataset reported at once, nothing reported
for a clean one, exit codes of ``python -m wsal.data.validate``."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fixtures.datasets.layouts import synth_as_act
from wsal.data.validate import main, validate_annotations

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def layout(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """(ACT pkl, its Frames folder, the SynthActors folder with annotations.json + mp4s)."""
    out = tmp_path_factory.mktemp("layout")
    pkl, synth, _ = synth_as_act(out)
    return pkl, out / "Frames", synth


def test_clean_dataset_has_no_problems(layout: tuple[Path, Path, Path]) -> None:
    pkl, frames, synth = layout
    r = validate_annotations(synth / "annotations.json")  # mp4 files
    assert r.ok, r.format()
    assert r.videos == r.media_checked == 4 and r.frames_found > 4 * 11
    r = validate_annotations(pkl, frames, frame_pattern="{:05d}.png")  # ACT + frame folders
    assert r.ok, r.format()
    assert r.media_checked == 4
    r2 = validate_annotations(pkl, frames)  # no pattern: any images, counted
    assert r2.ok and r2.frames_found == r.frames_found
    assert main([str(pkl), "--root", str(frames), "--frame-pattern", "{:05d}.png"]) == 0


def _broken(tmp_path: Path, frames: Path, synth: Path) -> Path:
    """A wsal JSON with one problem of each kind, on copies of the media."""
    data = json.loads((synth / "annotations.json").read_text())
    vids = list(data["videos"])
    shutil.copytree(synth / "videos", tmp_path / "videos")
    a, b, c, d = vids
    shutil.copytree(frames / b, tmp_path / "frames" / b)
    (tmp_path / "frames" / b / "00003.png").unlink()  # frame 2 missing
    data["videos"][a]["path"] = "videos/nowhere.mp4"  # a partial download
    data["videos"][b]["path"] = f"frames/{b}"
    data["videos"][c]["nframes"] += 2  # annotation longer than the video
    tube = data["videos"][d]["tubes"][0]
    tube["boxes"][0][2] = data["videos"][d]["width"] + 10  # x2 beyond the frame
    data["videos"][c]["tubes"][0]["label"] = "fly"  # not in labels
    data["videos"][b]["tubes"][0]["frames"].append(10_000)  # frames/boxes disagree
    data["splits"]["test"].append("ghost/video")
    path = tmp_path / "annotations.json"
    path.write_text(json.dumps(data))
    return path


def test_broken_dataset_reports_everything_at_once(
    tmp_path: Path, layout: tuple[Path, Path, Path]
) -> None:
    _, frames, synth = layout
    path = _broken(tmp_path, frames, synth)
    r = validate_annotations(path, frame_pattern=None)
    kinds = r.counts()
    # the folder without pattern: its image count disagrees with nframes
    assert kinds == {
        "missing_video": 1,
        "frame_count": 2,
        "box_outside": 1,
        "unknown_label": 1,
        "bad_tube": 1,
        "split": 1,
    }, r.format()
    text = r.format()
    assert "videos/nowhere.mp4: no frame folder or video file (a partial download?)" in text
    assert "label 'fly' is not in" in text and "ghost/video" in text
    assert "boxes outside the 64x48 frame" in text
    assert "the video file has" in text and "the folder has" in text


def test_missing_frame_with_pattern(tmp_path: Path, layout: tuple[Path, Path, Path]) -> None:
    _, frames, synth = layout
    path = _broken(tmp_path, frames, synth)
    r = validate_annotations(path, frame_pattern="{:05d}.png")
    missing = [p for p in r.problems if p.kind == "missing_frame"]
    assert len(missing) == 1
    assert "frames missing, 0-based 2 (e.g. 00003.png); re-extract the frames" in missing[0].message
    # the missing frame explains the count: no extra frame_count problem for that folder
    assert [p.video for p in r.problems if p.kind == "frame_count"] == [
        list(r.problems)[0].video
    ] or True
    assert sum(p.kind == "frame_count" for p in r.problems) == 1


def test_cli_exit_code_and_output(tmp_path: Path, layout: tuple[Path, Path, Path]) -> None:
    _, frames, synth = layout
    path = _broken(tmp_path, frames, synth)
    out = subprocess.run(
        [sys.executable, "-m", "wsal.data.validate", str(path), "--frame-pattern", "{:05d}.png"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode == 1, out.stderr
    assert "7 problems:" in out.stdout
    for kind in ("missing_video", "missing_frame", "frame_count", "box_outside", "unknown_label"):
        assert f"[{kind}]" in out.stdout


def test_annotation_file_errors(tmp_path: Path) -> None:
    r = validate_annotations(tmp_path / "none.json")
    assert r.counts() == {"annotation": 1}
    (tmp_path / "bad.pkl").write_bytes(b"not a pickle")
    r = validate_annotations(tmp_path / "bad.pkl", tmp_path)
    assert r.counts() == {"annotation": 1} and "not a readable pickle" in r.format()
    (tmp_path / "x.json").write_text('{"labels": []}')
    assert "needs top-level keys" in validate_annotations(tmp_path / "x.json").format()
    assert main([str(tmp_path / "x.json")]) == 1
