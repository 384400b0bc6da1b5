"""float16 and bfloat16: every activation's value and gradient, against the float32 result.

**What is compared.** The inputs are low-precision numbers x (so they are exact in float16/bfloat16 and in
float32 alike); ŷ = fnnet.X(x) is computed in the low dtype, y = fnnet.X(x as float32) in float32. The
only difference between them is the rounding *inside* the low-precision computation. The derivative is
``jax.grad`` of the sum (elementwise ops: cotangent 1, i.e. the hand VJP) or the hand VJP with a random
cotangent g that is itself exact in the low dtype (ops over an axis, where the gradient of the sum of a
softmax is 0).

**The tolerance: mixed (forward–backward) stability, with c counted from the formula.** A computation
with k roundings, each ``fl(a ∘ b) = (a ∘ b)(1 + δ) + η`` with ``|δ| ≤ u`` (u = ε/2, the unit roundoff of
the low dtype) and ``|η| ≤ λ/2`` (λ its smallest subnormal: gradual underflow, Higham §2.1), returns to
first order the exact result at a perturbed input, perturbed at the output:

    ŷ = f(x(1 + θ) + ξ)·(1 + θ') + ζ,   |θ|, |θ'| ≤ c·u,   |ξ| ≤ c·λ/2,   |ζ| ≤ tiny

where c = k + 1: each of the k roundings is charged either to the input (when it rounds a quantity that
carries x, such as x + 3 or u = √(2/π)(x + 0.044715x³): the stable forms used by fnnet make that
perturbation act on x with weight ≤ 1, d log u/d log x ≥ 1) or to the output (when it rounds a factor or a
positive sum of the result), and the +1 is the float32 result's own error (≤ 8 ULP₃₂ = 2⁻²⁰ relative,
tests/test_accuracy.py, which is < u/2⁸ of either low dtype, so one more u covers it with room). ``tiny``
(the smallest normal number of the low dtype) admits results that flush to zero below the normal range,
as tests/test_accuracy.py does. So the test asserts, entry by entry,

    ŷ ∈ y + [min, max]{f(x') − f(x) : x' = x(1 ± c·u) ± c·λ/2} ± (c·u·|y| + tiny)

with f(x') − f(x) taken in float64. To first order this is |ŷ − y| ≤ c·u·(|y| + |x·f'(x)|): the
``scale·cond`` term is the input perturbation; beyond first order the perturbed interval also admits a
rounding that moves an input across a kink (x = 2.998 in float16: x + 3 rounds to 6, the kink of
hard_sigmoid, whose derivative jumps from 1/6 to 0 there; that is a rounding of x by 2u).

k is counted by hand per op (its record in tests/oracles.py), from the formula as it runs in the low
dtype (each arithmetic operation, transcendental function and rounded constant on an entry's path
counts 1, a square 2 since it doubles its operand's relative error; lax.logistic 3, as XLA expands it to
1/(1 + e^{−x}); jnp.sum of a low dtype accumulates in float32 and rounds once). Multiplications by
powers of two are exact and not counted.
Selections, max/min, negation and comparisons of exact values do not round. The count is an upper bound
under the first-order model; the margin is reported in docs/reference/accuracy.md ("Low precision"): the largest c
that the measured errors need is 8 (gelu's and mish's derivatives), far below their counts.

For the ops over an axis the same statement is made with a normwise input perturbation (J the
Jacobian): |ŷ_i − y_i| ≤ c·u·(|y_i| + ‖x‖∞·Σ_j |J_ij|) + tiny, and likewise for the VJP, plus the
size of the terms the rule subtracts (test_axis_activation_low_precision).

**Domain.** Elementwise ops: *every* finite float16 and bfloat16 number in the op's support (65 k
each), so any overflow of an intermediate (x³ in gelu, x² in squareplus, e^x past 11.09 in float16)
would show as a non-finite ŷ where y is finite. Ops over an axis: their ``sample_inputs``.
Finiteness: wherever |y|·(1 + c·u) ≤ the largest finite low-precision number, ŷ must be finite; NaN
never appears where y is not NaN.

The check runs under jit, as fnnet trains (one program per precision for all the ops: compiling ~100
small programs would cost more CPU than the check). The counts assume every operation rounds to the low
dtype, as eager execution does; the errors measured eagerly needed the same c (docs/reference/accuracy.md).
"""
from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import oracles
from fnnet.primitive import registry

LOW = [jnp.float16, jnp.bfloat16]


def _counts(prim):
    """(k value, k derivative or VJP), the roundings on an entry's path counted from fnnet's formula in
    the low dtype: the op's record in tests/oracles.py (c = k + 1, module docstring). Skips, naming the
    record to add, where there is none (test_every_activation_has_an_oracle_record fails for it)."""
    k = oracles.roundings(prim.name)
    if k is None:
        pytest.skip(oracles.missing_record(prim.name, "roundings"))
    return k


def _u(dtype):
    return float(jnp.finfo(dtype).eps) / 2


def _all_finite(dtype, support):
    """Every finite number of a 16-bit dtype inside the open support, as a numpy array of that dtype,
    padded to 2¹⁶ entries by repeating the first (one shape for both dtypes: the float32 and float64
    evaluations compile once per op)."""
    v = np.arange(2**16, dtype=np.uint16).view(jnp.dtype(dtype))
    with np.errstate(invalid="ignore"):
        v64 = v.astype(np.float64)
    lo, hi = support
    v = v[np.isfinite(v64) & (v64 > lo) & (v64 < hi)]
    return np.concatenate([v, np.full(2**16 - v.size, v[0], v.dtype)])


ELEMENTWISE = oracles.params(lambda p: p.elementwise)
AXIS_OPS = oracles.params(lambda p: oracles.needs_record(p) and not p.elementwise)


def _perturbed(x, c, dtype):
    """float32 inputs, shape (5, n): x and the four corners x(1 ± c·u) ± c·λ/2 (module docstring).

    float32 holds them to 2⁻²⁴ relative, and f(x') − f(x) in float32 is within ε₃₂·|f| of the exact
    difference: 2⁻¹³ of the band's slack c·u·|y| at the least.
    """
    u, eta = _u(dtype), float(jnp.finfo(dtype).smallest_subnormal) / 2
    x64 = x.astype(np.float64)
    corners = [x64 * (1 + s * c * u) + t * c * eta for s in (1.0, -1.0) for t in (1.0, -1.0)]
    with np.errstate(over="ignore"):  # bfloat16's largest numbers times 1 + c·u: inf, not judged
        return np.stack([x64] + corners).astype(np.float32)


@functools.cache
def _elementwise_program():
    """Every elementwise case's value and ``jax.grad`` of its sum, one jitted program: compiled once per
    low dtype and once at float32 (the float32 inputs have the same shapes for both low dtypes)."""
    fns = {case.id: (lambda v, p=case.values[0], st=case.values[1]: p.fn(v, **st)) for case in ELEMENTWISE}

    def both(xs_val, xs_grad):
        return {
            k: (f(xs_val[k]), jax.grad(lambda v, f=f: jnp.sum(f(v)))(xs_grad[k])) for k, f in fns.items()
        }

    return jax.jit(both)


@functools.cache
def _elementwise_results(dtype):
    """Every elementwise case's inputs and results, from one jitted program per precision (compiling
    96 small programs costs more CPU than the whole check): per case id, (x, ŷ, ŷ', y, y'), where y and
    y' are float32 of shape (5, n): at x (row 0) and at the four perturbed corners of _perturbed."""
    xs, xv, xd = {}, {}, {}
    for case in ELEMENTWISE:
        prim, static = case.values
        x = _all_finite(dtype, prim.support)
        k_val, k_grad = oracles.roundings(prim.name) or (0, 0)  # no record: the test skips
        xs[case.id] = x
        xv[case.id] = _perturbed(x, k_val + 1, dtype)
        xd[case.id] = _perturbed(x, k_grad + 1, dtype)
    program = _elementwise_program()
    low = program({k: jnp.asarray(x) for k, x in xs.items()}, {k: jnp.asarray(x) for k, x in xs.items()})
    f32 = program(xv, xd)  # float32, shape (5, n): compiled once for both low dtypes
    return {k: (xs[k], *map(np.asarray, low[k]), *map(np.asarray, f32[k])) for k in xs}


def _check_band(what, x, y_low, y32, c, dtype):
    """Assert the mixed-stability band of the module docstring, and finiteness, entry by entry.

    ``y32`` has shape (5, n): f at x (row 0) and at the four perturbed inputs of _perturbed.
    """
    u, tiny = _u(dtype), float(jnp.finfo(dtype).tiny)
    big = float(jnp.finfo(dtype).max)
    y_low = np.asarray(y_low, np.float64)
    y32 = np.asarray(y32, np.float64)
    center = y32[0]
    with np.errstate(all="ignore"):
        shifts = np.concatenate([np.zeros_like(center)[None], y32[1:] - center])
        representable = np.isfinite(center) & (np.abs(center) * (1 + c * u) <= big)
        bad_nan = np.isnan(y_low) & ~np.isnan(center)
        assert not bad_nan.any(), f"{what}: NaN at x = {x[bad_nan][:5]} where float32 gives {center[bad_nan][:5]}"
        bad_inf = representable & ~np.isfinite(y_low)
        assert not bad_inf.any(), (
            f"{what}: non-finite {y_low[bad_inf][:5]} at x = {x[bad_inf][:5]} where float32 gives "
            f"{center[bad_inf][:5]}"
        )
        judged = representable & np.all(np.isfinite(shifts), axis=0)
        slack = c * u * np.abs(center) + tiny
        lo = center + np.min(shifts, axis=0) - slack
        hi = center + np.max(shifts, axis=0) + slack
        bad = judged & ~((y_low >= lo) & (y_low <= hi))
    if bad.any():
        i = np.flatnonzero(bad)[:5]
        raise AssertionError(
            f"{what}: {bad.sum()} entries outside the c = {c} band, e.g. x = {x[i]}, low {y_low[i]}, "
            f"float32 {center[i]}, band [{lo[i]}, {hi[i]}]"
        )


@pytest.mark.parametrize("dtype", LOW, ids=["f16", "bf16"])
@pytest.mark.parametrize("prim,static", ELEMENTWISE)
def test_elementwise_every_low_precision_number(prim, static, dtype):
    k_val, k_grad = _counts(prim)
    x, y_low, d_low, y32, d32 = _elementwise_results(dtype)[oracles.case_id(prim, static)]
    assert y_low.dtype == dtype and d_low.dtype == dtype, (
        f"{prim.name}: {jnp.dtype(dtype).name} in, value {y_low.dtype} and derivative {d_low.dtype} out"
    )
    _check_band(f"{prim.name} value", x, y_low, y32, k_val + 1, dtype)
    if static.get("exact_tails") is False:
        # The lean derivative (tanh, sigmoid) is computed from the rounded output: y carries at most
        # (k_val + 1)·ε relative error, i.e. absolute since |y| ≤ 1; the derivative's slope in y is at
        # most 2 (|1 − 2y|, 2|y|), and its own two roundings add at most 2ε of a value ≤ 1. So the bound
        # is absolute, 2(k_val + 1)ε + 2ε: the relative error grows as 1/(1 − |y|) in the tails, as
        # jax.nn's does; exact_tails=True is the variant with the relative band.
        eps = float(jnp.finfo(dtype).eps)
        bound = (2 * (k_val + 1) + 2) * eps
        err = np.abs(np.asarray(d_low, np.float64) - np.asarray(d32, np.float64))
        bad = np.isfinite(d32) & (err > bound)
        assert not bad.any(), f"{prim.name} lean derivative: {bad.sum()} entries off by more than {bound:.3g}"
        return
    _check_band(f"{prim.name} derivative", x, d_low, d32, k_grad + 1, dtype)


def _value_and_vjp(prim, static):
    f = functools.partial(prim.fn, **static)

    def value_and_vjp(args, g):
        y, vjp = jax.vjp(f, *args)
        return y, vjp(g)

    return value_and_vjp


@functools.cache
def _axis_program():
    """One jitted program computing every case's value and VJP (compiling 17 programs costs more CPU
    than the check); float32 calls have the same shapes for both dtypes and compile once."""
    programs = {case.id: _value_and_vjp(*case.values) for case in AXIS_OPS}
    return jax.jit(lambda args, gs: {k: programs[k](args[k], gs[k]) for k in programs})


@functools.cache
def _axis_inputs():
    """Per case id: the float32 sample inputs and a standard normal cotangent of the output's shape."""
    out = {}
    for case in AXIS_OPS:
        prim, static = case.values
        args = prim.sample_inputs(jax.random.key(0), jnp.float32, **static)
        shape = jax.eval_shape(functools.partial(prim.fn, **static), *args).shape
        g = np.asarray(jax.random.normal(jax.random.key(1), shape, jnp.float32))
        out[case.id] = (tuple(np.asarray(a) for a in args), g)
    return out


def _sensitivities(run, args, gs):
    """Per case: Σ_j |∂y/∂x_j| (shape of y), and per input i (Σ_j |∂z_i/∂x_j|, |J_i|ᵀ|g|), z = Jᵀg.

    Central differences of fnnet's float32 value and VJP, coordinate by coordinate, all cases in each
    call of the compiled program. They are only the scales of a tolerance: a step h = 1e-3·max(1, ‖x‖∞)
    leaves a relative error ~h²·|f‴| + ε₃₂/h ≈ 1e-4 in the scale, which moves the bound by as much.
    """
    flat = {k: np.concatenate([a.ravel() for a in v]).astype(np.float64) for k, v in args.items()}
    h = {k: 1e-3 * max(1.0, float(np.max(np.abs(v)))) for k, v in flat.items()}
    width = max(v.size for v in flat.values())

    def unflatten(k, v):
        pieces = np.split(v, np.cumsum([a.size for a in args[k]])[:-1])
        return tuple(p.reshape(a.shape).astype(np.float32) for p, a in zip(pieces, args[k]))

    cols = {k: [] for k in flat}
    for j in range(width):
        outs = []
        for sign in (1.0, -1.0):
            moved = {}
            for k, v in flat.items():
                w = v.copy()
                if j < w.size:
                    w[j] += sign * h[k]
                moved[k] = unflatten(k, w)
            outs.append(run(moved, gs))
        for k, v in flat.items():
            if j < v.size:
                (yp, zp), (ym, zm) = outs[0][k], outs[1][k]
                dy = (np.asarray(yp, np.float64) - np.asarray(ym, np.float64)) / (2 * h[k])
                dz = [(np.asarray(a, np.float64) - np.asarray(b, np.float64)) / (2 * h[k]) for a, b in zip(zp, zm)]
                cols[k].append((dy, dz))
    result = {}
    for k, c in cols.items():
        jac_y = np.stack([dy.ravel() for dy, _ in c])  # [j, i] = ∂y_i/∂x_j
        rows = np.abs(jac_y).sum(axis=0).reshape(c[0][0].shape)
        g_abs = np.abs(np.asarray(gs[k], np.float64)).ravel()
        per_input, start = [], 0
        for i, a in enumerate(args[k]):
            d2 = np.abs(np.stack([dz[i].ravel() for _, dz in c])).sum(axis=0).reshape(a.shape)
            via_g = (np.abs(jac_y[start:start + a.size]) @ g_abs).reshape(a.shape)
            per_input.append((d2, via_g))
            start += a.size
        result[k] = (rows, per_input)
    return result


@functools.cache
def _axis_results(dtype):
    """Per case id: (low-precision args, ŷ, ẑ, y, z, g, sensitivities)."""
    run = _axis_program()
    inputs = _axis_inputs()
    args_low = {k: tuple(jnp.asarray(a).astype(dtype) for a in v[0]) for k, v in inputs.items()}
    # A cotangent exact in the low dtype, so both precisions see the same g.
    g32 = {k: np.asarray(jnp.asarray(v[1]).astype(dtype).astype(jnp.float32)) for k, v in inputs.items()}
    low = run(args_low, {k: jnp.asarray(g).astype(dtype) for k, g in g32.items()})
    args32 = {k: tuple(np.asarray(a).astype(np.float32) for a in v) for k, v in args_low.items()}
    f32 = run(args32, g32)
    sens = _sensitivities(run, args32, g32)
    return {k: (args_low[k], *low[k], *f32[k], g32[k], sens[k]) for k in low}


@pytest.mark.parametrize("dtype", LOW, ids=["f16", "bf16"])
@pytest.mark.parametrize("prim,static", AXIS_OPS)
def test_axis_activation_low_precision(prim, static, dtype):
    """softmax family, glu, prelu, rrelu on their sample inputs.

    The bound is the module docstring's with the input perturbation normwise, ‖Δx‖∞ ≤ c·u·‖x‖∞ (the
    shift x − m of the softmax family rounds a quantity as large as |x_i| + |m| ≤ 2‖x‖∞, not |x_i|):
    |ŷ_i − y_i| ≤ c·u·(|y_i| + ‖x‖∞·Σ_j |J_ij|) + tiny, and for the VJP z = Jᵀg
    |ẑ_i − z_i| ≤ c·u·(|z_i| + ‖x‖∞·Σ_j |∂z_i/∂x_j| + G_i) + tiny, G_i = Σ_k |J_ki|·|g_k| or, where the
    rule subtracts, the size of the terms it subtracts (the record's ``subtracted``, tests/oracles.py).
    """
    k_val, k_vjp = _counts(prim)
    args_low, y_low, z_low, y32, z32, g32, (rows, per_input) = _axis_results(dtype)[oracles.case_id(prim, static)]
    u, tiny = _u(dtype), float(jnp.finfo(dtype).tiny)

    assert y_low.dtype == dtype and all(z.dtype == dtype for z in z_low), (
        f"{prim.name}: {jnp.dtype(dtype).name} in, value {y_low.dtype}, cotangents {[z.dtype for z in z_low]}"
    )
    assert bool(jnp.all(jnp.isfinite(y_low))) and all(bool(jnp.all(jnp.isfinite(z))) for z in z_low), (
        f"{prim.name}: non-finite {jnp.dtype(dtype).name} value or gradient on the sample inputs"
    )

    x_norm = max(float(np.max(np.abs(np.asarray(a, np.float64)))) for a in args_low)
    err = np.abs(np.asarray(y_low, np.float64) - np.asarray(y32, np.float64))
    bound = (k_val + 1) * u * (np.abs(np.asarray(y32, np.float64)) + x_norm * np.asarray(rows)) + tiny
    assert np.all(err <= bound), f"{prim.name} value: max err/bound {np.max(err / bound):.3g}"
    # where the rule subtracts, the size of the terms it subtracts (the op's record), else Σ_k |J_ki||g_k|
    subtracted = oracles.record(prim.name).subtracted
    terms = subtracted and subtracted(static, np.asarray(y32, np.float64), np.asarray(g32, np.float64))
    for name, zl, z3, (d2, via_g) in zip(prim.arg_names, z_low, z32, per_input):
        err = np.abs(np.asarray(zl, np.float64) - np.asarray(z3, np.float64))
        g_side = np.asarray(via_g if terms is None else terms)
        scale = np.abs(np.asarray(z3, np.float64)) + x_norm * np.asarray(d2) + g_side
        bound = (k_vjp + 1) * u * scale + tiny
        assert np.all(err <= bound), f"{prim.name} VJP wrt {name}: max err/bound {np.max(err / bound):.3g}"


def test_float16_overflow_of_exp_is_the_exact_overflow():
    """exp(x) in float16 overflows where e^x exceeds 65504 (x > log 65504 ≈ 11.09), not earlier: the
    largest float16 below that point maps to a finite value, the next one up to inf."""
    x = jnp.asarray([11.0859375, 11.09375], jnp.float16)  # consecutive float16 around log(65504)
    assert math.exp(11.0859375) < 65504 < math.exp(11.09375)
    y = registry()["exp"].fn(x)
    assert bool(jnp.isfinite(y[0])) and bool(jnp.isinf(y[1]))


def _measured_c():
    """The smallest c (on a grid) for which every input lies in the band, per op and dtype (">64": none
    on the grid): the "measured" columns of docs/reference/accuracy.md's Low precision table."""
    grid = (0, 0.5, 1, 1.5, 2, 3, 4, 5, 6, 8, 10, 12, 16, 24, 32, 48, 64)
    rows = []
    for case in ELEMENTWISE:
        prim, static = case.values
        f = jax.jit(functools.partial(prim.fn, **static))
        df = jax.jit(jax.grad(lambda v, f=f: jnp.sum(f(v))))
        row = [case.id]
        for dtype in LOW:
            x = _all_finite(dtype, prim.support)
            for fun in (f, df):
                low = np.asarray(fun(jnp.asarray(x)))
                for c in grid:
                    try:
                        _check_band("", x, low, np.asarray(fun(jnp.asarray(_perturbed(x, c, dtype)))), c, dtype)
                        break
                    except AssertionError:
                        continue
                else:  # no c on the grid holds: say so, rather than print the grid's last value
                    c = f">{grid[-1]}"
                row.append(c)
        rows.append(row + [k + 1 for k in oracles.roundings(prim.name)])
    return rows


if __name__ == "__main__":  # python tests/test_low_precision.py: the table of docs/reference/accuracy.md
    jax.config.update("jax_enable_x64", True)
    jax.config.update("jax_numpy_dtype_promotion", "strict")
    print("| op | f16 value | f16 derivative | bf16 value | bf16 derivative | c = k + 1 (value / derivative) |")
    print("|---|---|---|---|---|---|")
    for name, *need, cv, cd in _measured_c():
        print(f"| {name} | " + " | ".join(c if isinstance(c, str) else f"{c:g}" for c in need) + f" | {cv} / {cd} |")
