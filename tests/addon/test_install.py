"""The extension installed the way a user installs it, on the Blender running these tests (4.5 or
5.2): Blender's own `extensions.package_install_files` into a fresh user-resources folder, in a
bpy venv that has no pyzmq of its own (.venv-bpy45-nozmq / .venv-bpy52-nozmq, made by
scripts/setup_bpy.sh), then the enabled `bl_ext.user_default.osmnet_talking_head` talks to a real
`osmnet serve` through the pyzmq wheel bundled in the zip.

$OSMNET_VENVS names the folder holding the .venv-* folders when it is not the repository (a git
worktree, for instance)."""
import json
import os
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

bpy = pytest.importorskip("bpy")

import ui_support  # noqa: E402

pytestmark = pytest.mark.slow
ROOT = ui_support.ROOT
CHECK = Path(__file__).with_name("installed_check.py")


def _blender_ext() -> Path:
    """blender_ext.py of the Blender that runs these tests (it ships inside the bpy module)."""
    tool = Path(bpy.utils.system_resource('SCRIPTS')) / "addons_core" / "bl_pkg" / "cli" / "blender_ext.py"
    if not tool.is_file():
        pytest.skip(f"blender_ext.py not found at {tool}")
    return tool


def _nozmq_python() -> Path:
    major, minor = bpy.app.version[:2]
    venv = Path(os.environ.get("OSMNET_VENVS", ROOT)) / f".venv-bpy{major}{minor}-nozmq"
    python = venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    if not python.is_file():
        if os.environ.get("OSMNET_REQUIRE_INSTALL_TEST"):  # scripts/test.sh: CI must run this test
            pytest.fail(f"{venv} is missing; run scripts/setup_bpy.sh")
        pytest.skip(f"{venv.name} not found: scripts/setup_bpy.sh makes it (bpy {major}.{minor} without pyzmq)")
    return python


@pytest.fixture(scope="module")
def zips(tmp_path_factory):
    """Both ways the zip is built: one for every platform, and the linux_x64 one of --split-platforms."""
    out = tmp_path_factory.mktemp("dist")
    built = {}
    for args in ([], ["--split-platforms", "--wheels-dir", str(out / "wheels")]):
        res = subprocess.run([sys.executable, str(ROOT / "scripts" / "build_addon.py"), "--out", str(out),
                              "--blender-ext", str(_blender_ext()), *args],
                             capture_output=True, text=True, timeout=300)
        if res.returncode != 0 and "could not download" in res.stderr:
            pytest.skip(f"PyPI not reachable for the pyzmq wheels: {res.stderr[-300:]}")
        assert res.returncode == 0, res.stdout + res.stderr
    built["all"] = next(out.glob("osmnet_talking_head-*[0-9].zip"))
    built["linux_x64"] = next(out.glob("osmnet_talking_head-*-linux_x64.zip"))
    return built


def _bundled_pyzmq_version(zip_path) -> str:
    """The version of the pyzmq wheel in the zip that is for this Python (cpXY)."""
    tag = f"cp{sys.version_info[0]}{sys.version_info[1]}"
    with zipfile.ZipFile(zip_path) as z:
        names = [Path(n).name for n in z.namelist() if n.startswith("wheels/pyzmq-") and f"-{tag}-" in n]
    assert names, f"no pyzmq wheel for {tag} in {zip_path.name}"
    return names[0].split("-")[1]


def test_split_platform_zips_carry_only_their_platforms_wheels(zips):
    split = [p.stem.split("-")[2] for p in zips["all"].parent.glob("osmnet_talking_head-*-*.zip")]
    assert sorted(split) == ["linux_x64", "macos_arm64", "macos_x64", "windows_x64"]
    with zipfile.ZipFile(zips["linux_x64"]) as z:
        manifest = tomllib.loads(z.read("blender_manifest.toml").decode())
        wheels = sorted(n for n in z.namelist() if n.endswith(".whl"))
    assert manifest["platforms"] == ["linux-x64"]
    assert len(wheels) == 2 and all("manylinux" in w for w in wheels)
    assert [w.split("-")[2] for w in wheels] == ["cp311", "cp313"]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    ui_support.main_python_or_skip()
    srv = ui_support.Serve(ui_support.free_port(), ui_support.checkpoint_for_e2e(tmp_path_factory.mktemp("ckpt")))
    yield srv
    srv.kill()


@pytest.mark.parametrize("which", ["all", "linux_x64"])
def test_user_install_enables_and_talks_to_the_backend_with_only_the_bundled_pyzmq(zips, server, which, tmp_path):
    if which == "linux_x64" and not sys.platform.startswith("linux"):
        pytest.skip("the linux_x64 zip installs on Linux only")
    python = _nozmq_python()
    resources = tmp_path / "user-resources"  # a fresh Blender user folder: no extension, no preferences
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "BLENDER_USER_SCRIPTS")}
    env["BLENDER_USER_RESOURCES"] = str(resources)
    res = subprocess.run([str(python), str(CHECK), str(zips[which]), server.address], capture_output=True,
                         text=True, timeout=300, cwd=tmp_path, env=env)
    line = next((ln for ln in res.stdout.splitlines() if ln.startswith("INSTALLED-CHECK ")), None)
    assert line, res.stdout[-3000:] + res.stderr[-3000:]
    seen = json.loads(line.removeprefix("INSTALLED-CHECK "))
    assert seen["zmq_before"] is False  # the venv really has no pyzmq of its own
    assert seen["blender"].startswith(".".join(map(str, bpy.app.version[:2])))
    assert seen["install"] == ["FINISHED"] and seen["enabled"], seen
    # zmq comes from the wheel Blender unpacked into the fresh user folder, for this Python
    assert Path(seen["zmq_file"]).resolve().is_relative_to(resources.resolve()), seen
    assert seen["zmq_version"] == _bundled_pyzmq_version(zips[which]), seen
    assert not seen["repo_addon_loaded"]
    assert seen["check"] == ["FINISHED"]
    assert seen["level"] == "INFO" and seen["status"].startswith("Connected to"), seen
    assert seen["model"], seen
