"""Loading scenes: TOML or parsed data -> a validated, frozen :class:`Scene`.

The builder walks the schema's fields, checks each value's type and its
``check`` metadata, and collects every problem; ``--set section.key=value``
overrides go through the same checks as the file. Errors name the file, the
key and what was expected, and suggest the closest valid key for a typo.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import re
import tomllib
import types
import typing
from enum import Enum
from pathlib import Path
from typing import Any

from warpsdf.errors import SceneError
from warpsdf.io.reading import TomlTooDeep, loads_toml, read_toml
from warpsdf.limits import MAX_HASH_RESOLUTION, MAX_NESTING
from warpsdf.scene.checks import check_problem, cross_checks
from warpsdf.scene.keys import suggest
from warpsdf.scene.schema import (
    IMAGE_CAMERA_KEYS,
    KIND_DEFAULTS,
    CamerasConfig,
    ModelActivation,
    ModelInit,
    ModelKind,
    Scene,
)


def load_scene(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> Scene:
    """Read, override and validate a scene file.

    Raises :class:`SceneError` listing every problem, each one line that names
    the file and the key.
    """
    path = Path(path)
    raw = read_toml(path, "scene file", SceneError)
    return scene_from_dict(raw, source=path, overrides=overrides)


def scene_from_dict(
    raw: dict[str, Any],
    source: str | Path = "<scene>",
    overrides: list[str] | tuple[str, ...] = (),
) -> Scene:
    """Validate a parsed scene (e.g. from a sweep) against the schema."""
    raw = copy.deepcopy(raw)
    for item in overrides:
        apply_override(raw, item)
    _fill_kind_defaults(raw)
    source = Path(source)
    set_keys = [item.partition("=")[0].strip() for item in overrides]
    builder = _Builder(str(source), base_dir=source.parent, set_keys=set_keys)
    scene = builder.build(Scene, raw, "")
    if builder.problems:
        raise SceneError(builder.problems)
    scene = dataclasses.replace(scene, source=str(source))
    scene = _resolve_defaults(scene, source)
    problems = cross_checks(scene, str(source))
    if problems:
        raise SceneError(problems)
    return scene


def parse_override(item: str) -> tuple[list[str | int], Any]:
    """``'optim.lr=3e-3'`` -> (['optim', 'lr'], 0.003). The value is read as TOML;
    a value that is not valid TOML is taken as a plain string."""
    key, sep, value = item.partition("=")
    key = key.strip()
    if not sep or not key:
        raise SceneError(f"--set {item!r}: expected section.key=value")
    parts: list[str | int] = []
    for piece in key.split("."):
        m = re.fullmatch(r"([A-Za-z_][A-Za-z0-9_]*)((?:\[\d+\])*)", piece.strip())
        if not m:
            raise SceneError(f"--set {item!r}: cannot read key {key!r}")
        parts.append(m.group(1))
        parts.extend(int(i) for i in re.findall(r"\[(\d+)\]", m.group(2)))
    try:
        parsed = loads_toml(f"v = {value.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        parsed = value.strip()
    except TomlTooDeep:
        raise SceneError(
            f"--set {key}=...: the value is nested more than {MAX_NESTING} levels deep"
        ) from None
    return parts, parsed


def apply_override(raw: dict[str, Any], item: str) -> None:
    """Apply one ``--set`` override to raw scene data in place."""
    parts, value = parse_override(item)
    node: Any = raw
    for i, part in enumerate(parts[:-1]):
        nxt = parts[i + 1]
        if isinstance(part, int):
            if not isinstance(node, list) or part >= len(node):
                where = ".".join(str(p) for p in parts[: i + 1])
                raise SceneError(f"--set {item!r}: {where}: no such list element")
            node = node[part]
        else:
            if not isinstance(node, dict):
                raise SceneError(f"--set {item!r}: {part}: not a table")
            node = node.setdefault(part, [] if isinstance(nxt, int) else {})
    last = parts[-1]
    if isinstance(last, int):
        if not isinstance(node, list) or last >= len(node):
            raise SceneError(f"--set {item!r}: no such list element")
        node[last] = value
    elif isinstance(node, dict):
        node[last] = value
    else:
        raise SceneError(f"--set {item!r}: {last}: not a table")


class _Builder:
    """Builds dataclasses from raw TOML data, collecting every problem."""

    def __init__(self, file: str, base_dir: Path, set_keys: list[str] | None = None):
        self.file = file
        self.base_dir = base_dir
        self.set_keys = set_keys or []
        self.problems: list[str] = []

    def fail(self, where: str, message: str) -> None:
        if any(
            where == k or where.startswith(k + ".") or k.startswith(where + ".")
            for k in self.set_keys
        ):
            message += " (from --set)"
        self.problems.append(
            f"{self.file}: {where}: {message}" if where else f"{self.file}: {message}"
        )

    def build(self, cls: type, raw: Any, where: str) -> Any:
        if not isinstance(raw, dict):
            self.fail(where, f"expected a table, got {_describe(raw)}")
            return None
        hints = typing.get_type_hints(cls)
        fields = {f.name: f for f in dataclasses.fields(cls) if not f.metadata.get("internal")}
        for key in raw:
            if key not in fields:
                kind = "section" if cls is Scene else "key"
                self.fail(_join(where, key), f"unknown {kind}{suggest(key, fields)}")
        values: dict[str, Any] = {}
        for name, f in fields.items():
            sub = _join(where, name)
            if name not in raw:
                if f.metadata.get("required"):
                    self.fail(sub, f"missing required key ({f.metadata['doc']})")
                continue
            value = self.convert(raw[name], hints[name], sub, f.metadata)
            if value is not _BAD:
                values[name] = value
        if any(f.metadata.get("required") and name not in values for name, f in fields.items()):
            return None
        try:
            return cls(**values)
        except TypeError as err:  # pragma: no cover - a schema bug, not user input
            self.fail(where, str(err))
            return None

    def convert(self, value: Any, tp: Any, where: str, meta: Any) -> Any:
        origin = typing.get_origin(tp)
        if origin in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(tp) if a is not type(None)]
            if len(args) > 1 and all(a in (str, int) for a in args):  # target.heldout
                fits = [a for a in args if type(value) is a]  # a boolean is no int
                if not fits:
                    self.fail(where, f"expected a string or an integer, got {_describe(value)}")
                    return _BAD
                return self.convert(value, fits[0], where, meta)
            return self.convert(value, args[0], where, meta)
        if dataclasses.is_dataclass(tp):
            built = self.build(tp, value, where)
            return _BAD if built is None else built
        if origin is tuple:
            args = typing.get_args(tp)
            if not isinstance(value, list):
                self.fail(where, f"expected a list, got {_describe(value)}")
                return _BAD
            if len(args) == 2 and args[1] is Ellipsis:
                items = [
                    self.convert(v, args[0], f"{where}[{i}]", meta) for i, v in enumerate(value)
                ]
            else:
                if len(value) != len(args):
                    self.fail(where, f"expected a list of {len(args)} values, got {len(value)}")
                    return _BAD
                items = [self.convert(v, a, where, meta) for v, a in zip(value, args, strict=True)]
            return _BAD if any(i is _BAD for i in items) else tuple(items)
        if origin is dict:
            _, vtype = typing.get_args(tp)
            if not isinstance(value, dict):
                self.fail(where, f"expected a table, got {_describe(value)}")
                return _BAD
            out = {}
            for k, v in value.items():
                c = self.convert(v, vtype, _join(where, k), meta)
                if c is _BAD:
                    return _BAD
                out[k] = c
            return out
        if isinstance(tp, type) and issubclass(tp, Enum):
            choices = [e.value for e in tp]
            if not isinstance(value, str) or value not in choices:
                hint = suggest(value, choices) if isinstance(value, str) else ""
                self.fail(
                    where, f"expected one of {', '.join(choices)}, got {_describe(value)}{hint}"
                )
                return _BAD
            return tp(value)
        if tp is bool:
            if not isinstance(value, bool):
                self.fail(where, f"expected true or false, got {_describe(value)}")
                return _BAD
            return value
        if tp is int:
            if isinstance(value, bool) or not isinstance(value, int):
                self.fail(where, f"expected an integer, got {_describe(value)}")
                return _BAD
            return self.check(value, where, meta)
        if tp is float:
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                self.fail(where, f"expected a number, got {_describe(value)}")
                return _BAD
            if not math.isfinite(value):
                self.fail(where, f"expected a finite number, got {value}")
                return _BAD
            return self.check(float(value), where, meta)
        if tp is str:
            if not isinstance(value, str):
                self.fail(where, f"expected a string, got {_describe(value)}")
                return _BAD
            try:
                value.encode("utf-8")  # a lone surrogate (from a command line) is not text
            except UnicodeEncodeError:
                self.fail(where, f"expected text, got {ascii(value)[:80]} (not valid Unicode)")
                return _BAD
            if meta.get("path"):
                try:
                    return str((self.base_dir / value).resolve()) if value else value
                except (OSError, ValueError, RuntimeError) as err:  # a NUL byte, a link loop
                    self.fail(where, f"not a usable path {ascii(value)[:80]} ({err})")
                    return _BAD
            return value
        raise TypeError(f"unsupported schema type {tp}")  # pragma: no cover

    def check(self, value: float, where: str, meta: Any) -> Any:
        problem = check_problem(meta.get("check") if meta else None, value)
        if problem is None:
            return value
        shown = value if isinstance(value, int) else f"{value:g}"
        self.fail(where, f"{problem}, got {shown}")
        return _BAD


_BAD = object()


def _describe(value: Any) -> str:
    if isinstance(value, bool):
        return f"{str(value).lower()} (a boolean)"
    if isinstance(value, str):
        return f"{value!r} (a string)"
    if isinstance(value, int):
        return f"{value} (an integer)"
    if isinstance(value, float):
        return f"{value:g} (a number)"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a table"
    return type(value).__name__


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _fill_kind_defaults(raw: dict[str, Any]) -> None:
    """Give the keys a scene leaves out (in its file and its --set overrides) the
    values of its ``model.kind`` in ``KIND_DEFAULTS``, in place, before the
    values are checked like any other."""
    model = raw.get("model")
    kind = model.get("kind") if isinstance(model, dict) else None
    if not isinstance(kind, str) or kind not in {k.value for k in ModelKind}:
        return  # a bad kind: the builder says so
    for key, value in KIND_DEFAULTS.get(ModelKind(kind), {}).items():
        section, name = key.split(".")
        table = raw.setdefault(section, {})
        if isinstance(table, dict) and name not in table:
            table[name] = copy.deepcopy(value)


def _resolve_defaults(scene: Scene, source: Path) -> Scene:
    """Fill defaults that depend on other keys."""
    name = scene.name or source.stem
    model = scene.model
    if model.init is None:
        init = ModelInit.GRID if model.kind is ModelKind.SPHERES else ModelInit.SPHERE
        if model.kind is ModelKind.MLP and model.activation is ModelActivation.SINE:
            init = ModelInit.RANDOM  # SIREN's initialisation: a sine net has no sphere start
        model = dataclasses.replace(model, init=init)
    if model.hash_max_resolution is None:  # about a cell per half pixel
        finest = max(2 * max(scene.cameras.resolution), model.hash_base_resolution)
        model = dataclasses.replace(model, hash_max_resolution=min(finest, MAX_HASH_RESOLUTION))
    cameras = scene.cameras
    if scene.target.kind.stored_views:  # the cameras come from target.path
        cameras = CamerasConfig(**{k: getattr(cameras, k) for k in IMAGE_CAMERA_KEYS})
    weights = {m.value: 1.0 for m in scene.supervision.mode}  # only the listed terms
    weights.update(scene.supervision.weights)
    supervision = dataclasses.replace(scene.supervision, weights=weights)
    output = scene.output
    if not output.dir:
        output = dataclasses.replace(output, dir=str(Path("runs") / name))
    return dataclasses.replace(
        scene, name=name, cameras=cameras, model=model, supervision=supervision, output=output
    )
