"""The mouth's inside: teeth fixed to the skull, lower teeth and tongue with the jaw, crisp edges."""
from __future__ import annotations

import numpy as np
import pytest

from blender_addon.core.take import zero_take

PORTRAIT = "liveportrait_s0.jpg"


@pytest.fixture(scope="module")
def model_env(face_model):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("OSMNET_FACE_LANDMARKER", str(face_model))
        yield face_model


@pytest.fixture(scope="module")
def portrait(shared_data, model_env):
    from osmnet.render.portrait import Portrait

    return Portrait.from_file(shared_data / "faces" / PORTRAIT)


def render(portrait, size=512, **channels) -> np.ndarray:
    from osmnet.render.portrait import render_frames

    take = zero_take(1)
    for k, v in channels.items():
        take.channels[k][:] = v
    return next(render_frames(portrait, take, size=size, center_pose=False)).astype(float)


def luma(im):
    return im @ np.array([0.299, 0.587, 0.114])


def centre_column(portrait, im, size=512, offset=0):
    """Luma down the middle of the mouth (`offset` px aside; 3 columns averaged), nose to chin."""
    x = int(portrait.landmarks[13, 0] * size) + offset
    y0, y1 = int(portrait.landmarks[2, 1] * size), int(portrait.landmarks[152, 1] * size)
    return y0, luma(im[y0:y1, x - 1:x + 2]).mean(axis=1)


def dark_rows(profile, level=45.0):
    rows = np.nonzero(profile < level)[0]
    assert rows.size, "no dark mouth cavity in the middle of the mouth"
    return rows[0], rows[-1]


def test_upper_teeth_stay_with_the_skull_while_the_lower_ones_follow_the_jaw(portrait):
    y0, half = centre_column(portrait, render(portrait, jawOpen=0.25))
    _, wide = centre_column(portrait, render(portrait, jawOpen=0.5))
    top_half, bottom_half = dark_rows(half)
    top_wide, bottom_wide = dark_rows(wide)
    assert abs(int(top_wide) - int(top_half)) <= 2  # the upper teeth's edge does not move
    assert bottom_wide - bottom_half >= 8  # the lower teeth (below the cavity) drop with the jaw
    teeth = wide[top_wide - 4:top_wide - 1].mean()
    assert teeth > wide[top_wide:bottom_wide].mean() + 80  # bright teeth above a dark cavity
    below = wide[bottom_wide + 2:bottom_wide + 5].mean()
    assert below > wide[top_wide:bottom_wide].mean() + 50  # and lower teeth below it


def test_the_teeth_meet_the_cavity_in_a_sharp_edge_at_512(portrait):
    _, profile = centre_column(portrait, render(portrait, jawOpen=0.5), offset=4)  # beside the middle gap
    top, bottom = dark_rows(profile)
    cavity, teeth = np.median(profile[top:bottom + 1]), profile[top - 5:top - 2].mean()
    band = profile[top - 4:top + 5]
    lo, hi = cavity + 0.2 * (teeth - cavity), cavity + 0.8 * (teeth - cavity)
    assert np.count_nonzero((band > lo) & (band < hi)) <= 2, band.round()
    assert np.abs(np.diff(band)).max() >= 0.55 * (teeth - cavity)  # most of the step within one pixel


def test_tongue_out_covers_the_lower_lip_in_a_tongue_colour(portrait):
    plain, tongue = render(portrait), render(portrait, tongueOut=1.0)
    x = int(portrait.landmarks[14, 0] * 512)
    y_in, y_out = int(portrait.landmarks[14, 1] * 512), int(portrait.landmarks[17, 1] * 512)
    lip = np.s_[y_in + 4:y_out, x - 3:x + 4]  # the lower lip's middle, below the mouth
    assert np.abs(tongue[lip] - plain[lip]).mean() > 15
    r, g, b = tongue[lip].reshape(-1, 3).mean(0)
    assert r > g + 30 and r > b + 30  # red-pink, not cavity-dark or teeth-white


def test_pucker_and_funnel_round_the_mouth(portrait, model_env):
    from osmnet.data.track import FaceTracker

    def width(im):  # corner to corner, as the tracker sees it
        with FaceTracker(model_env) as tracker:
            lm = tracker.detect_image(im.astype(np.uint8))[0].landmarks
        return np.linalg.norm(lm[61, :2] - lm[291, :2])

    rest = width(render(portrait, size=256))
    assert width(render(portrait, size=256, mouthPucker=0.8)) < 0.93 * rest
    funnel = render(portrait, size=256, mouthFunnel=0.7)
    assert width(funnel) < 0.97 * rest
    _, before = centre_column(portrait, render(portrait, size=256), size=256)
    _, after = centre_column(portrait, funnel, size=256)
    assert np.abs(after - before).max() > 60  # and opens the lips onto the teeth and the cavity


def test_a_grey_photo_gets_a_grey_mouth(portrait):
    from osmnet.render.portrait import Portrait

    grey = np.repeat(luma(portrait.image.astype(float))[..., None], 3, axis=2).astype(np.uint8)
    im = render(Portrait.from_image(grey), jawOpen=0.5, tongueOut=0.5)
    _, profile = centre_column(portrait, im)
    assert (im.max(axis=2) - im.min(axis=2)).max() <= 3  # no colour anywhere, mouth included
