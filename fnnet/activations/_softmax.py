r"""The softmax family: softmax, log_softmax, logsumexp, softmin (one kernel: fnnet/_numerics.py).

These are not elementwise: each output entry depends on a whole slice of the input (the ``axis``), so
both rules are written out. With :math:`y = \operatorname{softmax}(x)` over the axis,

============== ==================================== ===================================================
function       VJP (cotangent ``g``)                 JVP (tangent ``t``)
============== ==================================== ===================================================
softmax        :math:`y ⊙ (g − ⟨g, y⟩)`              :math:`y ⊙ (t − ⟨t, y⟩)`
log_softmax    :math:`g − y·Σg`                      :math:`t − ⟨t, y⟩`
logsumexp      :math:`g·y` (with ``b``: see below)   :math:`⟨t, y⟩`
softmin        :math:`−y ⊙ (g − ⟨g, y⟩)`, y = softmax(−x)
============== ==================================== ===================================================

(⟨·,·⟩ and Σ are taken over the axis, keeping it, so they broadcast back.) The derivation is one line:
:math:`∂y_i/∂x_j = y_i(δ_{ij} − y_j)`, so :math:`(J^T g)_j = y_j(g_j − Σ_i g_i y_i)`.

softmax has a second hand rule, chosen as jax.nn.softmax chooses by jax's ``jax_softmax_custom_jvp``
flag: with the flag False (jax's default) the same map is backpropagated through the formula's graph
y = e/S, S = Σe, giving :math:`e ⊙ (g/S − ⟨g, e⟩/S^2)` from e, S and S⁻² (what jax.nn keeps then);
with True, the rule above from y alone (what jax.nn's custom JVP keeps).

**Stability.** Every function subtracts the slice maximum ``m`` before ``exp`` (softmax is invariant
under shifts), so ``exp`` never overflows and the largest term is exactly 1. The rules use only ``y``
(in [0, 1]) and ``g``, never ``exp(x)``: large logits (±1e4, ±1e30, ±max finite) give finite values
and gradients.

**Infinities.** ``−inf`` entries get probability 0 and no NaN. Where the slice maximum is itself
infinite, jax.nn returns NaN (``x − m`` is ``inf − inf``); fnnet takes the entries *equal to the
maximum* as tied and shares the mass equally between them — the limit when they grow together, which is
also what shift invariance gives for a slice of equal entries (softmax(c·1) is uniform for every c).
So ``softmax([1, inf, 3]) = [0, 1, 0]`` and ``softmax([-inf, -inf]) = [½, ½]``;
``logsumexp`` returns ``±inf`` there with gradient ``y``. NaN anywhere in a slice gives a NaN slice.

**Masks** (``where``, as in jax.nn): entries where ``where`` is False take no part. softmax gives 0
there, log_softmax ``−inf``, and the gradient of a masked entry is 0; a fully masked slice gives 0 /
``−inf`` / ``−inf`` with zero gradient (jax.nn's values). The mask is not differentiable.

The mask and logsumexp's weights ``b`` are traced parameters of the one declared primitive (no
cotangent for the mask; ``b``'s derivative comes from autodiff of the forward).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

from fnnet._checks import axes as _axes
from fnnet._checks import bool_mask, broadcast_pair, broadcasts_to, common_dtype
from fnnet._numerics import masked as _masked
from fnnet._numerics import normalize as _normalize
from fnnet._numerics import shifted as _shifted
from fnnet._numerics import apart_pays as _apart_pays
from fnnet._numerics import branch_pays as _branch_pays
from fnnet._numerics import exp_sums as _exp_sums
from fnnet._numerics import first_entries as _first_entries
from fnnet._numerics import log_branch_pays as _log_branch_pays
from fnnet._numerics import lse_rule_branch_pays as _lse_rule_branch_pays
from fnnet._numerics import one_kernel_pays as _one_kernel_pays
from fnnet._numerics import plain_exp_sums as _plain_exp_sums
from fnnet._numerics import rule_branch_pays as _rule_branch_pays
from fnnet._numerics import unless_nan as _unless_nan
from fnnet._numerics import shift_form as _shift_form
from fnnet._numerics import shifted_apart as _shifted_apart
from fnnet._numerics import keep as _keep
from fnnet._numerics import reduce_sum as _reduce_sum
from fnnet._numerics import slice_count as _slice_count
from fnnet._numerics import slice_sums as _slice_sums
from fnnet._numerics import softmax_vjp as _softmax_vjp
from fnnet.primitive import define, sample_rng, sampled

__all__ = ["softmax", "log_softmax", "logsumexp", "logmeanexp", "softmin"]


# ---------------------------------------------------------------------------------------------
# Shared pieces
# ---------------------------------------------------------------------------------------------


def _mask_convert(fname):
    """``convert`` for ops with a jax.nn ``where`` mask: a boolean array broadcastable to the input."""

    def convert(arrays, aux, static):
        m = aux.get("where")
        if m is None:
            return arrays, aux
        m = bool_mask(m, fname)
        broadcasts_to(m, arrays[0].shape, fname, "where")
        return arrays, {**aux, "where": m}

    return convert


def _sample_normal(scale=2.0):
    def sample(key, dtype=jnp.float32, shape=(3, 5), **static):
        return (sampled(scale * sample_rng(key).standard_normal(shape), dtype),)

    return sample


# ---------------------------------------------------------------------------------------------
# softmax
# ---------------------------------------------------------------------------------------------


def _normalized(x, axes, where, negate=False):
    """softmax(x) over ``axes`` by the tie rule, for an evaluation without gradient: on XLA:CPU over
    4096 or more short slices, jax.nn's formula as one kernel with the tie rule behind a branch
    (:func:`fnnet._numerics.one_kernel_pays`); over large inputs or many short slices, jax.nn's
    kernels behind a branch on the slice sums (:func:`fnnet._numerics.exp_sums`, where
    :func:`fnnet._numerics.branch_pays`); otherwise the per-slice selects. ``negate``: softmax(−x)
    (softmin), the negation formed inside the kernels that read x, never written: the branches take
    x itself as their operand and negate it again where they run."""

    def neg(v):
        return lax.neg(v) if negate else v

    if _one_kernel_pays(x, axes, where):
        # jax.nn's formula as it stands, which XLA:CPU runs as one kernel over many slices; the tie
        # rule's over the slices where it is NaN (fnnet._numerics.one_kernel_pays).
        e, s = _plain_exp_sums(neg(x), axes)
        y = lax.div(e, _keep(s, axes, x.shape))
        return _unless_nan(y, lambda v: _normalize(_shifted(neg(v), axes, None)[2], axes, None), x,
                           probe=_first_entries(y))
    if _branch_pays(x, axes, where):
        e, s = _exp_sums(x, axes, negate=negate)
        return lax.div(e, _keep(s, axes, x.shape))
    return _normalize(_shifted(neg(x), axes, where)[2], axes, where)


def _softmax_forward(x, where=None, axis=-1):
    return _normalized(x, _axes(axis, x.ndim, "fnnet.softmax"), where)


def custom_jvp_flag() -> bool:
    """jax's ``jax_softmax_custom_jvp`` flag as it stands where the rule is traced (jax.jit keys its
    cache on it, so a compiled call follows a change of the flag)."""
    return bool(jax.config.jax_softmax_custom_jvp)


def _rule_exps(x, axes, where, negate=False):
    """``(e, S)`` for a rule that keeps them or their quotient: e = exp(x − m) by the tie rule and
    S = Σe with the reduced axes kept (size 1). Over many short slices the forward alone's branch
    (fnnet._numerics.rule_branch_pays; over long slices it saved a few per cent under a gradient and
    cost a third more compile time); elsewhere the selects, or over short slices the arithmetic shift
    (shift_form). ``negate``: of −x (softmin), the negation inside the kernels, never written."""
    if _rule_branch_pays(x, axes, where):
        e, s = _exp_sums(x, axes, negate=negate)
    else:
        e = _shifted(lax.neg(x) if negate else x, axes, where, form=_shift_form(x, axes))[2]
        s = _slice_sums(e, axes, where)
    return e, lax.expand_dims(s, axes)


def _softmax_fwd(x, where=None, axis=-1):
    # Two hand-written rules, chosen as jax.nn.softmax chooses by jax's softmax_custom_jvp flag, each
    # keeping what jax.nn keeps under that setting:
    # - True: the Jacobian's own rule y ⊙ (g − ⟨g, y⟩), from the output alone (n numbers per slice);
    # - False (jax's default through 0.11): backprop through the formula's graph y = e/S, S = Σe,
    #   e = exp(x − m) (the maximum m is a constant: softmax is shift invariant), which keeps e and
    #   the quotient rule's S and S⁻² (n + 2 numbers per slice), as jax.grad of jax.nn's formula does.
    e, s = _rule_exps(x, _axes(axis, x.ndim, "fnnet.softmax"), where)
    if custom_jvp_flag():
        y = lax.div(e, s)
        return y, y
    return lax.div(e, s), (e, s, lax.integer_pow(s, -2))


def _softmax_bwd(res, g, where=None, axis=-1):
    # g is masked so that a non-finite cotangent at a masked entry (y = 0 there) cannot leak.
    gm = _masked(g, where)
    if not isinstance(res, tuple):
        return (_softmax_vjp(res, gm, _axes(axis, res.ndim, "fnnet.softmax")),)
    # Topological order, y = e·S⁻¹ backwards: ∂y/∂e = 1/S gives g/S; ∂y/∂S = −e/S² gives the slice's
    # −Σ g·e/S², which S = Σe fans back out to every e and adds (accumulation at fan-out); e = exp(·)
    # multiplies by e. Size-1 axes broadcast as jnp's operators do.
    e, s, s_m2 = res
    axes = _axes(axis, e.ndim, "fnnet.softmax")
    ds = -jnp.sum((gm * s_m2) * e, axis=axes, keepdims=True)
    return ((gm / s + ds) * e,)


def _softmax_jvp(primals, tangents, out, where=None, axis=-1):
    axes = _axes(axis, out.ndim, "fnnet.softmax")
    return _softmax_vjp(out, _masked(tangents[0], where), axes)  # J is symmetric


def _softmax_reference(x, axis=-1, where=None):
    """Plain jnp, as jax.nn writes it: exp(x − max) / Σ exp(x − max)."""
    m = jax.lax.stop_gradient(jnp.max(x, axis, keepdims=True, where=where, initial=-jnp.inf))
    e = jnp.exp(x - m)
    if where is not None:
        e = jnp.where(where, e, 0.0)
    return e / jnp.sum(e, axis, keepdims=True)


def _validate_axis(fname):
    def validate(x, axis=-1, **_):
        _axes(axis, x.ndim, fname)

    return validate


softmax = define(
    "softmax",
    forward=_softmax_forward, fwd=_softmax_fwd, bwd=_softmax_bwd, jvp=_softmax_jvp,
    reference=_softmax_reference, arg_names=("x",), static={"axis": -1, "where": None},
    traced=("where",), convert=_mask_convert("fnnet.softmax"), validate=_validate_axis("fnnet.softmax"),
    sample=_sample_normal(), variants=({"axis": -1}, {"axis": 0}, {"axis": None}),
    derivation="∂y_i/∂x_j = y_i(δ_ij − y_j) ⇒ Jᵀg = y ⊙ (g − ⟨g, y⟩)",
    doc=r"""Softmax :math:`y_i = e^{x_i} / Σ_j e^{x_j}` over ``axis`` (jax.nn.softmax's signature).

Arguments:
  x: floating array. axis: int, tuple of ints or None (all axes); static.
  where: optional boolean mask broadcastable to ``x``; masked entries take no part and give 0.

Returns:
  An array of ``x``'s shape and dtype; each slice sums to 1 (0 for a fully masked slice).

Derivative: :math:`∂y_i/∂x_j = y_i(δ_{ij} − y_j)`; VJP :math:`y ⊙ (g − ⟨g, y⟩)`, JVP the same with
``t`` (the Jacobian is symmetric). Like jax.nn.softmax, the backward pass follows jax's
``jax_softmax_custom_jvp`` flag: False (jax's default) backpropagates through ``e / Σe`` and keeps
``e``, ``Σe`` and ``(Σe)⁻²``; True keeps ``y`` alone. Computed as ``exp(x − max) / Σ``; entries
equal to an infinite maximum share the mass (jax.nn gives NaN there): ``softmax([1, inf]) = [0, 1]``.
""",
).fn


# ---------------------------------------------------------------------------------------------
# log_softmax
# ---------------------------------------------------------------------------------------------


def _log_softmax_parts(x, where, axis, apart=False):
    """``(out, e, axes)``: out = (x − m) − log Σe, e = exp(x − m) (0 where masked). ``apart``: the
    shifted value x − m is formed a second time for ``out`` (``shifted_apart``: the same bits), for a
    rule that keeps ``e``, where that pays (``apart_pays``)."""
    axes = _axes(axis, x.ndim, "fnnet.log_softmax")
    m, shifted, e = _shifted(x, axes, where)  # the selects: see fnnet._numerics.arith_pays
    if apart and _apart_pays(x, axes):
        shifted = _shifted_apart(x, m, axes)
    out = lax.sub(shifted, _keep(lax.log(_reduce_sum(e, axes)), axes, x.shape))
    if where is not None:
        out = jnp.where(where, out, -jnp.inf)
    return out, e, axes


def _log_softmax_plain(x, axes):
    """``(out, s)``: jax.nn's formula, out = (x − m) − log s with s = Σ e^{x − m}. ``out`` is NaN over
    exactly the slices whose s is NaN (a maximum of ±inf, or a NaN in the slice); elsewhere
    :func:`_log_softmax_parts`' output up to rounding (the same operations, but the sum may be
    formed by another kernel)."""
    m = lax.reduce_max(x, axes)
    shifted = lax.sub(x, _keep(m, axes, x.shape))
    s = lax.reduce_sum(lax.exp(shifted), axes)
    return lax.sub(shifted, _keep(lax.log(s), axes, x.shape)), s


def _log_softmax_forward(x, where=None, axis=-1):
    # Evaluated without gradient where it pays on XLA:CPU: jax.nn's formula, and the tie rule's only
    # over the slices where it gives NaN, run only if there are any (fnnet._numerics.log_branch_pays,
    # unless_nan).
    axes = _axes(axis, x.ndim, "fnnet.log_softmax")
    if _one_kernel_pays(x, axes, where):  # jax.nn's formula as one kernel (fnnet._numerics.one_kernel_pays)
        out = _log_softmax_plain(x, axes)[0]
        return _unless_nan(out, lambda v: _log_softmax_parts(v, None, axis)[0], x, probe=_first_entries(out))
    if _log_branch_pays(x, where):
        out, s = _log_softmax_plain(x, axes)
        return _unless_nan(out, lambda v: _log_softmax_parts(v, None, axis)[0], x, probe=s)
    return _log_softmax_parts(x, where, axis)[0]


def _log_softmax_fwd(x, where=None, axis=-1):
    # The residual is e, not y = e/S: the backward divides once per slice (Σg/S) and multiplies per
    # entry, where forming y divided per entry (XLA:CPU, jit of value_and_grad at 2²⁰: 1.14–1.21×
    # jax.nn's → 1.10×). JAX hoists S = Σe, which the backward reads, into the forward and keeps it
    # beside e: one number per slice more than y, as jax.grad of jax.nn.log_softmax keeps.
    # x − m is formed apart from the e = exp(x − m) kept here, so that XLA:CPU writes e from x in one
    # loop and forms x − m again where out is used, instead of writing x − m and reading it back for
    # the exponential (jit(value_and_grad) of sum(log_softmax(x)·w) at 2²⁰ on XLA:CPU: 2–3 % faster,
    # 0.970–0.980× the single form in one process, three runs of 300 rounds; the same bits).
    # The forward alone keeps the single shifted value: there e is summed inside the reduction's
    # kernel and never written, and forming x − m twice was slower (1.24× jax.nn's against 1.09×).
    # Made on the CPU backend only, where it was measured, from 2¹⁴ entries on and over slices longer
    # than 40 entries (apart_pays).
    out, e, _ = _log_softmax_parts(x, where, axis, apart=True)
    return out, e


def _log_softmax_bwd(e, g, where=None, axis=-1):
    axes = _axes(axis, e.ndim, "fnnet.log_softmax")
    gm = _masked(g, where)  # a masked output is the constant −inf: its cotangent is dropped
    t = lax.div(_reduce_sum(gm, axes), _slice_sums(e, axes, where))  # Σg/S per slice
    return (lax.sub(gm, lax.mul(e, _keep(t, axes, e.shape))),)


def _log_softmax_jvp(primals, tangents, out, where=None, axis=-1):
    x = primals[0]
    axes = _axes(axis, x.ndim, "fnnet.log_softmax")
    y = _normalize(_shifted(x, axes, where)[2], axes, where)
    t = _masked(tangents[0], where)
    return _masked(t - jnp.sum(t * y, axis=axes, keepdims=True), where)


def _log_softmax_reference(x, axis=-1, where=None):
    """Plain jnp, as jax.nn writes it: (x − max) − log Σ exp(x − max)."""
    m = jax.lax.stop_gradient(jnp.max(x, axis, keepdims=True, where=where, initial=-jnp.inf))
    shifted = x - m
    e = jnp.exp(shifted)
    if where is not None:
        e = jnp.where(where, e, 0.0)
    out = shifted - jnp.log(jnp.sum(e, axis, keepdims=True))
    return out if where is None else jnp.where(where, out, -jnp.inf)


log_softmax = define(
    "log_softmax",
    forward=_log_softmax_forward, fwd=_log_softmax_fwd, bwd=_log_softmax_bwd, jvp=_log_softmax_jvp,
    reference=_log_softmax_reference, arg_names=("x",), static={"axis": -1, "where": None},
    traced=("where",), convert=_mask_convert("fnnet.log_softmax"),
    validate=_validate_axis("fnnet.log_softmax"),
    sample=_sample_normal(), variants=({"axis": -1}, {"axis": 0}, {"axis": None}),
    derivation="o = x − lse(x) ⇒ ∂o_i/∂x_j = δ_ij − y_j ⇒ Jᵀg = g − y·Σg",
    doc=r"""Log-softmax :math:`x_i − \log Σ_j e^{x_j}` over ``axis`` (jax.nn's signature).

Arguments:
  x: floating array. axis: int, tuple of ints or None; static.
  where: optional boolean mask; masked entries give ``−inf`` and zero gradient.

Returns:
  An array of ``x``'s shape and dtype.

Derivative: :math:`∂o_i/∂x_j = δ_{ij} − y_j` with y = softmax(x); VJP :math:`g − y·Σg`, JVP
:math:`t − ⟨t, y⟩`. Computed as ``(x − m) − log Σ e^{x − m}``, never as ``log(softmax)`` (which is
``−inf`` once a probability underflows): ``log_softmax([0, -1e4]) = [0, -1e4]``.
""",
).fn


# ---------------------------------------------------------------------------------------------
# logsumexp
# ---------------------------------------------------------------------------------------------


def _lse_parts(a, b, where, axis, keeps_e=False):
    """``(m, S, p, axes)`` with w = e^{a−m}: S = Σ b·w (b = 1 if absent) over the included entries and
    p = b·w/S (∂out/∂a). Entries with b = 0 are excluded from the maximum and the sum, as in jax.nn
    (so ``a = inf`` there cannot poison the value). ``keeps_e``: the rule, which keeps p, forms the shift
    in :func:`fnnet._numerics.shift_form`'s form (the forward alone in the selects)."""
    axes = _axes(axis, a.ndim, "fnnet.logsumexp")
    eff = where
    if b is not None:
        nz = jnp.broadcast_to(b != 0, a.shape)
        eff = nz if where is None else (where & nz)
    m, shifted, e = _shifted(a, axes, eff, form=_shift_form(a, axes) if keeps_e else "select")
    p = e if b is None else jnp.where(eff, b * e, 0.0)
    s = lax.expand_dims(_reduce_sum(p, axes), axes)
    if b is not None:
        # ∂out/∂b_j = w_j/S holds at b_j = 0 too (jax.nn gives 0 there). b has no hand rule (autodiff
        # of this forward differentiates it), so the excluded entries enter S as (b − b̄)·w_j with b̄ =
        # stop_gradient(b): exactly 0 in value, w_j in derivative (w_j = 0 where it would overflow).
        w0 = jnp.exp(jnp.where(eff, -jnp.inf, jnp.where(jnp.isfinite(m), a - m, -jnp.inf)))
        w0 = jnp.where(jnp.isfinite(w0), w0, 0.0)
        if where is not None:
            w0 = jnp.where(where, w0, 0.0)
        s = s + jnp.sum((b - lax.stop_gradient(b)) * w0, axis=axes, keepdims=True)
    if eff is not None:
        # An empty slice has S = 0 and every w = 0: divide by 1 so its gradient is 0, as in jax.nn.
        # (A slice whose b-weighted terms cancel keeps S = 0: out = −inf, an infinite gradient.)
        s_div = jnp.where(~jnp.any(eff, axis=axes, keepdims=True), 1.0, s)
    else:
        s_div = s
    return m, s, lax.div(p, lax.broadcast_in_dim(s_div, p.shape, tuple(range(p.ndim)))), axes


def _lse_values(m, s, axes, keepdims, return_sign, has_b):
    # An empty (or fully masked) slice has m = −inf (the initial value) and S = 0: −inf, as jax.nn.
    out = lax.add(m, lax.log(lax.abs(s)))
    sign = lax.sign(s)
    if has_b and not return_sign:
        out = jnp.where(s < 0, jnp.nan, out)  # log of a negative sum: NaN unless the sign is asked for
    if not keepdims:
        out, sign = lax.squeeze(out, axes), lax.squeeze(sign, axes)
    return (out, sign) if return_sign else out


def _lse_forward(a, b=None, where=None, axis=None, keepdims=False, return_sign=False):
    if b is None and where is None and not return_sign:
        # The value alone needs no tie sharing at an infinite maximum (that is for the gradient, p):
        # shifting by the maximum where it is finite and by 0 elsewhere gives the same values (a
        # finite maximum: the same x − m; +inf: log Σe^x = +inf; all −inf or empty: log 0 = −inf, as
        # m + log(count) is; a NaN stays NaN) without _shifted's per-entry select, which kept XLA:CPU
        # from fusing the maximum with the exponential (jit of logsumexp alone: 1.19–1.27× jax.nn's
        # time before, 1.00 after).
        axes = _axes(axis, a.ndim, "fnnet.logsumexp")
        m = lax.reduce_max(a, axes) if axes else a
        m = lax.select(lax.is_finite(m), m, lax.full_like(m, 0))
        s = _reduce_sum(lax.exp(lax.sub(a, _keep(m, axes, a.shape))), axes)
        out = lax.add(m, lax.log(s))
        return lax.expand_dims(out, axes) if keepdims else out
    m, s, _, axes = _lse_parts(a, b, where, axis)
    return _lse_values(m, s, axes, keepdims, return_sign, b is not None)


def _lse_fwd(a, b=None, where=None, axis=None, keepdims=False, return_sign=False):
    # p is kept. Over slices of at most 24 entries (no b, no mask), jax.nn's exp(a − max) and sums
    # behind the tie rule's branch, as softmax's rule (fnnet._numerics.lse_rule_branch_pays); elsewhere
    # over short slices the shift is formed arithmetically (_numerics.arith_pays).
    if b is None and where is None:
        axes = _axes(axis, a.ndim, "fnnet.logsumexp")
        if _lse_rule_branch_pays(a, axes, where):
            e, s = _exp_sums(a, axes)
            m = lax.expand_dims(lax.reduce_max(a, axes), axes)
            s = lax.expand_dims(s, axes)
            return _lse_values(m, s, axes, keepdims, return_sign, False), lax.div(e, s)
    m, s, p, axes = _lse_parts(a, b, where, axis, keeps_e=True)
    return _lse_values(m, s, axes, keepdims, return_sign, b is not None), p


def _lse_bwd(p, g, b=None, where=None, axis=None, keepdims=False, return_sign=False):
    axes = _axes(axis, p.ndim, "fnnet.logsumexp")
    if return_sign:
        g = g[0]  # the sign is piecewise constant: its cotangent contributes nothing
    gk = g if keepdims else lax.expand_dims(g, axes)
    return (lax.mul(lax.broadcast_in_dim(gk, p.shape, tuple(range(p.ndim))), p),)


def _lse_jvp(primals, tangents, out, b=None, where=None, axis=None, keepdims=False, return_sign=False):
    _, _, p, axes = _lse_parts(primals[0], b, where, axis)
    t = jnp.sum(p * tangents[0], axis=axes, keepdims=keepdims)
    return (t, jnp.zeros_like(out[1])) if return_sign else t


def _lse_reference(a, axis=None, b=None, keepdims=False, return_sign=False, where=None):
    """Plain jnp: m + log Σ b·exp(a − m), the maximum m held constant (it cancels mathematically)."""
    m = jax.lax.stop_gradient(jnp.max(a, axis, keepdims=True, where=where, initial=-jnp.inf))
    m = jnp.where(jnp.isfinite(m), m, 0.0)
    terms = jnp.exp(a - m) if b is None else b * jnp.exp(a - m)
    s = jnp.sum(terms, axis, keepdims=True, where=where)
    out = m + jnp.log(jnp.abs(s))
    sign = jnp.sign(s)
    if not keepdims:
        out, sign = jnp.squeeze(out, axis), jnp.squeeze(sign, axis)
    if return_sign:
        return out, sign
    return out if b is None else jnp.where(sign < 0, jnp.nan, out)


def _lse_convert(arrays, aux, static):
    """``b`` in ``a``'s dtype; where ``b`` is larger than ``a``, ``a`` is broadcast first (the
    broadcast's transpose sums its cotangent back)."""
    (a,) = arrays
    b = aux.get("b")
    if b is not None:
        b = jnp.asarray(b)
        if not jnp.issubdtype(b.dtype, jnp.number) or jnp.issubdtype(b.dtype, jnp.complexfloating):
            raise TypeError(f"fnnet.logsumexp: 'b' must be a real array; got dtype {b.dtype}")
        dtype = common_dtype("fnnet.logsumexp", a, b, "'a'", "'b'")
        a, _ = broadcast_pair("fnnet.logsumexp", a.astype(dtype), b, "'a'", "'b'")
        aux = {**aux, "b": b.astype(dtype)}
    return _mask_convert("fnnet.logsumexp")((a,), aux, static)


def _validate_lse(a, b=None, where=None, axis=None, keepdims=False, return_sign=False):
    _axes(axis, a.ndim, "fnnet.logsumexp")
    if not isinstance(keepdims, bool) or not isinstance(return_sign, bool):
        raise TypeError(
            f"fnnet.logsumexp: keepdims and return_sign must be bools; got {keepdims!r}, {return_sign!r}"
        )


logsumexp = define(
    "logsumexp",
    forward=_lse_forward, fwd=_lse_fwd, bwd=_lse_bwd, jvp=_lse_jvp,
    reference=_lse_reference, arg_names=("a",),
    static={"axis": None, "b": None, "keepdims": False, "return_sign": False, "where": None},
    traced=("b", "where"), convert=_lse_convert, validate=_validate_lse, sample=_sample_normal(),
    variants=({"axis": None}, {"axis": -1}, {"axis": 0, "keepdims": True}),
    derivation="∂/∂a_i log Σ e^{a_j} = e^{a_i}/Σ e^{a_j} = softmax(a)_i",
    doc=r"""Log-sum-exp :math:`\log Σ_i b_i e^{a_i}` over ``axis`` (jax.nn.logsumexp's signature).

Arguments:
  a: floating array. axis: int, tuple of ints or None (all axes; the default); static.
  b: optional weights broadcastable with ``a``; entries with ``b = 0`` are excluded (as in jax.nn).
  keepdims: keep the reduced axes with size 1; static.
  return_sign: return ``(log|Σ b e^a|, sign(Σ b e^a))``; without it a negative sum gives NaN.
  where: optional boolean mask; masked entries take no part (an empty slice gives ``−inf``).

Returns:
  ``a`` reduced over ``axis`` (or the pair with ``return_sign``).

Derivative: with :math:`w_i = e^{a_i − m}` and :math:`S = Σ b_i w_i`, the hand rule gives
:math:`∂/∂a_i = b_i w_i / S` (softmax(a) when b is absent). ``b`` is not covered by the hand rule: its
derivative :math:`w_i / S` comes from autodiff of the forward (0 where b_i = 0, as in jax.nn). The
sign's cotangent is ignored (it is piecewise constant). ``logsumexp([1, inf]) = inf`` with gradient
``[0, 1]`` (jax.nn: ``[0, nan]``).
""",
).fn


# ---------------------------------------------------------------------------------------------
# logmeanexp
# ---------------------------------------------------------------------------------------------


def _log_count(x, where, axis, keepdims, dtype):
    """log n per slice: n the entries over ``axis`` (those where ``where`` is True), in ``dtype``."""
    return jnp.log(_slice_count(x, _axes(axis, x.ndim, "fnnet.logmeanexp"), where, dtype, keepdims))


def _lme_forward(x, axis=None, where=None, keepdims=False):
    out = _lse_forward(x, None, where, axis, keepdims)
    return jnp.subtract(out, _log_count(x, where, axis, keepdims, out.dtype))


def _lme_fwd(x, axis=None, where=None, keepdims=False):
    # logsumexp's rule: subtracting the constant log n changes no derivative (the gradient is the
    # softmax over the included entries), so the residual is logsumexp's p.
    out, p = _lse_fwd(x, None, where, axis, keepdims)
    return jnp.subtract(out, _log_count(x, where, axis, keepdims, out.dtype)), p


def _lme_bwd(p, g, axis=None, where=None, keepdims=False):
    return _lse_bwd(p, g, None, where, axis, keepdims)


def _lme_jvp(primals, tangents, out, axis=None, where=None, keepdims=False):
    return _lse_jvp(primals, tangents, out, None, where, axis, keepdims)


def _lme_reference(x, axis=None, where=None, keepdims=False):
    """Plain jnp: m + log mean exp(x − m), the maximum m held constant (it cancels mathematically)."""
    m = jax.lax.stop_gradient(jnp.max(x, axis, keepdims=True, where=where, initial=-jnp.inf))
    m = jnp.where(jnp.isfinite(m), m, 0.0)
    out = m + jnp.log(jnp.mean(jnp.exp(x - m), axis, keepdims=True, where=where))
    return out if keepdims else jnp.squeeze(out, axis)


def _validate_lme(x, axis=None, where=None, keepdims=False):
    _axes(axis, x.ndim, "fnnet.logmeanexp")
    if not isinstance(keepdims, bool):
        raise TypeError(f"fnnet.logmeanexp: keepdims must be a bool; got {keepdims!r}")


logmeanexp = define(
    "logmeanexp",
    forward=_lme_forward, fwd=_lme_fwd, bwd=_lme_bwd, jvp=_lme_jvp,
    reference=_lme_reference, arg_names=("x",),
    static={"axis": None, "where": None, "keepdims": False},
    traced=("where",), convert=_mask_convert("fnnet.logmeanexp"), validate=_validate_lme,
    sample=_sample_normal(), variants=({"axis": None}, {"axis": -1}, {"axis": 0, "keepdims": True}),
    derivation="logmeanexp = logsumexp − log n ⇒ ∂/∂x_i = e^{x_i}/Σ e^{x_j} = softmax(x)_i",
    doc=r"""Log-mean-exp :math:`\log \frac{1}{n} Σ_i e^{x_i}` = logsumexp(x) − log n over ``axis``
(jax.nn.logmeanexp's signature).

Arguments:
  x: floating array. axis: int, tuple of ints or None (all axes; the default); static.
  where: optional boolean mask; n counts the included entries only. keepdims: static.

Returns:
  ``x`` reduced over ``axis``. A fully masked slice is NaN, the mean of no entries (jax.nn's value),
  with zero gradient.

Derivative: softmax(x) over the included entries (logsumexp's; log n is a constant), 0 at masked
entries. Computed as ``logsumexp(x) − log n``: the maximum is subtracted before the exponential, so
large entries do not overflow (``logmeanexp([1e4, 1e4]) = 1e4``).
""",
).fn


# ---------------------------------------------------------------------------------------------
# softmin (torch)
# ---------------------------------------------------------------------------------------------


def _softmin_axes(x, dim):
    if dim is None:
        # torch's legacy implicit dim: 0 for ndim 0, 1 or 3, else 1. Accepted only where that is the
        # last axis (ndim ≤ 2), so fnnet never silently differs from torch; validate() refuses the rest.
        return tuple(range(x.ndim))[-1:]
    return _axes(dim, x.ndim, "fnnet.softmin")


def _validate_softmin(x, dim=None):
    if dim is None:
        if x.ndim > 2:
            raise ValueError(
                f"fnnet.softmin: dim=None is ambiguous for an input with ndim {x.ndim} (torch's deprecated "
                "implicit choice is 0 for ndim 3 and 1 otherwise); pass dim explicitly"
            )
        return
    if isinstance(dim, tuple):
        raise TypeError(f"fnnet.softmin: dim must be an int or None (torch's signature); got {dim!r}")
    _axes(dim, x.ndim, "fnnet.softmin")


def _softmin_forward(x, *, dim=None):
    axes = _softmin_axes(x, dim)
    return _normalized(x, axes, None, negate=True)


def _softmin_fwd(x, *, dim=None):
    # softmax's rule with jax's custom-JVP flag set (it keeps y), of −x (_rule_exps). Taking the
    # forward's own path here instead (its branches from 256 KiB on at any slice length, the selects
    # below) compiled in 1.32× jax.nn.softmax(−x)'s time at 2²⁰ in rows of 1024, and ran 1.40–1.56×
    # at 256 × 10.
    y = lax.div(*_rule_exps(x, _softmin_axes(x, dim), None, negate=True))
    return y, y


def _softmin_bwd(y, g, *, dim=None):
    return (-_softmax_vjp(y, g, _softmin_axes(y, dim)),)


def _softmin_jvp(primals, tangents, out, *, dim=None):
    return -_softmax_vjp(out, tangents[0], _softmin_axes(out, dim))


def _softmin_reference(x, dim=None):
    axis = -1 if dim is None else dim
    e = jnp.exp(-x - jax.lax.stop_gradient(jnp.max(-x, axis, keepdims=True)))
    return e / jnp.sum(e, axis, keepdims=True)


softmin = define(
    "softmin",
    forward=_softmin_forward, fwd=_softmin_fwd, bwd=_softmin_bwd, jvp=_softmin_jvp,
    reference=_softmin_reference, arg_names=("input",), static={"dim": None},
    validate=_validate_softmin, sample=_sample_normal(), variants=({"dim": None}, {"dim": 0}),
    derivation="softmin(x) = softmax(−x) ⇒ Jᵀg = −y ⊙ (g − ⟨g, y⟩)",
    doc=r"""torch's Softmin :math:`y_i = e^{−x_i}/Σ_j e^{−x_j}` = softmax(−x) over ``dim``.

Arguments:
  input: floating array. dim: int or None; static. ``dim=None`` means the last axis and is accepted
    only for inputs of ndim ≤ 2, where torch's deprecated implicit choice is that axis too; for
    ndim ≥ 3 it raises ValueError (torch would pick 0 for 3-D, 1 for 4-D+): pass ``dim``.

Returns:
  An array of the input's shape and dtype. Derivative: VJP :math:`−y ⊙ (g − ⟨g, y⟩)`.
""",
).fn
