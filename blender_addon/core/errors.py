"""The kinds of failure, shared by the command line, the backend's error codes and the add-on.

Every error the project raises on purpose is one of three kinds, so each surface can decide what
to show without knowing every module:
- `UserInputError`: the input is wrong (a file, a flag, a request field); the message says what
  to fix. The CLI prints it on one line (exit 2); the backend answers a client error code.
- `EnvironmentProblem`: the machine is missing something (a model file, a writable folder, a
  package, the network); the message says what to install or where to put it.
- `InternalError`: a bug or a broken invariant; reported as such, with details kept.
`code` is the protocol error code (docs/protocol.md) a backend answers for the error.
"""
from __future__ import annotations


class OsmnetError(Exception):
    """Base of every deliberate error; `code` names the protocol error code for it."""

    code = "internal"


class UserInputError(OsmnetError, ValueError):
    """The user's input breaks a rule; the message names the problem and the fix."""

    code = "bad_request"


class EnvironmentProblem(OsmnetError, RuntimeError):
    """Something the machine should provide is missing or unusable; the message says how to provide it."""

    code = "internal"


class InternalError(OsmnetError, RuntimeError):
    """A broken invariant inside osmnet: not the user's fault; please report it."""

    code = "internal"


def kind_of(error: BaseException) -> str:
    """'user', 'environment' or 'internal': how a surface should present `error`."""
    if isinstance(error, UserInputError):
        return "user"
    if isinstance(error, EnvironmentProblem):
        return "environment"
    return "internal"
