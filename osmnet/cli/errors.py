"""The command line's own user-facing error (a bad combination of flags)."""
from __future__ import annotations

from blender_addon.core.errors import UserInputError


class CommandError(UserInputError):
    """A user-facing failure: printed as `osmnet: error: ...` with exit code 2, no traceback."""
