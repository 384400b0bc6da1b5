r"""Losses with hand-written rules, following optax's conventions: one value per example, no reduction.

============================================= ===================================== =============================
loss                                          value (per example)                   VJP (cotangent ``g``)
============================================= ===================================== =============================
``softmax_cross_entropy(logits, labels)``     :math:`−Σ_c y_c \log\operatorname{softmax}(z)_c`  :math:`∂z = g·(p·Σy − y)`, :math:`∂y = −g·\log p`
``softmax_cross_entropy_with_integer_labels`` :math:`−\log\operatorname{softmax}(z)_k`  :math:`∂z = g·(p − e_k)`
``sigmoid_binary_cross_entropy``              :math:`y·\operatorname{sp}(−z) + (1−y)·\operatorname{sp}(z)`  :math:`∂z = g·(σ(z) − y)`, :math:`∂y = −g·z`
``mse(predictions, targets)``                 :math:`\frac1n Σ_i (p_i − t_i)^2` over the last axis  :math:`∂p = g·\frac2n(p − t) = −∂t`
``squared_error(predictions, targets)``       :math:`(p − t)^2` elementwise (optax)  :math:`∂p = 2g(p − t) = −∂t`
============================================= ===================================== =============================

(p = softmax(z) over the last axis, sp = softplus, e_k the one-hot of class k; in the softmax losses
``g`` has the batch shape ``z.shape[:-1]`` and is broadcast over the class axis.) When the labels of a
softmax cross-entropy sum to 1 its logit gradient is the familiar :math:`p − y`; fnnet writes
:math:`p·Σy − y`, which is the exact derivative for any labels.

**Stability.** The softmax losses go through log-softmax, ``(z − m) − log Σ e^{z − m}``, never
``log(softmax)``: logits of ±1e4, ±1e30 or ±max finite give finite losses and gradients. The binary
loss uses softplus (``logaddexp(z, 0)``), so ``z = ±1e30`` gives the exact 0 or |z|. A label of exactly
0 contributes 0 even where its log-probability is −inf (the convention 0·log 0 = 0, as in information
theory): ``softmax_cross_entropy([0, -inf], [1, 0]) = 0``, not NaN.

``mse`` is the *mean* over the last axis (what "mean squared error per example" means to most users;
optax has only the elementwise ``squared_error``, also provided here).
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from fnnet.activations.normalizing import _shifted
from fnnet.primitive import as_float_array, define

__all__ = [
    "softmax_cross_entropy",
    "softmax_cross_entropy_with_integer_labels",
    "sigmoid_binary_cross_entropy",
    "mse",
    "squared_error",
]


def _same_shape_and_dtype(fname, a, b, a_name, b_name, min_ndim=0):
    if a.shape != b.shape:
        raise ValueError(
            f"{fname}: {b_name} of shape {b.shape} must have the shape of {a_name}, {a.shape}"
        )
    if a.dtype != b.dtype:
        raise TypeError(f"{fname}: {b_name} dtype {b.dtype} must equal {a_name} dtype {a.dtype}")
    if a.ndim < min_ndim:
        raise ValueError(
            f"{fname}: {a_name} must have at least {min_ndim} axis (the classes are the last); "
            f"got shape {a.shape}"
        )


def _sample_logits_probs(key, dtype=jnp.float32, shape=(3, 5), **_):
    k1, k2 = jax.random.split(key)
    logits = 2.0 * jax.random.normal(k1, shape, jnp.float32)
    labels = jax.nn.softmax(jax.random.normal(k2, shape, jnp.float32))
    return jnp.asarray(logits, dtype), jnp.asarray(labels, dtype)


def _finish(public, prim, reference):
    public.primitive = prim
    public.reference = reference
    return public


# ---------------------------------------------------------------------------------------------
# softmax_cross_entropy
# ---------------------------------------------------------------------------------------------


def _log_softmax_last(logits):
    """(log_softmax, softmax) over the last axis, shifted by the maximum (fnnet.log_softmax's kernel)."""
    _, shifted, e = _shifted(logits, (logits.ndim - 1,), None)
    s = jnp.sum(e, axis=-1, keepdims=True)
    return shifted - jnp.log(s), e / s


def _xent(labels, logp):
    """−Σ y·log p with 0·log p = 0 where y = 0 (so a −inf log-probability of an unused class is fine)."""
    return -jnp.sum(jnp.where(labels == 0, 0.0, labels * logp), axis=-1)


def _sce_forward(logits, labels):
    return _xent(labels, _log_softmax_last(logits)[0])


def _sce_fwd(logits, labels):
    logp, p = _log_softmax_last(logits)
    return _xent(labels, logp), (logp, p, labels)


def _sce_bwd(res, g):
    logp, p, labels = res
    ge = g[..., None]
    d_logits = ge * (p * jnp.sum(labels, axis=-1, keepdims=True) - labels)
    return d_logits, -ge * logp


def _sce_jvp(primals, tangents, out):
    logits, labels = primals
    t_logits, t_labels = tangents
    logp, p = _log_softmax_last(logits)
    d_logits = p * jnp.sum(labels, axis=-1, keepdims=True) - labels
    return jnp.sum(t_logits * d_logits, axis=-1) - jnp.sum(t_labels * logp, axis=-1)


def _sce_reference(logits, labels):
    """Plain jnp: −Σ y·(z − m − log Σ e^{z − m})."""
    m = lax.stop_gradient(jnp.max(logits, axis=-1, keepdims=True))
    shifted = logits - m
    return -jnp.sum(labels * (shifted - jnp.log(jnp.sum(jnp.exp(shifted), -1, keepdims=True))), -1)


softmax_cross_entropy = define(
    "softmax_cross_entropy",
    forward=_sce_forward, fwd=_sce_fwd, bwd=_sce_bwd, jvp=_sce_jvp, reference=_sce_reference,
    arg_names=("logits", "labels"),
    validate=lambda logits, labels: _same_shape_and_dtype(
        "fnnet.softmax_cross_entropy", logits, labels, "logits", "labels", min_ndim=1
    ),
    sample=_sample_logits_probs,
    derivation="L = −Σ y·(z − lse z) ⇒ ∂L/∂z = p·Σy − y (p − y for Σy = 1), ∂L/∂y = −log p",
    doc=r"""Softmax cross-entropy :math:`L = −Σ_c y_c \log \operatorname{softmax}(z)_c` (optax's).

Arguments:
  logits: (..., C) floating. labels: (..., C), the same shape and dtype: a probability
    distribution over the last axis (one-hot or soft labels).

Returns:
  (...,) one loss per example, no reduction.

Derivative: :math:`∂L/∂z = p·Σ_c y_c − y` (= p − y for normalised labels),
:math:`∂L/∂y = −\log p`; VJP multiplies both by ``g[..., None]``. A class with label 0 and logit
−inf contributes 0 (not NaN).
""",
).fn


# ---------------------------------------------------------------------------------------------
# softmax_cross_entropy_with_integer_labels
# ---------------------------------------------------------------------------------------------


def softmax_cross_entropy_with_integer_labels(logits, labels):
    r"""Softmax cross-entropy with class indices: :math:`L = −\log\operatorname{softmax}(z)_k` (optax's).

    Arguments:
      logits: (..., C) floating. labels: (...,) integer class indices in ``[0, C)``.

    Returns:
      (...,) one loss per example.

    The labels are turned into one-hot rows of ``logits``' dtype and the loss is
    :func:`softmax_cross_entropy`'s primitive, whose hand VJP is then :math:`g·(p − e_k)`; the labels
    are not differentiable. Bad labels are caught before tracing: a float dtype raises TypeError,
    a shape other than ``logits.shape[:-1]`` ValueError naming both shapes, and, when the labels are
    concrete (not traced under ``jit``), a label outside ``[0, C)`` raises ValueError naming the label
    and its index. Traced labels cannot be checked: an out-of-range one gives a NaN loss (never a
    silently clamped class).
    """
    fname = "fnnet.softmax_cross_entropy_with_integer_labels"
    logits = as_float_array(logits, "logits", fname)
    if not hasattr(labels, "dtype"):
        labels = np.asarray(labels)
    if labels.dtype == jnp.bool_ or not jnp.issubdtype(labels.dtype, jnp.integer):
        raise TypeError(
            f"{fname}: labels must be integer class indices; got dtype {labels.dtype} "
            "(for probabilities use softmax_cross_entropy)"
        )
    if logits.ndim < 1:
        raise ValueError(f"{fname}: logits must have a class axis (the last); got shape {logits.shape}")
    if tuple(labels.shape) != logits.shape[:-1]:
        raise ValueError(
            f"{fname}: labels of shape {tuple(labels.shape)} must have shape logits.shape[:-1] = "
            f"{logits.shape[:-1]} (logits shape {logits.shape})"
        )
    n_classes = logits.shape[-1]
    concrete = not isinstance(labels, jax.core.Tracer)
    if concrete:
        lab = np.asarray(labels)
        bad = (lab < 0) | (lab >= n_classes)
        if bad.any():
            idx = tuple(int(i) for i in np.argwhere(bad)[0])
            raise ValueError(
                f"{fname}: label {int(lab[idx])} at index {idx} is out of range [0, {n_classes}) "
                f"for logits of shape {logits.shape}"
            )
    labels = jnp.asarray(labels)
    one_hot = (labels[..., None] == jnp.arange(n_classes, dtype=labels.dtype)).astype(logits.dtype)
    loss = softmax_cross_entropy(logits, one_hot)
    if not concrete:
        valid = (labels >= 0) & (labels < n_classes)
        loss = jnp.where(valid, loss, jnp.nan)
    return loss


def _sce_int_reference(logits, labels):
    m = lax.stop_gradient(jnp.max(logits, axis=-1, keepdims=True))
    logp = logits - m - jnp.log(jnp.sum(jnp.exp(logits - m), -1, keepdims=True))
    return -jnp.take_along_axis(logp, jnp.asarray(labels)[..., None], axis=-1)[..., 0]


_finish(softmax_cross_entropy_with_integer_labels, softmax_cross_entropy.primitive, _sce_int_reference)


# ---------------------------------------------------------------------------------------------
# sigmoid_binary_cross_entropy
# ---------------------------------------------------------------------------------------------


def _softplus(x):
    return jnp.logaddexp(x, 0.0)


def _bce_forward(logits, labels):
    # optax: −y·log σ(z) − (1 − y)·log σ(−z) = y·sp(−z) + (1 − y)·sp(z); a term whose weight is exactly
    # 0 is 0 (so z = ±inf with the matching label gives 0, not 0·inf = NaN).
    pos = jnp.where(labels == 0, 0.0, labels * _softplus(-logits))
    neg = jnp.where(labels == 1, 0.0, (1 - labels) * _softplus(logits))
    return pos + neg


def _bce_bwd(res, g):
    logits, labels = res
    return g * (lax.logistic(logits) - labels), -g * logits


def _bce_jvp(primals, tangents, out):
    (logits, labels), (t_logits, t_labels) = primals, tangents
    return t_logits * (lax.logistic(logits) - labels) - t_labels * logits


def _bce_reference(logits, labels):
    """optax's formula: −y·log σ(z) − (1 − y)·log σ(−z)."""
    return -labels * jnp.log(1 / (1 + jnp.exp(-logits))) - (1 - labels) * jnp.log(
        1 / (1 + jnp.exp(logits))
    )


def _sample_logits_unit(key, dtype=jnp.float32, shape=(3, 5), **_):
    k1, k2 = jax.random.split(key)
    logits = 2.0 * jax.random.normal(k1, shape, jnp.float32)
    labels = jax.random.uniform(k2, shape, jnp.float32)
    return jnp.asarray(logits, dtype), jnp.asarray(labels, dtype)


_bce_prim = define(
    "sigmoid_binary_cross_entropy",
    forward=_bce_forward, bwd=_bce_bwd, jvp=_bce_jvp, reference=_bce_reference,
    arg_names=("logits", "labels"),
    validate=lambda logits, labels: _same_shape_and_dtype(
        "fnnet.sigmoid_binary_cross_entropy", logits, labels, "logits", "labels"
    ),
    sample=_sample_logits_unit,
    derivation="L = y·sp(−z) + (1−y)·sp(z) ⇒ ∂L/∂z = −yσ(−z) + (1−y)σ(z) = σ(z) − y; ∂L/∂y = sp(−z) − sp(z) = −z",
)

_BCE_DOC = r"""Sigmoid binary cross-entropy, elementwise (optax's):
:math:`L = −y \log σ(z) − (1 − y)\log σ(−z) = y·\operatorname{softplus}(−z) + (1 − y)·\operatorname{softplus}(z)`.

Arguments:
  logits: floating array. labels: the same shape; probabilities in [0, 1] of the positive class.
    Integer or boolean labels are cast to the logits' dtype (as optax does).

Returns:
  An array of ``logits``' shape (no reduction).

Derivative: :math:`∂L/∂z = σ(z) − y`, :math:`∂L/∂y = −z`. Softplus is ``logaddexp(z, 0)``:
``z = 1e30, y = 1`` gives exactly 0 and ``y = 0`` gives 1e30; a term with weight exactly 0 is 0,
so ``z = inf, y = 1`` gives 0 rather than NaN.
"""


def sigmoid_binary_cross_entropy(logits, labels):
    dtype = getattr(labels, "dtype", None)
    if dtype is not None and (dtype == jnp.bool_ or jnp.issubdtype(dtype, jnp.integer)):
        logits = as_float_array(logits, "logits", "fnnet.sigmoid_binary_cross_entropy")
        labels = jnp.asarray(labels).astype(logits.dtype)
    return _bce_prim.fn(logits, labels)


sigmoid_binary_cross_entropy.__doc__ = _BCE_DOC
_bce_prim.fn.__doc__ = _BCE_DOC
_finish(sigmoid_binary_cross_entropy, _bce_prim, _bce_reference)
sigmoid_binary_cross_entropy.forward_mode = _bce_prim.forward_mode


# ---------------------------------------------------------------------------------------------
# mse, squared_error
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
    d = g[..., None] * _two_over_n_diff(p, t, 2.0 / p.shape[-1])
    return d, -d


def _mse_jvp(primals, tangents, out):
    (p, t), (tp, tt) = primals, tangents
    return jnp.sum(_two_over_n_diff(p, t, 2.0 / p.shape[-1]) * (tp - tt), axis=-1)


def _mse_reference(predictions, targets):
    return jnp.mean((predictions - targets) ** 2, axis=-1)


def _sample_pair(key, dtype=jnp.float32, shape=(3, 5), **_):
    k1, k2 = jax.random.split(key)
    return tuple(
        jnp.asarray(jax.random.normal(k, shape, jnp.float32), dtype) for k in (k1, k2)
    )


mse = define(
    "mse",
    forward=_mse_forward, bwd=_mse_bwd, jvp=_mse_jvp, reference=_mse_reference,
    arg_names=("predictions", "targets"),
    validate=lambda p, t: _same_shape_and_dtype("fnnet.mse", p, t, "predictions", "targets", min_ndim=1),
    sample=_sample_pair,
    derivation="L = (1/n)Σ(p − t)² ⇒ ∂L/∂p = (2/n)(p − t) = −∂L/∂t",
    doc=r"""Mean squared error per example: :math:`L = \frac1n Σ_{i=1}^n (p_i − t_i)^2` over the last axis.

Arguments:
  predictions: (..., n) floating. targets: (..., n), the same shape and dtype.

Returns:
  (...,) one value per example (reduce it yourself: ``mse(p, t).mean()``). For optax's elementwise
  :math:`(p − t)^2` use :func:`squared_error`.

Derivative: :math:`∂L/∂p = \frac2n (p − t)`, :math:`∂L/∂t = −∂L/∂p`.
""",
).fn


def _se_bwd(res, g):
    p, t = res
    d = g * _two_over_n_diff(p, t, 2.0)
    return d, -d


squared_error = define(
    "squared_error",
    forward=lambda p, t: jnp.square(p - t),
    bwd=_se_bwd,
    jvp=lambda primals, tangents, out: _two_over_n_diff(*primals, 2.0) * (tangents[0] - tangents[1]),
    reference=lambda predictions, targets: (predictions - targets) ** 2,
    arg_names=("predictions", "targets"),
    validate=lambda p, t: _same_shape_and_dtype("fnnet.squared_error", p, t, "predictions", "targets"),
    sample=_sample_pair,
    derivation="L = (p − t)² ⇒ ∂L/∂p = 2(p − t) = −∂L/∂t",
    doc=r"""Elementwise squared error :math:`(p − t)^2` (optax.squared_error; targets required).

Arguments:
  predictions, targets: floating arrays of the same shape and dtype.

Returns:
  An array of that shape. Derivative: :math:`∂/∂p = 2(p − t) = −∂/∂t`.
""",
).fn
