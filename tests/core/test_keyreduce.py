"""Key reduction for baking: the kept keys reproduce every original key within the tolerance,
and smooth motion needs far fewer keys than one per frame."""
from __future__ import annotations

import numpy as np
import pytest

from blender_addon.core.keyreduce import max_error, reduce_keys


def _curves():
    rng = np.random.default_rng(3)
    t = np.arange(400) / 25.0
    yield "speech-like", 0.4 + 0.35 * np.sin(2 * np.pi * 1.3 * t) * (0.5 + 0.5 * np.sin(2 * np.pi * 0.21 * t))
    yield "head turn", 0.3 * np.sin(2 * np.pi * 0.25 * t) + 0.05 * np.sin(2 * np.pi * 0.9 * t)
    yield "noisy", rng.normal(0.0, 0.2, t.size).cumsum() / 20
    yield "blink", (np.abs(np.sin(2 * np.pi * 0.3 * t)) > 0.97).astype(float)
    yield "steps", np.repeat(rng.uniform(0, 1, 40), 10)


@pytest.mark.parametrize("tolerance", [0.0005, 0.003, 0.01, 0.05])
@pytest.mark.parametrize("name,values", list(_curves()))
def test_every_original_key_stays_within_the_tolerance(name, values, tolerance):
    frames = 1 + np.arange(len(values), dtype=float)
    keep = reduce_keys(frames, values, tolerance)
    assert keep[0] == 0 and keep[-1] == len(values) - 1 and np.all(np.diff(keep) > 0)
    assert max_error(frames, values, keep) <= tolerance + 1e-12
    assert len(keep) <= len(values)


def test_smooth_motion_keeps_few_keys_and_a_looser_tolerance_keeps_fewer():
    (_, speech), (_, head) = list(_curves())[:2]
    frames = np.arange(len(speech), dtype=float)
    counts = [len(reduce_keys(frames, head, tol)) for tol in (0.001, 0.005, 0.02)]
    assert counts[0] > counts[1] > counts[2] and counts[1] < len(head) / 3
    assert len(reduce_keys(frames, speech, 0.02)) < len(speech) / 3


def test_edge_cases_constant_tiny_zero_tolerance_and_bad_lengths():
    frames = np.arange(50, dtype=float)
    assert list(reduce_keys(frames, np.full(50, 0.3), 0.01)) == [0, 49]
    assert list(reduce_keys(frames[:2], [0.0, 1.0], 0.01)) == [0, 1]
    assert len(reduce_keys(frames, np.sin(frames), 0.0)) == 50  # 0 keeps every key
    with pytest.raises(ValueError, match="differ in length"):
        reduce_keys(frames, np.zeros(3), 0.01)


def test_uneven_frames_are_interpolated_by_time_not_by_index():
    frames = np.array([0.0, 1.0, 10.0])
    values = np.array([0.0, 0.1, 1.0])  # on the straight line from (0, 0) to (10, 1)
    assert list(reduce_keys(frames, values, 1e-6)) == [0, 2]
