"""gradcheck's verdict and report on the hard cases: three witnesses, NaN, usage mistakes, degraded
differences, pytest integration.

The verdict table these tests pin down is in docs/reference/gradcheck.md ("Verdict"). Each test that shows a
correct rule passing also shows the twin that must fail, so none of them passes by accepting all.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fnnet
from fnnet.check import assert_gradcheck, fd, gradcheck
from gradcheck_corpus import make_log1pexp, make_sinc, make_weighted_logsoftmax
from seeded_rules import tanh_rule


X = jnp.linspace(-2.0, 2.0, 7, dtype=jnp.float32)


# ---------------------------------------------------------------------------------------------
# Three witnesses
# ---------------------------------------------------------------------------------------------
def test_reference_contradicted_by_fd_is_a_finding_not_a_failure():
    # The reference is old buggy code (its derivative at entry 3 is 2x the truth); the rule is right.
    def old_code(x):
        return jnp.tanh(x) + jnp.where(jnp.arange(x.size) == 3, 1.0, 0.0).astype(x.dtype) * x
    report = gradcheck(tanh_rule(reference=old_code), X)
    assert report.passed, str(report)
    a = report.comparison("(a)")
    assert "finding: the reference's autodiff gives wrong values at 1 input entry (args[0][3])" in a.detail
    assert [e.where for e in report.findings] == ["args[0][3]"]
    assert "reference is wrong; fd sides with the rule" in str(report)
    assert "finding" in report.summary
    # The same reference against a rule with the same error: FD sides with neither... the rule fails.
    wrong = tanh_rule(defect=lambda x, d: d + jnp.where(jnp.arange(x.size) == 3, 1.0, 0.0).astype(x.dtype),
                      reference=old_code)
    bad = gradcheck(wrong, X)
    assert not bad.passed and bad.comparison("(b)").failed  # never pass a rule FD contradicts
    assert bad.worst_entries[0].where == "args[0][3]"


def test_fd_that_cannot_tell_rule_and_reference_apart_leaves_the_reference_to_decide():
    # 3e-6 relative is far above float64 rounding (so (a) sees it) but FD's error bar in this float64
    # check is wider at these steps only if f is rough; here both witnesses resolve it: it must fail.
    x = jnp.linspace(-2.0, 2.0, 7, dtype=jnp.float64)
    bad = gradcheck(tanh_rule(defect=lambda x, d: d * (1 + 3e-6), reference=jnp.tanh), x)
    assert not bad.passed and bad.comparison("(a)").failed
    assert gradcheck(tanh_rule(reference=jnp.tanh), x).passed


def _log1mexp(factor=1.0):
    """log(1 − e^{−x}) with a custom JVP (as jax.nn.log1mexp's); ``factor`` scales the derivative."""

    @jax.custom_jvp
    def log1mexp(x):
        return jnp.log(-jnp.expm1(-x))

    @log1mexp.defjvp
    def _jvp(primals, tangents):
        (x,), (dx,) = primals, tangents
        return log1mexp(x), dx * factor / jnp.expm1(x)

    return log1mexp


@pytest.mark.parametrize("mode", ["auto", "full"])
def test_a_step_longer_than_the_distance_to_a_singularity_is_shrunk(mode):
    # float32's step is 4.9e-3: longer than x = 1e-3 or 1e-4 is from log1mexp's singularity at 0, so
    # f(x − h) is NaN and the one-sided difference at that step is off by 35 % (647 for 999.5). The
    # differences are taken again at 1/8, 1/64, 1/512 of the step; the central one with the smallest
    # error bar decides.
    x = jnp.asarray([1e-3, 1e-4, 0.5, 2.0], jnp.float32)
    assert gradcheck(_log1mexp(), x, mode=mode).passed, str(gradcheck(_log1mexp(), x, mode=mode))
    bad = gradcheck(_log1mexp(1.001), x, mode=mode)  # a 0.1 % error everywhere is still seen
    assert not bad.passed and bad.comparison("(a)").failed


def _arccos(shift=0.0):
    """arccos with a custom JVP clipped inside the domain (as brax's safe_arccos); ``shift`` adds to
    the derivative."""

    @jax.custom_jvp
    def safe_arccos(x):
        return jnp.arccos(jnp.clip(x, -1.0, 1.0))

    @safe_arccos.defjvp
    def _jvp(primals, tangents):
        (x,), (dx,) = primals, tangents
        return safe_arccos(x), dx * (-1.0 / jnp.sqrt(1.0 - jnp.clip(x, -0.9999, 0.9999) ** 2) + shift)

    return safe_arccos


def test_probes_that_leave_the_domain_are_taken_again_at_a_shorter_step():
    # A ±1 probe of all 8 entries moves 0.999 past 1 (and −0.999 past −1): f is NaN on both sides of
    # the probe at float32's step. Shrinking the step keeps the probe inside the domain.
    x = jnp.asarray([0.0, 0.999, -0.999, 0.3, -0.5, 0.7, 0.1, -0.2], jnp.float32)
    report = gradcheck(_arccos(), x)
    assert report.passed, str(report)
    bad = gradcheck(_arccos(shift=1e-3), x)
    assert not bad.passed and bad.comparison("(b)").failed


@pytest.mark.parametrize("mode", ["auto", "full"])
def test_a_step_across_a_near_singularity_is_shrunk(mode):
    # log|det A| of a matrix 3e-4 from singular (det ≈ 3e-4): float32's step, 4.9e-3, carries det
    # through 0, where log|det| is −inf; the one-sided slopes differ as at a kink and the central
    # difference reads 12.7 for 16 221. The step is shrunk until f is smooth within it.
    def logabsdet_rule(transposed=False):
        @jax.custom_vjp
        def logabsdet(a):
            return jnp.linalg.slogdet(a)[1]

        def bwd(a, g):
            inv = jnp.linalg.inv(a)
            return (g * (inv if transposed else inv.T),)

        logabsdet.defvjp(lambda a: (logabsdet(a), a), bwd)
        return logabsdet

    a = jnp.asarray([[1.0, 2.0, 0.5], [2.0, 4.0 + 3e-4, 1.0], [0.3, -1.0, 2.0]], jnp.float32)
    report = gradcheck(logabsdet_rule(), a, mode=mode)
    assert report.passed, str(report)
    bad = gradcheck(logabsdet_rule(transposed=True), a, mode=mode)
    assert not bad.passed and bad.comparison("(b)").failed


def test_a_pole_within_the_step_is_not_taken_for_a_kink():
    # 1/(x − 0.003) at x = 0: float32's step, 4.9e-3, spans the pole, the one-sided slopes have
    # opposite signs and their "subgradient interval" held every value, so a rule with the wrong sign
    # passed (as JAX's digamma derivative did near its poles below −10). At a shorter step f is
    # smooth, and that estimate decides.
    def pole_rule(sign):
        @jax.custom_jvp
        def f(x):
            return 1.0 / (x - 0.003)

        @f.defjvp
        def _jvp(primals, tangents):
            (x,), (dx,) = primals, tangents
            return f(x), dx * sign / (x - 0.003) ** 2

        return f

    x = jnp.asarray([0.0], jnp.float32)
    for mode in ("auto", "full"):
        assert gradcheck(pole_rule(-1.0), x, mode=mode).passed
        bad = gradcheck(pole_rule(1.0), x, mode=mode)
        assert not bad.passed and bad.worst_entries[0].where == "args[0][0]", str(bad)
        assert "kink" not in bad.worst_entries[0].note


def test_a_rule_whose_value_is_wrong_fails_though_its_derivative_is_right():
    # The JVP returns arccos(x) as the value of arcsin (a bug once in a public physics engine): the
    # derivative is arcsin's, so (a) and (b) pass, while value_and_grad returns arccos(x).
    def arcsin(wrong_value):
        @jax.custom_jvp
        def safe_arcsin(x):
            return jnp.arcsin(jnp.clip(x, -1.0, 1.0))

        @safe_arcsin.defjvp
        def _jvp(primals, tangents):
            (x,), (dx,) = primals, tangents
            value = jnp.arccos(jnp.clip(x, -1.0, 1.0)) if wrong_value else safe_arcsin(x)
            return value, dx / jnp.sqrt(1.0 - jnp.clip(x, -0.9999, 0.9999) ** 2)

        return safe_arcsin

    x = jnp.asarray([0.0, 0.5, -0.3, 0.9], jnp.float32)
    assert gradcheck(arcsin(False), x).passed
    bad = gradcheck(arcsin(True), x)
    assert not bad.passed
    assert [c.name for c in bad.comparisons if c.failed] == ["(c) value of the rule equals f(x)"]
    assert "out[2]: f(x) = -0.304693, the rule's value = 1.87549" in bad.comparison("(c) value").detail
    assert "(c)" in bad.summary


def test_the_rule_is_held_to_the_allowance_of_what_fd_measures_where_the_reference_is_0():
    # where(y == 0, 0, x·y) differentiated by JAX gives d/dy = 0 at y = 0; the rule (as distrax's
    # multiply_no_nan) gives x, and so do finite differences. The allowance, scaled by the reference's
    # 0, was 0: a last-bit difference between the float32 rule and the float64 differences failed it.
    @jax.custom_vjp
    def multiply_no_nan(x, y):
        return jnp.where(y == 0, jnp.zeros_like(x), x * y)

    multiply_no_nan.defvjp(lambda x, y: (multiply_no_nan(x, y), (x, y)),
                           lambda res, g: (g * res[1], g * res[0]))
    rng = np.random.default_rng(4)
    for _ in range(4):
        x = jnp.asarray(rng.normal(size=6), jnp.float32)
        report = gradcheck(multiply_no_nan, x, jnp.zeros(6, jnp.float32))
        assert report.passed, str(report)
        assert {e.where for e in report.findings} == {f"args[1][{i}]" for i in range(6)}
        assert all(e.tol > 0 for e in report.findings)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_saturated_outputs_differ_from_the_reference_below_what_f_resolves(dtype):
    # sigmoid'(40) = 4.2e-18 and tanh'(−40) = 1.8e-35, but y(1 − y) and 1 − y² are 0 there (y rounds to
    # ±1 in float64 as in float32), as is jax.nn.softmax's y ⊙ (g − ⟨g, y⟩) for a row with a margin of
    # 60: below f's own rounding over x's scale (SLACK·ε·|f|/max(1, |x|)), which finite differences
    # cannot resolve either. Accepted as rounding and listed, without a "finding".
    x = jnp.asarray([-40.0, -20.0, -1.0, 0.0, 1.0, 20.0, 40.0], dtype)
    for f, arg in [(fnnet.sigmoid, x), (fnnet.tanh, x),
                   (jax.nn.softmax, jnp.asarray([[0.3, -1.2, 0.8], [60.0, -60.0, 0.4]], dtype))]:
        report = gradcheck(f, arg)
        assert report.passed and "finding" not in report.summary, str(report)
        assert all("accepted as rounding" in e.note for e in report.findings)

    # A wrong tail where f is as small as its derivative (e^x at −30: both 9.4e-14) is far above that
    # resolution, and fails.
    def exp_rule(tail_factor):
        @jax.custom_jvp
        def exp(x):
            return jnp.exp(x)

        @exp.defjvp
        def _jvp(primals, tangents):
            (x,), (dx,) = primals, tangents
            return exp(x), dx * jnp.exp(x) * jnp.where(x < -10, tail_factor, 1.0).astype(x.dtype)

        return exp

    tail = jnp.asarray([-30.0, -12.0, 0.5], dtype)
    assert gradcheck(exp_rule(1.0), tail).passed
    bad = gradcheck(exp_rule(2.0), tail)
    assert not bad.passed and {e.where for e in bad.worst_entries} >= {"args[0][0]", "args[0][1]"}, str(bad)


def test_in_float64_the_deciding_reference_is_said_to_round_like_the_rule():
    # A 1e-12 relative error in one float64 entry: far above the allowance (a few ε), far below what
    # finite differences resolve, so the reference decides, and the note says it may be the one off.
    f = tanh_rule(defect=lambda x, d: d * jnp.where(jnp.arange(x.size) == 7, 1 + 1e-12, 1.0))
    report = gradcheck(f, jnp.linspace(-2.0, 2.0, 15, dtype=jnp.float64), reference=jnp.tanh)
    assert not report.passed and report.worst_entries[0].where == "args[0][7]", str(report)
    assert report.worst_entries[0].note.endswith(
        "the reference decides (a float64 reference rounds as the rule does: pass a more accurate reference= if it "
        "may be off)")


def test_nan_in_the_rule_is_named_never_a_ratio_of_zero():
    rule = tanh_rule(defect=lambda x, d: jnp.where(jnp.arange(x.size) == 2, jnp.nan, d).astype(x.dtype))
    report = gradcheck(rule, X)
    assert not report.passed
    worst = report.worst_entries[0]
    assert worst.where == "args[0][2]" and np.isnan(worst.rule) and worst.ratio == float("inf")
    assert worst.x == pytest.approx(float(X[2]))
    assert "rule is NaN" in str(report) and "rule NaN" in report.summary
    for c in report.comparisons:
        assert not (c.failed and c.worst == 0.0), c  # a failure is never shown with ratio 0
    assert "1.8e+308" not in str(report) and "e+30" not in str(report)


def test_zero_tolerance_and_nan_give_inf_never_a_huge_number_or_zero():
    from fnnet.check.report import Entry, _fmt
    from fnnet.check.tolerance import ratio

    assert ratio(1e-3, 0.0) == float("inf") and ratio(0.0, 0.0) == 0.0
    assert ratio(float("nan"), 1.0) == float("inf") and ratio(1.0, float("nan")) == float("inf")
    assert list(ratio(np.array([np.nan, 1.0, 0.0]), np.array([np.nan, 0.0, 0.0]))) == [np.inf, np.inf, 0.0]
    assert Entry("x", (0,), "1", float("nan"), error=float("nan"), tol=float("nan")).ratio == float("inf")
    assert _fmt(float("inf")) == "inf" and _fmt(float("nan")) == "NaN"


# ---------------------------------------------------------------------------------------------
# Usage mistakes raise, saying what to pass
# ---------------------------------------------------------------------------------------------
def test_array_in_nondiff_argnums_is_a_usage_error_with_the_argnums_to_pass():
    @partial(jax.custom_vjp, nondiff_argnums=(1,))
    def masked_sum(x, mask):
        return jnp.sum(x * mask)

    masked_sum.defvjp(lambda x, m: (masked_sum(x, m), None), lambda m, _, g: (g * m,))
    x, mask = jnp.ones(3, jnp.float32), jnp.array([1.0, 0.0, 1.0], jnp.float32)
    with pytest.raises(ValueError, match=r"nondiff_argnums \(1,\).*Pass argnums=\(0,\)"):
        gradcheck(masked_sum, x, mask)
    assert gradcheck(masked_sum, x, mask, argnums=0).passed


def test_list_of_numbers_is_a_usage_error_suggesting_an_array():
    with pytest.raises(TypeError, match=r"pass jnp.asarray\(\[1.0, 2.0\]"):
        gradcheck(fnnet.tanh, [1.0, 2.0])


# ---------------------------------------------------------------------------------------------
# Degraded differences: f computes in float32 inside
# ---------------------------------------------------------------------------------------------
def _inner_float32(bug=False):
    @jax.custom_vjp
    def f(x):
        return jnp.sum(jnp.tanh(x.astype(jnp.float32)) ** 2).astype(x.dtype)

    def bwd(x, g):
        y = jnp.tanh(x.astype(jnp.float32))
        d = 2 * y * (1 - y**2)
        if bug:
            d = d.at[4].multiply(1.01)
        return ((g.astype(jnp.float32) * d).astype(x.dtype),)

    f.defvjp(lambda x: (f(x), x), bwd)
    return f


def test_full_mode_marks_float32_inside_as_degraded(monkeypatch):
    x = jax.random.normal(jax.random.PRNGKey(0), (12,), jnp.float32)
    report = gradcheck(_inner_float32(), x, mode="full")
    assert report.passed, str(report)
    assert "degraded" in report.comparison("(b)").detail
    assert any("computes in float32 inside" in n for n in report.notes)
    bad = gradcheck(_inner_float32(bug=True), x, mode="full")
    assert not bad.passed and bad.worst_entries[0].where == "args[0][4]"
    # Without the detection the correct rule fails: the test can fail.
    monkeypatch.setattr(fd, "check_degraded", lambda ctx, sampler_width=None: None)
    assert not gradcheck(_inner_float32(), x, mode="full", cache=False).passed


def test_default_mode_reads_float32_inside_from_the_sampler(monkeypatch):
    # On a small problem f's float64 outputs come from the finite-difference sampler (f(x) is its
    # point t = 0), not from a program of their own: the detection must still see them.
    x = jax.random.normal(jax.random.PRNGKey(0), (12,), jnp.float32)
    report = gradcheck(_inner_float32(), x)
    assert report.passed, str(report)
    assert any("computes in float32 inside" in n for n in report.notes), report.notes
    monkeypatch.setattr(fd, "INLINE_F0_MAX_ENTRIES", 0)  # the other path: a program for f alone
    again = gradcheck(_inner_float32(), x, cache=False)
    assert any("computes in float32 inside" in n for n in again.notes), again.notes
    assert str(again) == str(report)


def test_the_sampler_with_f_of_x_inside_its_batch_samples_the_same():
    # f(x) as the batch's point t = 0 (one copy of f in the program) against f(x) evaluated once
    # outside: the same samples bit for bit for an elementwise f, the same rounding magnitudes, f's outputs at x returned as they are,
    # and t = 0 keeps x itself: a −0 stays −0 (x + 0·d would give +0).
    from fnnet.check.programs import float64_scope

    def F64(xs):
        (v,) = xs
        return [jnp.where(jnp.signbit(v), -2.0, 1.0) * jnp.exp(v) + v**3]

    rng = np.random.default_rng(0)
    with float64_scope():
        x = [jnp.asarray(np.r_[-0.0, rng.standard_normal(5)])]
        d = [jnp.asarray(rng.standard_normal((3, 6)) * 1e-3)]
        g = [jnp.asarray(rng.standard_normal((3, 6)))]
        s0, m0 = fd.make_sampler(F64, "central")(x, d, g)
        s1, m1, f0 = fd.make_sampler(F64, "central", inline=True)(x, d, g)
        np.testing.assert_array_equal(np.asarray(s1), np.asarray(s0))
        # the rounding magnitude Σ|g||f(x)| is summed over a batched array there: its last bits may
        # differ (6 terms: within 6 ε relative)
        np.testing.assert_allclose(np.asarray(m1), np.asarray(m0), rtol=6 * np.finfo(np.float64).eps)
        np.testing.assert_array_equal(np.asarray(f0[0]), np.asarray(jax.jit(F64)(x)[0]))
        assert float(f0[0][0]) == -2.0  # f(−0) = −2·1 + 0, not f(+0) = 1
    with pytest.raises(ValueError, match="central"):
        fd.make_sampler(F64, "complex", inline=True)


# ---------------------------------------------------------------------------------------------
# Report layout
# ---------------------------------------------------------------------------------------------
def test_full_mode_shows_each_entry_once_with_its_input_value():
    f = tanh_rule(defect=lambda x, d: d * jnp.where(jnp.arange(x.size) == 1, 1.01, 1.0).astype(x.dtype))
    report = gradcheck(f, X, mode="full")
    text = str(report)
    rows = [line for line in text.splitlines() if line.strip().startswith("args[0][1]")]
    assert len(rows) == 1, text
    assert f"{float(X[1]):.5g}" in rows[0]
    assert report.summary.splitlines() == [text.splitlines()[0]]
    assert "args[0][1]" in report.summary and "rule" in report.summary and "fd" in report.summary


_WLS_ARGS = (jnp.array([[0.5, -jnp.inf, 1.0, -2.0], [6.0, -6.0, 5.8, 0.0]]),
             jnp.array([[0.5, 0.0, 0.25, 0.25], [0.1, 0.2, 0.3, 0.4]]))


def test_jvp_disagreeing_with_the_vjp_is_located_entry_by_entry():
    """A bug only forward mode shows (the VJP is right, so (a) and (b) pass) is still reported at
    input entries: one JVP per entry against the VJP's entry. optax's weighted log-softmax before its
    fix (the weights' zero tangent times a −inf log-probability) makes every entry's JVP NaN."""
    assert gradcheck(make_weighted_logsoftmax(None), *_WLS_ARGS, argnums=0).passed
    report = gradcheck(make_weighted_logsoftmax("nan_jvp"), *_WLS_ARGS, argnums=0)
    assert not report.passed
    assert not report.comparison("(a)").failed and not report.comparison("(b)").failed
    c = report.comparison("(c) JVP agrees with VJP")
    assert c.failed and "8 of 8 entries disagree" in c.detail
    assert [e.where for e in report.worst_entries][:2] == ["args[0][0, 0]", "args[0][0, 1]"]
    assert all(np.isnan(e.reference) and np.isfinite(e.rule) for e in c.entries)
    assert report.summary.startswith("gradcheck FAILED") and "worst args[0]" in report.summary


def test_jvp_disagreement_over_many_entries_says_it_was_not_located(monkeypatch):
    from fnnet.check import structure

    monkeypatch.setattr(structure, "JVP_LOCATE_MAX", 4)
    report = gradcheck(make_weighted_logsoftmax("nan_jvp"), *_WLS_ARGS, argnums=0)
    c = report.comparison("(c) JVP agrees with VJP")
    assert c.failed and c.entries == [] and "8 input entries > 4" in c.detail
    monkeypatch.setattr(structure, "JVP_LOCATE_MAX", 4096)
    monkeypatch.setattr(structure, "JVP_LOCATE_MAX_VALUES", 63)
    c = gradcheck(make_weighted_logsoftmax("nan_jvp"), *_WLS_ARGS, argnums=0).comparison("(c) JVP")
    assert c.failed and c.entries == [] and "8 input × 8 output entries > 63" in c.detail


def _stability(report):
    return next(c for c in report.comparisons if c.name == "(c) stable under rounding")


def test_a_rule_that_cancels_fails_as_unstable_and_its_series_form_passes():
    """jax.numpy.sinc's rule before jax#34139's fix, ``(cos u·u − sin u)/u²`` away from x == 0, is
    300 % off at x = 1e-4 in float32 (the right formula, cancelling): its own rounding (float32
    against float64) is ~1.5e3× what rounding the data, f's values and the result explain. It used to
    pass as "its own rounding"; the series near 0 passes."""
    x = jnp.asarray([1e-4, 0.0, 0.3, -1.2], jnp.float32)
    bad = gradcheck(make_sinc("at_zero_only"), x)
    stable = _stability(bad)
    assert not bad.passed and stable.failed, str(bad)
    assert stable.entries[0].index == (0,) and "own rounding" in stable.entries[0].note
    assert bad.summary.startswith("gradcheck FAILED") and "(c)" in bad.summary
    good = gradcheck(make_sinc(), x)
    assert good.passed and _stability(good).verdict == "pass", str(good)


def test_in_float64_the_rule_is_measured_at_neighbouring_inputs():
    """In float64 there is no more precise twin: second differences of the rule at inputs thousands
    of ulps apart hold its rounding, 8e-10 at x = 1e-7 for ``cos u/u − sin u/u²`` (0.25 % of sinc′
    there, 1e6× what rounding explains); the series rule passes. (A rounding that does not change
    over those ulps, ``(cos u·u − sin u)/u²`` with cos u rounded to the same double, is not seen:
    docs/reference/gradcheck.md, "What is not done".)"""
    x = jnp.asarray([1e-7, 0.0, 0.3, -1.2], jnp.float64)
    bad = gradcheck(make_sinc("autodiff_form"), x)
    assert _stability(bad).failed and _stability(bad).entries[0].index == (0,), str(bad)
    good = gradcheck(make_sinc(), x)
    assert good.passed and _stability(good).verdict == "pass", str(good)


def test_rules_formed_from_rounded_values_are_stable():
    """Not every large relative error is instability: ``1 − 1/(1 + eˣ)`` (the JAX tutorial's log1pexp
    rule) returns 0 for σ(−25) = 1.4e-11 in float32, an error of 1e-4 ε of the derivative's scale;
    ``1 − tanh(x)²`` at 3.86 rounds tanh's value (|∂v/∂y| = 2y); a factorization of a near-singular
    matrix rounds with its condition (the allowance is normwise over the derivative, and carries the
    data's rounding through it)."""
    x = jnp.asarray([-25.0, 30.0, 0.5, -3.0], jnp.float32)
    r = gradcheck(make_log1pexp(), x)
    assert r.passed and _stability(r).verdict == "pass", str(r)
    r = gradcheck(tanh_rule(), jnp.asarray([3.858849, 0.0, -3.848466, 3.2060769], jnp.float32))
    assert r.passed, str(r)
    rng = np.random.default_rng(3)
    u, _, vt = np.linalg.svd(rng.normal(size=(4, 4)))
    near_singular = u @ np.diag([3.0, 1.0, 0.3, 2e-3]) @ vt
    for dtype in (jnp.float32, jnp.float64):
        r = gradcheck(lambda a: jnp.linalg.slogdet(a)[1], jnp.asarray(near_singular, dtype))
        assert r.passed and _stability(r).verdict == "pass", str(r)


def test_every_wrong_entry_is_named_not_only_the_worst():
    """xlogy's derivative masked to 0 at x = 0 (TensorFlow's old rule; the reference agrees, only the
    finite differences object) is wrong at both zeros of the draw: both are named, worst first."""
    from gradcheck_corpus import draw_xlogy, make_xlogy

    args = draw_xlogy("float32", np.random.default_rng(0))
    report = gradcheck(make_xlogy("masked_at_zero"), *args)
    assert not report.passed
    assert [e.where for e in report.worst_entries] == ["args[0][1]", "args[0][0]"]
    assert "left out" in report.worst_entries[1].note
    assert gradcheck(make_xlogy(None), *args).passed


def test_assert_gradcheck_message_starts_with_the_one_line_summary():
    rule = tanh_rule(defect=lambda x, d: d.at[5].multiply(1.01))
    with pytest.raises(AssertionError) as info:
        assert_gradcheck(rule, X)
    first = str(info.value).splitlines()[0]
    assert first.startswith("gradcheck FAILED: f") and "args[0][5]" in first


PLUGIN_TEST = '''
import jax, jax.numpy as jnp
from fnnet.testing import arrays, gradcheck_property

@jax.custom_jvp
def sinc(x):
    px = jnp.pi * x
    return jnp.where(x == 0, jnp.ones_like(x), jnp.sin(px) / jnp.where(x == 0, 1.0, px))

@sinc.defjvp
def _(p, t):
    (x,), (dx,) = p, t
    px = jnp.pi * x
    safe = jnp.where(x == 0, 1.0, px)
    d = jnp.where(x == 0, -px / 3, (jnp.cos(safe) * safe - jnp.sin(safe)) / safe**2)
    return sinc(x), dx * jnp.pi * d * {factor}

def test_fixture(gradcheck):
    gradcheck(sinc, jnp.array([0.0, 0.5, 1.5], jnp.float32))

test_property = gradcheck_property(sinc, arrays((4,), "float32", special=(0.0,)), max_examples=3)
'''


def test_hypothesis_property_finds_the_bug_and_passes_the_rule():
    pytest.importorskip("hypothesis")
    from fnnet.testing import arrays, gradcheck_property

    strategy = arrays((5,), "float32", special=(0.0,))
    gradcheck_property(tanh_rule(), strategy, max_examples=2, shrink=False)()
    with pytest.raises(AssertionError, match="gradcheck FAILED"):
        gradcheck_property(tanh_rule(defect=lambda x, d: d * 1.01), strategy, max_examples=2, shrink=False)()


@pytest.mark.slow
@pytest.mark.parametrize("factor", ["1.0", "1.01"])
def test_pytest_plugin_fixture_and_hypothesis_property(tmp_path, factor):
    import os
    from pathlib import Path

    (tmp_path / "test_rule.py").write_text(textwrap.dedent(PLUGIN_TEST.format(factor=factor)))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(Path(fnnet.__file__).parents[1]), env.get("PYTHONPATH", "")])
    proc = subprocess.run([sys.executable, "-m", "pytest", "-p", "fnnet.testing", "-q", "-rf", "-p", "no:cacheprovider",
                           str(tmp_path / "test_rule.py")], capture_output=True, text=True, timeout=300,
                          cwd=tmp_path, env=env)
    out = proc.stdout + proc.stderr
    if factor == "1.0":
        assert proc.returncode == 0, out
        assert "2 passed" in out
        return
    assert proc.returncode == 1, out
    assert "2 failed" in out
    summary = [line for line in out.splitlines() if line.startswith("FAILED")]
    assert len(summary) == 2 and all("gradcheck FAILED: sinc" in line for line in summary), out
    assert "fnnet/check/gradcheck.py" not in out  # fnnet's frames are hidden
