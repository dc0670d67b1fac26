"""Build the Blender extension zip: `python scripts/build_addon.py [--out dist/]`.

Blender 4.2+ installs extension dependencies from wheels shipped inside the zip, so this script
downloads pyzmq wheels for every Python that Blender 4.2 ... 5.2 uses (3.11, 3.13) on every
platform Blender ships for, lists them in the zipped manifest, and zips the add-on. numpy is
already part of Blender and is not bundled. Downloads go to the output folder, never the repo.

Then, if a bpy install is found (or --blender-ext names one), the zip is checked with Blender's own
`blender_ext.py validate`, the same check the extensions platform runs.
"""
from __future__ import annotations

import argparse
import glob
import os
import re
import tomllib
import subprocess
import sys
import tempfile
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
WHEELS = ("pyzmq",)
SKIP = re.compile(r"(__pycache__|\.pyc$|^\.)")


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


def addon_files() -> list[Path]:
    files = [p for p in sorted(ADDON.rglob("*")) if p.is_file()
             and not any(SKIP.search(part) for part in p.relative_to(ADDON).parts)]
    if ADDON / "blender_manifest.toml" not in files or ADDON / "__init__.py" not in files:
        raise BuildError(f"{ADDON} must contain blender_manifest.toml and __init__.py")
    return files


def zipped_manifest(text: str, wheels: list[Path]) -> str:
    """The repo manifest plus the wheels and platforms lists, inserted before the first table."""
    if re.search(r"^\s*wheels\s*=", text, re.M):
        raise BuildError("blender_manifest.toml already lists wheels; the build script adds them")
    lines = ["wheels = ["] + [f'  "./wheels/{w.name}",' for w in wheels] + ["]"]
    lines.append("platforms = [" + ", ".join(f'"{p}"' for p in PLATFORMS) + "]")
    head, sep, tail = text.partition("\n[")
    return head.rstrip("\n") + "\n\n" + "\n".join(lines) + "\n" + sep + tail


def build_zip(out_dir: Path, wheels: list[Path]) -> Path:
    manifest = (ADDON / "blender_manifest.toml").read_text()
    name = f"{manifest_field(manifest, 'id')}-{manifest_field(manifest, 'version')}.zip"
    out = out_dir / name
    fd, tmp = tempfile.mkstemp(prefix=".addon-", suffix=".zip", dir=out_dir)
    os.close(fd)
    try:
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
            for path in addon_files():
                rel = path.relative_to(ADDON).as_posix()
                if rel == "blender_manifest.toml":
                    z.writestr(rel, zipped_manifest(manifest, wheels))
                else:
                    z.write(path, rel)
            for wheel in wheels:
                z.write(wheel, f"wheels/{wheel.name}")
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return out


def find_blender_ext() -> Path | None:
    """blender_ext.py ships inside Blender and the bpy wheel (bl_pkg/cli); look in the repo's bpy venvs."""
    patterns = [str(ROOT / ".venv-bpy*/lib/python*/site-packages/bpy/*/scripts/addons_core/bl_pkg/cli/blender_ext.py")]
    for pattern in patterns:
        hits = sorted(glob.glob(pattern))
        if hits:
            return Path(hits[-1])
    return None


def validate(zip_path: Path, blender_ext: Path, python: str = sys.executable) -> str:
    res = subprocess.run([python, str(blender_ext), "validate", str(zip_path)], capture_output=True, text=True)
    text = (res.stdout + res.stderr).strip()
    if res.returncode != 0:
        raise BuildError(f"blender_ext.py validate rejected {zip_path.name}:\n{text}")
    return text


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=ROOT / "dist", help="output folder (default: dist/)")
    ap.add_argument("--wheels-dir", type=Path, help="use the wheels already in this folder instead of downloading")
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
        out = build_zip(args.out, wheels)
        print(f"build_addon: wrote {out} ({out.stat().st_size / 2**20:.1f} MiB, {len(wheels)} wheels)")
        if not args.no_validate:
            tool = args.blender_ext or find_blender_ext()
            if tool is None:
                print("build_addon: blender_ext.py not found (run scripts/setup_bpy.sh or pass --blender-ext); "
                      "zip not validated", file=sys.stderr)
            else:
                print(validate(out, tool))
    except BuildError as e:
        print(f"build_addon: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
