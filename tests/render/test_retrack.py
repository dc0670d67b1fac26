"""The cycle check: a real take rendered on several portraits and tracked again reads back as the take."""
from __future__ import annotations

import pytest

CLIP = "hdtf_WDA_KatieHill_000.mp4"  # real talking clip with clear head and jaw motion (8 s)
# A painting, a studio photo, a press photo (makeittalk_natalie, the weakest of bench_retrack.py, is at 0.85-0.86
# at 256²: too close to the line for a test that must not flake; see docs/renderer.md).
FACES = ("liveportrait_s0.jpg", "sadtalker_people_0.png", "makeittalk_obama.jpg")


@pytest.fixture(scope="module")
def tracker(face_model):
    from osmnet.data.track import FaceTracker

    with FaceTracker(face_model) as t:
        yield t


@pytest.fixture(scope="module")
def take(shared_data, tracker):
    from osmnet.data.track import to_rig_space

    return to_rig_space(tracker.track_video(shared_data / "talking" / CLIP).take)  # as the model makes them


@pytest.mark.slow
@pytest.mark.parametrize("size", [256, 512])
@pytest.mark.parametrize("face", FACES)
def test_retracking_the_render_recovers_head_pose_and_jaw(tmp_path, shared_data, tracker, take, face, size):
    """About 5 s per case at 256², 15 s at 512² on two cores."""
    from osmnet.render.portrait import Portrait, load_image
    from osmnet.render.retrack import CHANNELS, retrack

    portrait = Portrait.from_image(load_image(shared_data / "faces" / face), tracker=tracker)
    r = retrack(portrait, take, size, tmp_path / "r.mp4", tracker=tracker, channels=CHANNELS)
    low = {ch: round(v, 3) for ch, v in r.items() if v < 0.85}
    assert not low, f"{face} at {size}²: re-tracked channels below r 0.85: {low}"
