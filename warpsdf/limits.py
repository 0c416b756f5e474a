"""Sizes that one compiled kernel supports (checked when a scene is loaded)."""

MAX_WIDTH = 256  # MLP hidden width
MAX_LAYERS = 8  # MLP hidden layers
MAX_FREQUENCIES = 10  # Fourier feature frequencies
MAX_RESOLUTION = 16384  # pixels per image side
MAX_RAYS = 1 << 27  # rays over all training views (memory for per-ray buffers)
# MLP width the tiled kernels take (a wider weight tile overflows shared memory)
MAX_TILED_WIDTH = 64
