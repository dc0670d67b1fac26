"""Phone labels: frame shares add up, and pocketsphinx hears the phones of a real GRID sentence."""
from __future__ import annotations

import numpy as np
import pytest

from osmnet.data import phones


def test_frame_labels_are_shares_of_10ms_phones_per_video_frame():
    segs = [("SIL", 0, 5), ("B", 6, 9), ("IH", 10, 17), ("+NSN+", 18, 21)]
    lab = phones.frame_labels(segs, frames=6, fps=25.0)
    assert lab.shape == (6, phones.N_PHONES)
    np.testing.assert_allclose(lab.sum(1), 1.0)
    sil, b, ih = (phones.PHONES.index(p) for p in ("SIL", "B", "IH"))
    assert lab[0, sil] == 1.0 and lab[1, sil] == 0.5 and lab[1, b] == 0.5  # 10 ms frames 4..7
    assert lab[3, ih] == 1.0 and lab[5, sil] == 1.0  # noise counts as silence; past the end: silence


def test_pocketsphinx_hears_a_real_grid_sentence_and_the_cache_returns_it(shared_data, tmp_path):
    if not phones.available():
        pytest.skip("pocketsphinx is not installed (pip install pocketsphinx)")
    from osmnet.audio import load_audio

    wave = load_audio(shared_data / "talking" / "grid_spkA_clip1.mp4")  # "bin blue at f two now"
    segs = phones.cached_segments(wave, tmp_path)
    spoken = [p for p, _, _ in segs if p != "SIL" and not p.startswith("+")]
    # the recognizer without words is rough (it hears "t k dh ih n g uh eh f t iy m eh ow"), but it
    # hears speech as a run of phones between silences, with the sentence's "f two" in it
    assert segs[0][0] == "SIL" and len(spoken) >= 10 and {"F", "T"} <= set(spoken)
    assert len(list(tmp_path.iterdir())) == 1
    assert phones.cached_segments(wave, tmp_path) == segs
