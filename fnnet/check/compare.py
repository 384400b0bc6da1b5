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
from .tolerance import interval_contains, rounding_bound, within

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
    samples, mags = [], []
    for start in range(0, len(idx), chunk):
        part = idx[start : start + chunk]
        pad = np.concatenate([part, np.full(chunk - len(part), part[0])])
        s, m = ctx.sample_entries(leaf, pad, cots)
        samples.append(s[: len(part)])
        mags.append(m[: len(part)])
    d = differences(np.concatenate(samples), np.concatenate(mags), ctx.fd)
    h = ctx.steps[leaf].reshape(-1)[idx][:, None]
    return Differences(d.value / h, d.error / h, d.kink, d.left / h, d.right / h, d.side_error / h)


def directional_differences(ctx, gbatch, dirs_batch, chunk):
    """Differences (per-step units) of ``<g_k, f>`` along ``dirs_batch[k]``, in padded chunks."""
    samples, mags = [], []
    n = len(dirs_batch)
    chunk = max(1, chunk)  # always padded to ``chunk``: one compiled shape for every caller
    for start in range(0, n, chunk):
        part, gpart = dirs_batch[start : start + chunk], gbatch[start : start + chunk]
        k = len(part)
        part, gpart = part + [part[0]] * (chunk - k), gpart + [gpart[0]] * (chunk - k)
        dirs = [np.stack([d[j] for d in part]) for j in range(len(part[0]))]
        gs = [np.stack([np.asarray(g[j], np.float64) for g in gpart]) for j in range(len(gpart[0]))]
        s, m = ctx.sample(dirs, gs)
        samples.append(s[:k])
        mags.append(m[:k])
    return differences(np.concatenate(samples), np.concatenate(mags), ctx.fd)


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
    h = np.asarray(h)
    return Differences(d.value / h, d.error / h, d.kink, d.left / h, d.right / h, d.side_error / h)


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
    if problem.R is None:
        why = "no reference: pass reference=, or give f a .reference attribute"
        return Comparison(name, SKIP, detail=why), {}
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
            tol = override(t) if override else rounding_bound(t, ctx.eps[leaf], noise)
            err = np.abs(v - t)
            ok = within(err, tol)
            compared += t.size
            ratio = np.where(tol > 0, err / np.where(tol > 0, tol, 1.0), np.where(err > 0, np.inf, 0.0))
            for i in np.flatnonzero(~ok):
                failing.append((float(np.nan_to_num(ratio[i], nan=np.inf)), c, leaf, int(i), v[i], t[i], err[i], tol[i]))
            if ok.any():
                worst = max(worst, float(np.max(ratio[ok])))

    failing.sort(key=lambda r: -r[0])
    entries, accepted, rejected = [], 0, []
    to_check = failing[:kink_checks]
    pairs = [(r[1], r[2], r[3]) for r in to_check]
    fd_of = {}
    if pairs:
        d = pair_differences(ctx, pairs, cots.values, max(2, min(chunk, PROBE_BATCH)))
        for k, pair in enumerate(pairs):
            fd_of[pair] = k
    for r in failing:
        ratio, c, leaf, i, v, t, err, tol = r
        entry = Entry(problem.labels[leaf], _unravel(i, problem.x[leaf].shape), cots.labels[c], v, t, error=err, tol=tol)
        if (c, leaf, i) in fd_of:
            k = fd_of[(c, leaf, i)]
            entry.fd = float(d.value[k])
            if d.kink[k]:
                slack = tol + d.side_error[k]
                lo_, hi_ = d.left[k], d.right[k]
                if interval_contains(v, lo_, hi_, slack):
                    entry.note = f"kink: subgradient interval [{min(lo_, hi_):.4g}, {max(lo_, hi_):.4g}] accepted"
                    entry.error = 0.0
                    accepted += 1
                    if len(entries) < max_entries:
                        entries.append(entry)
                    continue
                entry.note = f"kink: outside subgradient interval [{min(lo_, hi_):.4g}, {max(lo_, hi_):.4g}]"
            elif abs(v - entry.fd) <= tol + 2 * d.error[k] and not abs(t - entry.fd) <= tol + 2 * d.error[k]:
                entry.note = "fd sides with the rule: is the reference right?"
        else:
            entry.note = f"not re-examined (only the {kink_checks} worst are)"
        rejected.append(entry)
        worst = max(worst, ratio)
    entries = rejected[:max_entries] + entries
    verdict = FAIL if rejected else PASS
    how = (
        f"full Jacobian ({len(cots.values)} basis cotangents)"
        if cots.basis
        else f"{len(cots.values)} random ±1 cotangents"
    )
    detail = f"{how}, {compared} entries; {len(rejected)} fail"
    if accepted:
        detail += f", {accepted} at kinks accepted (subgradient)"
    return Comparison(name, verdict, worst, detail, entries), {c: T[c] for c in range(len(T))}


def _unravel(i: int, shape) -> tuple:
    if not shape:
        return ()
    return tuple(int(k) for k in np.unravel_index(i, shape))
