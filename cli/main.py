"""The ``warpsdf`` command line: parse, call the library, show the result.

Bad input (a scene, a mesh, an image folder, an output path, a device) ends
with one red line per problem on stderr and exit code 2, never a traceback.
The app and what the commands share are in :mod:`.common`; each command
module registers its commands on the app when imported.
"""

from __future__ import annotations

import sys

# Ctrl-C while the modules load (the first half second of every command) is
# one line and exit code 130, like Ctrl-C later on (cli.common.user_errors).
try:
    # Importing a command module registers its commands, in the order --help lists them.
    # isort: off
    from warpsdf.cli import scene_commands  # noqa: F401  validate, new, targets, render, carve
    from warpsdf.cli import fit_commands  # noqa: F401  fit, export
    from warpsdf.cli import batch_commands  # noqa: F401  batch, report, bench

    # isort: on
    from warpsdf.cli.common import app
except KeyboardInterrupt:  # pragma: no cover (timing)
    sys.stderr.write("interrupted\n")
    raise SystemExit(130) from None

__all__ = ["app"]

if __name__ == "__main__":  # pragma: no cover
    app()
