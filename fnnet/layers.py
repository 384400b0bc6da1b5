r"""The dense (affine) layer :math:`z = Wx + b`, its initialisers, and a plain multilayer perceptron.

Parameters are named dicts, ``{"W": (n_out, n_in), "b": (n_out,)}``, so a gradient report can say
``params["W"][3, 7]``; inputs carry any number of leading batch axes, ``x: (..., n_in) -> (..., n_out)``.
Per example this is :math:`z = Wx + b`; over a batch stored as rows it is ``x @ W.T + b``.

The affine map is one primitive, :func:`affine` (registered as ``"affine"``, array arguments
``(W, b, x)``), whose hand-written VJP returns every cotangent in the **shape convention** (each
gradient has the shape of its parameter), with δ = ∂L/∂z of shape ``(..., n_out)``:

* ∂L/∂W = Σ_batch δ xᵀ, shape ``(n_out, n_in)``: one outer product per example, summed;
* ∂L/∂b = Σ_batch δ, shape ``(n_out,)``;
* ∂L/∂x = Wᵀδ per example, i.e. ``δ @ W``, shape ``(..., n_in)``.

See docs/reference/layers.md for the derivation. :func:`dense` is the layer: the same op over a params dict
(``dense.primitive`` is ``affine``'s, and ``"dense"`` names it wherever an op is asked for by name); it
validates in plain Python (missing key: ``KeyError``; shapes: ``ValueError`` naming both; integer
arrays: ``TypeError`` naming the dtype) before anything is traced.

**Bias-free layers.** ``params`` without ``"b"`` is allowed and means b = 0: the layer is then
:math:`z = Wx`, and ``jax.grad`` over such params returns only ``W``'s gradient.
"""
from __future__ import annotations

import math
from typing import Any, Callable, Iterable, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from fnnet._checks import as_float_array, prng_key
from fnnet.primitive import define, resolve as _resolve, sample_rng, sampled

__all__ = ["affine", "dense", "init_dense", "init_mlp", "mlp", "glorot_uniform", "he_normal"]

# Products follow JAX's matmul precision setting, exactly as jnp.matmul does (a drop-in must not be
# slower or more precise behind the user's back): on GPUs with TF32, wrap code in
# `jax.default_matmul_precision("highest")` for float32-exact products (fnnet.gradcheck does).
_PRECISION = None


# ---------------------------------------------------------------------------------------------
# The affine primitive: z = x @ W.T + b
# ---------------------------------------------------------------------------------------------


def _check_affine(W, b, x, where="fnnet.dense", names=("W", "b", "x")):
    """Shapes and dtypes of an affine map, checked in plain Python (no tracing)."""
    nW, nb, nx = names
    if W.ndim != 2:
        raise ValueError(
            f"{where}: {nW} must be 2-D with shape (n_out, n_in); got shape {tuple(W.shape)}"
        )
    n_out, n_in = W.shape
    if (tuple(b.shape) != (n_out,) or (x.ndim and x.shape[-1] != n_in)) and (
        tuple(b.shape) == (n_in,) and x.ndim and x.shape[-1] == n_out
    ):
        # b and x both fit the transpose: W is in the (n_in, n_out) layout of Flax and Keras
        raise ValueError(
            f"{where}: {nW} has shape (n_in, n_out) = {tuple(W.shape)}, the layout of Flax and Keras; "
            f"fnnet's W is (n_out, n_in): pass W.T (z = Wx + b with W of shape ({n_in}, {n_out}) here)"
        )
    if tuple(b.shape) != (n_out,):
        raise ValueError(
            f"{where}: {nb} must have shape (n_out,) = ({n_out},) for {nW} of shape {tuple(W.shape)}; "
            f"got shape {tuple(b.shape)}"
        )
    if x.ndim == 0 or x.shape[-1] != n_in:
        raise ValueError(
            f"{where}: {nx} of shape {tuple(x.shape)} does not fit {nW} of shape {tuple(W.shape)}: "
            f"the last axis of {nx} must be n_in = {nW}.shape[1] = {n_in} ({nx}: (..., n_in))"
        )
    dtypes = {n: a.dtype for n, a in zip(names, (W, b, x)) if not getattr(a, "weak_type", False)}
    if len(set(dtypes.values())) > 1:
        raise TypeError(
            f"{where}: {nW}, {nb} and {nx} must share one floating dtype; got "
            + ", ".join(f"{n}: {d}" for n, d in dtypes.items())
        )


def _affine(W, b, x):
    r"""Affine map :math:`z = Wx + b` per example: ``x @ W.T + b``.

    Shapes: W ``(n_out, n_in)``, b ``(n_out,)``, x ``(..., n_in)`` -> z ``(..., n_out)``.

    VJP (shape convention, g = ∂L/∂z): :math:`\bar W = Σ_{batch} g x^\top` ``(n_out, n_in)``,
    :math:`\bar b = Σ_{batch} g` ``(n_out,)``, :math:`\bar x = W^\top g` ``(..., n_in)``.
    JVP: :math:`T_W x + t_b + W t_x`. No kinks: the map is linear in each argument.
    """
    return jnp.matmul(x, W.T, precision=_PRECISION) + b


def _affine_fwd(W, b, x):
    # b is not needed backwards: ∂z/∂b is the identity whatever b is.
    return _affine(W, b, x), (W, x)


def _affine_bwd(res, g):
    W, x = res
    n_out, n_in = W.shape
    # Flatten the batch axes: Σ over examples of the outer products g xᵀ is one matrix product.
    g2 = g.reshape(-1, n_out)
    x2 = x.reshape(-1, n_in)
    gW = jnp.matmul(g2.T, x2, precision=_PRECISION)
    gb = jnp.sum(g2, axis=0)
    gx = jnp.matmul(g, W, precision=_PRECISION)
    return gW, gb, gx


def _affine_jvp(primals, tangents, z):
    (W, _, x), (tW, tb, tx) = primals, tangents
    return (
        jnp.matmul(x, tW.T, precision=_PRECISION) + tb + jnp.matmul(tx, W.T, precision=_PRECISION)
    )


def _affine_reference(W, b, x):
    """Plain jnp, per example written as W x + b (an einsum over the batch), for jax.vjp to check."""
    return jnp.einsum("oi,...i->...o", W, x, precision=_PRECISION) + b


def _sample_affine(key, dtype=jnp.float32, shape=(3, 5)):
    """x of ``shape`` (batch..., n_in), W (4, n_in), b (4,)."""
    shape = tuple(shape) or (5,)
    n_in, n_out = shape[-1], 4
    rng = sample_rng(key)
    W, b, x = rng.uniform(-1.0, 1.0, (n_out, n_in)), rng.uniform(-1.0, 1.0, (n_out,)), rng.uniform(-2.0, 2.0, shape)
    return sampled(W, dtype), sampled(b, dtype), sampled(x, dtype)


affine = define(
    "affine",
    forward=_affine,
    fwd=_affine_fwd,
    bwd=_affine_bwd,
    jvp=_affine_jvp,
    reference=_affine_reference,
    arg_names=("W", "b", "x"),
    sample=_sample_affine,
    validate=lambda W, b, x: _check_affine(W, b, x, where="fnnet.affine"),
    derivation="z_o = Σ_i W_oi x_i + b_o ⇒ ∂L/∂W_oi = Σ_batch δ_o x_i, ∂L/∂b_o = Σ_batch δ_o, "
    "∂L/∂x_i = Σ_o W_oi δ_o",
).fn


# ---------------------------------------------------------------------------------------------
# The public layer over a params dict
# ---------------------------------------------------------------------------------------------


def dense(params: Mapping[str, Any], x) -> jax.Array:
    r"""Dense layer :math:`z = Wx + b` applied to every example of ``x``.

    **Arguments:**

    - ``params``: ``{"W": (n_out, n_in), "b": (n_out,)}``; ``"b"`` may be left out for a bias-free
      layer (b = 0).
    - ``x``: ``(..., n_in)``, any number of batch axes (none for a single example).

    **Returns:** ``z = x @ W.T + b`` of shape ``(..., n_out)``, in the common dtype.

    Gradients (hand-written, shape convention): ∂L/∂W = Σ_batch δxᵀ, ∂L/∂b = Σ_batch δ,
    ∂L/∂x = Wᵀδ, δ = ∂L/∂z.

    **Raises:** ``KeyError`` naming a missing key and the keys present; ``ValueError`` naming both
    shapes when they do not fit; ``TypeError`` naming the dtype of a non-floating array or the two
    dtypes of a float32/float64 mix.

    Example: ``dense(init_dense(key, 4, 3), jnp.ones((7, 4)))`` has shape ``(7, 3)``.
    """
    if not isinstance(params, Mapping):
        raise TypeError(
            f"fnnet.dense: params must be a dict {{'W': (n_out, n_in), 'b': (n_out,)}}; "
            f"got {type(params).__name__}"
        )
    if "W" not in params:
        raise KeyError(
            f"fnnet.dense: params has no key 'W' (the (n_out, n_in) weight matrix); keys present: "
            f"{sorted(map(str, params))}"
        )
    extra = sorted(str(k) for k in params if k not in ("W", "b"))
    if extra:
        raise KeyError(
            f"fnnet.dense: unexpected keys {extra} in params; a dense layer has 'W' and optionally 'b'"
        )
    W = as_float_array(params["W"], "params['W']", "fnnet.dense")
    x = as_float_array(x, "x", "fnnet.dense")
    if "b" in params:
        b = as_float_array(params["b"], "params['b']", "fnnet.dense")
    else:
        if W.ndim != 2:
            _check_affine(W, W, x, names=("params['W']", "params['b']", "x"))
        b = jnp.zeros((W.shape[0],), W.dtype)
    _check_affine(W, b, x, names=("params['W']", "params['b']", "x"))
    return affine(W, b, x)


def _dense_reference(params, x):
    """Plain jnp over the params dict, for ``fnnet.gradcheck(fnnet.dense, params, x)``."""
    return _affine_reference(params["W"], params.get("b", 0.0), x)


# The layer is the affine op over a params dict: it carries the op's primitive, so that graph, calculus
# and train resolve "dense" and fnnet.dense to it (as "swish" to silu), and a reference of its own
# signature for the checker.
dense.primitive = affine.primitive  # type: ignore[attr-defined]
dense.reference = _dense_reference  # type: ignore[attr-defined]


# ---------------------------------------------------------------------------------------------
# Initialisers
# ---------------------------------------------------------------------------------------------


def glorot_uniform(key, shape, dtype=jnp.float32):
    r"""Glorot/Xavier uniform for W of shape ``(n_out, n_in)``: U(−a, a), :math:`a = \sqrt{6/(n_in + n_out)}`.

    Var = a²/3 = 2/(n_in + n_out): the variance of activations and of gradients is kept in both
    directions for a linear unit (Glorot & Bengio 2010).
    """
    n_out, n_in = shape
    limit = math.sqrt(6.0 / (n_in + n_out))
    return jax.random.uniform(key, shape, dtype, -limit, limit)


def he_normal(key, shape, dtype=jnp.float32):
    r"""He/Kaiming normal for W of shape ``(n_out, n_in)``: N(0, σ²), :math:`σ = \sqrt{2/n_in}`.

    ReLU zeroes half of its inputs, so twice the Glorot fan-in variance keeps E[z²] constant across
    layers (He et al. 2015).
    """
    n_out, n_in = shape
    return math.sqrt(2.0 / n_in) * jax.random.normal(key, shape, dtype)


_INITS: dict[str, Callable] = {"glorot": glorot_uniform, "he": he_normal}


def _positive_int(value, name, where):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{where}: {name} must be a positive int; got {value!r}")
    return int(value)


def init_dense(
    key: jax.Array,
    n_in: int,
    n_out: int,
    *,
    init: str | Callable[..., Any] = "glorot",
    dtype: Any = jnp.float32,
    bias: float = 0.0,
) -> dict[str, jax.Array]:
    r"""Parameters of a dense layer: ``{"W": (n_out, n_in), "b": (n_out,)}``.

    **Arguments:**

    - ``key``: a PRNG key.
    - ``n_in``, ``n_out``: input and output sizes.
    - ``init``: ``"glorot"`` (uniform on ±√(6/(n_in + n_out)), the default), ``"he"`` (normal with
      std √(2/n_in), for ReLU networks), or a callable ``init(key, shape, dtype)`` with
      ``shape = (n_out, n_in)``. (``jax.nn.initializers`` assume ``(n_in, n_out)``: pass
      ``in_axis=-1, out_axis=-2`` to them.)
    - ``dtype``: a floating dtype (float32 by default).
    - ``bias``: the constant every entry of b starts at.
    """
    where = "fnnet.init_dense"
    key = prng_key(key, where)
    n_in = _positive_int(n_in, "n_in", where)
    n_out = _positive_int(n_out, "n_out", where)
    dtype = jnp.dtype(dtype)
    if not jnp.issubdtype(dtype, jnp.floating):
        raise TypeError(f"{where}: dtype must be floating (float16, bfloat16, float32, float64); got {dtype}")
    if isinstance(init, str):
        if init not in _INITS:
            raise ValueError(f"{where}: init must be one of {sorted(_INITS)} or a callable; got {init!r}")
        init_fn = _INITS[init]
    elif callable(init):
        init_fn = init
    else:
        raise TypeError(f"{where}: init must be a name or a callable; got {type(init).__name__}")
    W = jnp.asarray(init_fn(key, (n_out, n_in), dtype))
    if W.shape != (n_out, n_in) or W.dtype != dtype:
        raise ValueError(
            f"{where}: init returned {W.dtype}{tuple(W.shape)}; expected {dtype}{(n_out, n_in)}"
        )
    return {"W": W, "b": jnp.full((n_out,), bias, dtype)}


def init_mlp(
    key: jax.Array,
    sizes: Sequence[int],
    *,
    init: str | Callable[..., Any] = "glorot",
    dtype: Any = jnp.float32,
) -> list[dict[str, jax.Array]]:
    """Parameters of an MLP with layer sizes ``sizes = [n_in, h_1, ..., n_out]``: one dense dict per layer.

    Each layer gets its own key (``jax.random.split``); ``init`` and ``dtype`` as in :func:`init_dense`.
    """
    where = "fnnet.init_mlp"
    key = prng_key(key, where)
    if isinstance(sizes, (int, np.integer)) or not isinstance(sizes, Iterable):
        raise TypeError(
            f"{where}: sizes must be the list of layer sizes [n_in, h_1, ..., n_out], e.g. [4, 16, 3]; "
            f"got {type(sizes).__name__} {sizes!r} (init_dense(key, n_in, n_out) makes one layer)"
        )
    sizes = list(sizes)
    if len(sizes) < 2:
        raise ValueError(f"fnnet.init_mlp: sizes needs at least an input and an output size; got {sizes}")
    keys = jax.random.split(key, len(sizes) - 1)
    return [
        init_dense(k, a, b, init=init, dtype=dtype) for k, a, b in zip(keys, sizes[:-1], sizes[1:])
    ]


# ---------------------------------------------------------------------------------------------
# MLP
# ---------------------------------------------------------------------------------------------


def _activation(activation, what):
    """None (no activation), a callable, or the name of a one-argument fnnet primitive."""
    if activation is None or callable(activation):
        return activation
    if isinstance(activation, str):
        try:
            prim = _resolve(activation)
        except KeyError:
            import fnnet.activations as acts

            raise ValueError(
                f"fnnet.mlp: unknown {what} {activation!r}; known: {sorted(getattr(acts, '__all__', []))}"
            ) from None
        if len(prim.arg_names) != 1:
            raise ValueError(
                f"fnnet.mlp: {what} {activation!r} takes arrays {prim.arg_names}; an activation takes one"
            )
        return prim.fn
    raise TypeError(f"fnnet.mlp: {what} must be a name, a callable or None; got {type(activation).__name__}")


def _layout_hint(layer, x) -> str:
    """A note when W is laid out ``(n_in, n_out)`` (Flax, Keras) where fnnet expects ``(n_out, n_in)``."""
    try:
        W, b, n_in = layer["W"], layer["b"], jnp.shape(x)[-1]
        if jnp.ndim(W) == 2 and jnp.shape(W)[0] == n_in and jnp.shape(b) == (jnp.shape(W)[1],):
            return (f" (W has shape (n_in, n_out) = {tuple(jnp.shape(W))}, the layout of Flax and Keras; "
                    "fnnet's W is (n_out, n_in): pass W.T)")
    except Exception:  # noqa: BLE001  a hint only: the original error stands
        pass
    return ""


def mlp(
    params: Sequence[Mapping[str, Any]],
    x: ArrayLike,
    activation: str | Callable | None = "relu",
    final_activation: str | Callable | None = None,
) -> jax.Array:
    r"""Multilayer perceptron: :math:`h_0 = x`, :math:`h_l = φ(W_l h_{l-1} + b_l)`, output
    :math:`ψ(W_L h_{L-1} + b_L)`.

    **Arguments:**

    - ``params``: a list of dense dicts (e.g. from :func:`init_mlp`).
    - ``x``: ``(..., n_in)``.
    - ``activation`` φ: an fnnet activation by name (``"relu"``, ``"tanh"``, ``"gelu"``, ...), any
      callable, or None for none (a deep linear network).
    - ``final_activation`` ψ: applied to the last layer's output; None (default) leaves the logits.

    **Returns:** ``(..., n_out)``.
    """
    if isinstance(params, Mapping) or not isinstance(params, Sequence):
        raise TypeError(
            f"fnnet.mlp: params must be a list of dense dicts (init_mlp); got {type(params).__name__}"
        )
    if len(params) == 0:
        raise ValueError("fnnet.mlp: params is empty; an MLP needs at least one dense layer")
    phi = _activation(activation, "activation")
    psi = _activation(final_activation, "final_activation")
    h: Any = x
    for i, layer in enumerate(params):
        try:
            h = dense(layer, h)
        except (KeyError, ValueError, TypeError) as e:
            # Say which layer: "params[1]" is what the user has to look at.
            msg = e.args[0] if e.args else str(e)
            hint = "" if "the layout of Flax and Keras" in str(msg) else _layout_hint(layer, h)  # dense said it
            raise type(e)(f"fnnet.mlp: layer params[{i}]: {msg}{hint}") from None
        act = psi if i == len(params) - 1 else phi
        if act is not None:
            h = act(h)
    return h
