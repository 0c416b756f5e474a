"""Plots and animation frames (matplotlib, off-screen): a fit's loss terms,
a sweep's contact sheet and loss curves, and the image helpers of the
optimisation GIF.

Figures are plain :class:`matplotlib.figure.Figure` objects, not pyplot's: no
global backend is switched and nothing is left registered, so plotting from
the library does not disturb a caller's own matplotlib (a notebook, say).
Every figure is written by :func:`save_figure`.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import imageio.v3 as iio
import numpy as np

from warpsdf.io.files import atomic_file

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure


def new_figure(**kwargs: Any) -> Figure:
    """A matplotlib figure (``figsize``, ``dpi``, ...) that no GUI backend knows of."""
    # imported here: matplotlib takes about a second to import, and most
    # commands (and `import warpsdf`) never plot
    from matplotlib.figure import Figure

    return Figure(**kwargs)


def save_figure(fig: Figure, path: str | Path) -> None:
    """Write ``fig`` to ``path`` as PNG, atomically, and close it (also when
    the write fails)."""
    try:
        with atomic_file(path) as tmp:
            fig.savefig(tmp, format="png")
    finally:
        pyplot = sys.modules.get("matplotlib.pyplot")
        if pyplot is not None:  # a figure the caller made with pyplot: let pyplot forget it
            pyplot.close(fig)
        fig.clear()


def loss_plot(rows: list[dict[str, float]], path: str | Path, title: str = "") -> None:
    """Each loss term and the hard-mask MSE against the iteration, log scale."""
    fig = new_figure(figsize=(7.0, 4.2), dpi=110)
    ax = fig.subplots()
    if rows:
        it = np.array([r["iteration"] for r in rows])
        for key, style in (
            ("loss", dict(color="black", lw=1.8)),
            ("silhouette", dict(lw=1.0)),
            ("xyz", dict(lw=1.0)),
            ("depth", dict(lw=1.0)),
            ("eikonal", dict(lw=1.0)),
            ("smoothness", dict(lw=1.0)),
            ("mask_mse", dict(color="tab:red", lw=1.2, ls="--")),
        ):
            y = np.array([r.get(key, 0.0) for r in rows], dtype=float)
            if np.any(y > 0):
                ax.plot(it, np.where(y > 0, y, np.nan), label=key, **style)
        ax.set_yscale("log")
    ax.set_xlabel("iteration")
    ax.set_ylabel("value")
    ax.set_title(title or "loss terms and mask MSE")
    ax.grid(alpha=0.3, which="both")
    if rows:
        ax.legend(fontsize=8, loc="upper right")
    fig.tight_layout()
    save_figure(fig, path)


@dataclass(frozen=True)
class Tile:
    """One panel of a contact sheet: an image file (``no render`` where it is
    missing) under a caption in a colour."""

    image: Path
    caption: str
    colour: str = "black"


def contact_sheet(tiles: Sequence[Tile], path: str | Path, title: str) -> None:
    """The tiles' images in rows of up to four, each under its caption."""
    cols = min(4, max(1, len(tiles)))
    rows = math.ceil(len(tiles) / cols)
    fig = new_figure(figsize=(3.0 * cols, 3.3 * rows), dpi=100)
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, tile in zip(axes.ravel(), tiles, strict=False):
        if Path(tile.image).is_file():
            ax.imshow(iio.imread(tile.image))
        else:
            ax.text(0.5, 0.5, "no render", ha="center", va="center", transform=ax.transAxes)
        ax.set_title(tile.caption, fontsize=9, color=tile.colour)
    fig.suptitle(title)
    fig.tight_layout()
    save_figure(fig, path)


@dataclass(frozen=True)
class Curve:
    """One line of :func:`loss_curves`: a value per iteration (from 1)."""

    label: str
    values: Sequence[float]
    dashed: bool = False


def loss_curves(curves: Sequence[Curve], path: str | Path, title: str) -> None:
    """Every curve against the iteration, in one log-scale plot (empty curves
    are left out)."""
    fig = new_figure(figsize=(7.5, 4.5), dpi=110)
    ax = fig.subplots()
    for curve in curves:
        values = np.asarray(curve.values, dtype=float)
        if len(values):
            style = "--" if curve.dashed else "-"
            ax.plot(np.arange(1, len(values) + 1), values, style, lw=1.2, label=curve.label)
    ax.set_yscale("log")
    ax.set_xlabel("iteration")
    ax.set_ylabel("loss")
    ax.set_title(title)
    ax.grid(alpha=0.3, which="both")
    if ax.lines:
        ax.legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, path)


def upscale(image: np.ndarray, min_height: int = 160) -> np.ndarray:
    """Nearest-neighbour enlargement so small training images stay visible."""
    factor = max(1, -(-min_height // image.shape[0]))
    return np.repeat(np.repeat(image, factor, axis=0), factor, axis=1)


def side_by_side(images: list[np.ndarray], gap: int = 4) -> np.ndarray:
    """uint8 (H, W, 3) images of one height, left to right, on white gaps."""
    h = images[0].shape[0]
    parts = []
    for i, img in enumerate(images):
        if i:
            parts.append(np.full((h, gap, 3), 255, np.uint8))
        parts.append(img)
    return np.concatenate(parts, axis=1)


def error_image(
    pred_mask: np.ndarray, true_mask: np.ndarray, point_error: np.ndarray | None = None
) -> np.ndarray:
    """Float RGB in [0, 1]: red = predicted but not in the target, blue = missed,
    grey = agree; where ``point_error`` (world units) is given, agreeing pixels
    go from dark (0) to yellow (0.1 and more)."""
    img = np.zeros((*pred_mask.shape, 3), np.float32)
    both = pred_mask & true_mask
    img[both] = 0.35
    if point_error is not None:
        e = np.clip(point_error / 0.1, 0.0, 1.0)
        img[both] = np.stack([e, e, 0.15 * np.ones_like(e)], -1)[both]
    img[pred_mask & ~true_mask] = (0.9, 0.15, 0.1)
    img[~pred_mask & true_mask] = (0.15, 0.35, 0.95)
    return img
