"""How a primitive is declared: one place for its forward, hand-written VJP and JVP, plain reference.

Every differentiable operation in fnnet is a :class:`Primitive`. Declaring one gives

* ``prim.fn``: the public function, a ``jax.custom_vjp`` whose backward pass is the hand-written VJP
  (what ``jax.grad``, ``jax.vjp`` and ``jax.jacrev`` use);
* ``prim.forward_mode``: the same function as a ``jax.custom_jvp`` whose rule is the hand-written JVP,
  so that ``jax.jvp``, ``jax.jacfwd`` and ``jax.hessian`` work (a ``custom_vjp`` function refuses
  forward mode; JAX allows a function one kind of custom rule, so the two live side by side);
* ``prim.reference``: a plain ``jax.numpy`` implementation that ``jax.vjp`` differentiates on its own,
  an oracle independent of the hand rules;
* metadata read by the tests, the checker and ``python -m fnnet verify``: the kink points and the
  derivative chosen there, a sampling domain, whether the op is elementwise.

Two ways to declare:

``elementwise(name, f, df, ...)``
    for ``y = f(x)`` applied entry by entry. Only ``f`` and ``f'`` are written: the VJP is ``g * f'``
    and the JVP ``t * f'``. ``f'`` may read the input ``x``, the output ``y`` or both; ``saves`` says
    which ones the backward pass keeps (keep ``y`` where the derivative comes from the output: the
    residual is then the value the forward already produced).

``define(name, forward=..., fwd=..., bwd=..., jvp=..., reference=...)``
    for everything else (softmax, matmul, dense, the losses): both rules written explicitly.

Hyperparameters (``negative_slope``, ``alpha``, ``axis``, ``approximate`` ...) are *static*: plain
Python values fixed at trace time, passed through ``nondiff_argnums``. A traced value there raises a
``TypeError`` naming the argument (use :func:`fnnet.activations.prelu` for a learnable slope).
"""
from __future__ import annotations

import dataclasses
import functools
import inspect
from typing import Any, Callable, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "Kink",
    "Primitive",
    "define",
    "elementwise",
    "registry",
    "get",
    "forward_mode",
    "as_float_array",
    "static_value",
    "uniform_avoiding",
    "unbroadcast",
]

_REGISTRY: dict[str, "Primitive"] = {}

_FLOAT_DTYPES = "float16, bfloat16, float32, float64"


@dataclasses.dataclass(frozen=True)
class Kink:
    """A point where the derivative is not defined, and the value fnnet's rule returns there.

    ``at`` is the input where the one-sided derivatives differ (for default hyperparameters);
    ``derivative`` the value of the hand rule there (jax.nn's choice); ``torch`` torch's value where it
    differs (None if the same).
    """

    at: float
    derivative: float
    torch: float | None = None
    note: str = ""


@dataclasses.dataclass(frozen=True, eq=False)
class Primitive:
    """Everything about one differentiable operation. See the module docstring."""

    name: str
    fn: Callable[..., Any]
    forward_mode: Callable[..., Any]
    reference: Callable[..., Any]
    forward: Callable[..., Any]
    fwd: Callable[..., Any]
    bwd: Callable[..., Any]
    jvp: Callable[..., Any]
    arg_names: tuple[str, ...]
    static_defaults: Mapping[str, Any]
    elementwise: bool
    kinks: tuple[Kink, ...] = ()
    domain: tuple[float, float] = (-4.0, 4.0)
    support: tuple[float, float] = (-float("inf"), float("inf"))
    singular: tuple[float, ...] = ()
    sample: Callable[..., tuple] | None = None
    variants: tuple[Mapping[str, Any], ...] = ({},)
    derivation: str = ""
    df: Callable[..., Any] | None = None  # elementwise only: f'(x, y, **static)
    saves: str = ""  # elementwise only: "x", "y" or "xy"

    def __call__(self, *args, **kwargs):
        return self.fn(*args, **kwargs)

    def sample_inputs(self, key, dtype=jnp.float32, shape=(3, 5), **static):
        """Default test inputs: a tuple of arrays for ``fn``, away from the kinks.

        ``static`` hyperparameters may shift the kinks; the elementwise sampler keeps a margin of
        0.05·(domain width) around each kink of the default configuration and around the hyperparameter
        dependent ones declared through ``sample``.
        """
        if self.sample is not None:
            return self.sample(key, dtype, shape, **static)
        lo, hi = self.domain
        kinks = [k.at for k in self.kinks]
        return tuple(
            uniform_avoiding(k, shape, dtype, lo, hi, kinks)
            for k in jax.random.split(key, len(self.arg_names))
        )


def uniform_avoiding(key, shape, dtype, lo, hi, kinks, margin=None):
    """Uniform points on [lo, hi] moved at least ``margin`` (default 5 % of the width) away from every
    kink: test inputs where finite differences do not straddle a kink."""
    margin = 0.05 * (hi - lo) if margin is None else margin
    x = np.asarray(jax.random.uniform(key, shape, jnp.float32, lo, hi), np.float64)
    for k in kinks:
        near = np.abs(x - k) < margin
        x = np.where(near, k + np.where(x >= k, margin, -margin) * 1.5, x)
    return jnp.asarray(x, dtype)


def registry() -> dict[str, Primitive]:
    """Every registered primitive by name (aliases such as ``swish`` are not listed twice)."""
    return dict(_REGISTRY)


def get(name: str) -> Primitive:
    """The registered primitive called ``name``."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(
            f"no fnnet primitive named {name!r}; registered: {', '.join(sorted(_REGISTRY))}"
        ) from None


def forward_mode(fn: Callable) -> Callable:
    """The forward-mode variant of a public fnnet function (``jax.custom_jvp`` over the hand JVP).

    ``jax.jvp(forward_mode(fnnet.sigmoid), (x,), (t,))``, ``jax.jacfwd`` and ``jax.hessian`` work on it;
    its first derivatives equal the reverse-mode ones (both come from the same f').
    """
    prim = getattr(fn, "primitive", None)
    if not isinstance(prim, Primitive):
        raise TypeError(f"forward_mode expects a public fnnet primitive function, got {fn!r}")
    # A public wrapper (softmax with `where`) carries its own forward-mode twin; plain ones share prim's.
    return getattr(fn, "forward_mode", prim.forward_mode)


# ---------------------------------------------------------------------------------------------
# Input validation (plain Python, before anything is traced)
# ---------------------------------------------------------------------------------------------


def as_float_array(value, name: str, where: str):
    """``value`` as a floating JAX array; Python scalars take the default float dtype.

    Raises ``TypeError`` naming ``name`` for integer, boolean, complex or non-numeric input.
    """
    if isinstance(value, bool) or (isinstance(value, (int, float)) and not isinstance(value, bool)):
        if isinstance(value, bool):
            raise TypeError(f"{where}: argument '{name}' must be a floating array; got a bool")
        return jnp.asarray(float(value))
    dtype = getattr(value, "dtype", None)
    if dtype is None:
        try:
            arr = np.asarray(value)
        except Exception:  # noqa: BLE001 - anything not array-like
            raise TypeError(
                f"{where}: argument '{name}' must be a floating array; got {type(value).__name__}"
            ) from None
        if arr.dtype == object:
            raise TypeError(
                f"{where}: argument '{name}' must be a floating array; got {type(value).__name__}"
            )
        if arr.dtype.kind in "iu":  # a list of Python ints behaves like Python ints
            arr = arr.astype(jnp.result_type(float))
        value, dtype = arr, arr.dtype
    if not jnp.issubdtype(dtype, jnp.floating):
        raise TypeError(
            f"{where}: argument '{name}' must have a floating dtype ({_FLOAT_DTYPES}); got {dtype}"
        )
    return value if isinstance(value, jax.Array) else jnp.asarray(value)


def static_value(value, name: str, where: str, default=None):
    """A hyperparameter as a hashable Python value; tracers are refused, and where the default is a
    number (bool) the value must be a real number (bool) too."""
    if isinstance(value, jax.core.Tracer):
        raise TypeError(
            f"{where}: hyperparameter '{name}' must be a static Python value (it is fixed when the "
            f"function is traced); got a traced {value.dtype}{list(value.shape)} array. "
            "For a learnable slope use fnnet.activations.prelu."
        )
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


# ---------------------------------------------------------------------------------------------
# The mechanism
# ---------------------------------------------------------------------------------------------


def _signature(arg_names, static_defaults):
    params = [inspect.Parameter(a, inspect.Parameter.POSITIONAL_OR_KEYWORD) for a in arg_names]
    params += [
        inspect.Parameter(k, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=v)
        for k, v in static_defaults.items()
    ]
    return inspect.Signature(params)


def _make_public(name, core, arg_names, static_defaults, validate, doc):
    """Wrap a core (custom_vjp or custom_jvp over ``(static, *arrays)``) in the public signature."""
    sig = _signature(arg_names, static_defaults)
    n = len(arg_names)
    where = f"fnnet.{name}"

    def public(*args, **kwargs):
        try:
            bound = sig.bind(*args, **kwargs)
        except TypeError as e:
            raise TypeError(f"{where}{sig}: {e}") from None
        bound.apply_defaults()
        values = list(bound.arguments.values())
        arrays = [as_float_array(v, a, where) for v, a in zip(values[:n], arg_names)]
        static = tuple(
            (k, static_value(v, k, where, static_defaults[k]))
            for k, v in zip(static_defaults, values[n:])
        )
        if validate is not None:
            validate(*arrays, **dict(static))
        return core(static, *arrays)

    public.__name__ = public.__qualname__ = name
    public.__signature__ = sig
    public.__doc__ = doc
    public.__module__ = "fnnet"
    return public


def define(
    name: str,
    *,
    forward: Callable,
    bwd: Callable,
    jvp: Callable,
    reference: Callable,
    fwd: Callable | None = None,
    arg_names: Sequence[str] = ("x",),
    static: Mapping[str, Any] | None = None,
    elementwise: bool = False,
    kinks: Sequence[Kink] = (),
    domain: tuple[float, float] = (-4.0, 4.0),
    support: tuple[float, float] = (-float("inf"), float("inf")),
    singular: Sequence[float] = (),
    sample: Callable | None = None,
    variants: Sequence[Mapping[str, Any]] = ({},),
    validate: Callable | None = None,
    derivation: str = "",
    doc: str | None = None,
    register: bool = True,
    _df: Callable | None = None,
    _saves: str = "",
) -> Primitive:
    """Declare a primitive from its two hand-written rules.

    Arguments:
      forward: ``forward(*arrays, **static) -> out`` (any pytree of arrays).
      fwd: ``fwd(*arrays, **static) -> (out, residuals)``; defaults to saving the inputs.
      bwd: ``bwd(residuals, g, **static) -> tuple`` of cotangents, one per array argument, each in the
        shape and dtype of that argument (the shape convention).
      jvp: ``jvp(primals, tangents, out, **static) -> tangent_out``; linear in ``tangents``.
      reference: plain jnp with the public signature, differentiated by ``jax.vjp`` as an oracle.
      arg_names: the array arguments, in order. static: hyperparameters and their defaults.
      validate: ``validate(*arrays, **static)`` raising a clear error for bad shapes, before tracing.
      kinks: the points where the derivative is undefined and the value the rule takes there.
      domain: where ``sample_inputs`` draws test points. support: the open interval on which the
        function is defined (log1mexp: (0, ∞)). singular: points where the derivative is unbounded.
    """
    static_defaults = dict(static or {})
    arg_names = tuple(arg_names)
    if fwd is None:

        def fwd(*arrays, **kw):
            return forward(*arrays, **kw), arrays

    def vjp_core(static_items, *arrays):
        return forward(*arrays, **dict(static_items))

    vjp_core.__name__ = vjp_core.__qualname__ = name  # the name jaxprs print: custom_vjp_call[name=...]
    vjp_core = jax.custom_vjp(vjp_core, nondiff_argnums=(0,))

    def vjp_core_fwd(static_items, *arrays):
        return fwd(*arrays, **dict(static_items))

    def vjp_core_bwd(static_items, residuals, g):
        return tuple(bwd(residuals, g, **dict(static_items)))

    vjp_core.defvjp(vjp_core_fwd, vjp_core_bwd)

    @functools.partial(jax.custom_jvp, nondiff_argnums=(0,))
    def jvp_core(static_items, *arrays):
        return forward(*arrays, **dict(static_items))

    @jvp_core.defjvp
    def _jvp_core_rule(static_items, primals, tangents):
        # Calling jvp_core (not forward) keeps the hand rule in charge at every order (hessian).
        out = jvp_core(static_items, *primals)
        return out, jvp(primals, tangents, out, **dict(static_items))

    doc = doc or (forward.__doc__ or "")
    public = _make_public(name, vjp_core, arg_names, static_defaults, validate, doc)
    public_fwd = _make_public(
        name, jvp_core, arg_names, static_defaults, validate,
        f"Forward-mode variant of fnnet.{name} (custom_jvp over the hand-written JVP).\n\n{doc}",
    )
    prim = Primitive(
        name=name,
        fn=public,
        forward_mode=public_fwd,
        reference=reference,
        forward=forward,
        fwd=fwd,
        bwd=bwd,
        jvp=jvp,
        arg_names=arg_names,
        static_defaults=static_defaults,
        elementwise=elementwise,
        kinks=tuple(kinks),
        domain=tuple(domain),
        support=tuple(support),
        singular=tuple(singular),
        sample=sample,
        variants=tuple(variants),
        derivation=derivation,
        df=_df,
        saves=_saves,
    )
    for f in (public, public_fwd):
        f.primitive = prim
        f.reference = reference
    public.forward_mode = public_fwd
    if register:
        if name in _REGISTRY:
            raise ValueError(f"a primitive named {name!r} is already registered")
        _REGISTRY[name] = prim
    return prim


def elementwise(
    name: str,
    f: Callable,
    df: Callable,
    *,
    reference: Callable,
    saves: str = "x",
    static: Mapping[str, Any] | None = None,
    kinks: Sequence[Kink] = (),
    domain: tuple[float, float] = (-4.0, 4.0),
    support: tuple[float, float] = (-float("inf"), float("inf")),
    singular: Sequence[float] = (),
    variants: Sequence[Mapping[str, Any]] = ({},),
    derivation: str = "",
    doc: str | None = None,
    sample: Callable | None = None,
) -> Primitive:
    """Declare ``y = f(x)`` applied entry by entry from ``f`` and its derivative alone.

    ``df(x, y, **static)`` returns f'(x); it is given ``x`` and/or ``y = f(x)`` as ``saves`` says
    (the other is None). VJP: ``g * f'``. JVP: ``t * f'``. The Jacobian is diagonal. Where the input
    is NaN the derivative is NaN (``f`` itself must map NaN to NaN).
    """
    if saves not in ("x", "y", "xy"):
        raise ValueError(f"saves must be 'x', 'y' or 'xy'; got {saves!r}")

    def fwd(x, **kw):
        y = f(x, **kw)
        return y, (x if "x" in saves else None, y if "y" in saves else None)

    def derivative(x, y, **kw):
        # A NaN input gives a NaN derivative even where f' is constant (identity, relu's flat side):
        # a NaN must never vanish from the gradient. XLA fuses the select into the multiply by g.
        d = df(x, y, **kw)
        r = x if x is not None else y
        return jnp.where(jnp.isnan(r), r, d)

    def bwd(residuals, g, **kw):
        x, y = residuals
        return (g * derivative(x, y, **kw),)

    def jvp(primals, tangents, out, **kw):
        (x,), (t,) = primals, tangents
        return t * derivative(x if "x" in saves else None, out if "y" in saves else None, **kw)

    return define(
        name,
        forward=f,
        fwd=fwd,
        bwd=bwd,
        jvp=jvp,
        reference=reference,
        static=static,
        elementwise=True,
        kinks=kinks,
        domain=domain,
        support=support,
        singular=singular,
        variants=variants,
        derivation=derivation,
        doc=doc or f.__doc__,
        sample=sample,
        _df=df,
        _saves=saves,
    )


def unbroadcast(g, shape):
    """Sum a cotangent back to ``shape``: the rule for an input that was broadcast.

    Broadcasting copies an input along new leading axes and along axes of size 1; the adjoint of a
    copy is a sum, so the cotangent is summed over exactly those axes.
    """
    shape = tuple(shape)
    if g.shape == shape:
        return g
    lead = g.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(
        lead + i for i, s in enumerate(shape) if s == 1 and g.shape[lead + i] != 1
    )
    return jnp.sum(g, axis=axes).reshape(shape) if axes else g.reshape(shape)
