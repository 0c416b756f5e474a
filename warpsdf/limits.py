"""Sizes that one compiled kernel supports: the one home of these numbers.

The scene loader checks them (:func:`warpsdf.scene.cross_checks`,
:func:`warpsdf.scene.resolution_problem`), the scene docs and ``warpsdf new``
templates quote them, and the kernels size their fixed-length vectors and tiles
with them; nothing else writes the numbers down.
"""

MAX_WIDTH = 256  # MLP hidden width
MAX_LAYERS = 8  # MLP hidden layers
MAX_FREQUENCIES = 10  # Fourier feature frequencies
MAX_RESOLUTION = 16384  # pixels per image side
MAX_RAYS = 1 << 27  # rays over all training views (memory for per-ray buffers)
# MLP width the tiled kernels take (a wider weight tile overflows shared memory)
MAX_TILED_WIDTH = 64
