"""Every size limit of warpsdf: the one home of these numbers.

Each size a scene (or a command line) can set has an upper limit here, for one
of three reasons, said next to it:

* memory: the buffers that grow with the size must fit in ``MEMORY_BUDGET``
  (bytes per ray, per sample, per pixel times the count);
* the kernels: a count passed to a kernel, or a product of counts that indexes
  an array, must stay far inside int32 (``INT32_MAX``); every limit below keeps
  each such product under ``MAX_INDEX``;
* what one compiled kernel supports (fixed-length vectors and tiles).

The scene schema states each key's limit in its ``check`` metadata
(:mod:`warpsdf.scene.schema`), so ``warpsdf validate``, ``--help`` texts,
``warpsdf new`` templates and load errors show it; the loader's cross checks
(:func:`warpsdf.scene.cross_checks`) add the limits on products of keys (rays
over all views, final render pixels, a chunk's staged samples). Nothing else
writes the numbers down.
"""

import math

INT32_MAX = 2**31 - 1  # the largest count or index a kernel takes
MAX_INDEX = 1 << 30  # the largest product of counts allowed anywhere (half of int32)

# Memory one fit or render may plan to use for the buffers that grow with a
# size (device and host together). Sizes past these limits are refused when the
# scene loads, instead of running out of memory (or time) part way through.
MEMORY_BUDGET = 16 << 30  # bytes

# Kernel-supported sizes.
MAX_WIDTH = 256  # MLP hidden width
MAX_LAYERS = 8  # MLP hidden layers
MAX_FREQUENCIES = 10  # Fourier feature frequencies
# MLP width the tiled kernels take (a wider weight tile overflows shared memory)
MAX_TILED_WIDTH = 64

# Rays. A training ray holds about this many bytes: its origin, direction and
# targets (mask, xyz, depth; twice when batched), the march outputs (RayHits),
# the sample point, value, gradient and detached value, and the host's target
# images it came from.
BYTES_PER_RAY = 128
MAX_RAYS = MEMORY_BUDGET // BYTES_PER_RAY  # rays over all training views (= 2**27)
MAX_RESOLUTION = 16384  # pixels per image side (a training view or a final render)
# Pixels of one rendered image (a final render at output.final_scale, a held-out
# view): the renderer traces in tiles, but the image and its traced points stay
# in memory, about BYTES_PER_RAY a pixel.
MAX_RENDER_PIXELS = MAX_RAYS
# output.final_scale: a 1x1 training view at this scale still fits
# MAX_RENDER_PIXELS (the cross check on resolution x final_scale is the real rule).
MAX_FINAL_SCALE = math.isqrt(MAX_RENDER_PIXELS)

# Views: each holds a camera on the host and in the device tables, and the
# held-out ones a traced image each (their pixels count against MAX_RAYS).
MAX_VIEWS = 1 << 14

# Eikonal samples: 4 tetrahedron points each, every one a staged point per
# chunk slot (12 bytes) and, per step, a point, value, gradient and detached
# value (24 bytes).
BYTES_PER_EIKONAL_SAMPLE = 4 * 24
BYTES_PER_STAGED_EIKONAL_SAMPLE = 4 * 12
MAX_EIKONAL_SAMPLES = 1 << 22  # 4 Mi samples: 384 MiB a step, 192 MiB a chunk slot

# A chunk of steps stages every step's random inputs up front (one slot a step,
# at least MIN_CHUNK_SLOTS): its eikonal points, its ray batch (4 bytes a ray)
# and its shaken camera frames (4 double vectors a view). A chunk ends at the
# smallest of output.log_every, snapshot_every and checkpoint_every, so that
# many slots must fit in MEMORY_BUDGET (a cross check).
MIN_CHUNK_SLOTS = 16
BYTES_PER_STAGED_RAY = 4
BYTES_PER_STAGED_VIEW = 4 * 24

# Iterations: the learning-rate and sharpness schedules hold one entry per
# iteration on the device, and the log keeps one row (about 1 KiB) per
# iteration in memory until the fit ends, so a million iterations plan about
# 1 GiB of log. The iteration counters are int32 on the device.
MAX_ITERATIONS = 1_000_000

# Sphere-tracing steps per ray: a loop count in the march kernel. Each step
# costs one field evaluation of every ray, so this is a limit on time (a ray
# still marching after 65536 steps is grazing a surface it will not resolve).
MAX_MARCH_STEPS = 1 << 16

# A march differentiated through every step (march.gradient = "unrolled")
# keeps each sample of each ray of a step: its point (12 bytes) and the reverse
# sweep's adjoint (4 bytes). The samples of a step's rays (batch x max_steps)
# must fit MEMORY_BUDGET and index an array within MAX_INDEX (a cross check).
BYTES_PER_UNROLLED_SAMPLE = 16

# Spheres of a sphere-set model: 4 parameters each, with their gradient and
# Adam state (5 copies), and every field evaluation loops over all of them
# (time: rays x spheres evaluations a step).
MAX_SPHERES = 1 << 16

# Voxel-grid model (model.kind = "grid"): (n + 1)^3 values for n cells a side
# of its finest stage, each a float32 in the parameters, their gradient, Adam's
# two moments, the three backups of an update and the smoothness term's
# Laplacian (8 on the device), a resampling copy when a stage starts, and the
# checkpoint's host copies of the parameters and moments: about this many
# bytes a lattice point. The limit is the largest n whose lattice fits
# MEMORY_BUDGET (690, all 16 GiB of it; 512 plans 6.5 GiB).
BYTES_PER_GRID_VOXEL = 52
MAX_GRID_RESOLUTION = math.floor((MEMORY_BUDGET // BYTES_PER_GRID_VOXEL) ** (1.0 / 3.0)) - 1

# Hash-grid model (model.kind = "hashgrid"): its tables hold L levels of at most
# 2^T entries of F features, each a float32 in the parameters, their gradient,
# Adam's two moments and the three backups of an update (7 on the device), and
# the checkpoint's host copies of the parameters and moments: about this many
# bytes a table value; the tables must fit MEMORY_BUDGET (a cross check). The
# kernels read each level's entry count from float32 meta (exact below 2^24:
# MAX_HASH_LOG2_SIZE) and its features into the MLP's first-layer input vector
# (L F <= MAX_ENCODING_INPUTS, the Fourier features' 63 values); a level's
# resolution is a float32 position, which keeps 1/256 of a cell at 65536.
BYTES_PER_HASH_VALUE = 40
MAX_HASH_LEVELS = 32
MAX_HASH_FEATURES = 8
MAX_HASH_LOG2_SIZE = 24
MIN_HASH_LOG2_SIZE = 4
MAX_ENCODING_INPUTS = 3 + 6 * MAX_FREQUENCIES
MAX_HASH_RESOLUTION = 1 << 16

# Marching-cubes grid of mesh.ply: a float per grid point (1024^3 = 4 GiB).
MAX_MESH_RESOLUTION = 1024
MIN_MESH_RESOLUTION = 8

# Visual-hull lattice (warpsdf carve, model.init = "visual_hull"): per lattice
# point the occupancy (a byte, on the device and the host), the distance
# transform's two float32 results, its second buffer and scratch (an int and a
# float), the signed distance (device and host) and a host staging copy: at
# most this many bytes at once. 512^3 plans 4 GiB (1024^3 would be 32 GiB,
# over MEMORY_BUDGET) and takes minutes on a CPU.
BYTES_PER_CARVE_VOXEL = 32
MAX_CARVE_RESOLUTION = 512
MIN_CARVE_RESOLUTION = MIN_MESH_RESOLUTION  # the hull's mesh is marching cubes of its lattice

# Files and names (io/files): a text input (a scene, a sweep file, a
# cameras.json, a run's metrics.json) is read whole into memory, so it may be at
# most this big; a scene or sweep name becomes a folder name (runs/NAME), so it
# is one plain file name of at most this many characters (and NAME_MAX bytes).
MAX_TEXT_BYTES = 16 << 20  # 16 MiB
MAX_NAME_CHARS = 120
NAME_MAX_BYTES = 255  # the longest file name most file systems take
# Lists and tables nested deeper than this in a TOML or JSON input are refused
# (no warpsdf file nests more than 5 deep; the readers' recursion stays bounded).
MAX_NESTING = 32

# Every limit keeps its products inside int32.
assert MAX_RAYS <= MAX_INDEX
assert MAX_RESOLUTION * MAX_RESOLUTION <= MAX_INDEX
assert 4 * MAX_EIKONAL_SAMPLES <= MAX_INDEX
assert MAX_ITERATIONS * 2 <= MAX_INDEX
assert MAX_MARCH_STEPS * 64 <= MAX_INDEX
assert MAX_SPHERES * 4 <= MAX_INDEX
assert MAX_MESH_RESOLUTION**3 <= MAX_INDEX
assert MAX_ENCODING_INPUTS * (1 << MAX_HASH_LOG2_SIZE) <= MAX_INDEX  # the tables' floats
assert BYTES_PER_GRID_VOXEL * (MAX_GRID_RESOLUTION + 1) ** 3 <= MEMORY_BUDGET
assert (MAX_GRID_RESOLUTION + 1) ** 3 + 1 <= MAX_INDEX
assert BYTES_PER_CARVE_VOXEL * MAX_CARVE_RESOLUTION**3 <= MEMORY_BUDGET
