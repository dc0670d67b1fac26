"""Build the Blender extension zip: `python scripts/build_addon.py [--out dist/] [--split-platforms]`.

Blender 4.2+ installs extension dependencies from wheels shipped inside the zip, so this script
downloads pyzmq wheels for every Python that Blender 4.2 ... 5.2 uses (3.11, 3.13) on every
platform Blender ships for, lists them in the zipped manifest, and zips the add-on. numpy is
already part of Blender and is not bundled. Downloads go to the output folder, never the repo.

Blender decides which Pythons an extension supports from its wheels' file names, and a stable-ABI
wheel (`cp312-abi3`) next to a `cp311` one makes it conclude "3.11 only", so Blender 5.x refuses
the zip. Every wheel must therefore be built for exactly one CPython (`cpXY-cpXY`); pyzmq 26 is
the last series that publishes those for 3.13 (27 ships only abi3 wheels there).

--split-platforms writes one smaller zip per platform (named like Blender's own
`extension build --split-platforms`: `<id>-<version>-linux_x64.zip`) instead of one for all.

Then, if a bpy install is found (or --blender-ext names one), every zip is checked with Blender's
own `blender_ext.py validate`, the same check the extensions platform runs, and with the rule
Blender applies to wheel names when it installs (its `python_versions_from_wheels`).
"""
from __future__ import annotations

import argparse
import glob
import importlib.util
import os
import re
import subprocess
import sys
import tempfile
import tomllib
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ADDON = ROOT / "blender_addon"
PYTHONS = ("3.11", "3.13")
# Blender platform name -> pip --platform tags to try (pip expands macOS versions by itself).
PLATFORMS = {
    "linux-x64": ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64"),
    "macos-arm64": ("macosx_11_0_arm64",),
    "macos-x64": ("macosx_10_15_x86_64",),
    "windows-x64": ("win_amd64",),
}
# Wheel platform tags each Blender platform accepts (universal2 serves both macOS builds).
PLATFORM_TAGS = {
    "linux-x64": re.compile(r"manylinux.*_x86_64"),
    "macos-arm64": re.compile(r"macosx_.*_(arm64|universal2)"),
    "macos-x64": re.compile(r"macosx_.*_(x86_64|universal2)"),
    "windows-x64": re.compile(r"win_amd64"),
}
WHEELS = ("pyzmq>=26.2,<27",)  # see the module docstring: one-CPython wheels for 3.11 and 3.13
SKIP = re.compile(r"(__pycache__|\.pyc$|^\.)")
WHEEL_NAME = re.compile(r"^(?P<dist>[^-]+)-(?P<ver>[^-]+)(-\d[^-]*)?-(?P<py>[^-]+)-(?P<abi>[^-]+)-(?P<plat>[^-]+)\.whl$")


class BuildError(Exception):
    pass


def manifest_field(text: str, key: str) -> str:
    try:
        value = tomllib.loads(text).get(key)
    except tomllib.TOMLDecodeError as e:
        raise BuildError(f"blender_manifest.toml is not valid TOML ({e})") from None
    if not isinstance(value, str):
        raise BuildError(f"blender_manifest.toml has no {key} = \"...\" string")
    return value


def download_wheels(dest: Path, pythons=PYTHONS, platforms=PLATFORMS, pip=None) -> list[Path]:
    """pip download binary wheels for each (python, platform); returns the distinct wheel files."""
    dest.mkdir(parents=True, exist_ok=True)
    pip = pip or [sys.executable, "-m", "pip"]
    found: set[Path] = set()
    for py in pythons:
        for blender_platform, tags in platforms.items():
            cmd = [*pip, "download", "--only-binary=:all:", "--no-deps", "--disable-pip-version-check",
                   "--python-version", py, "--implementation", "cp", "-d", str(dest)]
            for tag in tags:
                cmd += ["--platform", tag]
            res = subprocess.run(cmd + list(WHEELS), capture_output=True, text=True)
            if res.returncode != 0:
                tail = "\n".join(res.stderr.strip().splitlines()[-5:])
                raise BuildError(f"pip could not download {', '.join(WHEELS)} for Python {py} on "
                                 f"{blender_platform}:\n{tail}\n(is PyPI reachable? pass --wheels-dir "
                                 "with wheels you downloaded elsewhere)")
            # pip names the wheel it chose: "Saved ./x.whl" or "File was already downloaded /x.whl".
            chosen = re.findall(r"(?:Saved|already downloaded)\s+(\S+\.whl)", res.stdout)
            if not chosen:
                raise BuildError(f"pip reported no wheel for Python {py} on {blender_platform}:\n{res.stdout}")
            found |= {dest / Path(c).name for c in chosen}
    return sorted(found)


def wheels_for(wheels: list[Path], platform: str) -> list[Path]:
    """The wheels a Blender on `platform` can use."""
    return [w for w in wheels if PLATFORM_TAGS[platform].search(_wheel_tags(w)["plat"])]


def _wheel_tags(wheel: Path) -> dict:
    m = WHEEL_NAME.match(wheel.name)
    if not m:
        raise BuildError(f"{wheel.name} is not a wheel file name (name-version-python-abi-platform.whl)")
    return m.groupdict()


def check_wheels(wheels: list[Path], platforms=tuple(PLATFORMS), pythons=PYTHONS):
    """Every wheel is for one CPython, and each (platform, Python) that Blender ships has one."""
    for w in wheels:
        tags = _wheel_tags(w)
        if not re.fullmatch(r"cp3\d+", tags["py"]) or tags["abi"] != tags["py"]:
            raise BuildError(f"{w.name} is tagged {tags['py']}-{tags['abi']}: Blender reads a stable-ABI or "
                             "multi-version wheel next to a cp311 one as 'Python 3.11 only' and refuses the "
                             "extension on Blender 5.x; use wheels built for exactly one CPython (cpXY-cpXY)")
    for platform in platforms:
        have = {_wheel_tags(w)["py"] for w in wheels_for(wheels, platform)}
        missing = [py for py in pythons if "cp" + py.replace(".", "") not in have]
        if missing:
            raise BuildError(f"no wheel for Python {', '.join(missing)} on {platform}")


def addon_files() -> list[Path]:
    files = [p for p in sorted(ADDON.rglob("*")) if p.is_file()
             and not any(SKIP.search(part) for part in p.relative_to(ADDON).parts)]
    if ADDON / "blender_manifest.toml" not in files or ADDON / "__init__.py" not in files:
        raise BuildError(f"{ADDON} must contain blender_manifest.toml and __init__.py")
    return files


def zipped_manifest(text: str, wheels: list[Path], platforms) -> str:
    """The repo manifest plus the wheels and platforms lists, inserted before the first table."""
    if re.search(r"^\s*(wheels|platforms)\s*=", text, re.M):
        raise BuildError("blender_manifest.toml already lists wheels or platforms; the build script adds them")
    lines = ["wheels = ["] + [f'  "./wheels/{w.name}",' for w in wheels] + ["]"]
    lines.append("platforms = [" + ", ".join(f'"{p}"' for p in platforms) + "]")
    head, sep, tail = text.partition("\n[")
    return head.rstrip("\n") + "\n\n" + "\n".join(lines) + "\n" + sep + tail


def build_zip(out_dir: Path, wheels: list[Path], platforms=tuple(PLATFORMS), suffix: str = "") -> Path:
    """Write <id>-<version><suffix>.zip atomically (a failed build leaves no half zip)."""
    manifest = (ADDON / "blender_manifest.toml").read_text()
    name = f"{manifest_field(manifest, 'id')}-{manifest_field(manifest, 'version')}{suffix}.zip"
    out = out_dir / name
    fd, tmp = tempfile.mkstemp(prefix=".addon-", suffix=".zip", dir=out_dir)
    os.close(fd)
    try:
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
            for path in addon_files():
                rel = path.relative_to(ADDON).as_posix()
                if rel == "blender_manifest.toml":
                    z.writestr(rel, zipped_manifest(manifest, wheels, platforms))
                else:
                    z.write(path, rel)
            for wheel in wheels:
                z.write(wheel, f"wheels/{wheel.name}")
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return out


def build(out_dir: Path, wheels: list[Path], split_platforms: bool = False) -> list[Path]:
    check_wheels(wheels)
    if not split_platforms:
        return [build_zip(out_dir, wheels)]
    return [build_zip(out_dir, wheels_for(wheels, p), (p,), "-" + p.replace("-", "_")) for p in PLATFORMS]


def find_blender_ext() -> Path | None:
    """blender_ext.py ships inside Blender and the bpy wheel (bl_pkg/cli); look in the repo's bpy venvs."""
    hits = sorted(glob.glob(str(ROOT / ".venv-bpy*/lib/python*/site-packages/bpy/*/scripts/addons_core/"
                                    "bl_pkg/cli/blender_ext.py")))
    return Path(hits[-1]) if hits else None


def validate(zip_path: Path, blender_ext: Path, python: str = sys.executable) -> str:
    """Blender's `blender_ext.py validate`, then the Pythons Blender derives from the zip's wheels."""
    res = subprocess.run([python, str(blender_ext), "validate", str(zip_path)], capture_output=True, text=True)
    text = (res.stdout + res.stderr).strip()
    if res.returncode != 0:
        raise BuildError(f"blender_ext.py validate rejected {zip_path.name}:\n{text}")
    with zipfile.ZipFile(zip_path) as z:
        wheels = [n for n in z.namelist() if n.startswith("wheels/") and n.endswith(".whl")]
    derived = blender_python_versions(blender_ext, wheels)
    missing = [py for py in PYTHONS if tuple(map(int, py.split("."))) not in derived
               and (int(py.split(".")[0]),) not in derived]
    if missing:
        got = ", ".join(".".join(map(str, v)) for v in sorted(derived))
        raise BuildError(f"Blender would read {zip_path.name} as Python {got} only (not {', '.join(missing)})")
    return text + f"\nPython versions Blender derives: {', '.join('.'.join(map(str, v)) for v in sorted(derived))}"


def blender_python_versions(blender_ext: Path, wheels: list[str]) -> set:
    """Blender's own reading of the wheel names (blender_ext.python_versions_from_wheels)."""
    spec = importlib.util.spec_from_file_location("_blender_ext", blender_ext)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    result = mod.python_versions_from_wheels(wheels)
    if isinstance(result, str):
        raise BuildError(f"Blender cannot read the wheel names: {result}")
    return set(result)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=ROOT / "dist", help="output folder (default: dist/)")
    ap.add_argument("--wheels-dir", type=Path, help="use the wheels already in this folder instead of downloading")
    ap.add_argument("--split-platforms", action="store_true",
                    help="one zip per platform (linux_x64, macos_arm64, macos_x64, windows_x64) instead of one for all")
    ap.add_argument("--blender-ext", type=Path, help="path to Blender's blender_ext.py (default: found in .venv-bpy*)")
    ap.add_argument("--no-validate", action="store_true", help="skip the blender_ext.py validation")
    args = ap.parse_args(argv)
    try:
        args.out.mkdir(parents=True, exist_ok=True)
        if args.wheels_dir:
            wheels = sorted(args.wheels_dir.glob("*.whl"))
            if not wheels:
                raise BuildError(f"no .whl files in {args.wheels_dir}")
        else:
            print("build_addon: downloading pyzmq wheels for Python " + ", ".join(PYTHONS), file=sys.stderr)
            wheels = download_wheels(args.out / "wheels")
        outs = build(args.out, wheels, args.split_platforms)
        tool = None if args.no_validate else (args.blender_ext or find_blender_ext())
        if not args.no_validate and tool is None:
            print("build_addon: blender_ext.py not found (run scripts/setup_bpy.sh or pass --blender-ext); "
                  "zip not validated", file=sys.stderr)
        for out in outs:
            with zipfile.ZipFile(out) as z:
                count = sum(n.endswith(".whl") for n in z.namelist())
            print(f"build_addon: wrote {out} ({out.stat().st_size / 2**20:.1f} MiB, {count} wheels)")
            if tool is not None:
                print(validate(out, tool))
    except BuildError as e:
        print(f"build_addon: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
