"""Focused ray sampling (``optim.ray_sampling = "focused"``): each step draws a
share of its ray batch from a *focus set*, where the fit is wrong or the
target's outline is, the rest uniformly, and weights every ray so that the
loss stays an unbiased estimate of the full-image loss.

The focus set F holds the training rays (all views, flattened) whose pixel

* lies on the target's silhouette edge: its target mask differs from a
  4-neighbour's in the same view (static, :func:`silhouette_edges`), or
* was last predicted wrong: the hard prediction (``hit_t >= 0``) the last
  march of that pixel gave differs from the target mask. Predictions are kept
  on the device (``predicted``, one byte a ray) and updated from every step's
  own march; a pixel that no step has marched yet counts as wrong.

Of a step's B rays, n_f = floor(focus_share B) (at most B - 1) are focused and
n_u = B - n_f uniform:

* the n_u uniform rays are the host's draw, as in uniform sampling: sorted,
  without replacement, drawn up front for the chunk (numpy, from the seed);
* the n_f focused rays are drawn with replacement, uniformly over F, on the
  device: the host draws their uniform numbers u in [0, 1) up front, and a
  kernel takes the floor(u |F|)-th ray of F (per-tile counts, their prefix
  sum, a binary search and a scan of one tile). A chunk stays one captured
  graph with no readback, and its draws follow from the seed. While F is empty
  the focused draws are uniform over all rays.

Weights (multiple importance sampling, balance heuristic): ray r's share of
the loss is

    w_r = 1 / (n_u + n_f R q_r),   q_r = [r in F] / |F|  (1/R while F is empty)

over R training rays. A uniform draw picks r with probability 1/R (without
replacement too, marginally), a focused one with q_r, so for any per-ray loss l

    E[sum_i w_i l_i] = sum_r (n_u / R + n_f q_r) w_r l_r = (1/R) sum_r l_r,

the full-image mean, whatever F is. Uniform sampling is n_f = 0: w = 1/B. F is
refreshed at the start of every step (before its draw) and the weights use the
F the draw used. The step's IoU and mask error come from its n_u uniform rays
alone (an unbiased sample of the image; the focused ones are mostly wrong by
construction).
"""

from __future__ import annotations

import math

import numpy as np
import warp as wp

# predicted[r] of a pixel that no step has marched yet
UNSEEN = -1
# Rays per tile of the focus counts: at least MIN_TILE, and as many as keep the
# tiles at most MAX_TILES (their prefix sum runs on one thread).
MIN_TILE = 256
MAX_TILES = 4096


def focused_count(batch: int, share: float) -> int:
    """Focused rays of a batch of ``batch``: floor(share * batch), leaving at
    least one uniform ray (the weights need the uniform draws to cover every ray)."""
    return max(0, min(int(math.floor(share * batch)), batch - 1))


def silhouette_edges(mask: np.ndarray, sizes: list[tuple[int, int]]) -> np.ndarray:
    """(R,) bool: rays whose pixel's target mask (> 0.5) differs from a
    4-neighbour's in its view. ``mask``: every view's mask flattened row-major,
    view after view; ``sizes``: each view's (width, height)."""
    edges, start = [], 0
    for width, height in sizes:
        m = mask[start : start + width * height].reshape(height, width) > 0.5
        e = np.zeros_like(m)
        across = m[:, 1:] != m[:, :-1]
        e[:, 1:] |= across
        e[:, :-1] |= across
        down = m[1:, :] != m[:-1, :]
        e[1:, :] |= down
        e[:-1, :] |= down
        edges.append(e.reshape(-1))
        start += width * height
    return np.concatenate(edges)


@wp.func
def in_focus(
    r: int,
    edge: wp.array(dtype=wp.int8),
    predicted: wp.array(dtype=wp.int8),
    target_mask: wp.array(dtype=float),
) -> int:
    """1 when ray r is in the focus set (module docstring), else 0."""
    if int(edge[r]) != 0:
        return 1
    p = int(predicted[r])
    if p == UNSEEN:
        return 1
    return wp.where(p != wp.where(target_mask[r] > 0.5, 1, 0), 1, 0)


@wp.kernel(enable_backward=False)
def focus_count_kernel(
    edge: wp.array(dtype=wp.int8),  # (R,) 1 on the target's silhouette edges
    predicted: wp.array(dtype=wp.int8),  # (R,) last hard prediction: 1 hit, 0 miss, UNSEEN
    target_mask: wp.array(dtype=float),  # (R,) 1 on the object
    tile: int,  # rays per tile
    tile_start_out: wp.array(dtype=int),  # (T + 1,) entry t + 1 := focus rays in tile t
):
    """One thread per tile (dim = T). Not differentiable."""
    t = wp.tid()
    rays = edge.shape[0]
    count = int(0)
    for r in range(t * tile, wp.min((t + 1) * tile, rays)):
        count += in_focus(r, edge, predicted, target_mask)
    tile_start_out[t + 1] = count
    if t == 0:
        tile_start_out[0] = 0


@wp.kernel(enable_backward=False)
def focus_prefix_kernel(
    tile_start_out: wp.array(dtype=int),  # (T + 1,) in: counts at t + 1; out: exclusive sums
):
    """One thread (dim = 1), in place: tile_start[t] := focus rays before tile
    t, so tile_start[T] = |F|. Not differentiable."""
    for t in range(1, tile_start_out.shape[0]):
        tile_start_out[t] = tile_start_out[t] + tile_start_out[t - 1]


@wp.kernel(enable_backward=False)
def focus_draw_kernel(
    slot: wp.array(dtype=int),  # (1,) this step's row in the chunk arrays
    uniforms: wp.array2d(dtype=wp.float64),  # (K, n_f) host-drawn u in [0, 1)
    edge: wp.array(dtype=wp.int8),  # (R,)
    predicted: wp.array(dtype=wp.int8),  # (R,)
    target_mask: wp.array(dtype=float),  # (R,)
    tile_start: wp.array(dtype=int),  # (T + 1,) exclusive prefix of focus counts
    tile: int,  # rays per tile
    first: int,  # n_u: the focused rays fill columns first.. of the batch
    ray_index_out: wp.array2d(dtype=int),  # (K, B) ray ids; columns first.. written
):
    """One thread per focused ray (dim = n_f). Not differentiable. Ray j is the
    floor(u_j |F|)-th ray of F in ray order (uniform over F), or
    floor(u_j R)-th of all R rays while F is empty."""
    j = wp.tid()
    s = slot[0]
    u = uniforms[s, j]
    rays = edge.shape[0]
    tiles = tile_start.shape[0] - 1
    total = tile_start[tiles]
    ray = int(0)
    if total == 0:
        ray = wp.min(int(u * wp.float64(rays)), rays - 1)
    else:
        k = wp.min(int(u * wp.float64(total)), total - 1)
        lo = int(0)
        hi = tiles  # tile_start[lo] <= k < tile_start[hi]
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if tile_start[mid] <= k:
                lo = mid
            else:
                hi = mid
        rank = k - tile_start[lo]
        ray = lo * tile
        for r in range(lo * tile, wp.min((lo + 1) * tile, rays)):
            if in_focus(r, edge, predicted, target_mask) == 1:
                if rank == 0:
                    ray = r
                    break
                rank -= 1
    ray_index_out[s, first + j] = ray


@wp.kernel(enable_backward=False)
def focus_weights_kernel(
    slot: wp.array(dtype=int),  # (1,) this step's row
    ray_index: wp.array2d(dtype=int),  # (K, B) the step's ray ids (uniform, then focused)
    edge: wp.array(dtype=wp.int8),  # (R,)
    predicted: wp.array(dtype=wp.int8),  # (R,)
    target_mask: wp.array(dtype=float),  # (R,)
    tile_start: wp.array(dtype=int),  # (T + 1,) exclusive prefix of focus counts
    uniform: int,  # n_u
    focused: int,  # n_f
    weights_out: wp.array(dtype=float),  # (B,) w = 1 / (n_u + n_f R q)
):
    """One thread per ray of the step (dim = B). Not differentiable."""
    i = wp.tid()
    ray = ray_index[slot[0], i]
    total = tile_start[tile_start.shape[0] - 1]
    rq = wp.float64(1.0)  # R q: 1 for a uniform q
    if total > 0:
        hit = wp.float64(in_focus(ray, edge, predicted, target_mask))
        rq = hit * wp.float64(edge.shape[0]) / wp.float64(total)
    weights_out[i] = float(wp.float64(1.0) / (wp.float64(uniform) + wp.float64(focused) * rq))


@wp.kernel(enable_backward=False)
def focus_observe_kernel(
    slot: wp.array(dtype=int),  # (1,) this step's row
    ray_index: wp.array2d(dtype=int),  # (K, B) the step's ray ids
    hit_t: wp.array(dtype=float),  # (B,) the step's march: hit distance, -1 = miss
    predicted_out: wp.array(dtype=wp.int8),  # (R,) the ray's pixel := 1 hit, 0 miss
):
    """One thread per ray of the step (dim = B). A ray drawn twice writes the
    same value twice (one pixel, one ray per step). Not differentiable."""
    i = wp.tid()
    predicted_out[ray_index[slot[0], i]] = wp.int8(wp.where(hit_t[i] >= 0.0, 1, 0))


class FocusSampler:
    """The device side of focused sampling for one fit (module docstring):
    the static edges, the kept predictions and the focus counts over ``rays``
    training rays, for batches of ``batch`` rays of which :attr:`focused` are
    drawn from the focus set. ``target_mask`` (R,) is the fit's device array of
    target masks; ``edges`` (R,) bool (:func:`silhouette_edges`)."""

    def __init__(self, edges: np.ndarray, target_mask: wp.array, batch: int, share: float,
                 device):  # fmt: skip
        self.rays = rays = int(edges.shape[0])
        self.batch = batch
        self.focused = focused_count(batch, share)
        self.uniform = batch - self.focused
        self.device = device
        self.edge = wp.array(edges.astype(np.int8), dtype=wp.int8, device=device)
        self.predicted = wp.full(rays, UNSEEN, dtype=wp.int8, device=device)
        self.target_mask = target_mask
        self.tile = max(MIN_TILE, -(-rays // MAX_TILES))
        self.tiles = -(-rays // self.tile)
        self.tile_start = wp.zeros(self.tiles + 1, dtype=int, device=device)

    def draw_into(self, slot: wp.array, uniforms: wp.array, ray_index: wp.array,
                  weights_out: wp.array) -> None:  # fmt: skip
        """The step's focused rays into ``ray_index[slot, n_u:]`` and every ray's
        weight into ``weights_out``, from the current focus set (refreshed
        first). Launches only: graph-capturable."""
        d = self.device
        wp.launch(
            focus_count_kernel,
            dim=self.tiles,
            inputs=[self.edge, self.predicted, self.target_mask, self.tile],
            outputs=[self.tile_start],
            device=d,
        )
        wp.launch(focus_prefix_kernel, dim=1, outputs=[self.tile_start], device=d)
        if self.focused > 0:
            wp.launch(
                focus_draw_kernel,
                dim=self.focused,
                inputs=[
                    slot, uniforms, self.edge, self.predicted, self.target_mask,
                    self.tile_start, self.tile, self.uniform,
                ],
                outputs=[ray_index],
                device=d,
            )  # fmt: skip
        wp.launch(
            focus_weights_kernel,
            dim=self.batch,
            inputs=[
                slot, ray_index, self.edge, self.predicted, self.target_mask, self.tile_start,
                self.uniform, self.focused,
            ],
            outputs=[weights_out],
            device=d,
        )  # fmt: skip

    def observe(self, slot: wp.array, ray_index: wp.array, hit_t: wp.array) -> None:
        """Keep the step's hard predictions for its rays' pixels (after its march)."""
        wp.launch(
            focus_observe_kernel,
            dim=self.batch,
            inputs=[slot, ray_index, hit_t],
            outputs=[self.predicted],
            device=self.device,
        )

    def focus_set(self) -> np.ndarray:
        """(R,) bool: the focus set as the predictions now stand (host; for tests)."""
        edge = self.edge.numpy() != 0
        predicted = self.predicted.numpy().astype(np.int64)
        target = (self.target_mask.numpy() > 0.5).astype(np.int64)
        return edge | (predicted == UNSEEN) | (predicted != target)

    def state(self) -> np.ndarray:
        """The kept predictions (R,) int8, for a checkpoint."""
        return self.predicted.numpy().copy()

    def load(self, predicted: np.ndarray | None) -> None:
        """Predictions from :meth:`state` (None or a wrong size: none seen yet)."""
        if predicted is None or np.asarray(predicted).shape != (self.rays,):
            self.predicted.fill_(UNSEEN)
        else:
            self.predicted.assign(np.asarray(predicted, np.int8))
