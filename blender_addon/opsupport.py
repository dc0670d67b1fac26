"""What every operator shares: greying a button out with the reason, the scene's settings, and
turning a user's mistake into an error report instead of a traceback."""
from __future__ import annotations

import functools

from .core.errors import UserInputError


def explain(cls, message):
    """poll() helper: grey the button out and say why (Blender 4.0+ shows it as a tooltip)."""
    if message:
        cls.poll_message_set(message)
        return False
    return True


def settings(context):
    return context.scene.osmnet


def reports_user_errors(execute):
    """Decorate an operator's execute(): a UserInputError becomes an ERROR report and CANCELLED."""
    @functools.wraps(execute)
    def run(self, context, *args):
        try:
            return execute(self, context, *args)
        except UserInputError as e:
            self.report({'ERROR'}, str(e))
            return {'CANCELLED'}
    return run
