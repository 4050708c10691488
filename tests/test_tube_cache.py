"""The tube cache (wsal.linking.cache): file round trip, keys, and the picklable tube source."""

from __future__ import annotations

import numpy as np

from wsal.linking.cache import _load_tubes, _save_tubes
from wsal.structures import Tubes


def make_tubes(rng, k, f):
    valid = np.zeros((k, f), bool)
    for i in range(k):
        a = int(rng.integers(0, f))
        valid[i, a : int(rng.integers(a + 1, f + 1))] = True
    boxes = np.where(valid[..., None], rng.uniform(0, 100, (k, f, 4)), 0).astype(np.float32)
    bi = np.where(valid, rng.integers(-1, 50, (k, f)), -1)
    return Tubes(boxes, valid, bi, rng.random(k).astype(np.float32))


def test_tube_cache_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    tubes = {"a": make_tubes(rng, 3, 12), "b/c": make_tubes(rng, 0, 5), "d": make_tubes(rng, 5, 7)}
    _save_tubes(tmp_path / "t.npz", tubes)
    back = _load_tubes(tmp_path / "t.npz", {"a": 12, "b/c": 5, "d": 7})
    assert list(back) == list(tubes)
    for v, t in tubes.items():
        np.testing.assert_array_equal(back[v].valid, t.valid)
        np.testing.assert_array_equal(back[v].boxes, t.boxes)
        np.testing.assert_array_equal(back[v].box_index, t.box_index)
        np.testing.assert_array_equal(back[v].scores, t.scores)
