"""fnnet.ops: what the generic registry tests (tests/test_primitives.py) do not cover.

Broadcasting (the cotangent of a broadcast input summed back to its shape), numpy's matmul semantics
with 1-D operands and batch broadcasting, reductions over every kind of ``axis``, the residuals each op
keeps, the entry points ``fwd``/``bwd`` that fnnet.graph calls, and the error messages.

Tolerance for hand rule vs ``jax.vjp`` of the reference (``_assert_cotangents_close``): every
cotangent entry here is a sum of n products of at most three factors (n = the number of output
entries that the input entry feeds, ≤ the output size). Recursive summation of n terms errs by at most
(n − 1)·ε·Σ|terms| and each product by 3ε·|term|, so one implementation is within (n + 2)·ε·Σ|terms|
of the exact cotangent, and two within twice that. Σ|terms| is computed exactly as the cotangent
with every factor replaced by its absolute value (``_abs_bound``). The float32 rule is compared with
the float64 reference, whose own error is ε₆₄/ε₃₂ ≈ 1e-9 times smaller and is absorbed by the bound.
"""
from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fnnet import ops
from fnnet.check import fd as finite_differences
from fnnet.primitive import get

DTYPES = [jnp.float32, jnp.float64]
EPS64 = float(jnp.finfo(jnp.float64).eps)


def _eps(dtype):
    return float(jnp.finfo(dtype).eps)


# Test data from NumPy's generator: jax.random would compile a program per shape, which costs more
# than many of the checks themselves. Values are drawn in float32 and cast, so both dtypes see the
# same numbers.
def _random(seed, shape, dtype, lo=-2.0, hi=2.0):
    # jax.device_put, not jnp.asarray: that compiles a small copy program per shape and dtype
    return jax.device_put(np.random.default_rng(seed).uniform(lo, hi, shape).astype(np.float32).astype(dtype))


def _nonzero(seed, shape, dtype):
    """|y| in [0.5, 2] with random signs: a denominator safely away from 0."""
    rng = np.random.default_rng(seed)
    mag = rng.uniform(0.5, 2.0, shape).astype(np.float32)
    return jax.device_put(np.where(rng.random(shape) < 0.5, mag, -mag).astype(dtype))


def _normal(seed, shape):
    return jax.device_put(np.random.default_rng(seed).standard_normal(shape))


def _abs_bound(name, x, y, g):
    """Σ|terms| of each cotangent entry: the reference VJP at |x|, |y| with |g| (abs for divide's sign)."""
    ref = get(name).reference
    _, vjp = jax.vjp(ref, jnp.abs(x), jnp.abs(y))
    return tuple(jnp.abs(c) for c in vjp(jnp.abs(g)))


def _assert_cotangents_close(name, args, cts, cts_ref, g, n_terms, dtype):
    bounds = _abs_bound(name, *(a.astype(jnp.float64) for a in args), g.astype(jnp.float64))
    for arg_name, a, ct, ref, bound in zip(("x", "y"), args, cts, cts_ref, bounds):
        assert ct.shape == a.shape and ct.dtype == a.dtype, (
            f"{name}: cotangent of {arg_name} is {ct.dtype}{ct.shape}, primal {a.dtype}{a.shape}"
        )
        err = np.abs(np.asarray(ct, np.float64) - np.asarray(ref, np.float64))
        tol = 2 * (n_terms + 2) * _eps(dtype) * np.asarray(bound) + 1e-300
        assert np.all(err <= tol), (
            f"{name} wrt {arg_name}: max error/tol {np.max(err / tol):.3g} (shapes {a.shape})"
        )


# (op, x shape, y shape): each input broadcast in a different way
BROADCAST_CASES = [
    ("add", (3, 1), (4,)),
    ("subtract", (3, 1), (4,)),
    ("multiply", (2, 3, 4), (4,)),
    ("multiply", (), (3, 4)),  # scalar * array
    ("multiply", (3, 4), ()),
    ("divide", (3, 1), (4,)),
    ("divide", (4,), (2, 3, 1)),
    ("add", (1, 3, 1), (2, 1, 5)),  # both stretched along size-1 axes
    ("matmul", (2, 1, 3, 4), (5, 4, 2)),  # batch broadcasting
    ("matmul", (3, 4), (4, 2)),
    ("matmul", (4,), (4,)),  # numpy: 1-D @ 1-D is the inner product
    ("matmul", (4,), (2, 4, 3)),  # row vector against a batch
    ("matmul", (2, 3, 4), (4,)),  # batch against a column vector
]


def _inputs(name, sx, sy, dtype, seed=0):
    x = _random(2 * seed, sx, dtype)
    y = _nonzero(2 * seed + 1, sy, dtype) if name == "divide" else _random(2 * seed + 1, sy, dtype)
    return x, y


# float32 eager and float64 jitted: both dtypes and both modes, without paying for all four pairings
# (tests/test_primitives.py runs every pairing on the registry's default inputs).
@pytest.mark.parametrize("dtype,use_jit", [(jnp.float32, False), (jnp.float64, True)], ids=["f32-eager", "f64-jit"])
@pytest.mark.parametrize("name,sx,sy", BROADCAST_CASES, ids=lambda v: str(v).replace(" ", ""))
def test_broadcast_vjp_matches_autodiff_of_reference(name, sx, sy, dtype, use_jit):
    prim = get(name)
    x, y = _inputs(name, sx, sy, dtype)
    out64, vjp_ref = jax.vjp(prim.reference, x.astype(jnp.float64), y.astype(jnp.float64))
    g = _normal(1, out64.shape)

    def hand(x, y, g):
        out, vjp = jax.vjp(prim.fn, x, y)
        return out, vjp(g)

    hand = jax.jit(hand) if use_jit else hand
    out, cts = hand(x, y, g.astype(dtype))
    assert out.shape == np.matmul(np.ones(sx), np.ones(sy)).shape if name == "matmul" else (
        out.shape == np.broadcast_shapes(sx, sy)
    )
    assert out.dtype == dtype
    # The output is one product/sum per entry (matmul: k = 4 terms): the same bound with n = 4.
    np.testing.assert_allclose(out, out64, rtol=0, atol=12 * _eps(dtype) * float(jnp.max(jnp.abs(out64))) * 4)
    _assert_cotangents_close(name, (x, y), cts, vjp_ref(g), g, max(out64.size, 1), dtype)


@pytest.mark.slow  # 13 cases of finite differences; the registry suite runs them on every op's default shapes
@pytest.mark.parametrize("name,sx,sy", BROADCAST_CASES, ids=lambda v: str(v).replace(" ", ""))
def test_broadcast_vjp_matches_central_differences(name, sx, sy):
    """⟨Jᵀg, u⟩ from the hand VJP against ⟨g, (f(x+hu) − f(x−hu))/2h⟩ in float64 (fnnet.check.fd.jvp:
    Richardson-extrapolated with h/2, which removes the h² term and triples the round-off).

    add, subtract, multiply and matmul are linear in each argument, so the central difference has no
    truncation error; divide's in y is h²/6·|∂³(x/y)/∂y³| ≤ h²·|x|/|y|⁴ ≤ 2.3e-9 per unit of g on these
    inputs (|x| ≤ 2, |y| ≥ 1/2, h = ε^{1/3} ≈ 6e-6). Round-off: ≤ 6ε·Σ|g·f|/h ≈ 3e-10 of the scale.
    Tolerance 1e-7 of the scale Σ|g·∂f| leaves a factor > 40 for both.
    """
    prim = get(name)
    x, y = _inputs(name, sx, sy, jnp.float64, seed=2)
    out, vjp = jax.vjp(prim.fn, x, y)
    g = _normal(3, out.shape)
    cts = vjp(g)
    h = EPS64 ** (1 / 3)
    for i, a in enumerate((x, y)):
        u = _normal(4 + i, a.shape)
        tangents = [None, None]
        tangents[i] = u
        (df,) = (d.value for d in finite_differences.jvp(prim.fn, (x, y), tangents, h))
        fd = float(np.vdot(g, df))
        hand = float(jnp.vdot(cts[i], u))
        scale = max(float(np.sum(np.abs(np.asarray(g) * df))), 1e-300)
        assert abs(hand - fd) <= 1e-7 * scale, f"{name} wrt {'xy'[i]}: {hand!r} vs FD {fd!r}"


@pytest.mark.parametrize("name,sx,sy", BROADCAST_CASES, ids=lambda v: str(v).replace(" ", ""))
def test_broadcast_jvp_matches_reference(name, sx, sy):
    """The hand JVP (forward-mode twin) against jax.jvp of the reference, float64.

    Each output tangent entry is a sum of ≤ 2k products (k = 4 for matmul, 1 otherwise); bound as in
    the module docstring with n = 8, against the sum of the magnitudes of those products: the jvp of
    the reference at |x|, |y| with one argument's tangent |t| at a time, each term's magnitude taken
    on its own (divide's two terms have opposite signs at positive inputs, so one jvp at |x|, |y|, |t|
    would cancel and bound nothing).
    """
    prim = get(name)
    x, y = _inputs(name, sx, sy, jnp.float64, seed=5)
    tx = _normal(6, x.shape)
    ty = _normal(7, y.shape)

    @jax.jit  # one compiled program instead of one per eagerly applied operation
    def tangents(x, y, tx, ty):
        ax, ay = jnp.abs(x), jnp.abs(y)
        return (
            jax.jvp(prim.fn, (x, y), (tx, ty))[1],
            jax.jvp(prim.reference, (x, y), (tx, ty))[1],
            jax.jvp(prim.reference, (ax, ay), (jnp.abs(tx), jnp.zeros_like(ty)))[1],
            jax.jvp(prim.reference, (ax, ay), (jnp.zeros_like(tx), jnp.abs(ty)))[1],
        )

    t_hand, t_ref, bx, by = (np.asarray(v) for v in tangents(x, y, tx, ty))
    bound = np.abs(bx) + np.abs(by)
    assert np.all(np.abs(t_hand - t_ref) <= 2 * (8 + 2) * EPS64 * bound + 1e-300)


def test_unbroadcast_sums_the_copies():
    """(3, 1) + (4,): x's cotangent sums g over the 4 columns, y's over the 3 rows."""
    x = jnp.zeros((3, 1))
    y = jnp.zeros((4,))
    g = jnp.arange(12.0).reshape(3, 4)
    _, vjp = jax.vjp(ops.add, x, y)
    gx, gy = vjp(g)
    np.testing.assert_array_equal(gx, g.sum(axis=1, keepdims=True))
    np.testing.assert_array_equal(gy, g.sum(axis=0))
    _, vjp = jax.vjp(ops.subtract, x, y)
    np.testing.assert_array_equal(vjp(g)[1], -g.sum(axis=0))


# ----- matmul: numpy semantics --------------------------------------------------------------------
@pytest.mark.parametrize(
    "sx,sy",
    [((4,), (4,)), ((4,), (4, 3)), ((3, 4), (4,)), ((2, 3, 4), (4,)), ((4,), (5, 4, 2)),
     ((2, 1, 3, 4), (5, 4, 2)), ((1, 3, 4), (6, 1, 4, 2))],
)
def test_matmul_shapes_and_values_follow_numpy(sx, sy):
    x, y = _inputs("matmul", sx, sy, jnp.float64, seed=8)
    expected = np.matmul(np.asarray(x), np.asarray(y))
    out = ops.matmul(x, y)
    assert out.shape == expected.shape
    # Each entry is a k = 4 term dot product: ≤ (4 + 2)ε·Σ|terms| from numpy's, both sides.
    bound = np.matmul(np.abs(np.asarray(x)), np.abs(np.asarray(y)))
    assert np.all(np.abs(np.asarray(out) - expected) <= 12 * EPS64 * bound + 1e-300)


@pytest.mark.parametrize(
    "sx,sy,match",
    [((), (3,), r"at least 1-D.*\(\).*\(3,\)"),
     ((3, 4), (5, 2), r"\(3, 4\).*\(5, 2\)"),
     ((4,), (5,), r"\(4,\).*\(5,\)"),
     ((2, 3, 4), (3, 4, 2), r"batch dimensions \(2,\) and \(3,\).*\(2, 3, 4\).*\(3, 4, 2\)")],
)
def test_matmul_bad_shapes_name_both(sx, sy, match):
    with pytest.raises(ValueError, match=match):
        ops.matmul(jnp.ones(sx), jnp.ones(sy))


# ----- reductions ---------------------------------------------------------------------------------
AXES = [None, 1, -1, (2, 0), (-1, -3), ()]  # negative, unsorted and empty axis tuples included


@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("axis", AXES, ids=str)
@pytest.mark.parametrize("name", ["sum", "mean"])
def test_reduction_vjp_and_jvp_over_axes(name, axis, keepdims):
    """sum's VJP is g copied back (exact: no arithmetic), mean's g/n (one rounding each: ≤ ε)."""
    prim = get(name)
    x = _random(9, (2, 3, 4), jnp.float64)
    f = lambda x: prim.fn(x, axis=axis, keepdims=keepdims)  # noqa: E731
    ref = lambda x: prim.reference(x, axis=axis, keepdims=keepdims)  # noqa: E731
    out_shape = jax.eval_shape(f, x).shape
    g, t = _normal(10, out_shape), _normal(11, x.shape)

    @jax.jit  # one compiled program: eagerly, each jnp operation of the reference compiles on its own
    def both(x, g, t):
        out, vjp = jax.vjp(f, x)
        ref_out, vjp_ref = jax.vjp(ref, x)
        return out, ref_out, vjp(g)[0], vjp_ref(g)[0], jax.jvp(f, (x,), (t,))[1], jax.jvp(ref, (x,), (t,))[1]

    out, ref_out, ct, ct_ref, t_out, t_ref = both(x, g, t)
    assert out.shape == ref_out.shape == out_shape
    assert ct.shape == x.shape
    np.testing.assert_allclose(ct, ct_ref, rtol=EPS64, atol=0)
    # A sum of ≤ 24 terms in possibly different orders: ≤ 2·24·ε·Σ|t| (+ one rounding for mean's 1/n).
    bound = np.sum(np.abs(np.asarray(t)), axis=axis, keepdims=keepdims)
    assert np.all(np.abs(t_out - t_ref) <= 50 * EPS64 * bound)


def test_mean_cotangent_is_g_over_n():
    x = jnp.ones((2, 3, 4), jnp.float32)
    (ct,) = jax.vjp(lambda x: ops.mean(x, axis=(0, 2)), x)[1](jnp.ones(3, jnp.float32))
    np.testing.assert_array_equal(ct, jnp.full((2, 3, 4), 1 / 8, jnp.float32))
    assert ct.dtype == jnp.float32


@pytest.mark.parametrize(
    "axis,err,match",
    [(3, ValueError, "axis 3 is out of range for an input with ndim 3"),
     (-4, ValueError, "axis -4 is out of range"),
     ((0, -3), ValueError, r"axis \(0, -3\) names the same axis twice"),
     (1.5, TypeError, "axis must be an int, a tuple of ints or None")],
)
def test_reduction_bad_axis(axis, err, match):
    with pytest.raises(err, match=match):
        ops.sum(jnp.ones((2, 3, 4)), axis=axis)


# ----- exp, log -----------------------------------------------------------------------------------
def test_exp_and_log_values_and_derivatives():
    x = jnp.asarray([0.25, 1.0, 3.0], jnp.float64)
    np.testing.assert_allclose(ops.exp(x), np.exp(np.asarray(x)), rtol=2 * EPS64)
    np.testing.assert_allclose(ops.log(x), np.log(np.asarray(x)), rtol=2 * EPS64)
    np.testing.assert_allclose(jax.vmap(jax.grad(ops.exp))(x), np.exp(np.asarray(x)), rtol=2 * EPS64)
    np.testing.assert_allclose(jax.vmap(jax.grad(ops.log))(x), 1 / np.asarray(x), rtol=EPS64)


def test_log_at_zero_and_below():
    """log(0) = −∞ with derivative +∞ (the singular point); log(−1) is NaN, and so is its derivative."""
    assert ops.log(0.0) == -jnp.inf and jax.grad(ops.log)(0.0) == jnp.inf
    assert jnp.isnan(ops.log(-1.0)) and jnp.isnan(jax.grad(ops.log)(-1.0))


# ----- residuals: what each op keeps for its backward pass ----------------------------------------
def _array_leaves(tree):
    return [leaf for leaf in jax.tree.leaves(tree) if isinstance(leaf, jax.Array)]


def test_residuals_are_minimal():
    x = jnp.ones((3, 1))
    y = jnp.full((4,), 2.0)
    # add/subtract keep only the (static) shapes: no array at all
    for name in ("add", "subtract"):
        _, res = get(name).fwd(x, y)
        assert _array_leaves(res) == [] and res == ((3, 1), (4,))
    # multiply keeps both inputs
    _, res = get("multiply").fwd(x, y)
    assert res[0] is x and res[1] is y
    # exp keeps its output (and not its input)
    z, res = get("exp").fwd(x)
    assert res[0] is None and res[1] is z
    # sum and mean keep the input's shape only
    assert get("sum").fwd(x, axis=0)[1] == (3, 1)
    assert _array_leaves(get("mean").fwd(x)[1]) == []
    # divide keeps x's shape, y and the output (x/y² = z/y), not x
    z, res = get("divide").fwd(x, y)
    assert res[0] == (3, 1) and res[1] is y and res[2] is z


# ----- the entry points fnnet.graph calls ---------------------------------------------------------
@pytest.mark.parametrize(
    "name,args,static",
    [("add", ((3, 1), (4,)), {}),
     ("multiply", ((2, 3, 4), (4,)), {}),
     ("divide", ((3, 1), (4,)), {}),
     ("matmul", ((2, 1, 3, 4), (5, 4, 2)), {}),
     ("sum", ((2, 3),), {"axis": 1, "keepdims": True}),
     ("mean", ((2, 3),), {"axis": [0]}),  # a list, as a graph might pass it: treated as a tuple
     ("exp", ((2, 3),), {}),
     ("log", ((2, 3),), {})],
)
def test_fwd_bwd_entry_points_equal_the_public_function(name, args, static):
    """prim.forward / prim.fwd / prim.bwd with positional arrays and static kwargs, as a graph calls
    them, give what the public function gives: the value bit-equal, the cotangents up to summation order."""
    prim = get(name)
    arrays = tuple(
        _nonzero(12 + i, s, jnp.float64) if (name == "divide" and i == 1) else
        _random(12 + i, s, jnp.float64, 0.5, 2.0) for i, s in enumerate(args)
    )
    out, res = prim.fwd(*arrays, **static)
    g = _normal(13, out.shape)
    cts = prim.bwd(res, g, **static)
    public_static = {k: tuple(v) if isinstance(v, list) else v for k, v in static.items()}
    out_pub, vjp = jax.vjp(lambda *a: prim.fn(*a, **public_static), *arrays)
    chex.assert_trees_all_equal(out, prim.forward(*arrays, **static), out_pub)
    # The public function's reverse mode transposes the transpose of prim.bwd: the same operations,
    # but a cotangent summed over broadcast axes may be summed in another order. Each entry is a sum
    # of at most n = g.size terms, so the two orders differ by at most n·ε·Σ|terms| ≤ n·ε·|g|·|other|.
    n = g.size
    for a, b, arr in zip(cts, vjp(g), arrays):
        bound = n * float(jnp.finfo(jnp.float64).eps) * float(jnp.max(jnp.abs(g))) * max(
            float(jnp.max(jnp.abs(x))) for x in (*arrays, out)
        ) * n
        np.testing.assert_allclose(a, b, rtol=0, atol=bound)


# ----- dtypes and bad input ------------------------------------------------------------------------
def test_python_scalar_adapts_to_the_array_dtype():
    x = jnp.arange(3.0, dtype=jnp.float32)
    z = ops.multiply(2.0, x)
    assert z.dtype == jnp.float32
    np.testing.assert_array_equal(jax.grad(lambda x: ops.multiply(2.0, x).sum())(x), jnp.full(3, 2.0, jnp.float32))


@pytest.mark.parametrize("name", ["add", "subtract", "multiply", "divide"])
def test_binary_bad_shapes_name_both(name):
    with pytest.raises(ValueError, match=r"shapes \(3, 4\) and \(5,\) do not broadcast"):
        getattr(ops, name)(jnp.ones((3, 4)), jnp.ones(5))


@pytest.mark.parametrize("name", ["add", "multiply", "matmul"])
def test_mixed_float_dtypes_name_both(name):
    with pytest.raises(TypeError, match=r"'y' must have the dtype of 'x' \(float32\); got float64"):
        getattr(ops, name)(jnp.ones((2, 2), jnp.float32), jnp.ones((2, 2), jnp.float64))


@pytest.mark.parametrize("name", ["add", "matmul", "exp", "sum"])
def test_integer_input_is_promoted_and_bool_refused(name):
    """Integers are promoted as jax.numpy promotes them (jnp.sin); booleans are refused."""
    prim = get(name)
    args = [jnp.ones((2, 2), jnp.float64)] * len(prim.arg_names)
    args[0] = jnp.ones((2, 2), jnp.int64)  # promoted to float64, the other arguments' dtype
    np.testing.assert_array_equal(prim.fn(*args), prim.fn(*[a.astype(jnp.float64) for a in args]))
    args[0] = jnp.ones((2, 2), bool)
    with pytest.raises(TypeError, match=r"argument 'x' must have a floating dtype.*bool"):
        prim.fn(*args)


# ----- the activations' select: jnp.where's result as one lax.select -------------------------------
@pytest.mark.parametrize(
    "c_shape,a,b",
    [
        ((5,), ("f32", (5,)), 0.0),
        ((5,), 1.5, ("f32", (5,))),
        ((3, 1), ("f32", (4,)), ("f32", (3, 4))),
        ((4,), ("bf16", (4,)), -2.0),
        ((4,), ("f64", (4,)), ("f64", ())),
        ((2, 3), ("f16", ()), ("f16", (2, 3))),
    ],
)
def test_where_is_jnp_where_as_one_select(c_shape, a, b):
    from fnnet._numerics import where

    rng = np.random.default_rng(0)
    dtypes = {"f16": jnp.float16, "bf16": jnp.bfloat16, "f32": jnp.float32, "f64": jnp.float64}

    def make(spec):
        if isinstance(spec, float):
            return spec
        return jnp.asarray(rng.standard_normal(spec[1]), dtypes[spec[0]])

    c = jnp.asarray(rng.random(c_shape) > 0.5)
    a, b = make(a), make(b)
    want, got = jnp.where(c, a, b), where(c, a, b)
    assert got.dtype == want.dtype and got.shape == want.shape
    assert got.aval.weak_type == want.aval.weak_type
    np.testing.assert_array_equal(np.asarray(got, np.float64), np.asarray(want, np.float64))
    # one select, no nested jit for the later stages of tracing to walk
    eqns = jax.make_jaxpr(where)(c, a, b).jaxpr.eqns
    assert all(e.primitive.name != "pjit" and e.primitive.name != "jit" for e in eqns), eqns
    assert any(e.primitive.name == "select_n" for e in eqns)
