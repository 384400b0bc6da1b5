"""Comparison (a): the rule's VJP against jax.vjp of the reference (or a given VJP), entry by entry.

The reference is differentiated with every float input and the cotangent upcast to float64, so it is
the truth ``T`` up to ~1e-16; the rule runs at the inputs' own dtype (what users run). Each entry
gets its own tolerance ``b_i`` (:func:`fnnet.check.tolerance.rounding_bound`), including the rule's
own observed rounding error (the rule at float64 against the rule at its dtype). Entries that fail are re-examined by entrywise
finite differences: where the one-sided differences disagree the point is a kink, and any value in
the subgradient interval is accepted (e.g. a relu rule choosing 1 at 0 where ``jnp.maximum``'s
autodiff splits the tie as 1/2).
"""

from __future__ import annotations

import numpy as np

import jax

from .fd import Differences, pair_differences, probe_width
from .programs import float64_scope
from .report import FAIL, PASS, SKIP, Comparison, Entry, once_per_entry, show, unravel
from .tolerance import SLACK, interval_contains, ratio, rounding_bound, within


def compare_reference(ctx, cots, *, max_entries, kink_checks, chunk, override) -> tuple[Comparison, dict]:
    """Comparison (a); returns it and ``{cotangent index: reference VJP}`` for reuse."""
    name = "(a) rule vs jax.vjp(reference)"
    problem = ctx.problem
    if problem.R is None and problem.RV is None:
        why = "no reference: pass reference=, or give f a .reference attribute"
        return Comparison(name, SKIP, detail=why), {}
    if problem.RV is not None:
        return _compare_given_vjp(ctx, cots, max_entries=max_entries, override=override), {}
    try:
        T = ctx.references64(cots.values)
    except Exception as err:  # noqa: BLE001 - a non-differentiable reference is reported, not fatal
        return Comparison(name, SKIP, detail=f"jax.vjp of {problem.reference_name} failed: {type(err).__name__}: {err}"), {}
    V, rule_noise = ctx.rules_and_noise(cots.values)
    pair_noise = ctx.same_precision_noise(cots.values)  # float64 leaves: rule's and reference's rounding
    failing, worst, compared = _entrywise(ctx, T, V, rule_noise, pair_noise, override)
    if failing and pair_noise is not None and not override:
        # The reference's own float64 rounding, measured at neighbouring inputs: only where needed.
        pair_noise = [[p + m for p, m in zip(u, w)] for u, w in zip(pair_noise, ctx.reference_rounding(cots.values))]
        failing, worst, compared = _entrywise(ctx, T, V, rule_noise, pair_noise, override)

    failing.sort(key=lambda row: -row[0])
    to_check = [row for row in failing if np.isfinite(row[4])][:kink_checks]  # a NaN rule fails as it is
    pairs = [(row[1], row[2], row[3]) for row in to_check]
    fd_of = {}
    if pairs:
        d = pair_differences(ctx, pairs, cots.values, probe_width(chunk))
        fd_of = {pair: k for k, pair in enumerate(pairs)}
    rejected, accepted, findings = [], [], []
    magnitude = {}  # cotangent index -> Σⱼ|gⱼ||fⱼ(x)| (Context.values_terms), the resolution's numerator
    for ratio_, c, leaf, i, v, t, err, tol in failing:
        k = fd_of.get((c, leaf, i))
        fd = None if k is None else _at(d, k)
        if fd is not None and np.isfinite(fd["value"]):
            # The allowance was scaled by the reference's value; where finite differences say the truth
            # is elsewhere (a reference of 0 where the derivative is 1.85), the rule is held to the
            # allowance of that value: 2·SLACK·ε·|fd| is rounding_bound's least for an entry of that size.
            tol = max(tol, float(override(np.asarray(fd["value"]))) if override
                      else 2.0 * SLACK * ctx.eps[leaf] * abs(fd["value"]))
        entry = Entry(problem.labels[leaf], unravel(i, problem.x[leaf].shape), cots.labels[c], v, t,
                      error=err, tol=tol, x=ctx.x_at(leaf, i))
        if c not in magnitude:
            magnitude[c] = ctx.values_terms(cots.values[c])
        # The resolution of f's values at entry i, SLACK·ε·Σⱼ|gⱼ||fⱼ(x)| / max(1, |xᵢ|). A rule usually forms
        # its derivative from f's rounded outputs (y(1 − y), 1 − y², y ⊙ (g − ⟨g, y⟩)); rounding y by ε|y|
        # moves it by |∂v/∂y|·ε|y|. Where y saturates (the sigmoid at 40, a softmax row with a margin of
        # 60) the true derivative is far below that and these rules return 0 for it, in float64 as in
        # float32 (so their observed rounding is 0 too). There |∂v/∂y| tends to 1 (sigmoid, softmax) or 2
        # (tanh), at least 1/max(1, |x|), so the resolution is at most the effect of rounding y; and a
        # large offset (softplus at 10⁴: |f| ≈ 10⁴, f′ = 1) excuses nothing: it is SLACK·ε relative to
        # the derivative's own scale |f|/|x|.
        x = abs(ctx.x_at(leaf, i))
        resolution = SLACK * ctx.eps[leaf] * magnitude[c] / max(1.0, x if np.isfinite(x) else 1.0)
        verdict, note = _three_witnesses(v, t, tol, fd, kink_checks, resolution,
                                         float64=ctx.eps[leaf] <= float(np.finfo(np.float64).eps))
        entry.note = note
        if verdict == "rounding":
            entry.fd = float(d.value[k])
            entry.accepted = True
            accepted.append(entry)
        elif verdict == "kink":
            entry.fd = float(d.value[k])
            entry.error, entry.accepted = 0.0, True
            accepted.append(entry)
        elif verdict == "reference":
            entry.fd = float(d.value[k])
            entry.error, entry.accepted = abs(v - entry.fd), True
            entry.tol = tol + 2.0 * float(d.error[k])
            findings.append(entry)
        else:
            if k is not None:
                entry.fd = float(d.value[k])
            rejected.append(entry)
            worst = max(worst, ratio_)
    entries = once_per_entry(rejected)[:max_entries] + once_per_entry(findings)[:max_entries] \
        + once_per_entry(accepted)[:max_entries]
    verdict = FAIL if rejected else PASS
    how = (
        f"full Jacobian ({len(cots.values)} basis cotangents)"
        if cots.basis
        else f"{len(cots.values)} random ±1 cotangents"
    )
    detail = f"{how}, {compared} entries; {len(rejected)} fail"
    at_kinks = sum(1 for e in accepted if e.note.startswith("kink"))
    if at_kinks:
        detail += f", {at_kinks} at kinks accepted (subgradient)"
    if len(accepted) > at_kinks:
        detail += (f", {len(accepted) - at_kinks} below the resolution of f's values accepted (rule and reference "
                   "differ by less than f's own rounding resolves; finite differences cannot tell them apart)")
    if findings:
        where = sorted({e.where for e in findings})
        bad = "NaN/inf" if any(not np.isfinite(e.reference) for e in findings) else "wrong values"
        detail += (f"; finding: the reference's autodiff gives {bad} at {len(where)} input entr"
                   f"{'y' if len(where) == 1 else 'ies'} ({', '.join(where[:4])}{', ...' if len(where) > 4 else ''}) "
                   "where finite differences side with the rule")
    return Comparison(name, verdict, worst, detail, entries), {c: T[c] for c in range(len(T))}


def _entrywise(ctx, T, V, rule_noise, pair_noise, override) -> tuple[list, float, int]:
    """Every entry of (a) against its tolerance: ``(failing rows, worst passing ratio, entries compared)``,
    a failing row being ``(ratio, c, leaf, flat index, rule, ref, err, tol)``."""
    failing = []
    worst = 0.0
    compared = 0
    for c in range(len(T)):
        for leaf in range(len(ctx.problem.x)):
            t, v = T[c][leaf].reshape(-1), V[c][leaf].reshape(-1)
            noise = rule_noise[c][leaf].reshape(-1)
            if pair_noise is not None:
                noise = noise + pair_noise[c][leaf].reshape(-1)
            # The allowance scales with the true value; where the reference is not finite, with the rule's.
            scale = np.where(np.isfinite(t), t, v)
            tol = override(scale) if override else rounding_bound(scale, ctx.eps[leaf], noise)
            with np.errstate(invalid="ignore"):
                err = np.where(np.isfinite(v) & np.isfinite(t), np.abs(v - t), np.where(v == t, 0.0, np.nan))
            ok = within(err, tol)
            compared += t.size
            r = ratio(err, tol)
            for i in np.flatnonzero(~ok):
                failing.append((float(r[i]), c, leaf, int(i), float(v[i]), float(t[i]), float(err[i]), float(tol[i])))
            if ok.any():
                worst = max(worst, float(np.max(r[ok])))
    return failing, worst, compared


def _compare_given_vjp(ctx, cots, *, max_entries, override) -> Comparison:
    """(a) against a given reference VJP (``reference_vjp=``): entrywise, no finite differences."""
    problem = ctx.problem
    name = f"(a) rule vs {problem.reference_name}"
    with float64_scope():
        x = [jax.device_put(xi) for xi in ctx.x64]
        RV = jax.jit(problem.RV)
        T = [[np.asarray(t, np.float64) for t in RV(x, [jax.device_put(np.asarray(gi, np.float64)) for gi in g])]
             for g in cots.values]
    V = ctx.rules(cots.values)
    rows, worst, compared = [], 0.0, 0
    for c in range(len(cots.values)):
        for leaf in range(len(problem.x)):
            t, v = T[c][leaf].reshape(-1), V[c][leaf].reshape(-1)
            tol = override(t) if override else rounding_bound(t, ctx.eps[leaf])
            with np.errstate(invalid="ignore"):
                err = np.where(np.isfinite(v) & np.isfinite(t), np.abs(v - t), np.where(v == t, 0.0, np.nan))
            r = ratio(err, tol)
            compared += t.size
            worst = max(worst, float(np.max(r))) if r.size else worst
            for i in np.flatnonzero(~within(err, tol)):
                note = f"rule is {show(float(v[i]))}" if not np.isfinite(v[i]) else ""
                rows.append(Entry(problem.labels[leaf], unravel(int(i), problem.x[leaf].shape), cots.labels[c],
                                  float(v[i]), float(t[i]), error=float(err[i]), tol=float(tol[i]), note=note,
                                  x=ctx.x_at(leaf, int(i))))
    rows.sort(key=lambda e: -e.ratio)
    failing = len(rows)
    how = f"full Jacobian ({len(cots.values)} basis cotangents)" if cots.basis else f"{len(cots.values)} random ±1 cotangents"
    return Comparison(name, FAIL if failing else PASS, worst, f"{how}, {compared} entries; {failing} fail",
                      once_per_entry(rows)[:max_entries])


def _at(d: Differences, k: int) -> dict:
    one_sided = bool(d.one_sided[k]) if d.one_sided is not None else False
    return dict(value=float(d.value[k]), error=float(d.error[k]), kink=bool(d.kink[k]), left=float(d.left[k]),
                right=float(d.right[k]), side_error=float(d.side_error[k]), one_sided=one_sided)


def _three_witnesses(v: float, t: float, tol: float, fd: dict | None, kink_checks: int,
                     resolution: float = 0.0, float64: bool = False) -> tuple[str, str]:
    """The verdict on one entry where the rule ``v`` and the reference ``t`` disagree (docs table).

    Returns ``(verdict, note)``, verdict one of ``"fail"``, ``"kink"`` (accepted: the rule is a
    subgradient at a kink), ``"reference"`` (accepted: finite differences side with the rule and
    contradict the reference, which is then a finding), ``"rounding"`` (accepted: finite differences
    cannot tell the two apart, and they differ by less than ``resolution``, the resolution of f's
    values (where ``compare_reference`` forms it). ``float64``: the entry's leaf is float64, where the
    reference rounds as
    the rule does, which the note of a reference that decides says.
    """
    if not np.isfinite(v):
        return "fail", f"rule is {show(v)}" + (f", reference {t:.6g}" if np.isfinite(t) else f", reference {show(t)}")
    if fd is None:
        return "fail", f"not re-examined by finite differences (only the {kink_checks} worst are)"
    if not (np.isfinite(fd["value"]) and np.isfinite(fd["error"])):
        ref = f"reference is {show(t)}" if not np.isfinite(t) else "reference disagrees"
        return "fail", f"undecided: {ref} and finite differences are undefined (f is NaN/inf on both sides)"
    if fd["kink"]:
        lo, hi = min(fd["left"], fd["right"]), max(fd["left"], fd["right"])
        if interval_contains(v, fd["left"], fd["right"], 0.0):
            return "kink", f"kink: subgradient interval [{lo:.4g}, {hi:.4g}] accepted"
        if interval_contains(v, fd["left"], fd["right"], tol + fd["side_error"]):
            return "kink", (f"kink: within the error bar ({tol + fd['side_error']:.2e}) of the subgradient interval "
                            f"[{lo:.4g}, {hi:.4g}]; accepted")
        return "fail", f"kink: outside subgradient interval [{lo:.4g}, {hi:.4g}]"
    side = "one-sided fd (f undefined on the other side)" if fd["one_sided"] else "fd"
    bar = tol + 2.0 * fd["error"]
    rule_agrees = abs(v - fd["value"]) <= bar
    reference_agrees = np.isfinite(t) and abs(t - fd["value"]) <= bar
    if rule_agrees and not reference_agrees:
        what = f"reference is {show(t)}" if not np.isfinite(t) else "reference is wrong"
        return "reference", f"{what}; {side} sides with the rule"
    if rule_agrees and np.isfinite(t) and abs(v - t) <= resolution:
        return "rounding", (f"{side} cannot tell rule and reference apart, and they differ by less than f's values "
                            f"resolve ({resolution:.2e}): accepted as rounding")
    if rule_agrees:
        hint = " (a float64 reference rounds as the rule does: pass a more accurate reference= if it may be off)"
        return "fail", (f"{side} cannot tell rule and reference apart (error bar {2 * fd['error']:.2e}); the reference "
                        f"decides{hint if float64 else ''}")
    if reference_agrees:
        return "fail", f"{side} sides with the reference"
    return "fail", f"{side} agrees with neither"
