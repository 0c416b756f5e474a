"""Plots and animation frames of a fit (matplotlib, off-screen)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from warpsdf.io.files import atomic_file


def loss_plot(rows: list[dict[str, float]], path: str | Path, title: str = "") -> None:
    """Each loss term and the hard-mask MSE against the iteration, log scale."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.0, 4.2), dpi=110)
    if rows:
        it = np.array([r["iteration"] for r in rows])
        for key, style in (
            ("loss", dict(color="black", lw=1.8)),
            ("silhouette", dict(lw=1.0)),
            ("xyz", dict(lw=1.0)),
            ("depth", dict(lw=1.0)),
            ("eikonal", dict(lw=1.0)),
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
    with atomic_file(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)


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


def error_image(pred_mask: np.ndarray, true_mask: np.ndarray, point_error=None) -> np.ndarray:
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
