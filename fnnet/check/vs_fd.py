"""Comparison (b): the rule's VJP against finite differences of f in float64.

``mode="auto"``: ``k`` probes per leaf. Probe ``p`` of leaf ``L`` draws random signs ``u`` on ``L``
only (zero elsewhere: per-leaf normalisation, so a bias leaf is not drowned by a weight leaf) and a
random-sign cotangent ``g_p``; it compares ``<VJP(g_p), h u>`` with the Richardson derivative of
``phi(t) = <g_p, f(x + t h u)>``. A failing probe is localised by bisection: split the support in
halves, keep a half whose own probe fails, repeat; ``2 ceil(log2 N)`` extra directional differences
end at a single entry, reported with its keypath and index.

``mode="full"``: every entry of every leaf, ``f`` evaluated at ``x +- h_i e_i``, ``x +- h_i e_i/2``
(plus ``x``), vmapped over chunks of entries inside one jit. The output is projected on every
cotangent of comparison (a) (the full Jacobian when the output is small).
"""

from __future__ import annotations

import numpy as np

from .cotangents import rademacher, scalar_output
from .fd import directional_differences, entry_differences, probe_width, sample_points
from .report import FAIL, PASS, Comparison, Entry, once_per_entry, ravel, show, unravel
from .tolerance import (
    Z,
    interval_contains,
    miss_probability,
    probe_tolerance,
    rounding_bound,
    within,
)
from .tolerance import ratio as ratio_of


def _bound(ctx, v, leaf, override, noise=0.0):
    return override(v) if override else rounding_bound(v, ctx.eps[leaf], noise)


def _direction(ctx, leaf, u):
    dirs = [np.zeros(np.shape(x)) for x in ctx.x64]
    dirs[leaf] = ctx.steps[leaf] * u
    return dirs


def _verdict(pred, d, k, bound, direction):
    """(passed, error, tol, note) of probe ``k`` of Differences ``d`` against prediction ``pred``."""
    tol = probe_tolerance(bound, direction, d.error[k])
    err = abs(pred - d.value[k])
    if within(err, tol):
        return True, err, tol, ""
    if d.kink[k]:
        slack = Z * float(np.sqrt(np.sum((bound * direction) ** 2))) + 2.0 * d.side_error[k]
        if interval_contains(pred, d.left[k], d.right[k], slack):
            return True, 0.0, tol, "kink: subgradient interval accepted"
    return False, err, tol, ""


def probe_fd(ctx, *, probes, chunk, override, reference_for=None, max_entries=8):
    """Comparison (b) in auto mode, with bisection; returns (Comparison, power lines, notes)."""
    problem = ctx.problem
    n_leaves = len(problem.x)
    if scalar_output(problem):
        cots = [[np.ones(np.shape(problem.out[0]))] for _ in range(probes)]
    else:
        cots = [rademacher(problem.out, ctx.rng) for _ in range(probes)]
    V, noise = ctx.rules_and_noise(cots)
    signs = [[ctx.rng.choice(np.array([-1.0, 1.0]), size=np.shape(ctx.x64[leaf])) for _ in range(probes)] for leaf in range(n_leaves)]
    # Entries where the rule itself is NaN/inf fail as they are, named; the probes leave them out, so
    # that one NaN does not make every probe (and every tolerance) NaN and hide the rest of the leaf.
    nonfinite_entries = []
    for leaf in range(n_leaves):
        bad = np.zeros(np.shape(ctx.x64[leaf]), bool)
        for p in range(probes):
            bad |= ~np.isfinite(V[p][leaf])
        if bad.any():
            for i in np.flatnonzero(bad.reshape(-1))[:max_entries]:
                p = next(q for q in range(probes) if not np.isfinite(V[q][leaf].reshape(-1)[i]))
                value = float(V[p][leaf].reshape(-1)[i])
                nonfinite_entries.append(Entry(
                    problem.labels[leaf], unravel(int(i), np.shape(ctx.x64[leaf])),
                    "1" if scalar_output(problem) else f"random ±1 #{p}", value, error=float("inf"), tol=0.0,
                    x=ctx.x_at(leaf, int(i)),
                    note=f"rule is {show(value)} ({int(bad.sum())} entr{'y' if bad.sum() == 1 else 'ies'} of this leaf)"))
            for p in range(probes):
                signs[leaf][p] = np.where(bad, 0.0, signs[leaf][p])
                V[p][leaf] = np.where(bad, 0.0, V[p][leaf])
                noise[p][leaf] = np.where(bad, 0.0, noise[p][leaf])
    dirs = [_direction(ctx, leaf, signs[leaf][p]) for leaf in range(n_leaves) for p in range(probes)]
    gbatch = [cots[p] for leaf in range(n_leaves) for p in range(probes)]
    # One compiled call shape serves the probes and every bisection round.
    width = probe_width(chunk)
    d = directional_differences(ctx, gbatch, dirs, width)

    worst, failures, kinks, entries, notes, power = 0.0, len(nonfinite_entries), 0, list(nonfinite_entries), [], []
    if nonfinite_entries:
        worst = float("inf")
    for leaf in range(n_leaves):
        tols = []
        failed_probes = []
        for p in range(probes):
            k = leaf * probes + p
            v = V[p][leaf]
            direction = dirs[k][leaf]
            bound = _bound(ctx, v, leaf, override, noise[p][leaf])
            pred = float(np.sum(v * direction))
            ok, err, tol, note = _verdict(pred, d, k, bound, direction)
            tols.append(tol)
            kinks += bool(note)
            ratio = ratio_of(err, tol)
            if not ok:
                # Localise. If no part fails on its own and the probe met a kink, the mismatch comes
                # from combining several kinks: the valid projections form the Minkowski sum of the
                # kinks' subgradient intervals, which neither the probe's one-sided slopes nor its
                # directional derivative need match (relu'(0) = 1 at two zeros, probed along
                # (+1, -1), predicts 2 where phi is smooth with slope 1). Accepted, and reported.
                entry, localised, saw_kink = bisect(ctx, leaf, cots[p], V[p][leaf], signs[leaf][p], width, override, noise[p][leaf])
                if not localised and (saw_kink or d.kink[k]):
                    kinks += 1
                    continue
                failed_probes.append((ratio, p, entry))
            if ok:
                worst = max(worst, ratio)
        if failed_probes:
            failures += len(failed_probes)
            ratio, p, entry = max(failed_probes, key=lambda r: r[0])
            worst = max(worst, ratio)
            entry.note = f"{len(failed_probes)}/{probes} probes fail; " + entry.note
            found = [entry]
            if entry.rule is not None:  # localised: look for more wrong entries along the same probe
                found += further_entries(ctx, leaf, cots[p], V[p][leaf], signs[leaf][p], width, override,
                                         noise[p][leaf], entry, max_entries - 1)
            T = reference_for(cots[p]) if reference_for is not None and entry.rule is not None else None
            for e in found:
                e.cotangent = "1" if scalar_output(problem) else f"random ±1 #{p}"
                if T is not None:
                    e.reference = float(T[leaf].reshape(-1)[ravel(e.index, problem.x[leaf].shape)])
            entries += found
        h_min = float(np.min(ctx.steps[leaf])) if ctx.steps[leaf].size else 1.0
        rms = float(np.sqrt(np.mean(np.concatenate([V[p][leaf].reshape(-1) for p in range(probes)]) ** 2)))
        finite_tols = [t for t in tols if np.isfinite(t)]
        e_min = (max(finite_tols) if finite_tols else float("nan")) / h_min
        rel = f" = {e_min / rms:.1e} x rms entry" if rms > 0 else ""
        power.append(
            f"(b) {problem.labels[leaf]}: one wrong entry is caught by every probe once its error exceeds "
            f"{e_min:.1e}{rel}; errors spread over many entries escape all {probes} probes with "
            f"probability <= {miss_probability(probes):.1e}"
        )
    if kinks:
        notes.append(f"(b) {kinks} probe(s) crossed a kink; accepted inside the one-sided subgradient interval")
    verdict = FAIL if failures else PASS
    fd = "complex step" if ctx.fd == "complex" else "central + Richardson"
    detail = f"{probes} random ±1 probes per leaf ({fd}, float64); {failures} fail"
    return Comparison("(b) rule vs finite differences", verdict, worst, detail, entries[:max_entries]), power, notes


def further_entries(ctx, leaf, g, v, u, width, override, noise, first, limit) -> list:
    """More wrong entries of ``leaf`` along the failing probe ``(g, u)`` whose worst entry ``first`` was
    localised: the probe again without the entries found so far, bisected (:func:`bisect`) while a
    part of it still fails on its own; at most ``limit`` entries. Stops at an error that no single
    entry carries, or at a kink. Only run after a failure, so a correct rule never pays for it."""
    shape = np.shape(ctx.x64[leaf])
    left = np.array(u, dtype=float).reshape(-1)
    left[ravel(first.index, shape)] = 0.0
    out = []
    while len(out) < limit and left.any():
        entry, localised, _ = bisect(ctx, leaf, g, v, left.reshape(shape), width, override, noise)
        if not localised:
            break
        entry.note += f" (with the {len(out) + 1} entr{'y' if not out else 'ies'} above left out)"
        out.append(entry)
        left[ravel(entry.index, shape)] = 0.0
    return out


def bisect(ctx, leaf, g, v, u, width, override, noise=0.0) -> tuple[Entry, bool, bool]:
    """Localise a failing probe ``(g, u)`` on ``leaf`` to one entry by splitting its support.

    Each round splits the current range into ``width`` parts, probes all of them in one compiled
    call (the same one the probes used, so nothing is recompiled) and keeps the part with the largest
    error/tolerance among those that fail: ``ceil(log_width N)`` rounds. Stops early, reporting the
    range, when no part fails on its own (errors that only show together). Returns the entry,
    whether it was localised to a single index, and whether any part met a kink.
    """
    problem = ctx.problem
    shape = np.shape(ctx.x64[leaf])
    n = int(np.prod(shape))
    flat_u, flat_v, flat_h = u.reshape(-1), v.reshape(-1), ctx.steps[leaf].reshape(-1)
    bound_all = np.broadcast_to(_bound(ctx, v, leaf, override, noise), np.shape(v)).reshape(-1)
    lo, hi, rounds, found, saw_kink = 0, n, 0, None, False
    while found is None:
        edges = np.unique(np.linspace(lo, hi, min(width, hi - lo) + 1).astype(int))
        parts = list(zip(edges[:-1], edges[1:]))
        dirs, directions = [], []
        for a, b in parts:
            m = np.zeros(n)
            m[a:b] = flat_u[a:b]
            dirs.append(_direction(ctx, leaf, m.reshape(shape)))
            directions.append(flat_h * m)
        d = directional_differences(ctx, [g] * len(parts), dirs, width)
        rounds += 1
        choice = None
        for k, (a, b) in enumerate(parts):
            pred = float(np.sum(flat_v * directions[k]))
            ok, err, tol, _ = _verdict(pred, d, k, bound_all, directions[k])
            saw_kink = saw_kink or bool(d.kink[k])
            if not ok:
                ratio = ratio_of(err, tol)
                if choice is None or ratio > choice[0]:
                    choice = (ratio, k, a, b, tol)
        if choice is None:
            break
        _, k, lo, hi, tol = choice
        if hi - lo == 1:
            found = (k, tol)
    if found is None:
        first, last = unravel(lo, shape), unravel(hi - 1, shape)
        return Entry(
            problem.labels[leaf], first, "", None, error=float("inf"), tol=1.0,
            note=f"bisection stopped after {rounds} rounds: no part fails alone; the error is spread over "
                 f"flat entries {lo}..{hi - 1} (to {last})",
        ), False, saw_kink
    k, tol = found
    i = lo
    scale = flat_h[i] * flat_u[i]  # the probe measured the derivative times h_i u_i
    fd_value = float(d.value[k] / scale)
    return Entry(
        problem.labels[leaf], unravel(i, shape), "", float(flat_v[i]), fd=fd_value, x=ctx.x_at(leaf, int(i)),
        error=abs(float(flat_v[i]) - fd_value), tol=tol / flat_h[i], note=f"localised in {rounds} rounds",
    ), True, saw_kink


def full_fd(ctx, cots, *, chunk, override, reference=None, max_entries=8, kink_limit_note=True):
    """Comparison (b) in full mode: every entry of every leaf against finite differences."""
    problem = ctx.problem
    V, noise = ctx.rules_and_noise(cots.values)
    rows, worst, compared, kinks = [], 0.0, 0, 0
    for leaf in range(len(problem.x)):
        n = int(np.prod(np.shape(ctx.x64[leaf])))
        if n == 0:
            continue
        d = entry_differences(ctx, leaf, np.arange(n), cots.values, chunk)
        for c in range(len(cots.values)):
            v = V[c][leaf].reshape(-1)
            bound = np.broadcast_to(_bound(ctx, V[c][leaf], leaf, override, noise[c][leaf]), np.shape(V[c][leaf])).reshape(-1)
            fdv, fde = d.value[:, c], d.error[:, c]
            tol = bound + 2.0 * fde
            err = np.abs(v - fdv)
            ok = within(err, tol)
            kink = d.kink[:, c] & ~ok
            at_kink = kink & interval_contains(v, d.left[:, c], d.right[:, c], bound + 2.0 * d.side_error[:, c])
            kinks += int(at_kink.sum())
            ok = ok | at_kink
            compared += n
            # 0/0 (a zero derivative matched exactly with no error bar) is a ratio of 0, not ∞.
            ratio = ratio_of(err, tol)
            if ok.any():
                worst = max(worst, float(np.max(np.where(ok & ~at_kink, ratio, 0.0))))
            for i in np.flatnonzero(~ok):
                worst = max(worst, float(ratio[i]))
                ref = float(reference[c][leaf].reshape(-1)[i]) if reference else None
                note = "kink: outside subgradient interval" if kink[i] else ""
                if not np.isfinite(v[i]):
                    note = f"rule is {show(float(v[i]))}"
                elif not np.isfinite(fdv[i]):
                    note = "finite differences undefined here (f is NaN/inf on both sides)"
                elif d.one_sided is not None and d.one_sided[i, c]:
                    note = "one-sided fd (f undefined on the other side)"
                rows.append(Entry(problem.labels[leaf], unravel(int(i), problem.x[leaf].shape), cots.labels[c],
                                  float(v[i]), ref, float(fdv[i]), float(err[i]), float(tol[i]), note,
                                  x=ctx.x_at(leaf, int(i))))
    rows.sort(key=lambda e: -e.ratio)
    rows = once_per_entry(rows)
    failures = len(rows)
    evals = compared // max(len(cots.values), 1) * len(sample_points(ctx.fd))
    spread = f", perturbations split over {ctx.mesh.size} devices" if getattr(ctx, "mesh", None) is not None else ""
    detail = (f"every entry: {compared} (entry, cotangent) pairs, {evals} evaluations of f in chunks of {chunk}"
              f"{spread}; {failures} fail")
    if kinks:
        detail += f", {kinks} at kinks accepted (subgradient)"
    return Comparison("(b) rule vs finite differences (full)", FAIL if failures else PASS, worst, detail, rows[:max_entries])
