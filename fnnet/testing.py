"""Checking custom gradients in a test suite: a pytest fixture and hypothesis strategies.

pytest (the fixture asserts, and pytest's short summary shows the report's one-line summary)::

    # conftest.py
    pytest_plugins = ["fnnet.testing"]

    # test_rules.py
    def test_my_rule(gradcheck):
        gradcheck(my_rule, x)                       # options as fnnet.gradcheck; returns the report

hypothesis (a test extra: imported only when a strategy is asked for)::

    from fnnet.testing import arrays, gradcheck_property

    test_my_rule_everywhere = gradcheck_property(my_rule, arrays(dtype="float32", special=(0.0,)))

``gradcheck_property`` returns a test function that checks ``my_rule`` at hypothesis-drawn inputs
(random shapes and values, including the special points the rule was written for) and reports the
smallest failing input hypothesis finds.
"""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture
def gradcheck():
    """A callable ``gradcheck(f, *args, **options)`` that fails the test with the report when the check fails."""
    from fnnet.check import assert_gradcheck

    def check(f, *args, **options):
        __tracebackhide__ = True  # noqa: F841
        return assert_gradcheck(f, *args, **options)

    return check


def _hypothesis():
    try:
        import hypothesis
        import hypothesis.extra.numpy as hnp
        import hypothesis.strategies as st
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError("fnnet.testing strategies need hypothesis (pip install 'fnnet[test]')") from err
    return hypothesis, hnp, st


def arrays(shape=None, dtype="float32", *, min_value: float = -4.0, max_value: float = 4.0, special=(0.0,),
           max_dims: int = 2, max_side: int = 5):
    """A hypothesis strategy of JAX arrays for gradient checks.

    ``shape``: a tuple, a strategy of tuples, or None (any shape with up to ``max_dims`` axes of up to
    ``max_side`` entries). Values are finite floats in ``[min_value, max_value]``, representable in
    ``dtype``; each entry is replaced by one of ``special`` (the points a custom rule is usually written
    for: 0, a removable singularity, a domain edge) with probability 1/4.
    """
    _, hnp, st = _hypothesis()
    import jax.numpy as jnp

    np_dtype = np.dtype(dtype)
    width = 8 * np_dtype.itemsize
    shapes = hnp.array_shapes(min_dims=0, max_dims=max_dims, min_side=1, max_side=max_side) if shape is None else (
        shape if hasattr(shape, "example") else st.just(tuple(shape)))
    values = st.floats(min_value, max_value, allow_nan=False, allow_infinity=False, width=min(width, 64))
    if special:
        values = st.one_of(values, values, values, st.sampled_from([float(s) for s in special]))
    return shapes.flatmap(lambda s: hnp.arrays(np_dtype, s, elements=values)).map(jnp.asarray)


def gradcheck_property(f, *strategies, max_examples: int = 10, shrink: bool = True, **options):
    """A test function checking ``f`` with :func:`fnnet.gradcheck` at inputs drawn from ``strategies``.

    One strategy per positional argument of f. ``options`` go to gradcheck. Each new shape compiles
    new programs (~0.3 s), so keep ``max_examples`` small or fix the shape; ``shrink=False`` reports
    the first failing input instead of searching for a smaller one (each step of that search is a
    gradient check).
    """
    hypothesis, _, st = _hypothesis()
    from fnnet.check import assert_gradcheck

    phases = [p for p in hypothesis.Phase if shrink or p != hypothesis.Phase.shrink]

    @hypothesis.settings(max_examples=max_examples, deadline=None, derandomize=True, database=None,
                         suppress_health_check=list(hypothesis.HealthCheck), phases=phases)
    @hypothesis.given(st.tuples(*strategies))
    def test(args):
        __tracebackhide__ = True  # noqa: F841
        assert_gradcheck(f, *args, **options)

    test.__name__ = f"test_gradcheck_{getattr(f, '__name__', 'f')}"
    return test
