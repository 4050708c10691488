"""A catalogue of bad inputs and unlucky runs (issue 16, items 1, 2, 4 and 6): each case asserts
that the message names the file or the config key, and that nothing half-written is left.

1. run folders are unique per process; concurrent runs sharing a data folder generate, detect
   and link once (a lock), the second waits and reuses;
2. the dataset is validated before any work: missing video, truncated mp4, nframes larger than
   the video, GT boxes outside the frame; ``dataset.skip_invalid=true`` drops them with a warning;
4. every config value is checked when the config is composed, before any work, naming the key;
   every shipped config passes (no false alarm);
6. temps of killed writes are removed by the next run of the same writer; a ``running`` run
   whose process is gone is ``killed``; resume never goes back to an attempt a later run took
   further.
"""

from __future__ import annotations

import json
import logging
import multiprocessing as mp
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tests.tiny import TINY_SYNTH
from wsal import runs
from wsal.app.route import prepare_checked
from wsal.app.route import run as route_run
from wsal.atomic import HOST, atomic_path, file_lock, remove_stale_temps
from wsal.callbacks import EpochCheckpoint
from wsal.configs import RULES, ConfigError, check_config, compose, conf_dir, override
from wsal.data.datasets import AnnotatedDataset
from wsal.data.synthactors import SynthConfig, ensure_synthactors
from wsal.data.synthactors import generator as synth_generator
from wsal.data.validate import InvalidDatasetError
from wsal.detection.backends import StoredDetections
from wsal.linking import TemporalPrimLinker
from wsal.linking.cache import link_cached

ROOT = Path(__file__).resolve().parents[1]
FORK = mp.get_context("fork")


def _dead_pid() -> int:
    """The id of a process that has exited (for leftovers 'of a killed writer')."""
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def _leftovers(folder: Path) -> list[str]:
    """Temp files and lock files anywhere under ``folder``."""
    return sorted(
        str(p.relative_to(folder))
        for p in folder.rglob("*")
        if ".tmp" in p.name or p.name.endswith(".lock") or ".old" in p.name
    )


@pytest.fixture(scope="module")
def tiny_source(tmp_path_factory) -> Path:
    """A tiny SynthActors (2 classes x 1+1 videos, 64x48, 16-20 frames), generated once."""
    root = tmp_path_factory.mktemp("src") / "synth"
    return ensure_synthactors(root, SynthConfig(**TINY_SYNTH), workers=1, progress=False)


@pytest.fixture
def dataset_copy(tiny_source, tmp_path) -> Path:
    """A copy of the tiny dataset to break."""
    return Path(shutil.copytree(tiny_source, tmp_path / "data"))


# ------------------------------------------------------------------ 1. run folders and locks
def _run_dir(*overrides: str) -> str:
    """``hydra.run.dir`` as a fresh process composes it (the shipped conf/config.yaml)."""
    code = (
        "import wsal.configs\n"
        "from hydra import compose, initialize_config_dir\n"
        f"with initialize_config_dir(config_dir={str(conf_dir())!r}, version_base='1.3'):\n"
        f"    c = compose('config', overrides={list(overrides)!r}, return_hydra_config=True)\n"
        "print(c.hydra.run.dir, c.hydra.sweep.dir)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    return out.stdout.strip()


def test_run_folders_started_together_differ_and_stay_settable():
    a, b = _run_dir(), _run_dir()
    assert a != b  # even within one second: the process id and a random suffix differ
    run_a, sweep_a = a.split()
    assert run_a.startswith("outputs/train/") and sweep_a.startswith("multirun/train/")
    assert run_a.split("/")[-1].split("_")[-1] == sweep_a.split("/")[-1].split("_")[-1]
    assert _run_dir("hydra.run.dir=mine/here", "hydra.sweep.dir=sweeps") == "mine/here sweeps"


def _slow_build(artifact: str, log: str) -> None:
    with file_lock(artifact):
        if not os.path.exists(artifact):
            with open(log, "a") as fh:
                fh.write(f"{os.getpid()}\n")
            time.sleep(0.5)
            with atomic_path(artifact) as tmp:
                tmp.write_text(str(os.getpid()))


def test_file_lock_two_processes_build_once(tmp_path):
    artifact, log = tmp_path / "cache" / "thing.npz", tmp_path / "log"
    ps = [FORK.Process(target=_slow_build, args=(str(artifact), str(log))) for _ in range(2)]
    for p in ps:
        p.start()
    for p in ps:
        p.join(30)
    assert [p.exitcode for p in ps] == [0, 0]
    builders = log.read_text().split()
    assert len(builders) == 1 and artifact.read_text() == builders[0]
    assert _leftovers(tmp_path) == []  # no lock file, no temp


class _CountingDetections(StoredDetections):
    """The dataset's own detections, logging each (slow) read: a read = a detection run."""

    def __init__(self, log: str, path: str) -> None:
        super().__init__(path, name="synthetic")
        self.log = log

    def load(self, index, default=None):
        with open(self.log, "a") as fh:
            fh.write(f"{os.getpid()}\n")
        time.sleep(0.5)
        return super().load(index, default)


def _link(root: str, cache: str, log: str, out: str) -> None:
    prepared = AnnotatedDataset(root=root, name="tiny").prepare()
    tubes = link_cached(
        prepared, _CountingDetections(log, f"{root}/detections.npz"), TemporalPrimLinker(3), cache
    )
    np.savez(out, **{v.replace("/", "__"): t.boxes for v, t in tubes.items()})


def test_two_runs_on_one_data_dir_detect_and_link_once(dataset_copy, tmp_path):
    log, cache = tmp_path / "log", tmp_path / "cache"
    outs = [tmp_path / f"out{i}.npz" for i in range(2)]
    ps = [
        FORK.Process(target=_link, args=(str(dataset_copy), str(cache), str(log), str(o)))
        for o in outs
    ]
    for p in ps:
        p.start()
    for p in ps:
        p.join(60)
    assert [p.exitcode for p in ps] == [0, 0]
    assert len(log.read_text().split()) == 1  # detections read and tubes linked once
    assert len(list(cache.glob("tubes__*.npz"))) == 1 and _leftovers(cache) == []
    with np.load(outs[0]) as a, np.load(outs[1]) as b:  # the second reused the first's tubes
        assert sorted(a) == sorted(b) and all(np.array_equal(a[k], b[k]) for k in a)


def test_two_runs_generate_synthactors_once(tmp_path, monkeypatch):
    log = tmp_path / "log"
    real = synth_generator._generate

    def counting(out, config, workers, progress):
        with open(log, "a") as fh:
            fh.write(f"{os.getpid()}\n")
        return real(out, config, workers, progress)

    monkeypatch.setattr(synth_generator, "_generate", counting)
    root = tmp_path / "data" / "synth"
    cfg = SynthConfig(**{**TINY_SYNTH, "classes": ("wave",)})
    ps = [FORK.Process(target=ensure_synthactors, args=(root, cfg, 1, False)) for _ in range(2)]
    for p in ps:
        p.start()
    for p in ps:
        p.join(120)
    assert [p.exitcode for p in ps] == [0, 0]
    assert len(log.read_text().split()) == 1
    assert (root / "meta.json").is_file() and _leftovers(tmp_path / "data") == []


# ------------------------------------------------------------------ 2. dataset validation
def _annotations(root: Path) -> dict:
    return json.loads((root / "annotations.json").read_text())


def _break(root: Path, case: str) -> tuple[str, str]:
    """Break one video of the dataset at ``root``; return (video, what the message must name)."""
    ann = _annotations(root)
    vid = sorted(ann["videos"])[0]
    info = ann["videos"][vid]
    path = root / info["path"]
    if case == "missing_video":
        path.unlink()
    elif case == "truncated_mp4":
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 3])
    elif case == "nframes_too_large":
        info["nframes"] = 2 * info["nframes"] + 20
    elif case == "box_outside":
        info["tubes"][0]["boxes"][0] = [10, 10, info["width"] + 50, info["height"] - 1]
    (root / "annotations.json").write_text(json.dumps(ann))
    return vid, (str(path) if case != "box_outside" else "outside the")


CASES = ["missing_video", "truncated_mp4", "nframes_too_large", "box_outside"]


@pytest.mark.parametrize("case", CASES)
def test_bad_dataset_is_refused_naming_the_video(dataset_copy, case):
    vid, named = _break(dataset_copy, case)
    with pytest.raises(InvalidDatasetError) as err:
        prepare_checked(AnnotatedDataset(root=str(dataset_copy), name="tiny"))
    msg = str(err.value)
    assert vid in msg and named in msg and "dataset.skip_invalid=true" in msg
    assert [p.video for p in err.value.report.problems] == [vid]


@pytest.mark.parametrize("case", ["missing_video", "truncated_mp4"])
def test_skip_invalid_drops_them_with_a_warning(dataset_copy, case, caplog):
    vid, _ = _break(dataset_copy, case)
    whole = AnnotatedDataset(root=str(dataset_copy), name="tiny", validate=False).prepare()
    with caplog.at_level(logging.WARNING, logger="wsal.data.validate"):
        prepared = prepare_checked(
            AnnotatedDataset(root=str(dataset_copy), name="tiny", skip_invalid=True)
        )
    assert vid not in prepared.index.videos
    assert all(vid not in vs for vs in prepared.index.splits.values())
    assert len(prepared.index.videos) == len(whole.index.videos) - 1
    assert prepared.cache_key != whole.cache_key  # tubes of the whole set are never reused
    assert f"dropping 1 invalid videos (dataset.skip_invalid=true): {vid}" in caplog.text


def test_prepare_stops_or_skips_the_invalid_videos(dataset_copy, tmp_path, capsys):
    from wsal.app.prepare import prepare

    vid, _ = _break(dataset_copy, "truncated_mp4")
    det = StoredDetections(str(dataset_copy / "detections.npz"), name="dataset")
    ds = AnnotatedDataset(root=str(dataset_copy), name="tiny")
    cache = tmp_path / "cache"
    stopped = prepare(ds, det, TemporalPrimLinker(3), cache, progress=False)
    assert not stopped.report.ok and not stopped.tubes_by_video and not cache.exists()
    assert vid in capsys.readouterr().out
    done = prepare(ds, det, TemporalPrimLinker(3), cache, progress=False, skip_invalid=True)
    n = len(_annotations(dataset_copy)["videos"])
    assert vid not in done.tubes_by_video and len(done.tubes_by_video) == n - 1
    assert len(list(cache.glob("tubes__*-skip1-*.npz"))) == 1


def test_train_route_stops_before_any_work_on_a_bad_dataset(dataset_copy, tmp_path):
    """The route (train.py's) stops at the check: no detections read, no tubes, no results."""
    vid, named = _break(dataset_copy, "nframes_too_large")
    out, cache = tmp_path / "run", tmp_path / "cache"
    cfg = compose(
        [
            "dataset=custom",
            override("dataset.root", str(dataset_copy)),
            override("paths.output_dir", str(out)),
            override("paths.cache_dir", str(cache)),
            override("dataset.detections", str(dataset_copy / "detections.npz")),
            "logger=none",
            "evaluation.num_pictures=0",
        ]
    )
    with pytest.raises(InvalidDatasetError, match="frame_count") as err:
        route_run(cfg)
    assert vid in str(err.value) and named in str(err.value)
    assert not cache.exists() and not (out / "results.json").exists()
    # the same run with skip_invalid=true goes through on the other videos
    cfg.dataset.skip_invalid = True
    res = route_run(cfg)
    assert res is not None and (out / "results.json").is_file()
    assert len(list(cache.glob("tubes__*-skip1-*.npz"))) == 1


# ------------------------------------------------------------------ 4. config values
def _options() -> list[list[str]]:
    """One override list per shipped config option (every group file, every experiment)."""
    conf = conf_dir()
    out: list[list[str]] = [[]]
    for group in sorted(p for p in conf.iterdir() if p.is_dir() and p.name != "hydra"):
        for f in sorted(group.glob("*.yaml")):
            out.append([f"{group.name}={f.stem}"])
    return out


def test_every_experiment_passes_the_checks():
    """No false alarm on the default config and the named experiments (fast)."""
    exps = sorted(p.stem for p in (conf_dir() / "experiment").glob("*.yaml"))
    for e in [None, *exps]:
        check_config(compose([] if e is None else [f"experiment={e}"]))
    assert len(exps) >= 10


@pytest.mark.slow
def test_every_shipped_config_passes_the_checks():
    """No false alarm: every option of every group (experiments, studies, debug included)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    checked = 0
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        for overrides in _options():
            check_config(hydra_compose("config", overrides=["paths.output_dir=x", *overrides]))
            checked += 1
        for over in ([], ["reranking=context"], ["evaluation=ucfsports"]):
            check_config(hydra_compose("eval", overrides=["run_dir=x", *over]))
            checked += 1
    assert checked == len(_options()) + 3 > 60


@pytest.mark.parametrize(
    "bad, named",
    [
        ("evaluation.protocol=bogus", "evaluation.protocol='bogus': must be one of act | voc"),
        ("linker.min_iou=2", "linker.min_iou=2: must be <= 1"),
        ("linker.num_tubes=abc", "linker.num_tubes='abc': must be an integer"),
        ("linker.num_tubes=0", "linker.num_tubes=0: must be >= 1"),
        ("evaluation.iou=[0.5,1.5]", "evaluation.iou=[0.5, 1.5]: item 1 (1.5) must be <= 1"),
        ("evaluation.nms=-0.1", "evaluation.nms=-0.1: must be >= 0"),
        ("dataset.min_frames=80", "dataset.min_frames=80: must not exceed dataset.max_frames"),
        ("method=stil method.loss=l1", "method.loss='l1': must be one of"),
        ("method=stil method.C=0", "method.C=0: must be > 0"),
        ("data.val_fraction=1.0", "data.val_fraction=1.0: must be < 1"),
        ("dataset.skip_invalid=maybe", "dataset.skip_invalid='maybe': must be true or false"),
    ],
)
def test_a_bad_value_is_named_by_its_key(bad, named):
    with pytest.raises(ConfigError) as err:
        check_config(compose(bad.split()))
    assert named in str(err.value)


def test_all_bad_values_are_listed_at_once():
    with pytest.raises(ConfigError, match="2 bad config values") as err:
        check_config(compose(["linker.min_iou=2", "evaluation.protocol=bogus"]))
    assert "linker.min_iou" in str(err.value) and "evaluation.protocol" in str(err.value)


def test_rule_choices_are_the_codes():
    """The checks' choices mirror the constants the constructors check against."""
    from wsal.evaluation.protocol import PROTOCOLS
    from wsal.features.cnn import POOLINGS
    from wsal.models.actor_attention import TEST_SCORES
    from wsal.models.hinge import LOSSES
    from wsal.models.stil import SELECTIONS, TEST_TUBES
    from wsal.models.tracker import TRACKER_BACKBONES
    from wsal.nets.actor_attention import ATTENTIONS
    from wsal.supervision import LEVELS

    pairs = {
        "evaluation.protocol": PROTOCOLS,
        "features.pooling": POOLINGS,
        "method.test_score": TEST_SCORES,
        "method.loss": LOSSES,
        "method.selection": SELECTIONS,
        "method.test_tubes": TEST_TUBES,
        "method.attention": ATTENTIONS,
        "supervision.level": LEVELS,
        "linker.default_tracker.backbone": TRACKER_BACKBONES,
    }
    for key, code in pairs.items():
        assert set(RULES[key].choices) == set(code), key


@pytest.mark.slow
def test_train_py_refuses_a_bad_value_before_any_work(tmp_path):
    run_dir, data = tmp_path / "run", tmp_path / "data"
    p = subprocess.run(
        [
            sys.executable,
            "train.py",
            f"hydra.run.dir={run_dir}",
            f"paths.data_dir={data}",
            "evaluation.protocol=bogus",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert p.returncode != 0
    assert "evaluation.protocol='bogus'" in p.stderr
    assert not data.exists()  # nothing generated, detected or linked
    failed = json.loads((run_dir / "failed.json").read_text())
    assert "evaluation.protocol" in failed["error"] and not (run_dir / "results.json").exists()
    assert runs.read_run(run_dir)["status"] == "failed"


# ------------------------------------------------------------------ 6. kills
def test_checkpoint_temp_of_a_killed_write_is_removed_when_fitting_starts(tmp_path):
    dead = _dead_pid()
    ckpts = tmp_path / "checkpoints"
    ckpts.mkdir()
    # the killed writer's temp, with and without the host (the name before this change)
    stale = [ckpts / f".last.ckpt.tmp{dead}.{HOST}", ckpts / f".last.ckpt.tmp{dead}"]
    live = ckpts / f".last.ckpt.tmp{os.getppid()}"  # a writer still running
    other = ckpts / ".other.ckpt.tmp1"  # another writer's: not ours to judge
    for p in [*stale, live, other]:
        p.write_bytes(b"half a checkpoint")
    (ckpts / "last.ckpt").write_bytes(b"whole")

    class _Trainer:
        is_global_zero = True

    EpochCheckpoint(ckpts).on_fit_start(_Trainer(), None)  # type: ignore[arg-type]
    assert sorted(p.name for p in ckpts.iterdir()) == sorted(["last.ckpt", live.name, other.name])


def test_sigkill_during_a_write_leaves_a_temp_the_next_writer_removes(tmp_path):
    target = tmp_path / "results.json"
    code = (
        "import time, sys\n"
        "from wsal.atomic import atomic_path\n"
        f"with atomic_path({str(target)!r}) as tmp:\n"
        "    tmp.write_text('half')\n"
        "    print('writing', flush=True)\n"
        "    time.sleep(60)\n"
    )
    p = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert p.stdout is not None and p.stdout.readline().strip() == "writing"
    p.send_signal(signal.SIGKILL)
    p.wait()
    left = [q.name for q in tmp_path.iterdir()]
    assert len(left) == 1 and left[0].startswith(".results.json.tmp") and not target.exists()
    removed = remove_stale_temps(tmp_path, "results.json")
    assert [q.name for q in removed] == left and list(tmp_path.iterdir()) == []


def test_killed_generation_temps_are_removed_by_the_next_generation(tmp_path):
    dead = _dead_pid()
    data = tmp_path / "data"
    ours = data / f".synth.tmp{dead}.{HOST}-abc"
    legacy = data / ".synth.tmp-k2j4"  # no owner recorded: older than the new generation
    old = data / f".synth.old{dead}.{HOST}-xyz"
    for d in (ours, legacy, old):
        (d / "videos").mkdir(parents=True)
        (d / "videos" / "a.mp4").write_bytes(b"half a video")
    os.utime(legacy, (time.time() - 60, time.time() - 60))
    cfg = SynthConfig(**{**TINY_SYNTH, "classes": ("wave",)})
    synth_generator.generate(data / "synth", cfg, workers=1, progress=False)
    assert sorted(p.name for p in data.iterdir()) == ["synth"]


def _record(d: Path, key: str, status: str, ckpt: bool, t: float, **extra) -> Path:
    runs.write_run(d, key=key, status=status, started=t, **extra)
    if ckpt:
        p = d / "checkpoints" / "last.ckpt"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"x")
        os.utime(p, (t, t))
    return d


def test_run_status_tells_killed_from_running(tmp_path):
    dead = _dead_pid()
    host = runs.owner()["host"]
    killed = _record(tmp_path / "a", "k", "running", True, 100, pid=dead, host=host)
    stale = killed / "checkpoints" / f".last.ckpt.tmp{dead}.{HOST}"
    stale.write_bytes(b"half")
    alive = _record(tmp_path / "b", "k", "running", False, 200, pid=os.getppid(), host=host)
    elsewhere = _record(tmp_path / "c", "k", "running", False, 300, pid=dead, host="other-host")
    assert runs.run_status(runs.read_run(killed)) == "killed"
    assert runs.run_status(runs.read_run(alive)) == "running"
    assert runs.run_status(runs.read_run(elsewhere)) == "running"  # cannot tell: left alone
    assert runs.run_status(None) == "unknown"
    rebooted = _record(tmp_path / "d", "k", "running", False, 400, **runs.owner())
    runs.write_run(rebooted, pid=os.getppid(), boot="a boot before this one")
    assert runs.run_status(runs.read_run(rebooted)) == "killed"  # a reused pid is not alive
    assert runs.mark_killed([tmp_path]) == [killed, rebooted]
    assert runs.read_run(killed)["status"] == "killed" and not stale.exists()
    assert (killed / "checkpoints" / "last.ckpt").exists()
    assert runs.read_run(alive)["status"] == "running"


def test_resume_never_goes_back_to_an_attempt_a_later_run_took_further(tmp_path):
    root = tmp_path / "outputs" / "train"
    a = _record(root / "a", "k", "killed", True, 100)
    # b resumed a and finished: rerunning the command starts fresh (before: resumed a again)
    b = _record(root / "b", "k", "done", True, 200, resumed_from=str(a))
    assert runs.find_resumable([root], "k") is None
    # b resumed a and was killed after its own checkpoint: b is the one to resume
    runs.write_run(b, status="killed")
    assert runs.find_resumable([root], "k") == b
    # b was killed before its first checkpoint: a still holds the progress
    (b / "checkpoints" / "last.ckpt").unlink()
    assert runs.find_resumable([root], "k") == a
    # a run still going is never taken over
    live = _record(root / "c", "k", "running", True, 300, **runs.owner())
    runs.write_run(live, pid=os.getppid())
    assert runs.find_resumable([root], "k") == a


def test_bad_dataset_ends_train_py_with_the_report_then_one_error_line(dataset_copy, capsys):
    """train.py's handler (``exit_on_input_error``): the validator's report, one problem per
    line, then a last line ``error: <dataset> (<root>): ...`` and exit status 2."""
    from wsal.errors import exit_on_input_error

    vid, named = _break(dataset_copy, "missing_video")
    with pytest.raises(InvalidDatasetError) as err:
        prepare_checked(AnnotatedDataset(root=str(dataset_copy), name="tiny"))
    with pytest.raises(SystemExit) as done:
        exit_on_input_error(err.value, argv=[])
    assert done.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert any(vid in line and named in line for line in lines[:-1])
    last = lines[-1]
    assert last.startswith(f"error: dataset tiny ({dataset_copy}): 1 problems in 1 videos")
    assert "dataset.skip_invalid=true" in last
