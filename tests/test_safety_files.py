"""Filesystem safety (issue 10, classes 1, 2, 5 and 10), each class tested on
inputs generated from a seed, not just the example that found it:

1. ``--force`` replaces only a folder warpsdf made (its marker file, or a run
   folder from before the marker), never the current folder, one of its
   parents, the home folder or a folder holding the scene;
2. names that become folders (a scene's and a sweep's ``name``, a point's slug)
   are plain file names, and a bad output path (a NUL byte, a symbolic-link
   loop, a name longer than the file system takes, a symlinked folder) is one
   line, not a traceback;
5. inputs are read only from regular files of at most ``MAX_TEXT_BYTES``, and
   never nested deeper than ``MAX_NESTING``;
10. a fit cleans the temporary files a killed write left in its run folder, and
   a fit that fails before its first checkpoint removes the folder it made.

Every refusal is exit code 2 with one line naming the path, and leaves every
file around it as it was (a snapshot of the tree before and after).
"""

from __future__ import annotations

import json
import os
import random
import socket
import string
import threading
from pathlib import Path

import pytest

from tests.conftest import SCENES, assert_user_error, cli
from tests.helpers import TINY, WARPSDF_COMMAND
from warpsdf.errors import InputFileError, OutputError, WarpsdfError
from warpsdf.fit import fit, prepare_run_folder
from warpsdf.io import files
from warpsdf.io.files import name_problem, staged_dir
from warpsdf.io.layout import MARKER, RunFolder
from warpsdf.io.reading import read_json, read_text, read_toml
from warpsdf.limits import MAX_NAME_CHARS, MAX_NESTING, MAX_TEXT_BYTES
from warpsdf.scene import load_scene
from warpsdf.sweep.plan import SweepPoint

SPHERES = SCENES / "two_spheres_silhouette.toml"
TINY_SET = [arg for item in TINY for arg in ("--set", item)]
SMALL = ["--set", "cameras.resolution=[8, 8]", "--device", "cpu"]
SEED = 10

SCENE = """
[target]
kind = "shapes"
shapes = [{ type = "sphere", center = [0.0, 0.0, 0.0], radius = 0.4 }]
[cameras]
resolution = [8, 8]
"""


def tree(root: Path) -> dict[str, object]:
    """Every entry under ``root`` (symbolic links not followed): a file's bytes,
    a link's target, a folder's mark."""
    found: dict[str, object] = {}
    for folder, dirs, names in os.walk(root):
        for name in dirs + names:
            p = Path(folder) / name
            key = str(p.relative_to(root))
            if p.is_symlink():
                found[key] = ("link", os.readlink(p))
            elif p.is_dir():
                found[key] = "dir"
            elif p.is_file():
                found[key] = p.read_bytes()
            else:
                found[key] = "special"
    return found


def first_line(result) -> str:
    return result.stderr.strip().splitlines()[0] if result.stderr.strip() else ""


def write_scene(folder: Path, body: str = SCENE, name: str = "s.toml") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(body, encoding="utf-8")
    return path


def toml_string(text: str) -> str:
    """``text`` as a TOML basic string (JSON's escapes are TOML's)."""
    return json.dumps(text, ensure_ascii=True)


# ---------------------------------------------------------------------------
# 1. --force replaces only folders warpsdf made
# ---------------------------------------------------------------------------


def user_folder(rng: random.Random, path: Path) -> Path:
    """A folder of a user's files: random names, some hidden, some nested, some
    named like warpsdf's own files (but no marker and no checkpoint)."""
    lookalikes = ["cameras.json", "scene.toml", "mask_000.png", "log.csv", "render_000.png"]
    path.mkdir(parents=True)
    for _ in range(rng.randint(1, 5)):
        name = rng.choice(lookalikes) if rng.random() < 0.3 else _random_name(rng)
        folder = path / _random_name(rng) if rng.random() < 0.3 else path
        folder.mkdir(exist_ok=True)
        (folder / name).write_bytes(rng.randbytes(rng.randint(0, 64)))
    if rng.random() < 0.3:
        (path / "points").mkdir(exist_ok=True)  # looks like a sweep, is not one
    return path


def _random_name(rng: random.Random) -> str:
    stem = "".join(rng.choice(string.ascii_letters + string.digits + "._- ") for _ in range(8))
    return ("." if rng.random() < 0.2 else "") + stem.strip(" .") + rng.choice(["", ".txt", ".png"])


def test_force_never_replaces_a_folder_warpsdf_did_not_make(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rng = random.Random(SEED)
    scene = write_scene(tmp_path / "scenes")
    views = tmp_path / "views"
    assert cli("targets", scene, "--out", views, *SMALL).exit_code == 0
    for i in range(8):
        folder = user_folder(rng, tmp_path / f"user{i}")
        before = tree(tmp_path)
        commands = [
            ("targets", scene, "--out", folder, "--force", *SMALL),
            ("render", scene, "--out", folder, "--cameras", views / "cameras.json",
             "--force", *SMALL),
            ("fit", SPHERES, "--out", folder, "--force", "-n", "1", "--device", "cpu", *TINY_SET),
        ]  # fmt: skip
        for args in commands:
            line = assert_user_error(cli(*args), str(folder), "even with --force")
            assert "warpsdf made" in line or "not a run folder" in line, line
            assert tree(tmp_path) == before, args
        with pytest.raises(OutputError, match="even with --force"):
            prepare_run_folder(folder, resume=False, force=True)
        with pytest.raises(OutputError, match="even with --force"), staged_dir(folder, force=True):
            pass
        assert tree(tmp_path) == before


def test_the_example_targets_out_dot_force(tmp_path, monkeypatch):
    """The issue's example: a folder holding s.toml, ``targets s.toml --out . --force``."""
    monkeypatch.chdir(tmp_path)
    scene = write_scene(tmp_path)
    (tmp_path / MARKER).write_text("even with the marker")
    before = tree(tmp_path)
    for out in (".", str(tmp_path), "./", "../" + tmp_path.name):
        assert_user_error(cli("targets", "s.toml", "--out", out, "--force", *SMALL), str(Path(out)))
        assert tree(tmp_path) == before
    assert scene.is_file()


def test_force_never_replaces_protected_folders_even_with_the_marker(tmp_path, monkeypatch):
    """The current folder and its parents, the home folder and its parents, and a
    folder holding the scene file: refused even when they hold the marker."""
    rng = random.Random(SEED + 1)
    home = tmp_path / "home"
    work = home / "a" / "b" / "work"
    work.mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(work)
    deep = tmp_path / "project" / "x" / "y"
    scene = write_scene(deep)
    cases = [work, work.parent, work.parent.parent, home, deep, deep.parent, tmp_path / "project"]
    for folder in cases:
        (folder / MARKER).write_text("made by warpsdf")
        (folder / f"precious{rng.randint(0, 99)}.txt").write_text("mine")
    before = tree(tmp_path)
    for folder in cases:
        for out in (folder, Path(os.path.relpath(folder, work))):
            result = cli("targets", scene, "--out", out, "--force", *SMALL)
            assert_user_error(result, str(out), "refusing to replace it")
            assert tree(tmp_path) == before
        with pytest.raises(OutputError, match="refusing"):
            prepare_run_folder(folder, resume=False, force=True, keep=[scene])
        assert tree(tmp_path) == before
    # "/" and every parent of the working folder (checked without running a command)
    for folder in [Path("/"), *work.parents]:
        assert files._protected(folder) is not None, folder
    assert files._protected(tmp_path / "elsewhere") is None


def test_every_folder_warpsdf_makes_holds_the_marker_and_can_be_replaced(tmp_path):
    scene = write_scene(tmp_path)
    views, renders, run = tmp_path / "views", tmp_path / "renders", tmp_path / "run"
    assert cli("targets", scene, "--out", views, *SMALL).exit_code == 0
    cameras = views / "cameras.json"
    assert cli("render", scene, "--out", renders, "--cameras", cameras, *SMALL).exit_code == 0
    fit(load_scene(SPHERES, list(TINY)), run, iterations=1, device="cpu", write_outputs=False)
    for folder in (views, renders, run):
        assert (folder / MARKER).is_file(), folder
        (folder / "extra.txt").write_text("added later")
    # each is replaced with --force, and only with it
    assert cli("targets", scene, "--out", views, "--force", *SMALL).exit_code == 0
    assert (
        cli("render", scene, "--out", renders, "--cameras", cameras, "--force", *SMALL).exit_code
        == 0
    )
    for folder in (views, renders):
        assert not (folder / "extra.txt").exists() and (folder / MARKER).is_file()
    # a run folder from before the marker is still recognised
    (run / MARKER).unlink()
    fit(load_scene(SPHERES, list(TINY)), run, iterations=1, device="cpu", write_outputs=False,
        force=True)  # fmt: skip
    assert not (run / "extra.txt").exists() and (run / MARKER).is_file()
    assert RunFolder(run).is_run()


# ---------------------------------------------------------------------------
# 2. names are plain file names; bad output paths are one line
# ---------------------------------------------------------------------------


def bad_names(rng: random.Random, count: int) -> list[str]:
    """Names that would leave their folder or break a file name."""
    plain = string.ascii_letters + string.digits + "_-."
    names = ["", " ", ".", "..", " .. ", "../../x", "/abs", "a/b", "a\\b", "a\x00b", "a\x7fb",
             "new\nline", "tab\there", "a\u2028b", "\x85", "x" * (MAX_NAME_CHARS + 1)]  # fmt: skip
    while len(names) < count:
        word = "".join(rng.choice(plain) for _ in range(rng.randint(0, 12)))
        kind = rng.randrange(5)
        if kind == 0:
            bad = word + rng.choice("/\\") + word
        elif kind == 1:
            bad = rng.choice(["..", "./..", "../" * rng.randint(1, 5) + word, word + "/.."])
        elif kind == 2:
            pos = rng.randint(0, len(word))
            bad = word[:pos] + chr(rng.choice([*range(0, 32), 127, 0x85])) + word[pos:]
        elif kind == 3:
            bad = (word or "x") * (MAX_NAME_CHARS // max(len(word), 1) + 2)
        else:
            bad = " " * rng.randint(0, 3)
        names.append(bad)
    return names


def test_bad_names_are_refused(tmp_path):
    rng = random.Random(SEED + 2)
    for name in bad_names(rng, 400):
        assert name_problem(name) is not None, repr(name)
    plain = string.ascii_letters + string.digits + "_-. é"
    for _ in range(200):
        name = "x" + "".join(rng.choice(plain) for _ in range(rng.randint(0, 60)))
        assert name_problem(name) is None, repr(name)


def test_scene_and_sweep_names_never_build_paths_outside(tmp_path, monkeypatch):
    work = tmp_path / "deep" / "work"
    work.mkdir(parents=True)
    monkeypatch.chdir(work)
    rng = random.Random(SEED + 3)
    for i, name in enumerate(n for n in bad_names(rng, 24) if n):  # "" means the file name
        scene = write_scene(work, f"name = {toml_string(name)}\n" + SCENE, f"s{i}.toml")
        sweep = work / f"w{i}.toml"
        sweep.write_text(
            f'base = "{scene.name}"\nname = {toml_string(name)}\n[grid]\noptim.lr = [0.1]\n'
        )
        before = tree(tmp_path)
        for args in (("validate", scene), ("fit", scene, "-n", "1", "--device", "cpu"),
                     ("batch", sweep)):  # fmt: skip
            result = cli(*args)
            if "\x00" in name and args[0] != "batch":  # TOML refuses a raw NUL first
                assert_user_error(result, args[1].name)
                continue
            assert_user_error(result, args[1].name, "name")
            assert tree(tmp_path) == before, (args, name)


def test_point_slugs_are_plain_file_names():
    rng = random.Random(SEED + 4)
    values = ["../../x", "/etc", "a\\b", "..", "\x00", "é/è", " ", "-" * 200, 1e300, -0.0, True]
    for i in range(300):
        overrides = {
            f"{rng.choice(['optim', 'model', '..', 'a/b'])}.{rng.choice(['lr', '..', 'x/y'])}":
            rng.choice([*values, rng.random(), "".join(rng.choice(string.printable) for _ in
                        range(rng.randint(0, 30)))])
            for _ in range(rng.randint(0, 4))
        }  # fmt: skip
        slug = SweepPoint(i, overrides).slug
        assert name_problem(slug) is None, (overrides, slug)
        assert Path(slug).name == slug and not slug.startswith(".")


def bad_output_paths(tmp_path: Path) -> list[tuple[Path, str]]:
    """Output paths that cannot be written, and a needle of their error line."""
    (tmp_path / "loop").symlink_to("loop")
    (tmp_path / "a_file").write_text("not a folder")
    too_long = "x" * 300
    deep = "/".join(["y" * 200] * 25)  # longer than PATH_MAX
    return [
        (tmp_path / "nul\x00byte", "null byte"),
        (tmp_path / "sub" / "nul\x00" / "x", "null byte"),
        (tmp_path / "loop" / "out", "loop"),
        (tmp_path / "loop" / "deeper" / "out", "loop"),
        (tmp_path / too_long, "too long"),
        (tmp_path / too_long / "out", "too long"),
        (tmp_path / deep, "too long"),
        (tmp_path / "a_file" / "out", "a_file"),
        (tmp_path / "a_file", "a_file"),
    ]


def test_bad_output_paths_are_one_line(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    scene = write_scene(tmp_path / "in")
    views = tmp_path / "in" / "views"
    assert cli("targets", scene, "--out", views, *SMALL).exit_code == 0
    cameras = views / "cameras.json"
    out_root = tmp_path / "out"
    out_root.mkdir()
    cases = bad_output_paths(out_root)
    before = tree(tmp_path)
    for out, needle in cases:
        png = out / "x.png"
        for args in (
            ("targets", scene, "--out", out, *SMALL),
            ("targets", scene, "--out", out, "--force", *SMALL),
            ("render", scene, "--out", out, "--cameras", cameras, *SMALL),
            ("render", scene, "--out", png, "-r", "8", "--device", "cpu"),
            ("fit", SPHERES, "--out", out, "-n", "1", "--device", "cpu", *TINY_SET),
            ("fit", SPHERES, "--out", out, "--force", "-n", "1", "--device", "cpu", *TINY_SET),
            ("fit", SPHERES, "--out", out, "--resume", "-n", "1", "--device", "cpu", *TINY_SET),
        ):
            result = cli(*args)
            assert_user_error(result, needle)
            assert tree(tmp_path) == before, args


def test_symlinked_output_folders_are_refused(tmp_path):
    rng = random.Random(SEED + 5)
    scene = write_scene(tmp_path / "in")
    views = tmp_path / "in" / "views"
    assert cli("targets", scene, "--out", views, *SMALL).exit_code == 0
    run = tmp_path / "run"
    fit(load_scene(SPHERES, list(TINY)), run, iterations=1, device="cpu", write_outputs=False)
    targets = [views, run, user_folder(rng, tmp_path / "mine"), tmp_path / "nowhere"]
    links = []
    for i, target in enumerate(targets):
        link = tmp_path / f"link{i}"
        link.symlink_to(target)
        links.append(link)
    before = tree(tmp_path)
    for link in links:
        for args in (
            ("targets", scene, "--out", link, *SMALL),
            ("targets", scene, "--out", link, "--force", *SMALL),
            ("render", scene, "--out", link, "--cameras", views / "cameras.json", "--force",
             *SMALL),
            ("fit", SPHERES, "--out", link, "--force", "-n", "1", "--device", "cpu", *TINY_SET),
        ):  # fmt: skip
            assert_user_error(cli(*args), str(link))
            assert tree(tmp_path) == before, args


# ---------------------------------------------------------------------------
# 5. only regular files, only so big, only so deep
# ---------------------------------------------------------------------------


def finishes(call, seconds: float = 10.0):
    """``call()``'s result, asserting it returns in time (a FIFO must not block)."""
    box: dict = {}

    def target():
        try:
            box["value"] = call()
        except BaseException as err:  # re-raised in the test's thread
            box["error"] = err

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), "blocked"
    if "error" in box:
        raise box["error"]
    return box.get("value")


def special_files(tmp_path: Path) -> list[tuple[Path, str]]:
    """Inputs that are not regular files or are too big, and a needle of the error."""
    fifo = tmp_path / "fifo.toml"
    os.mkfifo(fifo)
    zero = tmp_path / "zero.toml"
    zero.symlink_to("/dev/zero")
    null = tmp_path / "null.json"
    null.symlink_to("/dev/null")
    folder = tmp_path / "folder.toml"
    folder.mkdir()
    sock = tmp_path / "sock.toml"
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(sock))
    big = tmp_path / "big.toml"
    with open(big, "wb") as fh:  # sparse: no disk used
        fh.truncate(MAX_TEXT_BYTES + 1)
    return [
        (fifo, "FIFO"),
        (zero, "device"),
        (null, "device"),
        (folder, "folder"),
        (sock, "socket"),
        (big, f"{MAX_TEXT_BYTES >> 20} MiB"),
    ]


def test_inputs_are_regular_files_of_bounded_size(tmp_path):
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    cases = special_files(inputs)
    scene = write_scene(tmp_path)
    before = tree(tmp_path / "inputs")
    for path, needle in cases:
        for reader in (read_text, read_toml, read_json):
            with pytest.raises(InputFileError, match=needle):
                finishes(lambda r=reader, p=path: r(p, "input"))
        assert_user_error(finishes(lambda p=path: cli("validate", p)), str(path), needle)
        out = tmp_path / "r"
        result = finishes(
            lambda p=path, o=out: cli("render", scene, "--out", o, "--cameras", p, *SMALL)
        )
        assert_user_error(result, str(path), needle)
        assert_user_error(finishes(lambda p=path: cli("batch", p)), str(path), needle)
        assert not out.exists()
        assert tree(tmp_path / "inputs") == before


def test_deep_nesting_is_one_line(tmp_path):
    rng = random.Random(SEED + 6)
    depths = [MAX_NESTING + 1, MAX_NESTING + 2, 100, 1000, 3000]
    depths += [rng.randint(MAX_NESTING + 1, 2000) for _ in range(6)]
    for depth in depths:
        kind = rng.randrange(3)
        if kind == 0:
            toml = "a = " + "[" * depth + "]" * depth + "\n"
        elif kind == 1:
            toml = "a = " + "{b = " * depth + "1" + "}" * depth + "\n"
        else:
            toml = "[" + ".".join(["t"] * depth) + "]\nx = 1\n"
        data = rng.choice(["[" * depth + "]" * depth, '{"a": ' * depth + "1" + "}" * depth])
        if depth == 3000:
            data = "[" * 100_000 + "]" * 100_000  # past Python's recursion limit
        (tmp_path / "deep.toml").write_text(toml)
        (tmp_path / "deep.json").write_text(data)
        with pytest.raises(WarpsdfError, match="nested"):
            read_toml(tmp_path / "deep.toml", "scene file")
        with pytest.raises(WarpsdfError, match="nested"):
            read_json(tmp_path / "deep.json", "cameras file")
        assert_user_error(cli("validate", tmp_path / "deep.toml"), "deep.toml", "nested")
    # nesting within the limit reads
    ok = MAX_NESTING - 1
    (tmp_path / "ok.json").write_text("[" * ok + "]" * ok)
    assert read_json(tmp_path / "ok.json", "x") is not None
    # an integer of more digits than Python converts is a syntax error line
    (tmp_path / "int.toml").write_text("seed = " + "9" * 5000 + "\n")
    assert_user_error(cli("validate", tmp_path / "int.toml"), "int.toml", "syntax")


def test_very_long_dotted_keys_are_refused_at_once(tmp_path):
    """Dotted keys of hundreds of thousands of parts (headers, key/value lines,
    inline tables, --set values): tomllib would take minutes to hours; they are
    refused up front with the nesting line. Dotted text that is no key (strings,
    float arrays) and keys up to the limit still read."""
    from warpsdf.scene import parse_override

    rng = random.Random(SEED + 12)
    for _ in range(8):
        n = rng.choice([MAX_NESTING + 1, rng.randint(1000, 400_000)])
        part = rng.choice(["t", '"q.t"', "'l'", "k_9-x"])
        chain = rng.choice([".", " . ", "\t.\t"]).join([part] * n)
        text = rng.choice([f"[{chain}]\nx = 1\n", f"[[{chain}]]\n", f"{chain} = 1\n",
                           f"a = {{ b = 1, {chain} = 2 }}\n"])  # fmt: skip
        (tmp_path / "deep.toml").write_text(text)
        with pytest.raises(WarpsdfError, match="nested"):  # (unchecked: hours in tomllib)
            read_toml(tmp_path / "deep.toml", "scene file")
        with pytest.raises(WarpsdfError, match="nested"):
            parse_override(f"x={{ {chain} = 1 }}")
    long_strings = 'name = "' + "a." * 200_000 + '"\nv = [' + ", ".join(["1.5"] * 50_000) + "]\n"
    (tmp_path / "long.toml").write_text(long_strings)
    assert len(read_toml(tmp_path / "long.toml", "scene file")["v"]) == 50_000
    ok = ".".join(["t"] * (MAX_NESTING - 1))
    (tmp_path / "ok.toml").write_text(f"{ok} = 1\n")
    assert read_toml(tmp_path / "ok.toml", "scene file")["t"]["t"]


# ---------------------------------------------------------------------------
# 10. leftovers
# ---------------------------------------------------------------------------


def temp_names(rng: random.Random, count: int) -> list[str]:
    """Names of the temporary files atomic_file makes for a run folder's files."""
    run_files = [RunFolder.CHECKPOINT, RunFolder.LOG, RunFolder.METRICS, RunFolder.LOSS_PLOT,
                 RunFolder.ANIMATION, RunFolder.SCENE, RunFolder.MESH, "final_a.png"]  # fmt: skip
    chars = string.ascii_lowercase + string.digits + "_"
    names = []
    for _ in range(count):
        name = rng.choice(run_files)
        random_part = "".join(rng.choice(chars) for _ in range(8))
        names.append(f".{name}.{random_part}.tmp{Path(name).suffix}")
    return names


def test_stale_temporary_files_are_cleaned_when_a_fit_starts_or_resumes(tmp_path):
    rng = random.Random(SEED + 7)
    scene = load_scene(SPHERES, list(TINY))
    run = tmp_path / "run"
    fit(scene, run, iterations=1, device="cpu", write_outputs=False)
    # a resume cleans them, and keeps every other file
    keep = ["notes.tmp", ".notes.tmp", ".hidden", "checkpoint.npz.bak", ".checkpoint.npz"]
    stale = temp_names(rng, 12)
    for name in stale + keep:
        (run / name).write_bytes(b"half a file")
    assert set(files.stale_temp_files(run)) == {run / n for n in stale}
    fit(scene, run, iterations=2, device="cpu", write_outputs=False, resume=True)
    names = {p.name for p in run.iterdir()}
    assert not names & set(stale) and set(keep) <= names
    # a folder a fit killed in its first checkpoint left (marker and temporary
    # files only) counts as empty: a new fit starts there and cleans them
    for start in range(3):
        fresh = tmp_path / f"fresh{start}"
        fresh.mkdir()
        (fresh / MARKER).write_text("made by warpsdf")
        stale = temp_names(rng, rng.randint(1, 6))
        for name in stale:
            (fresh / name).write_bytes(rng.randbytes(rng.randint(0, 100)))
        fit(scene, fresh, iterations=1, device="cpu", write_outputs=False)
        assert not {p.name for p in fresh.iterdir()} & set(stale)
        assert RunFolder(fresh).is_run()


def test_a_fit_that_fails_early_leaves_no_folder(tmp_path, monkeypatch):
    import warpsdf.fit.run as run_module

    scene = write_scene(tmp_path)
    failures = [
        WarpsdfError("no pixel (a test)"),
        MemoryError("out of memory (a test)"),
        KeyboardInterrupt(),
    ]
    for i, failure in enumerate(failures):

        def broken(*args, failure=failure, **kwargs):
            raise failure

        monkeypatch.setattr(run_module.Fitter, "from_scene", broken)
        for via_cli in (True, False):
            out = tmp_path / "runs" / f"r{i}{via_cli}"
            before = tree(tmp_path)
            if via_cli and isinstance(failure, WarpsdfError):
                assert_user_error(cli("fit", scene, "--out", out, "-n", "1", "--device", "cpu"),
                                  "no pixel")  # fmt: skip
            else:
                with pytest.raises(type(failure)):
                    fit(load_scene(scene), out, iterations=1, device="cpu")
            assert not out.exists()
            assert tree(tmp_path) == before
        # a failure after scene.toml was written, before the first checkpoint
        monkeypatch.undo()
        monkeypatch.setattr(run_module, "train", broken)
        out = tmp_path / "runs" / f"late{i}"
        with pytest.raises(type(failure)):
            fit(load_scene(scene), out, iterations=1, device="cpu")
        assert not out.exists()
        monkeypatch.undo()
    # a folder the user made is kept (empty), and so is a run with a checkpoint
    mine = tmp_path / "mine"
    mine.mkdir()
    monkeypatch.setattr(run_module.Fitter, "from_scene", broken)
    with pytest.raises(KeyboardInterrupt):
        fit(load_scene(scene), mine, iterations=1, device="cpu")
    assert mine.is_dir()


# ---------------------------------------------------------------------------
# single output files: replaced only with --force (class 2)
# ---------------------------------------------------------------------------


def test_output_files_are_overwritten_only_with_force(tmp_path, monkeypatch):
    """Every command that writes one file (a still, a turntable, a mesh, a
    report, a new scene) refuses an existing one without --force, leaving it
    byte for byte, and replaces it with --force."""
    monkeypatch.chdir(tmp_path)
    scene = write_scene(tmp_path)
    run = tmp_path / "run"
    fit(load_scene(scene, TINY), run, iterations=1, device="cpu", write_outputs=False)
    commands = {
        "still.png": ["render", scene, "-r", 8, "--out"],
        "depth.npy": ["render", scene, "-r", 8, "--mode", "depth", "--out"],
        "spin.gif": ["render", scene, "-r", 8, "--turntable", 2, "--out"],
        "mesh.ply": ["export", run, "-r", 8, "--out"],
        "page.html": ["report", run, "--out"],
    }
    rng = random.Random(7)
    for name, args in commands.items():
        out = tmp_path / name
        old = bytes(rng.randrange(256) for _ in range(64))
        out.write_bytes(old)
        before = tree(tmp_path)
        line = assert_user_error(cli(*args, out), name, "--force")
        assert "exists" in line
        assert tree(tmp_path) == before and out.read_bytes() == old, name
        result = cli(*args, out, "--force")
        assert result.exit_code == 0, (name, result.output)
        assert out.read_bytes() != old, name
    assert_user_error(cli("new", "s", "-t", "silhouette"), "s.toml", "--force")


def test_half_built_folders_of_killed_commands_are_cleaned(tmp_path):
    """A command killed while building an output folder leaves its stage
    (``.NAME.pPID.RANDOM.tmp``); the next command staging NAME removes those
    whose process is gone, and leaves a live process's stage, other names'
    stages and look-alikes alone."""
    import subprocess
    import sys

    rng = random.Random(SEED + 11)
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    dead = int(done.stdout)
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        for trial in range(4):
            out = tmp_path / f"views{trial}"
            dead_stages = [files.owned_temp_dir(tmp_path, f".{out.name}") for _ in range(3)]
            for stage in dead_stages:  # as a killed process left them, named by that process
                stage.rename(stage.with_name(stage.name.replace(f".p{os.getpid()}.", f".p{dead}.")))
            dead_stages = sorted(tmp_path.glob(f".{out.name}.p{dead}.*.tmp"))
            assert len(dead_stages) == 3
            alive = tmp_path / f".{out.name}.p{live.pid}.abc{trial}.tmp"
            other = tmp_path / f".other{trial}.p{dead}.abc.tmp"
            lookalike = tmp_path / f".{out.name}.p{dead}.abc.tmp.keep"
            for folder in (alive, other, lookalike):
                folder.mkdir()
            assert files.dead_stages(tmp_path, f".{out.name}") == dead_stages
            with staged_dir(out, force=bool(rng.getrandbits(1))) as stage:
                (stage / "a.txt").write_text("x")
            assert not any(p.exists() for p in dead_stages)
            assert alive.is_dir() and other.is_dir() and lookalike.is_dir()
            assert (out / "a.txt").read_text() == "x"
    finally:
        live.kill()
        live.wait()


def test_a_killed_targets_command_leaves_nothing_the_next_one_keeps(tmp_path):
    """End to end: SIGKILL ``warpsdf targets`` while it writes its folder, then
    run it again: the output is complete and no stage folder is left."""
    import signal
    import subprocess
    import time

    out = tmp_path / "views"
    args = [*WARPSDF_COMMAND, "targets", str(SCENES / "spheres_bloat.toml"), "--out", str(out),
            "--device", "cpu", "--set", "cameras.resolution=[24, 24]"]  # fmt: skip
    killed = False
    for _ in range(200):  # kill it as soon as its stage appears
        proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 120
        while proc.poll() is None and time.monotonic() < deadline:
            if list(tmp_path.glob(".views.p*.tmp")):
                proc.send_signal(signal.SIGKILL)
                killed = True
                break
            time.sleep(0.005)
        proc.wait()
        if killed:
            break
    assert killed and list(tmp_path.glob(".views.p*.tmp")) and not out.exists()
    result = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert not list(tmp_path.glob(".views*.tmp")) and (out / "cameras.json").is_file()
