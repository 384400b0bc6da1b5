"""What every comparison needs: the rule's VJP, the reference's, cotangents, steps, samplers.

Cotangents. When f's float outputs have ``M <= basis_limit`` entries in total, the cotangents are the
``M`` basis vectors, so comparing VJPs entrywise compares the *whole Jacobian*, entry by entry. Above
that, ``cotangents`` random-sign (Rademacher) vectors are used: a wrong Jacobian entry ``J_mi``
shows up in entry ``i`` of the VJP with weight ``|g_m| = 1``, so a single wrong Jacobian entry is
always seen and several wrong entries of one column cancel in all ``k`` of them with probability
``<= 2^-k`` (see :mod:`fnnet.check.tolerance`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import jax
import jax.numpy as jnp
import numpy as np

from .differences import float64_scope, make_entry_sampler, make_sampler, step_sizes
from .problem import Problem
from .programs import Programs
from .tolerance import eps_of


@dataclass
class Cotangents:
    """A list of cotangents (each a list of numpy arrays, one per float output leaf) and labels."""

    values: list
    labels: list
    basis: bool


@dataclass
class Context:
    problem: Problem
    fd: str
    rng: np.random.Generator
    vjp_fn: object = None
    x64: list = field(default_factory=list)
    steps: list = field(default_factory=list)
    eps: list = field(default_factory=list)
    notes: list = field(default_factory=list)
    notes_given: bool = False
    programs: Programs = field(default_factory=Programs)
    mesh: object = None  # a 1-D jax.sharding.Mesh (axis "fd") for full mode, or None
    _memo64: tuple | None = None
    _rules32: tuple | None = None
    fd_eps: float = float(np.finfo(np.float64).eps)  # rounding unit of the finite differences' samples
    degraded: str = ""  # why the float64 finite differences are not float64-accurate (empty: they are)
    _fused_failed: bool = False

    # ---- rule and reference -------------------------------------------------------------------
    # Each VJP is one jit-compiled function of (x, g), vmapped over a fixed batch of VJP_BATCH
    # cotangents (padded), so one compilation serves every cotangent of every comparison: far cheaper
    # than eager evaluation, which compiles every primitive separately.
    def rules(self, gs: list, raw: bool = False) -> list:
        """f's VJP (its custom rule, if any) at the inputs' dtype for each cotangent in ``gs``.

        Float64 numpy arrays; ``raw=True`` keeps the arrays as the VJP produced them (shape/dtype check).
        """
        cast = [o.dtype for o in self.problem.out]
        call = self._caller("rule", lambda: _batched_vjp(self.problem.F))
        out = _apply_batched(call, self.problem.F, list(self.problem.x), gs, cast)
        return out if raw else [[np.asarray(vi, np.float64) for vi in v] for v in out]

    def _caller(self, role, build):
        return lambda *args: self.programs.call(role, build, *args)

    def rule(self, g, raw: bool = False) -> list:
        return self.rules([g], raw)[0]

    def rules_and_noise(self, gs: list) -> tuple[list, list]:
        """The rule's VJPs and the observed rounding error of each entry.

        The same rule is also evaluated with every float input and the cotangent upcast to float64;
        a wrong formula is wrong in both precisions, so ``|VJP_lowp - VJP_f64|`` is the rule's own
        rounding error, bugs excluded. It matters where an entry is a cancelled sum
        (``sum_k g_k tanh(x_k)`` near 0): its rounding is set by the size of the terms, which
        neither the entry nor its leaf shows. Zero (with a note) when f cannot run in float64.
        """
        V = self.rules(gs)
        try:
            V64 = self.rules64(gs)
        except Exception as err:  # noqa: BLE001 - f not dtype-generic: no observed rounding
            if not self.notes_given:
                self.notes.append(f"the rule could not be evaluated in float64 ({type(err).__name__}); "
                                  "tolerances use the dtype bound only")
                self.notes_given = True
            return V, [[np.zeros(np.shape(v)) for v in vs] for vs in V]
        noise = [[np.nan_to_num(np.abs(a - b), nan=0.0, posinf=0.0) for a, b in zip(v, w)] for v, w in zip(V, V64)]
        low = self.float32_noise(gs, V)
        if low is not None:
            noise = [[n + m for n, m in zip(ns, ms)] for ns, ms in zip(noise, low)]
        return V, noise

    def rules32(self, gs: list) -> list | None:
        """Rounding samples of the rule for float64 leaves: ``[(rule32, rule64)]`` at three points.

        Point 0: x rounded to float32, against the rule at x itself (so the effect of rounding x, the
        rule's condition, is included). Points 1, 2: ``x·(1 ± 2⁻¹²)`` rounded to float32, with both
        precisions evaluated at that same float32 number. The three points round independently: at a
        single point the float32 result can land on the truth by chance (and x's float32 neighbours
        round the same way), which once let a cancelling rule pass its allowance by a hair too little.
        None when there is no float64 leaf or f cannot run in float32.
        """
        problem = self.problem
        if not any(e <= float(np.finfo(np.float64).eps) for e in self.eps):
            return None
        if self._rules32 is not None and self._rules32[0] is gs:
            return self._rules32[1]
        try:
            dts32 = [np.float32] * len(problem.out)
            dts = [o.dtype for o in problem.out]
            call32 = self._caller("rule32", lambda: _batched_vjp(problem.F))
            call = self._caller("rule", lambda: _batched_vjp(problem.F))

            def run(caller, xs, dtypes):
                return [[np.asarray(v, np.float64) for v in vs] for vs in
                        _apply_batched(caller, problem.F, [_put(a) for a in xs], gs, dtypes)]

            out = []
            for k, factor in enumerate((1.0, 1.0 + 2.0**-12, 1.0 - 2.0**-12)):
                x32 = [np.asarray(xi * factor, np.float32) for xi in self.x64]
                low = run(call32, x32, dts32)
                if k == 0:
                    high = [[np.asarray(v, np.float64) for v in vs] for vs in self.rules(gs)]
                else:
                    same = [np.asarray(a, np.float64).astype(p.dtype) for a, p in zip(x32, problem.x)]
                    high = run(call, same, dts)
                out.append((low, high))
        except Exception:  # noqa: BLE001 - f not runnable in float32: no estimate
            out = None
        self._rules32 = (gs, out)
        return out

    def float32_noise(self, gs: list, V: list) -> list | None:
        """Observed rounding of the rule on float64 leaves, from float32 reruns scaled by ε64/ε32.

        A float64 rule has no more precise twin to compare with, so its own rounding (a cancelling
        formula near a removable singularity: ``(cos u · u − sin u)/u²`` loses ``u/x`` relative;
        ``1 − 1/(1 + eˣ)`` for x < 0) is invisible to ``|VJP_lowp − VJP_f64|``. A formula's rounding
        error scales with ε (``K·ε·scale`` for a fixed formula and input), so the float32 rerun's error,
        scaled by ε64/ε32, estimates it; the largest over the three points of :meth:`rules32` guards
        against one rerun that happens to round exactly.
        """
        runs = self.rules32(gs)
        if runs is None:
            return None
        scale = float(np.finfo(np.float64).eps) / float(np.finfo(np.float32).eps)
        eps64 = float(np.finfo(np.float64).eps)
        out = []
        for c, v in enumerate(V):
            row = []
            for leaf, vi in enumerate(v):
                if self.eps[leaf] > eps64:
                    row.append(np.zeros(np.shape(vi)))
                    continue
                d = np.zeros(np.shape(vi))
                for low, high in runs:
                    with np.errstate(invalid="ignore"):
                        d = np.maximum(d, np.nan_to_num(np.abs(low[c][leaf] - high[c][leaf]), nan=0.0, posinf=0.0))
                row.append(scale * d)
            out.append(row)
        return out

    def same_precision_noise(self, gs: list) -> list | None:
        """Rounding estimate for leaves already in float64, where (a) has no more precise truth.

        For a float32 input the reference is differentiated in float64, the truth at float32's scale.
        For a float64 input it runs in float64 too, and its own rounding (2σ(2u) − 1 cancelling in a
        reference of gelu, say) is as large as the rule's: both must enter the tolerance. Both are run
        once more in float32: a formula's rounding error scales with ε (``K·ε·scale`` for a fixed
        formula and input), so ``(|rule32 − rule64| + |ref32 − ref64|)·ε64/ε32`` estimates the
        float64 rounding of the pair (slightly more: it also holds the effect of rounding x to float32).
        None when there is no reference, no float64 leaf, or f cannot run in float32.
        """
        problem = self.problem
        eps64, eps32 = float(np.finfo(np.float64).eps), float(np.finfo(np.float32).eps)
        if problem.R is None or not any(e <= eps64 for e in self.eps):
            return None
        try:
            x32 = [_put(np.asarray(xi, np.float32)) for xi in self.x64]
            dts = [np.float32] * len(problem.out)
            gs32 = [[np.asarray(gi, np.float32) for gi in g] for g in gs]
            rule32 = _apply_batched(_batched_vjp(problem.F), problem.F, x32, gs32, dts)
            ref32 = _apply_batched(_batched_vjp(problem.R), problem.R, x32, gs32, dts)
            rule64, ref64 = (_value(v) for v in self._vjps64(gs))
        except Exception:  # noqa: BLE001 - f or its reference not runnable in float32: no estimate
            return None
        scale = eps64 / eps32
        return [
            [
                np.nan_to_num(scale * (np.abs(np.asarray(a, np.float64) - b) + np.abs(np.asarray(c, np.float64) - d)),
                              nan=0.0, posinf=0.0)
                if e <= eps64 else np.zeros(np.shape(b))
                for a, b, c, d, e in zip(r32, r64, t32, t64, self.eps)
            ]
            for r32, r64, t32, t64 in zip(rule32, rule64, ref32, ref64)
        ]

    def rules64(self, gs: list) -> list:
        """The rule's VJP with every float input and the cotangent upcast to float64."""
        return _value(self._vjps64(gs)[0])

    def _vjps64(self, gs: list) -> tuple:
        """``(rule VJPs, reference VJPs)`` in float64 for ``gs``; either may be an exception object.

        Both come from one compiled program (``both64``) when there is a reference: one compilation
        instead of two, and the reference's VJPs of every probe come for free. If that program cannot
        be built (a non-differentiable reference, or f not runnable in float64) each is computed on
        its own, so each failure is reported where it belongs. The last result is kept: comparison (a)
        asks for both halves of the same cotangents.
        """
        if self._memo64 is not None and self._memo64[0] is gs:
            return self._memo64[1]
        problem, n = self.problem, len(self.problem.x)
        dts = [np.float64] * len(problem.out)
        as64 = lambda out: [[np.asarray(vi, np.float64) for vi in v] for v in out]
        result = None
        with float64_scope():
            x = [_put(xi) for xi in self.x64]
            if problem.R64 is not None and not self._fused_failed:
                try:
                    call = self._caller("both64", lambda: _batched_vjp_pair(problem.F64, problem.R64))
                    out = as64(_apply_batched(call, None, x, gs, dts))
                    result = ([v[:n] for v in out], [v[n:] for v in out])
                except Exception:  # noqa: BLE001 - find out which half fails, below
                    self._fused_failed = True
            if result is None:
                result = (
                    _attempt(lambda: as64(_apply_batched(
                        self._caller("rule64", lambda: _batched_vjp(problem.F64)), problem.F64, x, gs, dts))),
                    None if problem.R64 is None else _attempt(lambda: as64(_apply_batched(
                        self._caller("ref64", lambda: _batched_vjp(problem.R64)), problem.R64, x, gs, dts))),
                )
        self._memo64 = (gs, result)
        return result

    def eager_rule(self, g) -> list:
        """The same VJP evaluated op by op, without jit."""
        gs = [_put(np.asarray(gi, dtype=o.dtype)) for gi, o in zip(g, self.problem.out)]
        (v,) = self.vjp_fn(gs)
        return [np.asarray(vi, np.float64) for vi in v]

    def references64(self, gs: list) -> list | None:
        """jax.vjp of the reference with every float input and the cotangent upcast to float64."""
        if self.problem.R64 is None:
            return None
        return _value(self._vjps64(gs)[1])

    def reference64(self, g) -> list | None:
        out = self.references64([g])
        return None if out is None else out[0]

    # ---- finite differences -------------------------------------------------------------------
    def sample(self, dirs, gs):
        """phi samples along a batch of directions (see differences.make_sampler)."""
        with float64_scope():
            x = [_put(xi) for xi in self.x64]
            d = [_put(np.asarray(di, np.float64)) for di in dirs]
            g = [_put(np.asarray(gi, np.float64)) for gi in gs]
            s, m = self.programs.call("sampler", lambda: make_sampler(self.problem.F64, self.fd), x, d, g)
            return np.asarray(s, np.float64), np.asarray(m, np.float64)

    def sample_entries(self, leaf: int, idx, cots: list, step_scale: float = 1.0):
        """phi samples along ``step_scale * h_i e_i`` of one leaf for each cotangent in ``cots``."""
        with float64_scope():
            x = [_put(xi) for xi in self.x64]
            idx = np.asarray(idx, np.int64)
            h = self.steps[leaf].reshape(-1)[idx] * step_scale
            g = [_put(np.stack([np.asarray(c[j], np.float64) for c in cots])) for j in range(len(cots[0]))]
            build = lambda: make_entry_sampler(self.problem.F64, self.fd, leaf)
            idx, h = _put(idx), _put(np.asarray(h, np.float64))
            if self.mesh is not None:  # the perturbations split over the devices (GSPMD), the rest replicated
                idx, h = (jax.device_put(a, batch_sharding(self.mesh)) for a in (idx, h))
                x, g = jax.device_put((x, g), replicated(self.mesh))
            s, m = self.programs.call(f"entries{leaf}", build, x, idx, h, g)
            return np.asarray(s, np.float64), np.asarray(m, np.float64)

    def fd_noise_rerun(self) -> bool:
        """Whether finite differences are rerun at other steps to observe their own rounding: where a
        leaf is float64 (for float32 leaves the float64 differences are ~2^29 times finer than the
        rule's allowance) and the scheme is central."""
        eps64 = float(np.finfo(np.float64).eps)
        return self.fd == "central" and any(e <= eps64 for e in self.eps)

    def check_degraded(self) -> None:
        """Detect an f that computes in float32 inside even when called with float64 inputs.

        Its float64 outputs then carry float32 rounding: every float64 finite difference is only as
        good as float32, and so is the rule. Evidence, from f at x nudged off the float32 grid: an output
        dtype below float64, or every finite output value exactly representable in float32 while some
        has more than bfloat16's 8 significant bits (a float64 result lands on a float32 by chance with
        probability 2^-29 per value). Then
        ``fd_eps`` (the rounding unit of the differences) and each leaf's eps become float32's, and a
        note says why.
        """
        eps32 = float(np.finfo(np.float32).eps)
        # Evaluated at x nudged off the float32 grid (relative 3·2⁻⁴⁰), so that f(x) = x on float32
        # inputs, exact float32 numbers, does not read as a float32 computation.
        nudged = [xi * (1.0 + 3.0 * 2.0**-40) for xi in self.x64]
        try:
            with float64_scope():
                out = self.programs.call("f64", lambda: jax.jit(self.problem.F64), [_put(xi) for xi in nudged])
                dtypes = [np.dtype(o.dtype) for o in out]
                vals = np.concatenate([np.asarray(o, np.float64).reshape(-1) for o in out]) if out else np.zeros(0)
        except Exception:  # noqa: BLE001 - f not runnable in float64: (b) reports that
            return
        vals = vals[np.isfinite(vals)]
        low_dtype = any(d.itemsize < 8 for d in dtypes)
        as32 = vals.astype(np.float32).astype(np.float64)
        import ml_dtypes  # shipped with jaxlib

        as_bf16 = vals.astype(ml_dtypes.bfloat16).astype(np.float64)
        representable = vals.size > 0 and bool(np.all(as32 == vals)) and bool(np.any(as_bf16 != vals))
        if low_dtype or representable:
            why = (f"returns {'/'.join(sorted({str(d) for d in dtypes}))} for float64 inputs" if low_dtype
                   else "returns float64 values that are all exact float32 numbers for float64 inputs")
            self.degraded = (f"f computes in float32 inside (it {why}): finite differences and the reference carry "
                             "float32 rounding, so their error bars and the rule's allowance use float32's ε")
            self.fd_eps = max(self.fd_eps, eps32)
            self.eps = [max(e, eps32) for e in self.eps]
            # A step sized for float64 (ε^(1/3) = 6e-6) drowns in float32 rounding: size it for float32.
            self.steps = [step_sizes(xi, np.float32, self.fd) if np.dtype(p.dtype).itemsize > 4 else h
                          for xi, p, h in zip(self.x64, self.problem.x, self.steps)]


VJP_BATCH = 8
FD_AXIS = "fd"


def fd_mesh(devices):
    """A 1-D mesh over ``devices`` ("auto": every device of the default backend when there are
    several; None or one device: no mesh)."""
    if devices == "auto":
        devices = jax.devices()
    if devices is None or len(devices) < 2:
        return None
    return jax.sharding.Mesh(np.asarray(list(devices)), (FD_AXIS,))


def batch_sharding(mesh):
    return jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec(FD_AXIS))


def replicated(mesh):
    return jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())


def _batched_vjp(F):
    """``jit((x, G) -> [VJP of F at x applied to G[b] for b])``, vmapped over the cotangents."""

    def apply(x, g):
        return list(jax.vjp(F, x)[1](g)[0])

    return jax.jit(jax.vmap(apply, in_axes=(None, 0)))


def _batched_vjp_pair(F, R):
    """``jit((x, G) -> VJPs of F then of R at x for each G[b])``: both float64 VJPs in one program."""

    def apply(x, g):
        return list(jax.vjp(F, x)[1](g)[0]) + list(jax.vjp(R, x)[1](g)[0])

    return jax.jit(jax.vmap(apply, in_axes=(None, 0)))


def _put(a):
    """A numpy array onto the default device. (``jnp.asarray`` of a numpy array compiles a small copy
    program per shape on first use; a transfer does not.) Call inside float64_scope for float64."""
    return jax.device_put(a)


def _attempt(thunk):
    try:
        return thunk()
    except Exception as err:  # noqa: BLE001 - handed to the caller, raised where it is used
        return err


def _value(v):
    if isinstance(v, BaseException):
        raise v
    return v


def _apply_batched(fn, F, x, gs, dtypes) -> list:
    """Run the batched VJP over ``gs`` in padded batches of VJP_BATCH; per-cotangent lists of arrays.

    A rule that cannot be vmapped (e.g. a callback without a batching rule) falls back to one jit
    call per cotangent.
    """
    # Stacking, padding and unstacking happen in numpy: the same steps as jnp operations would each
    # compile a small XLA program per shape on first use (~15 ms apiece).
    gs = [[np.asarray(gi, dtype=dt) for gi, dt in zip(g, dtypes)] for g in gs]
    out = []
    try:
        for start in range(0, len(gs), VJP_BATCH):
            part = gs[start : start + VJP_BATCH]
            k = len(part)
            part = part + [part[0]] * (VJP_BATCH - k)
            stacked = [_put(np.stack([g[j] for g in part])) for j in range(len(part[0]))]
            res = [np.asarray(r) for r in fn(x, stacked)]
            out += [[r[b] for r in res] for b in range(k)]
        return out
    except (ValueError, TypeError):
        raise
    except Exception:
        if F is None:
            raise
        single = jax.jit(lambda x, g: list(jax.vjp(F, x)[1](g)[0]))
        return [[np.asarray(r) for r in single(x, [jnp.asarray(gi) for gi in g])] for g in gs]


def make_context(problem: Problem, fd: str, seed: int, programs: Programs | None = None) -> Context:
    """Linearise f once (its VJP closure), upcast the primal, compute steps and each leaf's eps."""
    vjp_fn = lambda g: jax.vjp(problem.F, list(problem.x))[1](g)
    out_dtypes = [o.dtype for o in problem.out]
    x64 = [np.asarray(xi, np.float64) for xi in problem.x]
    steps = [step_sizes(xi, p.dtype, fd) for xi, p in zip(x64, problem.x)]
    eps = [eps_of(p.dtype, *out_dtypes) for p in problem.x]
    return Context(problem, fd, np.random.default_rng(seed), vjp_fn, x64, steps, eps,
                   programs=programs if programs is not None else Programs())


def make_cotangents(problem: Problem, rng: np.random.Generator, count: int, basis_limit: int) -> Cotangents:
    """Basis cotangents when the output is small, else ``count`` random-sign ones (see module doc)."""
    sizes = [int(np.prod(o.shape)) for o in problem.out]
    total = sum(sizes)
    if total <= basis_limit:
        values, labels = [], []
        for j, (o, n) in enumerate(zip(problem.out, sizes)):
            for k in range(n):
                g = [np.zeros(oo.shape) for oo in problem.out]
                g[j].reshape(-1)[k] = 1.0
                values.append(g)
                idx = np.unravel_index(k, o.shape) if o.shape else ()
                labels.append(problem.out_labels[j] + (f"[{', '.join(map(str, idx))}]" if idx else ""))
        return Cotangents(values, labels, True)
    values = [rademacher(problem.out, rng) for _ in range(count)]
    return Cotangents(values, [f"random ±1 #{k}" for k in range(count)], False)


def rademacher(like: list, rng: np.random.Generator) -> list:
    """Independent random signs shaped like each array in ``like`` (float64)."""
    return [rng.choice(np.array([-1.0, 1.0]), size=np.shape(a)) for a in like]


def scalar_output(problem: Problem) -> bool:
    return sum(int(np.prod(o.shape)) for o in problem.out) == 1
