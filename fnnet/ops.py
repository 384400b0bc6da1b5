r"""Arithmetic primitives with hand-written, broadcasting-aware rules: what computation graphs are built of.

Every op here is a :class:`fnnet.primitive.Primitive`: a jitted function whose reverse mode runs the
rule written below, forward mode on the same function, and a plain ``jnp`` reference for
``jax.vjp`` to differentiate as an independent oracle. The rules, as a page of a calculus book
(``g`` is the cotangent of the output, ``t`` a tangent, ``z`` the output):

================  ==============================  ================================  ================
op                VJP (cotangent of each input)   JVP (tangent of the output)       residuals
================  ==============================  ================================  ================
add(x, y)         Σ g,  Σ g                       tx + ty                           shapes only
subtract(x, y)    Σ g,  −Σ g                      tx − ty                           shapes only
multiply(x, y)    Σ g·y,  Σ g·x                   tx·y + x·ty                       x, y
divide(x, y)      Σ g/y,  −Σ (g/y)·z              (tx − ty·z)/y                     y, z, x's shape
negative(x)       −g                              −t                                x (for NaN)
matmul(x, y)      g·yᵀ,  xᵀ·g (Σ over batch)      tx·y + x·ty                       x, y
sum(x, axis)      g broadcast back to x           sum(t, axis)                      shape only
mean(x, axis)     g/n broadcast back to x         mean(t, axis)                     shape only
exp(x)            g·z                             t·z                               z (the output)
log(x)            g/x                             t/x                               x
================  ==============================  ================================  ================

**Broadcasting.** Binary ops broadcast like numpy. Broadcasting copies an input along new leading axes
and along axes of size 1; the adjoint of a copy is a sum, so "Σ" above means the cotangent summed back
to that input's shape (``fnnet._numerics.unbroadcast``). Shapes are static, so ``add`` and
``subtract`` keep no array at all for their backward pass.

**matmul** follows ``numpy.matmul`` exactly, 1-D operands included: a 1-D ``x`` is a row vector (a
length-1 axis is prepended, then removed from the result), a 1-D ``y`` a column vector; batch axes
(all but the last two) broadcast. 0-D operands are refused, as numpy refuses them. Products follow
JAX's matmul precision setting, as ``jnp.matmul`` does (on GPUs with TF32 use
``jax.default_matmul_precision("highest")`` for float32-exact products; ``fnnet.gradcheck`` does).

**Entry points.** ``fnnet.ops.add(x, y)`` is the public function (validated in plain Python, then the
``custom_vjp``). ``fnnet.primitive.get("add")`` gives the primitive, whose ``forward(*arrays,
**static)``, ``fwd(*arrays, **static) -> (out, residuals)`` and ``bwd(residuals, g, **static)`` work on
their own, with positional arrays and keyword hyperparameters (``axis``, ``keepdims``), as
:mod:`fnnet.graph` calls them.

**Dtypes.** The two operands of a binary op must share a dtype (a Python scalar adapts to the other
operand, as in jnp); float32 with float64 is a ``TypeError`` naming both, because the cotangent of
each input must come back in that input's dtype.
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from fnnet._checks import axes, same_dtype
from fnnet._numerics import unbroadcast
from fnnet.primitive import define, elementwise, sample_rng, sampled

__all__ = [
    "add",
    "subtract",
    "multiply",
    "divide",
    "negative",
    "matmul",
    "sum",
    "mean",
    "exp",
    "log",
]

# Products follow JAX's matmul precision setting (jax.default_matmul_precision), as jnp.matmul does.
_PRECISION = None


# ---------------------------------------------------------------------------------------------
# Shared pieces: shapes, validation, sampling
# ---------------------------------------------------------------------------------------------


def _shape(a) -> tuple[int, ...]:
    # jnp.shape, not a.shape: under tracing a weakly typed Python scalar can arrive as a bare float.
    return tuple(jnp.shape(a))


def _validate_binary(where):
    def validate(x, y):
        try:
            np.broadcast_shapes(x.shape, y.shape)
        except ValueError:
            raise ValueError(
                f"fnnet.{where}: shapes {tuple(x.shape)} and {tuple(y.shape)} do not broadcast "
                "(numpy rules: aligned from the right, each pair of sizes equal or one of them 1)"
            ) from None
        same_dtype(f"fnnet.{where}", "x", x, "y", y, weak_ok=True)

    return validate


def _broadcast_pair(shape):
    """Two shapes that broadcast to ``shape`` with both operands actually broadcast.

    (3, 5) -> (3, 1) and (5,): the first is stretched along a size-1 axis, the second along a new
    leading axis, so the sampled inputs exercise both kinds of unbroadcast sum.
    """
    shape = tuple(shape)
    if not shape:
        return (), ()
    return shape[:-1] + (1,), shape[-1:]


def _sample_binary(lo, hi, away_from_zero_in_y=False):
    def sample(key, dtype=jnp.float32, shape=(3, 5)):
        sx, sy = _broadcast_pair(shape)
        rng = sample_rng(key)
        x = rng.uniform(lo, hi, sx)
        if away_from_zero_in_y:
            # |y| in [0.5, 2]: a denominator away from 0, so 1/y and x/y² stay moderate.
            y = rng.uniform(0.5, 2.0, sy) * rng.choice([-1.0, 1.0], sy)
        else:
            y = rng.uniform(lo, hi, sy)
        return sampled(x, dtype), sampled(y, dtype)

    return sample


def _binary(name, forward, fwd, bwd, jvp, reference, derivation, sample=None, **declaration):
    """Declare a broadcasting binary op ``(x, y)``: shapes that broadcast, one dtype (or a Python
    scalar), inputs sampled so that both operands are broadcast."""
    return define(
        name, forward=forward, fwd=fwd, bwd=bwd, jvp=jvp, reference=reference, arg_names=("x", "y"),
        sample=sample or _sample_binary(-4.0, 4.0), validate=_validate_binary(name),
        derivation=derivation, **declaration,
    ).fn


# ---------------------------------------------------------------------------------------------
# Binary elementwise ops (broadcasting)
# ---------------------------------------------------------------------------------------------

# ----- add -----------------------------------------------------------------------------------------
def _add(x, y):
    r"""Sum :math:`z = x + y`, broadcasting. VJP: :math:`\bar x = Σ g`, :math:`\bar y = Σ g`
    (each summed back to its input's shape). JVP: :math:`t_x + t_y`."""
    return jnp.add(x, y)


def _add_fwd(x, y):
    return jnp.add(x, y), (_shape(x), _shape(y))


def _add_bwd(res, g):
    sx, sy = res
    return unbroadcast(g, sx), unbroadcast(g, sy)


add = _binary(
    "add", _add, _add_fwd, _add_bwd,
    lambda p, t, z: t[0] + t[1], lambda x, y: x + y,
    "∂(x+y)/∂x = ∂(x+y)/∂y = 1; a broadcast input's cotangent is summed over the copies",
)


# ----- subtract ------------------------------------------------------------------------------------
def _subtract(x, y):
    r"""Difference :math:`z = x − y`, broadcasting. VJP: :math:`Σ g` and :math:`−Σ g`.
    JVP: :math:`t_x − t_y`."""
    return jnp.subtract(x, y)


def _subtract_fwd(x, y):
    return jnp.subtract(x, y), (_shape(x), _shape(y))


def _subtract_bwd(res, g):
    sx, sy = res
    return unbroadcast(g, sx), unbroadcast(-g, sy)


subtract = _binary(
    "subtract", _subtract, _subtract_fwd, _subtract_bwd,
    lambda p, t, z: t[0] - t[1], lambda x, y: x - y,
    "∂(x−y)/∂x = 1, ∂(x−y)/∂y = −1",
)


# ----- multiply ------------------------------------------------------------------------------------
def _multiply(x, y):
    r"""Product :math:`z = x·y`, broadcasting. VJP: :math:`\bar x = Σ g·y`, :math:`\bar y = Σ g·x`.
    JVP: :math:`t_x·y + x·t_y`."""
    return jnp.multiply(x, y)


def _multiply_bwd(res, g):
    x, y = res
    return unbroadcast(g * y, _shape(x)), unbroadcast(g * x, _shape(y))


multiply = _binary(
    "multiply", _multiply, lambda x, y: (jnp.multiply(x, y), (x, y)), _multiply_bwd,
    lambda p, t, z: t[0] * p[1] + p[0] * t[1], lambda x, y: x * y,
    "∂(xy)/∂x = y, ∂(xy)/∂y = x (the product rule)",
)


# ----- divide --------------------------------------------------------------------------------------
def _divide(x, y):
    r"""Quotient :math:`z = x/y`, broadcasting. VJP: :math:`\bar x = Σ g/y`,
    :math:`\bar y = −Σ (g/y)·z` (that is :math:`−g·x/y²`, written with the output so that
    :math:`y²` is never formed: it would overflow or underflow where :math:`x/y²` is representable).
    JVP: :math:`(t_x − t_y·z)/y`."""
    return jnp.divide(x, y)


def _divide_fwd(x, y):
    z = jnp.divide(x, y)
    return z, (_shape(x), y, z)  # x itself is not needed: x/y² = z/y


def _divide_bwd(res, g):
    sx, y, z = res
    gy = g / y
    return unbroadcast(gy, sx), unbroadcast(-gy * z, _shape(y))


divide = _binary(
    "divide", _divide, _divide_fwd, _divide_bwd,
    lambda p, t, z: (t[0] - t[1] * z) / p[1], lambda x, y: x / y,
    "∂(x/y)/∂x = 1/y, ∂(x/y)/∂y = −x/y² = −(x/y)/y; y = 0 is singular",
    sample=_sample_binary(-4.0, 4.0, away_from_zero_in_y=True),
    singular=(0.0,),
)


# ----- negative ------------------------------------------------------------------------------------
def _negative(x):
    r"""Negation :math:`z = −x`. Derivative :math:`−1`: linear, so its VJP is :math:`−g` and nothing is
    kept for the backward pass (a NaN input gives a NaN value; the derivative stays −1, as for
    ``identity`` and ``dense``)."""
    return jnp.negative(x)


negative = elementwise(
    "negative", _negative, lambda x, y: -jnp.ones_like(y), saves="y", nan_select=False,
    reference=lambda x: -x,
    derivation="d(−x)/dx = −1",
).fn


# ---------------------------------------------------------------------------------------------
# matmul (numpy semantics, batched)
# ---------------------------------------------------------------------------------------------


def _matmul_shapes(sx, sy):
    """The output shape of numpy.matmul for operand shapes ``sx`` and ``sy``, or ValueError."""
    if len(sx) == 0 or len(sy) == 0:
        raise ValueError(
            f"fnnet.matmul: operands must be at least 1-D (as in numpy.matmul; use multiply for "
            f"scalars); got shapes {sx} and {sy}"
        )
    kx = sx[-1]
    ky = sy[0] if len(sy) == 1 else sy[-2]
    if kx != ky:
        raise ValueError(
            f"fnnet.matmul: contracted dimensions differ: x of shape {sx} has {kx} columns (last "
            f"axis), y of shape {sy} has {ky} rows ({'only' if len(sy) == 1 else 'second-to-last'} axis)"
        )
    bx, by = sx[:-2], sy[:-2]
    try:
        batch = np.broadcast_shapes(bx, by)
    except ValueError:
        raise ValueError(
            f"fnnet.matmul: batch dimensions {bx} and {by} of shapes {sx} and {sy} do not broadcast"
        ) from None
    return tuple(batch) + sx[-2:-1] + sy[-1:] if len(sy) > 1 else tuple(batch) + sx[-2:-1]


def _validate_matmul(x, y):
    _matmul_shapes(tuple(x.shape), tuple(y.shape))
    same_dtype("fnnet.matmul", "x", x, "y", y, weak_ok=True)


def _matmul(x, y):
    r"""Matrix product with numpy semantics: :math:`Z = XY` over the last two axes, batch axes
    broadcast; a 1-D ``x`` is a row vector and a 1-D ``y`` a column vector (the added axis is removed
    from the result). Shapes: ``(..., m, k) @ (..., k, n) -> (..., m, n)``.

    VJP: :math:`\bar X = G Y^\top`, :math:`\bar Y = X^\top G`, each summed over the batch axes its
    operand was broadcast along. JVP: :math:`T_X Y + X T_Y`.
    """
    return jnp.matmul(x, y, precision=_PRECISION)


def _matmul_bwd(res, g):
    x, y = res
    sx, sy = _shape(x), _shape(y)
    # Lift 1-D operands to matrices as numpy does, and g with them, so that one rule covers all cases.
    x2 = x[None, :] if len(sx) == 1 else x
    y2 = y[:, None] if len(sy) == 1 else y
    g2 = g
    if len(sy) == 1:
        g2 = g2[..., None]  # the n = 1 axis numpy removed from the output
    if len(sx) == 1:
        g2 = jnp.expand_dims(g2, -2)  # the m = 1 axis
    gx = jnp.matmul(g2, jnp.swapaxes(y2, -1, -2), precision=_PRECISION)
    gy = jnp.matmul(jnp.swapaxes(x2, -1, -2), g2, precision=_PRECISION)
    # The matrix axes of gx, gy already match x2, y2; unbroadcast sums the batch axes only.
    gx = unbroadcast(gx, _shape(x2)).reshape(sx)
    gy = unbroadcast(gy, _shape(y2)).reshape(sy)
    return gx, gy


def _sample_matmul(key, dtype=jnp.float32, shape=(3, 5)):
    """x: (2, 1, m, k), y: (3, k, 2): both batch kinds (a size-1 axis, a missing leading axis)."""
    m, k = (tuple(shape) + (3, 5))[:2] if len(shape) < 2 else tuple(shape)[-2:]
    rng = sample_rng(key)
    return sampled(rng.uniform(-2.0, 2.0, (2, 1, m, k)), dtype), sampled(rng.uniform(-2.0, 2.0, (3, k, 2)), dtype)


matmul = define(
    "matmul",
    forward=_matmul,
    fwd=lambda x, y: (_matmul(x, y), (x, y)),
    bwd=_matmul_bwd,
    jvp=lambda p, t, z: _matmul(t[0], p[1]) + _matmul(p[0], t[1]),
    reference=lambda x, y: jnp.matmul(x, y, precision=_PRECISION),
    arg_names=("x", "y"),
    sample=_sample_matmul,
    validate=_validate_matmul,
    derivation="Z = XY: dZ = dX·Y + X·dY ⇒ ⟨G, dZ⟩ = ⟨G Yᵀ, dX⟩ + ⟨Xᵀ G, dY⟩",
).fn


# ---------------------------------------------------------------------------------------------
# Reductions
# ---------------------------------------------------------------------------------------------


def _validate_reduction(where):
    def validate(x, axis=None, keepdims=False):
        axes(axis, x.ndim, f"fnnet.{where}")
        if not isinstance(keepdims, bool):
            raise TypeError(f"fnnet.{where}: keepdims must be a bool; got {keepdims!r}")

    return validate


def _sum_back(g, shape, axis, keepdims):
    """The adjoint of a sum: g copied back along the reduced axes (reinserted as size 1 first)."""
    reduced = axes(axis, len(shape), "fnnet.sum")
    if not keepdims:
        g = jnp.expand_dims(g, reduced)
    return jnp.broadcast_to(g, shape)


def _sample_reduction(key, dtype=jnp.float32, shape=(3, 5), axis=None, keepdims=False):
    """Uniform on [−4, 4]; at least as many dimensions as ``axis`` needs."""
    shape = tuple(shape)
    need = 0 if axis is None else 1 + max(
        (a if a >= 0 else -a - 1) for a in ((axis,) if isinstance(axis, int) else axis)
    )
    shape = shape + (2,) * max(0, need - len(shape))
    return (sampled(sample_rng(key).uniform(-4.0, 4.0, shape), dtype),)


_REDUCTION_VARIANTS = (
    {},
    {"axis": 0},
    {"axis": -1, "keepdims": True},
    {"axis": (0, 1)},
)


# ----- sum -----------------------------------------------------------------------------------------
def _sum(x, axis=None, keepdims=False):
    r"""Sum over ``axis`` (all axes when None): :math:`z = Σ_{i∈axis} x_i`.

    VJP: :math:`\bar x = g` copied back along the summed axes (the adjoint of a sum is a copy, that of
    a copy a sum). JVP: ``sum(t, axis, keepdims)``. Keeps only the input's shape.
    """
    return jnp.sum(x, axis=axis, keepdims=keepdims)


def _reduction(name, forward, bwd, reference, derivation):
    """Declare a reduction over ``axis`` (None: all axes) with ``keepdims``; the residual is the
    input's shape alone, and the JVP is the reduction of the tangent (it is linear)."""
    return define(
        name, forward=forward, bwd=bwd, reference=reference,
        fwd=lambda x, axis=None, keepdims=False: (forward(x, axis, keepdims), _shape(x)),
        jvp=lambda p, t, z, axis=None, keepdims=False: forward(t[0], axis, keepdims),
        static={"axis": None, "keepdims": False}, variants=_REDUCTION_VARIANTS,
        sample=_sample_reduction, validate=_validate_reduction(name), derivation=derivation,
    ).fn


sum = _reduction(  # noqa: A001  (numpy's name, as jnp.sum)
    "sum", _sum,
    lambda shape, g, axis=None, keepdims=False: (_sum_back(g, shape, axis, keepdims),),
    lambda x, axis=None, keepdims=False: jnp.sum(x, axis=axis, keepdims=keepdims),
    "∂(Σ_j x_j)/∂x_i = 1 ⇒ x̄ = g broadcast back over the summed axes",
)


# ----- mean ----------------------------------------------------------------------------------------
def _count(shape, axis):
    return math.prod(shape[a] for a in axes(axis, len(shape), "fnnet.mean"))


def _mean(x, axis=None, keepdims=False):
    r"""Mean over ``axis`` (all axes when None): :math:`z = \frac1n Σ_{i∈axis} x_i`, n the number of
    entries reduced. VJP: :math:`\bar x = g/n` copied back along the reduced axes. JVP:
    ``mean(t, axis, keepdims)``. Keeps only the input's shape.
    """
    return jnp.mean(x, axis=axis, keepdims=keepdims)


def _mean_bwd(shape, g, axis=None, keepdims=False):
    # n = 0 only for an empty reduction, where the copied-back cotangent has no entries anyway.
    return (_sum_back(g / max(_count(shape, axis), 1), shape, axis, keepdims),)


mean = _reduction(
    "mean", _mean, _mean_bwd,
    lambda x, axis=None, keepdims=False: jnp.mean(x, axis=axis, keepdims=keepdims),
    "∂((1/n)Σ_j x_j)/∂x_i = 1/n",
)


# ---------------------------------------------------------------------------------------------
# exp, log
# ---------------------------------------------------------------------------------------------

# ----- exp -----------------------------------------------------------------------------------------
def _exp(x):
    r"""Exponential :math:`z = e^x`. Derivative :math:`e^x = z`: the backward pass reuses the output."""
    return jnp.exp(x)


exp = elementwise(
    "exp", _exp, lambda x, y: y, saves="y",
    reference=lambda x: jnp.exp(x),
    derivation="(e^x)' = e^x, the forward's own output",
).fn


# ----- log -----------------------------------------------------------------------------------------
def _log(x):
    r"""Natural logarithm :math:`z = \log x` on :math:`x > 0`. Derivative :math:`1/x` (∞ at 0, where
    log is −∞; NaN for x < 0, as the value)."""
    return jnp.log(x)


log = elementwise(
    # jnp.reciprocal, not 1 / x: under jax.grad a Python-float input can reach the rule as a float
    # subclass, and Python's 1 / 0.0 raises where the IEEE result is +inf.
    # Outside the support the derivative is NaN like the value (jnp.log's rule would give 1/x there).
    "log", _log, lambda x, y: jnp.where(x < 0, jnp.nan, jnp.reciprocal(x)), saves="x",
    reference=lambda x: jnp.log(x),
    domain=(0.1, 4.0),
    support=(0.0, float("inf")),
    singular=(0.0,),
    derivation="(log x)' = 1/x",
).fn
