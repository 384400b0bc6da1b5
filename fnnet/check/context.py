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
    _sampler: object = None
    _rule: object = None
    _ref64: object = None
    _reflow: object = None
    _entry_sampler: object = None

    # ---- rule and reference -------------------------------------------------------------------
    # Each VJP is one jit-compiled function of (x, g), compiled once and reused for every cotangent:
    # far cheaper than eager evaluation, which compiles every primitive separately.
    def rule(self, g, raw: bool = False) -> list:
        """f's VJP (its custom rule, if any) at the inputs' dtype, as float64 numpy arrays.

        ``raw=True`` returns the arrays as the VJP produced them (for the shape/dtype check).
        """
        if self._rule is None:
            self._rule = _vjp_function(self.problem.F)
        gs = [jnp.asarray(gi, dtype=o.dtype) for gi, o in zip(g, self.problem.out)]
        v = self._rule(list(self.problem.x), gs)
        return v if raw else [np.asarray(vi, np.float64) for vi in v]

    def eager_rule(self, g) -> list:
        """The same VJP evaluated op by op, without jit."""
        gs = [jnp.asarray(gi, dtype=o.dtype) for gi, o in zip(g, self.problem.out)]
        (v,) = self.vjp_fn(gs)
        return [np.asarray(vi, np.float64) for vi in v]

    def reference64(self, g) -> list | None:
        """jax.vjp of the reference with every float input and the cotangent upcast to float64."""
        if self.problem.R64 is None:
            return None
        with float64_scope():
            if self._ref64 is None:
                self._ref64 = _vjp_function(self.problem.R64)
            x = [jnp.asarray(xi) for xi in self.x64]
            v = self._ref64(x, [jnp.asarray(np.asarray(gi, np.float64)) for gi in g])
            return [np.asarray(vi, np.float64) for vi in v]

    def reference_lowp(self, g) -> list | None:
        """jax.vjp of the reference at the inputs' own dtypes (to measure its rounding)."""
        if self.problem.R is None:
            return None
        if self._reflow is None:
            self._reflow = _vjp_function(self.problem.R)
        gs = [jnp.asarray(gi, dtype=o.dtype) for gi, o in zip(g, self.problem.out)]
        return [np.asarray(vi, np.float64) for vi in self._reflow(list(self.problem.x), gs)]

    # ---- finite differences -------------------------------------------------------------------
    def sample(self, dirs, gs):
        """phi samples along a batch of directions (see differences.make_sampler)."""
        with float64_scope():
            if self._sampler is None:
                self._sampler = make_sampler(self.problem.F64, self.fd)
            x = [jnp.asarray(xi) for xi in self.x64]
            d = [jnp.asarray(np.asarray(di, np.float64)) for di in dirs]
            g = [jnp.asarray(np.asarray(gi, np.float64)) for gi in gs]
            s, m = self._sampler(x, d, g)
            return np.asarray(s, np.float64), np.asarray(m, np.float64)

    def sample_entries(self, leaf: int, idx, cots: list):
        """phi samples along ``h_i e_i`` of one leaf for each cotangent in ``cots``."""
        with float64_scope():
            if self._entry_sampler is None:
                self._entry_sampler = make_entry_sampler(self.problem.F64, self.fd)
            x = [jnp.asarray(xi) for xi in self.x64]
            idx = np.asarray(idx, np.int64)
            h = self.steps[leaf].reshape(-1)[idx]
            g = [jnp.asarray(np.stack([np.asarray(c[j], np.float64) for c in cots])) for j in range(len(cots[0]))]
            s, m = self._entry_sampler(x, leaf, jnp.asarray(idx), jnp.asarray(h), g)
            return np.asarray(s, np.float64), np.asarray(m, np.float64)


def _vjp_function(F):
    """``jit((x, g) -> VJP of F at x applied to g)``."""
    return jax.jit(lambda x, g: list(jax.vjp(F, x)[1](g)[0]))


def make_context(problem: Problem, fd: str, seed: int) -> Context:
    """Linearise f once (its VJP closure), upcast the primal, compute steps and each leaf's eps."""
    vjp_fn = lambda g: jax.vjp(problem.F, list(problem.x))[1](g)  # noqa: E731 - eager, on demand
    out_dtypes = [o.dtype for o in problem.out]
    x64 = [np.asarray(xi, np.float64) for xi in problem.x]
    steps = [step_sizes(xi, p.dtype, fd) for xi, p in zip(x64, problem.x)]
    eps = [eps_of(p.dtype, *out_dtypes) for p in problem.x]
    return Context(problem, fd, np.random.default_rng(seed), vjp_fn, x64, steps, eps)


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
