"""Adam with its learning rate and step count on the device (DESIGN §6, §7).

``warp.optim.Adam`` passes the learning rate and the step count t to its
kernel as launch scalars, which a captured CUDA graph would freeze at their
values of the captured step. Here both live in device arrays:

* the learning rate of every iteration is precomputed into a schedule array,
  read at the device iteration counter (advanced by the caller's step);
* t is a one-element device counter, advanced by the step itself.

A device halt record (written by the fit's finiteness guard) turns a step
into a no-op. Each update that does run first saves the state it replaces
(parameters, moments, t and the iteration) into backup arrays, in the same
kernels, so when step N finds the parameters non-finite-making, :meth:`Adam.restore`
goes back to the state before step N-1's update: the parameters of the last
step whose loss was finite, as a diverged fit must keep.

The maths is that of ``warp.optim.Adam`` (float32; beta1 0.9, beta2 0.999,
eps 1e-8 by default), per parameter i:

    m_i <- beta1 m_i + (1 - beta1) g_i
    v_i <- beta2 v_i + (1 - beta2) g_i^2
    p_i <- p_i - lr (m_i / (1 - beta1^(t+1))) / (sqrt(v_i / (1 - beta2^(t+1))) + eps)
    t   <- t + 1

``lazy`` Adam (LazyAdam, as instant-ngp trains its grids) leaves an entry whose
gradient is exactly 0 alone that step: value and moments (t, shared, still
advances). For fields whose entries each see only a few points of a step (a
voxel grid): plain Adam keeps moving an entry on its momentum for about
1 / (1 - beta1) steps after its last gradient, by lr / sqrt(1 - beta2) = 32 lr
in all for a single gradient on fresh moments; a lazy entry moves at most
(1 - beta1) / sqrt(1 - beta2) = 3.2 lr for it, once.
"""

from __future__ import annotations

import numpy as np
import warp as wp

from warpsdf.fit.guard import NO_DIVERGENCE


@wp.kernel(enable_backward=False)
def adam_step_kernel(
    grad: wp.array(dtype=float),  # (P,) dL/dparams of this step
    lr_schedule: wp.array(dtype=float),  # (S,) learning rate per iteration (0-based), param units
    iteration: wp.array(dtype=int),  # (1,) 0-based iteration of this step; indexes lr_schedule
    step_count: wp.array(dtype=int),  # (1,) Adam's t: updates applied so far
    halt: wp.array(dtype=int),  # (2,) halt[0] != NO_DIVERGENCE: do nothing
    beta1: float,  # decay of the first moment
    beta2: float,  # decay of the second moment
    eps: float,  # added to sqrt(v_hat), gradient units
    lazy: int,  # 1: an entry whose gradient is 0 keeps its value and moments (LazyAdam)
    params_out: wp.array(dtype=float),  # (P,) updated in place
    m_out: wp.array(dtype=float),  # (P,) first moment, gradient units, updated in place
    v_out: wp.array(dtype=float),  # (P,) second moment, gradient units^2, updated in place
    backup_params_out: wp.array(dtype=float),  # (P,) params before this update
    backup_m_out: wp.array(dtype=float),  # (P,) m before this update
    backup_v_out: wp.array(dtype=float),  # (P,) v before this update
):
    """One thread per parameter (dim = P). Not differentiable. Reads t; the
    count is advanced afterwards by :func:`adam_count_kernel` (a thread here
    cannot advance it without racing the others that read it)."""
    i = wp.tid()
    if halt[0] != NO_DIVERGENCE:
        return
    backup_params_out[i] = params_out[i]
    backup_m_out[i] = m_out[i]
    backup_v_out[i] = v_out[i]
    g = grad[i]
    if lazy != 0 and g == 0.0:
        return
    lr = lr_schedule[iteration[0]]
    t = float(step_count[0])
    m_out[i] = beta1 * m_out[i] + (1.0 - beta1) * g
    v_out[i] = beta2 * v_out[i] + (1.0 - beta2) * g * g
    mhat = m_out[i] / (1.0 - wp.pow(beta1, (t + 1.0)))
    vhat = v_out[i] / (1.0 - wp.pow(beta2, (t + 1.0)))
    params_out[i] = params_out[i] - lr * mhat / (wp.sqrt(vhat) + eps)


@wp.kernel(enable_backward=False)
def adam_count_kernel(
    halt: wp.array(dtype=int),  # (2,) halt[0] != NO_DIVERGENCE: do nothing
    iteration: wp.array(dtype=int),  # (1,) 0-based iteration of this step
    step_count_out: wp.array(dtype=int),  # (1,) Adam's t, advanced by one
    backup_out: wp.array(dtype=int),  # (2,) [t before this update, this step's iteration]
):
    """One thread (dim = 1), after :func:`adam_step_kernel`. Not differentiable."""
    if halt[0] == NO_DIVERGENCE:
        backup_out[0] = step_count_out[0]
        backup_out[1] = iteration[0]
        step_count_out[0] = step_count_out[0] + 1


class Adam:
    """Adam over one flat float32 parameter array, graph-capturable.

    ``m``, ``v`` (P,) and ``t`` (1,) are device arrays allocated once; nothing
    in :meth:`step` allocates, reads back or depends on host values that change
    between steps. ``lazy``: LazyAdam (see the module docstring).
    """

    def __init__(
        self,
        params: wp.array,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        lazy: bool = False,
    ):
        if params.dtype != wp.float32 or params.ndim != 1:
            raise TypeError("Adam wants one flat float32 parameter array")
        self.params = params
        self.beta1, self.beta2 = float(betas[0]), float(betas[1])
        self.eps = float(eps)
        self.lazy = bool(lazy)
        d = params.device
        self.m = wp.zeros_like(params, requires_grad=False)
        self.v = wp.zeros_like(params, requires_grad=False)
        self.t = wp.zeros(1, dtype=int, device=d)
        # the state the last update replaced (see the module docstring);
        # backup[1] = -1 until an update has run
        self._backup_params = wp.zeros_like(params, requires_grad=False)
        self._backup_m = wp.zeros_like(params, requires_grad=False)
        self._backup_v = wp.zeros_like(params, requires_grad=False)
        self.backup = wp.array([0, -1], dtype=int, device=d)

    def step(
        self, grad: wp.array, lr_schedule: wp.array, iteration: wp.array, halt: wp.array
    ) -> None:
        """One update with ``lr_schedule[iteration[0]]``, unless ``halt[0]`` is
        set (see :data:`NO_DIVERGENCE`). Two launches, no host synchronisation."""
        d = self.params.device
        wp.launch(
            adam_step_kernel,
            dim=self.params.shape[0],
            inputs=[
                grad, lr_schedule, iteration, self.t, halt, self.beta1, self.beta2, self.eps,
                int(self.lazy),
            ],
            outputs=[
                self.params, self.m, self.v, self._backup_params, self._backup_m, self._backup_v,
            ],
            device=d,
        )  # fmt: skip
        wp.launch(
            adam_count_kernel,
            dim=1,
            inputs=[halt, iteration],
            outputs=[self.t, self.backup],
            device=d,
        )

    def restore(self) -> None:
        """Undo the last update that ran: parameters, moments and t go back to
        what it replaced (device copies; call only when ``backup[1] >= 0``)."""
        wp.copy(self.params, self._backup_params)
        wp.copy(self.m, self._backup_m)
        wp.copy(self.v, self._backup_v)
        wp.copy(self.t, self.backup, count=1)

    @property
    def step_count(self) -> int:
        """t, read back from the device (a host synchronisation)."""
        return int(self.t.numpy()[0])

    def reset(self) -> None:
        """Start afresh on the same parameters: zero moments, t = 0 (the next
        update is a first one, with its bias correction) and nothing to undo.
        For a field whose parameters changed meaning (a grid resampled onto a
        finer lattice). Device fills; not for inside a captured step."""
        self.m.zero_()
        self.v.zero_()
        self.t.zero_()
        self.backup.assign(np.array([0, -1], np.int32))

    def load(self, m: np.ndarray, v: np.ndarray, t: int) -> None:
        """Set the moments and the step count (a checkpoint)."""
        self.m.assign(np.asarray(m, np.float32))
        self.v.assign(np.asarray(v, np.float32))
        self.t.assign(np.array([int(t)], np.int32))
        self.backup.assign(np.array([0, -1], np.int32))  # nothing to undo
