"""Issue 10, acceptance: a seeded, time-bounded fuzz test of hostile input.

Thousands of mutated scene files (key deletions and insertions, wrong types,
hostile numbers, strings and paths, deep nesting, byte-level corruption of the
TOML text) go through ``warpsdf validate`` in-process; a few hundred generated
command lines go through every command in-process; a sample of both runs in
real subprocesses. For every case: no traceback, exit code 0 or 2, on failure
every stderr line is one whole ``error: ...`` line (``validate`` lists each
distinct problem once, one line each) naming the file and key, or the value,
nothing written outside the output path the command was given, and nothing
half-written (no ``*.tmp*`` file left, an output folder complete or absent).
"""

from __future__ import annotations

import functools
import json
import math
import os
import random
import shutil
import subprocess
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conftest import SCENES
from tests.helpers import WARPSDF_COMMAND
from warpsdf.cli.main import app

SEED = 20261202
SCENE_CASES = 1500
BYTE_CASES = 500
COMMAND_CASES = 300
SUBPROCESS_CASES = 8

SCENE_FILES = sorted(SCENES.glob("*.toml"))
TINY = ["--set", "cameras.resolution=[8, 8]", "--set", "output.mesh_resolution=8"]


# --- what every case must show ------------------------------------------------


def snapshot(root: Path, skip: Path | None = None) -> dict[str, tuple]:
    """Every path under ``root`` (without following links) with its kind, size
    and modification time; ``skip`` and everything under it left out."""
    found: dict[str, tuple] = {}
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        here = Path(dirpath)
        if skip is not None and (here == skip or skip in here.parents):
            dirnames[:] = []
            continue
        for name in dirnames + filenames:
            path = here / name
            if skip is not None and path == skip:
                continue
            st = path.lstat()
            kind = st.st_mode >> 12
            # a folder's own size and time change with its entries, compared one by one
            same = (
                (kind,)
                if path.is_dir() and not path.is_symlink()
                else (kind, st.st_size, st.st_mtime_ns)
            )
            found[str(path.relative_to(root))] = same
    return found


def check_outcome(case, code: int, stdout: str, stderr: str, names: list[str]) -> None:
    """Exit 0 or 2, no traceback, and on failure only whole ``error:`` lines,
    each distinct and naming one of ``names`` (the file, an option, a value)."""
    assert code in (0, 2), (case, code, stdout[-2000:], stderr[-2000:])
    assert "Traceback" not in stdout + stderr, (case, stderr[-3000:])
    lines = [line for line in stderr.splitlines() if line.strip()]
    if code == 0:
        return
    assert lines, (case, stdout[-2000:])
    assert len(lines) == len(set(lines)), (case, stderr)
    for line in lines:
        assert line.startswith("error: "), (case, stderr[-3000:])
        assert len(line) < 2000, (case, line[:300])  # a huge bad value is shortened
        if names:
            shown = {form for n in names for form in (n, os.path.normpath(n), Path(n).name, n[:20])}
            assert any(n in line for n in shown if n), (case, names, line[:500])


def check_written(case, root: Path, before: dict, output: Path | None) -> None:
    """Nothing changed under ``root`` except ``output``; no temporary file left;
    an output folder complete (its marker there) or absent."""
    after = snapshot(root, output)
    assert after == before, (case, _diff(before, after))
    if output is None:
        return
    if output.is_dir() and not output.is_symlink():
        leftovers = [p.name for p in output.rglob("*") if ".tmp" in p.name]
        assert not leftovers, (case, leftovers)
        if any(output.iterdir()) and str(output) not in case.premade:
            assert (output / "made_by_warpsdf.txt").exists(), (case, sorted(os.listdir(output)))
    leftovers = [p.name for p in output.parent.iterdir() if ".tmp" in p.name]
    assert not leftovers, (case, leftovers)


def _diff(before: dict, after: dict) -> dict:
    return {
        "added": sorted(set(after) - set(before))[:20],
        "removed": sorted(set(before) - set(after))[:20],
        "changed": sorted(k for k in set(before) & set(after) if before[k] != after[k])[:20],
    }


# --- scene mutations ------------------------------------------------------------


class Raw(str):
    """TOML text written as is (a thousand-deep value, a bad literal)."""


DEEP_LIST = Raw("[" * 1000 + "]" * 1000)
DEEP_TABLE = Raw("{ a = " * 1000 + "1" + " }" * 1000)
LONG = "x" * 100_000


def hostile_values(rng: random.Random, paths: dict[str, str]) -> list:
    """A pool of values no key expects, or expects only within limits."""
    return [
        2**31,
        2**31 - 1,
        -(2**31),
        2**63 - 1,
        -1,
        0,
        -0.0,
        1e308,
        -1e308,
        5e-324,
        math.nan,
        math.inf,
        -math.inf,
        True,
        "",
        " ",
        LONG,
        "a\x01b\x07c\x1b[31m\x7fd",
        "line\nbreak",
        "../../escaped",
        "../" * 40 + "etc/passwd",
        "/",
        ".",
        "..",
        "/dev/zero",
        "/dev/null",
        paths["fifo"],
        paths["loop"],
        "n" * 300,
        "nope",
        "XYZ",
        "silhouette ",
        [],
        [1],
        [1, 2, 3, 4],
        [8, 8, 8],
        ["silhouette", "silhouette"],
        [math.nan, 1.0],
        ["a", 1],
        {"nested": {"table": 1}},
        {},
        [{"type": "sphere"}],
        DEEP_LIST,
        DEEP_TABLE,
        rng.uniform(-1e6, 1e6),
        rng.randint(-(2**40), 2**40),
    ]


def leaf_paths(data, prefix=()) -> list[tuple]:
    """Every key path into nested tables and lists."""
    found = []
    items = data.items() if isinstance(data, dict) else enumerate(data)
    for key, value in items:
        found.append((*prefix, key))
        if isinstance(value, (dict, list)):
            found.extend(leaf_paths(value, (*prefix, key)))
    return found


def tables(data, prefix=()) -> list[tuple]:
    found = [prefix]
    for key, value in data.items():
        if isinstance(value, dict):
            found.extend(tables(value, (*prefix, key)))
    return found


def get(data, path):
    for key in path:
        data = data[key]
    return data


def mutate(rng: random.Random, data: dict, paths: dict[str, str]) -> list[str]:
    """Apply one to three random edits to ``data`` in place; returns what was done."""
    done = []
    for _ in range(rng.choice((1, 1, 1, 2, 3))):
        keys = leaf_paths(data)
        kind = rng.choice(("delete", "insert", "replace", "replace", "replace", "name"))
        if kind == "delete" and keys:
            path = rng.choice(keys)
            parent = get(data, path[:-1])
            del parent[path[-1]]
            done.append(f"delete {path}")
        elif kind == "insert":
            table = get(data, rng.choice(tables(data)))
            key = rng.choice(("unknown", "Seed", "model ", "x.y", "cameras", "ü", "\x01"))
            table[key] = rng.choice(hostile_values(rng, paths))
            done.append(f"insert {key!r}")
        elif kind == "name":
            data[rng.choice(("name", "seed"))] = rng.choice(hostile_values(rng, paths))
            done.append("name")
        elif keys:
            path = rng.choice(keys)
            get(data, path[:-1])[path[-1]] = rng.choice(hostile_values(rng, paths))
            done.append(f"replace {path}")
    return done


def toml_key(key) -> str:
    return json.dumps(str(key)) if not str(key).isidentifier() else str(key)


def toml_value(value) -> str:
    if isinstance(value, Raw):
        return str(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return (
            "nan"
            if math.isnan(value)
            else ("inf" if value > 0 else "-inf")
            if math.isinf(value)
            else repr(value)
        )
    if isinstance(value, str):
        return '"' + "".join(_escape(ch) for ch in value) + '"'
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{toml_key(k)} = {toml_value(v)}" for k, v in value.items()) + " }"
    return "[" + ", ".join(toml_value(v) for v in value) + "]"


def _escape(ch: str) -> str:
    if ch in '"\\':
        return "\\" + ch
    return f"\\u{ord(ch):04x}" if ord(ch) < 0x20 or ord(ch) == 0x7F else ch


def dump(data: dict) -> str:
    """A TOML text of ``data``: top-level values, then one [section] per table."""
    lines = [f"{toml_key(k)} = {toml_value(v)}" for k, v in data.items() if not isinstance(v, dict)]
    for key, value in data.items():
        if isinstance(value, dict):
            lines.append(f"[{toml_key(key)}]")
            lines.extend(f"{toml_key(k)} = {toml_value(v)}" for k, v in value.items())
    return "\n".join(lines) + "\n"


def corrupt(rng: random.Random, text: bytes) -> bytes:
    """One to four byte-level edits: flip, delete, insert, duplicate, truncate."""
    data = bytearray(text)
    for _ in range(rng.randint(1, 4)):
        if not data:
            break
        at = rng.randrange(len(data))
        kind = rng.randrange(5)
        if kind == 0:
            data[at] ^= 1 << rng.randrange(8)
        elif kind == 1:
            del data[at : at + rng.randint(1, 8)]
        elif kind == 2:
            data[at:at] = rng.choice(
                (b"\x00", b"\xff", b"[", b'"', b"=", b"\n[x]\n", b"\\u", b"\r")
            )
        elif kind == 3:
            end = min(len(data), at + rng.randint(1, 200))
            data[at:at] = data[at:end]
        else:
            del data[at:]
    return bytes(data)


# --- the workspace ----------------------------------------------------------------


@pytest.fixture
def space(tmp_path, monkeypatch):
    """A watched tree: ``root/a/b/cwd`` is the working directory (so ``../..``
    stays inside), ``root/scenes`` holds the shipped scenes and their meshes, plus
    a FIFO, a symlink loop and an ordinary file."""
    root = tmp_path / "root"
    cwd = root / "a" / "b" / "cwd"
    cwd.mkdir(parents=True)
    scenes = root / "scenes"
    shutil.copytree(SCENES, scenes, ignore=shutil.ignore_patterns("__pycache__", "*.py"))
    odd = root / "odd"
    odd.mkdir()
    os.mkfifo(odd / "fifo")
    os.symlink(odd / "loop", odd / "loop")
    (odd / "plain.txt").write_text("not a scene\n")
    monkeypatch.chdir(cwd)
    return {
        "root": root,
        "cwd": cwd,
        "scenes": scenes,
        "fifo": str(odd / "fifo"),
        "loop": str(odd / "loop"),
        "plain": str(odd / "plain.txt"),
    }


@dataclass
class Case:
    args: list[str]
    output: Path | None = None
    names: list[str] = field(default_factory=list)
    premade: set = field(default_factory=set)

    def __repr__(self) -> str:
        return "warpsdf " + " ".join(a if len(a) < 80 else a[:40] + "..." for a in self.args)


def scene_cases(rng: random.Random, space: dict, count: int, byte_count: int):
    """Mutated scene texts, each to be written as ``space['scenes']/fuzz_N.toml``
    (next to the meshes folder, so a mesh path still resolves): yields
    (path, bytes, what was done)."""
    parsed = [(p.name, p.read_bytes(), tomllib.loads(p.read_text())) for p in SCENE_FILES]
    for i in range(count + byte_count):
        name, text, data = rng.choice(parsed)
        path = space["scenes"] / f"fuzz_{i:05d}.toml"
        if i < count:
            mutated = json.loads(json.dumps(data))
            what = mutate(rng, mutated, space)
            yield path, dump(mutated).encode("utf-8"), (name, what)
        else:
            yield path, corrupt(rng, text), (name, "bytes")


@functools.cache
def _command():
    import typer.main

    return typer.main.get_command(app)


def run(*args):
    """``tests.conftest.cli`` with the Click command built once: Typer's runner
    rebuilds it on every call (15 ms), this is the same group and ``main``."""
    from click.testing import CliRunner

    return CliRunner().invoke(_command(), [str(a) for a in args], catch_exceptions=False)


def test_mutated_scenes_validate(space):
    """A few thousand mutated scene files through ``validate``: each one loads
    or ends with whole one-line problems naming the file, and nothing is written."""
    rng = random.Random(SEED)
    start = time.monotonic()
    codes = {0: 0, 2: 0}
    for path, text, what in scene_cases(rng, space, SCENE_CASES, BYTE_CASES):
        path.write_bytes(text)
        before = snapshot(space["root"])
        result = run("validate", path)
        case = Case(["validate", str(path)], premade=set())
        check_outcome(
            (what, text[:3000]), result.exit_code, result.stdout, result.stderr, [path.name]
        )
        check_written(case, space["root"], before, None)
        codes[result.exit_code] += 1
        path.unlink()
    # the generator makes both kinds, and a bounded run
    assert codes[0] > 20 and codes[2] > SCENE_CASES, codes
    assert time.monotonic() - start < 60


# --- command lines ------------------------------------------------------------------

COMMANDS = (
    "validate", "new", "targets", "render", "fit", "export", "batch", "report", "bench", "carve",
)  # fmt: skip
BAD_NUMBERS = ["nan", "inf", "-inf", "-1", "0", "1e308", "2147483648", "abc", "", "0x10", "1e-320"]
BAD_OPTIONS = [
    ["--bogus"],
    ["-z"],
    ["--set"],
    ["--set", "nokey"],
    ["--set", "optim.lr=nan"],
    ["--set", "cameras.count=2147483648"],
    ["--set", "name='../../up'"],
    ["--set", "output.heldout_views=10000000"],
    ["--set", "x" * 5000 + "=1"],
    ["--device", "bogus"],
    ["--device", "cuda:99"],
    ["--out"],
    ["extra-argument"],
]


@pytest.fixture
def world(space):
    """``space`` plus a one-step run folder, a warpsdf-made targets folder, a
    folder and a file warpsdf did not make, and a sweep file next to the scenes."""
    scene = space["scenes"] / "two_spheres_silhouette.toml"
    made = space["root"] / "made"
    assert run("fit", scene, "--out", made / "run", "--iterations", 1, *TINY).exit_code == 0
    assert run("targets", scene, "--out", made / "targets", *TINY).exit_code == 0
    assert run("carve", scene, "--out", made / "hull.ply", "-r", 8, *TINY).exit_code == 0
    mine = space["root"] / "mine"
    mine.mkdir()
    (mine / "precious.txt").write_text("keep me\\n")
    return {
        **space,
        "scene": scene,
        "run": made / "run",
        "targets": made / "targets",
        "mine": mine,
        "sweep": space["scenes"] / "sweeps" / "lr_sweep.toml",
    }


def hostile_paths(w: dict) -> list[str]:
    return [
        "nope.toml",
        ".",
        "..",
        w["fifo"],
        w["loop"],
        "/dev/null",
        w["plain"],
        "n" * 300,
        str(w["scenes"]),
        str(w["mine"]),
        "",
        "dir/",
    ]


def command_case(rng: random.Random, w: dict, i: int) -> Case:
    """One generated command line; real work only in tiny forms."""
    fresh = f"out{i:04d}"
    bad = hostile_paths(w)
    command = rng.choice(COMMANDS)
    args: list[str] = [command]
    outs: list[str] = []  # an output the command may write (excluded from the snapshot)
    names: list[str] = []

    def out_option(suffixes: tuple[str, ...], made: list[str] = ()):
        choice = rng.random()
        if choice < 0.5:
            value = fresh + rng.choice(suffixes)
            outs.append(value)
        elif choice < 0.6 and made:
            value = rng.choice(made)
            if "--force" in args:
                outs.append(value)
        else:
            value = rng.choice(bad)
            try:
                new = not os.path.lexists(w["cwd"] / value)
            except OSError:
                new = False
            if new:  # a path that names nothing yet is a legitimate output
                outs.append(value)
        args.extend(["--out", value])
        names.append(value)

    if command == "validate":
        source = rng.choice([str(w["scene"]), *bad])
        args.append(source)
        names.append(source)
    elif command == "new":
        name = rng.choice([fresh, fresh + ".toml", "../" + fresh, *bad, "a/b"])
        args.append(name)
        names.append(name)
        if rng.random() < 0.5:
            args.extend(
                ["--template", rng.choice(["xyz", "silhouette", "mesh", "images", "bogus", ""])]
            )
        if rng.random() < 0.3:
            args.append("--force")
        if name:  # NAME.toml (or NAME), wherever the user names it
            outs.append(name if name.endswith(".toml") else name + ".toml")
            target = Path(outs[-1])
            outs.append(str(target.parent / f"{target.stem}_mesh.ply"))  # the mesh template's
            try:
                if not (w["cwd"] / target.parent).exists():
                    outs.append(str(target.parent))  # made to hold it
            except OSError:
                pass
    elif command == "targets":
        args.append(rng.choice([str(w["scene"])] * 3 + bad))
        if rng.random() < 0.4:
            args.append("--force")
        out_option(("", "/sub"), [str(w["targets"])])
        args.extend(TINY)
    elif command == "render":
        args.append(rng.choice([str(w["scene"]), str(w["run"])] * 2 + bad))
        if rng.random() < 0.2:
            args.append("--force")
        args.extend(["--resolution", rng.choice(["8", "8x8", *BAD_NUMBERS, "8x", "x8", "100000"])])
        for option in ("--azimuth", "--elevation", "--distance", "--fov"):
            if rng.random() < 0.3:
                args.extend([option, rng.choice(["10", *BAD_NUMBERS])])
        if rng.random() < 0.2:
            args.extend(["--mode", rng.choice(["mask", "xyz", "depth", "normals", "bogus"])])
        if rng.random() < 0.2:
            args.extend(["--turntable", rng.choice(["2", "0", "-1", "3601", "nan", "2147483648"])])
            args.extend(["--fps", rng.choice(["10", *BAD_NUMBERS])])
        if rng.random() < 0.15:
            args.extend(["--cameras", rng.choice([str(w["targets"] / "cameras.json"), *bad])])
        out_option((".png", ".npy", ".gif", ".txt", "/"), [str(w["targets"])])
    elif command == "fit":
        args.append(rng.choice([str(w["scene"])] * 3 + bad))
        args.extend(["--iterations", rng.choice(["1", "0", "-1", "nan", "abc", "1000001"])])
        if rng.random() < 0.2:
            args.append("--resume")
        if rng.random() < 0.3:
            args.append("--force")
        out_option(("", "/sub"), [str(w["run"])])
        args.extend(TINY)
    elif command == "export":
        args.append(rng.choice([str(w["run"])] * 3 + bad))
        args.extend(
            ["--resolution", rng.choice(["8", "7", "1025", "0", "nan", "abc", "2147483648"])]
        )
        out_option((".ply", ".obj", ".stl", ".glb", ".txt", ""))
    elif command == "batch":
        # fail-fast forms only: a real sweep would run five long fits
        args.append(rng.choice([*bad, str(w["scene"])]))
        if rng.random() < 0.5:
            args.extend(["--workers", rng.choice(BAD_NUMBERS)])
        if rng.random() < 0.3:
            args.extend(["--executor", rng.choice(["bogus", "ray", ""])])
        if rng.random() < 0.2:
            args.extend(["--gpus-per-task", rng.choice(BAD_NUMBERS)])
        if rng.random() < 0.5:
            out_option(("",))
    elif command == "report":
        args.append(rng.choice([str(w["run"])] * 2 + bad))
        out_option((".html", ""))
    elif command == "carve":
        args.append(rng.choice([str(w["scene"])] * 3 + bad))
        args.extend(["--resolution", rng.choice(["8", "12", "7", "513", "nan", "2147483648"])])
        if rng.random() < 0.2:
            args.append("--force")
        out_option((".ply", ".obj", ".stl", ".glb", ".txt", ""))
        args.extend(TINY)
    else:  # bench: fail-fast forms only (a bad case, size or device)
        args.extend(["--case", rng.choice(["bogus", "render:nope", "fit:", "", "render:airplane"])])
        if args[-1] == "render:airplane":
            args.extend(["--device", rng.choice(["bogus", "cuda:99", ""])])
        for option in ("--resolution", "--iterations", "--peak-gflops"):
            if rng.random() < 0.3:
                args.extend([option, rng.choice(BAD_NUMBERS)])
    if rng.random() < 0.3:
        extra = rng.choice(BAD_OPTIONS)
        if command in ("batch", "bench") and extra[:1] == ["--set"]:
            extra = ["--bogus"]
        args.extend(extra)
    if rng.random() < 0.05:
        args.append("--help")
    case = Case(args, names=[*names, *args])
    case.outputs = [w["cwd"] / o for o in outs]
    return case


def check_command(case: Case, w: dict, before: dict, code: int) -> None:
    """Nothing changed outside the case's outputs; no temporary file anywhere;
    each output folder complete (its marker) or absent."""
    root = w["root"]
    keep = {os.path.normpath(o) for o in case.outputs}
    after = snapshot(root)

    def outside(table):
        # an output, what it holds, and a folder made to hold it (--out NEW/sub)
        return {
            k: v
            for k, v in table.items()
            if not any(
                (path := os.path.normpath(root / k)) == o
                or path.startswith(o + os.sep)
                or (o.startswith(path + os.sep) and v[0] == 4)
                for o in keep
            )
        }

    assert outside(after) == outside(before), (case, _diff(outside(before), outside(after)))
    temporary = [k for k in after if ".tmp" in Path(k).name]
    assert not temporary, (case, temporary)
    for output in map(Path, keep):
        try:
            folder = output.is_dir() and not output.is_symlink() and any(output.iterdir())
        except OSError:  # a name too long, a loop: nothing there
            folder = False
        if folder and case.args[0] != "new":  # new writes files only (in a folder it may make)
            assert (output / "made_by_warpsdf.txt").exists(), (case, os.listdir(output))


def test_generated_command_lines(world):
    """A few hundred command lines over every command, in-process."""
    rng = random.Random(SEED + 1)
    start = time.monotonic()
    codes = {0: 0, 2: 0}
    slow = []
    for i in range(COMMAND_CASES):
        case = command_case(rng, world, i)
        before = snapshot(world["root"])
        began = time.monotonic()
        try:
            result = run(*case.args)
        except BaseException as err:  # a traceback: name the case
            raise AssertionError(f"{case!r} raised {err!r}") from err
        if time.monotonic() - began > 3:
            slow.append((case, time.monotonic() - began))
        check_outcome(case, result.exit_code, result.stdout, result.stderr, case.names)
        check_command(case, world, before, result.exit_code)
        codes[result.exit_code] += 1
    assert codes[0] >= 5 and codes[2] > COMMAND_CASES // 2, codes
    assert not slow, slow
    assert time.monotonic() - start < 60


def run_subprocess(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "80"}
    env.pop("PYTHONWARNINGS", None)
    return subprocess.run(
        [*WARPSDF_COMMAND, *map(str, args)],
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_sample_in_subprocesses(world):
    """A sample of the generated cases in real processes: the same checks, and
    stderr holds nothing but the error lines (no warning, no CUDA notice)."""
    rng = random.Random(SEED + 2)
    scenes = list(scene_cases(rng, world, 3, 1))
    cases = [Case(["validate", str(path)], names=[path.name]) for path, _, _ in scenes]
    cases += [command_case(rng, world, 9000 + i) for i in range(SUBPROCESS_CASES - 4)]
    texts = [text for _, text, _ in scenes]
    for i, case in enumerate(cases):
        if i < len(texts):
            Path(case.args[1]).write_bytes(texts[i])
        case.outputs = getattr(case, "outputs", [])
        before = snapshot(world["root"])
        done = run_subprocess(case.args, world["cwd"])
        check_outcome(case, done.returncode, done.stdout, done.stderr, case.names)
        if done.returncode == 0:
            assert not done.stderr.strip(), (case, done.stderr)
        check_command(case, world, before, done.returncode)
        if i < len(texts):
            Path(case.args[1]).unlink()
