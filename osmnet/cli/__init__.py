"""`osmnet ...`: parse arguments, call the library, print. Nothing else lives here.

Each command is one module of this package with `add(sub)` (its arguments) and the function that
runs it; the work itself is done by the library. Modules import only argparse at the top, so
`osmnet --help` and start-up stay fast; heavy imports (torch, MediaPipe, PyAV) happen inside the
command that needs them, after `osmnet.runtime.configure()` has set threads and OpenMP waiting.
No traceback ever reaches the user: `main` is the one handler. A deliberate error
(blender_addon.core.errors), a bad argument or an OS refusal (permissions, disk full) is printed as
one line `osmnet: error: ...`, exit 2; anything else is a bug: one line naming the file that holds
the details, exit 3.
"""
from __future__ import annotations

import argparse
import importlib
import sys
import tempfile
import traceback

from blender_addon.core.errors import OsmnetError, UserInputError
from osmnet.cli.errors import CommandError  # noqa: F401  (backend.cli raises it too)

EXIT_ERROR = 2  # the user's input or the machine: the message says what to fix
EXIT_INTERNAL = 3  # a bug: the message says where the details are
MAX_MESSAGE = 600  # characters of one error line


class UsageError(UserInputError):
    """A command line argparse refused (unknown flag, value out of range)."""


class Parser(argparse.ArgumentParser):
    """argparse that raises instead of printing usage and exiting, so `main` prints one line."""

    def error(self, message):
        raise UsageError(f"{self.prog.removeprefix('osmnet ')}: {message} (see `{self.prog} --help`)")

# Command modules in the order `osmnet --help` lists them.
COMMANDS = ("track", "prepare", "head", "train", "generate", "batch", "evaluate", "plot", "render")

# Other packages add commands through this entry-point group (the backend adds serve, worker and
# keys), so the model library never imports them.
PLUGIN_GROUP = "osmnet.commands"


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The whole parser; plugin commands (serve, worker, keys) are loaded only when `command` is
    not a built-in one (or is None: `osmnet --help` lists everything)."""
    from osmnet import __version__

    parser = Parser(prog="osmnet", description="Several natural takes of head motion and "
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
    """Write the traceback of an unexpected error to a file; returns its path (or why it could not)."""
    try:
        with tempfile.NamedTemporaryFile("w", prefix="osmnet-error-", suffix=".txt", delete=False) as f:
            traceback.print_exception(error, file=f)
            return f.name
    except OSError as e:
        return f"nowhere: {e.strerror} writing to {tempfile.gettempdir()}"


def _one_line(text) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= MAX_MESSAGE else text[:MAX_MESSAGE - 3] + "..."


def _os_error(e: OSError) -> str:
    """An OS refusal the library did not turn into its own error: what, where, and the OS's reason."""
    names = " -> ".join(str(n) for n in (e.filename, e.filename2) if n is not None)
    reason = e.strerror or type(e).__name__
    return f"{names}: {reason}" if names else f"{reason} ({e})"


def report(error: BaseException) -> int:
    """Print `error` as one line on stderr; returns the exit code."""
    if isinstance(error, OsmnetError):
        print(f"osmnet: error: {_one_line(error)}", file=sys.stderr)
        return EXIT_ERROR
    if isinstance(error, OSError):
        print(f"osmnet: error: {_one_line(_os_error(error))}", file=sys.stderr)
        return EXIT_ERROR
    if isinstance(error, MemoryError):
        print("osmnet: error: out of memory; use a shorter input, fewer takes or a smaller size", file=sys.stderr)
        return EXIT_ERROR
    where = _report_internal(error)
    print(f"osmnet: internal error: {_one_line(f'{type(error).__name__}: {error}')} (details in {where}; "
          "please report it)", file=sys.stderr)
    return EXIT_INTERNAL


def main(argv=None) -> int:
    from osmnet import runtime
    from osmnet.cli.checks import glue_negative_ranges

    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if any("\x00" in a for a in argv):  # no path or number holds one; os calls would raise ValueError
            raise UsageError("an argument contains a NUL character")
        runtime.configure()  # before any command imports torch
        args = build_parser(_command_of(argv)).parse_args(glue_negative_ranges(argv))
        return int(args.run(args) or 0)
    except SystemExit as e:  # --help and --version print and exit 0
        return e.code if isinstance(e.code, int) else (0 if e.code is None else EXIT_ERROR)
    except KeyboardInterrupt:
        print("osmnet: interrupted", file=sys.stderr)
        return 130
    except BaseException as e:  # noqa: BLE001  (the one place every error ends)
        return report(e)


if __name__ == "__main__":
    sys.exit(main())
