"""A PyTorch peer of warpsdf's fit: the same algorithm, written the way a
PyTorch user would, for speed ratios measured in one process on one device.

Same as warpsdf (DESIGN §6): sphere tracing without gradients, with
active-ray compaction (only rays still marching are evaluated each step) and
guarded Newton polishing of hits where an xyz or depth term reads them
(``march.polish_for``); then, with gradients, one SDF value per ray
at its hit or least-SDF point, the implicit hit point for xyz, the soft mask
sigmoid(-alpha f) with BCE / alpha off the surface (background rays below
``SOFT_MASK_FLOOR`` left out), the tetrahedral
finite-difference eikonal term, and torch.optim.Adam. The fields are the log-
sum-exp sphere set and the Fourier-feature softplus MLP with warpsdf's flat
parameter layout, so both start from the same parameters.

torch is optional and used only here: ``pip install torch``.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from warpsdf.camera import jitter_cameras, rays_for
from warpsdf.fields.base import FD_GRADIENT_STEP, TETRAHEDRON
from warpsdf.fields.mlp_core import SIREN_OMEGA0, SOFTPLUS_BETA, num_inputs
from warpsdf.fit import Fitter, learning_rate, mask_alpha
from warpsdf.fit.staging import flatten_targets
from warpsdf.losses import MIN_GRAD_DOT_DIR, SOFT_MASK_CUT
from warpsdf.march import FAR_SDF, NOCLIP_EXTRA_BOUNDS, POLISH_STEPS, Polish, polish_for
from warpsdf.scene import (
    Background,
    MarchGradient,
    ModelActivation,
    ModelKind,
    Scene,
    SupervisionMode,
)


class SphereSet(torch.nn.Module):
    def __init__(self, params: np.ndarray, smooth_k: float):
        super().__init__()
        self.params = torch.nn.Parameter(torch.tensor(params, dtype=torch.float32))
        self.k = smooth_k

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = self.params.view(-1, 4)
        d = torch.linalg.norm(x[:, None, :] - p[None, :, :3], dim=-1) - p[None, :, 3]
        if self.k <= 0:
            return d.min(dim=1).values
        return -self.k * torch.logsumexp(-d / self.k, dim=1)


class FourierMLP(torch.nn.Module):
    """warpsdf's MLP: W (width x inputs) and b per layer, then w_out, b_out, flat;
    softplus or sine (SIREN) hidden activations."""

    def __init__(self, params: np.ndarray, frequencies: int, width: int, layers: int,
                 activation: ModelActivation = ModelActivation.SOFTPLUS):  # fmt: skip
        super().__init__()
        self.frequencies, self.width, self.layers = frequencies, width, layers
        self.sine = ModelActivation(activation) is ModelActivation.SINE
        self.params = torch.nn.Parameter(torch.tensor(params, dtype=torch.float32))
        n_in = num_inputs(frequencies)
        self.shapes = [(width, n_in)] + [(width, width)] * (layers - 1)
        self.register_buffer("omega", math.pi * 2.0 ** torch.arange(frequencies).float())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = [x]
        if self.frequencies:
            wx = x[:, None, :] * self.omega[None, :, None]  # (N, L, 3)
            feats += [torch.cat([torch.sin(wx), torch.cos(wx)], dim=2).reshape(len(x), -1)]
        h = torch.cat(feats, dim=1)
        o = 0
        for rows, cols in self.shapes:
            w = self.params[o : o + rows * cols].view(rows, cols)
            b = self.params[o + rows * cols : o + rows * cols + rows]
            z = h @ w.T + b
            if self.sine:
                h = torch.sin(SIREN_OMEGA0 * z)
            else:
                h = torch.nn.functional.softplus(z, beta=SOFTPLUS_BETA)
            o += rows * cols + rows
        return h @ self.params[o : o + self.width] + self.params[o + self.width]


def peer_problem(scene: Scene) -> str:
    """What of ``scene`` the peer does not implement ("" when it does it all):
    the missing-back-wall study's whole-image xyz term and unrolled march."""
    if scene.supervision.background is not Background.NONE:
        return f"supervision.background = {scene.supervision.background.value!r}"
    if scene.march.gradient is not MarchGradient.IMPLICIT:
        return f"march.gradient = {scene.march.gradient.value!r}"
    return ""


class TorchPeer:
    """The peer fit, initialised from a warpsdf :class:`Fitter` (same scene,
    targets, cameras, initial parameters and random draws)."""

    def __init__(self, fitter: Fitter, device: str = "cpu"):
        self.scene: Scene = fitter.scene
        unsupported = peer_problem(self.scene)
        if unsupported:
            raise ValueError(f"the PyTorch peer does not do {unsupported}")
        self.device = torch.device(device)
        m = self.scene.model
        params = fitter.field.params.numpy().copy()
        if m.kind is ModelKind.SPHERES:
            self.field = SphereSet(params, m.smooth_k)
        else:
            self.field = FourierMLP(params, m.fourier_frequencies, m.hidden, m.layers, m.activation)
        self.field.to(self.device)
        self.optimizer = torch.optim.Adam(self.field.parameters(), lr=self.scene.optim.lr)
        t = flatten_targets(fitter.views, set(self.scene.supervision.mode))
        self.cameras = fitter.cameras
        self.mask = torch.tensor(t.mask, device=self.device)
        self.xyz = torch.tensor(t.xyz, device=self.device)
        self.rng = np.random.default_rng(self.scene.seed + 1)
        self.iteration = 0
        modes = set(self.scene.supervision.mode)
        w = self.scene.supervision.weights
        self.w_sil = w.get("silhouette", 0.0)
        self.w_xyz = w.get("xyz", 0.0) if SupervisionMode.XYZ in modes else 0.0
        self.w_eik = self.scene.optim.eikonal_weight if self.scene.optim.eikonal_samples else 0.0
        self.tetra = torch.tensor(TETRAHEDRON, device=self.device) * FD_GRADIENT_STEP

    def fd_grad(self, x: torch.Tensor) -> torch.Tensor:
        values = self.field((x[:, None, :] + self.tetra[None]).reshape(-1, 3)).view(-1, 4)
        return (values[:, :, None] * self.tetra[None]).sum(1) / (4 * FD_GRADIENT_STEP**2)

    @torch.no_grad()
    def march(self, o: torch.Tensor, d: torch.Tensor):
        """Sphere tracing with active-ray compaction."""
        cfg = self.scene.march
        n = len(o)
        b = (o * d).sum(1)
        c = (o * o).sum(1) - cfg.bound_radius**2
        disc = b * b - c
        inside = disc > 0
        s = torch.sqrt(torch.clamp(disc, min=0))
        t_exit = -b + s
        enter = torch.clamp(-b - s, min=0)
        valid = inside & (t_exit > 0)
        t_far = t_exit + (0.0 if cfg.clip_back else NOCLIP_EXTRA_BOUNDS * cfg.bound_radius)
        t = enter.clone()
        hit = torch.zeros(n, dtype=torch.bool, device=o.device)
        f_last = torch.zeros(n, device=o.device)
        min_sdf = torch.full((n,), FAR_SDF, device=o.device)
        min_t = torch.where(valid, enter, torch.clamp(-b, min=0))
        active = torch.nonzero(valid).squeeze(1)
        for _ in range(cfg.max_steps):
            if len(active) == 0:
                break
            f = self.field(o[active] + d[active] * t[active, None])
            better = f < min_sdf[active]
            min_sdf[active] = torch.where(better, f, min_sdf[active])
            min_t[active] = torch.where(better, t[active], min_t[active])
            f_last[active] = f
            done = f < cfg.hit_epsilon
            hit[active[done]] = True
            t[active] = torch.where(done, t[active], t[active] + f)
            keep = ~done & (t[active] <= t_far[active])
            active = active[keep]
        idx = torch.nonzero(hit).squeeze(1)
        if polish_for(self.scene.supervision) is Polish.NONE:  # silhouettes only, as warpsdf
            idx = idx[:0]  # no polish, no grad f . d
        for _ in range(POLISH_STEPS):  # guarded Newton steps, as warpsdf does
            if len(idx) == 0:
                break
            x = o[idx] + d[idx] * t[idx, None]
            slope = torch.clamp((self.fd_grad(x) * d[idx]).sum(1), max=-0.01)
            t_new = t[idx] - f_last[idx] / slope
            f_new = self.field(o[idx] + d[idx] * t_new[:, None])
            ok = (t_new >= enter[idx]) & (t_new <= t_far[idx]) & (f_new.abs() < f_last[idx].abs())
            t[idx] = torch.where(ok, t_new, t[idx])
            f_last[idx] = torch.where(ok, f_new, f_last[idx])
        min_t[idx] = t[idx]
        grad_dot_dir = torch.zeros(n, device=o.device)
        if len(idx):
            grad_dot_dir[idx] = (self.fd_grad(o[idx] + d[idx] * t[idx, None]) * d[idx]).sum(1)
        min_sdf = torch.where(valid, min_sdf, torch.full_like(min_sdf, FAR_SDF))
        return hit, min_t, min_sdf, grad_dot_dir

    def loss(
        self, o: torch.Tensor, d: torch.Tensor, alpha: float, rays: torch.Tensor | None = None
    ) -> torch.Tensor:
        """The loss of rays (o, d); ``rays``: their indices into the training
        rays (None: every ray, in order)."""
        hit, min_t, min_sdf, gd = self.march(o, d)
        points = o + d * min_t[:, None]
        f = self.field(points)
        in_bound = min_sdf < 0.5 * FAR_SDF
        y = self.mask if rays is None else self.mask[rays]
        target_xyz = self.xyz if rays is None else self.xyz[rays]
        both = hit & (y > 0.5) & in_bound
        n = len(o)
        loss = torch.zeros((), device=o.device)
        if self.w_xyz > 0 and both.any():
            dt = -(f[both] - f[both].detach()) / torch.clamp(gd[both], max=-MIN_GRAD_DOT_DIR)
            x = points[both] + d[both] * dt[:, None]
            loss = loss + self.w_xyz * (x - target_xyz[both]).abs().mean(1).sum() / n
        rest = ~both & in_bound
        if self.w_sil > 0 and rest.any():
            z = alpha * f[rest]
            bce = y[rest] * torch.nn.functional.softplus(z) + (
                1 - y[rest]
            ) * torch.nn.functional.softplus(-z)
            kept = (y[rest] > 0.5) | (z <= SOFT_MASK_CUT)  # warpsdf's SOFT_MASK_FLOOR
            loss = loss + self.w_sil * (bce * kept / alpha).sum() / n
        if self.w_eik > 0:
            e = self.scene.optim.eikonal_samples
            v = torch.randn(e, 3, device=o.device)
            v = v / v.norm(dim=1, keepdim=True) * torch.rand(e, 1, device=o.device) ** (1 / 3)
            g = self.fd_grad(v * self.scene.march.bound_radius)
            loss = loss + self.w_eik * ((g.norm(dim=1) - 1) ** 2).mean()
        return loss

    def step(self) -> float:
        it = self.iteration
        for group in self.optimizer.param_groups:
            group["lr"] = learning_rate(self.scene, it)
        cams = jitter_cameras(self.cameras, self.scene.cameras.jitter, self.rng)
        origins, dirs = rays_for(cams)
        rays = None
        batch = self.scene.optim.batch_rays
        if 0 < batch < len(origins):  # a random subset of rays, as warpsdf draws
            picked = np.sort(self.rng.choice(len(origins), batch, replace=False))
            origins, dirs = origins[picked], dirs[picked]
            rays = torch.tensor(picked, device=self.device)
        o = torch.tensor(origins, device=self.device)
        d = torch.tensor(dirs, device=self.device)
        self.optimizer.zero_grad(set_to_none=True)
        loss = self.loss(o, d, mask_alpha(self.scene, it), rays)
        loss.backward()
        self.optimizer.step()
        self.iteration += 1
        return float(loss.detach())
