"""Value rules of scene keys: the check grammar of the schema's ``check``
metadata, checks of single values by key, and the checks that involve more than
one key (cross checks, shape parameters, size limits).

Every rule on a scene value is stated once, here or in the schema's metadata;
code that takes the same value from elsewhere (a command-line option, a
cameras.json, a :class:`~warpsdf.camera.Camera`) calls :func:`key_problem` or
:func:`resolution_problem` rather than restating a range.

This module is longer than 450 lines because every rule that involves more than
one key lives here, in one place, per section; the model kinds' own size rules
(grid, hash grid) are among them.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import re
from collections.abc import Sequence
from pathlib import Path

from warpsdf.limits import (
    BYTES_PER_EIKONAL_SAMPLE,
    BYTES_PER_HASH_VALUE,
    BYTES_PER_RAY,
    BYTES_PER_STAGED_EIKONAL_SAMPLE,
    BYTES_PER_STAGED_RAY,
    BYTES_PER_STAGED_VIEW,
    BYTES_PER_UNROLLED_SAMPLE,
    MAX_ENCODING_INPUTS,
    MAX_INDEX,
    MAX_RAYS,
    MAX_RENDER_PIXELS,
    MAX_RESOLUTION,
    MAX_TILED_WIDTH,
    MAX_VIEWS,
    MEMORY_BUDGET,
    MIN_CHUNK_SLOTS,
)
from warpsdf.scene.keys import key_doc, key_field, suggest
from warpsdf.scene.schema import (
    POINT_MODES,
    SECTIONS,
    SHAPE_PARAMS,
    Background,
    CameraLayout,
    MarchGradient,
    MLPKernels,
    ModelActivation,
    ModelInit,
    ModelKind,
    RaySampling,
    Scene,
    ShapeSpec,
    ShapeType,
    SupervisionMode,
    TargetKind,
)

# A check is one clause or several joined by " and ": a bound such as "> 0" or
# "<= 65536", or an interval such as "(0, 180)" or "[-90, 90]". Sizes carry an
# upper bound from warpsdf.limits: "> 0 and <= 65536".
_INTERVAL = re.compile(r"([\[(])\s*(-?[\d.]+)\s*,\s*(-?[\d.]+)\s*([\])])")
_BOUND = re.compile(r"(>=|<=|>|<)\s*(-?[\d.]+)")
_JOIN = " and "


def _satisfies_clause(value: float, clause: str) -> bool:
    m = _BOUND.fullmatch(clause)
    if m:
        op, limit = m.group(1), float(m.group(2))
        return {
            ">": value > limit, ">=": value >= limit, "<": value < limit, "<=": value <= limit
        }[op]  # fmt: skip
    m = _INTERVAL.fullmatch(clause)
    if m:
        lo, hi = float(m.group(2)), float(m.group(3))
        ok_lo = value >= lo if m.group(1) == "[" else value > lo
        ok_hi = value <= hi if m.group(4) == "]" else value < hi
        return ok_lo and ok_hi
    raise ValueError(f"unknown check {clause!r}")  # pragma: no cover


def satisfies(value: float, check: str) -> bool:
    """Whether ``value`` meets a schema check such as ``"> 0"``, ``"(0, 180)"`` or
    ``"> 0 and <= 65536"``."""
    return all(_satisfies_clause(value, c.strip()) for c in check.split(_JOIN))


def upper_limit(check: str | None) -> float | None:
    """The largest value a check allows (its ``<=`` bound or an interval's top),
    None when it has no upper bound."""
    if check is None:
        return None
    tops = []
    for clause in check.split(_JOIN):
        clause = clause.strip()
        if (m := _BOUND.fullmatch(clause)) and m.group(1).startswith("<"):
            tops.append(float(m.group(2)))
        elif m := _INTERVAL.fullmatch(clause):
            tops.append(float(m.group(3)))
    return min(tops) if tops else None


def _clause_text(clause: str) -> str:
    return clause if clause[0] in "<>" else f"in {clause}"


def check_text(check: str) -> str:
    """A check as words after "expected a value": ``"> 0"``, ``"in (0, 180)"``,
    ``"> 0 and <= 65536"``."""
    return _JOIN.join(_clause_text(c.strip()) for c in check.split(_JOIN))


def check_problem(check: str | None, value: float) -> str | None:
    """``"expected a value in (0, 180)"`` when ``value`` fails ``check``, else None."""
    if check is None or satisfies(value, check):
        return None
    return f"expected a value {check_text(check)}"


def key_rule(key: str) -> str | None:
    """The rule on a key's values in words, e.g. ``"in (0, 180)"`` for
    ``"cameras.fov_deg"``; None when the key has no value check."""
    check = key_field(key).metadata.get("check")
    return None if check is None else check_text(check)


def key_problem(key: str, value: float) -> str | None:
    """Check one value (or one element of a list value) against a scene key's rule:
    ``"expected a value in (0, 180)"`` when ``value`` breaks it, else None. Callers
    prefix where the value came from and may add what it was."""
    return check_problem(key_field(key).metadata.get("check"), value)


def field_comment(f: dataclasses.Field) -> str:
    """A field's doc followed by its rule, as the templates write it after a key:
    ``"degrees; vertical field of view; in (0, 180)"``."""
    check = f.metadata.get("check")
    doc = f.metadata["doc"]
    return doc if check is None else f"{doc}; {check_text(check)}"


def key_help(key: str) -> str:
    """A ``--help`` text for a command-line option that sets a scene key: its
    meaning, unit and rule, e.g. ``"Vertical field of view, degrees, in (0, 180)."``."""
    unit, sep, meaning = key_doc(key).partition("; ")
    parts = [meaning, unit] if sep else [unit]
    if rule := key_rule(key):
        parts.append(rule)
    text = ", ".join(parts)
    return text[0].upper() + text[1:] + "."


def resolution_problem(resolution: Sequence[int]) -> str | None:
    """The rule on an image size (width, height): each side allowed by
    ``cameras.resolution``'s check (at most ``MAX_RESOLUTION`` pixels). Returns
    the problem in words (without the value), else None."""
    for side in resolution:
        if problem := key_problem("cameras.resolution", side):
            return problem
    return None


def _gib(size: float) -> str:
    return f"{size / (1 << 30):.3g} GiB"


def view_size_problems(scene: Scene, sizes: Sequence[tuple[int, int]]) -> list[tuple[str, str]]:
    """The limits on products of sizes, given the (width, height) of every
    training view: rays over all views, the final renders (``output.final_scale``
    times the first view), the held-out views, and the memory a fit plans
    (per-ray buffers, eikonal samples and a chunk's staged random inputs) against
    ``MEMORY_BUDGET``. Returns (key, problem) pairs; the caller names the file."""
    if not sizes:
        return []
    problems: list[tuple[str, str]] = []
    if len(sizes) > MAX_VIEWS:
        problems.append(("cameras.count", f"{len(sizes)} views; expected at most {MAX_VIEWS}"))
        return problems
    rays = sum(w * h for w, h in sizes)
    if rays > MAX_RAYS:
        w, h = sizes[0]
        what = (
            f"{len(sizes)} views of {w}x{h}"
            if all(size == (w, h) for size in sizes)
            else f"{len(sizes)} views"
        )
        problems.append(
            ("cameras.count", f"{what} are {rays:,} rays; expected at most {MAX_RAYS:,}")
        )
        return problems  # the rest would only repeat it
    out, w, h = scene.output, *sizes[0]
    scale = out.render_scale(w, h)
    fw, fh = w * scale, h * scale
    if max(fw, fh) > MAX_RESOLUTION or fw * fh > MAX_RENDER_PIXELS:
        problems.append(
            (
                "output.final_scale",
                f"final renders of {w}x{h} x {scale} are {fw}x{fh} pixels; expected "
                f"at most {MAX_RESOLUTION} a side and {MAX_RENDER_PIXELS:,} in all",
            )
        )
    if not scene.target.kind.stored_views and out.heldout_views * w * h > MAX_RAYS:
        problems.append(
            (
                "output.heldout_views",
                f"{out.heldout_views} held-out views of {w}x{h} are "
                f"{out.heldout_views * w * h:,} rays; expected at most {MAX_RAYS:,}",
            )
        )
    o = scene.optim
    batch = rays if o.batch_rays <= 0 or o.batch_rays >= rays else o.batch_rays
    samples = o.eikonal_samples if o.eikonal_weight > 0.0 else 0
    chunk = min(out.log_every, out.snapshot_every, out.checkpoint_every, o.iterations)
    slots = max(MIN_CHUNK_SLOTS, 2 * chunk)  # the chunk arrays grow by doubling
    per_slot = samples * BYTES_PER_STAGED_EIKONAL_SAMPLE
    per_slot += batch * BYTES_PER_STAGED_RAY if batch < rays else 0
    per_slot += len(sizes) * BYTES_PER_STAGED_VIEW if scene.cameras.jitter > 0.0 else 0
    step = rays * BYTES_PER_RAY + samples * BYTES_PER_EIKONAL_SAMPLE
    if step + slots * per_slot > MEMORY_BUDGET:
        key = "optim.eikonal_samples" if slots * per_slot <= step else "output.log_every"
        problems.append(
            (
                key,
                f"the fit would plan {_gib(step + slots * per_slot)} for its rays, eikonal "
                f"samples and chunks of up to {chunk} steps (the smallest of output.log_every, "
                f"snapshot_every, checkpoint_every), expected at most {_gib(MEMORY_BUDGET)}: "
                "lower optim.eikonal_samples or the output intervals",
            )
        )
    if scene.march.gradient is MarchGradient.UNROLLED:
        kept = batch * scene.march.max_steps  # every sample of every ray of a step
        planned = step + slots * per_slot + kept * BYTES_PER_UNROLLED_SAMPLE
        if kept > MAX_INDEX or planned > MEMORY_BUDGET:
            problems.append(
                (
                    "march.max_steps",
                    f'march.gradient = "unrolled" keeps every sample of a step\'s {batch:,} '
                    f"rays: {scene.march.max_steps} steps each are {kept:,} samples, "
                    f"{_gib(planned)} planned in all; expected at most {MAX_INDEX:,} samples "
                    f"and {_gib(MEMORY_BUDGET)}: lower march.max_steps or optim.batch_rays",
                )
            )
    return problems


def size_problems(scene: Scene, sizes: Sequence[tuple[int, int]]) -> list[str]:
    """Every size key's rule (its schema check, with its upper limit) applied to
    the scene's values again, for a scene changed since it loaded (``fit
    --iterations``), and :func:`view_size_problems` for the training views'
    (width, height); problem lines that name the scene file."""
    file = scene.source or scene.name or "<scene>"
    problems = []
    for section in SECTIONS:
        config = getattr(scene, section)
        for f in dataclasses.fields(config):
            check = f.metadata.get("check")
            value = getattr(config, f.name)
            values = value if isinstance(value, tuple) else (value,)
            for v in values:
                sized = check and isinstance(v, int) and not isinstance(v, bool)
                if sized and (problem := check_problem(check, v)):
                    problems.append(f"{file}: {section}.{f.name}: {problem}, got {v}")
    if not problems:
        problems += [
            f"{file}: {key}: {problem}" for key, problem in view_size_problems(scene, sizes)
        ]
    return problems


class _Problems(list):
    """Problem lines of one scene file, each ``FILE: KEY: message``."""

    def __init__(self, file: str):
        super().__init__()
        self.file = file

    def fail(self, where: str, message: str) -> None:
        self.append(f"{self.file}: {where}: {message}")


def cross_checks(scene: Scene, file: str) -> list[str]:
    """Constraints that involve more than one key, as problem lines naming ``file``."""
    problems = _Problems(file)
    from warpsdf.io.files import name_problem  # the name becomes a folder: runs/NAME

    if problem := name_problem(scene.name):
        problems.fail("name", problem)
    _target_problems(scene, problems)
    _camera_problems(scene, problems)
    _supervision_problems(scene, problems)
    _model_problems(scene, problems)
    a0, a1 = scene.optim.mask_alpha
    if a1 < a0:
        problems.fail(
            "optim.mask_alpha", f"expected [start, end] with end >= start, got [{a0:g}, {a1:g}]"
        )
    if scene.optim.ray_sampling is RaySampling.FOCUSED and scene.optim.batch_rays <= 0:
        problems.fail(
            "optim.ray_sampling", "focused draws part of each batch: set optim.batch_rays > 0"
        )
    return list(problems)


def _target_problems(scene: Scene, problems: _Problems) -> None:
    fail, t = problems.fail, scene.target
    if t.kind is TargetKind.SHAPES:
        if not t.shapes and t.preset is None:
            fail("target.shapes", "kind = shapes needs at least one shape or a preset")
        for i, shape in enumerate(t.shapes):
            problems.extend(shape_problems(shape, f"{problems.file}: target.shapes[{i}]"))
    elif t.kind is TargetKind.MESH:
        if not t.path:
            fail("target.path", "kind = mesh needs path = a mesh file (OBJ, PLY, STL, GLB)")
        elif not Path(t.path).is_file():
            fail("target.path", f"mesh file not found: {t.path}")
    elif t.kind is TargetKind.IMAGES:
        if not t.path:
            fail("target.path", "kind = images needs path = a cameras.json")
        elif not Path(t.path).is_file():
            fail("target.path", f"cameras.json not found: {t.path}")
    elif t.kind is TargetKind.TRANSFORMS:
        if not t.path:
            fail("target.path", "kind = transforms needs path = a transforms.json or its folder")
        elif not Path(t.path).exists():
            fail("target.path", f"transforms.json or folder not found: {t.path}")
    if t.kind is not TargetKind.SHAPES and (t.shapes or t.preset is not None):
        fail("target.shapes", f"shapes and preset only apply to kind = shapes, not {t.kind.value}")
    if not t.kind.stored_views and t.heldout:
        fail(
            "target.heldout",
            f"only applies to kind = images or transforms, not {t.kind.value} "
            f"(a {t.kind.value} target "
            "is judged on output.heldout_views unseen views)",
        )


def _camera_problems(scene: Scene, problems: _Problems) -> None:
    fail, c, kind = problems.fail, scene.cameras, scene.target.kind
    if not kind.stored_views:
        if c.layout is CameraLayout.FILE:
            if not c.file:
                fail("cameras.file", "layout = file needs file = a cameras.json")
            elif not Path(c.file).is_file():
                fail("cameras.file", f"cameras.json not found: {c.file}")
        if c.layout is CameraLayout.SINGLE and c.count != 1:
            fail("cameras.count", f"layout = single has exactly 1 camera, got count = {c.count}")
    if problem := resolution_problem(c.resolution):
        fail("cameras.resolution", f"{problem}, got {list(c.resolution)}")
    elif not kind.stored_views and c.layout is not CameraLayout.FILE:
        # the views' sizes are known here; a cameras.json's are checked when it is
        # read (warpsdf.targets.check_target, the Fitter)
        for key, problem in view_size_problems(scene, [tuple(c.resolution)] * c.count):
            fail(key, problem)
    bound = scene.march.bound_radius
    if not kind.stored_views and c.layout is not CameraLayout.FILE:
        if c.eye is not None:
            eye_distance = math.sqrt(sum(v * v for v in c.eye))
            if eye_distance <= bound:
                fail(
                    "cameras.eye",
                    f"the eye is inside the bounding sphere (|eye| = {eye_distance:g} <= "
                    f"march.bound_radius = {bound:g}); move it out",
                )
        else:
            look = math.sqrt(sum(v * v for v in c.look_at))
            if c.distance - look <= bound:
                fail(
                    "cameras.distance",
                    f"expected a value > march.bound_radius + |look_at| ({bound + look:g}) so "
                    f"the cameras are outside the bounding sphere, got {c.distance:g}",
                )
    if not any(v != 0 for v in c.up):
        fail("cameras.up", "expected a non-zero vector")
    if c.eye is not None and c.layout is not CameraLayout.SINGLE:
        fail("cameras.eye", "eye only applies to layout = single")
    if c.eye is not None and sum((a - b) ** 2 for a, b in zip(c.eye, c.look_at, strict=True)) == 0:
        fail("cameras.eye", "eye and look_at are the same point")


def _supervision_problems(scene: Scene, problems: _Problems) -> None:
    fail, s = problems.fail, scene.supervision
    if not s.mode:
        every = ", ".join(m.value for m in SupervisionMode)
        fail("supervision.mode", f"expected at least one of {every}")
    if len(set(s.mode)) != len(s.mode):
        fail("supervision.mode", "a mode is listed twice")
    modes = {m.value for m in s.mode}
    for key in s.weights:
        if key not in modes:
            fail(
                f"supervision.weights.{key}",
                f"not a supervised mode (mode = {sorted(modes)}){suggest(key, modes)}",
            )
    if s.background is not Background.NONE and SupervisionMode.XYZ not in s.mode:
        fail(
            "supervision.background",
            f"{s.background.value!r} is a target for the xyz term: add xyz to supervision.mode",
        )
    if scene.march.gradient is MarchGradient.UNROLLED and not POINT_MODES & set(s.mode):
        fail(
            "march.gradient",
            "'unrolled' differentiates where rays end, which only the xyz and depth terms "
            "read: add xyz or depth to supervision.mode",
        )


# Which model.init each model kind takes.
_INITS = {
    ModelKind.MLP: (ModelInit.SPHERE, ModelInit.VISUAL_HULL, ModelInit.RANDOM),
    ModelKind.SPHERES: (ModelInit.RANDOM, ModelInit.GRID),
    ModelKind.GRID: (ModelInit.SPHERE, ModelInit.VISUAL_HULL),
    ModelKind.HASHGRID: (ModelInit.SPHERE, ModelInit.VISUAL_HULL),
}


def _model_problems(scene: Scene, problems: _Problems) -> None:
    fail, m, bound = problems.fail, scene.model, scene.march.bound_radius
    if m.init not in _INITS[m.kind]:
        choices = " | ".join(sorted(i.value for i in _INITS[m.kind]))
        takers = " | ".join(k.value for k, inits in _INITS.items() if m.init in inits)
        hull = m.init is ModelInit.VISUAL_HULL
        why = f" (visual_hull starts kind = {takers} only)" if hull else ""
        fail(
            "model.init",
            f"expected {choices} for kind = {m.kind.value}, got {m.init.value!r}{why}",
        )
    _activation_problems(scene, problems)
    if m.init_radius >= bound:
        fail(
            "model.init_radius",
            f"expected a value < march.bound_radius ({bound:g}), got {m.init_radius:g}",
        )
    if m.kind is ModelKind.GRID:
        _grid_problems(scene, problems)
    if m.kind is ModelKind.HASHGRID:
        _hashgrid_problems(scene, problems)
    neural = m.kind in (ModelKind.MLP, ModelKind.HASHGRID)
    if neural and m.kernels is MLPKernels.TILED and m.hidden > MAX_TILED_WIDTH:
        fail(
            "model.kernels",
            f"tiled kernels take hidden <= {MAX_TILED_WIDTH}, got hidden = {m.hidden} "
            "(use auto or scalar)",
        )


def _activation_problems(scene: Scene, problems: _Problems) -> None:
    """A sine activation (SIREN) is for kind = mlp, and has no sphere start."""
    fail, m = problems.fail, scene.model
    if m.activation is not ModelActivation.SINE:
        return
    if m.kind is not ModelKind.MLP:
        fail(
            "model.activation",
            f"expected softplus for kind = {m.kind.value}, got 'sine' (sine is for kind = mlp)",
        )
    elif m.init is ModelInit.SPHERE:
        fail(
            "model.init",
            "expected random | visual_hull with activation = sine, got 'sphere' (a SIREN "
            "starts from its own initialisation: leave init unset or use random)",
        )


def _hashgrid_problems(scene: Scene, problems: _Problems) -> None:
    fail, m = problems.fail, scene.model
    inputs = m.hash_levels * m.hash_features
    if inputs > MAX_ENCODING_INPUTS:
        fail(
            "model.hash_features",
            f"hash_levels x hash_features = {m.hash_levels} x {m.hash_features} = {inputs} "
            f"network inputs; expected at most {MAX_ENCODING_INPUTS}",
        )
    if m.hash_max_resolution < m.hash_base_resolution:
        fail(
            "model.hash_max_resolution",
            f"expected a value >= model.hash_base_resolution ({m.hash_base_resolution}), "
            f"got {m.hash_max_resolution}",
        )
    values = inputs << m.hash_log2_size  # at most: a dense level holds fewer entries
    if values * BYTES_PER_HASH_VALUE > MEMORY_BUDGET:
        fail(
            "model.hash_log2_size",
            f"tables of up to {m.hash_levels} x 2^{m.hash_log2_size} entries x "
            f"{m.hash_features} features plan {_gib(values * BYTES_PER_HASH_VALUE)} with their "
            f"gradient and Adam state, expected at most {_gib(MEMORY_BUDGET)}",
        )


def _grid_problems(scene: Scene, problems: _Problems) -> None:
    res = list(scene.model.grid_resolution)
    if not res:
        problems.fail("model.grid_resolution", "expected at least one resolution")
    elif any(b <= a for a, b in itertools.pairwise(res)):
        problems.fail(
            "model.grid_resolution", f"expected increasing resolutions (coarse to fine), got {res}"
        )


def shape_problems(shape: ShapeSpec, where: str) -> list[str]:
    """The parameters a shape's type needs (and no others), and the limits that
    involve two of them; problem lines start with ``where``."""
    problems: list[str] = []
    wanted = SHAPE_PARAMS[shape.type]
    all_params = {k for keys in SHAPE_PARAMS.values() for k in keys}
    for key in sorted(all_params):
        given = getattr(shape, key) is not None
        if key in wanted and not given:
            problems.append(
                f"{where}.{key}: missing (type = {shape.type.value} needs {', '.join(wanted)})"
            )
        elif key not in wanted and given:
            problems.append(
                f"{where}.{key}: not a parameter of type = {shape.type.value} "
                f"(expected {', '.join(wanted)})"
            )
    sized = shape.half_size and shape.corner_radius
    if (
        shape.type is ShapeType.ROUNDED_BOX
        and sized
        and shape.corner_radius >= min(shape.half_size)
    ):
        problems.append(
            f"{where}.corner_radius: expected a value < the smallest half_size "
            f"({min(shape.half_size):g}), got {shape.corner_radius:g}"
        )
    radii = shape.major_radius and shape.minor_radius
    if shape.type is ShapeType.TORUS and radii and shape.minor_radius >= shape.major_radius:
        problems.append(
            f"{where}.minor_radius: expected a value < major_radius "
            f"({shape.major_radius:g}), got {shape.minor_radius:g}"
        )
    return problems
