"""Thin a run's optimization.gif for the README gallery: the prediction panel
only (the first third of each frame), every STEP-th frame, at least SIZE pixels
a side.   python docs/gallery/thin_gif.py IN.gif OUT.gif [STEP] [SIZE]"""

from __future__ import annotations

import sys

import imageio.v3 as iio
import numpy as np

from warpsdf.io.images import write_gif

if __name__ == "__main__":
    src, dst = sys.argv[1], sys.argv[2]
    step = int(sys.argv[3]) if len(sys.argv) > 3 else 2
    size = int(sys.argv[4]) if len(sys.argv) > 4 else 128
    frames = iio.imread(src)[::step, :, :, :3]
    h, w = frames.shape[1:3]
    panel = frames[:, :, : w // 3]
    k = max(1, panel.shape[1] // size)  # nearest-neighbour downscale by a whole factor, to >= size
    write_gif(
        dst, [np.ascontiguousarray(f[::k, ::k]) for f in panel] + [panel[-1][::k, ::k]] * 8, 8.0
    )
