"""The function under test, flattened: differentiable float leaves in, float output leaves out.

``gradcheck(f, *args)`` works on any pytrees. Everything downstream works on

    F(leaves: list[array]) -> list[array]

where ``leaves`` are the floating-point leaves of the differentiated arguments (labelled by their
keypath, e.g. ``args[0]['W']``) and the outputs are f's floating-point output leaves. Integer and
boolean leaves are held fixed and listed as skipped. Validation happens here, eagerly and in plain
Python, so that bad input fails with a message naming what was expected and what came.

Complex leaves are checked as real pairs. A complex input ``z`` of shape ``S`` becomes a real leaf of
shape ``S + (2,)`` (``[..., 0]`` the real part, ``[..., 1]`` the imaginary part) that F turns back into
``lax.complex(re, im)``; a complex output becomes ``stack([real, imag], -1)``. ``jax.vjp`` of this
real function runs the custom rule through the transposes of ``complex``/``real``/``imag``, which
encode JAX's convention (``vjp(g) = g * f'(z)`` for holomorphic f, no conjugate; the same convention
``jax.test_util.check_grads`` tests), so a rule in JAX's convention gives exactly the transposed real
Jacobian that finite differences of the real function measure, and a rule in another convention (a
conjugated derivative) fails.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.tree_util import keystr, tree_flatten_with_path, tree_unflatten


@dataclass
class Problem:
    """f (and its reference) as functions of the differentiable leaves.

    F / F64: the function at the inputs' own dtypes / with every float input upcast to float64.
    R / R64: the same for the reference (None when there is none).
    x: primal leaves (jnp arrays, their own dtypes); labels: their keypaths.
    out: f's float output leaves at x; out_labels: their keypaths.
    skipped: (keypath, reason) for leaves held fixed.
    """

    F: Callable
    F64: Callable
    R: Callable | None
    R64: Callable | None
    x: list
    labels: list[str]
    out: list
    out_labels: list[str]
    skipped: list[tuple[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    reference_name: str = ""
    RV: Callable | None = None  # a given reference VJP: (leaves, output cotangents) -> leaf cotangents
    argnums: tuple = ()
    diff_positions: frozenset = frozenset()  # (argnum, flat leaf index) of each differentiated leaf


def _is_none(x):
    return x is None


def _name(f) -> str:
    return getattr(f, "__name__", None) or getattr(getattr(f, "fun", None), "__name__", None) or repr(f)


def _as_array_or_none(leaf):
    if isinstance(leaf, jax.ShapeDtypeStruct):
        return leaf
    if isinstance(leaf, jax.Array):
        return leaf
    if isinstance(leaf, (np.ndarray, np.generic)):  # a transfer: jnp.asarray compiles a copy per shape
        return jax.device_put(leaf)
    if isinstance(leaf, (bool, int, float, complex)):
        return jnp.asarray(leaf)
    return None


def _kind(dtype) -> str:
    if jnp.issubdtype(dtype, jnp.floating):
        return "float"
    if jnp.issubdtype(dtype, jnp.complexfloating):
        return "complex"
    return "other"


def check_arity(f, args) -> None:
    """Raise TypeError when f's signature cannot take ``len(args)`` positional arguments."""
    target = getattr(f, "fun", f)
    try:
        sig = inspect.signature(target)
    except (TypeError, ValueError):
        return
    try:
        sig.bind(*args)
    except TypeError as err:
        raise TypeError(
            f"gradcheck: {_name(f)}{sig} cannot be called with {len(args)} positional argument(s): {err}"
        ) from None


def _flatten_outputs(out, who: str):
    """Float output leaves and their labels; errors for None or non-array leaves."""
    flat, treedef = tree_flatten_with_path(out, is_leaf=_is_none)
    leaves, labels, skipped = [], [], []
    for path, leaf in flat:
        label = "out" + keystr(path)
        if leaf is None:
            raise TypeError(f"gradcheck: {who} returned None at {label}; expected an array there")
        arr = _as_array_or_none(leaf)
        if arr is None:
            raise TypeError(
                f"gradcheck: {who} returned a {type(leaf).__name__} at {label}; expected an array "
                "(gradcheck needs array outputs)"
            )
        kind = _kind(arr.dtype)
        if kind == "float":
            leaves.append(arr)
            labels.append(label)
        elif kind == "complex":
            leaves.append(jax.ShapeDtypeStruct(tuple(arr.shape) + (2,), _real_dtype(arr.dtype)))
            labels.append(label + "[re,im]")
        else:
            skipped.append((label, f"{arr.dtype} output: not differentiable, ignored"))
    return leaves, labels, skipped, treedef, flat


def _real_dtype(dtype):
    return jnp.float64 if jnp.dtype(dtype) == jnp.complex128 else jnp.float32


def _as_complex(leaf):
    return jax.lax.complex(leaf[..., 0], leaf[..., 1])


def _as_real(out):
    return jnp.stack([jnp.real(out), jnp.imag(out)], axis=-1)


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def check_usage(f, args, argnums) -> None:
    """Usage mistakes that would otherwise look like a broken rule: raise with what to pass instead."""
    for a, arg in enumerate(args):
        if isinstance(arg, (list, tuple)) and len(arg) > 1 and all(_is_number(v) for v in arg):
            raise TypeError(
                f"gradcheck: args[{a}] is a {type(arg).__name__} of {len(arg)} Python numbers, which JAX treats as "
                f"{len(arg)} separate scalar leaves, not an array; pass jnp.asarray({list(arg)!r}, jnp.float32) "
                "(or a tuple of jnp arrays if f really takes separate scalars)"
            )
    nondiff = tuple(getattr(f, "nondiff_argnums", ()) or ())
    for a in argnums:
        if a in nondiff:
            has_array = any(isinstance(v, (jax.Array, np.ndarray)) for v in jax.tree_util.tree_leaves(args[a]))
            if has_array:
                keep = tuple(b for b in range(len(args)) if b not in nondiff)
                raise ValueError(
                    f"gradcheck: argument {a} of {_name(f)} is one of its nondiff_argnums {nondiff}, and it holds "
                    f"arrays; JAX does not differentiate it, and tracing it as an input fails. Pass argnums={keep} "
                    "(gradcheck then holds it fixed)"
                )


def build_problem(f, args, argnums=None, reference=None, reference_vjp=None) -> Problem:
    """Validate ``f(*args)`` and its reference, and flatten both to :class:`Problem`."""
    if not callable(f):
        raise TypeError(f"gradcheck: f must be callable, got {type(f).__name__}")
    if not args:
        raise TypeError("gradcheck: expected at least one positional argument to differentiate, got none")
    if argnums is None:
        argnums = tuple(range(len(args)))
    elif isinstance(argnums, int):
        argnums = (argnums,)
    argnums = tuple(argnums)
    for a in argnums:
        if not isinstance(a, int) or not -len(args) <= a < len(args):
            raise ValueError(f"gradcheck: argnums must index the {len(args)} positional args, got {a!r}")
    argnums = tuple(sorted({a % len(args) for a in argnums}))
    check_arity(f, args)
    check_usage(f, args, argnums)

    # Differentiable leaves of the chosen arguments.
    slots = []  # (argnum, flat list of (path, leaf), treedef)
    x, labels, skipped, positions, notes = [], [], [], [], []
    complex_positions = set()
    for a in argnums:
        flat, treedef = tree_flatten_with_path(args[a], is_leaf=_is_none)
        slots.append((a, [leaf for _, leaf in flat], treedef))
        for k, (path, leaf) in enumerate(flat):
            label = f"args[{a}]" + keystr(path)
            if leaf is None:
                raise TypeError(f"gradcheck: {label} is None; expected an array (or leave it out of argnums)")
            arr = _as_array_or_none(leaf)
            if arr is None:
                skipped.append((label, f"{type(leaf).__name__}: not an array, held fixed"))
                continue
            kind = _kind(arr.dtype)
            if kind == "float":
                x.append(arr)
                labels.append(label)
                positions.append((len(slots) - 1, k))
            elif kind == "complex":
                pair = np.stack([np.real(np.asarray(arr)), np.imag(np.asarray(arr))], axis=-1)
                x.append(jax.device_put(pair.astype(_real_dtype(arr.dtype))))
                labels.append(label + "[re,im]")
                positions.append((len(slots) - 1, k))
                complex_positions.add((len(slots) - 1, k))
                notes.append(f"{label}: {arr.dtype} checked as real pairs (last index 0 = real part, 1 = imaginary "
                             "part), JAX's convention for complex VJPs")
            else:
                skipped.append((label, f"{arr.dtype}: not differentiable, held fixed"))
    if not x:
        raise ValueError(
            "gradcheck: no floating-point leaves to differentiate in args "
            f"{list(argnums)}; skipped: {[s[0] for s in skipped]}"
        )

    def rebuild(leaves, upcast: bool):
        new_args = list(args)
        for s, (a, flat, treedef) in enumerate(slots):
            flat = list(flat)
            if upcast:
                flat = [_upcast(v) for v in flat]
            for (slot, k), leaf in zip(positions, leaves):
                if slot == s:
                    flat[k] = _as_complex(leaf) if (slot, k) in complex_positions else leaf
            new_args[a] = tree_unflatten(treedef, flat)
        if upcast:
            for a in range(len(args)):
                if a not in argnums:
                    new_args[a] = jax.tree_util.tree_map(_upcast, args[a])
        return new_args

    try:
        out0 = _abstract_call(f, args)
    except TypeError as err:
        raise TypeError(f"gradcheck: calling {_name(f)} with the given {len(args)} argument(s) failed: {err}") from err
    out, out_labels, out_skipped, treedef, flat_out = _flatten_outputs(out0, _name(f))
    if not out:
        raise ValueError(f"gradcheck: {_name(f)} has no floating-point outputs to check")
    kinds = [_kind(_as_array_or_none(leaf).dtype) for _, leaf in flat_out]
    float_idx = [i for i, kind in enumerate(kinds) if kind in ("float", "complex")]
    skipped += out_skipped

    def floats_of(fn, upcast):
        def G(leaves):
            res = jax.tree_util.tree_leaves(fn(*rebuild(leaves, upcast)), is_leaf=_is_none)
            return [_as_real(res[i]) if kinds[i] == "complex" else res[i] for i in float_idx]

        return G

    ref, ref_name = _resolve_reference(f, reference)
    R = R64 = None
    if ref is not None:
        try:
            ref_out = _abstract_call(ref, args)
        except Exception as err:  # noqa: BLE001 - reported, or re-raised for an explicit reference
            if reference is not None:
                raise TypeError(f"gradcheck: calling the reference {ref_name} with the given args failed: {err}") from err
            notes.append(f"reference {ref_name} could not be called ({type(err).__name__}: {err}); (a) skipped")
            ref = None
        else:
            _, ref_treedef = jax.tree_util.tree_flatten(ref_out, is_leaf=_is_none)
            f_shapes = [jnp.shape(leaf) for _, leaf in flat_out]
            r_leaves = jax.tree_util.tree_leaves(ref_out, is_leaf=_is_none)
            r_shapes = [jnp.shape(leaf) if leaf is not None else None for leaf in r_leaves]
            if ref_treedef != treedef or f_shapes != r_shapes:
                raise ValueError(
                    f"gradcheck: the reference {ref_name} returns {ref_treedef} with shapes {r_shapes}, "
                    f"but f returns {treedef} with shapes {f_shapes}; they must match"
                )
    if ref is not None:
        R, R64 = floats_of(ref, False), floats_of(ref, True)
    RV = None
    if reference_vjp is not None:
        if not callable(reference_vjp):
            raise TypeError(f"gradcheck: reference_vjp must be callable, got {type(reference_vjp).__name__}")
        if complex_positions or any(k == "complex" for k in kinds):
            raise ValueError("gradcheck: reference_vjp with complex inputs or outputs is not supported")
        R = R64 = None
        ref_name = f"reference_vjp={_name(reference_vjp)}"

        def RV(leaves, gs):
            new_args = rebuild(leaves, False)
            flat_g = [np.zeros(np.shape(leaf), np.asarray(leaf).dtype) if not hasattr(leaf, "dtype") else
                      jnp.zeros(leaf.shape, leaf.dtype) for _, leaf in flat_out]
            for j, i in enumerate(float_idx):
                flat_g[i] = gs[j]
            cts = reference_vjp(tuple(new_args), tree_unflatten(treedef, flat_g))
            if not isinstance(cts, (tuple, list)) or len(cts) != len(argnums):
                raise TypeError(f"gradcheck: reference_vjp must return a tuple of {len(argnums)} cotangent(s), one per "
                                f"argnum {argnums}; got {type(cts).__name__}")
            out = []
            for (slot, k) in positions:
                flat = jax.tree_util.tree_leaves(cts[slot], is_leaf=_is_none)
                out.append(flat[k])
            return out

    return Problem(
        F=floats_of(f, False),
        F64=floats_of(f, True),
        R=R,
        R64=R64,
        x=x,
        labels=labels,
        out=[jax.ShapeDtypeStruct(o.shape, o.dtype) for o in out],
        out_labels=out_labels,
        skipped=skipped,
        notes=notes,
        reference_name=ref_name,
        RV=RV,
        argnums=argnums,
        diff_positions=frozenset((slots[slot][0], k) for slot, k in positions),
    )


def _abstract_call(fn, args):
    """``fn(*args)`` as shapes and dtypes (``jax.eval_shape``: traced, not compiled or run).

    Falls back to a concrete call when tracing fails, so that the error (or a non-array output that
    ``eval_shape`` cannot represent) surfaces exactly as the user's own call would show it.
    """
    try:
        return jax.eval_shape(fn, *args)
    except Exception:  # noqa: BLE001 - re-run concretely for the real error / non-array outputs
        return fn(*args)


def _upcast(v):
    """Float leaves (arrays or Python floats) as float64; anything else unchanged.

    Converts through numpy, never through jnp: inside a trace every jnp operation (even on a
    constant) yields a tracer, which numpy cannot read.
    """
    if isinstance(v, bool) or isinstance(v, int):
        return v
    if isinstance(v, float):
        return jnp.asarray(np.float64(v))
    if isinstance(v, (jax.Array, np.ndarray, np.generic)) and _kind(v.dtype) == "float":
        return jnp.asarray(np.asarray(v, np.float64))
    return v


def _resolve_reference(f, reference):
    """The reference and a name for it: given > ``f.reference`` > ``f.fun`` of a custom_vjp/jvp."""
    if reference is not None:
        if not callable(reference):
            raise TypeError(f"gradcheck: reference must be callable, got {type(reference).__name__}")
        return reference, f"reference={_name(reference)}"
    attr = getattr(f, "reference", None)
    if callable(attr):
        return attr, f"{_name(f)}.reference"
    if isinstance(f, (jax.custom_vjp, jax.custom_jvp)):
        return f.fun, f"{_name(f)}.fun (undecorated primal)"
    return None, ""
