"""The extension zip as a user gets it: built by scripts/build_addon.py with pyzmq wheels for every
platform, accepted by Blender's own blender_ext.py (validate + install-files), and the installed
copy registers under the extension's own package name."""
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
