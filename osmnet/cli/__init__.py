"""`osmnet ...`: parse arguments, call the library, print. Nothing else lives here.

Each command is one module of this package with `add(sub)` (its arguments) and the function that
runs it; the work itself is done by the library. Modules import only argparse at the top, so
`osmnet --help` and start-up stay fast; heavy imports (torch, MediaPipe, PyAV) happen inside the
command that needs them, after `osmnet.runtime.configure()` has set threads and OpenMP waiting.
Every deliberate error (blender_addon.core.errors) is printed by `main` as one line, exit 2.
"""
from __future__ import annotations

import argparse
import importlib
import sys
import tempfile
import traceback

from blender_addon.core.errors import OsmnetError
from osmnet.cli.errors import CommandError  # noqa: F401  (backend.cli raises it too)

# Command modules in the order `osmnet --help` lists them.
COMMANDS = ("track", "prepare", "head", "train", "generate", "evaluate", "plot", "render")

# Other packages add commands through this entry-point group (the backend adds serve, worker and
# keys), so the model library never imports them.
PLUGIN_GROUP = "osmnet.commands"


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The whole parser; plugin commands (serve, worker, keys) are loaded only when `command` is
    not a built-in one (or is None: `osmnet --help` lists everything)."""
    from osmnet import __version__

    parser = argparse.ArgumentParser(prog="osmnet", description="Several natural takes of head motion and "
                                     "lip-synced expression from speech.")
    parser.add_argument("--version", action="version", version=f"osmnet {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"osmnet.cli.{name}").add(sub)
    if command is None or command not in sub.choices:
        for add in _plugin_commands():
            add(sub)
    return parser


def _command_of(argv) -> str | None:
    """The sub-command named on the command line (first word that is not an option), if any."""
    for word in argv:
        if not word.startswith("-"):
            return word
        if word in ("-h", "--help", "--version"):
            return None
    return None


def _plugin_commands():
    from importlib.metadata import entry_points

    for ep in sorted(entry_points(group=PLUGIN_GROUP), key=lambda ep: ep.name):
        try:
            yield ep.load()
        except Exception as e:  # a broken optional part must not take the other commands down
            yield _unavailable(ep.name, e)


def _unavailable(name, error):
    """A stand-in for a command whose package failed to import: it explains instead of crashing."""
    def run(_args):
        raise CommandError(f"the {name} command could not be loaded ({error}); "
                           "reinstall with `bash scripts/setup.sh`")

    def add(sub):
        sub.add_parser(name, help=f"(unavailable: {error})").set_defaults(run=run)
    return add


def _report_internal(error: BaseException) -> str:
    """Write the traceback of an unexpected error to a file; returns its path."""
    with tempfile.NamedTemporaryFile("w", prefix="osmnet-error-", suffix=".txt", delete=False) as f:
        traceback.print_exception(error, file=f)
        return f.name


def main(argv=None) -> int:
    from osmnet import runtime

    runtime.configure()  # before any command imports torch
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(_command_of(argv))
    args = parser.parse_args(argv)
    try:
        result = args.run(args)
    except OsmnetError as e:
        print(f"osmnet: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("osmnet: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # a bug: one line for the user, the details in a file
        where = _report_internal(e)
        print(f"osmnet: internal error: {type(e).__name__}: {e} (details in {where}; please report it)",
              file=sys.stderr)
        return 1
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
