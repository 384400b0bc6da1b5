"""The context of one check: f's rule and its reference evaluated on batches of cotangents, and the
rounding each is observed to make.

A :class:`Context` holds the problem (f and its reference as functions of the float leaves), the point
in float64, the finite-difference steps and each leaf's rounding unit, and the compiled programs it
runs. The rule runs at the inputs' own dtype (what users run), the reference and the rule again in
float64; their differences from reruns at other precisions are the observed rounding that enters the
tolerances (:mod:`fnnet.check.tolerance`). Cotangents come from :mod:`fnnet.check.cotangents`, the
finite differences from :mod:`fnnet.check.fd`, the batching from :mod:`fnnet.check.batching`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import jax
import jax.numpy as jnp  # jnp.finfo knows bfloat16 (ml_dtypes); numpy's does not
import numpy as np

from .batching import apply_batched, batched_vjp, batched_vjp_pair, put
from .fd import inline_f0, step_sizes
from .problem import Problem
from .programs import Programs, float64_scope
from .report import index_text, unravel
from .tolerance import SLACK, eps_of


@dataclass
class Context:
    """One check's state: the problem, its point, steps, rounding units, notes and compiled programs."""

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
    inline_f0: bool = False  # the directional sampler evaluates f(x) inside its batch (fd.inline_f0)
    out_abs: list | None = None  # |f(x)| per float output leaf, in float64 (fd.check_degraded reads f(x))
    unstable: dict = field(default_factory=dict)  # (leaf, index) -> (ratio, rounding, allowed, rule, cotangent): capped
    stability_worst: float = 0.0  # the largest observed rounding / allowed rounding (capped)
    _dtypes32: dict = field(default_factory=dict)  # out_dtypes32's answers

    # ---- rule and reference -------------------------------------------------------------------
    # Each VJP is one jit-compiled program vmapped over a padded batch of cotangents (batching.py).
    def rules(self, gs: list, raw: bool = False) -> list:
        """f's VJP (its custom rule, if any) at the inputs' dtype for each cotangent in ``gs``.

        Float64 numpy arrays; ``raw=True`` keeps the arrays as the VJP produced them (shape/dtype check).
        """
        cast = [o.dtype for o in self.problem.out]
        call = self._caller("rule", lambda: batched_vjp(self.problem.F))
        out = apply_batched(call, self.problem.F, list(self.problem.x), gs, cast)
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
        return V, self.capped(gs, V, noise)

    def capped(self, gs: list, V: list, noise: list) -> list:
        """The observed rounding ``noise``, at most :data:`UNSTABLE` times what a stable rule makes.

        A rule's observed rounding (itself at another precision, :meth:`rules_and_noise`) is accepted
        as rounding only up to what rounding explains (:meth:`explained`): the rounding of its inputs
        and cotangent carried through the derivative (its condition), of f's values, and of its own
        result. A formula that cancels (``(cos u·u − sin u)/u²`` near u = 0: error ``ε/u`` where the
        derivative is ``u/3``) makes far more; its own rounding then excuses nothing beyond that cap,
        its error fails (a) and (b) as any other, and the entries are kept in ``self.unstable`` for
        the stability check (c) (:func:`fnnet.check.structure.stability`).

        The condition part costs evaluations, so it is computed only where the rounding exceeds the
        cap without it; where it does not, the worst ratio kept for the check's report is the one
        against that smaller allowance (an upper bound).
        """
        limit = None
        base = self._allowance_without_condition(gs, V)
        out = []
        for c, ns in enumerate(noise):
            row = []
            for leaf, n in enumerate(ns):
                n = np.asarray(n, np.float64)
                # The stability check reports what was measured: the rule at a lower precision against
                # itself in float64. For a float64 leaf the rounding is extrapolated from float32 reruns,
                # which also see float32's underflow in intermediates (ndtri(σ(−90)): σ is subnormal in
                # float32, normal in float64); there the cap applies, the report does not.
                measured = self.eps[leaf] > _EPS64
                allow = UNSTABLE * base[c][leaf]
                if np.any(n > allow):
                    if limit is None:
                        limit = self.explained(gs, V, base)
                    allow = UNSTABLE * limit[c][leaf]
                if measured:
                    self._keep_unstable(leaf, n, allow, V[c][leaf], gs[c])
                row.append(np.minimum(n, allow))
            out.append(row)
        return out

    def _keep_unstable(self, leaf: int, rounding, allow, v, g) -> None:
        """Keep the worst ratio ``rounding / allow`` of a leaf for the stability check's report, and the
        entries above 1 in ``self.unstable`` (the largest ratio seen for each entry)."""
        rounding = np.asarray(rounding, np.float64).reshape(-1)
        allow = np.broadcast_to(allow, np.shape(v)).reshape(-1)
        with np.errstate(divide="ignore", invalid="ignore"):
            r = np.where(rounding > 0, rounding / np.maximum(allow, 1e-300), 0.0)
        self.stability_worst = max(self.stability_worst, float(np.max(r, initial=0.0)))
        flat_v = np.asarray(v, np.float64).reshape(-1)
        for i in np.flatnonzero(r > 1.0):
            key = (leaf, int(i))
            if r[i] > self.unstable.get(key, (0.0,))[0]:
                self.unstable[key] = (float(r[i]), float(rounding[i]), float(allow[i]), float(flat_v[i]),
                                      self._cotangent_label(g))

    def _cotangent_label(self, g: list) -> str:
        """A basis cotangent's output entry (``out[3]``), else "random" (a VJP of a random cotangent)."""
        nonzero = [(j, np.flatnonzero(np.asarray(gj).reshape(-1))) for j, gj in enumerate(g)]
        hits = [(j, idx) for j, idx in nonzero if idx.size]
        if len(hits) == 1 and hits[0][1].size == 1:
            j, (k,) = hits[0][0], hits[0][1]
            if float(np.asarray(g[j]).reshape(-1)[k]) == 1.0:
                return self.problem.out_labels[j] + index_text(unravel(int(k), self.problem.out[j].shape))
        return "random"

    def values_terms(self, g: list) -> float:
        """``Σⱼ|gⱼ||fⱼ(x)|`` over f's finite outputs (0 when f's values are unknown): the size of the
        terms a rule formed from f's rounded outputs carries (``y(1 − y)``, ``1 − y²``, ``y ⊙ (g − ⟨g, y⟩)``)."""
        if self.out_abs is None:
            return 0.0
        with np.errstate(invalid="ignore", over="ignore"):
            return sum(float(np.sum(np.where(np.isfinite(f), np.abs(np.asarray(gj, np.float64)) * f, 0.0)))
                       for gj, f in zip(g, self.out_abs))

    def _allowance_without_condition(self, gs: list, V: list, own_tiny: bool = False) -> list:
        """Per cotangent and leaf, ``ε·(|vᵢ| + scale) + ε·Σⱼ|gⱼ||fⱼ(x)| + tiny``: the rounding of the
        result, of f's values (a rule formed from f's rounded outputs, ``1 − y²`` for tanh, moves by
        ``|∂v/∂y|·ε|y|``) and underflow.

        ``scale`` is the largest entry of the leaf's VJPs over the whole batch ``V`` (for basis
        cotangents, of the leaf's Jacobian): a normwise allowance, as :func:`~fnnet.check.tolerance.
        rounding_bound`'s, over the derivative rather than one VJP. So ``1 − 1/(1 + eˣ)`` for σ(x), 0 at
        x = −25 in float32 where σ is 1.4e-11, errs by 1e-4 ε of the derivative's scale (1) and is
        stable; sinc's ``(cos u·u − sin u)/u²`` errs by 270 ε of its scale at x = 10⁻³. ``own_tiny``:
        the smallest normal of the leaf's own precision (a float64 measurement), not :attr:`tiny`.
        """
        scales = _leaf_scales(V)
        tiny = [_TINY.get(e, 0.0) for e in self.eps] if own_tiny else self.tiny
        out = []
        for g, vs in zip(gs, V):
            terms = self.values_terms(g)
            out.append([e * (np.nan_to_num(np.abs(np.asarray(v, np.float64)), nan=0.0, posinf=0.0) + scale + terms) + t
                        for v, e, scale, t in zip(vs, self.eps, scales, tiny)])
        return out

    def _largest_change(self, gs: list, which: int, base: list, steps: list, seed: int, draws: int,
                        cotangent_eps: list | None = None) -> list:
        """``max |v(x·(1 ± step)) − v(x)|`` over ``draws`` draws of random signs (per cotangent and leaf),
        ``v`` the float64 VJP (``which``: 0 the rule, 1 the reference), ``steps`` one relative step per
        leaf (0: the leaf stays), ``cotangent_eps`` one per output to move the cotangent alike."""
        rng = np.random.default_rng(seed)
        out = None
        for _ in range(draws):
            xs = [xi * (1.0 + step * rng.choice([-1.0, 1.0], size=np.shape(xi))) if step else xi
                  for xi, step in zip(self.x64, steps)]
            gp = gs if cotangent_eps is None else [
                [np.asarray(gj, np.float64) * (1.0 + e * rng.choice([-1.0, 1.0], size=np.shape(gj)))
                 for gj, e in zip(g, cotangent_eps)] for g in gs]
            moved = _value(self._vjps64_at(xs, gp)[which])
            with np.errstate(invalid="ignore", over="ignore"):
                d = [[np.nan_to_num(np.abs(np.asarray(a, np.float64) - b), nan=0.0, posinf=0.0, neginf=0.0)
                      for a, b in zip(u, w)] for u, w in zip(moved, base)]
            out = d if out is None else [[np.maximum(a, b) for a, b in zip(u, w)] for u, w in zip(out, d)]
        return out

    def _rounding_at_neighbours(self, gs: list, which: int, base: list, sides=(1.0, -1.0)) -> list:
        """The float64 VJP's own rounding (``which``: 0 the rule, 1 the reference), measured in float64.

        At ``x + j·h`` for j = 1, 2, 3 with ``hᵢ = ±xᵢ·2⁻⁴⁰`` (random signs, float64 leaves only), the
        second difference ``|v₁ − 2v₂ + v₃| / 2``, per cotangent and leaf; with both ``sides``, the
        same at j = −1, −2, −3 and the smaller of the two. The second difference removes the
        derivative's smooth change (what is left is ``v″·h²``, ~10⁻²⁴ relative); thousands of ulps
        apart roundings are independent, so what remains is rounding: a few ulps of ``v`` for a
        stable formula, its rounding error for one that cancels (``ε/u`` for sinc's quotient). Two
        ulps apart they are not (there a cancelling quotient's error moved by 10⁻³ of itself). The
        points stay on one side of x, and the smaller side is taken, so a kink at x (hard_tanh at 1)
        or just beside it (on one side) does not count as rounding.
        """
        rng = np.random.default_rng(CONDITION_SEED + 2 + which)
        signs = [rng.choice([-1.0, 1.0], size=np.shape(xi)) for xi in self.x64]
        best = None
        for side in sides:
            vs = []
            for j in (1.0, 2.0, 3.0):
                xs = [xi * (1.0 + side * j * NEIGHBOUR_STEP * sg) if e <= _EPS64 else xi
                      for xi, sg, e in zip(self.x64, signs, self.eps)]
                vs.append(_value(self._vjps64_at(xs, gs)[which]))
            with np.errstate(invalid="ignore", over="ignore"):
                d = [[np.nan_to_num(0.5 * np.abs(np.asarray(p, np.float64) - 2.0 * np.asarray(q, np.float64)
                                                 + np.asarray(r, np.float64)), nan=0.0, posinf=0.0, neginf=0.0)
                      for p, q, r in zip(ps, qs, rs)] for ps, qs, rs in zip(*vs)]
            best = d if best is None else [[np.minimum(a, b) for a, b in zip(u, w)] for u, w in zip(best, d)]
        return best

    def float64_stability(self, gs: list) -> None:
        """For float64 leaves, the rule's own rounding measured in float64 itself; entries beyond
        :data:`UNSTABLE` times what rounding explains go to ``self.unstable`` (as :meth:`capped`).

        The rounding is :meth:`_rounding_at_neighbours`' (second differences of the float64 rule at
        neighbouring inputs). The condition part of what rounding explains is the rule's change at a
        step ``δ = 2⁻²⁰`` (random signs, the largest over :data:`JITTER_DRAWS` draws) scaled by
        ``2ε/δ``: the smooth change of a 2ε-sized perturbation, where a rounding error independent
        of the step is divided by δ/2ε ≈ 2·10⁹. One side of x is measured first (three evaluations
        of the compiled VJP); the other side (three more) and the condition (two) only where an
        entry is above the allowance without them.
        """
        leaves = [leaf for leaf, e in enumerate(self.eps) if e <= _EPS64]
        if not leaves:
            return
        try:
            base = _value(self._vjps64(gs)[0])
            rounding = self._rounding_at_neighbours(gs, 0, base, sides=(1.0,))
            allow = [[UNSTABLE * a for a in row] for row in self._allowance_without_condition(gs, base, own_tiny=True)]
            if any(np.any(rounding[c][leaf] > allow[c][leaf]) for c in range(len(gs)) for leaf in leaves):
                other = self._rounding_at_neighbours(gs, 0, base, sides=(-1.0,))
                rounding = [[np.minimum(a, b) for a, b in zip(u, w)] for u, w in zip(rounding, other)]
                steps = [JITTER_STEP if e <= _EPS64 else 0.0 for e in self.eps]
                smooth = self._largest_change(gs, 0, base, steps, CONDITION_SEED + 1, JITTER_DRAWS)
                allow = [[a + UNSTABLE * 2.0 * _EPS64 / JITTER_STEP * m for a, m in zip(u, w)]
                         for u, w in zip(allow, smooth)]
        except Exception:  # noqa: BLE001 - f not runnable in float64 (at a neighbour): nothing measured
            return
        for c, g in enumerate(gs):
            for leaf in leaves:
                self._keep_unstable(leaf, rounding[c][leaf], allow[c][leaf], base[c][leaf], g)

    @property
    def tiny(self) -> list:
        """Per leaf, the smallest normal number of the rule's precision (the leaf's ε names it): below it
        a result keeps fewer digits (subnormal) or none (a float32 rule returns 0 for a true 5.5e-88)."""
        eps32 = float(np.finfo(np.float32).eps)
        # A float64 leaf's rounding is also read from float32 reruns scaled by ε64/ε32 (float32_noise):
        # where those underflow, float32's smallest normal, scaled alike.
        return [_TINY[eps32] * _EPS64 / eps32 if e == _EPS64 else _TINY.get(e, 0.0) for e in self.eps]

    def explained(self, gs: list, V: list, without_condition: list | None = None) -> list:
        """Per entry, the rounding a stable rule is expected to make (see :meth:`capped`):
        :meth:`_allowance_without_condition` (``without_condition`` if already computed) plus the
        condition part.

        The condition part: the VJP in float64 (the reference's, else the rule's) at inputs and
        cotangent each perturbed by one rounding unit with random signs, ``x·(1 ± ε)``, against it
        at x; the largest change over :data:`CONDITION_DRAWS` draws. That is how far rounding the data
        alone moves the derivative: a backward-stable rule errs by about that (an ill-conditioned
        matrix's solve by ``κ·ε``), a cancelling one by far more.
        """
        both = self._vjps64(gs)
        use = 1 if not isinstance(both[1], BaseException) and both[1] is not None else 0
        base = _value(both[use])
        try:
            cond = self._largest_change(gs, use, base, list(self.eps), CONDITION_SEED, CONDITION_DRAWS,
                                        cotangent_eps=[eps_of(o.dtype) for o in self.problem.out])
        except Exception:  # noqa: BLE001 - no condition estimate: the other parts only
            cond = [[np.zeros(np.shape(b)) for b in w] for w in base]
        if without_condition is None:
            without_condition = self._allowance_without_condition(gs, V)
        return [[a + k for a, k in zip(u, w)] for u, w in zip(without_condition, cond)]

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
            dts32 = self.out_dtypes32("F")
            dts = [o.dtype for o in problem.out]
            call32 = self._caller("rule32", lambda: batched_vjp(problem.F))
            call = self._caller("rule", lambda: batched_vjp(problem.F))

            def run(caller, xs, dtypes):
                return [[np.asarray(v, np.float64) for v in vs] for vs in
                        apply_batched(caller, problem.F, [put(a) for a in xs], gs, dtypes)]

            out = []
            for k, factor in enumerate(ROUNDING_POINTS):
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

    def out_dtypes32(self, which: str = "F") -> list:
        """The dtypes of f's (``"F"``) or the reference's (``"R"``) float outputs at float32 inputs.

        Usually float32, but not always: a function that mixes in float64 constants (a quadrature's
        weights as a float64 array, as in jax.scipy.special.owens_t with x64 on) returns float64 from
        float32 inputs, and its float32 rerun takes float64 cotangents.
        """
        if which not in self._dtypes32:
            fn = self.problem.F if which == "F" else self.problem.R
            x32 = [jax.ShapeDtypeStruct(np.shape(xi), np.float32) for xi in self.x64]
            self._dtypes32[which] = [o.dtype for o in jax.eval_shape(fn, x32)]
        return self._dtypes32[which]

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
        The reference's part is the largest over the three points of :meth:`rules32` (x, and
        ``x·(1 ± 2⁻¹²)`` rounded to float32, each against float64 at the same number): at one point
        a float32 rerun can round exactly by chance, and a matrix reference's rounding (an SVD's)
        varies from entry to entry (jnp.linalg.pinv's rule once failed by 1.15× on an entry where
        that one rerun had rounded 30 times less than float64 did).
        (:meth:`reference_rounding` adds what a float32 rerun cannot show.) None when there is no
        reference, no float64 leaf, or f cannot run in float32.
        """
        problem = self.problem
        eps64, eps32 = float(np.finfo(np.float64).eps), float(np.finfo(np.float32).eps)
        if problem.R is None or not any(e <= eps64 for e in self.eps):
            return None
        try:
            dts, ref_dts = self.out_dtypes32("F"), self.out_dtypes32("R")
            gs32 = [[np.asarray(gi, np.float32) for gi in g] for g in gs]
            x32 = [put(np.asarray(xi, np.float32)) for xi in self.x64]
            rule32 = apply_batched(self._caller("rule32", lambda: batched_vjp(problem.F)), problem.F, x32, gs32, dts)
            ref_call = self._caller("ref32", lambda: batched_vjp(problem.R))
            rule64, ref64 = (_value(v) for v in self._vjps64(gs))
            ref_spread = None
            for k, factor in enumerate(ROUNDING_POINTS):
                low = [np.asarray(xi * factor, np.float32) for xi in self.x64]
                ref32 = apply_batched(ref_call, problem.R, [put(a) for a in low], gs32, ref_dts)
                high = ref64 if k == 0 else _value(self._vjps64_at([a.astype(np.float64) for a in low], gs)[1])
                d = [[np.nan_to_num(np.abs(np.asarray(a, np.float64) - b), nan=0.0, posinf=0.0)
                      for a, b in zip(r32, r64)] for r32, r64 in zip(ref32, high)]
                ref_spread = d if ref_spread is None else [[np.maximum(a, b) for a, b in zip(u, v)]
                                                           for u, v in zip(ref_spread, d)]
        except Exception as err:  # noqa: BLE001 - f or its reference not runnable in float32: no estimate
            note = (f"the float32 reruns that estimate float64 rounding could not run ({type(err).__name__}); "
                    "(a) allows the float64 rule and reference the dtype bound only")
            if note not in self.notes:
                self.notes.append(note)
            return None
        scale = eps64 / eps32
        return [
            [
                scale * (np.nan_to_num(np.abs(np.asarray(a, np.float64) - b), nan=0.0, posinf=0.0) + c)
                if e <= eps64 else np.zeros(np.shape(b))
                for a, b, c, e in zip(r32, r64, spread, self.eps)
            ]
            for r32, r64, spread in zip(rule32, rule64, ref_spread)
        ]

    def reference_rounding(self, gs: list) -> list:
        """The float64 reference's own rounding on float64 leaves, measured in float64 at neighbouring
        inputs (:meth:`_rounding_at_neighbours`; 0 on other leaves). A reference that cancels completely
        in float32 (autodiff of ``sin(πx)/(πx)`` at x = 10⁻⁷, 0.4 % off) shows no scaled error in its
        float32 rerun (:meth:`same_precision_noise`); here it moves by its rounding error."""
        ref64 = _value(self._vjps64(gs)[1])
        measured = self._rounding_at_neighbours(gs, 1, ref64)
        return [[m if e <= _EPS64 else np.zeros(np.shape(m)) for m, e in zip(row, self.eps)] for row in measured]

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
        result = self._vjps64_at(self.x64, gs)
        self._memo64 = (gs, result)
        return result

    def _vjps64_at(self, x64: list, gs: list) -> tuple:
        """:meth:`_vjps64` at the point ``x64`` (float64 arrays), not memoised."""
        problem, n = self.problem, len(self.problem.x)
        dts = [np.float64] * len(problem.out)
        as64 = lambda out: [[np.asarray(vi, np.float64) for vi in v] for v in out]
        result = None
        with float64_scope():
            x = [put(xi) for xi in x64]
            if problem.R64 is not None and not self._fused_failed:
                try:
                    call = self._caller("both64", lambda: batched_vjp_pair(problem.F64, problem.R64))
                    out = as64(apply_batched(call, None, x, gs, dts))
                    result = ([v[:n] for v in out], [v[n:] for v in out])
                except Exception:  # noqa: BLE001 - find out which half fails, below
                    self._fused_failed = True
            if result is None:
                result = (
                    _attempt(lambda: as64(apply_batched(
                        self._caller("rule64", lambda: batched_vjp(problem.F64)), problem.F64, x, gs, dts))),
                    None if problem.R64 is None else _attempt(lambda: as64(apply_batched(
                        self._caller("ref64", lambda: batched_vjp(problem.R64)), problem.R64, x, gs, dts))),
                )
        return result

    def eager_rule(self, g) -> list:
        """The same VJP evaluated op by op, without jit."""
        gs = [put(np.asarray(gi, dtype=o.dtype)) for gi, o in zip(g, self.problem.out)]
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

    def x_at(self, leaf: int, i: int) -> float:
        """The input's value at flat entry ``i`` of ``leaf`` (NaN for an empty leaf)."""
        return float(self.x64[leaf].reshape(-1)[i]) if self.x64[leaf].size else float("nan")


# A rule's observed rounding is accepted up to UNSTABLE times what rounding explains (Context.capped):
# SLACK units per operation (as the tolerances), times SLACK for the rule's own operation count, times
# SLACK for a random-sign estimate of the condition against the worst case and a factorization's
# backward-error growth. Measured on correct rules written elsewhere (docs/reference/gradcheck.md):
# from float32 reruns, jax's LU-based slogdet 40× on a near-singular 4×4 (float64, extrapolated), its
# solve, eigh and qr 5-8×, log_ndtr's exp(log φ − log Φ) 11× at x = −30; in float64 at neighbouring
# inputs, jnp.linalg.solve of a near-singular 4×4 66×, slogdet 35×, pinv 25×, the others at most 1×.
# jax.numpy.sinc's cancelling rule: 1.5e3× at x = 1e-4 in float32, 2.4e5× at 1e-7 in float64.
UNSTABLE = SLACK**3
_EPS64 = float(np.finfo(np.float64).eps)
CONDITION_DRAWS = 2
JITTER_DRAWS = 2  # Context.float64_stability: draws of its smooth step, the condition in float64
JITTER_STEP = 2.0**-20
NEIGHBOUR_STEP = 2.0**-40  # Context._rounding_at_neighbours: a relative step of 4096 ulps
_TINY = {float(jnp.finfo(d).eps): float(jnp.finfo(d).tiny)
         for d in (jnp.bfloat16, jnp.float16, jnp.float32, jnp.float64)}
CONDITION_SEED = 20261128

# The points of the float32 reruns that estimate float64 rounding: x, and x·(1 ± 2⁻¹²) (rounded to
# float32 apart from x's own rounding, so at one of them a rerun that rounds exactly by chance is rare).
ROUNDING_POINTS = (1.0, 1.0 + 2.0**-12, 1.0 - 2.0**-12)


def _leaf_scales(V: list) -> list:
    """Per leaf, the largest finite ``|entry|`` of its VJPs over every cotangent of the batch ``V``."""
    out = []
    for leaf in range(len(V[0]) if V else 0):
        m = 0.0
        for vs in V:
            a = np.abs(np.asarray(vs[leaf], np.float64))
            a = a[np.isfinite(a)]
            if a.size:
                m = max(m, float(np.max(a)))
        out.append(m)
    return out


def _attempt(thunk):
    try:
        return thunk()
    except Exception as err:  # noqa: BLE001 - handed to the caller, raised where it is used
        return err


def _value(v):
    if isinstance(v, BaseException):
        raise v
    return v


def make_context(problem: Problem, fd: str, seed: int, programs: Programs | None = None) -> Context:
    """Linearise f once (its VJP closure), upcast the primal, compute steps and each leaf's eps."""
    vjp_fn = lambda g: jax.vjp(problem.F, list(problem.x))[1](g)
    out_dtypes = [o.dtype for o in problem.out]
    x64 = [np.asarray(xi, np.float64) for xi in problem.x]
    steps = [step_sizes(xi, p.dtype, fd) for xi, p in zip(x64, problem.x)]
    eps = [eps_of(p.dtype, *out_dtypes) for p in problem.x]
    return Context(problem, fd, np.random.default_rng(seed), vjp_fn, x64, steps, eps,
                   programs=programs if programs is not None else Programs(),
                   inline_f0=inline_f0(problem, fd))
