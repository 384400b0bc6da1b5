"""How a primitive is declared: one place for its forward, hand-written VJP and JVP, plain reference.

Every differentiable operation in fnnet is a :class:`Primitive`. Declaring one gives

* ``prim.fn``: the public function, a ``jax.custom_jvp`` whose tangent map is the transpose of the
  hand-written VJP (compiled by ``jax.jit`` when called eagerly, traced inline inside a program).
  Reverse mode (``jax.grad``, ``jax.vjp``, ``jax.jacrev``) transposes the tangent map back into
  exactly the hand VJP's operations; forward mode (``jax.jvp``, ``jax.jacfwd``, ``jax.linearize``,
  ``jax.hessian``) works on the same function;
* ``prim.reference``: a plain ``jax.numpy`` implementation that ``jax.vjp`` differentiates on its own,
  an oracle independent of the hand rules;
* metadata read by the tests, the checker and ``python -m fnnet verify``: the kink points and the
  derivative chosen there, a sampling domain, whether the op is elementwise.

Two ways to declare:

``elementwise(name, f, df, ...)``
    for ``y = f(x)`` applied entry by entry. Only ``f`` and ``f'`` are written: the VJP is ``g * f'``
    and the JVP ``t * f'`` (the tangent map is its own transpose). ``f'`` may read the input ``x``, the
    output ``y`` or both; ``saves`` says which (reading only ``y``, which the next layer keeps anyway,
    costs no memory beyond jax.grad's).

``define(name, forward=..., fwd=..., bwd=..., jvp=..., reference=...)``
    for everything else (softmax, matmul, affine, the losses): both rules written explicitly.

Parameters: the differentiable arrays (``arg_names``) get hand cotangents; the others are static
(hashable Python values fixed at trace time, as jax.nn's ``axis`` and ``approximate``) unless named in
``traced`` (masks, integer labels, PRNG keys, and the hyperparameters jax.nn traces, such as
``negative_slope``), which travel as arrays; a floating traced parameter that is differentiated gets
its derivative from autodiff of the forward. Inputs are validated while the function is traced, so a
compiled call pays nothing for the checks.
"""
from __future__ import annotations

import dataclasses
import inspect
from typing import Any, Callable, Mapping, Sequence

import jax
import jax.numpy as jnp
from jax import lax
import numpy as np
from jax.custom_derivatives import SymbolicZero

from fnnet._checks import promote_float, static_value, traced_static

__all__ = ["Kink", "Primitive", "REQUIRED", "define", "elementwise", "registry", "get", "resolve"]

_REGISTRY: dict[str, "Primitive"] = {}


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
    """Everything about one differentiable operation (see the module docstring).

    The functions, in JAX's vocabulary (``jax.custom_vjp``'s ``fun``/``fwd``/``bwd``,
    ``jax.custom_jvp``'s ``jvp``):

    * ``fn``: **the public function** (``fnnet.relu is get("relu").fn``): jitted, validating, every
      transformation on it, reverse mode running ``bwd``. Calling the Primitive calls ``fn``.
    * ``forward(*arrays, **params) -> out``: the plain forward computation, without validation or
      rules (JAX's ``fun``);
    * ``fwd(*arrays, **params) -> (out, residuals)`` and ``bwd(residuals, g, **params) -> cotangents``
      (one per array argument, in its shape): the hand VJP, as ``jax.custom_vjp`` splits it;
    * ``jvp(primals, tangents, out, **params) -> tangent_out``: the hand JVP;
    * ``reference``: plain ``jax.numpy`` with ``fn``'s signature, for autodiff as an oracle;
    * ``df(x, y, **params)`` (elementwise ops): f′ from the input and/or output, as ``saves`` says.
    """

    name: str
    fn: Callable[..., Any]
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
    traced: tuple[str, ...] = ()  # parameters passed traced (masks, labels, keys, jax.nn's traced hyperparameters)

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
        rng = sample_rng(key)
        return tuple(uniform_avoiding(rng, shape, dtype, lo, hi, kinks) for _ in self.arg_names)


def sample_rng(key) -> np.random.Generator:
    """NumPy's generator, seeded from a JAX PRNG key (typed, ``jax.random.key``, or raw uint32).

    The samplers behind :meth:`Primitive.sample_inputs` draw with it: a ``jax.random`` draw compiles
    an XLA program per shape and dtype (10–30 ms each on a CPU), which made drawing the registry's
    inputs cost as much as checking them.
    """
    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        key = jax.random.key_data(key)
    return np.random.default_rng(np.asarray(key, np.uint64).ravel())  # (a raw key's bits as they are)


def sampled(x, dtype) -> jax.Array:
    """Points drawn in float64 by NumPy, rounded to float32 and then cast to ``dtype`` (so float32 and
    float64 inputs are the same points), on the default device without compiling a program."""
    return jax.device_put(np.asarray(np.asarray(x, np.float32), dtype))


def uniform_avoiding(rng, shape, dtype, lo, hi, kinks, margin=None):
    """Uniform points on [lo, hi] (drawn by ``rng``, a :func:`sample_rng`) moved at least ``margin``
    (default 5 % of the width) away from every kink: test inputs where finite differences do not
    straddle a kink."""
    margin = 0.05 * (hi - lo) if margin is None else margin
    x = np.asarray(np.asarray(rng.uniform(lo, hi, shape), np.float32), np.float64)
    for k in kinks:
        near = np.abs(x - k) < margin
        x = np.where(near, k + np.where(x >= k, margin, -margin) * 1.5, x)
    return jax.device_put(np.asarray(x, dtype))


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


def resolve(op) -> Primitive:
    """The primitive behind ``op``: a :class:`Primitive`, a public fnnet function (its ``.primitive``)
    or a name, registered (``"relu"``) or a public alias (``"swish"``).

    The one resolver of ops for everything that takes an op by name or function (graph, calculus,
    layers, train). Raises ``KeyError`` for an unknown name and ``TypeError`` for anything else.
    """
    if isinstance(op, Primitive):
        return op
    if isinstance(op, str):
        if op in _REGISTRY:
            return _REGISTRY[op]
        import fnnet  # aliases (swish, hard_swish) are public names, not registry entries

        prim = getattr(getattr(fnnet, op, None), "primitive", None)
        if isinstance(prim, Primitive):
            return prim
        return get(op)  # raises the KeyError that lists the registered names
    prim = getattr(op, "primitive", None)
    if isinstance(prim, Primitive):
        return prim
    raise TypeError(
        f"op must be an fnnet Primitive, a public fnnet function or a registered name; got {op!r}"
    )


# ---------------------------------------------------------------------------------------------
# The mechanism
# ---------------------------------------------------------------------------------------------

REQUIRED = inspect.Parameter.empty  # a parameter without a default (torch's threshold(input, θ, value))


def _signature(arg_names, params):
    kinds = inspect.Parameter.POSITIONAL_OR_KEYWORD
    out = [inspect.Parameter(a, kinds) for a in arg_names]
    out += [inspect.Parameter(k, kinds, default=v) for k, v in params.items()]
    return inspect.Signature(out)


def _weak(v):
    return bool(getattr(getattr(v, "aval", None), "weak_type", False))


def _is_float(v):
    return jnp.issubdtype(getattr(v, "dtype", np.dtype(np.int32)), jnp.inexact)


def _flat():
    """While a rule is traced: jax.numpy's functions and array operators bind their lax operations
    directly instead of each leaving a nested ``jit`` (a Python ``a * b`` on tracers is a jitted
    ``jnp.multiply``) that linearization, transposition and lowering then walk again. The operations
    and the values are the same."""
    return jax.disable_jit()


def _build_core(name, forward, fwd, bwd, jvp, diagonal, static_items):
    """The ``jax.custom_jvp`` for one static configuration.

    Its tangent map is the transpose of the hand VJP, so JAX's reverse mode (which transposes the
    tangent map) runs exactly the hand VJP's operations, while ``jax.jvp`` gets the Jacobian-vector
    product from the same rule. For an elementwise op (``diagonal``) the tangent map t·f′ and the hand
    VJP g·f′ are the same product, so the hand JVP is used directly (it is its own transpose).

    The traced parameters (masks, labels, keys, traced hyperparameters) travel beside the
    differentiable arrays; a floating one that is differentiated gets its tangent from autodiff of
    ``forward`` (no hand rule covers it), the others have none.
    """
    static = dict(static_items)

    def core(diff, aux):
        with _flat():
            return forward(*diff, **aux, **static)

    core.__name__ = core.__qualname__ = name  # what jaxprs print: custom_jvp_call[name=<op>]
    core = jax.custom_jvp(core)

    def rule(primals, tangents):
        with _flat():
            return _rule(primals, tangents)

    def _rule(primals, tangents):
        diff, aux = primals
        tdiff, taux = tangents
        kw = {**aux, **static}
        live = [not isinstance(t, SymbolicZero) for t in tdiff]
        if diagonal:
            out = forward(*diff, **kw)
            t_out = jvp(diff, tdiff, out, **kw) if live[0] else jnp.zeros_like(out)
        else:
            out, res = fwd(*diff, **kw)
            if any(live):
                tin = tuple(
                    t if ok else jnp.zeros(jnp.shape(p), p.dtype) for t, ok, p in zip(tdiff, live, diff)
                )
                g_struct = jax.tree.map(lambda o: jax.ShapeDtypeStruct(jnp.shape(o), o.dtype), out)
                (t_out,) = jax.linear_transpose(lambda g: tuple(bwd(res, g, **kw)), g_struct)(tin)
            else:
                t_out = jax.tree.map(jnp.zeros_like, out)
        extra = [
            (k, t) for k, t in taux.items()
            if t is not None and not isinstance(t, SymbolicZero) and _is_float(aux[k])
        ]
        if extra:
            keys = [k for k, _ in extra]

            def of_extra(*vals):
                return forward(*diff, **{**aux, **dict(zip(keys, vals))}, **static)

            _, t_extra = jax.jvp(of_extra, tuple(aux[k] for k in keys), tuple(t for _, t in extra))
            t_out = jax.tree.map(jnp.add, t_out, t_extra)
        return out, t_out

    core.defjvp(rule, symbolic_zeros=True)
    return core


try:  # JAX's trace stack (internal), read by _staging
    from jax._src.core import EvalTrace as _EvalTrace
    from jax._src.core import trace_ctx as _trace_ctx
    from jax._src.interpreters.partial_eval import DynamicJaxprTrace as _JaxprTrace
except ImportError:  # pragma: no cover - a JAX without them: every call takes the jitted path
    _trace_ctx = None


def _staging() -> bool:
    """Whether the caller is being traced into a program (``jax.jit``, ``jax.make_jaxpr``, a ``scan``
    body under jit ...): some trace below the current one builds a jaxpr. Read from JAX's trace stack
    (internal; where it is not available the answer is False, which costs only speed). 0.2 µs on an
    eager call, where the current trace is the evaluation trace."""
    if _trace_ctx is None:
        return False
    t = _trace_ctx.trace
    if type(t) is _EvalTrace:
        return False
    while t is not None:
        if isinstance(t, _JaxprTrace):
            return True
        t = getattr(t, "parent_trace", None)
    return False


def _publish(name, *, forward, fwd, bwd, jvp, diagonal, arg_names, params, static_names,
             validate, doc, convert, traced_names):
    """The public function: validating and promoting its inputs while it is traced (so at no cost on
    a compiled call), then calling the ``custom_jvp`` core of its static configuration. Called
    eagerly it runs through ``jax.jit`` (static hyperparameters as static arguments); called while a
    program is traced (:func:`_staging`) it traces inline into that program."""
    sig = _signature(arg_names, params)
    where = f"fnnet.{name}"
    cores: dict = {}

    def traced(*args, **kwargs):
        with _flat():
            return _traced(*args, **kwargs)

    def _traced(*args, **kwargs):
        bound = sig.bind(*args, **kwargs)
        bound.apply_defaults()
        values = bound.arguments
        for k, v in values.items():
            if v is REQUIRED:
                raise TypeError(f"{where}{sig}: missing a required argument: {k!r}")
        diff = [promote_float(values[a], a, where) for a in arg_names]
        if len(diff) > 1 and any(_weak(d) for d in diff):
            # A Python scalar beside an array takes the array's dtype (jax.numpy's weak typing).
            common = jnp.result_type(*diff)
            diff = [d.astype(common) if _weak(d) else d for d in diff]
        static = tuple(
            (k, static_value(values[k], k, where, params[k])) for k in static_names
        )
        aux = {k: values[k] for k in traced_names}
        if convert is not None:
            diff, aux = convert(diff, aux, dict(static))
        if validate is not None:
            validate(*diff, **aux, **dict(static))
        core = cores.get(static)
        if core is None:
            core = cores[static] = _build_core(name, forward, fwd, bwd, jvp, diagonal, static)
        return core(tuple(diff), aux)

    traced.__name__ = traced.__qualname__ = name
    traced.__signature__ = sig
    jitted = jax.jit(traced, static_argnames=tuple(static_names))

    def explain(args, kwargs):
        """jax.jit refused the call before fnnet's checks ran: say which argument, in fnnet's words."""
        try:
            bound = sig.bind(*args, **kwargs)
        except TypeError as e:
            return TypeError(f"{where}{sig}: {e}")
        for k, v in bound.arguments.items():
            if k in static_names:
                if isinstance(v, jax.core.Tracer):
                    return traced_static(v, k, where)
                try:
                    hash(v)
                except TypeError:
                    return TypeError(
                        f"{where}: hyperparameter '{k}' must be hashable (a number, bool, str, None or "
                        f"tuple); got {type(v).__name__} {v!r}"
                    )
            else:
                for leaf in jax.tree.leaves(v):
                    if isinstance(leaf, (str, bytes)) or not (
                        hasattr(leaf, "dtype") or isinstance(leaf, (int, float, complex, bool))
                    ):
                        what = "argument" if k in arg_names else "hyperparameter"
                        return TypeError(
                            f"{where}: {what} '{k}' must be an array or a real number; got "
                            f"{type(leaf).__name__} {leaf!r}"
                        )
        return None

    def public(*args, **kwargs):
        # Inside a program being traced the function is traced inline: the same operations, without a
        # nested jit around them, which changed XLA:CPU's order of the fused loops (glu's jit fwd+bwd
        # 1.05-1.08x jax.nn's with it, 1.00 without) and is walked again by every later stage.
        call = traced if _staging() else jitted
        try:
            return call(*args, **kwargs)
        except (TypeError, ValueError) as err:
            if str(err).startswith("fnnet."):
                raise
            better = explain(args, kwargs)
            if better is None:
                raise
            raise better from None

    public.__name__ = public.__qualname__ = name
    public.__signature__ = sig
    public.__doc__ = doc
    public.__module__ = "fnnet"
    public.jitted = jitted
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
    traced: Sequence[str] = (),
    elementwise: bool = False,
    kinks: Sequence[Kink] = (),
    domain: tuple[float, float] = (-4.0, 4.0),
    support: tuple[float, float] = (-float("inf"), float("inf")),
    singular: Sequence[float] = (),
    sample: Callable | None = None,
    variants: Sequence[Mapping[str, Any]] = ({},),
    validate: Callable | None = None,
    convert: Callable | None = None,
    derivation: str = "",
    doc: str | None = None,
    register: bool = True,
    df: Callable | None = None,
    saves: str = "",
) -> Primitive:
    """Declare a primitive from its two hand-written rules and publish its public function.

    Arguments:
      forward: ``forward(*arrays, **params) -> out`` (any pytree of arrays).
      fwd: ``fwd(*arrays, **params) -> (out, residuals)``; defaults to saving the inputs.
      bwd: ``bwd(residuals, g, **params) -> tuple`` of cotangents, one per differentiable argument,
        each in the shape and dtype of that argument (the shape convention). Linear in ``g``.
      jvp: ``jvp(primals, tangents, out, **params) -> tangent_out``; linear in ``tangents``. Checked
        equal to the transpose of ``bwd`` by the tests (the public function uses the transpose).
      reference: plain jnp with the public signature, differentiated by ``jax.vjp`` as an oracle.
      arg_names: the differentiable array arguments, in order (each gets a hand cotangent).
      static: the other parameters in signature order with their defaults (``REQUIRED`` for none).
        They are static (fixed at trace time, hashable) unless named in ``traced``.
      traced: parameters passed as traced values: masks, integer labels, PRNG keys, and the
        hyperparameters jax.nn traces (leaky_relu's slope). A floating one that is differentiated gets
        its derivative from autodiff of ``forward``.
      validate: ``validate(*arrays, **params)`` raising a clear error, run while tracing.
      convert: ``convert(arrays, traced, static) -> (arrays, traced)``, run while tracing before
        ``validate``: dtype promotion of labels, masks as arrays.
      kinks: the points where the derivative is undefined and the value the rule takes there.
      domain: where ``sample_inputs`` draws test points. support: the open interval on which the
        function is defined (log1mexp: (0, ∞)). singular: points where the derivative is unbounded.
    """
    params = dict(static or {})
    arg_names = tuple(arg_names)
    traced = tuple(traced)
    unknown = set(traced) - set(params)
    if unknown:
        raise ValueError(f"{name}: traced names {sorted(unknown)} are not parameters")
    static_names = tuple(k for k in params if k not in traced)
    if fwd is None:

        def fwd(*arrays, **kw):
            return forward(*arrays, **kw), arrays

    doc = doc or (forward.__doc__ or "")
    public = _publish(
        name, forward=forward, fwd=fwd, bwd=bwd, jvp=jvp, diagonal=df is not None,
        arg_names=arg_names, params=params, static_names=static_names, traced_names=traced,
        validate=validate, doc=doc, convert=convert,
    )
    prim = Primitive(
        name=name, fn=public, reference=reference, forward=forward, fwd=fwd, bwd=bwd, jvp=jvp,
        arg_names=arg_names, static_defaults=dict(params), elementwise=elementwise, kinks=tuple(kinks),
        domain=tuple(domain), support=tuple(support), singular=tuple(singular), sample=sample,
        variants=tuple(variants), derivation=derivation, df=df, saves=saves, traced=traced,
    )
    public.primitive = prim
    public.reference = reference
    if register:
        old = _REGISTRY.get(name)
        if old is not None and not _same_declaration(old, prim):
            raise ValueError(
                f"a different primitive named {name!r} is already registered "
                f"(declared in {_origin(old)}); choose another name"
            )
        _REGISTRY[name] = prim
    return prim


def _origin(prim):
    code = getattr(prim.forward, "__code__", None)
    return f"{code.co_filename}:{code.co_firstlineno}" if code else repr(prim.forward)


def _same_declaration(a: Primitive, b: Primitive) -> bool:
    """Re-running the cell (or module) that declared a primitive declares it again from the same
    source: allowed, the new declaration replaces the old."""
    def key(p):
        return tuple(
            (getattr(f, "__code__", None) and (f.__code__.co_filename, f.__code__.co_firstlineno,
                                              f.__code__.co_code)) or f
            for f in (p.forward, p.bwd, p.jvp, p.reference)
        ) + (p.arg_names, tuple(p.static_defaults), p.elementwise)
    return key(a) == key(b)


def elementwise(name: str, f: Callable, df: Callable, *, reference: Callable, saves: str = "x",
                arg_name: str = "x", nan_select: bool = True, doc: str | None = None,
                **declaration: Any) -> Primitive:
    """Declare ``y = f(x)`` applied entry by entry from ``f`` and its derivative alone.

    ``df(x, y, **params)`` returns f'(x); it is given ``x`` and/or ``y = f(x)`` as ``saves`` says
    (the other is None). VJP: ``g * f'``. JVP: ``t * f'``. The Jacobian is diagonal. Where the input
    is NaN the derivative is NaN (``f`` itself must map NaN to NaN): where ``df`` does not already give
    NaN at NaN (found by evaluating it once per dtype and hyperparameters), a select enforces it;
    ``nan_select=False`` turns the select off altogether (the registry suite checks the result).

    ``saves`` decides what the backward pass reads: ``"y"`` (the output, which the next layer keeps
    anyway: no extra memory) or ``"x"`` (the input, alive beside the output). ``arg_name`` names the
    input (torch's ``input``); the other keywords (``static``, ``traced``, ``kinks``, ``domain``,
    ``support``, ``singular``, ``variants``, ``sample``, ``validate``, ``derivation``, ``register``)
    are :func:`define`'s.
    """
    if saves not in ("x", "y", "xy"):
        raise ValueError(f"saves must be 'x', 'y' or 'xy'; got {saves!r}")

    maps_nan: dict = {}

    def df_maps_nan(dtype, kw) -> bool:
        """Whether ``df`` already gives NaN at a NaN input (as arithmetic formulas do), for this dtype
        and these hyperparameters: found once by evaluating it on NaN while tracing. Unknown (a traced
        hyperparameter, an unhashable one, an error) counts as no, and keeps the select."""
        if any(isinstance(v, jax.core.Tracer) for v in kw.values()):
            return False
        try:
            key = (jnp.dtype(dtype).name, tuple(sorted(kw.items())))
            hash(key)
        except TypeError:
            return False
        if key not in maps_nan:

            def probe(xn):
                yn = f(xn, **kw) if "y" in saves else None
                return jnp.isnan(df(xn if "x" in saves else None, yn, **kw))

            try:
                # One compiled program: evaluated op by op, every scalar operation of f and df would
                # compile on its own (~20 programs, ~1 s, for gelu) on the op's first trace.
                with jax.ensure_compile_time_eval(), jax.disable_jit(False):  # jit again, in a rule
                    maps_nan[key] = bool(jax.jit(probe)(np.array(np.nan, dtype)))
            except Exception:  # noqa: BLE001  (a df that cannot run on a scalar keeps the select)
                maps_nan[key] = False
        return maps_nan[key]

    def derivative(x, y, **kw):
        d = df(x, y, **kw)
        # The output is NaN exactly where the input is (f maps NaN to NaN): test it when it is saved,
        # so that a rule reading only y does not keep x alive for the select.
        r = y if y is not None else x
        if not nan_select or df_maps_nan(r.dtype, kw):
            return d
        return lax.select(jnp.isnan(r), r, jnp.broadcast_to(d, r.shape).astype(r.dtype))

    def fwd(x, **kw):
        y = f(x, **kw)
        return y, (x if "x" in saves else None, y if "y" in saves else None)

    def bwd(residuals, g, **kw):
        x, y = residuals
        return (g * derivative(x, y, **kw),)

    def jvp(primals, tangents, out, **kw):
        (x,), (t,) = primals, tangents
        return t * derivative(x if "x" in saves else None, out if "y" in saves else None, **kw)

    return define(
        name, forward=f, fwd=fwd, bwd=bwd, jvp=jvp, reference=reference, arg_names=(arg_name,),
        elementwise=True, doc=doc or f.__doc__, df=df, saves=saves, **declaration,
    )
