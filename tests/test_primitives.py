"""Every registered primitive, three ways: hand rule vs autodiff of the reference vs finite differences.

Parametrised over the whole registry × its hyperparameter variants, in float32 and float64, under jit
(one program per case) and eagerly (the reverse-mode test runs the backward pass op by op), so a
primitive added anywhere in fnnet is checked here without a line of test code of its own.

Tolerances (all normwise: ‖a − b‖∞ ≤ tol·‖b‖∞, so a value near 0 is judged at the scale of its array):

* hand rule vs reference, both exact formulas for the same derivative. Each side is a chain of at most
  ~30 correctly rounded or few-ULP operations (exp, log, erf ≤ 2 ULP) whose intermediates stay within a
  factor of a few of the output on the sampling domains, so each carries ≤ ~30·ε relative error and
  their difference ≤ 64·ε of the dtype under test. The float32 result is compared with the float64
  reference (the truth at float32's scale), so float32's bound is 64·ε₃₂ ≈ 7.6e-6.
* finite differences (fnnet's engine, :mod:`fnnet.check.fd`), float64, step h = ε^{1/3}·max(1, |x|)
  ≈ 6e-6: the central difference's truncation error h²/6·|f'''| and round-off ε·|f|/h ≈ 4e-11·|f|;
  Richardson extrapolation with h/2 removes the truncation term and triples the round-off. On the
  sampling domains |f'''| ≤ ~10 and |f| ≤ ~10, so the error is ≤ ~1e-9 relative; 1e-7 leaves a
  factor 100 for the constant, far below any real rule error (which shows as O(1) relative).
"""
from __future__ import annotations

import functools
import math

import chex
import jax
import jax.extend as jex
import jax.numpy as jnp
import numpy as np
import pytest

import fnnet
import oracles
from fnnet.check import fd
from fnnet.primitive import registry

CASES = oracles.params()
ELEMENTWISE = oracles.params(lambda p: p.elementwise)
DTYPES = [jnp.float32, jnp.float64]
HAND_VS_REF_ULPS = 64
FD_RTOL = 1e-7


def _eps(dtype):
    return float(jnp.finfo(dtype).eps)


def _normwise_close(actual, expected, tol, what):
    actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    scale = max(float(np.max(np.abs(expected), initial=0.0)), np.finfo(np.float64).tiny)
    err = float(np.max(np.abs(actual - expected), initial=0.0)) / scale
    assert err <= tol, f"{what}: normwise relative error {err:.3e} > tol {tol:.3e}"


def _inputs(prim, static, dtype, seed=0):
    return prim.sample_inputs(jax.random.key(seed), dtype, **static)


def _normal(seed, shape, dtype):
    """Standard normal numbers from NumPy: a test's cotangents and directions, without compiling a
    random-number program per shape (jax.random would, and it costs as much as the checks)."""
    return jnp.asarray(np.random.default_rng(seed).standard_normal(shape), dtype)


def _cotangent(out, seed=1):
    return jax.tree.map(lambda o: _normal(seed, o.shape, o.dtype), out)


def test_every_activation_has_an_oracle_record():
    """Every elementwise op and every activation has its record in tests/oracles.py (exact f and f′
    written or derivable from its reference, roundings in low precision), and every record is a
    registered op: the registry suites skip an op without one, naming the record to add, so this is
    the test that fails for it."""
    needed = {p.name: (p, st) for _, p, st in oracles.cases(oracles.needs_record)}
    problems = [oracles.missing_record(n) for n in sorted(set(needed) - set(oracles.ORACLES))]
    problems += [oracles.missing_record(n, "roundings") for n, r in sorted(oracles.ORACLES.items())
                 if n in needed and r.roundings is None]
    for _, prim, static in oracles.cases(lambda p: p.elementwise and p.name in oracles.ORACLES):
        try:
            oracles.exact(prim, static, 0)
        except LookupError as err:
            problems.append(str(err))
    problems += [f"tests/oracles.py has a record for {n!r}, which is not a registered elementwise op or "
                 "activation: remove it or correct its name" for n in sorted(set(oracles.ORACLES) - set(needed))]
    assert not problems, "\n".join(problems)
    assert {"softmax", "log_softmax", "logsumexp", "softmin", "glu"} <= set(needed)


def _case_program(prim, static):
    """Everything the test compares, as one compiled program (one compilation per case instead of one
    per comparison and per eagerly applied operation): in float64, the public function's value,
    reverse mode (the hand VJP) and forward mode (its transpose); the reference's value, VJP and JVP by
    autodiff; the float32 value and hand VJP at float32 inputs with the float64 reference's at the same
    points; and fnnet's finite-difference samples (:func:`fnnet.check.fd.output_samples`) along one
    random direction per argument, and, for an elementwise op, along the per-entry steps h_i (every
    entry's own central difference, since entry i of f depends on x_i alone), with the Jacobian of 6
    entries by jacrev and jacfwd."""
    f = lambda *a: prim.fn(*a, **static)  # noqa: E731
    ref = lambda *a: prim.reference(*a, **static)  # noqa: E731

    def program(args, g, us, dirs, h_entries, args32, g32):
        out32, vjp32 = jax.vjp(f, *args32)
        res32_ref = jax.vjp(ref, *(a.astype(jnp.float64) for a in args32))
        res = {"out32": out32, "cts32": vjp32(jax.tree.map(lambda t: t.astype(jnp.float32), g32)),
               "out32_ref": res32_ref[0], "cts32_ref": res32_ref[1](g32)}
        out, vjp = jax.vjp(f, *args)
        res.update(out=out, cts=vjp(g), jvp=jax.jvp(f, args, us)[1])
        out_ref, vjp_ref = jax.vjp(ref, *args)
        res.update(out_ref=out_ref, cts_ref=vjp_ref(g), jvp_ref=jax.jvp(ref, args, us)[1])
        res["fd"] = [fd.output_samples(f, args, [d if j == i else None for j in range(len(args))])
                     for i, d in enumerate(dirs)]
        if prim.elementwise:
            (x,) = args
            res["entry_grad"] = vjp(jnp.ones_like(out))[0]
            res["entry_fd"] = fd.output_samples(f, args, [h_entries])
            x6 = x.ravel()[:6]
            f1 = lambda v: prim.fn(v, **static)  # noqa: E731
            res["jacrev"], res["jacfwd"] = jax.jacrev(f1)(x6), jax.jacfwd(f1)(x6)
        return res

    return program


@pytest.mark.parametrize("prim,static", CASES)
def test_hand_rules_against_autodiff_and_central_differences(prim, static):
    """The three ways, one compiled program per case (``_case_program``):

    * how it trains: value and hand VJP in float32 (the program is jitted) against the float64
      reference at the same inputs, 64·ε₃₂;
    * in float64, value and hand VJP (``jax.vjp`` of the public function) against ``jax.vjp`` of the
      reference;
    * forward mode (``jax.jvp`` of the public function, the transpose of the hand VJP) against
      ``jax.jvp`` of the reference, and ⟨g, J u⟩ via the JVP = ⟨Jᵀg, u⟩ via the VJP;
    * the lecture's f'(x) ≈ (f(x+h) − f(x−h))/2h (Richardson-extrapolated) along a random direction
      per argument: ⟨Jᵀg, u⟩ from the hand VJP against ⟨g, J u⟩ by finite differences;
    * for an elementwise op, every entry's derivative against its own central difference (step
      h_i = ε^{1/3}·max(1, |x_i|)), and the Jacobian through the public function diagonal: exactly
      zero off the diagonal in reverse mode, forward mode equal to it.
    """
    dtype = jnp.float64
    args = _inputs(prim, static, dtype)
    out_shape = jax.eval_shape(lambda *a: prim.fn(*a, **static), *args)
    g = _cotangent(out_shape)
    us = tuple(_normal(7 + i, a.shape, a.dtype) for i, a in enumerate(args))
    steps = [_eps(dtype) ** (1 / 3) * max(1.0, float(jnp.max(jnp.abs(a)))) for a in args]
    dirs = tuple(
        _normal(11 + i, a.shape, a.dtype) * h for i, (a, h) in enumerate(zip(args, steps))
    )
    h_entries = fd.step_sizes(np.asarray(args[0]), dtype)
    args32 = _inputs(prim, static, jnp.float32)
    g32 = _cotangent(jax.eval_shape(lambda *a: prim.reference(*a, **static), *args))
    r = jax.jit(_case_program(prim, static))(args, g, us, dirs, jnp.asarray(h_entries), args32, g32)

    tol32 = HAND_VS_REF_ULPS * _eps(jnp.float32)
    _normwise_close(r["out32"], r["out32_ref"], tol32, f"{prim.name} float32 value")
    for name, ct, ct_ref, a in zip(prim.arg_names, r["cts32"], r["cts32_ref"], args32):
        assert ct.shape == a.shape and ct.dtype == a.dtype, (
            f"{prim.name}: cotangent of {name} has {ct.dtype}{ct.shape}, primal {a.dtype}{a.shape}"
        )
        _normwise_close(ct, ct_ref, tol32, f"{prim.name} float32 VJP wrt {name}")

    tol = HAND_VS_REF_ULPS * _eps(dtype)

    _normwise_close(r["out"], r["out_ref"], tol, f"{prim.name} value")
    for name, ct, ct_ref, a in zip(prim.arg_names, r["cts"], r["cts_ref"], args):
        assert ct.shape == a.shape and ct.dtype == a.dtype, (
            f"{prim.name}: cotangent of {name} has {ct.dtype}{ct.shape}, primal {a.dtype}{a.shape}"
        )
        _normwise_close(ct, ct_ref, tol, f"{prim.name} VJP wrt {name}")

    _normwise_close(r["jvp"], r["jvp_ref"], tol, f"{prim.name} JVP")
    g_leaves = [np.asarray(x, np.float64) for x in jax.tree.leaves(g)]
    lhs = sum(float(np.vdot(a, np.asarray(b, np.float64))) for a, b in zip(g_leaves, jax.tree.leaves(r["jvp"])))
    prods = [np.asarray(ct, np.float64) * np.asarray(u, np.float64) for ct, u in zip(r["cts"], us)]
    rhs = sum(float(np.sum(p)) for p in prods)
    # Both inner products sum n terms of size ~|g||J||u|; their rounding differs by ≤ 2n·ε·Σ|terms|.
    terms = sum(float(np.sum(np.abs(p))) for p in prods)
    n = sum(a.size for a in args)
    assert abs(lhs - rhs) <= (2 * n + HAND_VS_REF_ULPS) * _eps(dtype) * max(terms, 1e-300), (
        f"{prim.name}: ⟨g, J u⟩ = {lhs!r} via the JVP, ⟨Jᵀg, u⟩ = {rhs!r} via the VJP"
    )

    for i, ((samples, mags), ct, d, h) in enumerate(zip(r["fd"], r["cts"], dirs, steps)):
        df = [fd.differences(np.asarray(s), np.asarray(m), "central").scaled(h).value for s, m in zip(samples, mags)]
        by_fd = sum(float(np.vdot(gl, dl)) for gl, dl in zip(g_leaves, df))
        hand = float(np.vdot(np.asarray(ct), np.asarray(d))) / h
        scale = float(sum(np.sum(np.abs(gl * dl)) for gl, dl in zip(g_leaves, df)))
        assert abs(hand - by_fd) <= FD_RTOL * max(scale, 1.0), (
            f"{prim.name} wrt {prim.arg_names[i]}: hand ⟨Jᵀg, u⟩ = {hand!r}, central difference {by_fd!r}"
        )

    if prim.elementwise:
        (samples,), (mags,) = r["entry_fd"]
        by_fd = fd.differences(np.asarray(samples), np.asarray(mags), "central").scaled(h_entries).value
        np.testing.assert_allclose(r["entry_grad"], by_fd, rtol=FD_RTOL, atol=FD_RTOL,
                                   err_msg=f"{prim.name}: f'(x_i) against the central difference at x_i")
        jac = np.asarray(r["jacrev"])
        off = jac - np.diag(np.diag(jac))
        assert np.all(off == 0), f"{prim.name}: nonzero off-diagonal Jacobian entries"
        np.testing.assert_allclose(r["jacfwd"], jac, rtol=tol, err_msg=f"{prim.name}: jacfwd against jacrev")


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("prim,static", ELEMENTWISE)
def test_elementwise_hard_points(prim, static, dtype):
    """0, subnormals, ±1e-3 … ±1e30, ±max finite (tests/oracles.py's hard points, one program for
    every op): value and gradient are never NaN inside the support, and finite wherever the
    mathematical result is representable; NaN in gives NaN out; ±inf give the limits (the same value
    and derivative as ±max, where the function has saturated)."""
    lo, hi = prim.support
    x_all, y_all, d_all, ref_all = oracles.elementwise_results(dtype)[oracles.case_id(prim, static)]
    x64 = x_all.astype(np.float64)
    inside = (x64 > lo) & (x64 < hi)  # (±0 is among the points even where it ends the support)
    x, y, d, y_ref = x_all[inside], y_all[inside], d_all[inside], ref_all[inside]
    assert not np.any(np.isnan(y)), f"{prim.name}: NaN value at {x[np.isnan(y)]}"
    assert not np.any(np.isnan(d)), f"{prim.name}: NaN derivative at {x[np.isnan(d)]}"
    # Away from a singular point, an infinite value or derivative is only right where the exact result
    # itself overflows; the reference, evaluated in float64, tells where that is.
    ok_big = np.abs(y_ref) >= float(jnp.finfo(dtype).max)
    assert np.all(np.isfinite(y) | ok_big | np.isinf(y_ref)), f"{prim.name}: infinite value at {x[~np.isfinite(y)]}"
    near_singular = np.zeros(x.shape, bool)
    for s in prim.singular:
        near_singular |= np.abs(x.astype(np.float64) - s) < 1e-3
    # An infinite derivative is right only near a singular point or where f itself overflows (exp).
    overflow = ~np.isfinite(y) | ok_big
    assert np.all(np.isfinite(d) | near_singular | overflow), (
        f"{prim.name}: infinite derivative at {x[~np.isfinite(d)]}"
    )

    assert np.isnan(y_all[-1]), f"{prim.name}: NaN in must give NaN out"
    # a linear map's derivative is its constant (oracles.LINEAR); every other derivative is NaN at NaN
    assert (d_all[-1] == oracles.LINEAR[prim.name]) if prim.name in oracles.LINEAR else np.isnan(d_all[-1]), (
        f"{prim.name}: derivative {d_all[-1]} at NaN"
    )

    big = float(jnp.finfo(dtype).max)
    for s, i_inf in ((1.0, -2), (-1.0, -3)):
        if not (lo <= s * math.inf <= hi) or not (lo < s * big < hi):  # ±inf ends the support
            continue
        (i_max,) = np.flatnonzero(x64 == s * big)
        y_inf, y_max = y_all[i_inf], y_all[i_max]
        assert not np.isnan(y_inf), f"{prim.name}({s}inf) is NaN"
        assert y_inf == y_max or (np.isinf(y_inf) and np.sign(y_inf) == np.sign(y_max)), (
            f"{prim.name}({s}inf) = {y_inf}, but f({s}max) = {y_max}"
        )
        d_inf, d_max = d_all[i_inf], d_all[i_max]
        # Equal, or both below the smallest normal: log'(max) = 1/max is subnormal, kept by a GPU and
        # flushed to 0 by XLA:CPU, while the limit at inf is 0 on both.
        tiny = float(jnp.finfo(dtype).tiny)
        assert d_inf == d_max or abs(float(d_inf) - float(d_max)) < tiny, (
            f"{prim.name}'({s}inf) = {d_inf}, but at {s}max it is {d_max}"
        )


@pytest.mark.parametrize("prim,static", ELEMENTWISE)
def test_documented_kink_values(prim, static):
    """At each declared kink (default hyperparameters) the rule returns the documented derivative."""
    if static != dict(prim.variants[0]):
        pytest.skip("kinks are declared for the default hyperparameters")
    for kink in prim.kinks:
        for dtype in DTYPES:
            d = jax.grad(lambda x: prim.fn(x, **static))(jnp.asarray(kink.at, dtype))
            assert float(d) == pytest.approx(kink.derivative, rel=4 * _eps(dtype)), (
                f"{prim.name}'({kink.at}) = {float(d)}, documented {kink.derivative}"
            )


def _primitive_names(jaxpr):
    """The primitives a closed jaxpr applies, sub-jaxprs (pjit, custom calls) flattened in."""
    names = []
    for eqn in jaxpr.eqns:
        subs = [v for v in eqn.params.values() if isinstance(v, (jex.core.Jaxpr, jex.core.ClosedJaxpr))]
        if eqn.primitive.name.startswith("scatter"):
            names.append(eqn.primitive.name)  # its sub-jaxpr combines an update with an entry: not a call
        elif subs:
            for s in subs:
                names += _primitive_names(s.jaxpr if isinstance(s, jex.core.ClosedJaxpr) else s)
        elif eqn.primitive.name == "reduce_sum" and all(
            eqn.invars[0].aval.shape[a] == 1 for a in eqn.params["axes"]
        ):
            names.append("reduce_sum over size-1 axes")  # a sum of one term: a reshape
        else:
            names.append(eqn.primitive.name)
    return names


FIRST_VARIANTS = [c for c in CASES if dict(c.values[1]) == dict(c.values[0].variants[0])]


def test_the_nan_probe_of_a_derivative_is_one_compiled_program(caplog):
    """Whether f′ maps NaN to NaN is found by evaluating it once on a NaN scalar while tracing: one
    compiled program, not one per operation of f and f′ (op by op that was ~20 programs for gelu)."""
    from fnnet.primitive import elementwise

    def df(x, y):
        return jnp.cos(x) * jnp.exp(-jnp.abs(x)) + jnp.sin(x) * jnp.tanh(x) / (1 + x * x)

    op = elementwise("_test_many_op_derivative", lambda x: jnp.sin(x) * jnp.exp(-jnp.abs(x)), df,
                     saves="x", reference=lambda x: jnp.sin(x) * jnp.exp(-jnp.abs(x)), register=False)
    x = np.linspace(-2.0, 2.0, 5)
    with jax.log_compiles(), caplog.at_level("WARNING"):
        jax.make_jaxpr(jax.grad(lambda v: jnp.sum(op.fn(v))))(x)
    compiled = [r.getMessage().split()[1] for r in caplog.records if r.getMessage().startswith("Compiling ")]
    assert compiled == ["jit(probe)"], compiled
    # and the probe's answer is right: f′ above is NaN at NaN, so no select is added
    assert "select_n" not in _primitive_names(jax.make_jaxpr(jax.grad(lambda v: jnp.sum(op.fn(v))))(x).jaxpr)


def test_inputs_are_drawn_by_numpy_from_the_jax_key():
    """sample_inputs takes a JAX key (typed or raw), draws with NumPy seeded from its bits: the same
    key gives the same points, another key others; float32 and float64 draws are the same points."""
    from fnnet.primitive import sample_rng

    prim = fnnet.get("tanh")
    a32, = prim.sample_inputs(jax.random.key(3), jnp.float32)
    a64, = prim.sample_inputs(jax.random.key(3), jnp.float64)
    raw, = prim.sample_inputs(jax.random.PRNGKey(3), jnp.float32)
    other, = prim.sample_inputs(jax.random.key(4), jnp.float32)
    assert a32.dtype == jnp.float32 and a64.dtype == jnp.float64 and a32.shape == (3, 5)
    np.testing.assert_array_equal(a32, a64.astype(np.float32))
    np.testing.assert_array_equal(a32, raw)
    assert not np.array_equal(a32, other)
    lo, hi = prim.domain
    assert np.all((np.asarray(a64) >= lo) & (np.asarray(a64) <= hi))
    assert sample_rng(jax.random.key(3)).integers(1 << 30) == sample_rng(jax.random.PRNGKey(3)).integers(1 << 30)


def test_nan_select_only_where_the_derivative_formula_needs_it():
    """tanh′ = (1 − y)(1 + y) is NaN at NaN by itself: its backward is jax.nn's sub, add, mul and no
    select; so are relu′ written max(sign(x), 0), relu6′ written sign(y(6 − y)) and leaky_relu′'s
    min(sign(x) + 1, 1) beside α. hard_tanh′ = [−1 ≤ x ≤ 1] as a select is 0 at NaN, so the
    mechanism keeps the select that makes it NaN."""
    x = jnp.ones(4, jnp.float32)

    def ops(f):
        return _primitive_names(jax.make_jaxpr(jax.grad(lambda v: jnp.sum(f(v))))(x).jaxpr)

    for f in (fnnet.tanh, fnnet.relu, fnnet.relu6):
        assert "select_n" not in ops(f), sorted(ops(f))
    assert ops(fnnet.leaky_relu).count("select_n") == 2, sorted(ops(fnnet.leaky_relu))  # fwd, α
    assert "select_n" in ops(fnnet.hard_tanh), sorted(ops(fnnet.hard_tanh))  # its NaN comes from one
    nan = jnp.full(4, jnp.nan, jnp.float32)
    for f in (fnnet.tanh, fnnet.relu, fnnet.relu6, fnnet.leaky_relu, fnnet.hard_tanh):
        assert jnp.all(jnp.isnan(jax.grad(lambda v: jnp.sum(f(v)))(nan)))
    g = jax.grad(lambda v: jnp.sum(fnnet.relu(v)))(jnp.array([jnp.nan, 1.0, -1.0]))
    assert np.isnan(g[0]) and g[1] == 1 and g[2] == 0


# One variant per primitive: the mechanism, not the hyperparameter, decides which operations run.
@pytest.mark.parametrize("prim,static", FIRST_VARIANTS)
def test_reverse_mode_runs_only_the_hand_vjp(prim, static):
    """The public function is one jitted custom_jvp named after the op, and the backward pass of
    ``jax.vjp`` applies only operations of the hand-written VJP: every primitive it applies appears in
    the jaxpr of ``prim.bwd`` (autodiff of the forward would bring the forward's own derivative ops)."""
    _assert_reverse_mode_runs_only_the_hand_vjp(prim, static)


# The rules whose forms depend on the platform they are traced for (fnnet._numerics.backend()): the
# sums of standardize stacked into one reduction, gelu's clip, the softmax family's shift.
GPU_FORMS = ("standardize", "gelu", "softmax", "log_softmax", "logsumexp", "logmeanexp")


@pytest.mark.parametrize("prim,static", [c for c in FIRST_VARIANTS if c.values[0].name in GPU_FORMS])
def test_reverse_mode_runs_only_the_hand_vjp_traced_for_a_gpu(prim, static, with_gates):
    """The same, with the rules traced for a GPU (the forms CI's CPU never traces otherwise)."""
    with_gates(lambda: _assert_reverse_mode_runs_only_the_hand_vjp(prim, static), TARGET_BACKEND="gpu")


def _assert_reverse_mode_runs_only_the_hand_vjp(prim, static):
    args = _inputs(prim, static, jnp.float32)
    f = lambda *a: prim.fn(*a, **static)  # noqa: E731
    jaxpr = str(jax.make_jaxpr(f)(*args))
    assert "custom_jvp_call" in jaxpr and f"name={prim.name}" in jaxpr
    out, vjp = jax.vjp(f, *args)
    g = _cotangent(out)
    backward = _primitive_names(jax.make_jaxpr(vjp)(g).jaxpr)
    hand = []

    def forward_then_trace_bwd(*a):  # the residuals as tracers: running prim.fwd eagerly would compile
        _, res = prim.fwd(*a, **static)  # each of its operations on its own
        hand.extend(_primitive_names(jax.make_jaxpr(lambda g: prim.bwd(res, g, **static))(g).jaxpr))
        return a

    jax.make_jaxpr(forward_then_trace_bwd)(*args)
    # Transposing twice may rewrite the linear map's bookkeeping exactly: a value used twice is summed
    # with add_any, x − y becomes x + (−y) (neg is exact), and reductions and broadcasts move data by
    # reshape/broadcast/transpose; a scatter that sets entries becomes the operand with those entries
    # set to 0 plus the updates scatter-added into zeros at the same (unique) indices, each sum with
    # a zero; a concatenation (a stack) becomes its parts each padded with zeros to the whole, summed.
    # It adds no arithmetic of the forward (exp, log, max, div ...).
    bookkeeping = {
        "add_any", "neg", "reshape", "broadcast_in_dim", "transpose", "squeeze", "expand_dims",
        "copy", "copy_p", "convert_element_type", "pjit", "jit", "reduce_sum over size-1 axes",
        "scatter-add", "pad",
    }
    foreign = sorted(set(backward) - set(hand) - bookkeeping)
    assert not foreign, f"{prim.name}: the backward pass applies {foreign}, which the hand VJP does not"
    # Called eagerly, the backward pass returns what the hand VJP returns (up to the order of the
    # bookkeeping above: a few roundings, far within 64ε). The hand VJP is one compiled program here:
    # applied op by op it would compile each of its operations on its own.
    hand_cts = jax.jit(lambda a, g: prim.bwd(prim.fwd(*a, **static)[1], g, **static))(args, g)
    for name, ct, hand_ct in zip(prim.arg_names, vjp(g), hand_cts):
        _normwise_close(ct, hand_ct, HAND_VS_REF_ULPS * _eps(jnp.float32), f"{prim.name} eager VJP wrt {name}")


def test_inline_under_a_trace_and_one_compiled_program_when_eager():
    """Inside a program being traced (jit, make_jaxpr, a jitted gradient) the public function is
    traced inline: its custom_jvp is an equation of the caller's program, with no nested jit around it.
    Called eagerly it runs its own compiled program, compiled once per shape and reused; eager
    transformations (jax.grad without jit) go through that program too. The results agree."""
    x = jnp.linspace(-2.0, 2.0, 8)
    eqns = [e.primitive.name for e in jax.make_jaxpr(fnnet.softplus)(x).jaxpr.eqns]
    assert eqns == ["custom_jvp_call"], eqns
    inner = jax.make_jaxpr(jax.jit(lambda v: fnnet.softplus(v) * 2))(x).jaxpr.eqns[0].params["jaxpr"]
    assert "custom_jvp_call" in [e.primitive.name for e in inner.eqns]
    assert "jit" not in str(inner) and "pjit" not in str(inner)
    before = fnnet.softplus.jitted._cache_size()
    eager = [fnnet.softplus(x), fnnet.softplus(x + 1.0)]
    assert fnnet.softplus.jitted._cache_size() == before + (before == 0)
    np.testing.assert_array_equal(jax.jit(fnnet.softplus)(x), eager[0])
    np.testing.assert_array_equal(
        jax.grad(lambda v: fnnet.softplus(v).sum())(x), jax.jit(jax.grad(lambda v: fnnet.softplus(v).sum()))(x)
    )


@pytest.mark.parametrize("name", ["gelu", "silu", "softmax", "logsumexp"])
def test_rules_are_traced_flat_no_nested_jit(name):
    # Operators and jnp functions in a formula are jitted wrappers; traced inside the mechanism they
    # bind their lax operations directly: the differentiated program holds no nested jit at all.
    x = jnp.linspace(-3.0, 3.0, 12).reshape(3, 4)
    f = getattr(fnnet, name)
    text = str(jax.make_jaxpr(jax.value_and_grad(lambda v: jnp.sum(jnp.sin(f(v)))))(x))
    assert " jit[" not in text and "pjit[" not in text, text
    jvp = str(jax.make_jaxpr(lambda v: jax.jvp(f, (v,), (v,)))(x))
    assert " jit[" not in jvp and "pjit[" not in jvp


def test_a_traced_static_hyperparameter_gets_one_message_in_both_paths():
    # under jit the function is traced inline (fnnet's own check refuses the tracer); under an eager
    # vmap it runs its jitted program (jax.jit refuses it, and fnnet explains): the same words
    x = jnp.ones(3)
    messages = []
    for run in (lambda: jax.jit(lambda a: fnnet.gelu(x, approximate=a))(True),
                lambda: jax.vmap(lambda a: fnnet.gelu(x, approximate=a))(jnp.asarray([True, False]))):
        with pytest.raises(TypeError) as err:
            run()
        messages.append(str(err.value))
    assert messages[0].split(" got ")[0] == messages[1].split(" got ")[0], messages
    assert messages[0].startswith("fnnet.gelu: hyperparameter 'approximate' is static"), messages


def test_reverse_mode_returns_what_the_hand_vjp_returns():
    """A primitive whose hand VJP is deliberately not the derivative (3·g): jax.grad returns 3·g, so
    reverse mode runs the hand rule and never autodiff of the forward; jax.jvp returns the transpose
    of that rule, 3·t."""
    from fnnet.primitive import define

    def bwd(res, g):
        return (3 * g,)

    prim = define(
        "_test_scaled_identity", forward=lambda x: x, bwd=bwd, jvp=lambda p, t, out: 3 * t[0],
        reference=lambda x: x, register=False,
    )
    x = jnp.arange(4.0)
    np.testing.assert_array_equal(jax.grad(lambda x: prim.fn(x).sum())(x), 3 * jnp.ones(4))
    np.testing.assert_array_equal(jax.jvp(prim.fn, (x,), (jnp.ones(4),))[1], 3 * jnp.ones(4))
    np.testing.assert_array_equal(jax.jit(jax.grad(lambda x: prim.fn(x).sum()))(x), 3 * jnp.ones(4))


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_tanh_is_twice_sigmoid_of_twice_minus_one(dtype):
    """The lecture's identity tanh(z) = 2σ(2z) − 1, in value and derivative.

    Both sides are a few roundings from the exact value; 2σ(2z) − 1 cancels near z = 0, where its
    absolute error is ε (one rounding of 2σ ≈ 1), so the comparison is absolute at 4ε.
    """
    z = jnp.linspace(-6, 6, 1001, dtype=dtype)
    lhs = fnnet.tanh(z)
    rhs = 2 * fnnet.sigmoid(2 * z) - 1
    np.testing.assert_allclose(lhs, rhs, rtol=0, atol=4 * _eps(dtype))
    # the tail-exact derivatives: the lean ones are exact only in absolute terms (tests/test_extremes.py)
    dlhs = jax.vmap(jax.grad(lambda z: fnnet.tanh(z, exact_tails=True)))(z)
    drhs = jax.vmap(jax.grad(lambda z: 2 * fnnet.sigmoid(2 * z, exact_tails=True) - 1))(z)
    np.testing.assert_allclose(dlhs, drhs, rtol=8 * _eps(dtype), atol=4 * _eps(dtype))


def test_forward_mode_and_hessian_work_on_the_public_function():
    x = jnp.linspace(-3.0, 3.0, 7, dtype=jnp.float64)
    hess = jax.hessian(lambda x: fnnet.sigmoid(x).sum())(x)
    s = jax.nn.sigmoid(x)
    np.testing.assert_allclose(jnp.diag(hess), s * (1 - s) * (1 - 2 * s), rtol=1e-12, atol=1e-15)
    _, t = jax.jvp(fnnet.sigmoid, (x,), (jnp.ones_like(x),))
    np.testing.assert_allclose(t, s * (1 - s), rtol=1e-14)
    # the primitive's fn is the public function itself (one function for every mode)
    assert fnnet.get("sigmoid").fn is fnnet.sigmoid
    # a Python float tangent point
    assert float(jax.jvp(fnnet.relu, (1.0,), (1.0,))[1]) == 1.0


def test_integer_input_is_promoted_as_jax_nn_promotes():
    """Integers are promoted as jax.nn.gelu and jax.nn.softplus promote them (as jnp.sin does: int32
    to float32, int64 to float64 under x64)."""
    assert fnnet.sigmoid(jnp.arange(3, dtype=jnp.int32)).dtype == jnp.float32
    assert fnnet.sigmoid(jnp.arange(3, dtype=jnp.int64)).dtype == jnp.float64
    for name in ("gelu", "softplus"):
        with jax.numpy_dtype_promotion("standard"):
            expected = getattr(jax.nn, name)(jnp.arange(3, dtype=jnp.int32))
        got = getattr(fnnet, name)(jnp.arange(3, dtype=jnp.int32))
        assert got.dtype == expected.dtype
        # float32 results of two correct formulas: a few ULP apart (8ε₃₂ ≈ 1e-6)
        np.testing.assert_allclose(got, expected, rtol=8 * float(jnp.finfo(jnp.float32).eps))


def test_complex_or_bool_input_is_a_type_error_naming_the_dtype():
    with pytest.raises(TypeError, match=r"argument 'x' must have a floating dtype.*bool"):
        fnnet.sigmoid(jnp.array([True, False]))


def test_traced_hyperparameter_is_accepted_and_differentiated():
    """elu's alpha is traced, as in jax.nn; its derivative comes from autodiff of the forward."""
    x = jnp.array([-1.0, 0.5, -2.0])
    y = jax.jit(lambda x, a: fnnet.elu(x, alpha=a))(x, 0.5)
    np.testing.assert_allclose(y, jax.nn.elu(x, 0.5), rtol=1e-6)
    da = jax.grad(lambda a: fnnet.elu(x, a).sum())(0.5)
    np.testing.assert_allclose(da, jax.grad(lambda a: jax.nn.elu(x, a).sum())(0.5), rtol=1e-6)


@pytest.mark.parametrize(
    "name,kwargs",
    [("softplus", {}), ("gelu", {"approximate": False}), ("softmax", {"axis": -1}), ("elu", {"alpha": 0.5})],
)
def test_check_grads_default_modes(name, kwargs):
    """jax.test_util.check_grads with its defaults (forward and reverse mode, order 2), as jax's own
    nn tests call it on jax.nn's functions: the drop-in contract."""
    from jax.test_util import check_grads

    x = jnp.linspace(-2.0, 2.5, 12, dtype=jnp.float64).reshape(3, 4)
    f = functools.partial(getattr(fnnet, name), **kwargs)
    # check_grads compares with its own central differences (default step 1e-3 in float64 at order 2:
    # truncation about h^2·|f'''|/6, 1e-6 relative on this grid), hence 1e-5 and not a multiple of ε.
    check_grads(f, (x,), order=2, rtol=1e-5, atol=1e-7)


def test_linearize_and_jacfwd_on_the_public_function():
    x = jnp.array([-1.5, 0.25, 2.0], dtype=jnp.float64)
    y, f_lin = jax.linearize(fnnet.silu, x)
    np.testing.assert_allclose(f_lin(jnp.ones(3)), jax.vmap(jax.grad(fnnet.silu))(x), rtol=1e-14)
    np.testing.assert_allclose(jnp.diag(jax.jacfwd(fnnet.tanh)(x)), jax.vmap(jax.grad(fnnet.tanh))(x), rtol=1e-14)
