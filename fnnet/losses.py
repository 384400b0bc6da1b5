r"""Losses with hand-written rules, with optax's signatures and semantics: one value per example, no
reduction.

============================================= ===================================== =============================
loss                                          value (per example)                   VJP (cotangent ``g``)
============================================= ===================================== =============================
``softmax_cross_entropy(logits, labels)``     :math:`−Σ_c y_c \log\operatorname{softmax}(z)_c`  :math:`∂z = g·(p·Σy − y)`, :math:`∂y = −g·\log p`
``softmax_cross_entropy_with_integer_labels`` :math:`\operatorname{lse}(z) − z_k`    :math:`∂z = g·(p − e_k)`
``sigmoid_binary_cross_entropy``              :math:`y·\operatorname{sp}(−z) + (1−y)·\operatorname{sp}(z)`  :math:`∂z = g·(σ(z) − y)`, :math:`∂y = −g·z`
``squared_error(predictions, targets=None)``  :math:`(p − t)^2` elementwise          :math:`∂p = 2g(p − t)`
``l2_loss(predictions, targets=None)``        :math:`\frac12 (p − t)^2` elementwise  :math:`∂p = g(p − t)`
``huber_loss(predictions, targets=None)``     ½e² / δ(|e| − ½δ), e = p − t          :math:`∂p = g·\operatorname{clip}(e, −δ, δ)`
``log_cosh(predictions, targets=None)``       :math:`\log\cosh(p − t)` elementwise   :math:`∂p = g·\tanh(p − t)`
``hinge_loss(predictor_outputs, targets)``    :math:`\max(0, 1 − p·t)` elementwise      :math:`∂p = −g·t·[1 − p·t > 0]` (½ at 0)
``perceptron_loss``                           :math:`\max(0, −p·t)` elementwise       :math:`∂p = −g·t·[−p·t > 0]` (½ at 0)
``multiclass_hinge_loss(scores, labels)``     :math:`\max_j (s_j + 1 − [j = k]) − s_k`   :math:`∂s = g·(1_{\arg\max}/n_{\max} − e_k)`
``multiclass_perceptron_loss(scores, labels)`` :math:`\max_j s_j − s_k`                 :math:`∂s = g·(1_{\arg\max}/n_{\max} − e_k)`
``cosine_similarity(predictions, targets)``   :math:`s = Σ â·b̂` over ``axis``          :math:`∂a = g·(b̂ − s·â)/‖a‖`
``cosine_distance(predictions, targets)``     :math:`1 − s`                          the negative
``kl_divergence(log_predictions, targets)``   :math:`Σ t(\log t − lp)` over ``axis``    :math:`∂lp = −g·t`, :math:`∂t = g·(\log t − lp + 1)`
``kl_divergence_with_log_targets``            :math:`Σ e^{lt}(lt − lp)` over ``axis``    :math:`∂lp = −g·e^{lt}`, :math:`∂lt = g·e^{lt}(lt − lp + 1)`
``generalized_kl_divergence``                 KL + :math:`Σ e^{lp} − t` over ``axis``     :math:`∂lp = g·(e^{lp} − t)`, :math:`∂t = g·(\log t − lp)`
``mse(predictions, targets)``                 :math:`\frac1n Σ_i (p_i − t_i)^2` over the last axis  :math:`∂p = g·\frac2n(p − t) = −∂t`
============================================= ===================================== =============================

(p = softmax(z) over the class axes, sp = softplus, e_k the one-hot of class k; in the softmax losses
``g`` has the batch shape and is broadcast over the class axes.) When the labels of a softmax
cross-entropy sum to 1 its logit gradient is the familiar :math:`p − y`; fnnet writes
:math:`p·Σy − y`, which is the exact derivative for any labels.

Every loss is one declared primitive (:func:`fnnet.primitive.define`): a jitted ``jax.custom_jvp``
whose reverse mode runs the hand VJP above and whose forward mode is its transpose. Integer labels and
``where`` masks are traced parameters without a derivative; ``targets`` of ``squared_error``,
``l2_loss``, ``huber_loss`` and ``log_cosh`` is a traced parameter too (it may be omitted), whose
derivative :math:`−∂p` comes from autodiff of the forward, as does huber_loss's ``delta``'s.

**Promotion and broadcasting** happen before the primitive, while tracing: labels (targets) and
logits (predictions) are cast to their common dtype as ``jax.numpy`` promotes them (bfloat16 logits
with float32 labels compute in float32); ``sigmoid_binary_cross_entropy`` casts its labels to the
logits' dtype instead. Shapes broadcast against each other; the transpose of the broadcast sums each
cotangent back to its argument's shape. ``squared_error``/``l2_loss``/``mse`` need equal shapes;
``huber_loss`` and ``log_cosh`` broadcast their targets, as optax's do.

**Stability.** The softmax losses go through log-softmax, ``(z − m) − log Σ e^{z − m}``, never
``log(softmax)``: logits of ±1e4, ±1e30 or ±max finite give finite losses and gradients. The binary
loss uses softplus (``logaddexp(z, 0)``, its two terms sharing one exponential), so ``z = ±1e30``
gives the exact 0 or |z|. A label of exactly 0 contributes 0 even where its log-probability is −inf
(the convention 0·log 0 = 0):
``softmax_cross_entropy([0, -inf], [1, 0]) = 0``, not NaN.
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from fnnet._checks import axes as _axes
from fnnet._checks import bool_mask, broadcast_pair, broadcasts_to, common_dtype, real_array
from fnnet._numerics import keep as _keep
from fnnet._numerics import normalize as _normalize
from fnnet._numerics import slice_sums as _slice_sums
from fnnet._numerics import shift_entries as _shift_entries
from fnnet._numerics import shifted as _shifted
from fnnet._numerics import apart_pays as _apart_pays
from fnnet._numerics import shift_form as _shift_form
from fnnet._numerics import shifted_apart as _shifted_apart
from fnnet._numerics import loss_branch_pays as _loss_branch_pays
from fnnet._numerics import max_slope as _max_slope
from fnnet._numerics import unless_nan as _unless_nan
from fnnet.activations._smooth import _tanh
from fnnet.primitive import REQUIRED, define, sample_rng, sampled

__all__ = [
    "softmax_cross_entropy",
    "softmax_cross_entropy_with_integer_labels",
    "sigmoid_binary_cross_entropy",
    "squared_error",
    "l2_loss",
    "huber_loss",
    "log_cosh",
    "hinge_loss",
    "perceptron_loss",
    "multiclass_hinge_loss",
    "multiclass_perceptron_loss",
    "cosine_similarity",
    "cosine_distance",
    "kl_divergence",
    "kl_divergence_with_log_targets",
    "generalized_kl_divergence",
    "mse",
]

_SCE = "fnnet.softmax_cross_entropy"
_SCE_INT = "fnnet.softmax_cross_entropy_with_integer_labels"
_BCE = "fnnet.sigmoid_binary_cross_entropy"


# ---------------------------------------------------------------------------------------------
# Shared conversion and validation (run while tracing, before the primitive)
# ---------------------------------------------------------------------------------------------


def _check_has_axis(fname, x, name="logits"):
    if x.ndim < 1:
        raise ValueError(
            f"{fname}: {name} must have at least one axis (the classes); got shape {x.shape}"
        )


def _mask(where, shape, axis, fname):
    """``where`` as a boolean array of ``shape``'s rank (None stays None), as optax reads it: a mask
    with fewer axes than the logits gets the class axes inserted (``jnp.expand_dims(where, axis)``),
    so a per-example mask applies to every class of the example. Idempotent."""
    if where is None:
        return None
    m = bool_mask(where, fname)
    if m.ndim != len(shape):
        n_axes = len(shape) if axis is None else len(axis) if isinstance(axis, tuple) else 1
        if axis is None or m.ndim + n_axes != len(shape):
            raise ValueError(
                f"{fname}: 'where' of shape {m.shape} must have the logits' {len(shape)} axes, or the "
                f"{len(shape) - n_axes} batch axes (the class axes {axis} are then inserted); "
                f"logits shape {tuple(shape)}"
            )
        m = jnp.expand_dims(m, axis)
    broadcasts_to(m, shape, fname, "where", "the logits'")
    return m


def _keepdims(g, shape, axes):
    """A per-example cotangent with the reduced axes put back as size 1 (a reshape: its transpose is a
    reshape too, so reverse mode through the transposed tangent map runs the same operation)."""
    return g.reshape(tuple(1 if i in axes else n for i, n in enumerate(shape)))


def _above_neg_inf(v):
    """``v`` with −inf raised to the most negative finite number of its dtype (NaN stays NaN)."""
    return jnp.maximum(v, jnp.finfo(v.dtype).min)


def _neg_log_capped(logp):
    """−log p with +inf (p = 0) replaced by the largest finite value: the labels' derivative, kept finite
    so that a zero tangent of the labels gives 0 in forward mode, not 0·∞ = NaN."""
    return -_above_neg_inf(logp)


# ---------------------------------------------------------------------------------------------
# softmax_cross_entropy
# ---------------------------------------------------------------------------------------------


def _sce_parts(logits, labels, axis, where, apart=False):
    """(loss, p, y over the included entries, −log p capped and 0 where excluded, axes). ``apart``,
    for the rule, which keeps e = exp(z − m), where that pays (``apart_pays``): the shifted logits
    are formed a second time for the loss (``shifted_apart``: the same bits), and the loss is
    summed as lse·Σy − Σ y·(z − m) (:func:`_sce_sum_apart`)."""
    axes = _axes(axis, logits.ndim, _SCE)
    mask = _mask(where, logits.shape, axis, _SCE)
    m, shifted, e = _shifted(logits, axes, mask)  # the selects, as log_softmax's (_numerics.arith_pays)
    apart = apart and _apart_pays(logits, axes)
    if apart:
        shifted = _shifted_apart(logits, m, axes)
    lse = jnp.log(jnp.sum(e, axis=axes, keepdims=True))
    y_in = labels if mask is None else jnp.where(mask, labels, 0.0)
    if apart:
        loss = _sce_sum_apart(labels, y_in, shifted, lse, mask, axes)
    else:
        keep = labels != 0  # 0·log p = 0, also where log p = −inf
        if mask is not None:
            keep = keep & mask
        loss = -jnp.sum(jnp.where(keep, labels * (shifted - lse), 0.0), axis=axes)
    nlogp = _neg_log_capped(shifted - lse)
    if mask is not None:
        nlogp = jnp.where(mask, nlogp, 0.0)
    return loss, _normalize(e, axes, mask), y_in, nlogp, axes


def _sce_sum_apart(labels, y_in, shifted, lse, mask, axes):
    """The loss −Σ y·(s − lse) (s = z − m, lse = log Σe, reduced axes kept) written as
    lse·Σy − Σ y·s. s ≤ 0 ≤ lse, so neither form cancels and each is within (n + 1)·u·Σ|y|(|s| + lse)
    of the exact sum (n roundings in the sums, one in each product; u the unit roundoff). Σy per
    example is then a value of the forward, which the gradient p·Σy − y reads: XLA:CPU forms it
    once, by itself, and the gradient becomes an elementwise loop split over the cores, where the sum
    formed inside the gradient's kernel (its only consumer) kept that kernel whole. jit(value_and_grad)
    against optax's, this form against the per-entry one, one process, interleaved (a script outside
    the repository): 64 × 1024 0.96 against 1.04–1.17, 1024 × 1024 0.72–0.81 against 0.84–0.93,
    128 × 512 0.81–0.84 against 1.10–1.21, 8192 × 128 0.73 against 0.94–0.95, 256 × 64 0.93–0.94
    against 1.01, 4096 × 1000 0.92–0.99 against 0.95–0.96; the medians of five runs:
    docs/reference/performance_dropin.md, "Softmax cross-entropy: the label sum". Over short slices
    the extra sum costs more than it saves (taken at every size, 256 × 10 went to 1.45, the forward
    alone to 2.69), hence the rule's gate (``apart_pays``). Left out of Σ y·s: a label 0 (0·log 0 =
    0, also where s = −inf) and s = 0, which adds nothing but 0·∞ = NaN at an infinite label (there
    −y·(0 − lse) gives ±∞ through lse·Σy, as the other form gives). A label sum of 0 adds 0, also
    where lse is not finite (a fully masked example, lse = −inf; a NaN logit beside labels all 0,
    whose loss is 0 in the other form too)."""
    sy = jnp.sum(y_in, axis=axes, keepdims=True)
    keep = (labels != 0) & (shifted != 0)
    if mask is not None:
        keep = keep & mask
    lse_y = jnp.where(sy == 0, jnp.zeros_like(sy), lse * sy)
    return jnp.squeeze(lse_y, axes) - jnp.sum(jnp.where(keep, labels * shifted, 0.0), axis=axes)


def _sce_plain(logits, labels, axes):
    """optax's formula, −Σ y·((z − m) − log Σ e^{z − m}), without the tie rule (an infinite maximum
    gives NaN) or 0·log 0 = 0 (a label 0 at a logit −inf gives NaN): wherever neither matters,
    :func:`_sce_parts`'s loss up to rounding (the same operations, but the exponentials' sum may
    be formed by another kernel)."""
    m = lax.reduce_max(logits, axes)
    shifted = lax.sub(logits, _keep(m, axes, logits.shape))
    # jnp.sum, as _sce_parts sums: float16 and bfloat16 accumulate in float32 (lax.reduce_sum would
    # accumulate in the input's precision, n·u apart from the exact formula's).
    lse = lax.log(jnp.sum(lax.exp(shifted), axis=axes))
    logp = lax.sub(shifted, _keep(lse, axes, logits.shape))
    return lax.neg(jnp.sum(lax.mul(labels, logp), axis=axes))


def _sce_forward(logits, labels, axis=-1, where=None):
    # Evaluated without gradient over large logits on XLA:CPU: the plain formula, and the exact one
    # for the examples where the plain one gives NaN, run only if there are any
    # (fnnet._numerics.loss_branch_pays, unless_nan).
    if _loss_branch_pays(logits, where):
        plain = _sce_plain(logits, labels, _axes(axis, logits.ndim, _SCE))
        return _unless_nan(plain, lambda z, y: _sce_parts(z, y, axis, None)[0], logits, labels)
    return _sce_parts(logits, labels, axis, where)[0]


def _sce_fwd(logits, labels, axis=-1, where=None):
    # As log_softmax's rule (activations/_softmax.py): on XLA:CPU, e is written from the logits in one
    # loop and z − m is formed again inside log p's consumer, instead of writing z − m and reading it
    # back for the exponential: jit(value_and_grad) at 1024 × 1024 0.92–0.96× optax's against
    # 1.09–1.11× (one process, 150 rounds, two runs each); where apart_pays. The
    # forward alone keeps the single form (1.13× against 1.20–1.22×: there e is summed inside the
    # reduction's kernel and never written).
    loss, p, y_in, nlogp, _ = _sce_parts(logits, labels, axis, where, apart=True)
    return loss, (p, y_in, nlogp)


def _sce_bwd(res, g, axis=-1, where=None):
    p, y_in, nlogp = res
    axes = _axes(axis, p.ndim, _SCE)
    ge = _keepdims(g, p.shape, axes)
    d_logits = ge * (p * jnp.sum(y_in, axis=axes, keepdims=True) - y_in)
    return d_logits, ge * nlogp


def _sce_jvp(primals, tangents, out, axis=-1, where=None):
    (logits, labels), (t_logits, t_labels) = primals, tangents
    _, p, y_in, nlogp, axes = _sce_parts(logits, labels, axis, where)
    d_logits = p * jnp.sum(y_in, axis=axes, keepdims=True) - y_in
    return jnp.sum(t_logits * d_logits + t_labels * nlogp, axis=axes)


def _sce_reference(logits, labels, axis=-1, where=None):
    """Plain jnp, optax's formula: −Σ y·log_softmax(z) over the included entries (0·log 0 = 0)."""
    logits, labels = jnp.broadcast_arrays(logits, labels)
    mask = None
    if where is not None:
        mask = jnp.asarray(where)
        if mask.ndim != logits.ndim:
            mask = jnp.expand_dims(mask, axis)
    m = lax.stop_gradient(jnp.max(logits, axis, keepdims=True, where=mask, initial=-jnp.inf))
    m = jnp.where(jnp.isfinite(m), m, 0.0)
    e = jnp.exp(logits - m)
    if mask is not None:
        e = jnp.where(mask, e, 0.0)
    s = jnp.sum(e, axis, keepdims=True)
    logp = logits - m - jnp.log(jnp.where(s == 0, 1.0, s))
    keep = labels != 0 if mask is None else (labels != 0) & mask
    return -jnp.sum(jnp.where(keep, labels * logp, 0.0), axis)


def _sce_convert(arrays, aux, static):
    logits, labels = (jnp.asarray(a) for a in arrays)
    dtype = common_dtype(_SCE, logits, labels, "logits", "labels")
    logits, labels = broadcast_pair(_SCE, logits.astype(dtype), labels.astype(dtype), "logits", "labels")
    _check_has_axis(_SCE, logits)
    axis = static["axis"]
    _axes(axis, logits.ndim, _SCE)
    return [logits, labels], {**aux, "where": _mask(aux.get("where"), logits.shape, axis, _SCE)}


def _sample_logits_probs(key, dtype=jnp.float32, shape=(3, 5), **_):
    rng = sample_rng(key)
    logits = 2.0 * rng.standard_normal(shape)
    z = np.exp(rng.standard_normal(shape))
    return sampled(logits, dtype), sampled(z / z.sum(axis=-1, keepdims=True), dtype)


_T, _F = True, False

softmax_cross_entropy = define(
    "softmax_cross_entropy",
    forward=_sce_forward, fwd=_sce_fwd, bwd=_sce_bwd, jvp=_sce_jvp, reference=_sce_reference,
    arg_names=("logits", "labels"),
    static={"axis": -1, "where": None},
    traced=("where",),
    convert=_sce_convert,
    sample=_sample_logits_probs,
    variants=(
        {},
        {"axis": 0},
        {"axis": (0, 1)},
        # a partly masked row (label mass on a masked class), a fully masked row, a whole row
        {"where": ((_T, _F, _T, _T, _F), (_F,) * 5, (_T,) * 5)},
        {"where": (_T, _F, _T)},  # one flag per example
    ),
    derivation="L = −Σ y·(z − lse z) ⇒ ∂L/∂z = p·Σy − y (p − y for Σy = 1), ∂L/∂y = −log p",
    doc=r"""Softmax cross-entropy :math:`L = −Σ_c y_c \log \operatorname{softmax}(z)_c` over ``axis``.

Args:
  logits: floating array of unnormalised log-probabilities.
  labels: array broadcastable with ``logits``: a distribution over the class axes per example
    (one-hot or soft labels). Promoted with ``logits`` to their common dtype (bfloat16 logits with
    float32 labels compute in float32).
  axis: the class axis or axes (int, tuple of ints, or None for all); static. Default -1.
  where: optional boolean mask of the logits' shape, or of the batch shape (the class axes are then
    inserted, as ``jnp.expand_dims(where, axis)``); masked entries take no part: they are left out
    of the softmax and of the sum. A fully masked example gives 0 with zero gradient.

Returns:
  The loss per example: the broadcast shape of ``logits`` and ``labels`` without the class axes, in
  their common dtype. No reduction.

Raises:
  TypeError: bool or complex input, a non-boolean ``where``, dtypes with no
    implicit promotion (strict promotion mode), or an axis that is not an int/tuple/None.
  ValueError: shapes that do not broadcast, an axis out of range, 0-d logits, or a mask of the wrong
    shape (each message names the shapes).

Derivative: :math:`∂L/∂z = p·Σ_c y_c − y` (= p − y for normalised labels),
:math:`∂L/∂y = −\log p` (both multiplied by ``g`` broadcast over the class axes; 0 at masked
entries). A class with label 0 and logit −inf contributes 0 (not NaN); its label derivative
:math:`−\log 0 = +∞` is represented by the largest finite value.
""",
).fn


# ---------------------------------------------------------------------------------------------
# softmax_cross_entropy_with_integer_labels
# ---------------------------------------------------------------------------------------------


def _class_axes(axis, ndim):
    """(sorted class axes, the same in the order given: a label is a row-major index over them)."""
    axes = _axes(axis, ndim, _SCE_INT)
    if axis is None:
        return axes, axes
    given = axis if isinstance(axis, tuple) else (axis,)
    return axes, tuple(int(a) % ndim for a in given)


def _flatten_classes(x, batch, order):
    """``x`` with the class axes moved last (in ``order``) and flattened into one: (batch..., C)."""
    perm = batch + order
    if perm != tuple(range(x.ndim)):
        x = jnp.transpose(x, perm)
    return x.reshape(x.shape[:len(batch)] + (-1,))


def _unflatten_classes(x, shape, batch, order):
    """The inverse of :func:`_flatten_classes`: back to ``shape``."""
    perm = batch + order
    x = x.reshape(tuple(shape[i] for i in perm))
    if perm != tuple(range(len(shape))):
        x = jnp.transpose(x, tuple(int(i) for i in np.argsort(perm)))
    return x


def _classes_last(logits, axes, order):
    """``(z, red, batch)``: with several class axes the logits with those axes moved last and
    flattened, reduced over the last axis, and the batch axes; with one, the logits themselves,
    reduced over it, and None."""
    if len(order) > 1:
        batch = tuple(i for i in range(logits.ndim) if i not in axes)
        z = _flatten_classes(logits, batch, order)
        return z, (z.ndim - 1,), batch
    return logits, axes, None


def _sce_int_parts(logits, labels, axis, where, keeps_e=False):
    """(loss, p, one-hot, scale, axes, p_k); ``keeps_e``: the rule, which keeps e, forms the shift in
    :func:`fnnet._numerics.shift_form`'s form (the forward alone in the selects). scale is 1, 0 for a
    fully masked example, NaN for a label
    out of range: the loss and its gradient are multiplied by it. p_k is p at the label (the batch
    shape).

    With several class axes the computation runs on the logits with those axes moved last and
    flattened (a label is a row-major index over them), so a tuple ``axis`` gives bit for bit the
    result of the same logits laid out as (batch..., C); p and the one-hot are laid back for the VJP.
    """
    axes, order = _class_axes(axis, logits.ndim)
    labels = jnp.asarray(labels)
    mask = _mask(where, logits.shape, axis, _SCE_INT)
    z, red, batch = _classes_last(logits, axes, order)
    flat = batch is not None
    if flat and mask is not None:
        mask = _flatten_classes(jnp.broadcast_to(mask, logits.shape), batch, order)
    n_classes = math.prod(z.shape[a] for a in red)
    valid = (labels >= 0) & (labels < n_classes)
    lab = jnp.expand_dims(labels, red)
    hot = lax.broadcasted_iota(labels.dtype, z.shape, red[0]) == lab
    m, _, e = _shifted(z, red, mask, form=_shift_form(z, red) if keeps_e else "select")
    s = jnp.sum(e, axis=red)
    # lse − z_k = log Σ e^{z − m} − (z_k − m): no large value is subtracted from another. z_k is
    # gathered (one entry per example, as optax's take_along_axis) and shifted by the same rule as the
    # whole slice: summing it out of a one-hot select over every class wrote and read a logits-sized
    # array (jit fwd+bwd 1.6× optax's). A label out of range reads a clipped class; its loss is made
    # NaN below.
    k = jnp.clip(lab, 0, n_classes - 1)
    z_k = jnp.take_along_axis(z, k, axis=red[0], mode="promise_in_bounds")
    loss = jnp.log(jnp.where(s == 0, 1.0, s)) - jnp.squeeze(_shift_entries(z_k, m), red)
    scale = jnp.where(valid, 1.0, jnp.nan).astype(logits.dtype)
    if mask is not None:
        scale = jnp.where(jnp.any(jnp.broadcast_to(mask, z.shape), axis=red), scale, 0.0)
    loss = jnp.where(scale == 0, 0.0, loss * scale)
    p = _normalize(e, red, mask)
    # p at the label, from e gathered (e is written anyway; gathering from p would write p too): the
    # same division of the same operands as p's entry there. The slice sums are written a second
    # time, not shared with p's: shared, XLA:CPU ran jit(value_and_grad) at 1024 × 1024 and
    # 4096 × 1000 1.04–1.14× and 1.28–1.33× optax's, against 1.00–1.01× and 1.01–1.02× (two runs
    # each, `python -m benchmarks losses --against optax`).
    e_k = jnp.take_along_axis(e, k, axis=red[0], mode="promise_in_bounds")
    p_k = jnp.squeeze(lax.div(e_k, jnp.expand_dims(_slice_sums(e, red, mask), red)), red)
    if flat:
        p = _unflatten_classes(p, logits.shape, batch, order)
        hot = _unflatten_classes(hot, logits.shape, batch, order)
    return loss, p, hot, scale, axes, p_k


def _sce_int_plain(logits, labels, axis):
    """optax's formula in fnnet's order, log Σ e^{z − m} − (z_k − m), without the tie rule (an
    infinite maximum gives NaN); a label out of range gives NaN: wherever the tie rule does not
    matter, :func:`_sce_int_parts`'s loss up to rounding (the same operations, but the exponentials'
    sum may be formed by another kernel)."""
    axes, order = _class_axes(axis, logits.ndim)
    labels = jnp.asarray(labels)
    z, red, _ = _classes_last(logits, axes, order)
    n_classes = math.prod(z.shape[a] for a in red)
    m = lax.reduce_max(z, red)
    s = jnp.sum(lax.exp(lax.sub(z, _keep(m, red, z.shape))), axis=red)  # as _sce_int_parts sums
    k = jnp.clip(jnp.expand_dims(labels, red), 0, n_classes - 1)
    z_k = jnp.squeeze(jnp.take_along_axis(z, k, axis=red[0], mode="promise_in_bounds"), red)
    # A label out of range: NaN on the gathered logit, before the kernel that forms the loss (XLA:CPU
    # then runs the select in the gather's loop, not in one more loop after that kernel).
    z_k = jnp.where((labels >= 0) & (labels < n_classes), z_k, jnp.nan)
    return lax.sub(lax.log(s), lax.sub(z_k, m))


def _sce_int_forward(logits, labels, axis=-1, where=None):
    # As softmax_cross_entropy's forward: the plain formula first over large logits on XLA:CPU.
    if _loss_branch_pays(logits, where):
        plain = _sce_int_plain(logits, labels, axis)
        return _unless_nan(plain, lambda z, k: _sce_int_parts(z, k, axis, None)[0], logits, labels)
    return _sce_int_parts(logits, labels, axis, where)[0]


def _sce_int_fwd(logits, labels, axis=-1, where=None):
    # e is kept (as p): over short slices the shift is formed arithmetically (_numerics.arith_pays).
    loss, p, _, scale, _, p_k = _sce_int_parts(logits, labels, axis, where, keeps_e=True)
    return loss, (p, p_k, scale)


def _sce_int_bwd(res, g, labels=None, axis=-1, where=None):
    # g·(p − e_k), written as g·p everywhere and g·(p_k − 1) set at the label: the values of the
    # product with p − onehot (p − 0 = p; at the label the same subtraction, p_k divided directly
    # where XLA:CPU forms p as e·(1/Σe), so its last bit may differ), kept in that form where
    # g·p − g would cancel as p_k → 1. Set by a scatter, as the transpose of optax's take_along_axis
    # is, not as a one-hot subtraction over every class: with the latter in an MLP's training step
    # XLA:CPU ran the weight gradients' matrix products about twice as long (the step 1.10–1.23×
    # jax.grad's at widths 128 and 512; with the scatter 0.98–1.02×).
    p, p_k, scale = res
    axes, order = _class_axes(axis, p.ndim)
    batch = tuple(i for i in range(p.ndim) if i not in axes)
    ge = g * scale
    d = _flatten_classes(_keepdims(ge, p.shape, axes) * p, batch, order)  # (batch..., C)
    n_classes = d.shape[-1]
    d2 = d.reshape(-1, n_classes)
    k = jnp.clip(jnp.broadcast_to(jnp.asarray(labels), g.shape).reshape(-1, 1), 0, n_classes - 1)
    # One class per row, the row a batching dimension of the scatter (as in the transpose of
    # take_along_axis): a batch sharded over devices stays sharded, no gather of the gradient.
    dnums = lax.ScatterDimensionNumbers(
        update_window_dims=(), inserted_window_dims=(1,), scatter_dims_to_operand_dims=(1,),
        operand_batching_dims=(0,), scatter_indices_batching_dims=(0,))
    d2 = lax.scatter(d2, k.astype(jnp.int32), (ge * (p_k - 1)).reshape(-1), dnums, unique_indices=True,
                     mode=lax.GatherScatterMode.PROMISE_IN_BOUNDS)
    return (_unflatten_classes(d2.reshape(d.shape), p.shape, batch, order),)


def _sce_int_jvp(primals, tangents, out, labels=None, axis=-1, where=None):
    _, p, hot, scale, axes, _ = _sce_int_parts(primals[0], labels, axis, where)
    return scale * jnp.sum(tangents[0] * (p - hot.astype(p.dtype)), axis=axes)


def _sce_int_reference(logits, labels, axis=-1, where=None):
    """Plain jnp, optax's formula: the class axes moved last and flattened, then
    ``logsumexp(z) − take_along_axis(z, k)``; a fully masked example gives 0, a label out of range NaN."""
    axes, order = _class_axes(axis, logits.ndim)
    labels = jnp.asarray(labels)
    mask = None
    if where is not None:
        mask = jnp.asarray(where)
        if mask.ndim != logits.ndim:
            mask = jnp.expand_dims(mask, axis)
        mask = jnp.broadcast_to(mask, logits.shape)
    batch = tuple(i for i in range(logits.ndim) if i not in axes)
    batch_shape = tuple(logits.shape[i] for i in batch)
    z = jnp.transpose(logits, batch + order).reshape(batch_shape + (-1,))
    w = None if mask is None else jnp.transpose(mask, batch + order).reshape(batch_shape + (-1,))
    n = z.shape[-1]
    m = lax.stop_gradient(jnp.max(z, -1, keepdims=True, where=w, initial=-jnp.inf))
    m = jnp.where(jnp.isfinite(m), m, 0.0)
    e = jnp.exp(z - m)
    if w is not None:
        e = jnp.where(w, e, 0.0)
    s = jnp.sum(e, -1)
    lse = m[..., 0] + jnp.log(jnp.where(s == 0, 1.0, s))
    k = jnp.broadcast_to(jnp.clip(labels, 0, n - 1), batch_shape)
    out = lse - jnp.take_along_axis(z, k[..., None], axis=-1)[..., 0]
    if w is not None:
        out = jnp.where(jnp.any(w, -1), out, 0.0)
    return jnp.where((labels >= 0) & (labels < n), out, jnp.nan)


def _sce_int_convert(arrays, aux, static):
    (logits,) = arrays
    logits = jnp.asarray(logits)
    _check_has_axis(_SCE_INT, logits)
    axis = static["axis"]
    axes, _ = _class_axes(axis, logits.ndim)  # validates the axis
    labels = jnp.asarray(aux["labels"])  # a list or tuple arrives as a tuple of traced scalars
    if labels.dtype == jnp.bool_ or not jnp.issubdtype(labels.dtype, jnp.integer):
        raise TypeError(
            f"{_SCE_INT}: labels must be integer class indices; got dtype {labels.dtype} "
            "(for probabilities use softmax_cross_entropy)"
        )
    batch = tuple(i for i in range(logits.ndim) if i not in axes)
    batch_shape = tuple(logits.shape[i] for i in batch)
    try:
        shape = np.broadcast_shapes(batch_shape, labels.shape)
    except ValueError:
        shape = None
    if shape is None or len(shape) != len(batch_shape):
        raise ValueError(
            f"{_SCE_INT}: labels of shape {labels.shape} must broadcast to the logits' batch shape "
            f"{batch_shape} (logits shape {logits.shape} without the class axes {axis})"
        )
    if shape != batch_shape:  # labels with more examples than logits: the logits are broadcast
        full = list(logits.shape)
        for i, n in zip(batch, shape):
            full[i] = n
        logits = jnp.broadcast_to(logits, tuple(full))
    labels = jnp.broadcast_to(labels, shape)
    where = _mask(aux.get("where"), logits.shape, axis, _SCE_INT)
    return [logits], {**aux, "labels": labels, "where": where}


_INT_CLASSES = (5, 3, 4, 2)  # class-axis sizes the registry samples use: 5 for one axis, 3·4 for two ...


def _sample_int(key, dtype=jnp.float32, shape=(3, 5), labels=(0, 4, 2), axis=-1, where=None, **_):
    """Logits that fit the labels of a registry variant: the labels' shape is the batch shape; the
    class axes (5 classes for one axis, 3 × 4 for two) are inserted at ``axis``."""
    batch = np.shape(labels)
    given = (axis,) if isinstance(axis, int) else tuple(axis)
    ndim = len(batch) + len(given)
    pos = [a % ndim for a in given]
    dims = (_INT_CLASSES[0],) if len(given) == 1 else _INT_CLASSES[1:1 + len(given)]
    full, it = [], iter(batch)
    for i in range(ndim):
        full.append(dims[pos.index(i)] if i in pos else next(it))
    return (sampled(2.0 * sample_rng(key).standard_normal(tuple(full)), dtype),)


softmax_cross_entropy_with_integer_labels = define(
    "softmax_cross_entropy_with_integer_labels",
    forward=_sce_int_forward, fwd=_sce_int_fwd, bwd=_sce_int_bwd, jvp=_sce_int_jvp,
    reference=_sce_int_reference,
    arg_names=("logits",),
    static={"labels": REQUIRED, "axis": -1, "where": None},
    traced=("labels", "where"),
    convert=_sce_int_convert,
    sample=_sample_int,
    variants=(
        {"labels": (0, 4, 2)},
        {"labels": (2, 0, 1, 4, 3, 3), "axis": 0},
        {"labels": ((0, 11), (5, 7)), "axis": (2, 0)},
        # a label on a masked class (row 1) and a fully masked row (row 2)
        {"labels": (0, 4, 2), "where": ((_T,) * 5, (_T, _T, _T, _T, _F), (_F,) * 5)},
    ),
    derivation="L = lse(z) − z_k ⇒ ∂L/∂z = p − e_k",
    doc=r"""Softmax cross-entropy with class indices: :math:`L = \log Σ_c e^{z_c} − z_k`.

Args:
  logits: floating array of unnormalised log-probabilities.
  labels: integer class indices of the batch shape (the logits' shape without the class axes), or
    broadcastable to it; traced, not differentiable. With several class axes a label is the
    row-major flat index over them, taken in the order ``axis`` lists them.
  axis: the class axis (int) or axes (tuple of ints, or None for all); static. Default -1; may be
    passed positionally.
  where: optional boolean mask of the logits' shape or of the batch shape; masked classes are left
    out of the normaliser (the label's own logit is read wherever it is). A fully masked example
    gives 0 with zero gradient.

Returns:
  The loss per example, of the batch shape and the logits' dtype. No reduction.

Raises:
  TypeError: float or bool labels, non-floating logits, a non-boolean ``where``, an axis that is not
    an int/tuple/None.
  ValueError: labels that do not broadcast to the batch shape (the message names the labels', the
    batch and the logits' shapes), an axis out of range, 0-d logits, a mask of the wrong shape.

A label outside ``[0, C)`` (negative ones included) cannot be seen while tracing: that example's loss
and gradient are NaN, never a silently chosen class.

Derivative: :math:`∂L/∂z = p − e_k` (p the softmax over the included classes), times ``g``.
""",
).fn


# ---------------------------------------------------------------------------------------------
# sigmoid_binary_cross_entropy
# ---------------------------------------------------------------------------------------------


def _bce_forward(logits, labels):
    # −y·log σ(z) − (1 − y)·log σ(−z) = y·sp(−z) + (1 − y)·sp(z); a term whose weight is exactly 0 is 0
    # (so z = ±inf with the matching label gives 0, not 0·inf = NaN). sp(±z) = max(±z, 0) + t with
    # t = log(1 + e^{−|z|}), the two sharing one exponential and one logarithm: the operations
    # jnp.logaddexp(±z, 0) performs, so the same bits, with half the transcendental work. A NaN logit
    # makes t NaN, so no NaN select is needed (logaddexp has one).
    t = jnp.log1p(jnp.exp(-jnp.abs(logits)))
    pos = jnp.where(labels == 0, 0.0, labels * (jnp.maximum(-logits, 0.0) + t))
    neg = jnp.where(labels == 1, 0.0, (1 - labels) * (jnp.maximum(logits, 0.0) + t))
    return pos + neg


def _bce_fwd(logits, labels):
    big = jnp.finfo(logits.dtype).max
    # ∂L/∂y = −z, kept finite at z = ±inf so that a zero label tangent gives 0 (not 0·∞ = NaN)
    return _bce_forward(logits, labels), (lax.logistic(logits) - labels, -jnp.clip(logits, -big, big))


def _bce_bwd(res, g):
    d_logits, d_labels = res
    return g * d_logits, g * d_labels


def _bce_jvp(primals, tangents, out):
    (logits, labels), (t_logits, t_labels) = primals, tangents
    _, (d_logits, d_labels) = _bce_fwd(logits, labels)
    return t_logits * d_logits + t_labels * d_labels


def _bce_reference(logits, labels):
    """optax's formula: −y·log σ(z) − (1 − y)·log σ(−z), labels in the logits' dtype."""
    labels = jnp.asarray(labels).astype(jnp.asarray(logits).dtype)
    return -labels * jax.nn.log_sigmoid(logits) - (1 - labels) * jax.nn.log_sigmoid(-logits)


def _bce_convert(arrays, aux, static):
    logits, labels = (jnp.asarray(a) for a in arrays)
    return list(broadcast_pair(_BCE, logits, labels.astype(logits.dtype), "logits", "labels")), aux


def _sample_logits_unit(key, dtype=jnp.float32, shape=(3, 5), **_):
    rng = sample_rng(key)
    return sampled(2.0 * rng.standard_normal(shape), dtype), sampled(rng.uniform(0.0, 1.0, shape), dtype)


sigmoid_binary_cross_entropy = define(
    "sigmoid_binary_cross_entropy",
    forward=_bce_forward, fwd=_bce_fwd, bwd=_bce_bwd, jvp=_bce_jvp, reference=_bce_reference,
    arg_names=("logits", "labels"),
    convert=_bce_convert,
    sample=_sample_logits_unit,
    derivation="L = y·sp(−z) + (1−y)·sp(z) ⇒ ∂L/∂z = −yσ(−z) + (1−y)σ(z) = σ(z) − y; ∂L/∂y = sp(−z) − sp(z) = −z",
    doc=r"""Sigmoid binary cross-entropy, elementwise:
:math:`L = −y \log σ(z) − (1 − y)\log σ(−z) = y·\operatorname{softplus}(−z) + (1 − y)·\operatorname{softplus}(z)`.

Args:
  logits: floating array; each entry the logit of an independent binary prediction.
  labels: array broadcastable with ``logits``: probabilities in [0, 1] of the positive class.
    Cast to the logits' dtype (integer 0/1 labels included).

Returns:
  The loss per entry: the broadcast shape, the logits' dtype. No reduction.

Raises:
  TypeError: non-floating logits; boolean labels (cast them to the logits' dtype).
  ValueError: shapes that do not broadcast (the message names both).

Derivative: :math:`∂L/∂z = σ(z) − y`, :math:`∂L/∂y = −z` (±the largest finite value at z = ∓inf).
Softplus is ``logaddexp(z, 0)``: ``z = 1e30, y = 1`` gives exactly 0 and ``y = 0`` gives 1e30; a term
with weight exactly 0 is 0, so ``z = inf, y = 1`` gives 0 rather than NaN.
""",
).fn


# ---------------------------------------------------------------------------------------------
# squared_error, l2_loss
# ---------------------------------------------------------------------------------------------


def _targets_convert(fname, arg="predictions"):
    """Predictions and targets in their common dtype, of equal shapes. A Python number or sequence of
    numbers as targets takes the predictions' dtype (it has none of its own)."""

    def convert(arrays, aux, static):
        (p,) = arrays
        p = jnp.asarray(p)
        t = aux.get("targets")
        if t is None:
            return [p], aux
        t = real_array(t, fname, "targets", like=p)
        if t.shape != p.shape:
            raise ValueError(f"{fname}: targets of shape {t.shape} must have the shape of {arg}, {p.shape}")
        dtype = common_dtype(fname, p, t, arg, "targets")
        return [p.astype(dtype)], {**aux, "targets": t.astype(dtype)}

    return convert


def _diff(p, targets):
    return p if targets is None else p - jnp.asarray(targets, p.dtype)


def _se_forward(predictions, targets=None):
    return jnp.square(_diff(predictions, targets))


def _se_fwd(predictions, targets=None):
    d = _diff(predictions, targets)
    return jnp.square(d), d


def _se_bwd(d, g, targets=None):
    return (2.0 * g * d,)


def _se_jvp(primals, tangents, out, targets=None):
    return 2.0 * _diff(primals[0], targets) * tangents[0]


def _se_reference(predictions, targets=None):
    """Plain jnp, optax's formula: (p − t)², or p² without targets."""
    errors = predictions if targets is None else predictions - jnp.asarray(targets, predictions.dtype)
    return errors ** 2


@jax.custom_jvp
def _half_square(d):
    # (d/2)·d: halving is exact wherever d/2 is normal, so one rounding, and no overflow of d² where
    # d²/2 is finite (optax's ½·d² overflows there). Where d/2 is subnormal, d²/2 is below half the
    # smallest subnormal and is 0 in any order; where d²/2 is subnormal, ½·(d·d) would round twice
    # (XLA:CPU flushes both to 0 in float32 and float64, not in float16). So this one order is
    # correctly rounded wherever the other is, and a plain product, which XLA fuses into a following
    # sum as it does optax's: a select between the two orders (the same bits in the normal range)
    # cost a pass, jit(value_and_grad) of the sum 1.07–1.15× optax's against 1.00–1.02×.
    return (0.5 * d) * d


@_half_square.defjvp
def _half_square_jvp(primals, tangents):
    # The targets' derivative comes from autodiff of the forward: d·t exactly. Differentiated as a
    # product, XLA rewrites ½d·t + ½(d·t) as (d·t + d·t)·½, which overflows for |d| > max/2.
    (d,), (t,) = primals, tangents
    return _half_square(d), d * t


def _l2_forward(predictions, targets=None):
    return _half_square(_diff(predictions, targets))


def _l2_fwd(predictions, targets=None):
    d = _diff(predictions, targets)
    return _half_square(d), d


def _l2_bwd(d, g, targets=None):
    return (g * d,)


def _l2_jvp(primals, tangents, out, targets=None):
    return _diff(primals[0], targets) * tangents[0]


def _l2_reference(predictions, targets=None):
    """Plain jnp, optax's definition: 0.5·squared_error."""
    return 0.5 * _se_reference(predictions, targets)


def _sample_predictions(key, dtype=jnp.float32, shape=(3, 5), targets=None, **_):
    shape = shape if targets is None else np.shape(targets)
    return (sampled(sample_rng(key).standard_normal(shape), dtype),)


_TARGETS_VARIANT = {"targets": ((0.5, -1.0, 2.0, 0.25), (1.5, 0.0, -0.75, 3.0))}

_TARGETS_DOC = """
Args:
  predictions: floating array (integers are promoted to the default float dtype).
  targets: optional array of the same shape (optax's check: no broadcasting); traced. Omitted, it is
    0. Promoted with ``predictions`` to their common dtype; a Python number or sequence takes the
    predictions' dtype.

Returns:
  The loss per entry, of the predictions' shape and the common dtype. No reduction (the mean squared
  error of a batch is ``squared_error(p, t).mean()``; :func:`mse` averages over the last axis).

Raises:
  TypeError: non-real predictions or targets, or dtypes with no implicit promotion (strict mode).
  ValueError: targets of another shape (the message names both shapes).
"""

def _elementwise_loss(name, forward, fwd, bwd, jvp, reference, derivation, doc):
    """Declare a per-entry loss of ``predictions`` with optional traced ``targets`` (their derivative,
    −∂p, comes from autodiff of the forward)."""
    return define(
        name, forward=forward, fwd=fwd, bwd=bwd, jvp=jvp, reference=reference,
        arg_names=("predictions",), static={"targets": None}, traced=("targets",),
        convert=_targets_convert(f"fnnet.{name}"), sample=_sample_predictions,
        variants=({}, _TARGETS_VARIANT), derivation=derivation, doc=doc,
    ).fn


squared_error = _elementwise_loss(
    "squared_error", _se_forward, _se_fwd, _se_bwd, _se_jvp, _se_reference,
    "L = (p − t)² ⇒ ∂L/∂p = 2(p − t) = −∂L/∂t",
    r"""Elementwise squared error :math:`(p − t)^2`.
""" + _TARGETS_DOC + r"""
Derivative: :math:`∂L/∂p = 2(p − t)` (the hand rule, times ``g``); :math:`∂L/∂t = −∂L/∂p` comes from
autodiff of the forward (``targets`` is a traced parameter).
""",
)


l2_loss = _elementwise_loss(
    "l2_loss", _l2_forward, _l2_fwd, _l2_bwd, _l2_jvp, _l2_reference,
    "L = ½(p − t)² ⇒ ∂L/∂p = p − t = −∂L/∂t",
    r"""Elementwise L2 loss :math:`\frac12 (p − t)^2` (half the squared error).
""" + _TARGETS_DOC + r"""
Derivative: :math:`∂L/∂p = p − t` (the hand rule, times ``g``); :math:`∂L/∂t = −(p − t)` comes from
autodiff of the forward. ½d² is computed as (½d)·d for |d| ≥ 1: finite wherever the result is.
""",
)


# ---------------------------------------------------------------------------------------------
# huber_loss, log_cosh (optax's: targets broadcast against the predictions)
# ---------------------------------------------------------------------------------------------


def _broadcast_targets_convert(fname, arg="predictions"):
    """Predictions and targets in their common dtype and broadcast against each other, as optax's
    ``predictions − targets`` broadcasts them (the broadcast's transpose sums the predictions'
    cotangent back to their shape); a Python number or sequence as targets takes the predictions'
    dtype. A ``delta`` of huber_loss's: a number, or an array in that dtype that fits the result."""

    def convert(arrays, aux, static):
        (p,) = arrays
        p = jnp.asarray(p)
        t = aux.get("targets")
        if t is not None:
            t = real_array(t, fname, "targets", like=p)
            dtype = common_dtype(fname, p, t, arg, "targets")
            p, t = broadcast_pair(fname, p.astype(dtype), t.astype(dtype), arg, "targets")
            aux = {**aux, "targets": t}
        if "delta" in aux:
            d = real_array(aux["delta"], fname, "delta")
            dtype = common_dtype(fname, p, aux["delta"], arg, "delta")
            p = p.astype(dtype)
            if t is not None:
                aux = {**aux, "targets": aux["targets"].astype(dtype)}
            d = d.astype(dtype)
            broadcasts_to(d, p.shape, fname, "delta", "the loss's")
            aux = {**aux, "delta": d}
        return [p], aux

    return convert


def _huber_forward(predictions, targets=None, delta=1.0):
    # optax's operations in its order: ½q² + δ·(|e| − q), q = min(|e|, δ)
    e = _diff(predictions, targets)
    a = jnp.abs(e)
    q = jnp.minimum(a, delta)
    return 0.5 * q**2 + delta * (a - q)


def _dhuber(e, delta):
    # e inside [−δ, δ], δ·sign(e) outside (equal at |e| = δ); NaN at NaN, ±δ at ±inf
    return jnp.where(jnp.abs(e) <= delta, e, delta * jnp.sign(e))


def _huber_fwd(predictions, targets=None, delta=1.0):
    e = _diff(predictions, targets)
    a = jnp.abs(e)
    q = jnp.minimum(a, delta)
    return 0.5 * q**2 + delta * (a - q), e


def _huber_bwd(e, g, targets=None, delta=1.0):
    return (g * _dhuber(e, delta),)


def _huber_jvp(primals, tangents, out, targets=None, delta=1.0):
    return tangents[0] * _dhuber(_diff(primals[0], targets), delta)


def _huber_reference(predictions, targets=None, delta=1.0):
    """Plain jnp, optax's formula."""
    errors = predictions if targets is None else predictions - jnp.asarray(targets, predictions.dtype)
    abs_errors = jnp.abs(errors)
    quadratic = jnp.minimum(abs_errors, delta)
    return 0.5 * quadratic**2 + delta * (abs_errors - quadratic)


def _log_cosh_forward(predictions, targets=None):
    # optax's formula and bits: logaddexp(e, −e) − log 2. Its absolute error is ~u·log 2, so a loss
    # below ~√u keeps few correct digits (|e| = 1e-3 in float32: ~8 %); log1p(m²/(2(1 + m))), m =
    # expm1|e|, is within 10 ULP everywhere but ran 1.75× optax's fwd+bwd at 256 × 10 on XLA:CPU
    # (its loop, expm1 beside the large-|e| term, runs 5× slower per entry there) and is not used.
    # The derivative, which training reads, is the hand rule's tanh(e), accurate everywhere.
    e = _diff(predictions, targets)
    return jnp.logaddexp(e, -e) - jnp.log(2.0).astype(e.dtype)


def _log_cosh_fwd(predictions, targets=None):
    return _log_cosh_forward(predictions, targets), _diff(predictions, targets)


def _log_cosh_bwd(e, g, targets=None):
    return (g * _tanh(e),)


def _log_cosh_jvp(primals, tangents, out, targets=None):
    return tangents[0] * _tanh(_diff(primals[0], targets))


def _log_cosh_reference(predictions, targets=None):
    """Plain jnp, optax's formula: logaddexp(e, −e) − log 2."""
    errors = predictions if targets is None else predictions - jnp.asarray(targets, predictions.dtype)
    return jnp.logaddexp(errors, -errors) - jnp.log(2.0).astype(errors.dtype)


_BROADCAST_TARGETS_DOC = """
Args:
  predictions: floating array (integers are promoted to the default float dtype).
  targets: optional array broadcastable with the predictions (optax's ``predictions − targets``);
    traced. Omitted, it is 0. Promoted with ``predictions`` to their common dtype; a Python number or
    sequence takes the predictions' dtype.

Returns:
  The loss per entry, of the broadcast shape and the common dtype. No reduction.

Raises:
  TypeError: non-real predictions or targets, or dtypes with no implicit promotion (strict mode).
  ValueError: shapes that do not broadcast (the message names both).
"""

huber_loss = define(
    "huber_loss",
    forward=_huber_forward, fwd=_huber_fwd, bwd=_huber_bwd, jvp=_huber_jvp, reference=_huber_reference,
    arg_names=("predictions",), static={"targets": None, "delta": 1.0}, traced=("targets", "delta"),
    convert=_broadcast_targets_convert("fnnet.huber_loss"), sample=_sample_predictions,
    variants=({}, _TARGETS_VARIANT, {"delta": 0.5}),
    derivation="L = ½e² (|e| ≤ δ), δ(|e| − ½δ) (|e| > δ) ⇒ ∂L/∂p = e clipped to [−δ, δ] = −∂L/∂t",
    doc=r"""Huber loss: :math:`\frac12 e^2` for :math:`|e| ≤ δ`, :math:`δ(|e| − \frac12 δ)` beyond, e = p − t
(optax's ``huber_loss``; ``delta`` may be traced).
""" + _BROADCAST_TARGETS_DOC + r"""
Derivative: :math:`∂L/∂p = e` for :math:`|e| ≤ δ`, :math:`δ·\operatorname{sign}(e)` beyond (the hand
rule, times ``g``: the l2 gradient clipped to [−δ, δ]); :math:`∂L/∂t = −∂L/∂p` and ∂L/∂δ come from
autodiff of the forward. The value is optax's, operation for operation.
""",
).fn


log_cosh = define(
    "log_cosh",
    forward=_log_cosh_forward, fwd=_log_cosh_fwd, bwd=_log_cosh_bwd, jvp=_log_cosh_jvp,
    reference=_log_cosh_reference, arg_names=("predictions",), static={"targets": None},
    traced=("targets",), convert=_broadcast_targets_convert("fnnet.log_cosh"),
    sample=_sample_predictions, variants=({}, _TARGETS_VARIANT),
    derivation="L = log cosh(p − t) ⇒ ∂L/∂p = tanh(p − t) = −∂L/∂t",
    doc=r"""Log-cosh loss :math:`\log\cosh(p − t)` per entry (optax's ``log_cosh``).
""" + _BROADCAST_TARGETS_DOC + r"""
Derivative: :math:`∂L/∂p = \tanh(p − t)` (the hand rule, times ``g``; within 4 ULP everywhere, ±1 at
±inf); :math:`∂L/∂t = −∂L/∂p` from autodiff of the forward. The value is optax's
``logaddexp(e, −e) − log 2``, bit for bit: finite for every finite e, but with an absolute error of
about u·log 2, so a loss below ~√u (|e| ≲ 1e-3 in float32) has few correct digits.
""",
).fn


# ---------------------------------------------------------------------------------------------
# hinge_loss, perceptron_loss (optax's: max(0, m − p·t) with targets ±1)
# ---------------------------------------------------------------------------------------------


def _make_margin_loss(name, margin, convert, doc_shapes):
    """max(0, m − p·t) per entry (optax's ``jnp.maximum(0, m - p*t)``, m = 1 for the hinge, 0 for the
    perceptron); ∂/∂p = −t where the margin is violated, −t/2 at the kink (jax's maximum splits its
    derivative at a tie, as autodiff of optax's formula does), 0 elsewhere."""

    def forward(predictor_outputs, targets):
        # max(0, z) as a select: the same values (NaN stays NaN, either zero gives +0), but XLA:CPU
        # fused jnp.maximum into the YNNPACK sum that follows with a zero array written for it, and
        # left the gradient's loop on one core: jit(value_and_grad) 1.46–1.56× optax's, compile
        # 1.26–1.49×, against 0.96–1.02× and 0.99–1.13× as a select (1024 × 1024, a script outside
        # the repository)
        z = margin - predictor_outputs * jnp.asarray(targets, predictor_outputs.dtype)
        return jnp.where(z <= 0, jnp.zeros((), z.dtype), z)

    def dloss(p, t):
        # −t·(½ + ½·sign z): −t where z > 0, −t/2 at z = 0, 0 below, NaN at a NaN z (optax's gives 0)
        z = margin - p * t
        return -t * (0.5 + 0.5 * jnp.sign(z))

    def fwd(predictor_outputs, targets):
        return forward(predictor_outputs, targets), predictor_outputs

    def bwd(p, g, targets):
        return (g * dloss(p, jnp.asarray(targets, p.dtype)),)

    def jvp(primals, tangents, out, targets):
        return tangents[0] * dloss(primals[0], jnp.asarray(targets, primals[0].dtype))

    def reference(predictor_outputs, targets):
        """Plain jnp, optax's formula."""
        return jnp.maximum(0, margin - predictor_outputs * jnp.asarray(targets, predictor_outputs.dtype))

    def sample(key, dtype=jnp.float32, shape=(3, 5), targets=None, **_):
        shape = shape if targets is None else np.shape(targets)
        return (sampled(2 * sample_rng(key).standard_normal(shape), dtype),)

    label = "hinge" if margin else "perceptron"
    return define(
        name, forward=forward, fwd=fwd, bwd=bwd, jvp=jvp, reference=reference,
        arg_names=("predictor_outputs",), static={"targets": REQUIRED}, traced=("targets",),
        convert=convert(f"fnnet.{name}", "predictor_outputs"), sample=sample,
        variants=({"targets": ((1.0, -1.0, 1.0, -1.0), (-1.0, -1.0, 1.0, 1.0))},),
        derivation=f"L = max(0, {margin} − p·t) ⇒ ∂L/∂p = −t where {margin} − p·t > 0 (−t/2 at 0), else 0",
        doc=f"""The {label} loss :math:`\\max(0, {margin} − p·t)` per entry, targets ±1 (optax's ``{name}``).

Args:
  predictor_outputs: floating array, the scores. targets: the labels, −1 or 1, {doc_shapes}; traced;
    their derivative comes from autodiff of the forward.

Returns:
  The loss per entry (the broadcast shape), in the common dtype.

Raises:
  TypeError: non-real arguments, or dtypes with no implicit promotion (strict mode).
  ValueError: shapes that do not fit (the message names both).

Derivative (the hand rule, times ``g``): −t where the margin is violated ({margin} − p·t > 0), −t/2
where {margin} − p·t = 0 (the kink: what jax's maximum, and so autodiff of optax's formula, gives),
0 elsewhere; NaN where p·t is NaN (optax's gives 0 there).
""",
    ).fn


hinge_loss = _make_margin_loss("hinge_loss", 1, _broadcast_targets_convert,
                               "broadcastable with the scores (optax's ``predictor_outputs * targets``)")
perceptron_loss = _make_margin_loss("perceptron_loss", 0, _targets_convert,
                                    "of the scores' shape (optax checks it)")


# ---------------------------------------------------------------------------------------------
# multiclass_hinge_loss, multiclass_perceptron_loss (optax's: integer labels over the last axis)
# ---------------------------------------------------------------------------------------------


def _make_multiclass_margin(name, margin):
    """max_j (s_j + m − [j = k]) − s_k over the last axis (m = 1: the hinge; 0: the perceptron, whose
    max is max_j s_j), optax's operations; its gradient is the maximum's indicator shared equally
    between tied entries (what jax's max differentiates to) less the label's one-hot. A label outside
    [0, C) gives NaN, as softmax_cross_entropy_with_integer_labels' (optax's one-hot is then 0)."""
    fname = f"fnnet.{name}"

    def parts(scores, labels):
        one_hot = jax.nn.one_hot(labels, scores.shape[-1], dtype=scores.dtype)
        a = scores + (margin - one_hot) if margin else scores
        m = jnp.max(a, axis=-1)
        out = m - jnp.sum(scores * one_hot, axis=-1)
        valid = (labels >= 0) & (labels < scores.shape[-1])
        return jnp.where(valid, out, jnp.nan), a, m, one_hot, valid

    def forward(scores, labels):
        return parts(scores, jnp.asarray(labels))[0]

    def fwd(scores, labels):
        out, a, m, one_hot, valid = parts(scores, jnp.asarray(labels))
        at_max = (a == m[..., None]).astype(scores.dtype)
        d = at_max / jnp.sum(at_max, axis=-1, keepdims=True) - one_hot
        return out, jnp.where(valid[..., None], d, jnp.nan)

    def bwd(d, g, labels):
        return (g[..., None] * d,)

    def jvp(primals, tangents, out, labels):
        d = fwd(primals[0], labels)[1]
        return jnp.sum(tangents[0] * d, axis=-1)

    def reference(scores, labels):
        """Plain jnp, optax's formula."""
        one_hot = jax.nn.one_hot(jnp.asarray(labels), scores.shape[-1], dtype=scores.dtype)
        a = scores + 1.0 - one_hot if margin else scores
        return jnp.max(a, axis=-1) - jnp.sum(scores * one_hot, axis=-1)

    def convert(arrays, aux, static):
        (scores,) = arrays
        scores = jnp.asarray(scores)
        _check_has_axis(fname, scores, "scores")
        labels = jnp.asarray(aux["labels"])
        if labels.dtype == jnp.bool_ or not jnp.issubdtype(labels.dtype, jnp.integer):
            raise TypeError(f"{fname}: labels must be integer class indices; got dtype {labels.dtype}")
        batch = scores.shape[:-1]
        try:
            shape = np.broadcast_shapes(batch, labels.shape)
        except ValueError:
            shape = None
        if shape != batch:
            raise ValueError(f"{fname}: labels of shape {labels.shape} must broadcast to the scores' batch "
                             f"shape {batch} (scores shape {scores.shape} without its last axis)")
        return [scores], {**aux, "labels": jnp.broadcast_to(labels, batch)}

    def sample(key, dtype=jnp.float32, shape=(3, 5), labels=(0, 4, 2), **_):
        return (sampled(2.0 * sample_rng(key).standard_normal(np.shape(labels) + (5,)), dtype),)

    what = "hinge" if margin else "perceptron"
    value = r"\max_j (s_j + 1 − [j = k]) − s_k" if margin else r"\max_j s_j − s_k"
    return define(
        name, forward=forward, fwd=fwd, bwd=bwd, jvp=jvp, reference=reference,
        arg_names=("scores",), static={"labels": REQUIRED}, traced=("labels",), convert=convert,
        sample=sample, variants=({"labels": (0, 4, 2)},),
        derivation=(f"L = {value.replace(chr(92) + 'max', 'max')} ⇒ ∂L/∂s = "
                    "(indicator of the maximum)/(its count) − e_k"),
        doc=f"""Multiclass {what} loss :math:`{value}` over the last axis (optax's ``{name}``).

Args:
  scores: floating ``(..., C)``. labels: integer class indices broadcastable to ``scores.shape[:-1]``;
    traced, not differentiated.

Returns:
  One value per example, ``scores.shape[:-1]``; NaN for a label outside ``[0, C)`` (optax's one-hot
  of it is 0, which gives a value without its label term).

Raises:
  TypeError: non-integer labels. ValueError: labels that do not fit the batch shape, 0-d scores.

Derivative (the hand rule, times ``g``): the one-hot of the maximum's entries shared equally between
ties (as jax's max differentiates), less the label's one-hot e_k.
""",
    ).fn


multiclass_hinge_loss = _make_multiclass_margin("multiclass_hinge_loss", 1.0)
multiclass_perceptron_loss = _make_multiclass_margin("multiclass_perceptron_loss", 0.0)


# ---------------------------------------------------------------------------------------------
# cosine_similarity, cosine_distance (optax's)
# ---------------------------------------------------------------------------------------------


def _cos_forward_parts(a, b, epsilon, axes, where):
    """optax's operations in its order: the unit vectors â = a/‖a‖, b̂ = b/‖b‖ (‖·‖ over ``axes`` and
    the included entries, its square raised to ``epsilon``), their norms and the similarity Σ â·b̂."""
    na2 = jnp.sum(jnp.square(a), axes, keepdims=True, where=where)
    nb2 = jnp.sum(jnp.square(b), axes, keepdims=True, where=where)
    na, nb = jnp.sqrt(jnp.clip(na2, epsilon)), jnp.sqrt(jnp.clip(nb2, epsilon))
    au, bu = a / na, b / nb
    return au, bu, na, nb, na2, nb2, jnp.sum(au * bu, axes, where=where)


def _cos_axes(fname, axis, ndim):
    return _axes(axis, ndim, fname)


def _make_cosine(name, sign):
    """cosine_similarity (sign +1) or cosine_distance = 1 − similarity (sign −1), one primitive each."""
    fname = f"fnnet.{name}"

    def forward(predictions, targets, epsilon=0.0, axis=-1, where=None):
        s = _cos_forward_parts(predictions, targets, epsilon, _cos_axes(fname, axis, predictions.ndim), where)[-1]
        return s if sign > 0 else 1.0 - s

    def fwd(predictions, targets, epsilon=0.0, axis=-1, where=None):
        axes = _cos_axes(fname, axis, predictions.ndim)
        au, bu, na, nb, na2, nb2, s = _cos_forward_parts(predictions, targets, epsilon, axes, where)
        res = (au, bu, na, nb, _max_slope(na2, epsilon), _max_slope(nb2, epsilon), s)
        return (s if sign > 0 else 1.0 - s), res

    def bwd(res, g, epsilon=0.0, axis=-1, where=None):
        # s = Σ â·b̂ with â = a/‖a‖: ∂s/∂a_j = (b̂_j − s·c_a·â_j)/‖a‖ at an included entry (c_a: the clip's
        # derivative; 0 at a masked one, whatever it holds), and symmetrically for b
        au, bu, na, nb, ca, cb, s = res
        axes = _cos_axes(fname, axis, au.ndim)
        gk = _keepdims(sign * g, au.shape, axes)
        sk = _keepdims(s, au.shape, axes)
        da = gk * (bu - sk * ca * au) / na
        db = gk * (au - sk * cb * bu) / nb
        if where is not None:
            da, db = (jnp.where(where, d, jnp.zeros((), d.dtype)) for d in (da, db))
        return da, db

    def jvp(primals, tangents, out, epsilon=0.0, axis=-1, where=None):
        (a, b), (ta, tb) = primals, tangents
        axes = _cos_axes(fname, axis, a.ndim)
        au, bu, na, nb, na2, nb2, s = _cos_forward_parts(a, b, epsilon, axes, where)
        sk = _keepdims(s, a.shape, axes)
        terms = (ta * (bu - sk * _max_slope(na2, epsilon) * au) / na
                 + tb * (au - sk * _max_slope(nb2, epsilon) * bu) / nb)
        return sign * jnp.sum(terms, axes, where=where)

    def reference(predictions, targets, epsilon=0.0, axis=-1, where=None):
        """Plain jnp, optax's formula."""
        a_norm = jnp.sqrt(jnp.square(predictions).sum(axis=axis, where=where, keepdims=True).clip(epsilon))
        b_norm = jnp.sqrt(jnp.square(targets).sum(axis=axis, where=where, keepdims=True).clip(epsilon))
        s = (predictions / a_norm * (targets / b_norm)).sum(axis=axis, where=where)
        return s if sign > 0 else 1.0 - s

    def convert(arrays, aux, static):
        a, b = (jnp.asarray(v) for v in arrays)
        dtype = common_dtype(fname, a, b, "predictions", "targets")
        a, b = broadcast_pair(fname, a.astype(dtype), b.astype(dtype), "predictions", "targets")
        axes = _cos_axes(fname, static["axis"], a.ndim)
        m = aux.get("where")
        if m is not None:
            m = bool_mask(m, fname)
            broadcasts_to(m, a.shape, fname, "where", "the predictions'")
        eps = real_array(aux.get("epsilon", 0.0), fname, "epsilon")
        reduced = tuple(1 if i in axes else n for i, n in enumerate(a.shape))
        eps = eps.astype(dtype)
        broadcasts_to(eps, reduced, fname, "epsilon", "the norms' (one per slice)")
        return [a, b], {**aux, "where": m, "epsilon": eps}

    def sample(key, dtype=jnp.float32, shape=(3, 5), **_):
        rng = sample_rng(key)
        return tuple(sampled(rng.standard_normal(shape), dtype) for _ in range(2))

    what = "similarity" if sign > 0 else "distance"
    value = r":math:`Σ â·b̂`" if sign > 0 else r":math:`1 − Σ â·b̂`"
    return define(
        name, forward=forward, fwd=fwd, bwd=bwd, jvp=jvp, reference=reference,
        arg_names=("predictions", "targets"), static={"epsilon": 0.0, "axis": -1, "where": None},
        traced=("epsilon", "where"), convert=convert, sample=sample,
        variants=({}, {"axis": 0}, {"axis": None, "epsilon": 0.5}),
        derivation=("s = Σ â·b̂, â = a/‖a‖ ⇒ ∂s/∂a = (b̂ − s·â)/‖a‖, ∂s/∂b = (â − s·b̂)/‖b‖"
                    + ("" if sign > 0 else "; distance = 1 − s")),
        doc=r"""Cosine """ + what + r""" """ + value + r""" over ``axis``, â = a/‖a‖, b̂ = b/‖b‖ (optax's
``cosine_""" + what + r"""``).

Args:
  predictions, targets: floating arrays that broadcast against each other (their common dtype).
  epsilon: the least value of each squared norm (optax's: ‖a‖ = √max(Σa², ε)); a number, or an array
    with one value per slice; traced.
  axis: int, tuple of ints or None (all axes); static. where: optional boolean mask broadcastable to
    the inputs: only the entries where it is True enter the norms and the sum.

Returns:
  The """ + what + r""" per slice, the inputs' shape without ``axis``. A zero vector with ε = 0 gives NaN
  (0/0), as optax's.

Raises:
  TypeError: non-real inputs, or dtypes with no implicit promotion (strict mode).
  ValueError: shapes that do not broadcast, an axis out of range, a mask or ε of the wrong shape.

Derivative (the hand rule, times ``g``): :math:`∂s/∂a_j = (b̂_j − s·â_j)/‖a‖` and
:math:`∂s/∂b_j = (â_j − s·b̂_j)/‖b‖` at included entries (0 at masked ones, whatever they hold),
the s·â term times the derivative of the clip at ε (1 above it, ½ at it, 0 below, as jax's maximum);
ε's own derivative from autodiff of the forward.""" + ("" if sign > 0 else " The distance's is the negative."),
    ).fn


cosine_similarity = _make_cosine("cosine_similarity", 1)
cosine_distance = _make_cosine("cosine_distance", -1)


# ---------------------------------------------------------------------------------------------
# kl_divergence, kl_divergence_with_log_targets (optax's: a sum over ``axis`` of a per-entry term)
# ---------------------------------------------------------------------------------------------


def _make_summed(name, arg_names, term, partials, reference, derivation, doc):
    """A loss Σ_axis term(a, b) over the entries where ``where`` is True, both arguments differentiable:
    the hand VJP is g times each partial of the term at the included entries (0 at masked ones,
    whatever they hold), the JVP the sum of the partials times the tangents."""
    fname = f"fnnet.{name}"

    def forward(a, b, axis=-1, where=None):
        return jnp.sum(term(a, b), _axes(axis, a.ndim, fname), where=where)

    def fwd(a, b, axis=-1, where=None):
        return forward(a, b, axis, where), (a, b)

    def bwd(res, g, axis=-1, where=None):
        a, b = res
        gk = _keepdims(g, a.shape, _axes(axis, a.ndim, fname))
        out = tuple(gk * d for d in partials(a, b))
        if where is not None:
            out = tuple(jnp.where(where, d, jnp.zeros((), d.dtype)) for d in out)
        return out

    def jvp(primals, tangents, out, axis=-1, where=None):
        (a, b), (ta, tb) = primals, tangents
        da, db = partials(a, b)
        return jnp.sum(ta * da + tb * db, _axes(axis, a.ndim, fname), where=where)

    def convert(arrays, aux, static):
        a, b = (jnp.asarray(v) for v in arrays)
        dtype = common_dtype(fname, a, b, arg_names[0], arg_names[1])
        a, b = broadcast_pair(fname, a.astype(dtype), b.astype(dtype), arg_names[0], arg_names[1])
        _axes(static["axis"], a.ndim, fname)
        m = aux.get("where")
        if m is not None:
            m = bool_mask(m, fname)
            broadcasts_to(m, a.shape, fname, "where", f"the {arg_names[0]}'")
        return [a, b], {**aux, "where": m}

    def sample(key, dtype=jnp.float32, shape=(3, 5), **_):
        rng = sample_rng(key)
        p = rng.dirichlet(np.ones(shape[-1]), shape[:-1])  # a distribution per row, no zeros
        q = rng.dirichlet(np.ones(shape[-1]), shape[:-1])
        return sampled(np.log(p), dtype), sampled(q if arg_names[1] == "targets" else np.log(q), dtype)

    return define(
        name, forward=forward, fwd=fwd, bwd=bwd, jvp=jvp, reference=reference, arg_names=arg_names,
        static={"axis": -1, "where": None}, traced=("where",), convert=convert, sample=sample,
        variants=({}, {"axis": 0}, {"axis": None}), derivation=derivation, doc=doc,
    ).fn


def _kl_term(lp, t):
    # t·(log t − lp), and 0 where t = 0 whatever lp is (0·log 0 = 0: optax gives NaN at lp = −inf)
    zero = jnp.zeros((), t.dtype)
    return jnp.where(t == 0, zero, t * (jnp.log(jnp.where(t == 0, jnp.ones((), t.dtype), t)) - lp))


def _log_or_min(t):
    """log t, with the most negative finite number for log 0 (whose limit, −inf, would make a zero
    tangent give 0·inf = NaN)."""
    return _above_neg_inf(jnp.log(t))


def _kl_partials(lp, t):
    # ∂/∂lp = −t; ∂/∂t = log t − lp + 1, whose limit at t = 0 is −inf: there log t is the most
    # negative finite number instead, so that a zero tangent of t gives 0, not 0·inf = NaN (the
    # choice softmax_cross_entropy makes for ∂/∂y at a −inf log-probability; optax gives NaN)
    return -t, _log_or_min(t) - lp + 1


def _kl_reference(log_predictions, targets, axis=-1, where=None):
    """Plain jnp, optax's formula."""
    loss = targets * (jnp.where(targets == 0, 0, jnp.log(targets)) - log_predictions)
    return jnp.sum(loss, axis=axis, where=where)


def _gkl_term(lp, t):
    # the KL term and the mass difference e^{lp} − t (optax sums the two apart and adds the sums)
    return _kl_term(lp, t) + (jnp.exp(lp) - t)


def _gkl_partials(lp, t):
    # ∂/∂lp = −t + e^{lp}; ∂/∂t = log t − lp (the KL term's less 1), log 0 as in _kl_partials
    return jnp.exp(lp) - t, _log_or_min(t) - lp


def _gkl_reference(log_predictions, targets, axis=-1, where=None):
    """Plain jnp, optax's formula: kl_divergence + Σ(e^{lp} − t)."""
    return (_kl_reference(log_predictions, targets, axis, where)
            + jnp.sum(jnp.exp(log_predictions) - targets, axis=axis, where=where))


def _kl_log_term(lp, lt):
    # e^{lt}·(lt − lp) with lt raised to the most negative finite number: a zero target probability
    # (lt = −inf) gives 0·finite = 0 where optax's gives 0·(−inf) = NaN; on a log-prediction of −inf
    # too it stays NaN, as optax's. Written without a select so that XLA:CPU sums the terms in its
    # library kernel, as optax's (with a select: jit(value_and_grad) 1.13–1.18× optax's at 4096 × 1000
    # and 64 × 1024, the terms written to memory first).
    return jnp.exp(lt) * (_above_neg_inf(lt) - lp)


def _kl_log_partials(lp, lt):
    # ∂/∂lp = −e^{lt}; ∂/∂lt = e^{lt}·(lt − lp + 1): 0 at lt = −inf (its limit), as the value's term
    e = jnp.exp(lt)
    return -e, e * (_above_neg_inf(lt) - lp + 1)


def _kl_log_reference(log_predictions, log_targets, axis=-1, where=None):
    """Plain jnp, optax's formula."""
    return jnp.sum(jnp.exp(log_targets) * (log_targets - log_predictions), axis=axis, where=where)


_KL_ARGS = """
Args:
  log_predictions: the predicted distribution's log-probabilities, floating, ``(..., n)``.
  {second}; both arguments are differentiable.
  axis: int, tuple of ints or None (all axes): the distribution's axes; static.
  where: optional boolean mask broadcastable to the inputs: only the entries where it is True enter
    the sum.

Returns:
  The divergence per distribution, the inputs' broadcast shape without ``axis``.

Raises:
  TypeError: non-real inputs, or dtypes with no implicit promotion (strict mode).
  ValueError: shapes that do not broadcast, an axis out of range, a mask of the wrong shape.
"""

kl_divergence = _make_summed(
    "kl_divergence", ("log_predictions", "targets"), _kl_term, _kl_partials, _kl_reference,
    "L = Σ t(log t − lp) ⇒ ∂L/∂lp = −t, ∂L/∂t = log t − lp + 1",
    r"""Kullback-Leibler divergence :math:`Σ_i t_i(\log t_i − lp_i)` over ``axis`` (optax's
``kl_divergence``).
""" + _KL_ARGS.format(second="targets: the target probabilities, ``(..., n)``") + r"""
Derivative (the hand rule, times ``g``): :math:`∂L/∂lp = −t` and :math:`∂L/∂t = \log t − lp + 1`
(at t = 0, whose limit is −inf, with log t the most negative finite number, so that a zero tangent
gives 0; optax gives NaN there). A zero target contributes 0 to the value whatever its
log-prediction, −inf included (0·log 0 = 0; optax gives NaN there).
""",
)

generalized_kl_divergence = _make_summed(
    "generalized_kl_divergence", ("log_predictions", "targets"), _gkl_term, _gkl_partials, _gkl_reference,
    "L = Σ t(log t − lp) + e^{lp} − t ⇒ ∂L/∂lp = e^{lp} − t, ∂L/∂t = log t − lp",
    r"""Generalized Kullback-Leibler divergence :math:`Σ_i t_i(\log t_i − lp_i) + e^{lp_i} − t_i` over
``axis``, for unnormalized distributions (optax's ``generalized_kl_divergence``).
""" + _KL_ARGS.format(second="targets: the target (unnormalized) probabilities, ``(..., n)``") + r"""
Derivative (the hand rule, times ``g``): :math:`∂L/∂lp = e^{lp} − t` and :math:`∂L/∂t = \log t − lp`
(at t = 0 with log t the most negative finite number, as :func:`kl_divergence`). A zero target's KL
term is 0 whatever its log-prediction (optax gives NaN on a −inf one).
""",
)

kl_divergence_with_log_targets = _make_summed(
    "kl_divergence_with_log_targets", ("log_predictions", "log_targets"), _kl_log_term,
    _kl_log_partials, _kl_log_reference,
    "L = Σ e^{lt}(lt − lp) ⇒ ∂L/∂lp = −e^{lt}, ∂L/∂lt = e^{lt}(lt − lp + 1)",
    r"""Kullback-Leibler divergence with log-space targets, :math:`Σ_i e^{lt_i}(lt_i − lp_i)` over ``axis``
(optax's ``kl_divergence_with_log_targets``).
""" + _KL_ARGS.format(second="log_targets: the target log-probabilities, ``(..., n)``") + r"""
Derivative (the hand rule, times ``g``): :math:`∂L/∂lp = −e^{lt}` and :math:`∂L/∂lt = e^{lt}(lt − lp + 1)`.
A target log-probability of −inf contributes 0 to the value and the gradients for any finite
log-prediction (optax gives NaN there); on a log-prediction of −inf too it is NaN, as optax's.
""",
)


# ---------------------------------------------------------------------------------------------
# mse (fnnet's own: the mean over the last axis)
# ---------------------------------------------------------------------------------------------


def _mse_forward(predictions, targets):
    d = predictions - targets
    n = d.shape[-1]
    ms = jnp.mean(jnp.square(d), axis=-1)
    # d² overflows for |d| > ~1.3e154 (float64) although the mean may not: scale by 1/√n first there.
    scaled = jnp.sum(jnp.square(d * (1.0 / math.sqrt(n))), axis=-1)
    return jnp.where(jnp.isinf(ms) & jnp.isfinite(scaled), scaled, ms)


def _two_over_n_diff(p, t, scale):
    """scale·(p − t), also where p − t overflows but the product does not (scale < 1)."""
    d = p - t
    safe = jnp.isinf(d) & jnp.isfinite(p) & jnp.isfinite(t)
    return jnp.where(safe, p * scale - t * scale, d * scale)


def _mse_bwd(res, g):
    p, t = res
    d = _keepdims(g, p.shape, (p.ndim - 1,)) * _two_over_n_diff(p, t, 2.0 / p.shape[-1])
    return d, -d


def _mse_jvp(primals, tangents, out):
    (p, t), (tp, tt) = primals, tangents
    return jnp.sum(_two_over_n_diff(p, t, 2.0 / p.shape[-1]) * (tp - tt), axis=-1)


def _mse_reference(predictions, targets):
    return jnp.mean((predictions - targets) ** 2, axis=-1)


def _mse_convert(arrays, aux, static):
    p, t = (jnp.asarray(a) for a in arrays)
    if t.shape != p.shape:
        raise ValueError(
            f"fnnet.mse: targets of shape {t.shape} must have the shape of predictions, {p.shape}"
        )
    _check_has_axis("fnnet.mse", p, "predictions")
    dtype = common_dtype("fnnet.mse", p, t, "predictions", "targets")
    return [p.astype(dtype), t.astype(dtype)], aux


def _sample_pair(key, dtype=jnp.float32, shape=(3, 5), **_):
    rng = sample_rng(key)
    return tuple(sampled(rng.standard_normal(shape), dtype) for _ in range(2))


mse = define(
    "mse",
    forward=_mse_forward, bwd=_mse_bwd, jvp=_mse_jvp, reference=_mse_reference,
    arg_names=("predictions", "targets"),
    convert=_mse_convert,
    sample=_sample_pair,
    derivation="L = (1/n)Σ(p − t)² ⇒ ∂L/∂p = (2/n)(p − t) = −∂L/∂t",
    doc=r"""Mean squared error per example: :math:`L = \frac1n Σ_{i=1}^n (p_i − t_i)^2` over the last axis.

Args:
  predictions: (..., n) floating array.
  targets: (..., n), the same shape; promoted with ``predictions`` to their common dtype.

Returns:
  (...,) one value per example (reduce it yourself: ``mse(p, t).mean()``). For the elementwise
  :math:`(p − t)^2` use :func:`squared_error`.

Raises:
  TypeError: non-floating input, or dtypes with no implicit promotion (strict mode).
  ValueError: targets of another shape, or 0-d predictions.

Derivative: :math:`∂L/∂p = \frac2n (p − t)`, :math:`∂L/∂t = −∂L/∂p`; finite where p − t overflows
but the result does not.
""",
).fn
