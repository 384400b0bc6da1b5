"""Finite differences along a direction: central with Richardson extrapolation, complex step, kinks.

Everything here works on *samples* of a scalar function of one real variable,

    phi(t) = <g, f(x + t d)>,          phi'(0) = <g, J d> = <J^T g, d>,

where the direction ``d = h * u`` already carries the per-entry step ``h``. So ``t`` is measured in
units of the step and the estimates below are derivatives "per step"; divide by ``h_i`` to get
``df/dx_i`` when ``d`` is a basis direction.

Step (see :func:`step_sizes`). The central difference ``(phi(s) - phi(-s)) / 2s`` has truncation
error ``phi''' s^2 / 6`` and rounding error ``~ eps |phi| / s``; balancing the two gives
``h ~ eps^(1/3)`` relative to the scale of ``x``. We use the eps of the *input* dtype (4.9e-3 for
float32, 6.1e-6 for float64, 0.2 for bfloat16) even though the differences are evaluated in float64:
a function that computes internally at its input precision still gives meaningful differences at
that step, and Richardson extrapolation removes the larger truncation error.

Richardson. With ``D(s) = (phi(s) - phi(-s)) / 2s`` at ``s = 1`` and ``s = 1/2``,

    D(s) = phi'(0) + c s^2 + O(s^4)   =>   R = D(1/2) + (D(1/2) - D(1)) / 3 = phi'(0) + O(s^4),

and ``E = |D(1/2) - D(1)| / 3`` estimates the truncation error of ``D(1/2)``, an upper bound (to
leading order) of the error of ``R``. We report ``R`` and use ``E`` as its error bar.

Kinks. One-sided slopes at step ``s`` differ by ``phi'' s`` at a smooth point and by the slope jump
``Delta`` (independent of ``s``) at a kink. So the second differences
``J(s) = (phi(s) - 2 phi(0) + phi(-s)) / s`` satisfy ``J(1/2) ~ J(1)/2`` when smooth and
``J(1/2) ~ J(1)`` at a kink. Where they disagree we call the point non-differentiable and return the
one-sided derivatives (each Richardson-extrapolated: ``2 F(1/2) - F(1)``, O(s^2)); any value in the
subgradient interval ``[min(left, right), max(left, right)]`` is then correct.

Complex step. For real-analytic ``f``, ``Im phi(i t) / t = phi'(0) + O(t^2)`` with no subtraction, so
it is exact to rounding for any small ``t``; the step is ``1e-20 * max(1, |x|)``. It is wrong for
``abs``, ``max``, ``where`` on the real part... (any non-holomorphic code), so it is opt-in.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import jax
import jax.numpy as jnp  # jnp.finfo knows bfloat16 (ml_dtypes); numpy's does not
import numpy as np

# Sample points of phi for the central scheme, in units of the step. phi(0) is needed for the
# one-sided slopes (kink detection).
CENTRAL_TS = (-1.0, -0.5, 0.0, 0.5, 1.0)
# Complex step: Im phi(i t) at two steps, the second as a (trivially small) error estimate.
COMPLEX_TS = (1.0, 0.5)
COMPLEX_STEP = 1e-20

# Each phi(t) is computed in float64 with relative rounding ~ eps64 per operation on terms whose
# magnitude is ~ sum_j |g_j| |f_j(x)|. Allowing 8 rounding units per term (a few ops deep) and the
# Richardson weights (sum of |coefficients| = 3 on the t-unit scale) gives the rounding floor below.
FLOAT64_EPS = float(np.finfo(np.float64).eps)
ROUNDING_UNITS = 8.0
RICHARDSON_WEIGHT = 3.0


def float64_scope():
    """A context manager that turns on float64 for its body only and restores the setting after.

    ``jax.enable_x64(True)`` (jax >= 0.9) or ``jax.experimental.enable_x64()`` (older releases).
    fnnet never flips x64 globally.
    """
    enable = getattr(jax, "enable_x64", None)
    if enable is not None:
        try:
            scope = enable(True)
            if hasattr(scope, "__enter__"):
                return scope
        except TypeError:
            pass
    try:
        from jax.experimental import enable_x64  # type: ignore[attr-defined]

        return enable_x64()
    except ImportError:  # pragma: no cover - last resort: flip and restore by hand
        return _flip_x64()


@contextlib.contextmanager
def _flip_x64():  # pragma: no cover
    old = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", True)
    try:
        yield
    finally:
        jax.config.update("jax_enable_x64", old)


def step_sizes(x: np.ndarray, dtype, fd: str = "central") -> np.ndarray:
    """Per-entry step ``h_i = eps(dtype)^(1/3) * max(1, |x_i|)`` (complex step: ``1e-20 * max(1,|x_i|)``).

    ``dtype`` is the dtype of the *input* leaf; the returned steps are float64.
    """
    mag = np.abs(np.asarray(x, np.float64))
    scale = np.maximum(1.0, np.where(np.isfinite(mag), mag, 1.0))  # x = ±inf moves by a finite step (and stays)
    if fd == "complex":
        return COMPLEX_STEP * scale
    eps = float(jnp.finfo(dtype).eps)
    return eps ** (1.0 / 3.0) * scale


@dataclass(frozen=True)
class Differences:
    """Derivative estimates along directions (arrays of one shape, in per-step units).

    value: best estimate of phi'(0) (Richardson / complex step).
    error: its error bar (Richardson ``E`` plus the float64 rounding floor).
    kink: True where one-sided slopes disagree (non-differentiable point within the step).
    left, right: one-sided derivative estimates (meaningful where ``kink``).
    side_error: error bar of ``left``/``right``.
    one_sided: True where f is undefined (NaN/inf) on one side of x, so ``value`` is the other side's
    derivative (a domain edge such as ``sqrt`` at 0); all False for the complex step.
    """

    value: np.ndarray
    error: np.ndarray
    kink: np.ndarray
    left: np.ndarray
    right: np.ndarray
    side_error: np.ndarray
    one_sided: np.ndarray | None = None

    @property
    def defined(self) -> np.ndarray:
        """Where the estimate exists (finite value and error bar)."""
        return np.isfinite(self.value) & np.isfinite(self.error)

    def scaled(self, h) -> "Differences":
        """The same estimates divided by the step ``h`` (per-step units -> derivative units)."""
        return Differences(self.value / h, self.error / h, self.kink, self.left / h, self.right / h,
                           self.side_error / h, self.one_sided)


def rounding_floor(magnitude: np.ndarray, eps: float = FLOAT64_EPS) -> np.ndarray:
    """Rounding in a per-step derivative built from phi samples of size ``magnitude`` (``eps``: the
    samples' rounding unit, float64's unless f computes in a lower precision inside)."""
    return ROUNDING_UNITS * RICHARDSON_WEIGHT * eps * np.asarray(magnitude, np.float64)


def central_differences(phi: np.ndarray, magnitude: np.ndarray, eps: float = FLOAT64_EPS) -> Differences:
    """Richardson-extrapolated central differences and kink test from samples at ``CENTRAL_TS``.

    ``phi[..., k]`` is ``phi(CENTRAL_TS[k]) - phi(0)`` (an output that does not move contributes an
    exact 0, even when it is ±inf); ``magnitude`` (shape ``phi.shape[:-1]``) is ``sum_j |g_j| |f_j(x)|``
    over finite outputs, the size of the terms that rounding acts on.

    Where the samples on one side are not finite and those on the other side are (x on the edge of
    f's domain: ``sqrt`` at 0), the one-sided Richardson derivative of the defined side is returned,
    with ``one_sided`` set and the one-sided error bar.
    """
    phi = np.asarray(phi, np.float64)
    m2, m1, p0, p1, p2 = (phi[..., k] for k in range(5))
    noise = rounding_floor(magnitude, eps)
    with np.errstate(invalid="ignore", over="ignore"):
        d_big = (p2 - m2) / 2.0  # step 1
        d_small = (p1 - m1) / 1.0  # step 1/2
        value = d_small + (d_small - d_big) / 3.0
        error = np.abs(d_small - d_big) / 3.0 + noise
        # One-sided slopes, each first-order Richardson-extrapolated.
        right_big, right_small = p2 - p0, (p1 - p0) / 0.5
        left_big, left_small = p0 - m2, (p0 - m1) / 0.5
        right = 2.0 * right_small - right_big
        left = 2.0 * left_small - left_big
        right_error = np.abs(right_small - right_big) + noise
        left_error = np.abs(left_small - left_big) + noise
        side_error = np.maximum(right_error, left_error)
        jump_big = right_big - left_big  # = J(1)
        jump_small = right_small - left_small  # = J(1/2)
        kink = (np.abs(jump_small - jump_big / 2.0) > np.maximum(np.abs(jump_big) / 4.0, 4.0 * noise)) & (
            np.abs(jump_small) > 4.0 * noise
        )
    left_ok = np.isfinite(m2) & np.isfinite(m1) & np.isfinite(p0)
    right_ok = np.isfinite(p2) & np.isfinite(p1) & np.isfinite(p0)
    both = left_ok & right_ok
    one_sided = left_ok ^ right_ok
    value = np.where(both, value, np.where(right_ok, right, np.where(left_ok, left, np.nan)))
    error = np.where(both, error, np.where(right_ok, right_error, np.where(left_ok, left_error, np.nan)))
    kink = kink & both
    return Differences(value, error, kink, left, right, side_error, one_sided)


def complex_step_differences(im_phi: np.ndarray, magnitude: np.ndarray, eps: float = FLOAT64_EPS) -> Differences:
    """Complex-step derivative from ``Im phi(i t)`` at ``COMPLEX_TS`` (t in units of the step)."""
    im_phi = np.asarray(im_phi, np.float64)
    d_big = im_phi[..., 0] / COMPLEX_TS[0]
    d_small = im_phi[..., 1] / COMPLEX_TS[1]
    # No subtraction: only the rounding of the terms of Im phi (``magnitude`` = sum |g_j| |Im f_j|).
    noise = ROUNDING_UNITS * eps * (np.abs(d_small) + np.asarray(magnitude, np.float64))
    error = np.abs(d_small - d_big) + noise
    no_kink = np.zeros(d_small.shape, bool)
    return Differences(d_small, error, no_kink, d_small, d_small, error, no_kink)


def sample_points(fd: str) -> tuple[float, ...]:
    """The t values at which phi is sampled for scheme ``fd``."""
    if fd == "central":
        return CENTRAL_TS
    if fd == "complex":
        return COMPLEX_TS
    raise ValueError(f"fd must be 'central' or 'complex', got {fd!r}")


def differences(samples: np.ndarray, magnitude: np.ndarray, fd: str, eps: float = FLOAT64_EPS) -> Differences:
    """Dispatch on the scheme: samples at :func:`sample_points` -> :class:`Differences`."""
    if fd == "complex":
        return complex_step_differences(samples, magnitude, eps)
    return central_differences(samples, magnitude, eps)


def _project(g, out, fd, out0=None):
    """``(<g, f>, sum |g| |f|)``, imaginary parts for the complex step.

    With ``out0`` (central scheme): ``<g, f - f0>``, where an output entry equal to its value at x
    contributes exactly 0, so outputs that do not move (a -inf of a log-semiring row, a clipped
    constant) give a zero difference instead of ``inf - inf = NaN``. The magnitude (the size of the
    terms that rounding acts on) counts finite outputs only.
    """
    if fd == "complex":
        value = sum(jnp.sum(gj * jnp.imag(oj)) for gj, oj in zip(g, out))
        magnitude = sum(jnp.sum(jnp.abs(gj) * jnp.abs(jnp.imag(oj))) for gj, oj in zip(g, out))
        return jnp.real(value), magnitude
    value = 0.0
    magnitude = 0.0
    for j, (gj, oj) in enumerate(zip(g, out)):
        if out0 is not None:
            base = out0[j]
            delta = jnp.where(oj == base, jnp.zeros_like(oj), oj - base)
            value = value + jnp.sum(gj * delta)
        else:
            value = value + jnp.sum(gj * oj)
        finite = jnp.where(jnp.isfinite(oj), jnp.abs(oj), jnp.zeros_like(oj))
        magnitude = magnitude + jnp.sum(jnp.abs(gj) * finite)
    return value, magnitude


def _shift(x, d, t, fd: str):
    """``x + t d`` (central) or ``x + i t d`` (complex step), with explicit casts (strict promotion)."""
    if fd == "complex":
        c = jnp.complex128
        return x.astype(c) + (t.astype(c) * jnp.asarray(1j, c)) * d.astype(c)
    return x + t.astype(x.dtype) * d.astype(x.dtype)


def _moving_points(fd: str):
    """Sample points other than t = 0 (f(x) itself is evaluated once, outside the batch)."""
    return np.asarray([t for t in sample_points(fd) if t != 0.0])  # numpy: no eager program


def _assemble(moving, g, out0, fd):
    """Insert phi(0) - phi(0) = 0 (central) and pick the rounding magnitude; ``moving``: (vals, mags)
    at t != 0 (already differences from phi(0))."""
    vals, mags = moving
    if fd == "complex":
        return vals, mags[..., 0]
    _, m0 = _project(g, out0, fd)
    k = CENTRAL_TS.index(0.0)
    zero = jnp.zeros(vals.shape[:-1] + (1,), vals.dtype)
    return jnp.concatenate([vals[..., :k], zero, vals[..., k:]], axis=-1), m0


def make_sampler(F64, fd: str):
    """A jitted, vmapped sampler of phi along a batch of directions.

    ``F64(leaves) -> list of output leaves`` is the function evaluated in float64 (or complex128).
    The returned ``sample(x, dirs, gs)`` takes the primal leaves ``x``, directions ``dirs`` (one array
    per leaf, leading batch axis ``B``) and cotangents ``gs`` (one per output leaf, leading axis ``B``)
    and returns ``(samples (B, len(ts)), magnitude (B,))``. f appears once in the traced program,
    vmapped over the sample points and the batch, which keeps compilation cheap; ``f(x)`` is
    evaluated once for the whole batch. Call it inside :func:`float64_scope`.
    """
    ts = _moving_points(fd)

    def at(x, d, g, t, out0):
        return _project(g, F64([_shift(xi, di, t, fd) for xi, di in zip(x, d)]), fd, out0)

    def one(x, out0, d, g):
        moving = jax.vmap(at, in_axes=(None, None, None, 0, None))(x, d, g, ts, out0)
        return _assemble(moving, g, out0, fd)

    def sample(x, d, g):
        out0 = F64(list(x)) if fd != "complex" else None
        return jax.vmap(one, in_axes=(None, None, 0, 0))(x, out0, d, g)

    return jax.jit(sample)


def make_entry_sampler(F64, fd: str, leaf: int):
    """A jitted sampler of phi along basis directions ``h_i e_i`` of leaf ``leaf``, for several cotangents.

    ``sample(x, idx, h, gs)``: ``idx`` (B,) flat indices, ``h`` (B,) their steps, ``gs`` cotangents
    with a leading axis ``C``. Returns samples ``(B, C, len(ts))`` and magnitudes ``(B, C)``. Only the
    perturbed leaf is copied per direction, so memory is ``B * size(leaf)`` per sample point;
    ``f(x)`` is evaluated once per call.
    """
    ts = _moving_points(fd)

    def at(x, i, hi, gs, t, out0):
        base = x[leaf].reshape(-1)
        base = base.astype(jnp.complex128) if fd == "complex" else base
        xs = list(x)
        xs[leaf] = base.at[i].add(_shift(jnp.zeros((), base.dtype), hi, t, fd)).reshape(x[leaf].shape)
        out = F64(xs)
        return jax.vmap(lambda g: _project(g, out, fd, out0))(gs)

    def one(x, out0, i, hi, gs):
        vals, mags = jax.vmap(at, in_axes=(None, None, None, None, 0, None))(x, i, hi, gs, ts, out0)
        moving = (jnp.moveaxis(vals, 0, -1), jnp.moveaxis(mags, 0, -1))
        return jax.vmap(lambda m0, g: _assemble(m0, g, out0, fd))(moving, gs)

    def sample(x, idx, h, gs):
        out0 = F64(list(x)) if fd != "complex" else None
        return jax.vmap(one, in_axes=(None, None, 0, 0, None))(x, out0, idx, h, gs)

    return jax.jit(sample)
