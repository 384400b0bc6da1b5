"""Tests for fnnet.check.gradcheck: seeded bugs are caught and named, correct rules pass.

Every seeded bug is a ``jax.custom_vjp`` written here, with its correct twin, so a test shows both the
catch and the absence of a false alarm. No tolerance in this file is tuned: gradcheck derives its
own (docs/reference/gradcheck.md); the tests assert verdicts, keypaths and indices.
"""

from __future__ import annotations

import contextlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fnnet.check import GradCheckReport, assert_gradcheck, gradcheck
from seeded_rules import tanh_rule, tanh_sq_sum, tanh_with_bwd


def normal(shape, dtype=jnp.float32, seed=0):
    """Standard normal test data from NumPy's generator (a jax.random draw compiles a program per
    shape). Explicit dtype: tests/conftest.py turns x64 on, so JAX's default would be float64."""
    return jnp.asarray(np.random.default_rng(seed).standard_normal(shape), dtype)


# ---------------------------------------------------------------------------------------------
# Rules under test (each with an optional seeded bug)
# ---------------------------------------------------------------------------------------------
def dense_tanh(bug=None):
    """sum(tanh(x @ W + b)) over params {"W": (n_in, n_out), "b": (n_out,)}, x: (batch, n_in)."""

    @jax.custom_vjp
    def f(params, x):
        return jnp.sum(jnp.tanh(x @ params["W"] + params["b"]))

    def fwd(params, x):
        y = jnp.tanh(x @ params["W"] + params["b"])
        return jnp.sum(y), (params, x, y)

    def bwd(res, g):
        params, x, y = res
        delta = g * (1 - y**2)
        dW = x.T @ delta
        if bug == "entry":
            dW = dW.at[2, 3].multiply(1 + 1e-3)
        if bug == "transpose":  # (square W) the classic W vs W^T slip
            dW = delta.T @ x
        db = delta.sum(0)
        if bug == "broadcast":  # b was broadcast over the batch: its cotangent must be summed back
            db = delta[0]
        return {"W": dW, "b": db}, delta @ params["W"].T

    f.defvjp(fwd, bwd)
    return f


def softmax(bug=None):
    """softmax over the last axis; VJP = y * (g - <g, y>)."""

    @jax.custom_vjp
    def f(x):
        return jax.nn.softmax(x)

    def fwd(x):
        y = jax.nn.softmax(x)
        return y, y

    def bwd(y, g):
        if bug == "no_subtraction":
            return (y * g,)
        return (y * (g - jnp.sum(g * y, axis=-1, keepdims=True)),)

    f.defvjp(fwd, bwd)
    return f


def relu(convention=0.0):
    """relu with derivative ``convention`` at 0 (any value in [0, 1] is a valid subgradient)."""

    @jax.custom_vjp
    def f(x):
        return jnp.maximum(x, 0)

    def fwd(x):
        return f(x), x

    def bwd(x, g):
        return (g * jnp.where(x > 0, 1.0, jnp.where(x < 0, 0.0, convention)).astype(x.dtype),)

    f.defvjp(fwd, bwd)
    return f


def dense_params(n=4, batch=5, dtype=jnp.float32):
    params = {"W": normal((n, n), dtype, seed=11), "b": normal((n,), dtype, seed=12)}
    return params, normal((batch, n), dtype, seed=13)


def failed(report: GradCheckReport) -> set:
    return {c.name for c in report.comparisons if c.failed}


# ---------------------------------------------------------------------------------------------
# Seeded bugs are caught and localised
# ---------------------------------------------------------------------------------------------
def test_one_entry_off_by_1e3_in_dict_leaf_is_named_by_reference_and_fd():
    params, x = dense_params()
    report = gradcheck(dense_tanh("entry"), params, x)
    assert not report.passed
    # (a) compares every entry against the float64 autodiff of f.fun; (b) localises by bisection.
    assert failed(report) == {"(a) rule vs jax.vjp(reference)", "(b) rule vs finite differences"}
    for comparison in ("(a)", "(b)"):
        worst = report.comparison(comparison).entries[0]
        assert worst.where == "args[0]['W'][2, 3]"
        assert worst.error > worst.tol
    text = str(report)
    assert "args[0]['W'][2, 3]" in text and "FAILED" in text


def test_fd_alone_localises_without_reference():
    # jax.jit hides .fun, so there is no reference: only finite differences and bisection remain.
    params, x = dense_params()
    report = gradcheck(jax.jit(dense_tanh("entry")), params, x)
    assert report.comparison("(a)").verdict == "skipped"
    assert failed(report) == {"(b) rule vs finite differences"}
    entry = report.comparison("(b)").entries[0]
    assert entry.where == "args[0]['W'][2, 3]"
    # The FD derivative of the bad entry matches the true one (the rule is 1e-3 off, relatively).
    truth = jax.grad(lambda p: jnp.sum(jnp.tanh(x @ p["W"] + p["b"])))(params)["W"][2, 3]
    assert abs(entry.fd - float(truth)) < 1e-3 * abs(float(truth))
    assert abs(entry.rule / float(truth) - (1 + 1e-3)) < 1e-5


@pytest.mark.parametrize("bug, leaf", [("transpose", "args[0]['W']"), ("broadcast", "args[0]['b']")])
def test_transposed_weight_and_unsummed_broadcast_are_caught(bug, leaf):
    params, x = dense_params()
    report = gradcheck(dense_tanh(bug), params, x)
    assert not report.passed
    assert report.worst_entries[0].keypath == leaf
    assert report.comparison("(b)").entries[0].keypath == leaf


def test_softmax_vjp_missing_subtraction_is_caught():
    x = normal((3, 5))
    report = gradcheck(softmax("no_subtraction"), x)
    assert failed(report) >= {"(a) rule vs jax.vjp(reference)", "(b) rule vs finite differences"}
    assert "full Jacobian (15 basis cotangents)" in report.comparison("(a)").detail
    assert gradcheck(softmax(), x).passed


def test_large_output_uses_random_sign_cotangents():
    # 32 outputs > basis_limit = 16: three random ±1 cotangents; a wrong Jacobian column still shows.
    x = normal((4, 8))
    report = gradcheck(softmax("no_subtraction"), x)
    assert "3 random ±1 cotangents" in report.comparison("(a)").detail
    assert report.comparison("(a)").failed and report.comparison("(b)").failed
    assert "probability <= 3.9e-03" in str(report)  # 2^-8 for 8 probes per leaf


def test_sign_flip_is_caught_and_bad_entry_of_1e5_named():
    x = normal((1000,))
    assert not gradcheck(tanh_sq_sum("sign"), x).passed
    report = gradcheck(tanh_sq_sum("entry"), x)
    assert report.worst_entries[0].where == "args[0][7]"


def test_assert_gradcheck_raises_with_the_table():
    x = normal((50,))
    with pytest.raises(AssertionError, match=r"args\[0\]\[7\]"):
        assert_gradcheck(tanh_sq_sum("entry"), x)
    assert assert_gradcheck(tanh_sq_sum(), x).passed


# ---------------------------------------------------------------------------------------------
# Correct rules pass (no false positives)
# ---------------------------------------------------------------------------------------------
def test_tanh_squared_sum_of_1e5_float32_passes():
    # jax.test_util.check_grads rejects this in float32 (jax#3130); our tolerances grow like sqrt(N).
    x = normal((100_000,))
    report = gradcheck(tanh_sq_sum(), x)
    assert report.passed, str(report)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_correct_dense_passes_in_float32_and_float64(dtype):
    x64_before = jax.config.jax_enable_x64
    with jax.enable_x64(True):  # float64 arrays need x64 while they are created and used
        params, x = dense_params(dtype=dtype)
        report = gradcheck(dense_tanh(), params, x)
    assert report.passed, str(report)
    assert jax.config.jax_enable_x64 == x64_before  # gradcheck scopes x64, never leaves it changed


def test_x64_setting_is_restored_when_off():
    with jax.enable_x64(False):
        report = gradcheck(tanh_sq_sum(), jnp.ones(5, jnp.float32))
        assert jnp.zeros(1).dtype == jnp.float32
    assert report.passed


def test_matmul_precision_is_highest_inside_the_check_and_restored_after():
    # f records the matmul precision in force each time it is traced or run (forward, rule,
    # reference, finite differences, eager). A TF32 pass (GPU default for float32 products) would
    # differ from float64 differences by ~1e-3, so every one of them must see "highest".
    seen = []

    @jax.custom_vjp
    def f(W, x):
        seen.append(jax.config.jax_default_matmul_precision)
        return jnp.sum(jnp.tanh(x @ W))

    def fwd(W, x):
        seen.append(jax.config.jax_default_matmul_precision)
        y = jnp.tanh(x @ W)
        return jnp.sum(y), (W, x, y)

    def bwd(res, g):
        W, x, y = res
        seen.append(jax.config.jax_default_matmul_precision)
        d = g * (1 - y**2)
        return x.T @ d, d @ W.T

    f.defvjp(fwd, bwd)
    W, x = normal((4, 3)), normal((5, 4), seed=1)
    with jax.default_matmul_precision("bfloat16"):
        report = gradcheck(f, W, x, cache=False)
        assert jax.config.jax_default_matmul_precision == "bfloat16"  # the caller's scope is back
    assert report.passed, str(report)
    assert seen and set(seen) == {"highest"}, set(seen)
    assert jax.config.jax_default_matmul_precision is None
    assert "matmul precision highest" in str(report)


def test_compiled_programs_are_reused_for_the_same_function_and_dropped_with_it():
    import gc
    import weakref

    from fnnet.check import programs

    traces = []  # one element per trace of the rule's fwd (jit traces; an eager run adds one)

    @jax.custom_vjp
    def f_traced(x):
        return jnp.sum(jnp.tanh(x) ** 2)

    def fwd(x):
        traces.append(1)
        y = jnp.tanh(x)
        return jnp.sum(y**2), y

    def bwd(y, g):
        return (g * 2 * y * (1 - y**2) * jnp.ones_like(y).at[7].set(1 + 1e-3),)

    f_traced.defvjp(fwd, bwd)
    x = normal((40,))
    first = gradcheck(f_traced, x)
    n_first = len(traces)
    second = gradcheck(f_traced, x)
    # Same verdicts and the same entry named, and nothing traced again: none of the compiled programs
    # that trace fwd (the rule at float32, the float64 rule+reference pair, f in float64, the sampler,
    # the JVP attempt, whose failure is kept) is traced by the second call.
    assert not first.passed and not second.passed
    assert [c.verdict for c in first.comparisons] == [c.verdict for c in second.comparisons]
    assert first.comparison("(a)").entries[0].where == second.comparison("(a)").entries[0].where == "args[0][7]"
    assert len(traces) == n_first and n_first >= 3
    gradcheck(f_traced, x, eager=True)  # the op-by-op run, asked for, is the one new trace
    assert len(traces) == n_first + 1
    different_value = gradcheck(f_traced, x + 1)  # new point, same shapes: programs reused, new verdict
    assert not different_value.passed
    ref = weakref.ref(f_traced)
    del f_traced, first, second, different_value
    gc.collect()
    assert ref() is None  # the cache holds f weakly: nothing keeps it alive
    assert all(k is not None for k in list(programs._CACHE.keys()))


@pytest.mark.parametrize("convention", [0.0, 0.5, 1.0])
def test_relu_exactly_at_its_kink_passes_with_any_subgradient(convention):
    x = jnp.array([-1.0, 0.0, 0.0, 2.0, 0.0, -0.5], jnp.float32)
    report = gradcheck(relu(convention), x)
    assert report.passed, str(report)
    # f.fun is jnp.maximum, whose autodiff splits the tie as 1/2: conventions 0 and 1 disagree with
    # it at the kinks, and are accepted there because FD finds one-sided slopes 0 and 1.
    if convention != 0.5:
        assert "accepted (subgradient)" in report.comparison("(a)").detail
        assert "kink: subgradient interval [0, 1] accepted" in str(report)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_relu_at_many_kinks_passes_whatever_the_probe_directions(seed):
    # A probe through several kinks can be smooth along its direction (relu(t) - relu(-t) = t) while
    # the rule's per-coordinate subgradients project to 2: gradcheck must accept that combination.
    x = jnp.zeros(32, jnp.float32).at[::3].set(1.0)
    report = gradcheck(relu(1.0), x, seed=seed)
    assert report.passed, str(report)


def test_relu_with_a_wrong_value_at_the_kink_fails():
    report = gradcheck(relu(2.0), jnp.array([-1.0, 0.0, 2.0], jnp.float32))
    assert not report.passed
    assert report.worst_entries[0].where == "args[0][1]"


@pytest.mark.parametrize("dtype", [jnp.float16, jnp.bfloat16])
def test_low_precision_inputs_use_float64_differences(dtype):
    # JAX's check_grads gets all-zero differences here (jax#7742): the step is below one ulp.
    x = normal((64,)).astype(dtype)
    report = gradcheck(tanh_sq_sum(), x)
    assert report.passed, str(report)
    bad = gradcheck(tanh_sq_sum("sign"), x)
    assert not bad.passed


def test_cancelled_sum_in_a_one_entry_leaf_passes():
    # d/d(scale) of <g, tanh(x) * scale> is sum_k g_k tanh(x_k), near 0 for symmetric x: its float32
    # rounding is set by the terms (~1e-7), not by the result. The tolerance includes the rule's own
    # rounding, observed as |VJP_float32 - VJP_float64|, so this correct gradient passes.
    def f(x, scale, n):
        return {"y": jnp.tanh(x) * scale, "count": jnp.sum(x > 0)}, n

    x = jnp.linspace(-1, 1, 6, dtype=jnp.float32)
    report = gradcheck(f, x, 2.0, 3, argnums=(0, 1))
    assert report.passed, str(report)
    assert {k for k, _ in report.skipped} == {"out[0]['count']", "out[1]"}


def test_plain_function_gets_jvp_check_and_pytree_outputs():
    def f(p, x):
        return {"y": jnp.tanh(x @ p["W"]), "s": jnp.sum(p["b"] ** 2)}

    params, x = dense_params()
    report = gradcheck(f, params, x, reference=f)
    assert report.passed, str(report)
    assert report.comparison("(c) JVP agrees with VJP").verdict == "pass"


# ---------------------------------------------------------------------------------------------
# Modes and options
# ---------------------------------------------------------------------------------------------
def test_full_mode_names_the_entry_and_passes_the_correct_rule():
    params, x = dense_params()
    bad = gradcheck(jax.jit(dense_tanh("entry")), params, x, mode="full", chunk_size=5)
    assert failed(bad) == {"(b) rule vs finite differences (full)"}
    assert bad.worst_entries[0].where == "args[0]['W'][2, 3]"
    assert "every entry" in bad.comparison("(b)").detail
    assert gradcheck(dense_tanh(), params, x, mode="full").passed


def test_complex_step_mode():
    x = normal((20,))
    assert gradcheck(tanh_sq_sum(), x, fd="complex").passed
    report = gradcheck(jax.jit(tanh_sq_sum("entry")), x, fd="complex")
    assert report.worst_entries[0].where == "args[0][7]"


def test_second_order_checks_the_vjp_itself():
    # First derivative right, but y is treated as a constant in bwd, so d(VJP)/dx is wrong.
    x = normal((6,))
    assert gradcheck(tanh_sq_sum(), x, order=2).passed
    report = gradcheck(tanh_sq_sum("second_order"), x, order=2)
    assert report.comparison("(a)").verdict == "pass"  # order 1 is right
    assert any(c.name.startswith("order 2") and c.failed for c in report.comparisons)


def test_rtol_atol_override_replaces_the_derived_allowance():
    x = normal((50,))
    # A 1e-3 relative error passes when the user allows 1e-2 relative.
    assert gradcheck(tanh_sq_sum("entry"), x, rtol=1e-2, atol=1e-6).passed


# ---------------------------------------------------------------------------------------------
# Structural failures
# ---------------------------------------------------------------------------------------------
def test_bwd_with_wrong_shape_is_reported_not_raised():
    # JAX itself raises when the VJP runs ("Custom VJP bwd rule must produce an output with the same
    # type as the args"); gradcheck reports that message as the failed structure check.
    report = gradcheck(tanh_with_bwd(lambda x, g: (g[:2] * (1 - jnp.tanh(x[:2]) ** 2),)), jnp.ones(3, jnp.float32))
    assert failed(report) == {"(c) structure: shapes, dtypes"}
    assert "shapes do not match" in str(report)


def test_nonlinear_bwd_and_nonzero_at_zero_cotangent():
    x = normal((4,))
    square = gradcheck(tanh_with_bwd(lambda x, g: (g * jnp.abs(g) * (1 - jnp.tanh(x) ** 2),)), x)
    assert "(c) linear in the cotangent" in failed(square)
    offset = gradcheck(tanh_with_bwd(lambda x, g: ((g + 1e-3) * (1 - jnp.tanh(x) ** 2),)), x)
    assert {"(c) zero cotangent gives zero", "(c) linear in the cotangent"} <= failed(offset)


def test_a_rule_that_differs_outside_jit_is_caught_only_with_eager():
    # Every default check runs the rule under jit, so a bwd that takes another path on concrete
    # arrays (here: scaled by 1.01 when not traced) passes them; eager=True runs it op by op too.
    def bwd(x, g):
        scale = 1.0 if isinstance(g, jax.core.Tracer) else 1.01
        return (g * (1 - jnp.tanh(x) ** 2) * scale,)

    x = normal((5,))
    default = gradcheck(tanh_with_bwd(bwd), x, cache=False)
    assert default.passed, str(default)
    assert default.comparison("(c) jit agrees with eager").verdict == "skipped"
    assert "eager=True" in default.comparison("(c) jit agrees with eager").detail
    eager = gradcheck(tanh_with_bwd(bwd), x, eager=True, cache=False)
    assert failed(eager) == {"(c) jit agrees with eager"}


@contextlib.contextmanager
def backend_compilations():
    """The XLA compilations started in the body (one duration each), counted with jax.monitoring."""
    compiled = []

    def listener(event, duration, **_):
        if event == "/jax/core/compile/backend_compile_duration":
            compiled.append(duration)

    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        yield compiled
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)


def one_program_per_role(self, items, probe=()):
    """Stand-in for Programs.prefetch_together: each program compiled alone, in its own scope."""
    from fnnet.check import programs

    for role, build, args, wide in items:
        with programs.float64_scope() if wide else contextlib.nullcontext():
            self.prefetch(role, build, args)


def test_the_programs_of_a_check_compile_as_one_executable(monkeypatch):
    # The rule's VJP and JVP at the inputs' precision and, in float64, the rule and the reference and
    # the finite-difference sampler (which on a problem this small also gives f's outputs for the
    # float32-inside test) are one executable instead of one each: every XLA compilation has a fixed
    # cost. The report is that of separate programs.
    from fnnet.check import programs

    # Bit for bit with XLA's default code generation; with the checker's run-once options (no LLVM
    # optimization, XLA:CPU's classic emitter) XLA may generate a float32 transcendental differently in
    # a different program (a last-bit difference, seen in tanh's), so there the verdict, the named
    # entries and the values agree to float32's rounding.
    x = normal((30,))
    reports = {}
    for options in ({}, None):
        with programs.compiler_options(options):
            with backend_compilations() as compiled:
                together = gradcheck(tanh_sq_sum("entry"), x, cache=False)
            assert len(compiled) == 1, len(compiled)
            assert not together.passed and together.comparison("(a)").entries[0].where == "args[0][7]"
            with monkeypatch.context() as m:
                m.setattr(programs.Programs, "prefetch_together", one_program_per_role)
                with backend_compilations() as compiled:
                    alone = gradcheck(tanh_sq_sum("entry"), x, cache=False)
            assert len(compiled) >= 3, len(compiled)
        reports[options is None] = (together, alone)
    together, alone = reports[False]
    assert str(alone) == str(together)
    together, alone = reports[True]
    assert alone.passed == together.passed
    for c in ("(a)", "(b)"):
        a, t = alone.comparison(c), together.comparison(c)
        assert [e.where for e in a.entries] == [e.where for e in t.entries]
        for ea, et in zip(a.entries, t.entries):
            # tanh's last bit: the rule 2y(1 − y²) moves by at most 3 relative ULP of y per ULP of y
            # (|d log rule / d log y| ≤ 3 where y² ≤ 1), plus its own rounding: 4 ε
            assert abs(ea.rule - et.rule) <= 4 * np.finfo(np.float32).eps * abs(et.rule)


def test_programs_traced_without_x64_keep_their_dtypes_in_the_combined_executable(monkeypatch):
    # The combined executable is lowered with x64 on; a program traced without it (the rule at the
    # caller's precision) is evaluated from its traced jaxpr, so a rule that builds arrays with JAX's
    # default dtype (float32 without x64; traced again with x64 on, float64, which strict promotion
    # refuses) computes what it computes alone, and the report is the same.
    from fnnet.check import programs

    @jax.custom_vjp
    def f(x):
        return jnp.sum(jnp.tanh(x) * jnp.ones(x.shape))  # ones: float32 without x64, float64 with it

    def fwd(x):
        return f(x), x

    def bwd(x, g):
        return (g * (1 - jnp.tanh(x) ** 2) * jnp.ones(x.shape),)

    f.defvjp(fwd, bwd)
    with jax.enable_x64(False):
        x = jnp.asarray(np.linspace(-2, 2, 7).astype(np.float32))
        with backend_compilations() as compiled:
            together = gradcheck(f, x, cache=False)
        assert len(compiled) == 1, len(compiled)  # combined: not the fallback of one program each
        monkeypatch.setattr(programs.Programs, "prefetch_together", one_program_per_role)
        alone = gradcheck(f, x, cache=False)
    assert together.passed, str(together)
    assert str(together) == str(alone)


def test_a_large_problem_compiles_one_program_per_role(monkeypatch):
    # Above TOGETHER_MAX_ENTRIES packed numbers the combined executable would pad and copy a long
    # vector on every call: each program is compiled alone, with the same report.
    from fnnet.check import programs

    # (with XLA's default code generation, for a bit-for-bit comparison: see the test above)
    x = normal((30,))
    with programs.compiler_options({}):
        together = gradcheck(tanh_sq_sum("entry"), x, cache=False)
        monkeypatch.setattr(programs, "TOGETHER_MAX_ENTRIES", 100)  # the float64 VJP pair returns 8·30·2
        with backend_compilations() as compiled:
            alone = gradcheck(tanh_sq_sum("entry"), x, cache=False)
    assert len(compiled) >= 3, len(compiled)  # the rule and, in float64, the VJP pair and the sampler
    assert str(alone) == str(together)


# ---------------------------------------------------------------------------------------------
# Bad input
# ---------------------------------------------------------------------------------------------
def test_integer_and_bool_leaves_are_skipped_and_listed():
    def f(p):
        return jnp.sum(jnp.tanh(p["x"]) * p["n"].astype(p["x"].dtype)) * jnp.where(p["mask"], 1.0, 2.0).astype(p["x"].dtype).sum()

    p = {"x": jnp.ones(3, jnp.float32), "n": jnp.arange(3), "mask": jnp.array([True, False])}
    report = gradcheck(f, p)
    assert report.passed, str(report)
    assert {k for k, _ in report.skipped} == {"args[0]['n']", "args[0]['mask']"}
    assert "skipped leaves" in str(report)


def test_bad_input_errors_name_what_was_expected():
    x = jnp.ones(3, jnp.float32)
    with pytest.raises(TypeError, match="cannot be called with 2 positional"):
        gradcheck(lambda x: jnp.sum(x), x, x)
    with pytest.raises(TypeError, match=r"args\[0\]\['b'\] is None"):
        gradcheck(lambda p: jnp.sum(p["a"]), {"a": x, "b": None})
    with pytest.raises(TypeError, match=r"returned a str at out\[1\]"):
        gradcheck(lambda x: (jnp.sum(x), "loss"), x)
    with pytest.raises(TypeError, match=r"returned None at out\[1\]"):
        gradcheck(lambda x: (jnp.sum(x), None), x)
    with pytest.raises(ValueError, match="reference .* must match"):
        gradcheck(lambda x: jnp.sum(x), x, reference=lambda x: (jnp.sum(x), x))
    with pytest.raises(ValueError, match="no floating-point leaves"):
        gradcheck(lambda n: jnp.sum(n * 1.0), jnp.arange(3))
    with pytest.raises(ValueError, match="argnums"):
        gradcheck(lambda x: jnp.sum(x), x, argnums=3)


def test_non_differentiable_fun_is_reported_and_the_rest_runs():
    @jax.custom_vjp
    def f(x):  # y = 3x by a while_loop, which reverse mode cannot differentiate
        _, y = jax.lax.while_loop(lambda c: c[0] < 3, lambda c: (c[0] + 1, c[1] + x), (0, jnp.zeros_like(x)))
        return jnp.sum(y**2)

    f.defvjp(lambda x: (f(x), x), lambda x, g: (g * 18 * x,))
    report = gradcheck(f, jnp.linspace(0.1, 1.0, 5, dtype=jnp.float32))
    a = report.comparison("(a)")
    assert a.verdict == "skipped" and "jax.vjp of f.fun" in a.detail
    assert report.passed  # FD and structure still ran and passed


def test_programs_compiled_in_parallel_give_the_same_report(monkeypatch):
    # Parallel compilation is on by default only with >= 4 cores; force it here so it is tested.
    from fnnet.check import programs

    x = normal((300,))
    serial = gradcheck(tanh_sq_sum("entry"), x, cache=False)
    monkeypatch.setattr(programs, "PARALLEL", True)
    parallel = gradcheck(tanh_sq_sum("entry"), x, cache=False)
    assert str(serial) == str(parallel)
    assert not parallel.passed and parallel.comparison("(a)").entries[0].where == "args[0][7]"


MULTI_DEVICE_SCRIPT = """
import json
import jax, jax.numpy as jnp
jax.config.update("jax_enable_x64", True)
jax.config.update("jax_numpy_dtype_promotion", "strict")
from fnnet.check import gradcheck

def dense(bug):
    @jax.custom_vjp
    def f(p, x):
        return jnp.tanh(x @ p["W"] + p["b"])
    def fwd(p, x):
        y = jnp.tanh(x @ p["W"] + p["b"])
        return y, (p, x, y)
    def bwd(res, g):
        p, x, y = res
        d = g * (1 - y**2)
        dW = x.T @ d
        if bug:
            dW = dW.at[2, 1].multiply(1 + 1e-3)
        return {"W": dW, "b": d.sum(0)}, d @ p["W"].T
    f.defvjp(fwd, bwd)
    return jax.jit(f)  # no reference: full mode's finite differences decide alone

k = jax.random.split(jax.random.PRNGKey(0), 3)
p = {"W": jax.random.normal(k[0], (5, 3), jnp.float32), "b": jax.random.normal(k[1], (3,), jnp.float32)}
x = jax.random.normal(k[2], (4, 5), jnp.float32)
out = {"devices": jax.device_count()}
for bug in (False, True):
    for name, devices in (("one", None), ("all", "auto")):
        r = gradcheck(dense(bug), p, x, mode="full", devices=devices)
        b = r.comparison("(b)")
        out[f"{bug}-{name}"] = [r.passed, b.verdict, b.worst, b.detail,
                                [(e.where, e.cotangent, e.rule, e.fd, e.error) for e in b.entries]]
print(json.dumps(out))
"""


def test_full_mode_splits_perturbations_over_devices_with_one_device_results():
    # 8 host devices need XLA_FLAGS before jax is imported: a subprocess (as tests/test_parallel.py).
    import json
    import os
    import subprocess
    import sys

    env = dict(os.environ)
    env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8").strip()
    env["JAX_PLATFORMS"] = "cpu"  # the 8 host devices, also where a GPU is the default backend
    proc = subprocess.run([sys.executable, "-c", MULTI_DEVICE_SCRIPT], capture_output=True, text=True, env=env,
                          timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["devices"] == 8
    for bug in ("False", "True"):
        one, every = out[f"{bug}-one"], out[f"{bug}-all"]
        assert "split over 8 devices" in every[3] and "devices" not in one[3]
        # Each perturbation is evaluated by the same program on one device or another; sharding the
        # batch axis moves work, not arithmetic, so verdicts, ratios, entries and values are equal.
        assert one[:3] == every[:3]
        assert one[4] == every[4]
    assert out["False-one"][0] is True
    assert out["True-one"][0] is False and out["True-one"][4][0][0] == "args[0]['W'][2, 1]"


@pytest.mark.parametrize("name", ["tanh", "gelu", "softmax"])
def test_float64_inputs_account_for_the_references_own_rounding(name):
    """In float64 the reference is no more precise than the rule: gelu's reference 0.5x(1 + tanh u)
    cancels in the left tail (hundreds of ε), tanh's quotient of exponentials is ~30ε off. Correct
    rules must still pass (a) — the pair's rounding is estimated from a float32 rerun."""
    import fnnet

    prim = fnnet.get(name)
    (x,) = prim.sample_inputs(jax.random.key(0), jnp.float64, (3, 5))
    report = fnnet.gradcheck(prim.fn, x, reference=prim.reference)
    assert report.passed, str(report)


def test_float64_small_rule_error_is_still_caught():
    """The float64 allowance is ~K·ε64 (K the formulas' error growth): a 1e-9 relative error in one
    entry is 10⁷ ulp and must fail (a), named by index."""

    f = tanh_rule(defect=lambda x, d: d * jnp.where(jnp.arange(x.size).reshape(x.shape) == 7, 1 + 1e-9, 1.0))
    x = jnp.linspace(-2.0, 2.0, 15, dtype=jnp.float64)
    report = gradcheck(f, x, reference=jnp.tanh)
    assert not report.passed
    assert report.comparison("(a)").failed
    assert any(e.index == (7,) for e in report.comparison("(a)").entries), str(report)


def _erfc_scaled(defect: float = 1.0):
    """``erfc(h/√2)`` cast to float64 (as jax.scipy.special.owens_t's float64 quadrature weights promote
    its result under x64), so it returns float64 from float32 inputs too; its rule
    ``−√(2/π)·e^{−h²/2}`` is within an ulp at h = 9.5 and 10, where the plain formula's autodiff is 64
    and 32 ε off (the rounding of h/√2, amplified by the condition 2(h/√2)² ≈ 100 of ``e^{−u²}``;
    measured against mpmath)."""
    def plain(h):
        return jax.lax.erfc(h / np.sqrt(2.0).astype(h.dtype)).astype(jnp.float64)

    @jax.custom_jvp
    def f(h):
        return plain(h)

    @f.defjvp
    def _jvp(primals, tangents):
        (h,), (dh,) = primals, tangents
        d = float(-np.sqrt(2.0 / np.pi) * defect) * jnp.exp(-0.5 * h * h)
        return f(h), (d * dh).astype(jnp.float64)

    return f, plain


def test_float64_reference_rounding_is_estimated_where_float32_inputs_give_float64_outputs():
    """The float32 reruns that estimate the pair's float64 rounding take cotangents of the dtype f
    returns there (float64 here): with float32 cotangents the rerun failed, no estimate entered the
    tolerance, and the accurate rule failed where the reference was 64 ε off. A 1e-9 error still fails."""
    h = jnp.asarray([10.0, 9.5, 0.5], jnp.float64)
    f, plain = _erfc_scaled()
    assert f(h.astype(jnp.float32)).dtype == jnp.float64
    report = gradcheck(f, h, reference=plain)
    assert report.passed, str(report)
    wrong, _ = _erfc_scaled(1.0 + 1e-9)
    assert gradcheck(wrong, h, reference=plain).comparison("(a)").failed


def test_a_compile_option_this_xla_does_not_know_is_dropped():
    # jaxlib releases drop compile switches (0.11 has no xla_cpu_use_fusion_emitters); XLA refuses an
    # unknown name before compiling anything, so the checker drops it, remembers it and compiles.
    from fnnet.check import programs

    lowered = jax.jit(lambda v: v * 2).lower(np.float32(1))
    exe = programs.compile_with(lowered, {"xla_fnnet_no_such_option": True, "xla_backend_optimization_level": 0})
    assert float(exe(np.float32(3))) == 6.0
    assert "xla_fnnet_no_such_option" in programs._UNKNOWN_OPTIONS
    with pytest.raises(Exception, match="is not a valid"):  # a known option with a wrong value still fails
        programs.compile_with(lowered, {"xla_backend_optimization_level": "high"})
