"""The finite-difference engine: steps, samplers, central/Richardson/one-sided/complex-step estimates.

Every finite difference of fnnet is made here: comparison (b) of the checker, its re-examination of
disagreeing entries in (a), ``python -m fnnet verify`` and the test suite (:func:`jacobian`,
:func:`directional`). The functions from :func:`make_sampler` down are the checker's, working on its
context (:class:`fnnet.check.context.Context`): the samples of f are taken on the device, in float64,
in padded batches of one compiled shape, and turned into estimates with error bars in numpy.

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

from dataclasses import dataclass

import jax
import jax.numpy as jnp  # jnp.finfo knows bfloat16 (ml_dtypes); numpy's does not
import numpy as np

from .batching import batch_sharding, put, replicated
from .programs import float64_scope
from .tolerance import SLACK

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

    def transposed(self) -> "Differences":
        """The same estimates with the two axes of a Jacobian swapped."""
        t = lambda a: None if a is None else np.swapaxes(a, 0, 1)  # noqa: E731
        return Differences(t(self.value), t(self.error), t(self.kink), t(self.left), t(self.right),
                           t(self.side_error), t(self.one_sided))

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
        value = value + jnp.sum(gj * (oj if out0 is None else _delta(oj, out0[j])))
        magnitude = magnitude + jnp.sum(jnp.abs(gj) * _finite_abs(oj))
    return value, magnitude


def _delta(o, base):
    """``o - base``, exactly 0 where the entry did not move (so ``inf - inf`` is 0, not NaN)."""
    return jnp.where(o == base, jnp.zeros_like(o), o - base)


def _finite_abs(o):
    """``|o|`` where finite, else 0: the size of the terms rounding acts on."""
    return jnp.where(jnp.isfinite(o), jnp.abs(o), jnp.zeros_like(o))


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


# A problem with at most this many entries (inputs and outputs) evaluates f(x) inside the sampler's
# batch, as its point t = 0: then f appears once in the compiled program instead of twice, which on a
# small problem (where compiling is most of a check's time) takes a copy of f out of the one
# compilation. The price, f evaluated at x once per direction (5 points per direction against
# 4 + 1/B), only counts where running dominates, so a larger problem evaluates f(x) once, outside.
INLINE_F0_MAX_ENTRIES = 1 << 12


def inline_f0(problem, fd: str) -> bool:
    """Whether the directional sampler of ``problem`` evaluates f(x) inside its batch (see above)."""
    if fd != "central":
        return False
    entries = sum(int(np.prod(np.shape(x))) for x in problem.x) + sum(int(np.prod(o.shape)) for o in problem.out)
    return entries <= INLINE_F0_MAX_ENTRIES


def make_sampler(F64, fd: str, inline: bool = False):
    """A jitted, vmapped sampler of phi along a batch of directions.

    ``F64(leaves) -> list of output leaves`` is the function evaluated in float64 (or complex128).
    The returned ``sample(x, dirs, gs)`` takes the primal leaves ``x``, directions ``dirs`` (one array
    per leaf, leading batch axis ``B``) and cotangents ``gs`` (one per output leaf, leading axis ``B``)
    and returns ``(samples (B, len(ts)), magnitude (B,))``. f is vmapped over the sample points and the
    batch, which keeps compilation cheap; ``f(x)`` is evaluated once for the whole batch. With
    ``inline`` (central scheme only; :func:`inline_f0`) ``f(x)`` is instead the batch's point t = 0,
    so that f appears once in the traced program, and the sampler also returns f's outputs at ``x``
    (the float64 evaluation of f that :func:`check_degraded` examines, which then needs no program of
    its own): ``(samples, magnitude, f0)``. Call it inside :func:`float64_scope`.
    """
    if inline:
        return _inline_sampler(F64, fd)
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


def _inline_sampler(F64, fd: str):
    """:func:`make_sampler` with f(x) evaluated as the point t = 0 of the batch.

    The B directions times the sample points are one batch of ``B·len(ts)`` points under a single
    ``vmap`` of f, and the projections are written on the batch axes directly: a vmap nested in a
    vmap batches every inner ``jit`` of f twice, which was most of this program's tracing time. The
    arithmetic per sample is :func:`_project`'s and :func:`_assemble`'s, in the same order."""
    if fd != "central":
        raise ValueError("f(x) inside the sampler's batch needs the central scheme")
    ts = np.asarray(CENTRAL_TS)
    k = CENTRAL_TS.index(0.0)

    def sample(x, d, g):
        B, T = d[0].shape[0], len(ts)
        points = []
        for xi, di in zip(x, d):
            t = ts.reshape((1, T) + (1,) * xi.ndim).astype(xi.dtype)
            shifted = xi + t * di.astype(xi.dtype)[:, None]  # (B, T, ...): x + t·d, as _shift
            # t = 0 keeps x itself: x + 0·d would turn a −0 into +0
            points.append(jnp.where(t == 0.0, jnp.broadcast_to(xi, shifted.shape), shifted)
                          .reshape((B * T,) + xi.shape))
        outs = [o.reshape((B, T) + o.shape[1:]) for o in jax.vmap(F64)(points)]
        value, m0 = 0.0, 0.0
        for gj, oj in zip(g, outs):
            o0 = oj[:, k]
            moving = jnp.concatenate([oj[:, :k], oj[:, k + 1:]], axis=1)
            axes = tuple(range(2, moving.ndim))
            value = value + jnp.sum(gj[:, None] * _delta(moving, o0[:, None]), axis=axes)
            m0 = m0 + jnp.sum(jnp.abs(gj) * _finite_abs(o0), axis=tuple(range(1, o0.ndim)))
        zero = jnp.zeros((B, 1), value.dtype)
        samples = jnp.concatenate([value[:, :k], zero, value[:, k:]], axis=1)
        return samples, m0, [o[0, k] for o in outs]

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


# ---- finite differences of any function: jvp, jacobian ----------------------------------------------
def output_samples(f, primals, directions, fd: str = "central"):
    """Samples of every output entry of ``f`` along ``directions``, for :func:`differences` (traceable).

    ``f(*primals)`` returns an array or a pytree of arrays; ``directions`` has one entry per primal:
    an array shaped like it (the step included: ``t`` is in units of the direction), or None for a
    primal held fixed. Returns two lists over f's output leaves: ``samples`` with the sample points
    on a new last axis (central: ``f(x + t d) − f(x)``, exactly 0 where an entry does not move;
    complex step: ``Im f(x + i t d)``) and ``magnitudes`` (``|f(x)|`` where finite), the size the
    rounding acts on. Call it inside :func:`fnnet.check.programs.float64_scope` for float64.
    """
    ts = _moving_points(fd)

    def moved(t):
        args = [p if d is None else _shift(jnp.asarray(p), jnp.asarray(d), t, fd) for p, d in zip(primals, directions)]
        return jax.tree_util.tree_leaves(f(*args))

    outs = jax.vmap(moved)(ts)  # each leaf: (len(ts), *shape)
    if fd == "complex":
        return [jnp.moveaxis(jnp.imag(o), 0, -1) for o in outs], [_finite_abs(jnp.imag(o[0])) for o in outs]
    base = jax.tree_util.tree_leaves(f(*primals))
    k = CENTRAL_TS.index(0.0)
    samples = []
    for o, b in zip(outs, base):
        d = jnp.moveaxis(_delta(o, b[None]), 0, -1)
        samples.append(jnp.concatenate([d[..., :k], jnp.zeros(d.shape[:-1] + (1,), d.dtype), d[..., k:]], axis=-1))
    return samples, [_finite_abs(b) for b in base]


def jvp(f, primals, tangents, h: float = 1.0, fd: str = "central") -> list:
    """The finite-difference JVP ``J·tangents`` of ``f`` at ``primals``, one :class:`Differences` per
    output leaf, in derivative units (value and error bar per output entry).

    f is sampled along the direction ``h·tangents`` (tangent None: that primal held fixed), with every
    float primal upcast to float64 (complex step: complex128): the lecture's
    ``(f(x + h u) − f(x − h u)) / 2h``, Richardson-extrapolated with ``h/2`` (error bar from the two),
    one-sided where f is undefined on one side, with kinks detected (:func:`central_differences`).
    """
    with float64_scope():
        x = [_upcast(p) for p in primals]
        d = [None if t is None else jnp.asarray(np.asarray(t, np.float64) * h) for t in tangents]
        samples, mags = jax.jit(lambda x: output_samples(f, x, d, fd))(x)
        return [differences(np.asarray(s), np.asarray(m), fd).scaled(h) for s, m in zip(samples, mags)]


def jacobian_samples(f, x, h, fd: str = "central"):
    """:func:`output_samples` along every basis direction ``h_i e_i`` of ``x`` (traceable).

    ``f(x)`` returns an array or a pytree of arrays; ``h`` holds one step per entry of x (shape of x).
    Returns ``(samples, magnitudes)`` of shapes ``(x.size, M, T)`` and ``(x.size, M)``, M the number
    of output entries (all leaves, flattened in order); :func:`jacobian_estimate` turns them into
    the Jacobian.
    """
    n = int(np.prod(np.shape(x)))
    dirs = (jnp.eye(n, dtype=jnp.asarray(h).dtype) * jnp.reshape(h, (-1, 1))).reshape((n, *np.shape(x)))

    def column(d):
        s, m = output_samples(f, (x,), (d,), fd)
        return (jnp.concatenate([si.reshape(-1, si.shape[-1]) for si in s]),
                jnp.concatenate([mi.reshape(-1) for mi in m]))

    return jax.vmap(column)(dirs)


def jacobian_estimate(samples, magnitudes, h, fd: str = "central") -> Differences:
    """The Jacobian ``(M, x.size)`` from :func:`jacobian_samples`' output, with error bars."""
    d = differences(np.asarray(samples), np.asarray(magnitudes), fd).scaled(np.reshape(np.asarray(h), (-1, 1)))
    return d.transposed()


def jacobian(f, x, fd: str = "central") -> Differences:
    """The finite-difference Jacobian of ``f`` at ``x`` (array in, array or pytree of arrays out),
    ``(M, x.size)`` with M the number of output entries, evaluated in float64 with the per-entry
    steps of :func:`step_sizes` (for x's dtype)."""
    h = step_sizes(np.asarray(x, np.float64), np.asarray(x).dtype, fd)
    with float64_scope():
        s, m = jax.jit(lambda x, h: jacobian_samples(f, x, h, fd))(_upcast(x), jnp.asarray(h))
    return jacobian_estimate(s, m, h, fd)


def _upcast(p):
    """A float (or complex) primal as a float64 (complex128) array; anything else as it is."""
    a = np.asarray(p)
    if np.issubdtype(a.dtype, np.floating):
        return jnp.asarray(a.astype(np.float64))
    if np.issubdtype(a.dtype, np.complexfloating):
        return jnp.asarray(a.astype(np.complex128))
    return p


# ---- the checker's differences: sampling on its context, observed rounding, batches ------------------
PROBE_BATCH = 8  # directions per compiled FD call in auto mode (also the bisection's branching)


def probe_width(chunk: int) -> int:
    """Directions per call of the directional sampler: one compiled shape for the probes of (b), the
    kink checks of (a) and every bisection round (and the shape gradcheck prefetches)."""
    return max(2, min(chunk, PROBE_BATCH))


STEP_SCALES = (1.125, 0.875)  # the reruns of with_observed_noise


def sampler(ctx):
    """The build of the directional sampler's program (role "sampler"): every caller of the role must
    build the same program."""
    return lambda: make_sampler(ctx.problem.F64, ctx.fd, ctx.inline_f0)


def sample_directions(ctx, dirs, gs):
    """phi samples along a batch of directions (see :func:`make_sampler`), as float64 numpy arrays."""
    with float64_scope():
        x = [put(xi) for xi in ctx.x64]
        d = [put(np.asarray(di, np.float64)) for di in dirs]
        g = [put(np.asarray(gi, np.float64)) for gi in gs]
        s, m = ctx.programs.call("sampler", sampler(ctx), x, d, g)[:2]
        return np.asarray(s, np.float64), np.asarray(m, np.float64)


def sample_entries(ctx, leaf: int, idx, cots: list, step_scale: float = 1.0):
    """phi samples along ``step_scale * h_i e_i`` of one leaf for each cotangent in ``cots``."""
    with float64_scope():
        x = [put(xi) for xi in ctx.x64]
        idx = np.asarray(idx, np.int64)
        h = ctx.steps[leaf].reshape(-1)[idx] * step_scale
        g = [put(np.stack([np.asarray(c[j], np.float64) for c in cots])) for j in range(len(cots[0]))]
        build = lambda: make_entry_sampler(ctx.problem.F64, ctx.fd, leaf)
        idx, h = put(idx), put(np.asarray(h, np.float64))
        if ctx.mesh is not None:  # the perturbations split over the devices (GSPMD), the rest replicated
            idx, h = (jax.device_put(a, batch_sharding(ctx.mesh)) for a in (idx, h))
            x, g = jax.device_put((x, g), replicated(ctx.mesh))
        s, m = ctx.programs.call(f"entries{leaf}", build, x, idx, h, g)
        return np.asarray(s, np.float64), np.asarray(m, np.float64)


def noise_rerun(ctx) -> bool:
    """Whether finite differences are rerun at other steps to observe their own rounding: where a
    leaf is float64 (for float32 leaves the float64 differences are ~2^29 times finer than the
    rule's allowance) and the scheme is central."""
    return ctx.fd == "central" and any(e <= FLOAT64_EPS for e in ctx.eps)


def with_observed_noise(ctx, run, base: float = 1.0) -> Differences:
    """``run(base)``, its error bar widened by the differences' own observed rounding.

    ``run(k)`` computes the differences with every step multiplied by ``k`` (in per-step units of the
    unscaled step). The float64 rounding floor ``8·3·ε·Σ|g||f|`` assumes f rounds like a few operations
    on its result; a cancelling f (a rule differentiated again near a removable singularity) rounds
    far more, and its differences with it. Where a leaf is float64 the differences are rerun at steps
    ``1.125·base·h`` and ``0.875·base·h``: truncation changes smoothly with the step (and is already in
    the Richardson bar), rounding does not, so ``8·max_k |R_k − R|`` is added to the error bar. (A
    float32 rerun does not work here: a float32 evaluation of such a formula cancels completely, and
    its error no longer scales with ε.)
    """
    d = run(base)
    if not noise_rerun(ctx):
        return d
    spread = np.zeros(np.shape(d.value))
    for k in STEP_SCALES:
        dk = run(base * k)
        with np.errstate(invalid="ignore"):
            spread = np.maximum(spread, np.where(np.isfinite(dk.value), np.abs(dk.value - d.value), 0.0))
    extra = SLACK * np.nan_to_num(spread, nan=0.0, posinf=0.0)
    return Differences(d.value, d.error + extra, d.kink, d.left, d.right, d.side_error + extra, d.one_sided)


def _central(d: Differences) -> np.ndarray:
    """Where ``d`` (central scheme: ``one_sided`` is set) is a central estimate: f defined at every
    sample on both sides."""
    return d.defined & ~d.one_sided


def refined(ctx, run_on, n: int, eighth: bool = True) -> Differences:
    """The differences of ``n`` directions at the step, taken again at shorter steps where the step
    does not resolve f.

    ``run_on(sel)`` is the ``run`` of :func:`with_observed_noise` for the directions ``sel`` (arrays
    with those directions on their first axis). The Richardson error bar measures truncation only
    while the step resolves f. Across a singularity or a domain edge closer to x than the step, f is
    NaN/inf at a sample (``log1mexp`` at 1e-3 with float32's step 4.9e-3; a ±1 probe that carries an
    entry at 0.999 out of ``arccos``'s domain), its one-sided slopes differ as at a kink (log|det A|
    with det carried through 0: 12.7 for 16 221), its error bar is wide (above ``UNRESOLVED`` of the
    largest estimate of the batch: a probe of slogdet near singular at 3.0 ± 0.46 for 8.2, beside
    probes of 10–20), or the estimate is smooth, confident and wrong (slogdet near singular: 610 for
    1 558). A direction is taken again where any of these shows. The last needs a second sample:
    with ``eighth`` (the probes, their bisection and the re-examination of (a): a few directions),
    every direction is also sampled at an eighth of the step (one more batch of the same compiled
    program) and taken again where the two disagree beyond both error bars while f moved at that
    step. Full mode, one direction per entry, leaves it out: it would double its evaluations of f.

    Those directions are taken at each of ``REFINE_SCALES``; each estimate's error bar is widened to
    its distance from the next shorter step's (Ridders' test of convergence), and the central,
    kink-free estimate with the smallest widened bar is kept. The samples are float64; their
    rounding grows as the step shrinks and is in the bar (the rounding floor, and the float64 leaves'
    observed rounding), so a step too short for f loses to a longer one. An estimate from samples
    where f did not move at all is not taken: f's float64 values can be coarser than the step
    (``log(1 + eˣ)`` at −25, whose 1 + eˣ rounds in steps of ε). A direction that met a "kink" at
    the step and is smooth at a shorter one gives up the kink: x is not on it, and across a pole the
    one-sided slopes span everything (digamma at −19.1, a pole 0.1 away, step 0.09, accepted any
    value). A direction with no central, kink-free estimate at any scale keeps the first: x on a
    kink itself (the subgradient test decides), or on a domain edge itself (``sqrt`` at 0:
    one-sided).
    """
    d = with_observed_noise(ctx, run_on(np.arange(n)))
    if ctx.fd != "central" or n == 0:
        return d
    smooth = _central(d) & ~np.asarray(d.kink, bool)
    with np.errstate(invalid="ignore"):
        finite = np.where(np.isfinite(d.value), np.abs(d.value), 0.0)
        smooth &= ~(d.error > UNRESOLVED * np.max(finite, axis=0, keepdims=True))
        if eighth:
            check = run_on(np.arange(n))(REFINE_SCALES[0])
            moved = ~((check.value == 0) & (check.left == 0) & (check.right == 0))
            smooth &= ~(moved & _central(check) & (np.abs(d.value - check.value) > 2.0 * (d.error + check.error)))
    todo = np.flatnonzero(~smooth.reshape(n, -1).all(axis=1))
    if todo.size == 0:
        return d
    fields = [np.array(getattr(d, name), copy=True) for name in _FIELDS]
    first = Differences(*(f[todo] for f in fields))
    steps = [first] + [with_observed_noise(ctx, run_on(todo), base=scale) for scale in REFINE_SCALES]
    best = np.full(np.shape(first.value), np.inf)
    chosen = [np.array(getattr(first, name), copy=True) for name in _FIELDS]
    for k, dk in enumerate(steps):
        other = steps[k + 1] if k + 1 < len(steps) else steps[k - 1]
        with np.errstate(invalid="ignore"):
            widened = np.maximum(dk.error, np.abs(dk.value - other.value))
            widened = np.where(np.isfinite(widened), widened, dk.error)
            # f that did not move at any sample of a shorter step says nothing of its slope there: its
            # float64 values are coarser than the step (1 + eˣ at x = −25 rounds in steps of ε).
            moved = (k == 0) | ~((dk.value == 0) & (dk.left == 0) & (dk.right == 0))
            better = _central(dk) & ~np.asarray(dk.kink, bool) & moved & (widened < best)
        for j, name in enumerate(_FIELDS):
            value = getattr(dk, name)
            if name == "error":
                value = widened
            elif name == "side_error":
                value = np.maximum(dk.side_error, widened)
            chosen[j] = np.where(better, value, chosen[j])
        best = np.where(better, widened, best)
    for j in range(len(_FIELDS)):
        fields[j][todo] = chosen[j]
    return Differences(*fields)


_FIELDS = ("value", "error", "kink", "left", "right", "side_error", "one_sided")
REFINE_SCALES = (8.0**-1, 8.0**-2, 8.0**-3, 8.0**-4, 8.0**-5)  # the shorter steps of :func:`refined`
UNRESOLVED = 1e-2  # an error bar above 1 % of the largest estimate of its batch: the step does not resolve f


def entry_differences(ctx, leaf: int, idx, cots: list, chunk: int) -> Differences:
    """Finite differences of ``<g_c, f>`` w.r.t. entries ``idx`` of ``leaf``, in derivative units.

    Returns arrays of shape ``(len(idx), len(cots))``. Evaluated in fixed-size chunks (padded, so
    one compilation serves every chunk), each a vmap over ``chunk`` perturbed copies of the leaf;
    the step is shortened where it does not resolve f (:func:`refined`).
    """
    idx = np.asarray(idx, np.int64).reshape(-1)
    chunk = max(1, min(int(chunk), len(idx)))
    if ctx.mesh is not None:  # a whole number of perturbations per device
        k = ctx.mesh.size
        chunk = -(-chunk // k) * k

    def run_on(sel):
        entries = idx[sel]

        def run(scale):
            samples, mags = [], []
            for start in range(0, len(entries), chunk):
                part = entries[start : start + chunk]
                pad = np.concatenate([part, np.full(chunk - len(part), part[0])])
                s, m = sample_entries(ctx, leaf, pad, cots, step_scale=scale)
                samples.append(s[: len(part)] / scale)
                mags.append(m[: len(part)] / scale)
            return differences(np.concatenate(samples), np.concatenate(mags), ctx.fd, ctx.fd_eps)

        return run

    d = refined(ctx, run_on, len(idx), eighth=False)
    return d.scaled(ctx.steps[leaf].reshape(-1)[idx][:, None])


def directional_differences(ctx, gbatch, dirs_batch, chunk):
    """Differences (per-step units) of ``<g_k, f>`` along ``dirs_batch[k]``, in padded chunks; the
    step is shortened where it does not resolve f (:func:`refined`)."""
    n = len(dirs_batch)
    chunk = max(1, chunk)  # always padded to ``chunk``: one compiled shape for every caller

    def run_on(sel):
        chosen_dirs, chosen_gs = [dirs_batch[i] for i in sel], [gbatch[i] for i in sel]

        def run(scale):
            samples, mags = [], []
            for start in range(0, len(chosen_dirs), chunk):
                part, gpart = chosen_dirs[start : start + chunk], chosen_gs[start : start + chunk]
                k = len(part)
                part, gpart = part + [part[0]] * (chunk - k), gpart + [gpart[0]] * (chunk - k)
                dirs = [np.stack([d[j] for d in part]) * scale for j in range(len(part[0]))]
                gs = [np.stack([np.asarray(g[j], np.float64) for g in gpart]) for j in range(len(gpart[0]))]
                s, m = sample_directions(ctx, dirs, gs)
                samples.append(s[:k] / scale)
                mags.append(m[:k] / scale)
            return differences(np.concatenate(samples), np.concatenate(mags), ctx.fd, ctx.fd_eps)

        return run

    return refined(ctx, run_on, n)


def pair_differences(ctx, pairs, cots, width: int) -> Differences:
    """Finite differences for (cotangent c, leaf, flat index i) pairs, in derivative units.

    Uses the directional sampler (basis direction ``h_i e_i`` with cotangent ``g_c``) in batches of
    ``width``, the compiled shape the probes of comparison (b) use, so nothing extra is compiled.
    """
    dirs, gs, h = [], [], []
    for c, leaf, i in pairs:
        d = [np.zeros(np.shape(x)) for x in ctx.x64]
        hi = ctx.steps[leaf].reshape(-1)[i]
        d[leaf].reshape(-1)[i] = hi
        dirs.append(d)
        gs.append(cots[c])
        h.append(hi)
    d = directional_differences(ctx, gs, dirs, width)
    return d.scaled(np.asarray(h))


def default_chunk(ctx, chunk_size) -> int:
    """Directions per compiled call: bounded so a call holds about 2^22 float64s per sample point."""
    if chunk_size:
        return int(chunk_size)
    total = sum(int(np.prod(np.shape(x))) for x in ctx.x64) + sum(int(np.prod(o.shape)) for o in ctx.problem.out)
    return int(np.clip((1 << 22) // max(total, 1), 1, 1024))


def check_degraded(ctx, sampler_width: int | None = None) -> None:
    """Detect an f that computes in float32 inside even when called with float64 inputs.

    Its float64 outputs then carry float32 rounding: every float64 finite difference is only as
    good as float32, and so is the rule. Evidence, from f at x nudged off the float32 grid: an output
    dtype below float64, or every finite output value exactly representable in float32 while some
    has more than bfloat16's 8 significant bits (a float64 result lands on a float32 by chance with
    probability 2^-29 per value). Then ``ctx.fd_eps`` (the rounding unit of the differences) and each
    leaf's eps become float32's, the steps are sized for float32, and ``ctx.degraded`` says why.
    ``sampler_width``: f's outputs are read from the inline sampler (:func:`inline_f0`) of this
    width, already compiled; None: from a program of f alone.
    """
    eps32 = float(np.finfo(np.float32).eps)
    # Evaluated at x nudged off the float32 grid (relative 3·2⁻⁴⁰), so that f(x) = x on float32
    # inputs, exact float32 numbers, does not read as a float32 computation.
    nudged = [xi * (1.0 + 3.0 * 2.0**-40) for xi in ctx.x64]
    try:
        with float64_scope():
            if sampler_width:  # f's outputs at x, from the (inline) sampler along zero directions
                d = [put(np.zeros((sampler_width, *np.shape(xi)))) for xi in nudged]
                g = [put(np.zeros((sampler_width, *o.shape))) for o in ctx.problem.out]
                out = ctx.programs.call("sampler", sampler(ctx), [put(xi) for xi in nudged], d, g)[2]
            else:
                out = ctx.programs.call("f64", lambda: jax.jit(ctx.problem.F64), [put(xi) for xi in nudged])
            dtypes = [np.dtype(o.dtype) for o in out]
            vals = np.concatenate([np.asarray(o, np.float64).reshape(-1) for o in out]) if out else np.zeros(0)
    except Exception:  # noqa: BLE001 - f not runnable in float64: (b) reports that
        return
    if [np.size(o) for o in out] == [int(np.prod(p.shape)) for p in ctx.problem.out]:
        ctx.out_abs = [np.abs(np.asarray(o, np.float64)).reshape(p.shape) for o, p in zip(out, ctx.problem.out)]
    vals = vals[np.isfinite(vals)]
    low_dtype = any(d.itemsize < 8 for d in dtypes)
    as32 = vals.astype(np.float32).astype(np.float64)
    import ml_dtypes  # shipped with jaxlib

    as_bf16 = vals.astype(ml_dtypes.bfloat16).astype(np.float64)
    representable = vals.size > 0 and bool(np.all(as32 == vals)) and bool(np.any(as_bf16 != vals))
    if low_dtype or representable:
        why = (f"returns {'/'.join(sorted({str(d) for d in dtypes}))} for float64 inputs" if low_dtype
               else "returns float64 values that are all exact float32 numbers for float64 inputs")
        ctx.degraded = (f"f computes in float32 inside (it {why}): finite differences and the reference carry "
                        "float32 rounding, so their error bars and the rule's allowance use float32's ε")
        ctx.fd_eps = max(ctx.fd_eps, eps32)
        ctx.eps = [max(e, eps32) for e in ctx.eps]
        # A step sized for float64 (ε^(1/3) = 6e-6) drowns in float32 rounding: size it for float32.
        ctx.steps = [step_sizes(xi, np.float32, ctx.fd) if np.dtype(p.dtype).itemsize > 4 else h
                     for xi, p, h in zip(ctx.x64, ctx.problem.x, ctx.steps)]
