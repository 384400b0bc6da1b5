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

**Moments that vary within a slice.** jax.nn broadcasts a given ``mean``, ``variance`` or ``epsilon``
of any shape that fits x (a per-feature variance over the last axis, an ε per entry), and then r, and
"fast"'s clip factor, vary within the slice. The same graph gives, with w = x − μ (x for "fast" with a
given mean), x̄ = g·r − [j included]·(Σ g·r + w·Σ g·y·r²·clip)/n: the A and C terms with r inside the
sums, which for one r per slice is the rule above.

**Residuals**: y (the output, which the next layer reads anyway), r and the clip factor per slice; x
only where it is needed ("fast" with a given mean), and w where r varies within a slice.
"""
from __future__ import annotations

import jax.numpy as jnp
from jax import lax

from fnnet._checks import axes as _axes
from fnnet._checks import bool_mask, broadcasts_to, common_dtype, real_array
from fnnet._numerics import backend, max_slope, slice_count
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
            clip = max_slope(raw, 0)  # jax's derivative of the clip: 1, ½ at the tie, 0 where clipped
    else:
        v = variance
    return mu, lax.rsqrt(v + epsilon), clip


def _forward(x, axis=-1, mean=None, variance=None, epsilon=1e-5, where=None, algorithm="fast"):
    mu, r, _ = _moments(x, _axes(axis, x.ndim, _WHERE), mean, variance, epsilon, where, algorithm)
    return jnp.subtract(x, mu) * r


def _fwd(x, axis=-1, mean=None, variance=None, epsilon=1e-5, where=None, algorithm="fast"):
    axes = _axes(axis, x.ndim, _WHERE)
    mu, r, clip = _moments(x, axes, mean, variance, epsilon, where, algorithm)
    d = jnp.subtract(x, mu)
    y = d * r
    through_x = variance is None and mean is not None and algorithm == "fast"  # ∂v/∂x_j = 2x_j/n
    if _per_slice(r, axes, x.ndim) and _per_slice(clip, axes, x.ndim):
        return y, (y, r, clip, x if through_x else None)
    # r or the clip factor varies within a slice (a given variance, epsilon or mean of the input's
    # shape): the general rule, which reads x − μ (or x) itself
    return y, (y, r, clip, (x if through_x else d) if variance is None else None)


def _per_slice(a, axes, ndim):
    """Whether ``a`` (None, or an array that broadcasts to the input's ``ndim`` axes) is one number per
    slice: of size 1 on every reduced axis, its axes aligned with the input's trailing ones."""
    if a is None:
        return True
    offset = ndim - a.ndim
    return all(a.shape[i - offset] == 1 for i in axes if i >= offset)


def _included(v, where):
    return v if where is None else jnp.where(where, v, jnp.zeros((), v.dtype))


def _slice_sums(a, b, axes, both):
    """(Σa, Σb) over the slice, reduced axes kept. Both at once (``both``), off XLA:CPU, as one
    reduction of the two stacked: on XLA:GPU a lone Σg beside its consumer g − Σg/n is a
    "normalization diamond" that XLA compiles with its Triton emitter (compile of jit(value_and_grad)
    at 1024 × 1024, deviceless for the H200, where jax.nn's gradient has no such diamond: 1.64×
    jax.nn's separate, 0.94–1.06× stacked in three runs of ``python -m benchmarks dropin --sections
    compile --gpu-target-config benchmarks/gpu_targets/h200.pbtxt --ops standardize``). On XLA:CPU
    there is no such emitter and the stack is written to memory (fwd+bwd 0.90 ms against 0.55 apart,
    a script outside the repository), so the sums stay apart."""
    if both and backend() != "cpu":
        s = jnp.sum(jnp.stack([a, b]), tuple(i + 1 for i in axes), keepdims=True)
        return s[0], s[1]
    return jnp.sum(a, axes, keepdims=True), jnp.sum(b, axes, keepdims=True)


def _bwd(res, g, axis=-1, mean=None, variance=None, epsilon=1e-5, where=None, algorithm="fast"):
    y, r, clip, w = res
    axes = _axes(axis, y.ndim, _WHERE)
    n = slice_count(y, axes, where, y.dtype)
    both = mean is None and variance is None
    if _per_slice(r, axes, y.ndim) and _per_slice(clip, axes, y.ndim):
        # r and clip are one number per slice: x̄ = r·(g − (Σg + y·Σg·y)/n), from y alone (x − μ = y/r);
        # "fast" with a given mean reads x (∂v/∂x_j = 2x_j/n there)
        sum_g, sum_gy = _slice_sums(g, g * y, axes, both)
        inner = g
        if mean is None:  # μ = mean(x) fans out to every output: ∂L/∂μ = −r·Σg, and ∂μ/∂x_j = 1/n
            inner = inner - _included(sum_g / n, where)
        if variance is None:  # v fans out likewise: ∂L/∂v = −½ r²·Σ g·y, and ∂v/∂x_j = 2(x_j − μ)/n
            c = sum_gy / n
            if clip is not None:
                c = c * clip
            inner = inner - _included((y if w is None else w * r) * c, where)
        return (inner * r,)
    # r (or clip) varies within the slice: ∂L/∂μ = −Σ g·r, ∂L/∂v summed over the slice = −½ Σ g·y·r²·clip,
    # and ∂v/∂x_j = 2w_j/n with w = x − μ (or x, "fast" with a given mean)
    gr = g * r
    sum_gr, sum_v = _slice_sums(gr, gr * y * r * (1 if clip is None else clip), axes, both)
    inner = gr
    if mean is None:
        inner = inner - _included(sum_gr / n, where)
    if variance is None:
        inner = inner - _included(w * (sum_v / n), where)
    return (inner,)


def _jvp(primals, tangents, out, axis=-1, mean=None, variance=None, epsilon=1e-5, where=None,
         algorithm="fast"):
    # ẏ = r·(ṫ − Σṫ/n) − y·r²·clip·Σ w·ṫ/n, with w = x − μ (or x, "fast" with a given mean); the terms
    # as above, for r and clip per slice or per entry alike
    (x,), (t,) = primals, tangents
    axes = _axes(axis, x.ndim, _WHERE)
    mu, r, clip = _moments(x, axes, mean, variance, epsilon, where, algorithm)
    n = slice_count(x, axes, where, x.dtype)
    inner = t
    if mean is None:
        inner = inner - jnp.sum(_included(t, where), axes, keepdims=True) / n
    inner = inner * r
    if variance is None:
        w = x if mean is not None and algorithm == "fast" else jnp.subtract(x, mu)
        c = jnp.sum(_included(w * t, where), axes, keepdims=True) / n
        if clip is not None:
            c = c * clip
        inner = inner - out * r * r * c
    return inner


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
        if aux.get(k) is None:
            continue
        real_array(aux[k], _WHERE, named[k])
        dtype = common_dtype(_WHERE, jnp.zeros((), dtype), aux[k], "'x'", named[k])
    out = {}
    for k in named:
        v = aux.get(k)
        if v is None:
            out[k] = None
            continue
        v = jnp.asarray(v, dtype)
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
  epsilon: added to the variance: a number or an array broadcastable to x (may be traced).
  where: optional boolean mask: only the entries where it is True enter the mean and the variance;
    every entry is standardized.
  algorithm: ``"fast"`` (jax.nn's default: v = max(mean(x²) − μ², 0), which cancels when |μ| ≫ σ)
    or ``"stable"`` (v = mean((x − μ)²)); static.

Returns:
  An array of x's shape (its dtype promoted with ``mean``, ``variance`` and ``epsilon`` as jax.numpy
  promotes).

Derivative (the hand rule, with A = Σg and C = Σg·y over the slice, n its included entries):
:math:`x̄ = r·(g − (A + y·C)/n)` at included entries and :math:`r·g` at masked ones, r = (v + ε)^{−1/2};
without the A term when ``mean`` is given, without the C term when ``variance`` is given (with r
inside both sums where a given moment or ε varies within the slice: the module's docstring).
""",
).fn
