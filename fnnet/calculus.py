"""Vectorized calculus: the explicit Jacobian of every primitive, from its hand-written rules.

Two layouts, and two conventions for a gradient:

* **Jacobian layout.** For ``y = f(x)`` with ``y`` of shape ``S_out`` and ``x`` of shape ``S_in``,
  :func:`jacobian` returns ``J`` of shape ``S_out + S_in`` with ``J[i..., j...] = ∂y[i...]/∂x[j...]``,
  the layout of :func:`jax.jacrev`. :func:`as_matrix` flattens it (row-major) to the lecture's
  ``(m, n)`` matrix, ``m = |S_out|``, ``n = |S_in|``.
* **Shape convention vs Jacobian form.** For a scalar loss ``L`` and a parameter ``W`` of shape
  ``(out, in)``, the *shape convention* writes ``∂L/∂W`` with the shape of ``W`` (what ``jax.grad``
  returns and what gradient descent subtracts); the *Jacobian form* is the ``1 × (out·in)`` row
  ``∂L/∂vec(W)``. :func:`to_jacobian_form` and :func:`to_shape_convention` convert, with ``vec`` the
  row-major flattening (``W.reshape(-1)``: entry ``(i, j)`` at position ``i·in + j``).
  The lecture's example: for ``u, h ∈ ℝⁿ`` (columns, shape ``(n, 1)``), ``∂(uᵀh)/∂u`` is ``h`` in the
  shape convention and ``hᵀ`` in Jacobian form (:func:`inner_product_gradient`).

Structured Jacobians: an elementwise op's Jacobian is diagonal, ``∂y_i/∂x_j = f'(x_i) δ_ij``, so
:func:`elementwise_jacobian` returns only the diagonal ``f'(x)`` (in the shape of ``x``) and
:func:`materialize_diagonal` builds the full matrix when one is wanted. The dense layer
``y = W x + b`` (:func:`dense_jacobians`) has ``∂y/∂x = W``, ``∂y/∂b = I`` and ``∂y/∂W`` the sparse
``(out, out·in)`` matrix whose row ``i`` holds ``xᵀ`` in block ``i`` and zeros elsewhere
(``∂y_i/∂W_kj = δ_ik x_j``; as a matrix, ``I_out ⊗ xᵀ``).
"""
from __future__ import annotations

import math
from typing import Any, Callable, NamedTuple, Sequence

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from fnnet import primitive as _primitive
from fnnet.primitive import Primitive

#: An op: a primitive, its public function, or its registered name.
OpLike = Any

__all__ = [
    "jacobian",
    "as_matrix",
    "elementwise_jacobian",
    "materialize_diagonal",
    "DenseJacobians",
    "dense_jacobians",
    "to_jacobian_form",
    "to_shape_convention",
    "inner_product_gradient",
]


def jacobian(
    op: OpLike, argnums: int | Sequence[int] = 0, *, mode: str = "rev"
) -> Callable[..., Any]:
    """The Jacobian of a primitive, assembled from its hand-written rules only.

    Arguments:
      op: a :class:`~fnnet.primitive.Primitive`, its public function or its registered name.
      argnums: which array argument(s): an int gives one Jacobian, a sequence a tuple of them
        (as in :func:`jax.jacrev`).
      mode: ``"rev"`` builds ``J`` **row by row** from the hand VJP: row ``i`` is
        ``bwd(residuals, e_i)``, the cotangent of the basis vector ``e_i`` of the output, and all
        ``m`` rows come from one ``vmap`` over the ``m`` basis cotangents. ``"fwd"`` builds it
        **column by column** from the hand JVP: column ``j`` is ``jvp(primals, e_j)``, vmapped over the
        ``n`` basis tangents of the chosen argument.

    Returns:
      ``jac(*arrays, **static)``: ``J`` (or a tuple) of shape ``out.shape + arg.shape`` per argument,
      the layout of ``jax.jacrev(prim.reference, argnums)``. Only ops whose output is a single array.
    """
    prim = _primitive.resolve(op)
    if mode not in ("rev", "fwd"):
        raise ValueError(f"mode must be 'rev' or 'fwd'; got {mode!r}")
    single = isinstance(argnums, int)
    nums: tuple[int, ...] = (argnums,) if isinstance(argnums, int) else tuple(argnums)
    for a in nums:
        if not 0 <= a < len(prim.arg_names):
            raise ValueError(
                f"argnums {a} out of range for {prim.name!r}, whose arguments are {prim.arg_names}"
            )

    def jac(*arrays, **static):
        if len(arrays) != len(prim.arg_names):
            raise TypeError(
                f"jacobian of {prim.name!r} takes {len(prim.arg_names)} array argument(s) "
                f"{prim.arg_names}; got {len(arrays)}"
            )
        unknown = set(static) - set(prim.static_defaults)
        if unknown:
            raise TypeError(f"{prim.name!r} has no hyperparameter(s) {sorted(unknown)}")
        kw = {**prim.static_defaults, **static}
        arrays = tuple(jnp.asarray(a) for a in arrays)
        out, res = prim.fwd(*arrays, **kw)
        if not isinstance(out, jax.Array):
            raise TypeError(f"jacobian supports ops with one array output; {prim.name!r} returns {type(out)}")
        m = out.size
        if mode == "rev":
            basis = jnp.eye(m, dtype=out.dtype).reshape((m,) + out.shape)
            rows = jax.vmap(lambda g: tuple(prim.bwd(res, g, **kw)))(basis)
            result = tuple(rows[a].reshape(out.shape + arrays[a].shape) for a in nums)
        else:
            result = []
            for a in nums:
                x = arrays[a]
                n = x.size
                basis = jnp.eye(n, dtype=x.dtype).reshape((n,) + x.shape)

                def column(t, a=a):
                    tangents = tuple(t if k == a else jnp.zeros_like(v) for k, v in enumerate(arrays))
                    return prim.jvp(arrays, tangents, out, **kw)

                cols = jax.vmap(column)(basis)  # (n, *out.shape): column j of J is cols[j]
                J = jnp.moveaxis(cols.reshape(n, m), 0, 1)
                result.append(J.reshape(out.shape + x.shape))
            result = tuple(result)
        return result[0] if single else result

    jac.__name__ = f"jacobian_{mode}_{prim.name}"
    return jac


def as_matrix(J: ArrayLike, out_shape: Sequence[int]) -> jax.Array:
    """Flatten a Jacobian of shape ``out_shape + in_shape`` to the ``(m, n)`` matrix, row-major."""
    out_shape = tuple(out_shape)
    J = jnp.asarray(J)
    if J.shape[: len(out_shape)] != out_shape:
        raise ValueError(f"as_matrix: J of shape {J.shape} does not start with out_shape {out_shape}")
    return J.reshape(math.prod(out_shape), -1)


# ------------------------------------------------------------------------------------------------
# Structured Jacobians
# ------------------------------------------------------------------------------------------------


def elementwise_jacobian(op: OpLike, x: ArrayLike, **static: Any) -> jax.Array:
    """The diagonal of an elementwise op's Jacobian, ``f'(x)``, in the shape of ``x``.

    ``y_i = f(x_i)`` depends on ``x_i`` alone, so ``∂y_i/∂x_j = 0`` for ``i ≠ j``: the Jacobian is
    ``diag(f'(x))`` and storing it costs ``n``, not ``n²``. That is why the VJP of an activation is the
    elementwise product ``g ⊙ f'(x)`` rather than a matrix product. :func:`materialize_diagonal` gives
    the full matrix. The values come from the op's own derivative ``f'`` (its hand rule).
    """
    prim = _primitive.resolve(op)
    if not prim.elementwise or prim.df is None:
        raise TypeError(f"{prim.name!r} is not an elementwise primitive; use jacobian({prim.name!r})")
    kw = {**prim.static_defaults, **static}
    x = jnp.asarray(x)
    y = prim.forward(x, **kw)
    return prim.df(x if "x" in prim.saves else None, y if "y" in prim.saves else None, **kw)


def materialize_diagonal(d: ArrayLike) -> jax.Array:
    """The full Jacobian from its diagonal ``d``: shape ``d.shape + d.shape``, ``J[i, j] = d_i δ_ij``
    (the :func:`jacobian` layout; ``as_matrix(J, d.shape)`` gives ``diag(vec d)``)."""
    d = jnp.asarray(d)
    return jnp.diag(d.reshape(-1)).reshape(d.shape + d.shape)


class DenseJacobians(NamedTuple):
    """The three Jacobians of ``y = W x + b`` for one example, in the lecture's matrix form.

    ``x``: ``∂y/∂x``, shape ``(out, in)``, equal to ``W``.
    ``b``: ``∂y/∂b``, shape ``(out, out)``, the identity.
    ``W``: ``∂y/∂vec(W)``, shape ``(out, out·in)``: row ``i`` is ``xᵀ`` in columns ``i·in … i·in+in−1``
    and zero elsewhere (``I_out ⊗ xᵀ``); ``y_i`` depends only on row ``i`` of ``W``.
    """

    x: jax.Array
    b: jax.Array
    W: jax.Array


def dense_jacobians(W: ArrayLike, b: ArrayLike, x: ArrayLike) -> DenseJacobians:
    """The Jacobians of the dense layer ``y = W x + b`` for a single example.

    Arguments:
      W: ``(out, in)``; b: ``(out,)``; x: ``(in,)``.

    ``∂y_i/∂x_j = W_ij``, ``∂y_i/∂b_k = δ_ik``, ``∂y_i/∂W_kj = δ_ik x_j``. For a batch ``X: (B, in)``
    each example has these same blocks (the batch Jacobian w.r.t. X is block diagonal with ``W`` on
    the diagonal); the VJPs that backprop uses never form them: ``gx = g W``, ``gb = Σ_batch g``,
    ``gW = gᵀ X``.
    """
    W, b, x = (jnp.asarray(a) for a in (W, b, x))
    if W.ndim != 2 or b.shape != (W.shape[0],) or x.shape != (W.shape[1],):
        raise ValueError(
            f"dense_jacobians expects W (out, in), b (out,), x (in,); got W {W.shape}, "
            f"b {b.shape}, x {x.shape}"
        )
    out = W.shape[0]
    eye = jnp.eye(out, dtype=W.dtype)
    return DenseJacobians(x=W, b=eye, W=jnp.kron(eye, x[None, :]))


# ------------------------------------------------------------------------------------------------
# Shape convention <-> Jacobian form
# ------------------------------------------------------------------------------------------------


def to_jacobian_form(grad: ArrayLike) -> jax.Array:
    """A scalar's gradient in the shape convention (shape of its parameter) → the Jacobian row
    ``(1, size)``, entries in row-major order: ``W (out, in)`` → ``(1, out·in)``."""
    grad = jnp.asarray(grad)
    return grad.reshape(1, grad.size)


def to_shape_convention(row: ArrayLike, shape: Sequence[int]) -> jax.Array:
    """A Jacobian row ``(1, size)`` (or ``(size,)``) → the gradient in the shape of its parameter.

    The inverse of :func:`to_jacobian_form`; raises ``ValueError`` naming both shapes if the sizes differ.
    """
    row = jnp.asarray(row)
    shape = tuple(shape)
    size = math.prod(shape)
    if row.shape not in ((1, size), (size,)):
        raise ValueError(
            f"to_shape_convention: expected a row of shape (1, {size}) for a parameter of shape "
            f"{shape}; got {row.shape}"
        )
    return row.reshape(shape)


def inner_product_gradient(u: ArrayLike, h: ArrayLike, convention: str = "shape") -> jax.Array:
    """``∂(uᵀh)/∂u`` for column vectors ``u, h`` of shape ``(n, 1)``: the lecture's transposes example.

    ``uᵀh = Σ_i u_i h_i`` so ``∂/∂u_i = h_i``. In the *shape convention* the gradient has ``u``'s
    shape, so it is ``h`` (``(n, 1)``); in *Jacobian form* it is the ``1 × n`` row ``hᵀ``. Same numbers,
    transposed: the conventions differ by exactly the transposes the lecture warns about.
    """
    u, h = jnp.asarray(u), jnp.asarray(h)
    if u.ndim != 2 or u.shape[1] != 1 or h.shape != u.shape:
        raise ValueError(f"u and h must be columns of the same shape (n, 1); got u {u.shape}, h {h.shape}")
    if convention == "shape":
        return h
    if convention == "jacobian":
        return h.T
    raise ValueError(f"convention must be 'shape' or 'jacobian'; got {convention!r}")
