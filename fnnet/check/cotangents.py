"""The output-space directions of a check: basis cotangents for a small output, random signs otherwise.

When f's float outputs have ``M <= basis_limit`` entries in total, the cotangents are the ``M`` basis
vectors, so comparing VJPs entrywise compares the *whole Jacobian*, entry by entry. Above that,
``cotangents`` random-sign (Rademacher) vectors are used: a wrong Jacobian entry ``J_mi`` shows up in
entry ``i`` of the VJP with weight ``|g_m| = 1``, so a single wrong Jacobian entry is always seen and
several wrong entries of one column cancel in all ``k`` of them with probability ``<= 2^-k`` (see
:mod:`fnnet.check.tolerance`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .problem import Problem
from .report import index_text, unravel


@dataclass
class Cotangents:
    """A list of cotangents (each a list of numpy arrays, one per float output leaf) and labels."""

    values: list
    labels: list
    basis: bool


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
                labels.append(problem.out_labels[j] + index_text(unravel(k, o.shape)))
        return Cotangents(values, labels, True)
    values = [rademacher(problem.out, rng) for _ in range(count)]
    return Cotangents(values, [f"random ±1 #{k}" for k in range(count)], False)


def rademacher(like: list, rng: np.random.Generator) -> list:
    """Independent random signs shaped like each array in ``like`` (float64)."""
    return [rng.choice(np.array([-1.0, 1.0]), size=np.shape(a)) for a in like]


def scalar_output(problem: Problem) -> bool:
    """Whether f's float outputs hold a single entry (its cotangent is then 1, not a random sign)."""
    return sum(int(np.prod(o.shape)) for o in problem.out) == 1
