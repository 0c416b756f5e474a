"""Errors that reach the user as one clear line.

Every error caused by the user's input (a scene file, a mesh, an image folder,
an output path, a device) is a :class:`WarpsdfError`. Its message names the
file, the key or value, and what was expected. The CLI prints the message and
exits with code 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class WarpsdfError(Exception):
    """Bad input. ``str(err)`` is the message shown to the user (one line per problem)."""


class SceneError(WarpsdfError):
    """A scene file, a ``--set`` override or a sweep file is invalid.

    Holds every problem found, so ``validate`` can list them all at once (each
    distinct problem once, in the order found: the sides of a resolution or
    the items of a list can break one rule the same way).
    """

    def __init__(self, problems: list[str] | str):
        found = [problems] if isinstance(problems, str) else list(problems)
        self.problems = list(dict.fromkeys(found))
        super().__init__("\n".join(self.problems))


class InputFileError(WarpsdfError):
    """A mesh, image or cameras.json file is missing, unreadable or inconsistent."""


class OutputError(WarpsdfError):
    """An output path cannot be created or written, or would be overwritten."""


class DeviceError(WarpsdfError):
    """The requested compute device is not available."""
