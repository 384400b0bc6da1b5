"""The function under test, flattened: differentiable float leaves in, float output leaves out.

``gradcheck(f, *args)`` works on any pytrees. Everything downstream works on

    F(leaves: list[array]) -> list[array]

where ``leaves`` are the floating-point leaves of the differentiated arguments (labelled by their
keypath, e.g. ``args[0]['W']``) and the outputs are f's floating-point output leaves. Integer,
boolean and complex leaves are held fixed and listed as skipped. Validation happens here, eagerly and
in plain Python, so that bad input fails with a message naming what was expected and what came.
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
    argnums: tuple = ()
    diff_positions: frozenset = frozenset()  # (argnum, flat leaf index) of each differentiated leaf


def _is_none(x):
    return x is None


def _name(f) -> str:
    return getattr(f, "__name__", None) or getattr(getattr(f, "fun", None), "__name__", None) or repr(f)


def _as_array_or_none(leaf):
    if isinstance(leaf, jax.ShapeDtypeStruct):
        return leaf
    if isinstance(leaf, (jax.Array, np.ndarray, np.generic)):
        return jnp.asarray(leaf)
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
        else:
            skipped.append((label, f"{arr.dtype} output: not differentiable, ignored"))
    return leaves, labels, skipped, treedef, flat


def build_problem(f, args, argnums=None, reference=None) -> Problem:
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

    # Differentiable leaves of the chosen arguments.
    slots = []  # (argnum, flat list of (path, leaf), treedef)
    x, labels, skipped, positions = [], [], [], []
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
                skipped.append((label, f"{arr.dtype}: complex inputs are not checked, held fixed"))
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
                    flat[k] = leaf
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
    float_idx = [i for i, (_, leaf) in enumerate(flat_out) if _kind(_as_array_or_none(leaf).dtype) == "float"]
    skipped += out_skipped

    def floats_of(fn, upcast):
        def G(leaves):
            res = jax.tree_util.tree_leaves(fn(*rebuild(leaves, upcast)), is_leaf=_is_none)
            return [res[i] for i in float_idx]

        return G

    notes = []
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
