"""Every input check of the library, once: plain Python, run before (or while) a function is traced.

Each check takes ``where``, the public name of the function (``"fnnet.softmax"``), and raises with a
message that names the function, the argument, what was expected and what came:
``fnnet.softmax: axis 2 is out of range for an input with ndim 2 (valid axes: -2 to 1)``. Run inside a
jitted function while it is traced, a check costs nothing on a compiled call.
"""
from __future__ import annotations

import numbers

import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "FLOAT_DTYPES",
    "as_float_array",
    "promote_float",
    "static_value",
    "axes",
    "same_dtype",
    "common_dtype",
    "is_prng_key",
    "prng_key",
    "bool_mask",
    "broadcasts_to",
    "broadcast_pair",
]

FLOAT_DTYPES = "float16, bfloat16, float32, float64"


# ----- arrays and hyperparameters ------------------------------------------------------------------


def as_float_array(value, name: str, where: str):
    """``value`` as a floating JAX array; Python scalars take the default float dtype.

    Raises ``TypeError`` naming ``name`` for integer, boolean, complex or non-numeric input.
    """
    if isinstance(value, bool):
        raise TypeError(f"{where}: argument '{name}' must be a floating array; got a bool")
    if isinstance(value, (int, float)):
        return jnp.asarray(float(value))
    dtype = getattr(value, "dtype", None)
    if dtype is None:
        try:
            arr = np.asarray(value)
        except Exception:  # noqa: BLE001 - anything not array-like
            arr = np.asarray(None)
        if arr.dtype == object:
            raise TypeError(
                f"{where}: argument '{name}' must be a floating array; got {type(value).__name__}"
            )
        if arr.dtype.kind in "iu":  # a list of Python ints behaves like Python ints
            arr = arr.astype(jnp.result_type(float))
        value, dtype = arr, arr.dtype
    if not jnp.issubdtype(dtype, jnp.floating):
        raise TypeError(
            f"{where}: argument '{name}' must have a floating dtype ({FLOAT_DTYPES}); got {dtype}"
        )
    return value if isinstance(value, jax.Array) else jnp.asarray(value)


def promote_float(value, name: str, where: str):
    """A differentiable argument as a floating array, promoted as jax.numpy promotes (bools and
    non-numbers are refused; integer arrays and NumPy integer scalars are promoted as ``jnp.sin``
    promotes them; a Python float stays weakly typed)."""
    if isinstance(value, (list, tuple)):
        try:
            value = jnp.asarray(value)
        except Exception:  # noqa: BLE001 - ragged or non-numeric
            raise TypeError(
                f"{where}: argument '{name}' must be a floating array; got a {type(value).__name__} "
                "that is not a rectangular array of numbers"
            ) from None
    dtype = getattr(value, "dtype", None)
    if dtype is None:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return jnp.asarray(value, dtype=float) if isinstance(value, int) else value
        raise TypeError(
            f"{where}: argument '{name}' must be a floating array; got {type(value).__name__}"
        )
    if jnp.issubdtype(dtype, jnp.floating):
        return value
    if jnp.issubdtype(dtype, jnp.integer):
        # jax.numpy's rule (jnp.sin, jax.nn.gelu): 64-bit integers to float64 (float32 without x64),
        # narrower ones to float32.
        wide = np.dtype(dtype).itemsize == 8
        return jnp.asarray(value).astype(jax.dtypes.canonicalize_dtype(jnp.float64 if wide else jnp.float32))
    raise TypeError(
        f"{where}: argument '{name}' must have a floating dtype ({FLOAT_DTYPES}) or an integer "
        f"dtype (promoted as jax.numpy promotes); got {dtype}"
    )


def traced_static(value, name: str, where: str) -> TypeError:
    """The error for a traced value given where a hyperparameter is static."""
    return TypeError(
        f"{where}: hyperparameter '{name}' is static (it fixes the computation when the function is "
        f"traced, as in jax.nn); got a traced {value.dtype}{list(value.shape)} value: pass a Python value"
    )


def static_value(value, name: str, where: str, default=None):
    """A hyperparameter as a hashable Python value; tracers are refused, and where the default is a
    number (bool) the value must be a real number (bool) too."""
    if isinstance(value, jax.core.Tracer):
        raise traced_static(value, name, where)
    if isinstance(value, (np.ndarray, jax.Array, np.generic)):
        arr = np.asarray(value)
        if arr.ndim != 0:
            raise TypeError(
                f"{where}: hyperparameter '{name}' must be a scalar; got shape {arr.shape}"
            )
        return arr.item()
    if isinstance(value, list):
        value = tuple(value)
    number = (int, float, np.integer, np.floating)
    if isinstance(default, bool) and not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{where}: hyperparameter '{name}' must be a bool; got {value!r}")
    # A float default (slope, alpha, lambd ...) takes a real number; int defaults (axis) may also take
    # None or a tuple, so they are left to the primitive's own validation.
    if (isinstance(default, float)
            and not (isinstance(value, number) and not isinstance(value, (bool, np.bool_)))):
        raise TypeError(
            f"{where}: hyperparameter '{name}' must be a real number (default {default!r}); got {value!r}"
        )
    try:
        hash(value)
    except TypeError:
        raise TypeError(
            f"{where}: hyperparameter '{name}' must be hashable (a number, bool, str, None or tuple); "
            f"got {type(value).__name__}"
        ) from None
    return value


# ----- axes ---------------------------------------------------------------------------------------


def axes(axis, ndim: int, where: str, name: str = "axis") -> tuple[int, ...]:
    """``axis`` (an int, a tuple or list of ints, or None for all) as sorted non-negative axes.

    Raises ``TypeError`` for anything else and ``ValueError`` for an axis out of range or named twice.
    """
    if axis is None:
        return tuple(range(ndim))
    given = tuple(axis) if isinstance(axis, (tuple, list)) else (axis,)
    out = []
    for a in given:
        if isinstance(a, bool) or not isinstance(a, numbers.Integral):
            raise TypeError(f"{where}: {name} must be an int, a tuple of ints or None; got {axis!r}")
        if not -ndim <= a < ndim:
            raise ValueError(
                f"{where}: {name} {axis} is out of range for an input with ndim {ndim} "
                f"(valid axes: {-ndim} to {ndim - 1})"
            )
        out.append(int(a) % ndim)
    if len(set(out)) != len(out):
        raise ValueError(f"{where}: {name} {axis} names the same axis twice (ndim {ndim})")
    return tuple(sorted(out))


# ----- dtypes -------------------------------------------------------------------------------------


def same_dtype(where: str, a_name: str, a, b_name: str, b, *, weak_ok: bool = False) -> None:
    """``b`` has ``a``'s dtype (with ``weak_ok``, a weakly typed Python scalar on either side passes)."""
    if a.dtype == b.dtype:
        return
    if weak_ok and (getattr(a, "weak_type", False) or getattr(b, "weak_type", False)):
        return
    raise TypeError(
        f"{where}: '{b_name}' must have the dtype of '{a_name}' ({a.dtype}); got {b.dtype} "
        "(cast one explicitly)"
    )


def real_array(value, where: str, name: str, like=None):
    """``value`` as an array of real numbers (``TypeError`` naming it for booleans, complex numbers and
    non-numbers); a Python number or sequence, which has no dtype of its own (a list or tuple passed
    to a jitted function arrives as a tuple of traced scalars), takes ``like``'s when it is given."""
    own_dtype = hasattr(value, "dtype")
    v = jnp.asarray(value)
    if v.dtype == jnp.bool_ or not jnp.issubdtype(v.dtype, jnp.number) \
            or jnp.issubdtype(v.dtype, jnp.complexfloating):
        raise TypeError(f"{where}: {name} must be real numbers; got dtype {v.dtype}")
    return v if own_dtype or like is None else v.astype(like.dtype)


def common_dtype(where: str, a, b, a_name: str, b_name: str):
    """The dtype ``a − b`` would have (jax.numpy's promotion, weak types included)."""
    try:
        return jnp.result_type(a, b)
    except jax.dtypes.TypePromotionError:
        raise TypeError(
            f"{where}: {a_name} dtype {jnp.asarray(a).dtype} and {b_name} dtype {jnp.asarray(b).dtype} "
            "have no implicit promotion under jax_numpy_dtype_promotion='strict'; cast one of them"
        ) from None


# ----- PRNG keys ----------------------------------------------------------------------------------


def is_prng_key(key) -> bool:
    """One PRNG key: a typed scalar key (``jax.random.key``) or a raw uint32 key (``jax.random.PRNGKey``)."""
    dtype = getattr(key, "dtype", None)
    if dtype is None:
        return False
    if jnp.issubdtype(dtype, jax.dtypes.prng_key):
        return key.ndim == 0
    return dtype == jnp.uint32 and key.ndim == 1  # threefry's (2,), rbg's (4,)


def prng_key(key, where: str, name: str = "key"):
    """``key`` itself if it is one PRNG key, else ``TypeError`` naming what came."""
    if is_prng_key(key):
        return key
    if hasattr(key, "dtype"):
        got = f"an array of dtype {key.dtype} and shape {tuple(key.shape)}"
    elif isinstance(key, (int, float)):
        got = f"{type(key).__name__} {key!r}"
    else:
        got = type(key).__name__
    raise TypeError(
        f"{where}: argument '{name}' must be one PRNG key such as jax.random.key(0) (or a raw uint32 "
        f"jax.random.PRNGKey); got {got}"
    )


# ----- masks and broadcasting ---------------------------------------------------------------------


def bool_mask(mask, where: str, name: str = "where"):
    """``mask`` as a boolean array, or ``TypeError`` naming its dtype."""
    m = jnp.asarray(mask)
    if m.dtype != jnp.bool_:
        raise TypeError(f"{where}: '{name}' must be a boolean mask; got dtype {m.dtype}")
    return m


def broadcasts_to(value, shape, where: str, name: str, whose: str = "the input's") -> None:
    """``value`` broadcasts to ``shape`` without growing it (a mask, a per-element slope)."""
    shape = tuple(shape)
    try:
        ok = np.broadcast_shapes(tuple(value.shape), shape) == shape
    except ValueError:
        ok = False
    if not ok:
        raise ValueError(
            f"{where}: '{name}' of shape {tuple(value.shape)} does not broadcast to {whose} shape {shape}"
        )


def broadcast_pair(where: str, a, b, a_name: str, b_name: str):
    """``a`` and ``b`` broadcast against each other, or ``ValueError`` naming both shapes."""
    try:
        shape = np.broadcast_shapes(a.shape, b.shape)
    except ValueError:
        raise ValueError(
            f"{where}: {b_name} of shape {b.shape} does not broadcast with {a_name} of shape {a.shape}"
        ) from None
    return jnp.broadcast_to(a, shape), jnp.broadcast_to(b, shape)
