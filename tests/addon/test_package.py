"""The extension zip as a user gets it: built by scripts/build_addon.py with pyzmq wheels for every
platform, accepted by Blender's own blender_ext.py (validate + install-files), and the installed
copy registers under the extension's own package name.

Then installed the way a user installs it, on the Blender running these tests (4.5 or 5.2):
Blender's own `extensions.package_install_files` into a fresh user-resources folder, in a bpy venv
that has no pyzmq of its own (.venv-bpy45-nozmq / .venv-bpy52-nozmq, made by
scripts/setup_bpy.sh), and the enabled `bl_ext.user_default.osmnet_talking_head` talks to a real
`osmnet serve` through the pyzmq wheel bundled in the zip (installed_check.py runs there).
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

CHECK = Path(__file__).with_name("installed_check.py")
pytestmark = pytest.mark.slow
ROOT = ui_support.ROOT


def _blender_ext() -> Path:
    """blender_ext.py of the Blender that runs these tests (it ships inside the bpy module)."""
    scripts = Path(bpy.utils.system_resource('SCRIPTS'))
    tool = scripts / "addons_core" / "bl_pkg" / "cli" / "blender_ext.py"
    if not tool.is_file():
        pytest.skip(f"blender_ext.py not found at {tool}")
    return tool


@pytest.fixture(scope="module")
def built_zip(tmp_path_factory):
    out = tmp_path_factory.mktemp("dist")
    res = subprocess.run([sys.executable, str(ROOT / "scripts" / "build_addon.py"), "--out", str(out),
                          "--blender-ext", str(_blender_ext())], capture_output=True, text=True, timeout=300)
    if res.returncode != 0 and "could not download" in res.stderr:
        pytest.skip(f"PyPI not reachable for the pyzmq wheels: {res.stderr[-300:]}")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "Success" in res.stdout  # blender_ext.py validate ran on the zip
    assert "Python versions Blender derives: 3.11, 3.13" in res.stdout  # Blender's own reading of the wheels
    zips = list(out.glob("osmnet_talking_head-*.zip"))
    assert len(zips) == 1
    return zips[0]


def test_zip_has_the_addon_and_a_pyzmq_wheel_per_python_and_platform(built_zip):
    with zipfile.ZipFile(built_zip) as z:
        names = set(z.namelist())
        manifest = tomllib.loads(z.read("blender_manifest.toml").decode())
    assert {"__init__.py", "runtime.py", "core/client.py", "core/protocol.py", "core/take.py", "keyframes.py",
            "data/preview_head.npz"} <= names
    assert not any("__pycache__" in n or n.endswith(".pyc") for n in names)
    assert manifest["id"] == "osmnet_talking_head" and manifest["blender_version_min"] == "4.2.0"
    assert set(manifest["permissions"]) == {"network", "files"}
    wheels = [w.removeprefix("./") for w in manifest["wheels"]]
    assert wheels and all(w in names for w in wheels)
    assert not any("numpy" in w for w in wheels)  # Blender ships numpy
    for platform in ("manylinux", "macosx", "win_amd64"):
        assert any("cp311-cp311" in w and platform in w for w in wheels), platform
        assert any("cp313-cp313" in w and platform in w for w in wheels), platform
    # a stable-ABI wheel next to a cp311 one makes Blender read the zip as "Python 3.11 only"
    assert not any("abi3" in w for w in wheels)
    assert set(manifest["platforms"]) == {"linux-x64", "macos-arm64", "macos-x64", "windows-x64"}


def test_blender_installs_the_zip_and_the_installed_copy_registers(built_zip, tmp_path):
    repo = tmp_path / "extensions"
    repo.mkdir()
    ver = ".".join(map(str, bpy.app.version))
    py = ".".join(map(str, sys.version_info[:3]))
    res = subprocess.run([sys.executable, str(_blender_ext()), "install-files", "--local-dir", str(repo),
                          "--blender-version", ver, "--python-version", py, str(built_zip)],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and "Installed" in res.stdout, res.stdout + res.stderr
    installed = repo / "osmnet_talking_head"
    assert (installed / "blender_manifest.toml").is_file()
    # Enable the installed copy in a fresh Blender, under its own package name (not blender_addon).
    code = (
        "import sys, bpy, addon_utils\n"
        f"sys.path.insert(0, {str(repo)!r})\n"
        "def fail(e): raise e\n"
        "addon_utils.enable('osmnet_talking_head', default_set=True, handle_error=fail)\n"
        "prefs = bpy.context.preferences.addons['osmnet_talking_head'].preferences\n"
        "assert prefs.backend_address.startswith('tcp://127.0.0.1:')\n"
        "assert bpy.ops.osmnet.generate.poll() is False\n"
        "assert bpy.ops.osmnet.preview_head() == {'FINISHED'}\n"  # its shape data ships in the zip
        "assert bpy.context.scene.osmnet.target.type == 'ARMATURE'\n"
        "assert 'osmnet_talking_head.runtime' in sys.modules and 'blender_addon' not in sys.modules\n"
        "addon_utils.disable('osmnet_talking_head', default_set=True, handle_error=fail)\n"
        "assert not hasattr(bpy.types.Scene, 'osmnet')\n"
        "print('REGISTERED-OK')\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert "REGISTERED-OK" in res.stdout, res.stdout[-2000:] + res.stderr[-2000:]


@pytest.fixture(scope="module")
def split_zips(built_zip, tmp_path_factory):
    """--split-platforms from the wheels the first build downloaded: {platform: zip}."""
    out = tmp_path_factory.mktemp("dist-split")
    res = subprocess.run([sys.executable, str(ROOT / "scripts" / "build_addon.py"), "--out", str(out),
                          "--split-platforms", "--wheels-dir", str(built_zip.parent / "wheels"),
                          "--blender-ext", str(_blender_ext())], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    assert res.stdout.count("Python versions Blender derives: 3.11, 3.13") == 4
    return {p.stem.split("-")[2]: p for p in out.glob("osmnet_talking_head-*-*.zip")}


def test_split_platform_zips_carry_only_their_platforms_wheels(split_zips):
    assert sorted(split_zips) == ["linux_x64", "macos_arm64", "macos_x64", "windows_x64"]
    with zipfile.ZipFile(split_zips["linux_x64"]) as z:
        manifest = tomllib.loads(z.read("blender_manifest.toml").decode())
        wheels = sorted(n for n in z.namelist() if n.endswith(".whl"))
    assert manifest["platforms"] == ["linux-x64"]
    assert len(wheels) == 2 and all("manylinux" in w for w in wheels)
    assert [w.split("-")[2] for w in wheels] == ["cp311", "cp313"]


def _nozmq_python() -> Path:
    major, minor = bpy.app.version[:2]
    venv = Path(os.environ.get("OSMNET_VENVS", ROOT)) / f".venv-bpy{major}{minor}-nozmq"
    python = venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    if not python.is_file():
        if os.environ.get("OSMNET_REQUIRE_INSTALL_TEST"):  # scripts/test.sh: CI must run this test
            pytest.fail(f"{venv} is missing; run scripts/setup_bpy.sh")
        pytest.skip(f"{venv.name} not found: scripts/setup_bpy.sh makes it (bpy {major}.{minor} without pyzmq)")
    return python


def _bundled_pyzmq_version(zip_path) -> str:
    """The version of the pyzmq wheel in the zip that is for this Python (cpXY)."""
    tag = f"cp{sys.version_info[0]}{sys.version_info[1]}"
    with zipfile.ZipFile(zip_path) as z:
        names = [Path(n).name for n in z.namelist() if n.startswith("wheels/pyzmq-") and f"-{tag}-" in n]
    assert names, f"no pyzmq wheel for {tag} in {zip_path.name}"
    return names[0].split("-")[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    ui_support.main_python_or_skip()
    srv = ui_support.Serve(ui_support.free_port(), ui_support.checkpoint_for_e2e(tmp_path_factory.mktemp("ckpt")))
    yield srv
    srv.kill()


@pytest.mark.parametrize("which", ["all", "linux_x64"])
def test_user_install_enables_and_talks_to_the_backend_with_only_the_bundled_pyzmq(
        built_zip, split_zips, server, which, tmp_path):
    if which == "linux_x64" and not sys.platform.startswith("linux"):
        pytest.skip("the linux_x64 zip installs on Linux only")
    python = _nozmq_python()
    zip_path = built_zip if which == "all" else split_zips[which]
    resources = tmp_path / "user-resources"  # a fresh Blender user folder: no extension, no preferences
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "BLENDER_USER_SCRIPTS")}
    env["BLENDER_USER_RESOURCES"] = str(resources)
    res = subprocess.run([str(python), str(CHECK), str(zip_path), server.address], capture_output=True,
                         text=True, timeout=300, cwd=tmp_path, env=env)
    line = next((ln for ln in res.stdout.splitlines() if ln.startswith("INSTALLED-CHECK ")), None)
    assert line, res.stdout[-3000:] + res.stderr[-3000:]
    seen = json.loads(line.removeprefix("INSTALLED-CHECK "))
    assert seen["zmq_before"] is False  # the venv really has no pyzmq of its own
    assert seen["blender"].startswith(".".join(map(str, bpy.app.version[:2])))
    assert seen["install"] == ["FINISHED"] and seen["enabled"], seen
    # zmq comes from the wheel Blender unpacked into the fresh user folder, for this Python
    assert Path(seen["zmq_file"]).resolve().is_relative_to(resources.resolve()), seen
    assert seen["zmq_version"] == _bundled_pyzmq_version(zip_path), seen
    assert not seen["repo_addon_loaded"]
    assert seen["check"] == ["FINISHED"]
    assert seen["level"] == "INFO" and seen["status"].startswith("Connected to"), seen
    assert seen["model"], seen


def test_backend_modules_import_without_bpy():
    """The backend imports blender_addon.core.protocol/client in a venv without Blender."""
    python = ui_support.main_python_or_skip()
    code = ("import sys, blender_addon.core.protocol, blender_addon.core.client\n"
            "assert 'bpy' not in sys.modules\n"
            "import blender_addon\n"
            "assert callable(blender_addon.register)\n"
            "print('NO-BPY-OK')")
    res = subprocess.run([str(python), "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert "NO-BPY-OK" in res.stdout, res.stderr
