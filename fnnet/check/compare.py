"""Comparison (a): the rule's VJP against jax.vjp of the reference, entry by entry.

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

from .differences import Differences, differences
from .report import FAIL, PASS, SKIP, Comparison, Entry
from .tolerance import SLACK, interval_contains, ratio, rounding_bound, within

PROBE_BATCH = 8  # directions per compiled FD call in auto mode (also the bisection's branching)


def entry_differences(ctx, leaf: int, idx, cots: list, chunk: int) -> Differences:
    """Finite differences of ``<g_c, f>`` w.r.t. entries ``idx`` of ``leaf``, in derivative units.

    Returns arrays of shape ``(len(idx), len(cots))``. Evaluated in fixed-size chunks (padded, so
    one compilation serves every chunk), each a vmap over ``chunk`` perturbed copies of the leaf.
    """
    idx = np.asarray(idx, np.int64).reshape(-1)
    chunk = max(1, min(int(chunk), len(idx)))
    if ctx.mesh is not None:  # a whole number of perturbations per device
        k = ctx.mesh.size
        chunk = -(-chunk // k) * k
    def run(scale):
        samples, mags = [], []
        for start in range(0, len(idx), chunk):
            part = idx[start : start + chunk]
            pad = np.concatenate([part, np.full(chunk - len(part), part[0])])
            s, m = ctx.sample_entries(leaf, pad, cots, step_scale=scale)
            samples.append(s[: len(part)] / scale)
            mags.append(m[: len(part)] / scale)
        return differences(np.concatenate(samples), np.concatenate(mags), ctx.fd, ctx.fd_eps)

    d = with_observed_noise(ctx, run)
    return d.scaled(ctx.steps[leaf].reshape(-1)[idx][:, None])


STEP_SCALES = (1.125, 0.875)  # the reruns of with_observed_noise


def with_observed_noise(ctx, run) -> Differences:
    """``run(1.0)``, its error bar widened by the differences' own observed rounding.

    ``run(k)`` computes the differences with every step multiplied by ``k`` (in per-step units of the
    unscaled step). The float64 rounding floor ``8·3·ε·Σ|g||f|`` assumes f rounds like a few operations
    on its result; a cancelling f (a rule differentiated again near a removable singularity) rounds
    far more, and its differences with it. Where a leaf is float64 the differences are rerun at steps
    ``1.125 h`` and ``0.875 h``: truncation changes smoothly with the step (and is already in the
    Richardson bar), rounding does not, so ``8·max_k |R_k − R|`` is added to the error bar. (A float32
    rerun does not work here: a float32 evaluation of such a formula cancels completely, and its
    error no longer scales with ε.)
    """
    d = run(1.0)
    if not ctx.fd_noise_rerun():
        return d
    spread = np.zeros(np.shape(d.value))
    for k in STEP_SCALES:
        dk = run(k)
        with np.errstate(invalid="ignore"):
            spread = np.maximum(spread, np.where(np.isfinite(dk.value), np.abs(dk.value - d.value), 0.0))
    extra = SLACK * np.nan_to_num(spread, nan=0.0, posinf=0.0)
    return Differences(d.value, d.error + extra, d.kink, d.left, d.right, d.side_error + extra, d.one_sided)


def directional_differences(ctx, gbatch, dirs_batch, chunk):
    """Differences (per-step units) of ``<g_k, f>`` along ``dirs_batch[k]``, in padded chunks."""
    n = len(dirs_batch)
    chunk = max(1, chunk)  # always padded to ``chunk``: one compiled shape for every caller

    def run(scale):
        samples, mags = [], []
        for start in range(0, n, chunk):
            part, gpart = dirs_batch[start : start + chunk], gbatch[start : start + chunk]
            k = len(part)
            part, gpart = part + [part[0]] * (chunk - k), gpart + [gpart[0]] * (chunk - k)
            dirs = [np.stack([d[j] for d in part]) * scale for j in range(len(part[0]))]
            gs = [np.stack([np.asarray(g[j], np.float64) for g in gpart]) for j in range(len(gpart[0]))]
            s, m = ctx.sample(dirs, gs)
            samples.append(s[:k] / scale)
            mags.append(m[:k] / scale)
        return differences(np.concatenate(samples), np.concatenate(mags), ctx.fd, ctx.fd_eps)

    return with_observed_noise(ctx, run)


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

    failing = []  # (ratio, c, leaf, flat index, rule, ref, err, tol)
    worst = 0.0
    compared = 0
    for c in range(len(cots.values)):
        for leaf in range(len(problem.x)):
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

    failing.sort(key=lambda row: -row[0])
    to_check = [row for row in failing if np.isfinite(row[4])][:kink_checks]  # a NaN rule fails as it is
    pairs = [(row[1], row[2], row[3]) for row in to_check]
    fd_of = {}
    if pairs:
        d = pair_differences(ctx, pairs, cots.values, max(2, min(chunk, PROBE_BATCH)))
        fd_of = {pair: k for k, pair in enumerate(pairs)}
    rejected, accepted, findings = [], [], []
    for ratio_, c, leaf, i, v, t, err, tol in failing:
        entry = Entry(problem.labels[leaf], _unravel(i, problem.x[leaf].shape), cots.labels[c], v, t,
                      error=err, tol=tol, x=_value_at(ctx, leaf, i))
        k = fd_of.get((c, leaf, i))
        verdict, note = _three_witnesses(v, t, tol, None if k is None else _at(d, k), kink_checks)
        entry.note = note
        if verdict == "kink":
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
    entries = _once_per_entry(rejected)[:max_entries] + _once_per_entry(findings)[:max_entries] \
        + _once_per_entry(accepted)[:max_entries]
    verdict = FAIL if rejected else PASS
    how = (
        f"full Jacobian ({len(cots.values)} basis cotangents)"
        if cots.basis
        else f"{len(cots.values)} random ±1 cotangents"
    )
    detail = f"{how}, {compared} entries; {len(rejected)} fail"
    if accepted:
        detail += f", {len(accepted)} at kinks accepted (subgradient)"
    if findings:
        where = sorted({e.where for e in findings})
        bad = "NaN/inf" if any(not np.isfinite(e.reference) for e in findings) else "wrong values"
        detail += (f"; finding: the reference's autodiff gives {bad} at {len(where)} input entr"
                   f"{'y' if len(where) == 1 else 'ies'} ({', '.join(where[:4])}{', ...' if len(where) > 4 else ''}) "
                   "where finite differences side with the rule")
    return Comparison(name, verdict, worst, detail, entries), {c: T[c] for c in range(len(T))}


def _compare_given_vjp(ctx, cots, *, max_entries, override) -> Comparison:
    """(a) against a given reference VJP (``reference_vjp=``): entrywise, no finite differences."""
    import jax

    from .differences import float64_scope

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
                note = f"rule is {_name(float(v[i]))}" if not np.isfinite(v[i]) else ""
                rows.append(Entry(problem.labels[leaf], _unravel(int(i), problem.x[leaf].shape), cots.labels[c],
                                  float(v[i]), float(t[i]), error=float(err[i]), tol=float(tol[i]), note=note,
                                  x=_value_at(ctx, leaf, int(i))))
    rows.sort(key=lambda e: -e.ratio)
    failing = len(rows)
    how = f"full Jacobian ({len(cots.values)} basis cotangents)" if cots.basis else f"{len(cots.values)} random ±1 cotangents"
    return Comparison(name, FAIL if failing else PASS, worst, f"{how}, {compared} entries; {failing} fail",
                      _once_per_entry(rows)[:max_entries])


def _at(d: Differences, k: int) -> dict:
    one_sided = bool(d.one_sided[k]) if d.one_sided is not None else False
    return dict(value=float(d.value[k]), error=float(d.error[k]), kink=bool(d.kink[k]), left=float(d.left[k]),
                right=float(d.right[k]), side_error=float(d.side_error[k]), one_sided=one_sided)


def _three_witnesses(v: float, t: float, tol: float, fd: dict | None, kink_checks: int) -> tuple[str, str]:
    """The verdict on one entry where the rule ``v`` and the reference ``t`` disagree (docs table).

    Returns ``(verdict, note)``, verdict one of ``"fail"``, ``"kink"`` (accepted: the rule is a
    subgradient at a kink), ``"reference"`` (accepted: finite differences side with the rule and
    contradict the reference, which is then a finding).
    """
    if not np.isfinite(v):
        return "fail", f"rule is {_name(v)}" + (f", reference {t:.6g}" if np.isfinite(t) else f", reference {_name(t)}")
    if fd is None:
        return "fail", f"not re-examined by finite differences (only the {kink_checks} worst are)"
    if not (np.isfinite(fd["value"]) and np.isfinite(fd["error"])):
        ref = f"reference is {_name(t)}" if not np.isfinite(t) else "reference disagrees"
        return "fail", f"undecided: {ref} and finite differences are undefined (f is NaN/inf on both sides)"
    if fd["kink"]:
        lo, hi = min(fd["left"], fd["right"]), max(fd["left"], fd["right"])
        if interval_contains(v, fd["left"], fd["right"], tol + fd["side_error"]):
            return "kink", f"kink: subgradient interval [{lo:.4g}, {hi:.4g}] accepted"
        return "fail", f"kink: outside subgradient interval [{lo:.4g}, {hi:.4g}]"
    side = "one-sided fd (f undefined on the other side)" if fd["one_sided"] else "fd"
    bar = tol + 2.0 * fd["error"]
    rule_agrees = abs(v - fd["value"]) <= bar
    reference_agrees = np.isfinite(t) and abs(t - fd["value"]) <= bar
    if rule_agrees and not reference_agrees:
        what = f"reference is {_name(t)}" if not np.isfinite(t) else "reference is wrong"
        return "reference", f"{what}; {side} sides with the rule"
    if rule_agrees:
        return "fail", f"{side} cannot tell rule and reference apart (error bar {2 * fd['error']:.2e}); the reference decides"
    if reference_agrees:
        return "fail", f"{side} sides with the reference"
    return "fail", f"{side} agrees with neither"


def _name(x: float) -> str:
    return "NaN" if np.isnan(x) else ("+inf" if x > 0 else "-inf") if np.isinf(x) else f"{x:.6g}"


def _value_at(ctx, leaf: int, i: int) -> float:
    return float(ctx.x64[leaf].reshape(-1)[i]) if ctx.x64[leaf].size else float("nan")


def _once_per_entry(entries: list) -> list:
    """One row per input entry (its worst cotangent), with how many cotangents showed it."""
    best, count = {}, {}
    for e in entries:
        key = (e.keypath, e.index)
        count[key] = count.get(key, 0) + 1
        if key not in best:
            best[key] = e
    out = []
    for key, e in best.items():
        if count[key] > 1:
            e.cotangent = f"{e.cotangent} (+{count[key] - 1} more)"
        out.append(e)
    return out


def _unravel(i: int, shape) -> tuple:
    if not shape:
        return ()
    return tuple(int(k) for k in np.unravel_index(i, shape))
