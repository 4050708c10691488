"""Evaluation protocol per dataset, as the weakly-supervised literature reports it.

- UCF Sports: video-mAP@0.5 and the AUC of video-mAP over st-IoU 0.1-0.6 (STIL Table 2;
  "Guess Where?" Table 2 reports mAP@0.5), split 1 (103/47).
- J-HMDB-21: video-mAP@0.5 averaged over the three splits (one run per ``dataset.split``;
  :func:`average_over_splits` merges their ``results.json``).
- UCF101-24: video-mAP@0.2 / 0.5 / 0.75 and the mean over 0.5:0.05:0.95, split 1 with the
  corrected annotations (STIL Table 2 reports @0.5, "Guess Where?" Table 2 @0.2).

Every protocol uses wsal's ``act`` evaluator (ACT/MOC videoAP, DESIGN §7) with tube NMS 0.3;
``statement`` is the one line to print next to any table of these numbers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["EvaluationProtocol", "PROTOCOLS", "get_protocol", "average_over_splits"]


@dataclass(frozen=True)
class EvaluationProtocol:
    """How one dataset's numbers are reported.

    iou: st-IoU thresholds whose video-mAP is reported (``results.json`` ``video_mAP`` keys).
    headline: the ``results.json`` metrics of the dataset's table, in order (``"video_mAP@0.5"``,
        ``"AUC@0.1:0.6"``, ``"mAP@0.5:0.95"``).
    auc_range: (low, high) st-IoU range of the AUC, or None when the dataset reports none.
    splits: evaluation split of each run; more than one = the headline is their mean.
    """

    dataset: str
    iou: tuple[float, ...]
    headline: tuple[str, ...]
    auc_range: tuple[float, float] | None
    splits: tuple[str, ...]
    statement: str
    protocol: str = "act"
    nms: float = 0.3

    def evaluation_config(self, split: str | None = None) -> dict[str, Any]:
        """The ``conf/evaluation`` keys (those of ``wsal.evaluation.results.EvaluationSpec``) of one run."""
        return {
            "split": split or self.splits[0],
            "protocol": self.protocol,
            "iou": list(self.iou),
            "nms": self.nms,
            "recall_iou": [0.2, 0.5],
            "num_pictures": 4,
        }

    def headline_numbers(self, results: Mapping[str, Any]) -> dict[str, float]:
        """The headline metrics of a ``results.json`` dict (or of :func:`average_over_splits`)."""
        out = {}
        for key in self.headline:
            if key.startswith("video_mAP@"):
                out[key] = float(results["video_mAP"][key.split("@", 1)[1]])
            else:
                out[key] = float(results[key])
        return out


_ACT = "ACT/MOC video-AP (+1 px areas, trapezoid AP, tube NMS 0.3)"
PROTOCOLS: dict[str, EvaluationProtocol] = {
    "ucfsports": EvaluationProtocol(
        "ucfsports",
        iou=(0.2, 0.5),
        headline=("video_mAP@0.5", "AUC@0.1:0.6"),
        auc_range=(0.1, 0.6),
        splits=("test",),
        statement=f"UCF Sports, test split (47 videos): video-mAP@0.5 and AUC of video-mAP over "
        f"st-IoU 0.1-0.6; {_ACT}",
    ),
    "jhmdb": EvaluationProtocol(
        "jhmdb",
        iou=(0.2, 0.5),
        headline=("video_mAP@0.5",),
        auc_range=None,
        splits=("test", "test2", "test3"),
        statement=f"J-HMDB-21: video-mAP@0.5, mean over the 3 splits (one run per split); {_ACT}",
    ),
    "ucf101_24": EvaluationProtocol(
        "ucf101_24",
        iou=(0.2, 0.5, 0.75),
        headline=("video_mAP@0.2", "video_mAP@0.5", "video_mAP@0.75", "mAP@0.5:0.95"),
        auc_range=None,
        splits=("test",),
        statement=f"UCF101-24, split 1, corrected annotations, test split (910 videos): "
        f"video-mAP@0.2/0.5/0.75 and mean over 0.5:0.05:0.95; {_ACT}",
    ),
}


def get_protocol(dataset: str) -> EvaluationProtocol:
    """The protocol of a dataset name (``jhmdb2`` etc. map to their dataset)."""
    base = dataset.rstrip("0123456789") if dataset not in PROTOCOLS else dataset
    if base not in PROTOCOLS:
        raise KeyError(
            f"no evaluation protocol for dataset {dataset!r}; known: {sorted(PROTOCOLS)}"
        )
    return PROTOCOLS[base]


def _mean(values: Sequence[Any], path: str) -> Any:
    first = values[0]
    if isinstance(first, Mapping):
        keys = list(first)
        for v in values[1:]:
            if not isinstance(v, Mapping) or set(v) != set(keys):
                raise ValueError(f"average_over_splits: {path or 'results'} differ in keys")
        return {k: _mean([v[k] for v in values], f"{path}.{k}" if path else k) for k in keys}
    if isinstance(first, bool) or first is None:
        return first if all(v == first for v in values) else list(values)
    if isinstance(first, (int, float)):
        if path.rsplit(".", 1)[-1].startswith("num_"):
            return sum(values)  # counts add up over the splits
        return float(sum(float(v) for v in values) / len(values))
    if isinstance(first, (list, tuple)):
        if all(isinstance(v, (list, tuple)) and len(v) == len(first) for v in values) and all(
            isinstance(x, (int, float)) for v in values for x in v
        ):
            return [float(sum(xs) / len(xs)) for xs in zip(*values)]
        return list(values)
    if all(v == first for v in values):
        return first
    return "+".join(str(v) for v in values)


def average_over_splits(results: list[dict]) -> dict:
    """Merge the ``results.json`` dicts of one method on several splits (J-HMDB's protocol).

    Numbers (nested dicts included, e.g. ``video_mAP``, ``AP``, ``mAP_curve``) are the mean over
    the splits, except ``num_*`` counts, which are summed; equal-length numeric lists (proposal
    recall curves) are averaged element-wise; strings that differ are joined with ``+``
    (``split`` -> ``"test+test2+test3"``); a NaN in any split makes the mean NaN. ``per_split`` keeps the inputs'
    headline values (``video_mAP``, ``split``) and ``num_splits`` their count. Raises
    ``ValueError`` for no results, differing protocols or differing metric keys.
    """
    if not results:
        raise ValueError("average_over_splits: no results to average")
    protocols = {r.get("protocol") for r in results}
    if len(protocols) > 1:
        raise ValueError(f"average_over_splits: results under different protocols {protocols}")
    common = set(results[0]).intersection(*results[1:])
    skip = {"timings", "per_split"}
    out = _mean([{k: r[k] for k in sorted(common - skip)} for r in results], "")
    out["num_splits"] = len(results)
    out["per_split"] = [
        {"split": r.get("split"), "video_mAP": r.get("video_mAP", {})} for r in results
    ]
    return out
