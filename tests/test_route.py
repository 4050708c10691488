"""The one route runs any method through the Method protocol, in the data flow's order, without
asking what kind of method it is; eval-style rebuilds go through ``load`` instead of ``fit``."""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from tests.tiny import TINY
from wsal.app import route
from wsal.configs import compose
from wsal.evaluation.bounds import true_class_detections
from wsal.models.methods import RunInputs
from wsal.structures import TubeDetections

CALLS: list[str] = []


class ReverseMethod:
    """A method the route has never heard of: every tube of a test video labelled with the
    video's true class, scored by minus its linking score (the prior ranking reversed)."""

    def __init__(self, tag: str = "x") -> None:
        self.name = f"reverse_{tag}"

    def fit(self, run: RunInputs) -> dict[str, Any]:
        CALLS.append("fit")
        assert set(run.tubes) == set(run.index.videos)  # the route linked every video first
        return {"fitted_on": len(run.videos(run.train_split)), "timings": {"fit_s": 0.0}}

    def load(self, run: RunInputs, checkpoint: Any) -> dict[str, Any]:
        CALLS.append(f"load {checkpoint}")
        return {}

    def predict(self, run: RunInputs) -> TubeDetections:
        CALLS.append("predict")
        d = true_class_detections(run.index, run.videos(run.test_split), run.tubes)
        return TubeDetections(d.video, d.label, -d.score, d.offsets, d.rows)


def test_the_route_runs_any_method(tmp_path):
    CALLS.clear()
    cfg = compose(
        [
            f"paths.data_dir={tmp_path}/data",
            f"paths.output_dir={tmp_path}/run",
            *TINY,
            "+method.tag=y",
            "method._target_=tests.test_route.ReverseMethod",
            "logger=none",
        ]
    )
    res = route.run(cfg)
    assert CALLS == ["fit", "predict"]
    saved = json.loads((tmp_path / "run" / "results.json").read_text())
    assert saved["method"] == res["method"] == "reverse_y" and saved["fitted_on"] == 7
    assert "fit_s" in saved["timings"] and "detections+linking_s" in saved["timings"]
    # the bounds are on the same tubes: the prior is the method's ranking reversed
    assert set(saved["bounds"]) == {"chance", "prior", "ceiling"}
    assert 0 <= saved["top1"] <= saved["bounds"]["ceiling"]["top1"] <= 1
    back = TubeDetections.load(tmp_path / "run" / "detections.npz")
    assert len(back) == saved["num_detections"] > 0 and np.all(back.score <= 0)

    CALLS.clear()  # a rebuild loads instead of fitting, and predicts the same detections
    cfg.paths.output_dir = str(tmp_path / "eval")
    res2 = route.run(cfg, fit=False, checkpoint="ckpt-path")
    assert CALLS == ["load ckpt-path", "predict"]
    assert res2["video_mAP"] == res["video_mAP"] and res2["checkpoint"] == "ckpt-path"
