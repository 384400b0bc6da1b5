"""Test configuration: float64 available (tests choose dtypes explicitly), strict dtype promotion.

Strict promotion makes a silent float32 -> float64 mix an error instead of a hidden upcast, so a rule
that returns the wrong dtype is caught where it happens.

tests/ is not a package: pytest puts it on sys.path (its default "prepend" import mode), so the
registry suites import their shared data as ``import oracles`` (tests/oracles.py: one record per op).
"""
import jax
import pytest

jax.config.update("jax_enable_x64", True)
jax.config.update("jax_numpy_dtype_promotion", "strict")


@pytest.fixture
def key():
    return jax.random.key(0)
