"""Rendering through the server with the real renderer: the frames equal osmnet.render.portrait's own."""
from __future__ import annotations

import numpy as np
import pytest

from backend import testing as T
from backend.engine import Engine
from backend.server import Server
from blender_addon.core.client import Client, ClientError
from blender_addon.core.take import zero_take

pytestmark = pytest.mark.slow
PORTRAIT = "liveportrait_s0.jpg"


@pytest.fixture(scope="module", autouse=True)
def landmarker(face_model):
    mp = pytest.MonkeyPatch()
    mp.setenv("OSMNET_FACE_LANDMARKER", str(face_model))
    yield
    mp.undo()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    engine = Engine.load(T.checkpoint_for_tests(tmp_path_factory.mktemp("ckpt")))
    assert "render" in engine.capabilities
    srv = Server(f"tcp://127.0.0.1:{T.free_port()}", engine=engine).start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def take():
    t = zero_take(12, 25.0)
    t.channels["jawOpen"][:] = 0.6 * np.sin(np.linspace(0, np.pi, 12)) ** 2
    t.channels["headYaw"][:] = np.linspace(-0.15, 0.15, 12)
    return t


def frames_of(events) -> np.ndarray:
    batches = [e for e in events if e.type == "frames"]
    assert [b.start for b in batches] == list(np.cumsum([0] + [b.content["count"] for b in batches[:-1]]))
    return np.concatenate([b.frames for b in batches])


@pytest.mark.parametrize("send", ["path", "bytes", "pixels"])
def test_rendered_frames_equal_the_renderers_own(server, take, shared_data, send):
    from osmnet.render.portrait import Portrait, load_image, render_frames

    path = shared_data / "faces" / PORTRAIT
    image = {"path": str(path), "bytes": path.read_bytes(), "pixels": load_image(path)}[send]
    with Client(server.address, timeout=60) as c:
        assert "render" in c.hello()["capabilities"]
        events = list(c.render(take, image, size=128))
    started = next(e for e in events if e.type == "started")  # after accepted (and any "preparing" progress)
    assert events[-1].type == "finished" and started.content["frames"] == 12
    got = frames_of(events)
    want = np.stack(list(render_frames(Portrait.from_image(load_image(path)), take, size=128)))
    assert got.shape == (12, 128, 128, 3) and got.dtype == np.uint8
    np.testing.assert_array_equal(got, want)
    assert np.abs(got[6].astype(int) - got[0].astype(int)).mean() > 1  # the face really moves


def test_a_photo_without_a_face_is_a_bad_image_error_that_says_what_to_use(server, take):
    with Client(server.address, timeout=60) as c:
        with pytest.raises(ClientError) as e:
            list(c.render(take, np.full((200, 200, 3), 128, np.uint8), size=128))
    assert e.value.code == "bad_image" and "no face" in e.value.message


def test_an_unsupported_size_is_refused_with_the_allowed_sizes(server, take, shared_data):
    with Client(server.address, timeout=60) as c:
        with pytest.raises(ClientError) as e:
            list(c.render(take, shared_data / "faces" / PORTRAIT, size=100))
    assert e.value.code == "bad_request" and "256" in e.value.message
