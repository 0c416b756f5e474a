"""A fit step's inputs: the training targets flattened into per-ray arrays,
the random inputs of a chunk of steps (camera shake, ray batches, eikonal
points) drawn on the host up front and uploaded once, and the kernels that
copy one step's slot of them into the step's buffers on the device (the
slot and the iteration are device counters, set per chunk and advanced per
step, so a captured graph replays each step with its own inputs).

Random draws keep the numpy order of one step at a time (camera shake, ray
batch, eikonal points), so a chunk of k steps draws what k single steps
would, and a resumed fit continues the same stream. With focused sampling
(:mod:`warpsdf.fit.focus`) a batch is its uniform rays, then the uniform
numbers of its focused draws, which a kernel turns into rays on the device;
each ray's share of the loss is in ``weights``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

import numpy as np
import warp as wp

from warpsdf.camera import Camera, jitter_cameras
from warpsdf.camera.rays import (
    FRAME_BACK,
    FRAME_EYE,
    FRAME_RIGHT,
    FRAME_UP,
    DeviceCameras,
    camera_frames,
    camera_of_ray,
    device_rays,
    pixel_direction,
)
from warpsdf.errors import WarpsdfError
from warpsdf.fields.base import FD_GRADIENT_STEP, TETRAHEDRON
from warpsdf.fit.focus import FocusSampler, silhouette_edges
from warpsdf.sampling import random_in_ball
from warpsdf.scene import RaySampling, Scene, SupervisionMode
from warpsdf.targets import TargetView
from warpsdf.targets.views import missing_image

# Depth target of rays without a surface: finite, so the kernels never see inf.
NO_DEPTH = 1e6


class RayBatch(IntEnum):
    """Which rays a step uses."""

    EVERY = 0  # every ray of every training view, in order
    SAMPLED = 1  # a sorted random subset (optim.batch_rays), targets gathered


class RaySource(IntEnum):
    """Where a step's rays come from."""

    STILL = 0  # the cameras as they are: rays made once
    SHAKEN = 1  # each step's shaken camera frames: rays made per step


@dataclass
class FlatTargets:
    """Per-ray target arrays of all training views, flattened in camera order."""

    mask: np.ndarray  # (R,) float32, 1 on the object
    xyz: np.ndarray  # (R, 3) float32, world units (0 where unused)
    depth: np.ndarray  # (R,) float32, world units (NO_DEPTH where there is no surface)


def flatten_targets(views: list[TargetView], modes: set[SupervisionMode]) -> FlatTargets:
    """Check that every view has what the supervision needs
    (:func:`missing_image`: the message names the view's cameras.json entry)
    and flatten them."""
    masks, xyzs, depths = [], [], []
    for i, v in enumerate(views):
        if missing := missing_image(v, i, modes):
            raise WarpsdfError(missing[1])
        n = v.camera.num_rays
        masks.append(v.mask.reshape(n).astype(np.float32))
        xyzs.append(
            np.zeros((n, 3), np.float32)
            if v.xyz is None
            else v.xyz.reshape(n, 3).astype(np.float32)
        )
        d = np.zeros(n, np.float32) if v.depth is None else v.depth.reshape(n).astype(np.float32)
        depths.append(np.where(np.isfinite(d), d, NO_DEPTH).astype(np.float32))
    return FlatTargets(np.concatenate(masks), np.concatenate(xyzs), np.concatenate(depths))


class Staging:
    """A chunk array on the device and where the host writes it: the array
    itself on the CPU, a pinned host twin on CUDA (uploaded with one async copy)."""

    def __init__(self, shape: tuple[int, ...], dtype, device):
        self.device_array = wp.zeros(shape, dtype=dtype, device=device)
        self.host_array = (
            self.device_array
            if device.is_cpu
            else wp.zeros(shape, dtype=dtype, device="cpu", pinned=True)
        )
        self.host = self.host_array.numpy()  # a view, written in place
        self.row_size = int(np.prod(shape[1:], dtype=np.int64))

    def upload(self, rows: int) -> None:
        if rows > self.device_array.shape[0]:
            raise ValueError(f"upload of {rows} rows into {self.device_array.shape[0]}")
        if self.host_array is not self.device_array:
            wp.copy(self.device_array, self.host_array, count=rows * self.row_size)

    def download(self) -> np.ndarray:
        """The whole array on the host (waits for the device)."""
        if self.host_array is not self.device_array:
            wp.copy(self.host_array, self.device_array)
            wp.synchronize_device(self.device_array.device)
        return self.host


@wp.kernel(enable_backward=False)
def start_clock_kernel(
    first: int,  # 0-based iteration of the chunk's first step
    iteration_out: wp.array(dtype=int),  # (1,) set to first
    slot_out: wp.array(dtype=int),  # (1,) set to 0
):
    """One thread (dim = 1). Not differentiable."""
    iteration_out[0] = first
    slot_out[0] = 0


@wp.kernel(enable_backward=False)
def advance_clock_kernel(
    iteration_out: wp.array(dtype=int),  # (1,) 0-based iteration, advanced by one
    slot_out: wp.array(dtype=int),  # (1,) step within the chunk, advanced by one
):
    """One thread (dim = 1), last in every step. Not differentiable."""
    iteration_out[0] = iteration_out[0] + 1
    slot_out[0] = slot_out[0] + 1


@wp.kernel(enable_backward=False)
def stage_rays_kernel(
    slot: wp.array(dtype=int),  # (1,) this step's row in the chunk arrays
    ray_index: wp.array2d(dtype=int),  # (K, B) ray ids into the flattened views (SAMPLED)
    frames: wp.array3d(dtype=wp.vec3d),  # (K, C, 4) eye, ray frame per camera (SHAKEN)
    camera_first: wp.array(dtype=int),  # (C,) id of each camera's first ray
    camera_width: wp.array(dtype=int),  # (C,) pixels
    camera_height: wp.array(dtype=int),  # (C,) pixels
    camera_tan_half: wp.array(dtype=wp.float64),  # (C,) ndc scale t (Camera.tan_half)
    batch: int,  # a RayBatch
    source: int,  # a RaySource
    all_origins: wp.array(dtype=wp.vec3),  # (R,) every ray of the still cameras, world units
    all_dirs: wp.array(dtype=wp.vec3),  # (R,) unit vectors
    all_mask: wp.array(dtype=float),  # (R,) target mask of every ray
    all_xyz: wp.array(dtype=wp.vec3),  # (R,) target surface points, world units
    all_depth: wp.array(dtype=float),  # (R,) target ray distances, world units
    origins_out: wp.array(dtype=wp.vec3),  # (B,) this step's rays, world units
    dirs_out: wp.array(dtype=wp.vec3),  # (B,) unit vectors
    mask_out: wp.array(dtype=float),  # (B,) written only for SAMPLED
    xyz_out: wp.array(dtype=wp.vec3),  # (B,) written only for SAMPLED
    depth_out: wp.array(dtype=float),  # (B,) written only for SAMPLED
):
    """One thread per ray of the step (dim = B). Not differentiable. A shaken
    camera's ray is :func:`warpsdf.camera.rays.pixel_direction` of the step's
    frame."""
    r = wp.tid()
    s = slot[0]
    ray = r
    if batch == int(RayBatch.SAMPLED):
        ray = ray_index[s, r]
    if source == int(RaySource.SHAKEN):
        c = camera_of_ray(ray, camera_first, camera_first.shape[0])
        eye = frames[s, c, FRAME_EYE]
        origins_out[r] = wp.vec3(float(eye[0]), float(eye[1]), float(eye[2]))
        dirs_out[r] = pixel_direction(
            ray - camera_first[c], camera_width[c], camera_height[c], camera_tan_half[c],
            frames[s, c, FRAME_RIGHT], frames[s, c, FRAME_UP], frames[s, c, FRAME_BACK],
        )  # fmt: skip
    else:
        origins_out[r] = all_origins[ray]
        dirs_out[r] = all_dirs[ray]
    if batch == int(RayBatch.SAMPLED):
        mask_out[r] = all_mask[ray]
        xyz_out[r] = all_xyz[ray]
        depth_out[r] = all_depth[ray]


@wp.kernel(enable_backward=False)
def stage_points_kernel(
    slot: wp.array(dtype=int),  # (1,) this step's row in the chunk arrays
    all_points: wp.array2d(dtype=wp.vec3),  # (K, 4E) eikonal tetrahedron points per step
    points_out: wp.array(dtype=wp.vec3),  # (4E,) this step's, world units
):
    """One thread per point (dim = 4E). Not differentiable."""
    i = wp.tid()
    points_out[i] = all_points[slot[0], i]


class StepInputs:
    """Everything a step reads besides the field: its rays and targets
    (``origins``, ``dirs``, ``mask``, ``xyz``, ``depth``, each (B,)), each
    ray's share of the loss (``weights``, (B,): 1/B, or the importance weights
    of focused sampling), its eikonal points (``eik_points``, (4E,)), and the
    chunk arrays they are staged from. Allocated once; chunk arrays grow with
    :meth:`reserve`. ``focus`` is the :class:`FocusSampler` of a focused fit
    (else None); the first ``uniform_count`` rays of a batch are uniform."""

    def __init__(self, scene: Scene, cameras: list[Camera], targets: FlatTargets, device):
        self.scene = scene
        self.cameras = cameras
        self.device = d = device
        total = len(targets.mask)
        want = scene.optim.batch_rays
        self.total_rays = total
        self.batch = total if want <= 0 or want >= total else want
        self.ray_batch = RayBatch.SAMPLED if self.batch < total else RayBatch.EVERY
        self.ray_source = RaySource.SHAKEN if scene.cameras.jitter > 0.0 else RaySource.STILL
        self.eikonal_samples = scene.optim.eikonal_samples
        # points are drawn only when the term counts (the rng stream depends on it)
        self.uses_eikonal = self.eikonal_samples > 0 and scene.optim.eikonal_weight > 0.0
        # tetrahedron points: 4 per sample (one sample's worth of room when unused)
        self.eik_point_count = 4 * max(self.eikonal_samples, 1)
        self.tetra = np.asarray(TETRAHEDRON, np.float32) * FD_GRADIENT_STEP
        n = self.batch
        sampled = self.ray_batch is RayBatch.SAMPLED
        # the step's buffers
        self.origins = wp.empty(n, dtype=wp.vec3, device=d)
        self.dirs = wp.empty(n, dtype=wp.vec3, device=d)
        self.mask = wp.empty(n, dtype=float, device=d)
        self.xyz = wp.empty(n, dtype=wp.vec3, device=d)
        self.depth = wp.empty(n, dtype=float, device=d)
        self.eik_points = wp.empty(self.eik_point_count, dtype=wp.vec3, device=d)
        self.weights = wp.full(n, 1.0 / n, dtype=float, device=d)
        # what never changes, uploaded once
        if sampled:
            self.all_mask = wp.array(targets.mask, dtype=float, device=d)
            self.all_xyz = wp.array(targets.xyz, dtype=wp.vec3, device=d)
            self.all_depth = wp.array(targets.depth, dtype=float, device=d)
        else:
            self.mask.assign(targets.mask)
            self.xyz.assign(targets.xyz)
            self.depth.assign(targets.depth)
            self.all_mask, self.all_xyz, self.all_depth = self.mask, self.xyz, self.depth
        self.device_cameras = DeviceCameras.upload(cameras, d)
        if self.ray_source is RaySource.SHAKEN:  # rays made per step from the shaken frames
            self.all_origins, self.all_dirs = self.origins, self.dirs  # unused
        elif sampled:
            self.all_origins, self.all_dirs = device_rays(cameras, d)
        else:  # still cameras, every ray: the step's rays are these
            self.origins, self.dirs = device_rays(cameras, d)
            self.all_origins, self.all_dirs = self.origins, self.dirs
        self.focus: FocusSampler | None = None
        if scene.optim.ray_sampling is RaySampling.FOCUSED:
            if not sampled:
                raise WarpsdfError(
                    f"optim.ray_sampling = focused: optim.batch_rays ({want}) must be below "
                    f"the training rays ({total}); every ray is marched already"
                )
            edges = silhouette_edges(targets.mask, [(c.width, c.height) for c in cameras])
            self.focus = FocusSampler(edges, self.all_mask, n, scene.optim.focus_share, d)
        self.uniform_count = n if self.focus is None else self.focus.uniform
        self.capacity = 0  # chunk slots; the chunk arrays are allocated by reserve

    @property
    def sampled(self) -> bool:
        """Whether each step uses a random subset of the rays."""
        return self.ray_batch is RayBatch.SAMPLED

    @property
    def needs_staging(self) -> bool:
        """Whether the step's rays or targets change from step to step."""
        return self.ray_source is RaySource.SHAKEN or self.ray_batch is RayBatch.SAMPLED

    def reserve(self, k: int) -> bool:
        """Chunk arrays with a slot per step for chunks of up to ``k`` steps.
        Returns whether they were replaced (a captured graph must be dropped)."""
        if k <= self.capacity:
            return False
        cap = max(k, 2 * self.capacity, 16)
        d, c, e = self.device, len(self.cameras), self.eik_point_count
        sampled = self.ray_batch is RayBatch.SAMPLED
        shaken = self.ray_source is RaySource.SHAKEN
        self.index = Staging((cap, self.batch) if sampled else (1, 1), int, d)
        self.frames = Staging((cap, c, 4) if shaken else (1, 1, 4), wp.vec3d, d)
        self.eik_all = Staging((cap, e) if self.uses_eikonal else (1, 1), wp.vec3, d)
        focused = self.focus.focused if self.focus is not None else 0
        self.focus_u = Staging((cap, focused) if focused else (1, 1), wp.float64, d)
        self.capacity = cap
        return True

    def draw(self, k: int, rng: np.random.Generator) -> None:
        """Draw the random inputs of the next ``k`` steps into their slots (numpy
        rng, in the order one step at a time draws them: camera shake, ray batch,
        eikonal points) and upload them in one copy per array."""
        scene = self.scene
        sampled = self.ray_batch is RayBatch.SAMPLED
        shaken = self.ray_source is RaySource.SHAKEN
        for s in range(k):
            if shaken:
                shaken_cameras = jitter_cameras(self.cameras, scene.cameras.jitter, rng)
                self.frames.host[s] = camera_frames(shaken_cameras)
            if sampled:
                u = self.uniform_count
                self.index.host[s, :u] = np.sort(rng.choice(self.total_rays, u, replace=False))
                if u < self.batch:  # focused: the rays come from these on the device
                    self.focus_u.host[s] = rng.random(self.batch - u)
            if self.uses_eikonal:
                v = random_in_ball(rng, self.eikonal_samples, scene.march.bound_radius)
                self.eik_all.host[s] = (v[:, None, :] + self.tetra[None]).reshape(-1, 3)
        # only what this fit uses: the others are 1-row placeholders (a k-row
        # copy from one would overrun it)
        if shaken:
            self.frames.upload(k)
        if sampled:
            self.index.upload(k)
            if self.uniform_count < self.batch:
                self.focus_u.upload(k)
        if self.uses_eikonal:
            self.eik_all.upload(k)

    def stage(self, slot: wp.array) -> None:
        """Copy the step's slot (``slot[0]``) of the chunk arrays into the step's
        buffers: launches only, graph-capturable."""
        dc = self.device_cameras
        if self.focus is not None:
            self.focus.draw_into(slot, self.focus_u.device_array, self.index.device_array,
                                 self.weights)  # fmt: skip
        if self.needs_staging:
            wp.launch(
                stage_rays_kernel,
                dim=self.batch,
                inputs=[
                    slot, self.index.device_array, self.frames.device_array, dc.first,
                    dc.width, dc.height, dc.tan_half, int(self.ray_batch), int(self.ray_source),
                    self.all_origins, self.all_dirs, self.all_mask, self.all_xyz, self.all_depth,
                ],
                outputs=[self.origins, self.dirs, self.mask, self.xyz, self.depth],
                device=self.device,
            )  # fmt: skip
        if self.uses_eikonal:
            wp.launch(
                stage_points_kernel,
                dim=self.eik_points.shape[0],
                inputs=[slot, self.eik_all.device_array],
                outputs=[self.eik_points],
                device=self.device,
            )

    def observe(self, slot: wp.array, hit_t: wp.array) -> None:
        """After the step's march (``hit_t``, (B,)): a focused fit keeps its
        rays' hard predictions (launches only)."""
        if self.focus is not None:
            self.focus.observe(slot, self.index.device_array, hit_t)

    def drawn_index(self, row: int = 0) -> np.ndarray:
        """Ray ids of chunk row ``row`` as staged (focused draws included; reads
        the device: for tests)."""
        return self.index.device_array.numpy()[row].astype(np.int64)

    def focus_state(self) -> dict[str, np.ndarray]:
        """A focused fit's kept predictions, for :meth:`Fitter.state` (else none)."""
        return {} if self.focus is None else {"focus_predicted": self.focus.state()}

    def load_focus_state(self, state: dict[str, np.ndarray]) -> None:
        """Predictions from :meth:`focus_state` (none in the state: none seen yet)."""
        if self.focus is not None:
            self.focus.load(state.get("focus_predicted"))
