"""What every ``warpsdf`` command shares: the Typer app, the consoles, the
common options, user-error handling and resolution parsing.

The commands live in :mod:`.scene_commands`, :mod:`.fit_commands` and
:mod:`.batch_commands`; :mod:`.main` puts them together.

Bad input (a scene, a mesh, an image folder, an output path, a device, a
command line Click cannot parse, a non-finite number) ends with one red line
per problem on stderr and exit code 2, never a traceback; Ctrl-C at any moment
ends with one line and exit code 130. Every error line goes through
:func:`print_error`, which shortens values too long to echo.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import math
import os
import re
import signal
import sys
import warnings
from collections.abc import Iterator
from enum import Enum
from typing import Annotated, TypeVar

import typer
import warp as wp
from rich.console import Console
from rich.markup import escape
from rich.text import Text
from typer.core import TyperGroup

try:  # Typer 0.2x carries its own copy of Click
    from typer._click import exceptions as click_errors
    from typer._click.globals import get_current_context
except ImportError:  # older Typer runs on Click itself
    from click import exceptions as click_errors
    from click import get_current_context

wp.config.log_level = wp.LOG_WARNING  # no Warp banner or module-load lines in the output

import warpsdf  # noqa: E402  (after the log level)
from warpsdf.errors import WarpsdfError  # noqa: E402
from warpsdf.scene import resolution_problem  # noqa: E402

E = TypeVar("E", bound=Enum)

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)

# A word of an error line longer than ECHO_LIMIT characters (a 100 KB value, a
# path too long for the file system) is shown as its first ECHO_HEAD
# characters, an ellipsis and its last ECHO_TAIL (a path's file name).
ECHO_LIMIT = 200
ECHO_HEAD = 60
ECHO_TAIL = 20


def _cut(word: str) -> str:
    return word[:ECHO_HEAD] + "…" + word[-ECHO_TAIL:]


def shorten(line: str) -> str:
    """``line`` with every word longer than ``ECHO_LIMIT`` characters cut to
    its head, "…" and its tail (and the whole line capped likewise)."""
    line = re.sub(rf"\S{{{ECHO_LIMIT + 1},}}", lambda m: _cut(m.group()), line)
    limit = 10 * ECHO_LIMIT
    return line if len(line) <= limit else line[:limit] + "…"


def print_error(message: str) -> None:
    """The one way an error reaches the user: one red ``error:`` line per line
    of ``message`` on stderr, never wrapped, long values shortened."""
    for line in str(message).splitlines() or [""]:
        if line.strip():
            err_console.print(Text.assemble(("error: ", "bold red"), shorten(line)), soft_wrap=True)


def print_interrupted() -> None:
    err_console.print("[yellow]interrupted[/]", soft_wrap=True)


def _interrupted_now(signum, frame) -> None:
    """Ctrl-C outside a command's own handling: one line, exit code 130 (a
    SystemExit, which Typer neither catches nor turns into a silent exit)."""
    print_interrupted()
    raise SystemExit(130)


@contextlib.contextmanager
def _on_sigint(handler) -> Iterator[None]:
    """``handler`` for SIGINT inside the block (main thread only), then the old one."""
    try:
        previous = signal.signal(signal.SIGINT, handler)
    except ValueError:  # not the main thread: signals are not ours to set
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


class OneLineGroup(TyperGroup):
    """The app's command group: a command line Click cannot parse (an unknown
    option, a missing argument, a bad number) is one line and exit code 2
    instead of Typer's usage box; Ctrl-C while parsing is one line and 130."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        prog_name = prog_name or "warpsdf"  # also under python -m or -c
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        try:
            with _on_sigint(_interrupted_now):
                code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click_errors.NoArgsIsHelpError:
            code = 2  # the help is already printed
        except click_errors.UsageError as err:
            where = err.ctx.command_path if err.ctx is not None else prog_name
            print_error(f"{where}: {' '.join(err.format_message().split())} (see {where} --help)")
            code = 2
        except click_errors.ClickException as err:
            print_error(" ".join(err.format_message().split()))
            code = err.exit_code
        except (typer.Abort, KeyboardInterrupt):
            print_interrupted()
            code = 130
        sys.exit(code if isinstance(code, int) else 0)


class OneLineTyper(typer.Typer):
    """The app: Ctrl-C while Typer builds the commands is one line and 130 too."""

    def __call__(self, *args, **kwargs):
        try:
            return super().__call__(*args, **kwargs)
        except KeyboardInterrupt:
            print_interrupted()
            sys.exit(130)


app = OneLineTyper(
    name="warpsdf",
    help="Fit signed distance functions to images with a differentiable sphere marcher "
    "(NVIDIA Warp), and render the results.",
    cls=OneLineGroup,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def choice(enum: type[E], value: str, option: str) -> E:
    """``value`` as a member of ``enum``, else one line naming ``option`` and
    the choices (exit 2)."""
    try:
        return enum(value)
    except ValueError:
        choices = ", ".join(e.value for e in enum)
        raise WarpsdfError(f"{option} {value!r}: expected one of {choices}") from None


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
ForceFileOption = Annotated[
    bool, typer.Option("--force", help="Overwrite an existing output file.")
]
DeviceOption = Annotated[
    str,
    typer.Option("--device", help="auto (CUDA if present), cpu, cuda or cuda:N."),
]


# ---------------------------------------------------------------------------
# Warp without its CUDA-driver warning
# ---------------------------------------------------------------------------

# The libraries Warp's native wp_init() opens; when none loads it prints
# "Warp CUDA warning: Could not find or load the NVIDIA CUDA driver" to the
# process's stderr (C fprintf, no setting turns it off).
_CUDA_DRIVERS = {"win32": ("nvcuda.dll",), "linux": ("libcuda.so", "libcuda.so.1")}


def _cuda_driver_loads() -> bool:
    names = _CUDA_DRIVERS.get(sys.platform, ())
    for name in names:
        try:
            ctypes.CDLL(name)
            return True
        except OSError:
            continue
    return not names  # elsewhere Warp has no CUDA and prints nothing


def init_warp() -> None:
    """Initialise Warp once; on a machine without a CUDA driver, with the
    native stderr silenced for that moment, so CPU commands print no warning."""
    from warp._src import context

    if context.runtime is not None:
        return
    if _cuda_driver_loads():
        wp.init()
        return
    sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:  # no stderr at all
        wp.init()
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        wp.init()
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


# ---------------------------------------------------------------------------
# user errors
# ---------------------------------------------------------------------------

# What a command's out-of-memory line advises when the command names nothing.
MEMORY_HINT = "lower the resolution, the number of views or the grid size"


def _option_name(name: str) -> str:
    """The command-line spelling of parameter ``name`` (e.g. ``--fov``)."""
    ctx = get_current_context(silent=True)
    for param in getattr(getattr(ctx, "command", None), "params", ()):
        if param.name == name and param.opts:
            return max(param.opts, key=len)
    return "--" + name.replace("_", "-")


def check_finite_options(values: dict) -> None:
    """The one rule for every float option of every command: a finite number."""
    for name, value in values.items():
        if isinstance(value, float) and not math.isfinite(value):
            raise WarpsdfError(f"{_option_name(name)} {value}: expected a finite number")


def _is_out_of_memory(err: BaseException) -> bool:
    return isinstance(err, MemoryError) or (
        isinstance(err, RuntimeError) and str(err).startswith("Failed to allocate")
    )


def user_errors(fn=None, *, memory_hint: str = MEMORY_HINT):
    """Run a command: float options must be finite, Warp starts quietly, numpy's
    RuntimeWarnings stay silent; a WarpsdfError becomes one red line per
    problem and exit code 2, running out of memory one line naming
    ``memory_hint`` (the sizes to lower), an OSError about a named file one
    line naming it, Ctrl-C one line and exit code 130. Anything else is a bug
    and keeps its traceback. Use as ``@user_errors`` or
    ``@user_errors(memory_hint="lower --resolution")``."""
    if fn is None:
        return functools.partial(user_errors, memory_hint=memory_hint)

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            with _on_sigint(signal.default_int_handler), warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                check_finite_options(kwargs)
                init_warp()
                return fn(*args, **kwargs)
        except WarpsdfError as err:
            print_error(str(err))
        except RecursionError:
            print_error("an input file is nested too deeply to read")
        except (MemoryError, RuntimeError) as err:
            if not _is_out_of_memory(err):
                raise
            detail = f" ({err})" if str(err) else ""
            print_error(f"out of memory{detail}: {memory_hint}")
        except OSError as err:
            if err.filename is None:
                raise
            print_error(f"{err.filename}: {err.strerror or err}")
        except KeyboardInterrupt:
            print_interrupted()
            raise typer.Exit(130) from None
        raise typer.Exit(2)

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
