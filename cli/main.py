"""The ``warpsdf`` command line: parse, call the library, show the result.

Bad input (a scene, a mesh, an image folder, an output path, a device) ends
with one red line per problem on stderr and exit code 2, never a traceback.
The app and what the commands share are in :mod:`.common`; each command
module registers its commands on the app when imported.
"""

from __future__ import annotations

# Importing a command module registers its commands, in the order --help lists them.
# isort: off
from warpsdf.cli import scene_commands  # noqa: F401  validate, new, targets, render
from warpsdf.cli import fit_commands  # noqa: F401  fit, export
from warpsdf.cli import batch_commands  # noqa: F401  batch, report, bench

# isort: on
from warpsdf.cli.common import app

__all__ = ["app"]

if __name__ == "__main__":  # pragma: no cover
    app()
