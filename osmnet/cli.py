"""`osmnet ...`: parse arguments, call the library, print. Nothing else lives here.

Each subcommand has one `_add_<name>` function that declares its arguments and the function
that runs it; the work itself is done by the library modules.
"""
from __future__ import annotations

import argparse
import sys


class CommandError(Exception):
    """A user-facing failure: printed as `osmnet: error: ...` with exit code 2, no traceback."""


def _add_track(sub):
    p = sub.add_parser("track", help="track a real video into a take (head pose + ARKit curves)")
    p.set_defaults(run=lambda a: print("track: not implemented yet"))


def _add_prepare(sub):
    p = sub.add_parser("prepare", help="turn videos into a training dataset")
    p.set_defaults(run=lambda a: print("prepare: not implemented yet"))


COMMANDS = [_add_track, _add_prepare]


def build_parser() -> argparse.ArgumentParser:
    from osmnet import __version__

    parser = argparse.ArgumentParser(prog="osmnet", description="Several natural takes of head motion and lip-synced expression from speech.")
    parser.add_argument("--version", action="version", version=f"osmnet {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in COMMANDS:
        add(sub)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        result = args.run(args)
    except CommandError as e:
        print(f"osmnet: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("osmnet: interrupted", file=sys.stderr)
        return 130
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
