"""Losses: values against the formulas written out in float64 numpy, gradients against jax.grad of the
plain references and against the closed forms, the class axes (ints, tuples, positional), masks,
broadcast labels, dtype promotion, omitted targets, forward mode, stability at huge and infinite
logits, and the bad-input messages. The generic VJP/JVP/finite-difference checks of every declared
variant run in tests/test_primitives.py.

Tolerances. Values: a log-softmax is (x − m) − log Σ, each step ≤ 1 ULP with |x − m| ≲ 10 on these
inputs, then a sum of ≤ 24 products: ≤ ~30 roundings of quantities of the loss's size, hence
``rtol = 32·ε`` (normwise, float64). Gradients: two or three more roundings: the same bound holds.
Where two computations perform the same operations in the same order (a broadcast made explicit, a
dtype promoted by hand) the results are compared exactly.
"""
from __future__ import annotations

import inspect

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fnnet.losses as L
from fnnet.primitive import registry

EPS = float(jnp.finfo(jnp.float64).eps)
RTOL = 32 * EPS

SCE = L.softmax_cross_entropy
SCE_INT = L.softmax_cross_entropy_with_integer_labels
BCE = L.sigmoid_binary_cross_entropy


def _close(actual, expected, rtol=RTOL, what=""):
    actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    assert np.array_equal(np.isnan(actual), np.isnan(expected)), f"{what}: NaNs differ"
    ok = ~np.isnan(expected)
    scale = max(float(np.max(np.abs(expected[ok]), initial=0.0)), 1e-300)
    err = float(np.max(np.abs(actual[ok] - expected[ok]), initial=0.0)) / scale
    assert err <= rtol, f"{what}: normwise error {err:.3e} > {rtol:.3e}"


@np.errstate(divide="ignore")  # log 0 = −inf for a fully masked example, as intended
def _np_log_softmax(z, axis=-1, mask=None):
    z = np.asarray(z, np.float64)
    zm = z if mask is None else np.where(mask, z, -np.inf)
    m = zm.max(axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)
    return z - m - np.log(np.exp(zm - m).sum(axis, keepdims=True))


def _np_sce(z, y, axis=-1, mask=None):
    """−Σ y·log_softmax(z) over the included entries (numpy, float64)."""
    z, y = np.broadcast_arrays(np.asarray(z, np.float64), np.asarray(y, np.float64))
    terms = y * _np_log_softmax(z, axis, mask)
    if mask is not None:
        terms = np.where(mask, terms, 0.0)
    return -terms.sum(axis)


@np.errstate(divide="ignore")
def _np_sce_int(z, k, axis=-1, mask=None):
    """lse(z over the included classes) − z_k: the class axes moved last (in the given order) and
    flattened; 0 for a fully masked example, NaN for a label out of range."""
    z = np.asarray(z, np.float64)
    axes = (axis,) if isinstance(axis, int) else axis
    axes = tuple(a % z.ndim for a in axes)
    batch = tuple(i for i in range(z.ndim) if i not in axes)
    bshape = tuple(z.shape[i] for i in batch)
    zt = z.transpose(batch + axes).reshape(bshape + (-1,))
    n = zt.shape[-1]
    k = np.broadcast_to(np.asarray(k), bshape)
    if mask is None:
        w = np.ones_like(zt, bool)
    else:
        w = np.broadcast_to(mask, z.shape).transpose(batch + axes).reshape(bshape + (-1,))
    zm = np.where(w, zt, -np.inf)
    m = zm.max(-1)
    m = np.where(np.isfinite(m), m, 0.0)
    lse = m + np.log(np.exp(zm - m[..., None]).sum(-1))
    picked = np.take_along_axis(zt, np.clip(k, 0, n - 1)[..., None], -1)[..., 0]
    out = np.where(w.any(-1), lse - picked, 0.0)
    return np.where((k >= 0) & (k < n), out, np.nan)


@pytest.fixture
def logits():
    return 3.0 * _normal(1, (4, 5))


@pytest.fixture
def probs():
    return jax.nn.softmax(_normal(2, (4, 5)))


# Test data from NumPy's generator: jax.random compiles a program per shape, which costs more than
# many of these checks.
def _normal(seed, shape):
    return jnp.asarray(np.random.default_rng(seed).standard_normal(shape), jnp.float64)


def _uniform(seed, shape):
    return jnp.asarray(np.random.default_rng(seed).random(shape), jnp.float64)


def _randint(seed, shape, n):
    return jnp.asarray(np.random.default_rng(seed).integers(0, n, shape), jnp.int32)


# ------------------------------------------------------------------------------------------------
# Every public loss is one declared primitive
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", L.__all__)
def test_each_loss_is_a_declared_primitive(name):
    f = getattr(L, name)
    assert registry()[name] is f.primitive and f.primitive.fn is f
    assert f.reference is f.primitive.reference
    assert f.__name__ == name
    for section in ("Args:", "Returns:", "Raises:"):
        assert section in f.__doc__, f"{name}: docstring lacks {section}"


def test_signatures():
    sig = {n: str(inspect.signature(getattr(L, n))) for n in L.__all__}
    assert sig["softmax_cross_entropy"] == "(logits, labels, axis=-1, where=None)"
    assert sig["softmax_cross_entropy_with_integer_labels"] == "(logits, labels, axis=-1, where=None)"
    assert sig["sigmoid_binary_cross_entropy"] == "(logits, labels)"
    assert sig["squared_error"] == "(predictions, targets=None)"
    assert sig["l2_loss"] == "(predictions, targets=None)"
    assert sig["huber_loss"] == "(predictions, targets=None, delta=1.0)"
    assert sig["log_cosh"] == "(predictions, targets=None)"
    assert sig["hinge_loss"] == sig["perceptron_loss"] == "(predictor_outputs, targets)"
    assert sig["multiclass_hinge_loss"] == sig["multiclass_perceptron_loss"] == "(scores, labels)"
    assert sig["cosine_similarity"] == "(predictions, targets, epsilon=0.0, axis=-1, where=None)"
    assert sig["cosine_distance"] == "(predictions, targets, epsilon=0.0, axis=-1, where=None)"
    assert sig["kl_divergence"] == "(log_predictions, targets, axis=-1, where=None)"
    assert sig["kl_divergence_with_log_targets"] == "(log_predictions, log_targets, axis=-1, where=None)"
    assert sig["generalized_kl_divergence"] == "(log_predictions, targets, axis=-1, where=None)"
    assert sig["mse"] == "(predictions, targets)"


def test_integer_labels_are_one_primitive_with_traced_labels(logits):
    labels = jnp.array([0, 4, 2, 2])
    jaxpr = str(jax.make_jaxpr(SCE_INT)(logits, labels))
    assert "name=softmax_cross_entropy_with_integer_labels" in jaxpr
    assert "name=softmax_cross_entropy " not in jaxpr and "one_hot" not in jaxpr


# ------------------------------------------------------------------------------------------------
# softmax_cross_entropy
# ------------------------------------------------------------------------------------------------


def test_softmax_cross_entropy(logits, probs):
    _close(SCE(logits, probs), _np_sce(logits, probs))
    g = jnp.arange(1.0, 5.0)
    f = lambda z, y, loss: jnp.vdot(g, loss(z, y))  # noqa: E731
    dz, dy = jax.grad(f, (0, 1))(logits, probs, SCE)
    dz_ref, dy_ref = jax.grad(f, (0, 1))(logits, probs, SCE.reference)
    _close(dz, dz_ref, what="d/dlogits")
    _close(dy, dy_ref, what="d/dlabels")
    _close(dz, g[:, None] * (jax.nn.softmax(logits) - probs), what="p − y")
    _close(dy, -g[:, None] * jax.nn.log_softmax(logits), what="−log p")


def test_softmax_cross_entropy_unnormalised_labels(logits, probs):
    """For labels that do not sum to 1 the exact gradient is p·Σy − y, not p − y."""
    y = 3.0 * probs
    dz = jax.grad(lambda z: jnp.sum(SCE(z, y)))(logits)
    _close(dz, jax.grad(lambda z: jnp.sum(SCE.reference(z, y)))(logits))
    _close(dz, jax.nn.softmax(logits) * 3.0 - y)


@pytest.mark.parametrize("axis", [0, 1, 2, -2, (0, 2), (2, 0), (0, 1, 2), None])
def test_softmax_cross_entropy_axis(axis):
    z = 2.0 * _normal(3, (3, 4, 5))
    y = _uniform(4, (3, 4, 5))
    np_axis = tuple(range(3)) if axis is None else axis
    expected = _np_sce(z, y, np_axis)
    _close(SCE(z, y, axis=axis), expected, what=f"axis={axis}")
    _close(SCE(z, y, axis), expected, what=f"positional axis={axis}")
    g = jnp.cos(jnp.asarray(expected))
    f = lambda z, y, loss: jnp.vdot(g, loss(z, y, axis))  # noqa: E731
    both = jax.jit(lambda z, y: (jax.grad(f, (0, 1))(z, y, SCE), jax.grad(f, (0, 1))(z, y, SCE.reference)))
    for got, ref in zip(*both(z, y)):
        _close(got, ref, what=f"gradient, axis={axis}")


def test_softmax_cross_entropy_axis_is_moveaxis():
    z, y = _normal(5, (4, 5, 6)), _uniform(6, (4, 5, 6))
    for axis in range(3):
        _close(SCE(z, y, axis=axis), SCE(jnp.moveaxis(z, axis, -1), jnp.moveaxis(y, axis, -1)))


def test_softmax_cross_entropy_where_per_entry(logits, probs):
    mask = np.array([[1, 0, 1, 1, 0], [0, 0, 0, 0, 0], [1, 1, 1, 1, 1], [0, 1, 0, 0, 0]], bool)
    out = SCE(logits, probs, where=mask)
    _close(out, _np_sce(logits, probs, mask=mask))
    assert out[1] == 0  # a fully masked example
    # masked entries take no part: changing their logits or labels changes nothing
    z2 = jnp.where(mask, logits, 1e3)
    y2 = jnp.where(mask, probs, 7.0)
    np.testing.assert_array_equal(SCE(z2, y2, where=mask), out)
    # the same as dropping the masked classes (a 1-D example)
    sel = mask[0]
    _close(SCE(logits[0], probs[0], where=sel), SCE(logits[0][sel], probs[0][sel]))
    dz, dy = jax.grad(lambda z, y: jnp.sum(SCE(z, y, where=mask)), (0, 1))(logits, probs)
    assert jnp.all(jnp.isfinite(dz)) and jnp.all(dz[~mask] == 0) and jnp.all(dy[~mask] == 0)
    dz_ref, dy_ref = jax.grad(lambda z, y: jnp.sum(SCE.reference(z, y, where=mask)), (0, 1))(logits, probs)
    _close(dz, dz_ref, what="masked d/dlogits")
    _close(dy, dy_ref, what="masked d/dlabels")


def test_softmax_cross_entropy_where_per_example(logits, probs):
    """A mask of the batch shape applies to every class of its example (the class axis is inserted)."""
    mask = np.array([True, False, True, True])
    out = SCE(logits, probs, where=mask)
    _close(out, jnp.where(mask, SCE(logits, probs), 0.0))
    dz = jax.grad(lambda z: jnp.sum(SCE(z, probs, where=mask)))(logits)
    assert jnp.all(dz[1] == 0) and jnp.all(jnp.isfinite(dz))
    # with axis=0 the classes run down the columns: one flag per column
    col = np.array([True, True, False, True, False])
    _close(SCE(logits, probs, axis=0, where=col), jnp.where(col, SCE(logits, probs, axis=0), 0.0))


def test_softmax_cross_entropy_broadcast_labels(logits, probs):
    row = probs[0]
    out = SCE(logits, row)
    np.testing.assert_array_equal(out, SCE(logits, jnp.broadcast_to(row, logits.shape)))
    _close(out, _np_sce(logits, row))
    # the labels' cotangent is summed over the examples they were broadcast to
    dy = jax.grad(lambda y: jnp.sum(SCE(logits, y)))(row)
    _close(dy, -jnp.sum(jax.nn.log_softmax(logits), axis=0))
    # and the other way round: one row of logits against a batch of labels
    out2 = SCE(logits[0], probs)
    _close(out2, _np_sce(logits[0], probs))
    dz = jax.grad(lambda z: jnp.sum(SCE(z, probs)))(logits[0])
    _close(dz, jnp.sum(jax.nn.softmax(logits[0]) * probs.sum(-1, keepdims=True) - probs, axis=0))
    with pytest.raises(ValueError, match=r"labels of shape \(4, 3\) does not broadcast with logits of shape \(4, 5\)"):
        SCE(logits, jnp.ones((4, 3)))


def test_softmax_cross_entropy_promotes_mixed_dtypes():
    z = jnp.asarray([[10.0, 1.0, -2.0], [1.0, 4.0, 0.2]], jnp.bfloat16)
    y = jnp.asarray([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]], jnp.float32)
    with jax.numpy_dtype_promotion("standard"):
        out = SCE(z, y)
        dz, dy = jax.grad(lambda z, y: jnp.sum(SCE(z, y)), (0, 1))(z, y)
    assert out.dtype == jnp.float32 and dz.dtype == jnp.bfloat16 and dy.dtype == jnp.float32
    # computed in float32: the same operations as with the logits cast by hand
    np.testing.assert_array_equal(out, SCE(z.astype(jnp.float32), y))
    dz32 = jax.grad(lambda z: jnp.sum(SCE(z, y)))(z.astype(jnp.float32))
    np.testing.assert_array_equal(dz, dz32.astype(jnp.bfloat16))
    # a Python number is weakly typed: it takes the logits' dtype
    assert SCE(z, 0.5).dtype == jnp.bfloat16
    # under strict promotion (this suite's setting) the mix is refused, naming both dtypes
    with pytest.raises(TypeError, match=r"logits dtype bfloat16 and labels dtype float32 have no implicit promotion"):
        SCE(z, y)


# ------------------------------------------------------------------------------------------------
# softmax_cross_entropy_with_integer_labels
# ------------------------------------------------------------------------------------------------


def test_integer_labels(logits):
    labels = jnp.array([0, 4, 2, 2])
    loss = SCE_INT(logits, labels)
    _close(loss, -_np_log_softmax(logits)[np.arange(4), np.asarray(labels)])
    dz = jax.grad(lambda z: jnp.sum(SCE_INT(z, labels)))(logits)
    _close(dz, jax.nn.softmax(logits) - jax.nn.one_hot(labels, 5, dtype=jnp.float64), what="p − e_k")
    dz_ref = jax.grad(lambda z: jnp.sum(SCE_INT.reference(z, labels)))(logits)
    _close(dz, dz_ref)
    # the same as the probability loss with one-hot labels
    _close(loss, SCE(logits, jax.nn.one_hot(labels, 5, dtype=jnp.float64)))
    # Python lists of ints work; under an outer jit the labels are traced and the loss is the same
    _close(SCE_INT(logits, [0, 4, 2, 2]), loss)
    _close(jax.jit(SCE_INT)(logits, labels), loss)


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_integer_labels_int_axis(axis):
    z = _normal(7, (4, 5, 6))
    n = z.shape[axis]
    batch = tuple(s for i, s in enumerate(z.shape) if i != axis % 3)
    k = _randint(8, batch, n)
    _close(SCE_INT(z, k, axis=axis), _np_sce_int(z, k, axis))
    _close(SCE_INT(z, k, axis), SCE_INT(jnp.moveaxis(z, axis, -1), k), what="positional axis = moveaxis")
    dz = jax.grad(lambda z: jnp.sum(SCE_INT(z, k, axis)))(z)
    hot = jnp.moveaxis(jax.nn.one_hot(k, n, dtype=jnp.float64), -1, axis)
    _close(dz, jax.nn.softmax(z, axis=axis) - hot, what="p − e_k")


@pytest.mark.parametrize("axis", [(1, 3), (3, 1), (2, 3), (-1, -2), (0, 1, 3), (-4, -3, -1)])
def test_integer_labels_axis_tuple(axis):
    """A label is the row-major flat index over the class axes taken in the order given."""
    z = _normal(9, (2, 3, 4, 5))
    axes = tuple(a % 4 for a in axis)
    batch = tuple(s for i, s in enumerate(z.shape) if i not in axes)
    n = int(np.prod([z.shape[a] for a in axes]))
    k = _randint(10, batch, n)
    out = SCE_INT(z, k, axis)
    _close(out, _np_sce_int(z, k, axis), what=f"axis={axis}")
    _close(SCE_INT(z, k, axis=axis), out)
    g = jnp.cos(out)
    dz, dz_ref = jax.jit(lambda z: (jax.grad(lambda z: jnp.vdot(g, SCE_INT(z, k, axis)))(z),
                                    jax.grad(lambda z: jnp.vdot(g, SCE_INT.reference(z, k, axis)))(z)))(z)
    _close(dz, dz_ref)
    # the order of the axes matters: (a, b) and (b, a) index the classes differently
    if len(axis) == 2 and axes[0] != axes[1]:
        swapped = SCE_INT(z, k, axis[::-1])
        assert not np.allclose(swapped, out)


def test_integer_labels_where(logits):
    labels = jnp.array([1, 4, 2, 0])
    mask = np.array([[1, 1, 1, 1, 1], [1, 1, 1, 1, 0], [0, 0, 0, 0, 0], [1, 0, 1, 0, 1]], bool)
    out = SCE_INT(logits, labels, where=mask)
    # row 1's label is a masked class: its logit is still read, the normaliser leaves it out
    _close(out, _np_sce_int(logits, labels, -1, mask))
    assert out[2] == 0
    dz = jax.grad(lambda z: jnp.sum(SCE_INT(z, labels, where=mask)))(logits)
    assert jnp.all(dz[2] == 0) and jnp.all(jnp.isfinite(dz))
    _close(dz, jax.grad(lambda z: jnp.sum(SCE_INT.reference(z, labels, where=mask)))(logits))
    # one flag per example
    ex = np.array([True, False, True, True])
    _close(SCE_INT(logits, labels, where=ex), jnp.where(ex, SCE_INT(logits, labels), 0.0))
    dz = jax.grad(lambda z: jnp.sum(SCE_INT(z, labels, where=ex)))(logits)
    assert jnp.all(dz[1] == 0)


def test_integer_labels_broadcast(logits):
    out = SCE_INT(logits, jnp.array([3]))
    np.testing.assert_array_equal(out, SCE_INT(logits, jnp.full((4,), 3)))
    # more examples in the labels than in the logits: the logits are broadcast
    z = logits[:1]
    out = SCE_INT(z, jnp.array([0, 3]))
    _close(out, -_np_log_softmax(z)[0, [0, 3]])
    dz = jax.grad(lambda z: jnp.sum(SCE_INT(z, jnp.array([0, 3]))))(z)
    _close(dz, 2 * jax.nn.softmax(z) - jax.nn.one_hot(jnp.array([[0, 3]]), 5, dtype=jnp.float64).sum(1))


def test_integer_labels_out_of_range_give_nan(logits):
    labels = jnp.array([0, 5, -1, 2])
    out = SCE_INT(logits, labels)
    assert jnp.isnan(out[1]) and jnp.isnan(out[2])
    _close(out[jnp.array([0, 3])], SCE_INT(logits[jnp.array([0, 3])], labels[jnp.array([0, 3])]))
    dz = jax.grad(lambda z: jnp.sum(SCE_INT(z, labels)))(logits)
    assert jnp.all(jnp.isnan(dz[1:3])) and jnp.all(jnp.isfinite(dz[jnp.array([0, 3])]))
    # the same under an outer jit (the labels are never concrete inside the primitive)
    np.testing.assert_array_equal(jax.jit(SCE_INT)(logits, labels), out)


# ------------------------------------------------------------------------------------------------
# sigmoid_binary_cross_entropy
# ------------------------------------------------------------------------------------------------


def test_sigmoid_binary_cross_entropy(logits):
    y = _uniform(3, logits.shape)
    z, yn = np.asarray(logits), np.asarray(y)
    log_p, log_not_p = -np.logaddexp(0, -z), -np.logaddexp(0, z)
    _close(BCE(logits, y), -yn * log_p - (1 - yn) * log_not_p)
    g = jnp.cos(logits)
    f = lambda z, y, loss: jnp.vdot(g, loss(z, y))  # noqa: E731
    dz, dy = jax.grad(f, (0, 1))(logits, y, BCE)
    dz_ref, dy_ref = jax.grad(f, (0, 1))(logits, y, BCE.reference)
    _close(dz, dz_ref, what="d/dlogits")
    _close(dy, dy_ref, what="d/dlabels")
    _close(dz, g * (jax.nn.sigmoid(logits) - y), what="σ(z) − y")
    _close(dy, -g * logits, what="−z")
    # integer (0/1) labels are cast to the logits' dtype
    y_int = (y > 0.5).astype(jnp.int32)
    with jax.numpy_dtype_promotion("standard"):  # integer input is promoted as jax.numpy promotes it
        np.testing.assert_array_equal(BCE(logits, y_int), BCE(logits, y_int.astype(jnp.float64)))


def test_sigmoid_binary_cross_entropy_broadcast_and_dtype(logits):
    y = _uniform(4, (5,))
    out = BCE(logits, y)
    np.testing.assert_array_equal(out, BCE(logits, jnp.broadcast_to(y, logits.shape)))
    dy = jax.grad(lambda y: jnp.sum(BCE(logits, y)))(y)
    _close(dy, -jnp.sum(logits, axis=0))
    assert BCE(logits[0], jnp.ones((3, 5))).shape == (3, 5)
    # the labels take the logits' dtype (no promotion to float32)
    zb = logits.astype(jnp.bfloat16)
    out = BCE(zb, y.astype(jnp.float32))
    assert out.dtype == jnp.bfloat16
    np.testing.assert_array_equal(out, BCE(zb, y.astype(jnp.bfloat16)))
    dy = jax.grad(lambda y: jnp.sum(BCE(zb, y)))(y.astype(jnp.float32))
    assert dy.dtype == jnp.float32


# ------------------------------------------------------------------------------------------------
# squared_error, l2_loss, mse
# ------------------------------------------------------------------------------------------------


def test_squared_error_and_l2_loss():
    p, t = _normal(4, (3, 7)), _normal(5, (3, 7))
    pn, tn = np.asarray(p), np.asarray(t)
    _close(L.squared_error(p, t), (pn - tn) ** 2)
    _close(L.l2_loss(p, t), 0.5 * (pn - tn) ** 2)
    _close(L.squared_error(p), pn ** 2, what="targets omitted")
    _close(L.l2_loss(p), 0.5 * pn ** 2, what="targets omitted")
    _close(L.squared_error(p, None), pn ** 2)
    g = jnp.sin(p)
    for f, c in ((L.squared_error, 2.0), (L.l2_loss, 1.0)):
        dp, dt = jax.grad(lambda p, t: jnp.vdot(g, f(p, t)), (0, 1))(p, t)
        _close(dp, c * g * (p - t), what=f"{f.__name__} d/dpredictions")
        _close(dt, -dp, what=f"{f.__name__} d/dtargets")
        _close(jax.grad(lambda p: jnp.vdot(g, f(p)))(p), c * g * p, what=f"{f.__name__} no targets")


def test_squared_error_dtypes_and_shapes():
    p = jnp.asarray([-2.0, -1.0, 0.5, 1.0], jnp.bfloat16)
    t = jnp.asarray([-1.5, 0.0, -1.0, 1.0], jnp.float32)
    with jax.numpy_dtype_promotion("standard"):
        out = L.squared_error(p, t)
        dp = jax.grad(lambda p: jnp.sum(L.l2_loss(p, t)))(p)
    assert out.dtype == jnp.float32 and dp.dtype == jnp.bfloat16
    np.testing.assert_array_equal(out, L.squared_error(p.astype(jnp.float32), t))
    # a Python sequence has no dtype of its own: it takes the predictions'
    assert L.squared_error(p, [1.0, 2.0, 3.0, 4.0]).dtype == jnp.bfloat16
    # integer input is promoted as jax.numpy promotes it (jnp.sin: int32 to float32)
    assert L.squared_error(jnp.arange(3, dtype=jnp.int32)).dtype == jnp.float32
    with pytest.raises(ValueError, match=r"targets of shape \(4, 1\) must have the shape of predictions, \(4,\)"):
        L.squared_error(p, t[:, None])
    with pytest.raises(ValueError, match=r"targets of shape \(4, 1\) must have the shape of predictions, \(4,\)"):
        jax.jit(L.l2_loss)(p, t[:, None])
    with pytest.raises(TypeError, match=r"predictions dtype bfloat16 and targets dtype float32"):
        L.squared_error(p, t)  # strict promotion


def test_l2_loss_huge_differences():
    """½d² is finite where d² overflows but ½d² does not."""
    d = jnp.asarray([1.5e154, -1.5e154])
    _close(L.l2_loss(d), np.array([1.125e308, 1.125e308]), rtol=4 * EPS)
    assert jnp.isinf(L.squared_error(d)[0])


def test_l2_loss_is_correctly_rounded_in_float16():
    """(½d)·d rounds once: every finite float16 d gives ½d² correctly rounded, the subnormal results
    included (float16 has no flush to zero on the CPU). The exact value: d² and its half are exact in
    float64 for a float16 d (11-bit significands), so one cast rounds it."""
    d = np.arange(2 ** 16, dtype=np.uint16).view(np.float16)
    d = d[np.isfinite(d)]
    with np.errstate(over="ignore"):  # ½d² above float16's max is inf, as it should be
        exact = (d.astype(np.float64) ** 2 / 2).astype(np.float16)
    np.testing.assert_array_equal(np.asarray(L.l2_loss(jnp.asarray(d))), exact)


def test_l2_loss_targets_derivative_at_huge_and_infinite_differences():
    """The targets' derivative is −d·g: finite at |d| = max (XLA's rewrite of the product rule to
    (d·t + d·t)·½ would overflow there), ∓inf at d = ±inf (not NaN)."""
    big = float(jnp.finfo(jnp.float32).max)
    p = jnp.asarray([big, -big, jnp.inf, -jnp.inf, 2.0], jnp.float32)
    t = jnp.asarray([0.5, -0.5, 1.0, 1.0, 1.0], jnp.float32)
    for grad in (jax.grad, lambda f, **kw: jax.jit(jax.grad(f, **kw))):
        dp, dt = grad(lambda p, t: jnp.sum(L.l2_loss(p, t)), argnums=(0, 1))(p, t)
        np.testing.assert_array_equal(dp, [big, -big, jnp.inf, -jnp.inf, 1.0])
        np.testing.assert_array_equal(dt, [-big, big, -jnp.inf, jnp.inf, -1.0])


def test_huber_loss_and_log_cosh():
    """Values against the formulas in float64 NumPy (optax's Huber; log cosh by its definition), the
    hand gradients against their closed forms, the targets' against −∂p, delta's against autodiff of
    optax's formula, and optax's own test values."""
    p, t = _normal(4, (3, 7)) * 2, _normal(5, (3, 7))
    pn, tn = np.asarray(p), np.asarray(t)
    e = pn - tn
    for delta in (1.0, 0.3):
        q = np.minimum(np.abs(e), delta)
        _close(L.huber_loss(p, t, delta=delta), 0.5 * q**2 + delta * (np.abs(e) - q), what=f"huber {delta}")
    _close(L.log_cosh(p, t), np.log(np.cosh(e)), what="log_cosh")
    _close(L.log_cosh(p), np.log(np.cosh(pn)), what="log_cosh, targets omitted")
    g = jnp.sin(p)
    for f, df in ((lambda p, t: L.huber_loss(p, t, delta=0.3), np.clip(e, -0.3, 0.3)),
                  (L.log_cosh, np.tanh(e))):
        dp, dt = jax.grad(lambda p, t: jnp.vdot(g, f(p, t)), (0, 1))(p, t)
        _close(dp, np.asarray(g) * df, what="d/dpredictions")
        _close(dt, -dp, what="d/dtargets")
    d, d_ref = (jax.grad(lambda d, f=f: jnp.vdot(g, f(p, t, delta=d)))(0.3)
                for f in (L.huber_loss, L.huber_loss.reference))
    _close(d, d_ref, what="d/ddelta")
    # optax's test values (its _regression_test.py)
    ys = np.array([-2.0, 0.5, 0.0, 0.5, 2.0, 4.0, 132.0])
    ts = np.array([0.0, -0.5, 0.0, 1.0, 1.0, 2.0, 0.3])
    _close(jax.jit(L.huber_loss)(ys, ts, delta=1.0), [1.5, 0.5, 0.0, 0.125, 0.5, 1.5, 131.2])
    ys, ts = jnp.array([500, -2.0, -1.0, 0.5, 1.0]), jnp.array([-200, -1.5, 0.0, -1, 1.0])
    _close(L.log_cosh(ys, ts), np.log(np.cosh(np.asarray(ys - ts))), what="log_cosh of optax's values")


def test_huber_loss_at_its_joints_and_special_values():
    """At |e| = δ the two pieces meet with slope ±δ (jax's min splits its derivative there, which sums
    to the same δ); ±inf gives inf with slope ±δ, NaN stays NaN; a traced or per-entry delta."""
    e = jnp.asarray([-0.5, 0.5, -jnp.inf, jnp.inf, jnp.nan, 0.0])
    val, dp = jax.value_and_grad(lambda p: jnp.sum(L.huber_loss(p, delta=0.5) * jnp.arange(1.0, 7.0)))(e)
    del val
    ref = jax.grad(lambda p: jnp.sum(jnp.nan_to_num(L.huber_loss.reference(p, delta=0.5)) * jnp.arange(1.0, 7.0)))(e)
    np.testing.assert_array_equal(np.asarray(dp)[:4], [-0.5, 1.0, -1.5, 2.0])
    np.testing.assert_array_equal(np.asarray(ref)[:2], [-0.5, 1.0])
    assert jnp.isnan(dp[4]) and dp[5] == 0
    np.testing.assert_array_equal(L.huber_loss(e, delta=0.5)[:4], [0.125, 0.125, jnp.inf, jnp.inf])
    per_entry = jnp.asarray([0.1, 0.2, 0.3, 0.4, 0.5, 0.6])
    x = jnp.linspace(-1.0, 1.0, 6)
    _close(jax.jit(L.huber_loss)(x, None, per_entry), L.huber_loss.reference(x, delta=per_entry))
    _close(jax.grad(lambda x: jnp.sum(L.huber_loss(x, delta=per_entry)))(x), np.clip(x, -per_entry, per_entry))


def test_log_cosh_value_is_optax_and_its_derivative_exact():
    """The value is optax's logaddexp(e, −e) − log 2, bit for bit (its absolute error is ~u, so it has
    no correct digit of e²/2 below |e| ~ √u: the docstring says so); the hand derivative tanh(e) is
    within 4 ULP of 50-digit arithmetic on a scan of |e| from 1e-6 to 40, both signs, in float32 and
    float64; the limits at ±inf, NaN at NaN."""
    mpmath = pytest.importorskip("mpmath")
    mpmath.mp.dps = 50
    for dtype in (np.float32, np.float64):
        xs = jnp.asarray(np.concatenate([np.geomspace(1e-6, 40, 400), -np.geomspace(1e-6, 40, 100)]).astype(dtype))
        np.testing.assert_array_equal(jax.jit(L.log_cosh)(xs), jax.jit(L.log_cosh.reference)(xs))
        d = np.asarray(jax.vmap(jax.grad(L.log_cosh))(xs), np.float64)
        d_exact = np.array([float(mpmath.tanh(mpmath.mpf(float(v)))) for v in np.asarray(xs)])
        assert np.max(np.abs(d - d_exact) / np.spacing(np.abs(d_exact).astype(dtype))) <= 4, dtype
    big = jnp.asarray([jnp.inf, -jnp.inf, 1e30, jnp.nan])
    np.testing.assert_array_equal(L.log_cosh(big)[:3], [jnp.inf, jnp.inf, 1e30 - np.log(2.0)])
    assert jnp.isnan(L.log_cosh(big)[3])
    np.testing.assert_array_equal(jax.vmap(jax.grad(L.log_cosh))(big)[:3], [1.0, -1.0, 1.0])


def test_huber_and_log_cosh_broadcast_and_promote():
    """Targets broadcast against the predictions as optax's ``predictions − targets`` does (the
    predictions' gradient summed back to their shape); dtypes promote as jax.numpy's; float16 stays
    float16."""
    p, t = _normal(6, (5,)), _normal(7, (3, 5))
    for f in (L.huber_loss, L.log_cosh):
        out = f(p, t)
        assert out.shape == (3, 5)
        _close(out, f(jnp.broadcast_to(p, (3, 5)), t), what="explicit broadcast")
        _close(jax.grad(lambda p, f=f: jnp.sum(f(p, t)))(p), jax.grad(lambda p, f=f: jnp.sum(f.reference(p, t)))(p),
               what="gradient summed back")
    with pytest.raises(ValueError, match=r"targets of shape \(4,\) does not broadcast with predictions "
                                         r"of shape \(5,\)"):
        L.huber_loss(p, jnp.ones(4))
    b, f32 = jnp.asarray([0.5, -3.0], jnp.bfloat16), jnp.asarray([0.0, 1.0], jnp.float32)
    with jax.numpy_dtype_promotion("standard"):
        assert L.log_cosh(b, f32).dtype == jnp.float32 and L.huber_loss(b, f32).dtype == jnp.float32
    h = jnp.asarray([1e-3, 4.9, 5.1, 11.0, 60000.0], jnp.float16)
    np.testing.assert_array_equal(L.log_cosh(h), L.log_cosh.reference(h))  # optax's float16 bits
    assert jax.grad(lambda v: jnp.sum(L.log_cosh(v)))(h).dtype == jnp.float16


def _cos_np(a, b, axis=-1, where=None, eps=0.0):
    """Cosine similarity in float64 NumPy, by its definition."""
    w = np.ones(np.broadcast_shapes(a.shape, b.shape), bool) if where is None else where
    a, b = np.broadcast_to(a, w.shape), np.broadcast_to(b, w.shape)
    na = np.sqrt(np.maximum((np.where(w, a, 0) ** 2).sum(axis, keepdims=True), eps))
    nb = np.sqrt(np.maximum((np.where(w, b, 0) ** 2).sum(axis, keepdims=True), eps))
    return np.where(w, (a / na) * (b / nb), 0).sum(axis)


@pytest.mark.parametrize("axis", [-1, 0, (0, 2), None], ids=str)
def test_cosine_similarity_and_distance(axis):
    """Values against the definition in float64 NumPy; both hand gradients against the closed forms
    (b̂ − s·â)/‖a‖ and (â − s·b̂)/‖b‖ and against autodiff of optax's formula; forward mode; the
    distance is 1 − the similarity with the negated gradients."""
    a, b = _normal(8, (3, 4, 5)), _normal(9, (3, 4, 5))
    an, bn = np.asarray(a), np.asarray(b)
    s = L.cosine_similarity(a, b, axis=axis)
    _close(s, _cos_np(an, bn, axis), what="similarity")
    _close(L.cosine_distance(a, b, axis=axis), 1 - _cos_np(an, bn, axis), what="distance")
    g = jnp.cos(s) if s.ndim else jnp.float64(0.7)
    for f in (L.cosine_similarity, L.cosine_distance):
        ours = jax.grad(lambda a, b, f=f: jnp.sum(g * f(a, b, axis=axis)), (0, 1))(a, b)
        theirs = jax.grad(lambda a, b, f=f: jnp.sum(g * f.reference(a, b, axis=axis)), (0, 1))(a, b)
        for o, t, which in zip(ours, theirs, "ab"):
            _close(o, t, what=f"{f.__name__} d/d{which}")
        t_a, t_b = _normal(10, a.shape), _normal(11, b.shape)
        _close(jax.jvp(lambda a, b, f=f: f(a, b, axis=axis), (a, b), (t_a, t_b))[1],
               jax.jvp(lambda a, b, f=f: f.reference(a, b, axis=axis), (a, b), (t_a, t_b))[1], what="JVP")
    keep = axis if axis is not None else (0, 1, 2)
    na = np.sqrt((an**2).sum(keep, keepdims=True))
    nb = np.sqrt((bn**2).sum(keep, keepdims=True))
    sk = np.expand_dims(np.asarray(s), keep) if axis is not None else np.asarray(s)
    gk = np.expand_dims(np.asarray(g), keep) if axis is not None else np.asarray(g)
    da, db = jax.grad(lambda a, b: jnp.sum(g * L.cosine_similarity(a, b, axis=axis)), (0, 1))(a, b)
    _close(da, gk * (bn / nb - sk * an / na) / na, what="closed form d/da")
    _close(db, gk * (an / na - sk * bn / nb) / nb, what="closed form d/db")


def test_cosine_masks_epsilon_broadcasting_and_optax_values():
    """optax's own values (its _regression_test.py); a mask equals the filtered vectors, and masked
    entries, even NaN ones, get a zero gradient; ε raises a small norm (its clip's derivative 0
    below it, as optax's); targets broadcast against the predictions; a zero vector is NaN."""
    ys = np.array([[10.0, 1.0, -2.0], [1.0, 4.0, 0.2]], np.float32)
    ts = np.array([[0.0, 1.2, 0.2], [1.0, -0.3, 0.0]], np.float32)
    np.testing.assert_allclose(jax.jit(L.cosine_distance)(ys, ts), [0.9358251989, 1.0464068465], atol=1e-6)
    p, t = _normal(12, (10,)), _normal(13, (10,))
    m = jnp.asarray(np.random.default_rng(14).random(10) < 0.6).at[0].set(True)
    kept = np.asarray(m)
    _close(L.cosine_similarity(p, t, where=m), L.cosine_similarity(p[kept], t[kept]), what="masked")
    p_nan = p.at[~kept].set(jnp.nan)
    da = jax.grad(lambda p: L.cosine_similarity(p, t, where=m))(p_nan)
    assert np.all(np.asarray(da)[~kept] == 0) and np.all(np.isfinite(np.asarray(da)))
    _close(da[kept], jax.grad(lambda p: L.cosine_similarity(p, t[kept]))(p[kept]), what="masked gradient")
    small = jnp.asarray([1e-3, 2e-3, 0.0])
    for eps in (1e-2, 1e-5):
        got = jax.grad(lambda v, eps=eps: L.cosine_similarity(v, t[:3], epsilon=eps), 0)(small)
        ref = jax.grad(lambda v, eps=eps: L.cosine_similarity.reference(v, t[:3], epsilon=eps), 0)(small)
        _close(got, ref, what=f"epsilon {eps}")
    d_eps = jax.grad(lambda e: L.cosine_similarity(small, t[:3], epsilon=e))(1e-2)
    _close(d_eps, jax.grad(lambda e: L.cosine_similarity.reference(small, t[:3], epsilon=e))(1e-2), what="d/deps")
    rows = _normal(15, (4, 10))
    _close(L.cosine_similarity(p, rows), L.cosine_similarity(jnp.broadcast_to(p, (4, 10)), rows), what="broadcast")
    _close(jax.grad(lambda p: jnp.sum(L.cosine_similarity(p, rows)))(p),
           jax.grad(lambda p: jnp.sum(L.cosine_similarity.reference(p, rows)))(p), what="broadcast gradient")
    assert jnp.isnan(L.cosine_similarity(jnp.zeros(3), t[:3]))
    with pytest.raises(ValueError, match=r"targets of shape \(4,\) does not broadcast with predictions "
                                         r"of shape \(10,\)"):
        L.cosine_similarity(p, jnp.ones(4))
    with pytest.raises(ValueError, match=r"'epsilon' of shape \(10,\) does not broadcast to the norms'"):
        L.cosine_similarity(p, t, epsilon=jnp.ones(10))


def test_cosine_epsilon_at_its_kink_takes_half_the_derivative():
    """A squared norm exactly ε (‖(3, 4)‖² = 25): the clip's kink, where the rule takes jax's ½ of the
    s·â term (autodiff of optax's formula), between its values just above and just below ε."""
    a, b = jnp.asarray([3.0, 4.0]), jnp.asarray([3.0, 7.0])  # ‖b‖² = 58: never clipped here
    at, below, above = (jax.grad(L.cosine_similarity)(a, b, epsilon=e) for e in (25.0, 24.0, 25.0 + 1e-9))
    _close(at, jax.grad(L.cosine_similarity.reference)(a, b, epsilon=25.0), what="at the kink")
    _close(at, (np.asarray(below) + np.asarray(above)) / 2, rtol=1e-9, what="half way between the sides")
    assert not np.allclose(np.asarray(below), np.asarray(above))


def _dists(seed, shape):
    r = np.random.default_rng(seed)
    return jnp.asarray(r.dirichlet(np.ones(shape[-1]), shape[:-1]))


@pytest.mark.parametrize("axis", [-1, 0, None], ids=str)
def test_kl_divergences(axis):
    """Values against the definition in float64 NumPy; both hand gradients against the closed forms
    and against autodiff of optax's formulas (no zero targets here); forward mode; a mask equals the
    filtered distributions; the two forms agree on the same distributions."""
    p, q = _dists(16, (3, 6)), _dists(17, (3, 6))
    lp, pn, qn = jnp.log(p), np.asarray(p), np.asarray(q)
    kl = L.kl_divergence(lp, q, axis=axis)
    _close(kl, (qn * (np.log(qn) - np.log(pn))).sum(axis), what="kl")
    _close(L.kl_divergence_with_log_targets(lp, jnp.log(q), axis=axis), kl, what="log targets")
    g = jnp.cos(kl) if kl.ndim else jnp.float64(0.7)
    for f, second in ((L.kl_divergence, q), (L.kl_divergence_with_log_targets, jnp.log(q))):
        ours = jax.grad(lambda a, b, f=f: jnp.sum(g * f(a, b, axis=axis)), (0, 1))(lp, second)
        theirs = jax.grad(lambda a, b, f=f: jnp.sum(g * f.reference(a, b, axis=axis)), (0, 1))(lp, second)
        for o, t, which in zip(ours, theirs, ("log_predictions", "targets")):
            _close(o, t, what=f"{f.__name__} d/d{which}")
        tangents = (_normal(18, lp.shape), _normal(19, lp.shape))
        _close(jax.jvp(lambda a, b, f=f: f(a, b, axis=axis), (lp, second), tangents)[1],
               jax.jvp(lambda a, b, f=f: f.reference(a, b, axis=axis), (lp, second), tangents)[1], what="JVP")
    # the generalized form on unnormalized targets: the KL terms plus the mass difference e^{lp} − t
    u = q * 1.7
    un = np.asarray(u)
    _close(L.generalized_kl_divergence(lp, u, axis=axis),
           (un * (np.log(un) - np.log(pn)) + pn - un).sum(axis), what="generalized")
    ours = jax.grad(lambda a, b: jnp.sum(g * L.generalized_kl_divergence(a, b, axis=axis)), (0, 1))(lp, u)
    theirs = jax.grad(lambda a, b: jnp.sum(g * L.generalized_kl_divergence.reference(a, b, axis=axis)), (0, 1))(lp, u)
    for o, t, which in zip(ours, theirs, ("log_predictions", "targets")):
        _close(o, t, what=f"generalized d/d{which}")
    gk = np.expand_dims(np.asarray(g), axis) if axis is not None else np.asarray(g)
    _close(ours[0], gk * (pn - un), what="generalized closed form d/dlp")
    _close(ours[1], gk * (np.log(un) - np.log(pn)), what="generalized closed form d/dt")
    d_lp, d_q = jax.grad(lambda a, b: jnp.sum(g * L.kl_divergence(a, b, axis=axis)), (0, 1))(lp, q)
    _close(d_lp, -gk * qn, what="closed form d/dlp")
    _close(d_q, gk * (np.log(qn) - np.log(pn) + 1), what="closed form d/dt")
    m = jnp.asarray(np.random.default_rng(20).random(6) < 0.6).at[0].set(True)
    kept = np.asarray(m)
    _close(L.kl_divergence(lp[0], q[0], where=m), L.kl_divergence(lp[0][kept], q[0][kept]), what="masked")
    grads = jax.grad(lambda a: L.kl_divergence(a, q[0], where=m))(lp[0].at[~kept].set(jnp.nan))
    assert np.all(np.asarray(grads)[~kept] == 0) and np.all(np.isfinite(np.asarray(grads)))


def test_kl_divergences_at_zero_targets():
    """A zero target contributes 0 whatever its log-prediction, −inf included (0·log 0 = 0; optax:
    NaN); its gradients are 0 for the log-prediction, and for the target the most negative finite
    number in place of the −inf limit (a zero tangent then gives 0; optax: NaN) unless the
    log-prediction is −inf too (+inf: the loss is +inf for any positive target). In log space a −inf
    target contributes 0 for a finite log-prediction, with gradients 0 (optax: NaN), and NaN on a −inf
    log-prediction, as optax's."""
    lp = jnp.asarray([-jnp.inf, jnp.log(0.25), jnp.log(0.75)])
    t = jnp.asarray([0.0, 0.5, 0.5])
    _close(L.kl_divergence(lp, t), 0.5 * np.log(0.5 / 0.25) + 0.5 * np.log(0.5 / 0.75), what="zero target")
    assert jnp.isnan(L.kl_divergence.reference(lp, t))
    d_lp, d_t = jax.grad(L.kl_divergence, (0, 1))(lp, t)
    np.testing.assert_array_equal(np.asarray(d_lp), [0.0, -0.5, -0.5])
    assert d_t[0] == jnp.inf  # on a −inf log-prediction any positive target costs +inf
    lp_finite = lp.at[0].set(jnp.log(0.1))
    d_t = jax.grad(L.kl_divergence, 1)(lp_finite, t)
    assert d_t[0] == jnp.finfo(jnp.float64).min  # the −inf limit, finite
    _, tangent = jax.jvp(L.kl_divergence, (lp_finite, t), (jnp.zeros(3), jnp.asarray([0.0, 1.0, -1.0])))
    assert bool(jnp.isfinite(tangent))
    lt = jnp.log(t)
    _close(L.kl_divergence_with_log_targets(lp_finite, lt), L.kl_divergence(lp_finite, t), what="log form")
    assert jnp.isnan(L.kl_divergence_with_log_targets.reference(lp_finite, lt))
    d_lp, d_lt = jax.grad(L.kl_divergence_with_log_targets, (0, 1))(lp_finite, lt)
    assert d_lp[0] == 0 and d_lt[0] == 0
    assert jnp.isnan(L.kl_divergence_with_log_targets(lp, lt))  # −inf on both sides: NaN, as optax's
    # a positive target on a −inf log-prediction: the honest +inf
    assert L.kl_divergence(jnp.asarray([-jnp.inf, 0.0]), jnp.asarray([0.5, 0.5])) == jnp.inf


def test_hinge_and_perceptron_losses():
    """Values against max(0, m − p·t) in float64 NumPy; the hand gradient against −t·[m − p·t > 0] and
    against autodiff of optax's formula, the kinks included (−t/2 there, what jax's maximum gives);
    integer ±1 targets (standard promotion); the hinge's targets broadcast, the perceptron's must have the scores' shape
    (optax checks it); optax's test values."""
    p = jnp.asarray([2.0, -0.5, 1.0, 0.0, -1.0, 0.25, 3.0, -2.0])
    t = jnp.asarray([1.0, -1, 1, 1, -1, 1, -1, -1])
    pn, tn = np.asarray(p), np.asarray(t)
    with jax.numpy_dtype_promotion("standard"):  # integer labels, promoted as jax.numpy promotes them
        np.testing.assert_array_equal(L.hinge_loss(p, t.astype(jnp.int32)), L.hinge_loss(p, t))
    with pytest.raises(TypeError, match=r"predictor_outputs dtype float64 and targets dtype int32"):
        L.hinge_loss(p, t.astype(jnp.int32))  # strict promotion (this suite's)
    for f, m in ((L.hinge_loss, 1.0), (L.perceptron_loss, 0.0)):
        _close(f(p, t), np.maximum(0, m - pn * tn), what=f.__name__)
        z = m - pn * tn
        want = -tn * np.where(z > 0, 1.0, np.where(z == 0, 0.5, 0.0))
        assert np.any(z == 0)  # a kink is among the points
        d = jax.grad(lambda p, f=f: jnp.sum(f(p, t)))(p)
        np.testing.assert_array_equal(d, want)
        np.testing.assert_array_equal(d, jax.grad(lambda p, f=f: jnp.sum(f.reference(p, t)))(p))
        _close(jax.jvp(lambda p, f=f: f(p, t), (p,), (jnp.ones_like(p),))[1], want, what="JVP")
    scores = jnp.asarray([[10.0, 20.0], [-1.0, 0.5]])
    _close(L.hinge_loss(scores, jnp.asarray([1.0, -1.0])), [[0.0, 21.0], [2.0, 1.5]], what="broadcast")
    with pytest.raises(ValueError, match=r"targets of shape \(2,\) must have the shape of predictor_outputs, \(2, 2\)"):
        L.perceptron_loss(scores, jnp.asarray([1.0, -1.0]))
    np.testing.assert_allclose(L.hinge_loss(jnp.asarray([10.0, 20.0]), jnp.asarray([1.0, -1.0])), [0.0, 21.0])


def test_mse():
    p, t = _normal(4, (3, 7)), _normal(5, (3, 7))
    pn, tn = np.asarray(p), np.asarray(t)
    _close(L.mse(p, t), ((pn - tn) ** 2).mean(-1))
    g = jnp.array([1.0, -2.0, 0.5])
    dp, dt = jax.grad(lambda p, t: jnp.vdot(g, L.mse(p, t)), (0, 1))(p, t)
    _close(dp, g[:, None] * 2 * (p - t) / 7, what="2(p − t)/n")
    _close(dt, -dp)


# ------------------------------------------------------------------------------------------------
# Forward mode: jax.jvp and jax.jacfwd on every loss agree with reverse mode and the references
# ------------------------------------------------------------------------------------------------

_Z = 2.0 * np.random.default_rng(20).standard_normal((3, 4))
_Y = np.asarray(jax.nn.softmax(jnp.asarray(np.random.default_rng(21).standard_normal((3, 4)))))
_K = np.array([3, 0, 1])
_MASK = np.array([[1, 0, 1, 1], [0, 0, 0, 0], [1, 1, 1, 1]], bool)

FORWARD_CASES = {
    "sce": (SCE, (_Z, _Y), {}),
    "sce-axis0": (SCE, (_Z, _Y), {"axis": 0}),
    "sce-where": (SCE, (_Z, _Y), {"where": _MASK}),
    "sce-int": (lambda z, **kw: SCE_INT(z, _K, **kw), (_Z,), {}),
    "sce-int-where": (lambda z, **kw: SCE_INT(z, _K, **kw), (_Z,), {"where": _MASK}),
    "sce-int-axis-tuple": (lambda z, **kw: SCE_INT(z, np.array(5), **kw), (_Z,), {"axis": (1, 0)}),
    "bce": (BCE, (_Z, _Y), {}),
    "squared_error": (L.squared_error, (_Z, _Y), {}),
    "squared_error-no-targets": (L.squared_error, (_Z,), {}),
    "l2_loss": (L.l2_loss, (_Z, _Y), {}),
    "mse": (L.mse, (_Z, _Y), {}),
}


def _reference_of(f):
    return {SCE: SCE.reference, BCE: BCE.reference, L.squared_error: L.squared_error.reference,
            L.l2_loss: L.l2_loss.reference, L.mse: L.mse.reference}.get(f)


@pytest.mark.parametrize("case", FORWARD_CASES, ids=list(FORWARD_CASES))
def test_forward_mode(case):
    f, args, kw = FORWARD_CASES[case]
    args = tuple(jnp.asarray(a) for a in args)
    fn = lambda *a: f(*a, **kw)  # noqa: E731
    tangents = tuple(jnp.sin(3.0 * a + i) for i, a in enumerate(args))
    out, t_out = jax.jvp(fn, args, tangents)
    # The primal of jax.jvp is the forward inside another compiled program: bitwise equal on XLA:CPU,
    # within a few roundings where a GPU compiler fuses the two programs differently (1 ULP seen).
    np.testing.assert_allclose(out, fn(*args), rtol=4 * float(jnp.finfo(out.dtype).eps), atol=0)
    # The comparisons, as one compiled program (jax.jvp above ran eagerly, as a user calls it).
    ref = _reference_of(f)
    nums = tuple(range(len(args)))

    @jax.jit
    def comparisons(args, tangents):
        jac_rev = jax.jacrev(fn, argnums=nums)(*args)
        # jvp = Σ_i J_i t_i with J from reverse mode
        expected = sum(jnp.tensordot(j, t, axes=t.ndim) for j, t in zip(jac_rev, tangents))
        jac_fwd = jax.jacfwd(fn, argnums=nums)(*args)
        t_ref = None if ref is None else jax.jvp(lambda *a: ref(*a, **kw), args, tangents)[1]
        return jac_rev, expected, jac_fwd, t_ref

    jac_rev, expected, jac_fwd, t_ref = comparisons(args, tangents)
    _close(t_out, expected, what=f"{case}: jvp vs jacrev")
    for jf, jr in zip(jac_fwd, jac_rev):
        _close(jf, jr, what=f"{case}: jacfwd vs jacrev")
    if ref is not None:
        _close(t_out, t_ref, what=f"{case}: jvp vs the reference's")


def test_hessians():
    """Second derivatives run through the hand rules (forward mode over reverse mode): the softmax
    losses' Hessian in z is diag(p) − ppᵀ (times Σy), the binary loss's σ(1 − σ), the L2 loss's 1."""
    z = _normal(30, (5,))
    y = jax.nn.softmax(_normal(31, (5,)))
    p = jax.nn.softmax(z)
    cov = jnp.diag(p) - jnp.outer(p, p)
    _close(jax.hessian(lambda z: SCE(z, y))(z), cov, what="softmax CE")
    _close(jax.hessian(lambda z: SCE_INT(z, 2))(z), cov, what="integer labels")
    s = jax.nn.sigmoid(z)
    _close(jax.hessian(lambda z: jnp.sum(BCE(z, y)))(z), jnp.diag(s * (1 - s)), what="binary")
    _close(jax.hessian(lambda z: jnp.sum(L.l2_loss(z, y)))(z), jnp.eye(5), what="l2")


def test_forward_mode_with_infinite_logits_is_not_nan():
    """A −inf logit with label 0 (and z = ±inf in the binary loss): forward mode in the logits alone
    is finite — the labels' derivative there (+∞ exactly) is held at the largest finite value, so the
    labels' zero tangent contributes 0, not 0·∞."""
    z = jnp.array([[0.0, -jnp.inf, 1.0]])
    y = jnp.array([[0.3, 0.0, 0.7]])
    jf = jax.jacfwd(lambda z: SCE(z, y))(z)
    assert jnp.all(jnp.isfinite(jf))
    _close(jf, jax.jacrev(lambda z: SCE(z, y))(z))
    zb = jnp.array([jnp.inf, -jnp.inf, 3.0])
    yb = jnp.array([1.0, 0.0, 0.5])
    jb = jax.jacfwd(lambda z: BCE(z, yb))(zb)
    assert jnp.all(jnp.isfinite(jb))
    _close(jnp.diag(jb), jax.nn.sigmoid(zb) - yb)


# ------------------------------------------------------------------------------------------------
# Stability
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("big", [1e4, 1e30, "max"])
def test_softmax_cross_entropy_large_logits(big, dtype):
    big = float(jnp.finfo(dtype).max) if big == "max" else big
    if big > float(jnp.finfo(dtype).max):
        pytest.skip("not representable in float32")
    z = jnp.asarray([[big, 0.0, -big], [0.0, big, -big]], dtype)
    y = jnp.asarray([[1.0, 0.0, 0.0], [0.5, 0.5, 0.0]], dtype)
    loss = SCE(z, y)
    # row 0: the right class is certain: 0. row 1: −½·log p_0 − ½·log p_1 = ½·big, exactly
    np.testing.assert_array_equal(loss, jnp.asarray([0.0, 0.5 * big], dtype))
    dz = jax.grad(lambda z: jnp.sum(SCE(z, y)))(z)
    np.testing.assert_array_equal(dz, jnp.asarray([[0, 0, 0], [-0.5, 0.5, 0]], dtype))
    k = jnp.array([0, 0])
    li = SCE_INT(z, k)
    np.testing.assert_array_equal(li, jnp.asarray([0.0, big], dtype))  # lse − z_k = big − 0
    dk = jax.grad(lambda z: jnp.sum(SCE_INT(z, k)))(z)
    np.testing.assert_array_equal(dk, jnp.asarray([[0, 0, 0], [-1, 1, 0]], dtype))


def test_softmax_cross_entropy_neg_inf_logit_with_zero_label():
    """0·log 0 = 0: an impossible class that is also not a label costs nothing."""
    z = jnp.array([[0.0, -jnp.inf, 1.0]])
    y = jnp.array([[0.3, 0.0, 0.7]])
    loss = SCE(z, y)
    _close(loss, -(np.array([0.3, 0.7]) * _np_log_softmax(np.array([0.0, 1.0]))).sum()[None])
    dz = jax.grad(lambda z: jnp.sum(SCE(z, y)))(z)
    assert jnp.all(jnp.isfinite(dz)) and dz[0, 1] == 0
    # a label on an impossible class: an infinite loss, the honest answer
    assert SCE(z, jnp.array([[0.0, 1.0, 0.0]]))[0] == jnp.inf
    assert SCE_INT(z, jnp.array([1]))[0] == jnp.inf
    _close(SCE_INT(z, jnp.array([2])), -_np_log_softmax(np.array([0.0, 1.0]))[1:])


@pytest.mark.parametrize("masked", [False, True], ids=["plain", "where"])
@pytest.mark.parametrize("dtype", [jnp.float16, jnp.bfloat16, jnp.float32, jnp.float64],
                         ids=["f16", "bf16", "f32", "f64"])
def test_softmax_cross_entropy_label_sum_form_agrees_with_the_per_entry_form(dtype, masked):
    """The rule over long slices of large logits (on XLA:CPU, where fnnet._numerics.apart_pays) sums
    the loss as lse·Σy − Σ y·s, s = z − m; the forward alone, at this size, as −Σ y·(s − lse). The
    special examples give the same value in both: ties at +inf, all −inf, a label 0 at a logit −inf
    (0), a label on a logit −inf (+inf), NaN logits (NaN; with labels all 0: 0), an infinite label at
    the largest logit and elsewhere, labels all 0, labels of both signs summing to 0, a fully and a
    partly masked example. Elsewhere the two agree within their rounding bounds: each form, on the same
    s and lse, is within (n + 1)u·Σ|y|(|s| + lse) of the exact sum (s ≤ 0 ≤ lse: no cancellation
    between the two parts; n roundings in the sums, one in each product), so the two within
    2(n + 2)u·Σ|y|(|s| + lse), the extra 2u for the second-order terms."""
    from fnnet._numerics import apart_pays

    shape, n = (256, 64), 64
    u = float(jnp.finfo(dtype).eps) / 2
    z = np.array(jax.random.normal(jax.random.key(21), shape, dtype) * 3)
    y = np.array(jax.nn.softmax(jax.random.normal(jax.random.key(22), shape, dtype)))
    top = z.argmax(axis=1)
    z[0, [3, 9]] = np.inf
    z[1] = -np.inf
    z[2, 5], y[2, 5] = -np.inf, 0.0
    z[3, 5], y[3, 5] = -np.inf, 0.25
    z[4, 7] = np.nan
    z[5, 7], y[5] = np.nan, 0.0
    y[6, top[6]] = np.inf
    y[7, (top[7] + 1) % n] = np.inf
    y[8] = 0.0
    y[9] = 0.0
    y[9, :4] = (0.5, -0.5, 0.25, -0.25)
    y[10] *= 3.0
    y[11, (top[11] + 2) % n] = -np.inf
    where = None
    if masked:
        where = np.ones(shape, bool)
        where[12] = False
        where[13, 2] = False
        y[13, 2] = 0.5
    loss_rule, _ = jax.vjp(lambda v: SCE(v, y, where=where), z)
    alone = np.asarray(SCE(z, y, where=where), np.float64)
    label_sum = np.asarray(jax.jit(lambda v, w: L._sce_parts(v, w, -1, where, apart=True)[0])(z, y), np.float64)
    if jax.default_backend() == "cpu":  # the rule takes the label sum's form here
        assert apart_pays(z, (1,))
        np.testing.assert_array_equal(np.asarray(loss_rule, np.float64), label_sum)
    rule = label_sum
    exact = ~np.isfinite(alone) | (alone == 0)  # NaN, ±inf and 0: the same in both
    np.testing.assert_array_equal(rule[exact], alone[exact])
    assert np.isnan(rule[4]) and rule[5] == 0 and rule[3] == rule[6] == rule[7] == np.inf
    assert rule[8] == 0 and rule[11] == -np.inf and np.all(np.isfinite(rule[[1, 2, 9, 10]]))
    if masked:
        assert rule[12] == 0 and np.isfinite(rule[13])
    inc = np.ones(shape, bool) if where is None else where
    z64, y64 = np.where(inc, z.astype(np.float64), -np.inf), y.astype(np.float64)
    m = z64.max(axis=1, keepdims=True)
    with np.errstate(invalid="ignore"):
        s = np.where(z64 == m, 0.0, z64 - m)  # the tie rule's shift: 0 at the maximum, also at ±inf
    lse = np.log(np.exp(s).sum(axis=1, keepdims=True))
    with np.errstate(invalid="ignore"):
        terms = np.where(inc & (y64 != 0), np.abs(y64) * (np.abs(s) + lse), 0.0)
    bound = 2 * (n + 2) * u * terms.sum(axis=1)
    rest = ~exact
    if jax.default_backend() == "cpu":
        assert np.any(rule[rest] != alone[rest])  # the other form indeed: it rounds differently somewhere
    assert np.all(np.abs(rule[rest] - alone[rest]) <= bound[rest]), np.max(np.abs(rule - alone)[rest] / bound[rest])


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64], ids=["f32", "f64"])
def test_sigmoid_bce_extremes(dtype):
    big = float(jnp.finfo(dtype).max)
    z = jnp.asarray([1e30, -1e30, big, -big, jnp.inf, -jnp.inf, 1e4], dtype)
    one, zero = jnp.ones_like(z), jnp.zeros_like(z)
    np.testing.assert_array_equal(BCE(z, jnp.where(z > 0, one, zero)), zero)
    np.testing.assert_array_equal(BCE(z, jnp.where(z > 0, zero, one)), jnp.abs(z))
    half = jnp.full_like(z, 0.5)
    np.testing.assert_array_equal(BCE(z, half), 0.5 * jnp.abs(z))
    dz = jax.grad(lambda z: jnp.sum(BCE(z, half)))(z)
    np.testing.assert_array_equal(dz, jnp.where(z > 0, 0.5, -0.5).astype(dtype))
    nan = jnp.asarray([jnp.nan], dtype)
    for lab in (0.0, 1.0, 0.5):
        assert jnp.isnan(BCE(nan, jnp.asarray([lab], dtype)))[0]


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64, jnp.bfloat16], ids=["f32", "f64", "bf16"])
def test_sigmoid_bce_shares_one_exponential_with_logaddexps_bits(dtype):
    """The two softpluses share log(1 + e^{−|z|}): the same operations as jnp.logaddexp(±z, 0), so the
    same values bit for bit (NaN where they are NaN), on random, tail and special logits with hard,
    soft and exactly-½ labels."""
    rng = np.random.default_rng(5)
    big = float(jnp.finfo(dtype).max)
    z = np.concatenate([rng.standard_normal(500) * 10.0 ** rng.integers(-6, 4, 500),
                        [0.0, -0.0, np.inf, -np.inf, np.nan, big, -big, 1e30, -1e30, 40.0, -40.0, 700.0]])
    z = jnp.asarray(z, dtype)

    @jax.jit
    def logaddexp_form(z, y):
        pos = jnp.where(y == 0, 0.0, y * jnp.logaddexp(-z, 0.0))
        return pos + jnp.where(y == 1, 0.0, (1 - y) * jnp.logaddexp(z, 0.0))

    for y in (rng.integers(0, 2, z.size), rng.random(z.size), np.full(z.size, 0.5)):
        y = jnp.asarray(y, dtype)
        got, want = np.asarray(BCE(z, y), np.float64), np.asarray(logaddexp_form(z, y), np.float64)
        np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
        ok = ~np.isnan(want)
        np.testing.assert_array_equal(got[ok].view(np.uint64), want[ok].view(np.uint64))


def test_mse_huge_differences():
    """(p − t)² overflows for |p − t| > 1.3e154; the mean (and the gradient) need not."""
    p = jnp.array([[1e200, 0.0, 0.0, 0.0]])
    t = jnp.zeros((1, 4))
    assert L.mse(p, t)[0] == jnp.inf  # (1e200)²/4 overflows, as it should
    p = jnp.array([[2e154, 0.0, 0.0, 0.0]])
    _close(L.mse(p, t), jnp.array([1e308]), rtol=4 * EPS)
    p = jnp.array([[1e308, 0.0, 0.0, 0.0]])
    t = jnp.array([[-1e308, 0.0, 0.0, 0.0]])
    dp = jax.grad(lambda p: jnp.sum(L.mse(p, t)))(p)
    _close(dp, jnp.array([[1e308, 0.0, 0.0, 0.0]]), rtol=4 * EPS)  # 2·2e308/4, although p − t overflows


# ------------------------------------------------------------------------------------------------
# Bad input
# ------------------------------------------------------------------------------------------------


def test_wrong_shapes_name_both_shapes(logits):
    with pytest.raises(ValueError, match=r"labels of shape \(4, 5\) does not broadcast with logits of shape \(4, 6\)"):
        BCE(jnp.ones((4, 6)), jnp.ones((4, 5)))
    with pytest.raises(ValueError, match=r"targets of shape \(3,\) must have the shape of predictions, \(4, 5\)"):
        L.mse(logits, jnp.ones(3))
    with pytest.raises(ValueError, match=r"labels of shape \(4, 5\) must broadcast to the logits' batch shape \(4,\)"):
        SCE_INT(logits, jnp.zeros((4, 5), jnp.int32))
    with pytest.raises(ValueError, match=r"labels of shape \(3,\) must broadcast to the logits' batch shape \(4,\)"):
        SCE_INT(logits, jnp.zeros(3, jnp.int32))
    with pytest.raises(ValueError, match=r"logits must have at least one axis.*got shape \(\)"):
        SCE(jnp.float64(1.0), jnp.float64(1.0))
    with pytest.raises(ValueError, match=r"'where' of shape \(4, 3\) does not broadcast to the logits' shape \(4, 5\)"):
        SCE(logits, logits, where=np.ones((4, 3), bool))
    with pytest.raises(ValueError, match=r"'where' of shape \(2, 2, 2\) must have the logits' 2 axes"):
        SCE_INT(logits, jnp.zeros(4, jnp.int32), where=np.ones((2, 2, 2), bool))


def test_axis_errors(logits, probs):
    with pytest.raises(ValueError, match=r"axis 2 is out of range for an input with ndim 2"):
        SCE(logits, probs, axis=2)
    with pytest.raises(ValueError, match=r"axis \(0, -2\) names the same axis twice"):
        SCE_INT(logits, jnp.zeros((), jnp.int32), axis=(0, -2))
    with pytest.raises(TypeError, match=r"axis must be an int, a tuple of ints or None; got 1.5"):
        SCE_INT(logits, jnp.zeros(4, jnp.int32), axis=1.5)


def test_dtypes(logits, probs):
    with pytest.raises(TypeError, match=r"labels must be integer class indices; got dtype float64"):
        SCE_INT(logits, jnp.zeros(4))
    with pytest.raises(TypeError, match=r"labels must be integer class indices; got dtype bool"):
        SCE_INT(logits, jnp.zeros(4, bool))
    with pytest.raises(TypeError, match=r"argument 'logits' must have a floating dtype.*got bool"):
        SCE_INT(jnp.zeros((4, 5), bool), jnp.zeros(4, jnp.int32))
    with pytest.raises(TypeError, match=r"argument 'labels' must have a floating dtype.*got bool"):
        BCE(logits, jnp.zeros((4, 5), bool))
    with pytest.raises(TypeError, match=r"'where' must be a boolean mask; got dtype int"):
        SCE(logits, probs, where=jnp.ones((4, 5), jnp.int32))
    with pytest.raises(TypeError, match=r"logits dtype float64 and labels dtype float32 have no implicit promotion"):
        SCE(logits, probs.astype(jnp.float32))
    # integer arrays are promoted as jax.numpy promotes them
    with jax.numpy_dtype_promotion("standard"):
        assert SCE(logits, jnp.zeros((4, 5), jnp.int32)).dtype == jnp.float64


# ---------------------------------------------------------------------------------------------
# The softmax cross-entropies evaluated without gradient over large logits (XLA:CPU): the plain
# formula first, the exact one where it gives NaN (fnnet._numerics.loss_branch_pays, unless_nan)
# ---------------------------------------------------------------------------------------------


def _examples_first(x, axes):
    """x's slices over ``axes`` as the rows of a 2-D view (a copy), and the inverse."""
    kept = [i for i in range(x.ndim) if i not in axes]
    order = kept + list(axes)
    shape = [x.shape[i] for i in order]
    rows = np.moveaxis(np.array(x), order, range(x.ndim)).reshape(-1, int(np.prod([x.shape[a] for a in axes])))
    return rows, lambda r: np.moveaxis(r.reshape(shape), range(x.ndim), order)


LOSS_BRANCH_CASES = [((48, 64), -1), ((64, 48), 0), ((6, 8, 16), (1, 2)), ((4, 40, 3), 1)]


@pytest.mark.parametrize("dtype", [jnp.float16, jnp.bfloat16, jnp.float32, jnp.float64],
                         ids=["f16", "bf16", "f32", "f64"])
@pytest.mark.parametrize("shape,axis", LOSS_BRANCH_CASES, ids=str)
def test_loss_branch_keeps_every_plain_example_and_fixes_the_others(with_gates, dtype, shape, axis):
    """Both softmax cross-entropies evaluated without gradient with the branch forced on: examples
    where the plain formula is not NaN keep their bits whether or not another example took the exact
    branch; the others (ties at +inf, all −inf, a label 0 at a logit −inf, a NaN, a label out of
    range) get the exact formula's values bit for bit; and on random logits the two formulas agree
    within the bound derived below."""
    axes = tuple(int(a) % len(shape) for a in np.atleast_1d(axis))
    n = int(np.prod([shape[a] for a in axes]))
    u = float(jnp.finfo(dtype).eps) / 2
    z = np.asarray(jax.random.normal(jax.random.key(5), shape, dtype) * 5)
    y = np.asarray(jax.nn.softmax(jax.random.normal(jax.random.key(6), shape, dtype), axis=axes))
    zr, back = _examples_first(z, axes)
    yr, back_y = _examples_first(y, axes)
    zr[0, [1, -1]] = np.inf                    # tied at +inf
    zr[1] = -np.inf                            # all −inf
    zr[2, 3], yr[2, 3] = -np.inf, 0.0          # a label 0 at a logit −inf: 0·log 0 = 0
    zr[3, 5] = np.nan
    dirty_z, dirty_y = back(zr), back_y(yr)
    batch = tuple(shape[i] for i in range(len(shape)) if i not in axes)
    k = np.asarray(jax.random.randint(jax.random.key(8), batch, 0, n))
    dirty_k = k.copy().reshape(-1)
    dirty_k[4] = n                             # out of range: NaN
    dirty_k = dirty_k.reshape(batch)

    def soft(v, w):
        return SCE(v, w, axis=axis)

    def hard(v, w):
        return SCE_INT(v, w, axis=axis)

    for fn, clean, dirty, specials in ((soft, (z, y), (dirty_z, dirty_y), 4), (hard, (z, k), (dirty_z, dirty_k), 5)):
        clean_b = with_gates(fn, *clean, LOSS_BRANCH_MIN_BYTES=0).reshape(-1)
        dirty_b = with_gates(fn, *dirty, LOSS_BRANCH_MIN_BYTES=0).reshape(-1)
        clean_s = with_gates(fn, *clean, LOSS_BRANCH_MIN_BYTES=1 << 62).reshape(-1)
        dirty_s = with_gates(fn, *dirty, LOSS_BRANCH_MIN_BYTES=1 << 62).reshape(-1)
        plain = np.ones(clean_b.shape, bool)
        plain[:specials] = False
        np.testing.assert_array_equal(dirty_b[plain].view(np.uint8), clean_b[plain].view(np.uint8))
        # the exact formula's values: NaN where it is NaN (a NaN's sign and payload carry nothing and
        # differ between kernels), the same bits elsewhere
        special_b, special_s = dirty_b[~plain], dirty_s[~plain]
        np.testing.assert_array_equal(np.isnan(special_b), np.isnan(special_s))
        keep = ~np.isnan(special_s)
        np.testing.assert_array_equal(special_b[keep].view(np.uint8), special_s[keep].view(np.uint8))
        # Both formulas shift by the same maximum (the same bits) and differ only in lse = log Σ e:
        # each exponential within 2u, the sum of n positive terms within (n − 1)u_acc more (the two
        # may add in different orders; float16 and bfloat16 accumulate in float32, u_acc its unit
        # roundoff, and round the sum once more, r = u; otherwise u_acc = u, r = 0), the logarithm
        # within u|lse|: the two lse differ by at most δ = 2((n − 1)u_acc + 2u + r) + 2u|lse|. The
        # integer-label loss lse − (z_k − m) adds one rounding each: |Δ| ≤ δ + 2u|loss|. The
        # soft-label loss −Σ y(s − lse) moves by Σ|y|·δ, and each form's n subtractions and
        # products (2u each) and its sum ((n − 1)u_acc + r) add at most twice that times Σ|y(s − lse)|.
        z64 = np.moveaxis(np.asarray(clean[0], np.float64), [i for i in range(len(shape)) if i not in axes] + list(axes),
                          range(len(shape))).reshape(-1, n)
        s = z64 - z64.max(axis=1, keepdims=True)
        lse = np.log(np.exp(s).sum(axis=1))
        wide = jnp.dtype(dtype).itemsize == 2
        u_acc, r = (float(jnp.finfo(jnp.float32).eps) / 2, u) if wide else (u, 0.0)
        delta = 2 * ((n - 1) * u_acc + 2 * u + r) + 2 * u * np.abs(lse)
        clean_b, clean_s = clean_b.astype(np.float64), clean_s.astype(np.float64)
        if fn is hard:
            bound = delta + 2 * u * np.abs(clean_s)
        else:
            y64 = _examples_first(np.asarray(y, np.float64), axes)[0]
            terms = np.abs(y64 * (s - lse[:, None])).sum(axis=1)
            bound = np.abs(y64).sum(axis=1) * delta + 2 * (2 * u + (n - 1) * u_acc + r) * terms
        assert np.all(np.abs(clean_b - clean_s) <= bound), np.max(np.abs(clean_b - clean_s) / bound)


def test_loss_branch_only_where_it_pays_and_vmap_keeps_it_a_branch(monkeypatch):
    """loss_branch_pays: XLA:CPU, no mask, from LOSS_BRANCH_MIN_BYTES on, and only for an
    evaluation without gradient; under vmap the predicate is one for the whole batch (a cond, not a
    select evaluating both formulas), and a member keeps its bits beside a neighbour that needs the
    exact formula."""
    import fnnet._numerics as numerics

    on_cpu = numerics._branch_backend()  # XLA:CPU with one device
    big = jnp.zeros((numerics.LOSS_BRANCH_MIN_BYTES // 4 // 8, 8), jnp.float32)
    assert numerics.loss_branch_pays(big, None) == on_cpu
    assert not numerics.loss_branch_pays(big, big > 0)
    assert not numerics.loss_branch_pays(big[1:], None)

    def conds(fn, *args):
        return jax.make_jaxpr(fn)(*args).pretty_print().count("cond[")

    monkeypatch.setattr(numerics, "LOSS_BRANCH_MIN_BYTES", 0)
    z = jax.random.normal(jax.random.key(3), (4, 32, 16))
    y = jax.nn.softmax(jax.random.normal(jax.random.key(4), (4, 32, 16)))
    k = jax.random.randint(jax.random.key(5), (4, 32), 0, 16)
    for fn, labels in ((SCE, y), (SCE_INT, k)):
        assert conds(fn, z, labels) == on_cpu
        assert conds(jax.vmap(fn), z, labels) == on_cpu
        assert conds(jax.grad(lambda v, w: jnp.sum(fn(v, w))), z, labels) == 0  # the rule
        assert conds(lambda v, w: fn(v, w, where=v[..., :1] > 0), z, labels) == 0
        jax.clear_caches()
        dirty = z.at[1, 3, 4].set(jnp.inf).at[1, 3, 6].set(jnp.inf)
        batched = np.asarray(jax.vmap(fn)(dirty, labels))
        alone = np.stack([np.asarray(fn(v, w)) for v, w in zip(z, labels)])
        np.testing.assert_array_equal(np.delete(batched, 1, 0).view(np.uint8), np.delete(alone, 1, 0).view(np.uint8))
        np.testing.assert_array_equal(np.delete(batched[1], 3).view(np.uint8), np.delete(alone[1], 3).view(np.uint8))
        monkeypatch.setattr(numerics, "LOSS_BRANCH_MIN_BYTES", 1 << 62)
        jax.clear_caches()
        exact = np.asarray(fn(dirty[1], labels[1]))[3]
        monkeypatch.setattr(numerics, "LOSS_BRANCH_MIN_BYTES", 0)
        jax.clear_caches()
        assert batched[1, 3].tobytes() == exact.tobytes()  # the exact formula's value


def test_multiclass_hinge_and_perceptron_losses():
    """Values against max_j(s_j + m − [j = k]) − s_k in float64 NumPy and optax's test values; the hand
    gradient against the maximum's indicator (ties shared equally) less e_k, and against autodiff of
    optax's formula with ties among the scores; labels broadcast to the batch, and a label outside
    [0, C) gives NaN (optax's one-hot of it is 0)."""
    # row 3 ties the perceptron's maximum, row 4 the hinge's (s_k = s_j + 1)
    scores = jnp.asarray([[10.0, 3.0, 1.0], [11.0, -2.0, 11.0], [1.0, 1.0, 0.5], [3.0, 2.0, 0.0]])
    k = jnp.asarray([1, 0, 0, 0], jnp.int32)
    sn, kn = np.asarray(scores), np.asarray(k)
    oh = np.eye(3)[kn]
    for f, m in ((L.multiclass_hinge_loss, 1.0), (L.multiclass_perceptron_loss, 0.0)):
        a = sn + m * (1 - oh)
        _close(f(scores, k), a.max(-1) - (sn * oh).sum(-1), what=f.__name__)
        ind = (a == a.max(-1, keepdims=True)).astype(float)
        want = ind / ind.sum(-1, keepdims=True) - oh
        d = jax.grad(lambda s, f=f: jnp.sum(f(s, k)))(scores)
        np.testing.assert_array_equal(d, want)
        np.testing.assert_array_equal(d, jax.grad(lambda s, f=f: jnp.sum(f.reference(s, k)))(scores))
        assert np.any(ind.sum(-1) > 1)  # a tie is among the rows
        _close(f(scores, jnp.int32(0)), f(scores, jnp.zeros(4, jnp.int32)), what="broadcast label")
        bad = f(scores, jnp.asarray([3, -1, 0, 0], jnp.int32))
        assert jnp.isnan(bad[0]) and jnp.isnan(bad[1]) and not jnp.isnan(bad[2])
    _close(L.multiclass_hinge_loss(jnp.asarray([10.0, 3.0]), jnp.int32(1)), 8.0, what="optax's value")
    with pytest.raises(TypeError, match=r"multiclass_hinge_loss: labels must be integer class indices"):
        L.multiclass_hinge_loss(scores, k.astype(jnp.float32))
    with pytest.raises(ValueError, match=r"labels of shape \(3,\) must broadcast to the scores' batch shape \(4,\)"):
        L.multiclass_perceptron_loss(scores, k[:3])


def test_hinge_and_perceptron_keep_nan():
    """NaN in gives NaN out, in the value (optax's maximum too) and in the gradient (optax's: 0)."""
    p = jnp.asarray([jnp.nan, 0.5])
    t = jnp.asarray([1.0, -1.0])
    for f in (L.hinge_loss, L.perceptron_loss):
        assert jnp.isnan(f(p, t)[0]) and jnp.isnan(f.reference(p, t)[0])
        d = jax.grad(lambda p, f=f: jnp.sum(f(p, t)))(p)
        assert jnp.isnan(d[0]) and d[1] == 1.0
        assert jax.grad(lambda p, f=f: jnp.sum(f.reference(p, t)))(p)[0] == 0
