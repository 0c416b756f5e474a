"""What every ``warpsdf`` command shares: the Typer app, the consoles, the
common options, user-error handling and resolution parsing.

The commands live in :mod:`.scene_commands`, :mod:`.fit_commands` and
:mod:`.batch_commands`; :mod:`.main` puts them together.

Bad input (a scene, a mesh, an image folder, an output path, a device) ends
with one red line per problem on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import functools
import re
from typing import Annotated

import typer
import warp as wp
from rich.console import Console
from rich.markup import escape
from rich.text import Text

wp.config.log_level = wp.LOG_WARNING  # no Warp banner or module-load lines in the output

import warpsdf  # noqa: E402  (after the log level)
from warpsdf.errors import WarpsdfError  # noqa: E402
from warpsdf.scene import resolution_problem  # noqa: E402

app = typer.Typer(
    name="warpsdf",
    help="Fit signed distance functions to images with a differentiable sphere marcher "
    "(NVIDIA Warp), and render the results.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)


def q(value) -> str:
    """User text (paths, names, labels) made safe for Rich markup."""
    return escape(str(value))


SetOption = Annotated[
    list[str] | None,
    typer.Option(
        "--set",
        help="Override a scene key, e.g. --set optim.lr=3e-3 or --set "
        "target.shapes[0].radius=0.2 (repeatable; checked like the file).",
        metavar="SECTION.KEY=VALUE",
    ),
]
DeviceOption = Annotated[
    str,
    typer.Option("--device", help="auto (CUDA if present), cpu, cuda or cuda:N."),
]


def user_errors(fn):
    """Turn WarpsdfError into one red line per problem and exit code 2."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except WarpsdfError as err:
            for line in str(err).splitlines():
                err_console.print(Text.assemble(("error: ", "bold red"), line), soft_wrap=True)
            raise typer.Exit(2) from None
        except MemoryError:
            err_console.print(
                Text.assemble(("error: ", "bold red"), "out of memory: the request is too large "
                              "for this machine (lower the resolution, views or grid size)")
            )  # fmt: skip
            raise typer.Exit(2) from None
        except KeyboardInterrupt:
            err_console.print("[yellow]interrupted[/]")
            raise typer.Exit(130) from None

    return wrapper


def _version_callback(value: bool) -> None:
    if value:
        console.print(f"warpsdf {warpsdf.__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version_callback, is_eager=True, help="Show the version."
        ),
    ] = False,
) -> None:
    """warpsdf: fit SDFs to images and render them."""


def parse_resolution(text: str | None) -> tuple[int, int] | None:
    """``--resolution`` text (N or WxH) -> (width, height); None stays None.
    Also used by ``python -m benchmarks.render``."""
    if text is None:
        return None
    m = re.fullmatch(r"\s*(\d+)\s*(?:[xX]\s*(\d+))?\s*", text)
    if not m:
        raise WarpsdfError(
            f"--resolution {text!r}: expected N or WIDTHxHEIGHT, e.g. 256 or 320x240"
        )
    w = int(m.group(1))
    h = int(m.group(2)) if m.group(2) else w
    if problem := resolution_problem((w, h)):  # the rule of cameras.resolution
        raise WarpsdfError(f"--resolution {text!r}: {problem}")
    return w, h
