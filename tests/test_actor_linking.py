"""Actor linking (Guess Where? Alg. 1): batched speculative seeding == the literal loop."""

from __future__ import annotations

import numpy as np
import pytest

from tests.tiny import TINY_SYNTH
from wsal.linking.actor import actor_link, actor_link_reference
from wsal.structures import Detections


def _drift_track_one(frames: np.ndarray, frame0: int, box0: np.ndarray) -> np.ndarray:
    """A deterministic fake tracker: the box drifts by a velocity that depends on the box."""
    T = frames.shape[0]
    v = np.array([(box0[0] % 3) - 1, (box0[1] % 2) - 0.5] * 2, np.float32)  # [4]
    t = np.arange(T, dtype=np.float32)[:, None] - frame0  # [T,1]
    return (box0[None, :] + t * v[None, :]).astype(np.float32)  # [T,4]


class FakeTracker:
    """Batched wrapper of a one-target tracker, counting calls and targets."""

    def __init__(self, track_one=_drift_track_one) -> None:
        self.track_one = track_one
        self.calls = 0
        self.targets = 0

    def track(self, frames, frame0, boxes0, progress=False):
        self.calls += 1
        self.targets += len(frame0)
        boxes = np.stack([self.track_one(frames, int(f), b) for f, b in zip(frame0, boxes0)])
        return boxes, np.ones(boxes.shape[:2], np.float32)


def _random_dets(rng: np.random.Generator, T: int, n: int) -> Detections:
    frame = rng.integers(0, T, n)
    xy = rng.uniform(0, 40, (n, 2))
    wh = rng.uniform(8, 20, (n, 2))
    boxes = np.c_[xy, xy + wh].astype(np.float32)
    scores = rng.choice([0.2, 0.5, 0.5, 0.9, 0.3], n).astype(np.float32)  # ties on purpose
    return Detections.from_unsorted(frame, boxes, scores, T)


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("batch", [1, 3, 8, 50])
@pytest.mark.parametrize("snap", [None, 0.3])
def test_batched_equals_literal_algorithm(seed: int, batch: int, snap: float | None) -> None:
    rng = np.random.default_rng(seed)
    T = int(rng.integers(1, 12))
    dets = _random_dets(rng, T, int(rng.integers(0, 40)))
    frames = np.zeros((T, 8, 8, 3), np.uint8)
    num = int(rng.integers(1, 8))
    tracker = FakeTracker()
    got = actor_link(
        frames, dets, tracker, num_tubes=num, batch_seeds=batch, min_score=0.25, snap_iou=snap
    )
    ref = actor_link_reference(
        frames, dets, _drift_track_one, num_tubes=num, min_score=0.25, snap_iou=snap
    )
    assert got.num_tubes == ref.num_tubes <= num
    np.testing.assert_array_equal(got.box_index, ref.box_index)
    np.testing.assert_array_equal(got.boxes, ref.boxes)
    np.testing.assert_array_equal(got.scores, ref.scores)
    assert got.valid.all()
    assert np.all(np.diff(got.scores) <= 0)  # proposals come out best first


def test_two_actors_and_a_false_positive() -> None:
    """Known answer: two actors seen on 5 frames (one missed on frame 2), one false positive.

    The oracle tracker returns the true track of the actor the seed box overlaps (or stays put),
    so Alg. 1 gives actor A (best seed), then actor B, then the false positive, then nothing: every
    other detection overlaps an existing tube by > 0.7.
    """
    T = 5
    track_a = np.array([[10 + 2 * t, 10, 30 + 2 * t, 50] for t in range(T)], np.float32)
    track_b = np.array([[60 - 3 * t, 5, 80 - 3 * t, 45] for t in range(T)], np.float32)
    rows = [(t, track_a[t], 0.9 - 0.01 * t) for t in range(T)]
    rows += [(t, track_b[t], 0.8 - 0.01 * t) for t in range(T) if t != 2]  # B missed on frame 2
    rows += [(3, np.array([0, 60, 10, 80], np.float32), 0.3)]  # a false positive
    frame = np.array([r[0] for r in rows])
    boxes = np.stack([r[1] for r in rows])
    scores = np.array([r[2] for r in rows], np.float32)
    dets = Detections.from_unsorted(frame, boxes, scores, T)

    def oracle(frames, frame0, box0):
        for track in (track_a, track_b):
            if np.allclose(track[frame0], box0):
                return track.copy()
        return np.repeat(box0[None], T, 0)

    tracker = FakeTracker(oracle)
    tubes = actor_link(np.zeros((T, 4, 4, 3), np.uint8), dets, tracker, num_tubes=20, batch_seeds=2)
    assert tubes.num_tubes == 3
    np.testing.assert_allclose(tubes.boxes[0], track_a)
    np.testing.assert_allclose(tubes.boxes[1], track_b)  # frame 2 bridged by the tracker
    np.testing.assert_allclose(tubes.boxes[2], np.repeat([[0, 60, 10, 80]], T, 0))
    np.testing.assert_allclose(tubes.scores, [0.9, 0.8, 0.3])
    # provenance: only the seed frame holds a detector box
    assert (tubes.box_index >= 0).sum(1).tolist() == [1, 1, 1]
    assert tubes.box_index[1, 2] == -1 and tubes.box_index[1, 0] >= 0  # B seeded on frame 0
    assert tracker.targets >= 3


def test_snapping_takes_detector_boxes_where_they_agree_with_the_tracker() -> None:
    """The tracker stays put at [0,0,10,10]; frame 1 has a close detection (IoU 0.81), frame 2 a
    far one (IoU 0.25): with snap_iou=0.5 only frame 1 takes the detector's box."""
    T = 3
    boxes = np.array([[0, 0, 10, 10], [0, 0, 9, 9], [0, 0, 5, 5]], np.float32)
    dets = Detections.from_unsorted(np.array([0, 1, 2]), boxes, np.array([0.9, 0.5, 0.4]), T)
    still = FakeTracker(lambda frames, f0, b0: np.repeat(b0[None], T, 0))
    frames = np.zeros((T, 4, 4, 3), np.uint8)
    t = actor_link(frames, dets, still, num_tubes=5, snap_iou=0.5)
    np.testing.assert_allclose(t.boxes[0], [[0, 0, 10, 10], [0, 0, 9, 9], [0, 0, 10, 10]])
    assert t.box_index[0].tolist() == [0, 1, -1]
    assert t.num_tubes == 2  # the far detection seeds its own tube
    t = actor_link(frames, dets, still, num_tubes=5, snap_iou=None)
    assert t.box_index[0].tolist() == [0, -1, -1]  # suppressed (IoU 0.81 > 0.7), not used


def test_num_tubes_and_min_score() -> None:
    T = 3
    boxes = np.array([[0, 0, 10, 10], [50, 50, 60, 60], [20, 20, 30, 30]], np.float32)
    dets = Detections.from_unsorted(np.array([0, 1, 2]), boxes, np.array([0.5, 0.4, 0.05]), T)
    frames = np.zeros((T, 4, 4, 3), np.uint8)
    t = actor_link(frames, dets, FakeTracker(), num_tubes=1)
    assert t.num_tubes == 1 and t.scores[0] == pytest.approx(0.5)
    t = actor_link(frames, dets, FakeTracker(), num_tubes=5, min_score=0.1)
    assert t.num_tubes == 2  # the 0.05 box may not seed


def test_empty_and_bad_input() -> None:
    frames = np.zeros((4, 4, 4, 3), np.uint8)
    t = actor_link(frames, Detections.empty(4), FakeTracker())
    assert t.num_tubes == 0 and t.num_frames == 4
    with pytest.raises(ValueError, match="vid7.*3 frames.*4 frames"):
        actor_link(frames[:3], Detections.empty(4), FakeTracker(), video="vid7")
    with pytest.raises(ValueError, match="num_tubes"):
        actor_link(frames, Detections.empty(4), FakeTracker(), num_tubes=0)


def test_actor_linker_through_the_pipeline_cache(tmp_path) -> None:
    """ActorLinker decodes each video via the index, links it, and the tube cache round-trips."""
    from wsal.data.datasets import SynthActors
    from wsal.detection.backends import StoredDetections
    from wsal.linking.actor import ActorLinker
    from wsal.linking.cache import link_cached

    prepared = SynthActors(
        root=str(tmp_path / "synth"), workers=1, progress=False, **TINY_SYNTH
    ).prepare()
    tracker = FakeTracker()
    linker = ActorLinker(num_tubes=3, tracker=tracker, progress=False)
    tubes = link_cached(prepared, StoredDetections(None), linker, tmp_path / "cache")
    assert set(tubes) == set(prepared.index.videos)
    for v, t in tubes.items():
        assert t.num_frames == prepared.index.videos[v].nframes
        assert 1 <= t.num_tubes <= 3 and t.valid.all()
    calls = tracker.calls
    again = link_cached(prepared, StoredDetections(None), linker, tmp_path / "cache")
    assert tracker.calls == calls  # served from the cache
    for v in tubes:
        np.testing.assert_allclose(again[v].boxes, tubes[v].boxes)
        np.testing.assert_array_equal(again[v].box_index, tubes[v].box_index)
    with pytest.raises(ValueError, match="needs the videos"):
        linker.link({})
    with pytest.raises(FileNotFoundError, match="tracker checkpoint"):
        ActorLinker(checkpoint=str(tmp_path / "missing.pt")).cache_key()


def test_worker_processes_give_the_same_tubes(tmp_path) -> None:
    """workers=2 links the videos in two spawned processes, each making its tracker from the
    checkpoint: the same tubes, in the same order, as one process; the cache key ignores it."""
    from wsal.data.datasets import SynthActors
    from wsal.detection.backends import StoredDetections
    from wsal.linking.actor import ActorLinker
    from wsal.nets.siamfc import SiamFCNet, make_tracker, save_checkpoint

    prepared = SynthActors(
        root=str(tmp_path / "synth"), workers=1, progress=False, **TINY_SYNTH
    ).prepare()
    dets = StoredDetections(None).load(prepared.index, prepared.detections)
    videos = list(prepared.index.videos)[:4]
    dets = {v: dets[v] for v in videos}
    import torch

    torch.manual_seed(0)
    ckpt = save_checkpoint(tmp_path / "t.pt", SiamFCNet())
    kw = {"num_tubes": 2, "checkpoint": ckpt, "make_tracker": make_tracker, "progress": False}
    one = ActorLinker(**kw).link(dets, index=prepared.index)
    two = ActorLinker(workers=2, **kw)
    both = two.link(dets, index=prepared.index)
    assert list(both) == list(one) == videos
    for v in videos:
        np.testing.assert_array_equal(both[v].boxes, one[v].boxes)
        np.testing.assert_array_equal(both[v].box_index, one[v].box_index)
        np.testing.assert_array_equal(both[v].scores, one[v].scores)
    assert two.tracker is None  # the trackers lived in the workers
    assert two.cache_key() == ActorLinker(**kw).cache_key()
    with pytest.raises(ValueError, match="workers"):
        ActorLinker(workers=0, **kw)
