"""Test configuration: float64 available (tests choose dtypes explicitly), strict dtype promotion.

Strict promotion makes a silent float32 -> float64 mix an error instead of a hidden upcast, so a rule
that returns the wrong dtype is caught where it happens.
"""
import jax
import pytest

jax.config.update("jax_enable_x64", True)
jax.config.update("jax_numpy_dtype_promotion", "strict")


@pytest.fixture
def key():
    return jax.random.key(0)
