"""Analytic shape targets and built-in presets (made of the same primitives)."""

from __future__ import annotations

from warpsdf.scene import CombineOp, Preset, ShapeSpec, ShapeType, TargetConfig

_SU = CombineOp.SMOOTH_UNION


def airplane_shapes() -> tuple[ShapeSpec, ...]:
    """A small airliner, nose towards +Z, wings along X, fin up +Y.

    It fits inside the unit bounding sphere (farthest point about 0.78 from the
    origin) and is built from capsules and rounded boxes joined by smooth unions.
    """
    return (
        # fuselage: a capsule along Z
        ShapeSpec(type=ShapeType.CAPSULE, radius=0.09, length=1.2, rotation_deg=(90.0, 0.0, 0.0)),
        # main wings, swept back, low on the body
        ShapeSpec(
            type=ShapeType.ROUNDED_BOX,
            half_size=(0.38, 0.02, 0.12),
            corner_radius=0.015,
            center=(0.36, -0.03, 0.02),
            rotation_deg=(0.0, 12.0, 0.0),
            op=_SU,
            k=0.04,
        ),
        ShapeSpec(
            type=ShapeType.ROUNDED_BOX,
            half_size=(0.38, 0.02, 0.12),
            corner_radius=0.015,
            center=(-0.36, -0.03, 0.02),
            rotation_deg=(0.0, -12.0, 0.0),
            op=_SU,
            k=0.04,
        ),
        # engines under the wings
        ShapeSpec(
            type=ShapeType.CAPSULE,
            radius=0.045,
            length=0.14,
            center=(0.3, -0.1, 0.12),
            rotation_deg=(90.0, 0.0, 0.0),
            op=_SU,
            k=0.02,
        ),
        ShapeSpec(
            type=ShapeType.CAPSULE,
            radius=0.045,
            length=0.14,
            center=(-0.3, -0.1, 0.12),
            rotation_deg=(90.0, 0.0, 0.0),
            op=_SU,
            k=0.02,
        ),
        # tail plane (horizontal stabiliser)
        ShapeSpec(
            type=ShapeType.ROUNDED_BOX,
            half_size=(0.27, 0.015, 0.07),
            corner_radius=0.01,
            center=(0.0, 0.02, -0.6),
            op=_SU,
            k=0.03,
        ),
        # fin, leaning back
        ShapeSpec(
            type=ShapeType.ROUNDED_BOX,
            half_size=(0.015, 0.18, 0.09),
            corner_radius=0.01,
            center=(0.0, 0.18, -0.6),
            rotation_deg=(-25.0, 0.0, 0.0),
            op=_SU,
            k=0.03,
        ),
    )


PRESETS = {Preset.AIRPLANE: airplane_shapes}


def target_shapes(config: TargetConfig) -> tuple[ShapeSpec, ...]:
    """The preset's shapes (if any) followed by the scene's own shapes."""
    shapes: tuple[ShapeSpec, ...] = ()
    if config.preset is not None:
        shapes = PRESETS[config.preset]()
    return shapes + tuple(config.shapes)
