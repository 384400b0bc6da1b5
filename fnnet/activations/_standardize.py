r"""standardize: jax.nn's zero-mean, unit-variance normalization over an axis (layer norm without its
affine parameters), with its backward pass written out.

The forward is jax.nn.standardize's, operation for operation: over the slice (the ``axis``; the
entries where ``where`` is True, n of them)

    μ = mean(x),   v = mean((x − μ)²)  ("stable")  or  max(mean(x²) − μ², 0)  ("fast", jax.nn's default),
    r = (v + ε)^{−1/2},   y = (x − μ)·r   (every entry, masked ones included).

**Backward, by the graph.** μ and v are computed once per slice and fan out to every output, so their
cotangents are sums over the slice (accumulation at fan-out). With A = Σ g and C = Σ g·y over the slice
(all entries: every output depends on μ and r), ∂L/∂μ = −r·A (through y; v's own dependence on μ,
−2·mean(x − μ), is zero), ∂L/∂v = −½ r³ Σ g·(x − μ) = −½ r²·C, ∂μ/∂x_j = 1/n and ∂v/∂x_j = 2(x_j − μ)/n
for an included entry j, so

    x̄ = r·(g − [j included]·(A + y·C)/n),

the layer-norm backward. When ``mean`` is given (not computed from x) the A term drops out; when
``variance`` is given the C term does. "fast" differentiates max(·, 0) as jax does: the C term is
multiplied by 1 where mean(x²) − μ² > 0, ½ where it is 0 (jax's maximum at a tie) and 0 where it
was clipped; with ``mean`` given, its v = mean(x²) − μ² has ∂v/∂x_j = 2x_j/n, so the C term becomes
x_j·r·Σ g·y. The given ``mean``, ``variance`` and ``epsilon`` are differentiable too: their
derivatives come from autodiff of this forward (they are arguments beside x, not covered by the hand
rule).

**Residuals**: y (the output, which the next layer reads anyway), r and the clip factor per slice; x
only in the one case that needs it ("fast" with a given mean).
"""
from __future__ import annotations

import jax.numpy as jnp
from jax import lax

from fnnet._checks import axes as _axes
from fnnet._numerics import backend
from fnnet._checks import bool_mask, broadcasts_to, common_dtype
from fnnet.primitive import define, sample_rng, sampled

__all__ = ["standardize"]

_WHERE = "fnnet.standardize"
_ALGORITHMS = ("fast", "stable")


def _moments(x, axes, mean, variance, epsilon, where, algorithm):
    """``(μ, r, clip)``: the mean (given or computed), (v + ε)^{−1/2} and the clip factor of "fast"
    (None where v is given or "stable"), jax.nn.standardize's operations in its order."""
    mu = jnp.mean(x, axes, keepdims=True, where=where) if mean is None else mean
    clip = None
    if variance is None:
        if algorithm == "stable":
            v = jnp.mean(jnp.square(jnp.subtract(x, mu)), axes, keepdims=True, where=where)
        else:
            raw = jnp.mean(jnp.square(x), axes, keepdims=True, where=where) - jnp.square(mu)
            v = jnp.clip(raw, 0)
            # d max(raw, 0)/d raw as jax's maximum gives it: 1, ½ at the tie, 0 where clipped
            clip = jnp.where(raw > 0, 1.0, jnp.where(raw == 0, 0.5, 0.0)).astype(x.dtype)
    else:
        v = variance
    return mu, lax.rsqrt(v + epsilon), clip


def _forward(x, axis=-1, mean=None, variance=None, epsilon=1e-5, where=None, algorithm="fast"):
    mu, r, _ = _moments(x, _axes(axis, x.ndim, _WHERE), mean, variance, epsilon, where, algorithm)
    return jnp.subtract(x, mu) * r


def _fwd(x, axis=-1, mean=None, variance=None, epsilon=1e-5, where=None, algorithm="fast"):
    mu, r, clip = _moments(x, _axes(axis, x.ndim, _WHERE), mean, variance, epsilon, where, algorithm)
    y = jnp.subtract(x, mu) * r
    keep_x = variance is None and mean is not None and algorithm == "fast"
    return y, (y, r, clip, x if keep_x else None)


def _count(shape, axes, where, dtype):
    """n per slice (reduced axes kept): the slice's size, or its entries where ``where`` is True."""
    if where is None:
        n = 1
        for a in axes:
            n *= shape[a]
        return jnp.asarray(n, dtype)
    return jnp.sum(jnp.broadcast_to(where, shape), axes, keepdims=True, dtype=dtype)


def _included(v, where):
    return v if where is None else jnp.where(where, v, jnp.zeros((), v.dtype))


def _slice_sums(g, y, axes, both):
    """(Σg, Σg·y) over the slice, reduced axes kept. Both at once (``both``), off XLA:CPU, as one
    reduction of the two stacked: on XLA:GPU a lone Σg beside its consumer g − Σg/n is a
    "normalization diamond" that XLA compiles with its Triton emitter (compile of jit(value_and_grad)
    at 1024 × 1024, deviceless for the H200: 1.64× jax.nn's separate, 1.01× stacked, where jax.nn's
    gradient has no such diamond). On XLA:CPU the stack is written to memory (fwd+bwd 0.90 ms against
    0.55 separate) and there is no diamond to avoid, so the sums stay apart."""
    if both and backend() != "cpu":
        s = jnp.sum(jnp.stack([g, g * y]), tuple(a + 1 for a in axes), keepdims=True)
        return s[0], s[1]
    return jnp.sum(g, axes, keepdims=True), jnp.sum(g * y, axes, keepdims=True)


def _bwd(res, g, axis=-1, mean=None, variance=None, epsilon=1e-5, where=None, algorithm="fast"):
    y, r, clip, x = res
    axes = _axes(axis, y.ndim, _WHERE)
    n = _count(y.shape, axes, where, y.dtype)
    sum_g, sum_gy = _slice_sums(g, y, axes, mean is None and variance is None)
    inner = g
    if mean is None:  # μ = mean(x) fans out to every output: ∂L/∂μ = −r·Σg, and ∂μ/∂x_j = 1/n
        inner = inner - _included(sum_g / n, where)
    if variance is None:  # v fans out likewise: ∂L/∂v = −½ r²·Σ g·y, and ∂v/∂x_j = 2(x_j − μ)/n
        c = sum_gy / n
        if clip is not None:
            c = c * clip
        inner = inner - _included((y if x is None else x * r) * c, where)
    return (inner * r,)


def _jvp(primals, tangents, out, axis=-1, mean=None, variance=None, epsilon=1e-5, where=None,
         algorithm="fast"):
    (x,), (t,) = primals, tangents
    axes = _axes(axis, x.ndim, _WHERE)
    _, r, clip = _moments(x, axes, mean, variance, epsilon, where, algorithm)
    n = _count(x.shape, axes, where, x.dtype)
    inner = t
    if mean is None:
        inner = inner - jnp.sum(_included(t, where), axes, keepdims=True) / n
    if variance is None:
        if mean is not None and algorithm == "fast":
            c = r * jnp.sum(_included(x * t, where), axes, keepdims=True) / n
        else:
            c = jnp.sum(_included(out * t, where), axes, keepdims=True) / n
        if clip is not None:
            c = c * clip
        inner = inner - out * c
    return inner * r


def _reference(x, axis=-1, mean=None, variance=None, epsilon=1e-5, where=None, algorithm="fast"):
    """Plain jnp, jax.nn.standardize's formula, for autodiff as an oracle."""
    if mean is None:
        mean = jnp.mean(x, axis, keepdims=True, where=where)
    if variance is None:
        if algorithm == "stable":
            variance = jnp.mean(jnp.square(x - mean), axis, keepdims=True, where=where)
        else:
            variance = jnp.clip(jnp.mean(jnp.square(x), axis, keepdims=True, where=where) - jnp.square(mean), 0)
    return (x - mean) * lax.rsqrt(variance + epsilon)


def _convert(arrays, aux, static):
    """``mean``, ``variance`` and ``epsilon`` in one dtype with x, as jax.numpy promotes ``x − mean``
    and ``variance + epsilon`` (a Python number takes the arrays' dtype); the mask as a boolean array."""
    (x,) = arrays
    dtype = x.dtype
    named = {"mean": "'mean'", "variance": "'variance'", "epsilon": "'epsilon'"}
    for k in named:
        v = aux.get(k)
        if v is None:
            continue
        v = jnp.asarray(v)
        if not jnp.issubdtype(v.dtype, jnp.number) or jnp.issubdtype(v.dtype, jnp.complexfloating):
            raise TypeError(f"{_WHERE}: {named[k]} must be a real array or number; got dtype {v.dtype}")
        dtype = common_dtype(_WHERE, jnp.zeros((), dtype), aux[k], "'x'", named[k])
    if not jnp.issubdtype(dtype, jnp.inexact):
        dtype = x.dtype
    out = {}
    for k in named:
        v = aux.get(k)
        if v is None:
            out[k] = None
            continue
        v = jnp.asarray(v, dtype)
        if k != "epsilon":
            broadcasts_to(v, x.shape, _WHERE, k)
        out[k] = v
    m = aux.get("where")
    if m is not None:
        m = bool_mask(m, _WHERE)
        broadcasts_to(m, x.shape, _WHERE, "where")
    return (x.astype(dtype),), {**aux, **out, "where": m}


def _validate(x, axis=-1, mean=None, variance=None, epsilon=1e-5, where=None, algorithm="fast"):
    _axes(axis, x.ndim, _WHERE)
    if algorithm not in _ALGORITHMS:
        raise ValueError(f"{_WHERE}: unknown algorithm {algorithm!r}; expected 'fast' or 'stable'")
    if jnp.ndim(epsilon) != 0:
        raise ValueError(f"{_WHERE}: 'epsilon' must be a scalar; got shape {jnp.shape(epsilon)}")


def _sample(key, dtype=jnp.float32, shape=(3, 5), **static):
    # Rows of different means and spreads, so that neither the mean nor the variance term vanishes.
    rng = sample_rng(key)
    x = rng.standard_normal(shape) * rng.uniform(0.5, 2.0, shape[:-1] + (1,)) + rng.uniform(-2, 2, shape[:-1] + (1,))
    return (sampled(x, dtype),)


standardize = define(
    "standardize",
    forward=_forward, fwd=_fwd, bwd=_bwd, jvp=_jvp, reference=_reference, arg_names=("x",),
    static={"axis": -1, "mean": None, "variance": None, "epsilon": 1e-5, "where": None, "algorithm": "fast"},
    traced=("mean", "variance", "epsilon", "where"), convert=_convert, validate=_validate, sample=_sample,
    # axis 0 of the suites' (2, 3) samples is a slice of two, whose outputs are ±√(v/(v + ε)) whatever
    # x: the derivative, O(ε·r³), is a difference of O(r) terms, so with ε = 1e-5 any formula for it
    # (the hand rule's, autodiff's) keeps only ~11 digits; that variant takes ε = 0.5, and the slice
    # of two with the default ε is checked against exact arithmetic with its own bound in
    # tests/test_standardize.py.
    variants=({}, {"algorithm": "stable"}, {"axis": 0, "epsilon": 0.5}, {"axis": None, "algorithm": "stable"}),
    derivation="y = (x − μ)·r, μ and v fan out to the slice ⇒ x̄ = r·(g − (Σg + y·Σ g·y)/n)",
    doc=r"""Standardize :math:`(x − μ)/\sqrt{v + ε}` over ``axis`` (jax.nn.standardize's signature).

Arguments:
  x: floating array. axis: int, tuple of ints or None (all axes); static; default the last axis.
  mean, variance: optional arrays broadcastable to x, used instead of the slice's mean and variance
    (differentiable, by autodiff of the forward).
  epsilon: added to the variance (a scalar; may be traced). where: optional boolean mask: only the
    entries where it is True enter the mean and the variance; every entry is standardized.
  algorithm: ``"fast"`` (jax.nn's default: v = max(mean(x²) − μ², 0), which cancels when |μ| ≫ σ)
    or ``"stable"`` (v = mean((x − μ)²)); static.

Returns:
  An array of x's shape (its dtype promoted with ``mean``, ``variance`` and ``epsilon`` as jax.numpy
  promotes).

Derivative (the hand rule, with A = Σg and C = Σg·y over the slice, n its included entries):
:math:`x̄ = r·(g − (A + y·C)/n)` at included entries and :math:`r·g` at masked ones, r = (v + ε)^{−1/2};
without the A term when ``mean`` is given, without the C term when ``variance`` is given.
""",
).fn
