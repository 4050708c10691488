"""wsal.configs: the configs composed outside train.py (the CLIs build their stages from them)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose as hydra_compose
from hydra import initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser

from wsal.configs import compose, conf_dir, instantiate_node, instantiate_stage, override
from wsal.linking import ActorLinker, TemporalPrimLinker
from wsal.linking.viterbi import ViterbiLinker

ROOT = Path(__file__).resolve().parents[1]


def test_conf_dir_is_train_pys(monkeypatch, tmp_path):
    assert conf_dir() == (ROOT / "conf").resolve()
    monkeypatch.setenv("WSAL_CONF", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="WSAL_CONF"):
        conf_dir()


def test_compose_twice_and_inside_an_initialised_hydra():
    """Callable any number of times, and inside another Hydra (a test's, train.py's), whose
    state it leaves as it was."""
    a = compose(["linker=viterbi"])
    b = compose(["linker=temporal_prim", "linker.num_tubes=3"])
    assert a.linker._target_.endswith("ViterbiLinker") and b.linker.num_tubes == 3
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        outer = GlobalHydra.instance().hydra
        inner = compose(["detector=hog"])
        assert GlobalHydra.instance().hydra is outer
        again = hydra_compose(config_name="config", overrides=["linker=actor"])
    assert inner.detector._target_ == "wsal.detection.backends.HogDetector"
    assert again.linker.num_tubes == 20
    assert not GlobalHydra.instance().is_initialized()


def test_output_dir_resolves_outside_a_hydra_run(monkeypatch):
    monkeypatch.setattr(HydraConfig.instance(), "cfg", None)  # no run (another test may set one)
    cfg = compose()
    assert cfg.paths.output_dir == "outputs/train"  # not ${hydra:runtime.output_dir}
    assert cfg.trainer.default_root_dir == "outputs/train"
    assert compose(["paths.output_dir=elsewhere"]).paths.output_dir == "elsewhere"
    assert compose(output_dir="here").paths.output_dir == "here"
    assert "hydra" not in cfg


@pytest.mark.parametrize(
    "value",
    [None, True, 3, 0.25, "{:05d}.png", "/a b/c,d=e.npz", "it's", "back\\slash\\", "null", "3"],
)
def test_override_round_trips_through_hydras_parser(value):
    parsed = OverridesParser.create().parse_override(override("a.b", value))
    assert parsed.key_or_group == "a.b" and parsed.value() == value


def test_override_lists_and_interpolations():
    cfg = compose(
        [override("detector", "torchvision"), override("detector.classes", ("dog", "horse"))]
        + [override("detector.out_dir", "${paths.data_dir}/x,y")]
    )
    assert list(cfg.detector.classes) == ["dog", "horse"]
    assert cfg.detector.out_dir == f"{cfg.paths.data_dir}/x,y"


def test_instantiate_stage_and_node():
    prim = instantiate_stage("linker", [override("linker.num_tubes", 4)])
    assert isinstance(prim, TemporalPrimLinker) and prim.num_tubes == 4
    vit = instantiate_stage("linker", ["linker=viterbi"], num_tubes=2, progress=False)
    assert isinstance(vit, ViterbiLinker) and (vit.num_tubes, vit.progress) == (2, False)
    cfg = compose(["linker=actor"])
    with pytest.raises(ValueError, match="needs a tracker checkpoint"):  # itself, not wrapped
        instantiate_node(cfg.linker, drop=["default_tracker"])
    with pytest.raises(FileNotFoundError, match="missing.pt not found"):
        instantiate_node(cfg.linker, drop=["default_tracker"], checkpoint="missing.pt")
    tracker = object()
    actor = instantiate_node(cfg.linker, drop=["default_tracker"], tracker=tracker)
    assert isinstance(actor, ActorLinker) and actor.tracker is tracker
    assert actor.tracker_config["num_scales"] == 3  # a plain dict: the node resolved
