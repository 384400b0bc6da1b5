"""The compiled programs of a check: traced once, compiled as one executable, reused across calls.

A check of the default mode runs a handful of small programs (the rule's batched VJP at the inputs'
dtype, its JVP, and in float64 f itself, the rule's and the reference's batched VJPs, the
finite-difference sampler). On a small problem nearly all of the time is compilation, so:

* **one program per role and shape.** Every call of a role uses one padded batch shape (8
  cotangents, 8 directions), so the probes, the kink re-examination and every bisection round share
  one compiled sampler.
* **one executable for all of them** (:meth:`Programs.prefetch_together`): each XLA compilation has
  a fixed cost, so the roles are branches of one ``lax.switch`` program. The main thread traces
  (tracing reads JAX's thread-local configuration, so it stays on the caller's thread); the XLA
  compilation, which releases the GIL, goes to a small thread pool where cores are to spare.
* **cached across calls.** The programs are kept in a weak-keyed cache on ``f`` (dropped with f), keyed
  by everything the traced programs depend on: the finite-difference scheme, the reference, argnums,
  the pytree structure, the shape/dtype of each differentiated leaf, the *value* of every leaf held
  fixed (it is a constant in the traced program), and the JAX settings that change tracing (x64,
  dtype promotion, rank promotion, the softmax rule: ``TRACE_SETTINGS``). A second check of the
  same f at the same shapes compiles nothing.
  As with ``jax.jit``, Python state that f reads at trace time is assumed fixed; pass
  ``cache=False`` when it is not (the jit-vs-eager check, ``eager=True``, would also flag it).

Everything runs under ``jax.default_matmul_precision("highest")`` (see :func:`precision_scope`); the
float64 programs are traced inside :func:`float64_scope`.
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import os
import re
import threading
import weakref
from concurrent.futures import Future, ThreadPoolExecutor

import jax
import jax.numpy as jnp
import numpy as np

from .batching import put

_EXECUTOR: ThreadPoolExecutor | None = None
_EXECUTOR_LOCK = threading.Lock()
_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_CACHE_LOCK = threading.Lock()
# Compiling on a pool thread pays where there are cores to spare (the programs of an order-2 check,
# or of cached-out roles, compile beside each other); on a 2-core machine it was measured slower.
PARALLEL = os.environ.get("FNNET_GRADCHECK_PARALLEL", "1" if (os.cpu_count() or 1) >= 4 else "0") != "0"
MAX_PER_FUNCTION = 8  # cached problems per f (different shapes / fixed values); oldest dropped
# Programs are combined only while the packed output (one float64 vector per call, as long as the
# largest role's outputs) stays small: the fixed cost of a compilation matters for small problems,
# and a large one would pay for padding and copying the vector on each of a check's ~15 calls.
TOGETHER_MAX_ENTRIES = 1 << 20  # 8 MB of float64
_COMPILER_OPTIONS: contextvars.ContextVar = contextvars.ContextVar("fnnet_compiler_options", default=None)
# A check compiles each program once and runs it about fifteen times on inputs of a few dozen entries,
# so on a first call the compilation is most of the time, and LLVM's optimization passes and XLA:CPU's
# fusion emitters (an MLIR pipeline per fusion) are most of the compilation. Off, XLA:CPU generates
# the same operations (it does no fast-math reassociation) as less optimized code; the results can
# differ in the last bits where code is generated differently, far below every tolerance of a check.
# The median first call on the corpus of real rules went from 0.65× to 0.43× check_grads'
# (docs/reference/gradcheck.md, "Compiled for one run"). XLA:CPU only: another backend compiles with
# its defaults. ``compiler_options({})`` compiles with XLA's defaults.
RUN_ONCE_OPTIONS = {
    "xla_backend_optimization_level": 0,
    "xla_llvm_disable_expensive_passes": True,
    "xla_cpu_use_fusion_emitters": False,
}
_UNKNOWN_OPTIONS: set = set()  # options this XLA refused ("No such compile option"): dropped after


def run_once_options() -> dict | None:
    """The checker's default compile options: ``RUN_ONCE_OPTIONS`` less those this XLA refused, on
    XLA:CPU; None (XLA's defaults) on another backend."""
    if jax.default_backend() != "cpu":
        return None
    return {k: v for k, v in RUN_ONCE_OPTIONS.items() if k not in _UNKNOWN_OPTIONS} or None


def compile_with(lowered, options: dict | None):
    """``lowered.compile(options)``, dropping (and remembering) an option this XLA does not know: XLA
    releases drop such switches (jaxlib 0.11 has no ``xla_cpu_use_fusion_emitters``), and an unknown
    one is an error, raised before any compilation (a few milliseconds)."""
    options = dict(options) if options else {}
    while True:
        try:
            return lowered.compile(options or None)
        except Exception as err:  # noqa: BLE001 - XLA's runtime error names the option
            m = re.search(r"No such compile option: '([^']+)'", str(err))
            if m is None or m.group(1) not in options:
                raise
            _UNKNOWN_OPTIONS.add(m.group(1))
            del options[m.group(1)]


@contextlib.contextmanager
def compiler_options(options: dict | None):
    """XLA compile options for the programs first compiled in the body, on this thread (a program
    already compiled and cached is reused as it is): ``{}`` for XLA's defaults, None for the checker's
    own (``RUN_ONCE_OPTIONS`` on XLA:CPU). Options are per compilation, so a process's other programs
    are unaffected."""
    token = _COMPILER_OPTIONS.set(options)
    try:
        yield
    finally:
        _COMPILER_OPTIONS.reset(token)


def precision_scope():
    """``jax.default_matmul_precision("highest")`` for the body only (thread-local; restored after).

    fnnet's matrix products follow JAX's matmul precision setting, which on GPUs/TPUs may mean TF32
    or bfloat16 passes for float32 products: rounding of ~1e-3 relative, far above float32's eps,
    that float64 finite differences would then report as a wrong gradient. Checks run f, its rule and
    the reference at full precision; the user's setting is restored afterwards.
    """
    scope = getattr(jax, "default_matmul_precision", None)
    if scope is None:  # pragma: no cover - very old JAX
        return contextlib.nullcontext()
    return scope("highest")


def float64_scope():
    """A context manager that turns on float64 for its body only and restores the setting after.

    ``jax.enable_x64(True)`` (jax >= 0.9) or ``jax.experimental.enable_x64()`` (older releases).
    fnnet never flips x64 globally.
    """
    enable = getattr(jax, "enable_x64", None)
    if enable is not None:
        try:
            scope = enable(True)
            if hasattr(scope, "__enter__"):
                return scope
        except TypeError:
            pass
    try:
        from jax.experimental import enable_x64  # type: ignore[attr-defined]

        return enable_x64()
    except ImportError:  # pragma: no cover - last resort: flip and restore by hand
        return _flip_x64()


@contextlib.contextmanager
def _flip_x64():  # pragma: no cover
    old = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", True)
    try:
        yield
    finally:
        jax.config.update("jax_enable_x64", old)


def _executor() -> ThreadPoolExecutor:
    global _EXECUTOR
    with _EXECUTOR_LOCK:
        if _EXECUTOR is None:
            workers = int(os.environ.get("FNNET_GRADCHECK_WORKERS", max(1, min(8, (os.cpu_count() or 2) - 1))))
            _EXECUTOR = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="fnnet-gradcheck-compile")
        return _EXECUTOR


def _signature(args) -> tuple:
    leaves, treedef = jax.tree_util.tree_flatten(args)
    return (treedef, tuple((tuple(a.shape), str(a.dtype), _weak(a), _named(a)) for a in leaves))


def _named(a):
    """A NamedSharding (multi-device full mode) is part of the program; single-device placement is not."""
    s = getattr(a, "sharding", None)
    return s if isinstance(s, jax.sharding.NamedSharding) else None


def _weak(a) -> bool:
    """Weak type (a Python scalar leaf as ``jnp.asarray(2.0)``): it changes promotion, so it is traced."""
    return bool(getattr(a, "weak_type", False))


def _avals(args):
    return jax.tree_util.tree_map(
        lambda a: jax.ShapeDtypeStruct(tuple(a.shape), a.dtype, weak_type=_weak(a), sharding=_named(a)), args)


class Programs:
    """Compiled executables of one problem, by (role, argument shapes); compilation in a thread pool."""

    def __init__(self):
        self._jitted: dict = {}
        self._compiled: dict = {}
        self._lock = threading.Lock()

    def jitted(self, role: str, build):
        """The ``jax.jit`` object of ``role`` (built once by ``build()``)."""
        with self._lock:
            fn = self._jitted.get(role)
            if fn is None:
                fn = self._jitted[role] = build()
            return fn

    def prefetch(self, role: str, build, args) -> Future:
        """Trace and lower ``role`` for ``args`` (arrays or ShapeDtypeStructs) here; compile in the pool.

        Call it inside the scopes (x64, precision) the program must be traced under. An error while
        tracing is stored in the future and raised where the program is used, as a direct call would.
        """
        fut, new = self._future((role, _signature(args)))
        if new:
            self._alone(fut, role, build, args)
        return fut

    def _alone(self, fut: Future, role: str, build, args) -> None:
        try:
            lowered = self.jitted(role, build).lower(*_avals(args))
        except Exception as err:  # noqa: BLE001 - re-raised at the point of use
            # Kept without its traceback: the traceback's frames hold f, and the cache holds f weakly.
            fut.set_exception(_detached(err))
            return
        self._compile([(fut, None)], lowered)

    def prefetch_together(self, items, probe=()) -> None:
        """Trace each ``(role, build, args, wide)`` of ``items``; compile those that trace as one program.

        Every XLA compilation has a fixed cost (~30 ms on a 2-core x86 CPU, measured on a
        one-operation program, against 10-200 ms for the checker's programs themselves), so the
        roles are compiled as one executable whose first argument selects the role (``lax.switch``,
        one branch per role). Calling a role runs that executable on its branch, with placeholder
        arrays for the other roles' arguments. Every branch returns one float64 vector: its role's
        outputs flattened, cast to float64 (exact for every real float dtype) and padded to the longest
        role's length; the call unpacks it into numpy arrays of the role's own shapes and dtypes.
        (Branches returning every role's outputs, zeros for the others', compiled one broadcast
        kernel per output and branch: most of the kernels of a small check.) Problems whose largest
        role returns more than ``TOGETHER_MAX_ENTRIES`` numbers get one program per role: there the
        compilations' fixed cost is small against the run, and the padded vector would not be.

        Each role is traced once, here, inside :func:`float64_scope` if ``wide`` and in the caller's
        scopes otherwise; its branch reuses that trace (:meth:`_together`), so a program traced
        without x64 computes exactly what it would alone although the combined program is lowered
        with x64 on. A role whose trace or lowering fails keeps its error (raised where it is used, as
        :meth:`prefetch`); a role with weakly typed or sharded arguments or outputs that are not real
        floats, or a set that ``lax.switch`` refuses (an ordered effect), is compiled on its own. The
        roles named in ``probe``, which often fail only when lowered, are lowered alone first (~10 ms)
        rather than spoil the combined lowering.
        """
        pending = []
        direct = {}  # fut -> the role's jax.jit, where calling it retraces nothing (see _together)
        for role, build, args, wide in items:
            fut, new = self._future((role, _signature(args)))
            if not new:
                continue
            with float64_scope() if wide else contextlib.nullcontext():
                specs = _avals(args)
                if any(s.weak_type or s.sharding is not None for s in jax.tree_util.tree_leaves(specs)):
                    self._alone(fut, role, build, args)
                    continue
                try:
                    traced = self.jitted(role, build).trace(*specs)
                except Exception as err:  # noqa: BLE001 - re-raised at the point of use
                    fut.set_exception(_detached(err))
                    continue
                if jax.config.jax_enable_x64:  # traced as the combined program is: its trace is reused
                    direct[fut] = self.jitted(role, build)
            if role in probe and self._lower(fut, traced, wide) is None:
                continue
            if not all(_packable(o) for o in jax.tree_util.tree_leaves(traced.out_info)):
                self._compile_alone(fut, traced, wide)
                continue
            pending.append((fut, specs, traced, wide))
        if len(pending) > 1 and max(_Branch.length(p[2].out_info) for p in pending) > TOGETHER_MAX_ENTRIES:
            for fut, _, traced, wide in pending:  # a large problem: one program each
                self._compile_alone(fut, traced, wide)
            return
        while len(pending) > 1:
            try:
                lowered = self._together(pending, direct)
                break
            except Exception:  # noqa: BLE001 - a role that fails to lower, or lax.switch refused them
                # Some errors only show when lowering (JAX raises "can't apply forward-mode autodiff
                # to a custom_vjp function" there): lower each role alone, keep the ones that lower.
                alone = [self._lower(fut, traced, wide) for fut, _, traced, wide in pending]
                if all(lw is not None for lw in alone):  # they only fail together: one program each
                    for (fut, *_), lw in zip(pending, alone):
                        self._compile([(fut, None)], lw)
                    return
                pending = [p for p, lw in zip(pending, alone) if lw is not None]
        if len(pending) == 1:
            self._compile_alone(pending[0][0], pending[0][2], pending[0][3])
        if len(pending) <= 1:
            return
        with float64_scope():
            placeholders = [jax.tree_util.tree_map(lambda s: put(np.zeros(s.shape, s.dtype)), p[1]) for p in pending]
        self._compile([(fut, (k, placeholders, traced.out_info)) for k, (fut, _, traced, _) in enumerate(pending)],
                      lowered, fallback=[(p[2], p[3]) for p in pending])

    @staticmethod
    def _together(pending, direct):
        """The lowered program running role k of ``pending`` on branch k of a ``lax.switch``, each
        branch returning its role's outputs packed in one float64 vector (see :class:`_Branch`).

        A role traced with x64 on (every float64 role, and the others when the caller has x64 on) is
        called through its own ``jax.jit``, whose cached trace makes it one equation of the branch. A
        role traced with x64 off would be traced again here, with x64 on, and could compute something
        else (a ``jnp.zeros`` would be float64): its branch evaluates the traced jaxpr instead, whose
        dtypes are fixed (binding its equations again is cheap next to tracing the role: no jnp
        function runs again).
        (``jax.core.eval_jaxpr`` rather than ``jax.extend``'s ``jaxpr_as_fun``: importing jax.extend
        took ~80 ms of a first call.)"""
        traced = [p[2] for p in pending]
        calls = [direct.get(p[0]) for p in pending]
        length = max(_Branch.length(t.out_info) for t in traced)

        def branch(k):
            def run(per_role):
                if calls[k] is not None:
                    flat = jax.tree_util.tree_leaves(calls[k](*per_role[k]))
                else:
                    closed = traced[k].jaxpr
                    flat = jax.core.eval_jaxpr(closed.jaxpr, closed.consts, *_jaxpr_args(traced[k], per_role[k]))
                parts = [jnp.ravel(v).astype(jnp.float64) for v in flat]
                pad = length - sum(int(np.prod(np.shape(v))) for v in flat)
                if pad or not parts:
                    parts.append(jnp.zeros(pad, jnp.float64))
                return jnp.concatenate(parts)
            return run

        def together(index, *per_role):
            return jax.lax.switch(index, [branch(k) for k in range(len(traced))], per_role)

        with float64_scope():
            return jax.jit(together).lower(jax.ShapeDtypeStruct((), np.int32), *[p[1] for p in pending])

    def _compile_alone(self, fut: Future, traced, wide: bool) -> None:
        """One traced role as its own program (an error while lowering is stored in ``fut``)."""
        lowered = self._lower(fut, traced, wide)
        if lowered is not None:
            self._compile([(fut, None)], lowered)

    @staticmethod
    def _lower(fut: Future, traced, wide: bool):
        """``traced.lower()`` in its scope, or None with the error stored in ``fut``."""
        try:
            with float64_scope() if wide else contextlib.nullcontext():
                return traced.lower()
        except Exception as err:  # noqa: BLE001 - re-raised at the point of use
            fut.set_exception(_detached(err))
            return None

    def _future(self, key) -> tuple[Future, bool]:
        with self._lock:
            fut = self._compiled.get(key)
            if fut is not None:
                return fut, False
            fut = self._compiled[key] = Future()
            return fut, True

    def _compile(self, targets, lowered, fallback=None) -> None:
        """Compile ``lowered`` (here or in the pool) and resolve each ``(future, selector)`` of
        ``targets``: selector None is the executable itself, ``(k, placeholders, out_info)`` branch
        k of a program built by :meth:`prefetch_together` (``fallback``: its roles' ``(traced,
        wide)``, compiled one by one if the combined program fails to compile)."""
        options = _COMPILER_OPTIONS.get()  # read on the calling thread; compiled maybe on another
        if options is None:
            options = run_once_options()

        def compile_():
            try:
                exe = compile_with(lowered, options)
            except Exception as err:  # noqa: BLE001
                if fallback is None:
                    for fut, _ in targets:
                        fut.set_exception(_detached(err))
                    return
                for (fut, _), (traced, wide) in zip(targets, fallback):
                    self._compile_alone(fut, traced, wide)
                return
            for fut, selector in targets:
                fut.set_result(exe if selector is None else _Branch(exe, *selector))

        if PARALLEL:
            _executor().submit(compile_)
        else:
            compile_()

    def release(self) -> None:
        """Drop the jit objects (they hold f); the compiled executables stay for the next call."""
        with self._lock:
            self._jitted.clear()

    def call(self, role: str, build, *args):
        """Run ``role`` on ``args``, compiling it first if no prefetch did.

        A failed trace or compile is raised as a fresh copy: raising the stored error itself would
        attach this call's frames (which hold f) to it, and the cache, which holds f weakly, holds it.
        """
        fut = self.prefetch(role, build, args)
        err = fut.exception()
        if err is not None:
            raise _detached(err)
        return fut.result()(*args)


def _jaxpr_args(traced, args) -> list:
    """The arguments of ``traced.jaxpr`` for ``args``: their leaves, after the hoisted constants when
    JAX passes closed-over constants as leading arguments (``jax_use_simplified_jaxpr_constants``)."""
    leaves = jax.tree_util.tree_leaves(args)
    n = len(traced.jaxpr.jaxpr.invars)
    if n == len(leaves):
        return leaves
    consts = list(getattr(traced, "_consts", None) or [])
    if n == len(consts) + len(leaves):
        return consts + leaves
    raise ValueError(f"traced program takes {n} arguments, given {len(leaves)} (+{len(consts)} constants)")


def _packable(aval) -> bool:
    """An output that a float64 vector carries exactly: a real float of at most 64 bits."""
    dtype = np.dtype(aval.dtype)
    return jnp.issubdtype(dtype, jnp.floating) and dtype.itemsize <= 8


class _Branch:
    """Role ``k`` of a program compiled by :meth:`Programs.prefetch_together`: called with the role's
    own arguments, it runs the shared executable on branch k and unpacks the float64 vector it
    returns into the role's outputs, numpy arrays of the role's shapes and dtypes (every caller
    reads them on the host)."""

    def __init__(self, exe, k: int, placeholders: list, out_info):
        self._exe, self._k, self._placeholders = exe, np.int32(k), placeholders
        self._leaves, self._tree = jax.tree_util.tree_flatten(out_info)

    @staticmethod
    def length(out_info) -> int:
        return sum(int(np.prod(o.shape)) for o in jax.tree_util.tree_leaves(out_info))

    def __call__(self, *args):
        per_role = [args if r == self._k else p for r, p in enumerate(self._placeholders)]
        packed = np.asarray(self._exe(self._k, *per_role))
        out, start = [], 0
        for o in self._leaves:
            n = int(np.prod(o.shape))
            out.append(packed[start:start + n].astype(o.dtype).reshape(o.shape))
            start += n
        return jax.tree_util.tree_unflatten(self._tree, out)


def _detached(err: BaseException) -> BaseException:
    """The same error (type and message) with no traceback, cause or context."""
    try:
        clean = type(err)(*err.args)
    except Exception:  # noqa: BLE001 - an exception type with another constructor
        clean = RuntimeError(f"{type(err).__name__}: {err}")
    clean.__traceback__ = None
    clean.__cause__ = clean.__context__ = None
    clean.__suppress_context__ = True
    return clean


def _fingerprint(leaf):
    """A hashable stand-in for a leaf held fixed (its value is baked into the traced programs)."""
    if isinstance(leaf, (jax.Array, np.ndarray, np.generic)):
        a = np.asarray(leaf)
        return ("array", a.shape, str(a.dtype), hashlib.blake2b(np.ascontiguousarray(a).tobytes(), digest_size=16).digest())
    if leaf is None or isinstance(leaf, (bool, int, float, complex, str)):
        return (type(leaf).__name__, leaf)
    hash(leaf)  # TypeError for unhashable objects: not cached
    return ("object", leaf)


# JAX settings that change what a function traces to (jax.nn.softmax's rule, and fnnet.softmax's,
# follow jax_softmax_custom_jvp): part of the cache key, read where the check runs (a context manager
# such as ``with jax.softmax_custom_jvp(True):`` included).
TRACE_SETTINGS = (
    "jax_enable_x64", "jax_numpy_dtype_promotion", "jax_numpy_rank_promotion", "jax_softmax_custom_jvp",
)


def cache_key(args, argnums, diff_positions, fd: str, reference) -> tuple | None:
    """The key of everything the traced programs depend on (see module doc); None if not cacheable."""
    try:
        parts = []
        for a, arg in enumerate(args):
            flat, treedef = jax.tree_util.tree_flatten(arg, is_leaf=lambda v: v is None)
            leaves = []
            for k, leaf in enumerate(flat):
                if (a, k) in diff_positions:
                    dtype = getattr(leaf, "dtype", None) or type(leaf).__name__  # Python float: weak
                    leaves.append(("x", tuple(np.shape(leaf)), str(dtype)))
                else:
                    leaves.append(_fingerprint(leaf))
            parts.append((treedef, tuple(leaves)))
        config = tuple(str(getattr(jax.config, name, None)) for name in TRACE_SETTINGS)
        key = (fd, tuple(argnums), tuple(parts), config, reference)
        hash(key)
        return key
    except TypeError:
        return None


def cached_programs(f, key) -> tuple[Programs, bool]:
    """(programs, hit): the cached programs of ``(f, key)``, or fresh ones stored for next time."""
    if key is None:
        return Programs(), False
    with _CACHE_LOCK:
        try:
            per_f = _CACHE.get(f)
        except TypeError:  # f not weak-referenceable: no cache
            return Programs(), False
        if per_f is None:
            per_f = {}
            try:
                _CACHE[f] = per_f
            except TypeError:
                return Programs(), False
        hit = per_f.get(key)
        if hit is not None:
            return hit, True
        while len(per_f) >= MAX_PER_FUNCTION:
            per_f.pop(next(iter(per_f)))
        programs = per_f[key] = Programs()
        return programs, False


def clear_cache() -> None:
    """Drop every cached program (for tests and benchmarks of a cold start)."""
    with _CACHE_LOCK:
        _CACHE.clear()
