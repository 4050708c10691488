"""wsal.app.stages: stages built from their config nodes (the actor linker's tracker first)."""

from __future__ import annotations

from pathlib import Path

import pytest

from wsal.app import stages
from wsal.configs import compose, override
from wsal.linking import ActorLinker, TemporalPrimLinker


def test_build_linker_makes_the_default_tracker_first(tmp_path, monkeypatch):
    """linker=actor with checkpoint null: default_tracker_checkpoint(**default_tracker) is called
    first and its file is the linker's checkpoint; a given checkpoint is used as it is."""
    made = tmp_path / "trackers" / "siamfc_x.pt"
    made.parent.mkdir()
    made.write_bytes(b"tracker")
    calls = []

    def fake(backbone, data):
        calls.append((backbone, data))
        return made

    monkeypatch.setattr(stages, "default_tracker_checkpoint", fake)
    cfg = compose(["linker=actor", override("paths.data_dir", str(tmp_path / "d"))])
    linker = stages.build_linker(cfg.linker)
    assert calls == [("alexnet", f"{tmp_path}/d/synthactors")]
    assert isinstance(linker, ActorLinker) and Path(linker.checkpoint) == made
    assert linker.num_tubes == 20 and linker.snap_iou == 0.5
    lite = compose(["linker=actor", "linker.default_tracker.backbone=efficientnet_lite0"])
    stages.build_linker(lite.linker)
    assert calls[-1][0] == "efficientnet_lite0"
    given = tmp_path / "mine.pt"
    given.write_bytes(b"mine")
    cfg = compose(["linker=actor", override("linker.checkpoint", str(given))])
    assert Path(stages.build_linker(cfg.linker).checkpoint) == given and len(calls) == 2
    with pytest.raises(FileNotFoundError, match="nope.pt not found"):
        stages.build_linker(compose(["linker=actor", "linker.checkpoint=nope.pt"]).linker)


def test_build_linker_other_linkers_as_they_are():
    linker = stages.build_linker(compose(["linker.num_tubes=3"]).linker)
    assert isinstance(linker, TemporalPrimLinker) and linker.num_tubes == 3
    linker = stages.build_linker({"_target_": "wsal.linking.TemporalPrimLinker", "min_iou": 0.2})
    assert isinstance(linker, TemporalPrimLinker) and linker.min_iou == 0.2


def test_build_linker_gives_the_actor_linker_its_tracker_maker(tmp_path):
    """The linker builds no network: the config's make_tracker loads the checkpoint into a
    SiamFC tracker on first use; a run saved before that key existed gets the same one."""
    from omegaconf import OmegaConf

    from wsal.linking.siamfc import SiamFCTracker
    from wsal.nets.siamfc import SiamFCNet, save_checkpoint

    ckpt = save_checkpoint(tmp_path / "t.pt", SiamFCNet(), {"note": "mine"})
    cfg = compose(["linker=actor", override("linker.checkpoint", str(ckpt))])
    old = OmegaConf.to_container(cfg.linker, resolve=True)
    del old["make_tracker"]  # what an older run folder's config holds
    for node in (cfg.linker, old):
        linker = stages.build_linker(node)
        assert linker.tracker is None  # nothing loaded until a video is linked
        tracker = linker.get_tracker()
        assert isinstance(tracker, SiamFCTracker)
        assert tracker.checkpoint == str(ckpt) and tracker.meta == {"note": "mine"}
        assert tracker.config.scale_lr == 0.59  # tracker_config applied over the checkpoint's
