"""Test configuration: float64 available (tests choose dtypes explicitly), strict dtype promotion.

Strict promotion makes a silent float32 -> float64 mix an error instead of a hidden upcast, so a rule
that returns the wrong dtype is caught where it happens.

tests/ is not a package: pytest puts it on sys.path (its default "prepend" import mode), so the
registry suites import their shared data as ``import oracles`` (tests/oracles.py: one record per op).
"""
import os
import pathlib

# One persistent XLA compilation cache for the run, shared by the pytest-xdist workers and inherited by
# the subprocesses some tests start: the suite compiles many identical programs (the same op at the same
# shape from several suites, in both workers), and a cache hit skips only XLA's compilation of an
# identical HLO module (the key covers the module, the flags, the backend and jax's version), never
# tracing, so no test sees a different program. An existing JAX_COMPILATION_CACHE_DIR is respected.
_CACHE = pathlib.Path(__file__).resolve().parent.parent / "build" / "test-xla-cache"
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", str(_CACHE))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")

import jax  # noqa: E402  (after the cache settings, which jax reads when it is imported)
import numpy as np  # noqa: E402
import pytest  # noqa: E402

jax.config.update("jax_enable_x64", True)
jax.config.update("jax_numpy_dtype_promotion", "strict")


@pytest.fixture
def key():
    return jax.random.key(0)


@pytest.fixture
def with_gates(monkeypatch):
    """``with_gates(fn, *args, NAME=value, ...)``: ``fn(*args)`` as NumPy arrays (a pytree of them) with
    each attribute ``NAME`` of fnnet._numerics set to ``value`` (a gate such as BRANCH_MIN_BYTES, or
    TARGET_BACKEND). The rules read their gates when they are traced, so the compiled programs are
    cleared before the test's first call and before every call whose gates differ from the previous
    call's (and after the test, with the attributes restored): consecutive calls with the same gates
    share their traces, as any program under fixed settings does. An unknown name is an error, not a
    silently ignored setting."""
    import fnnet._numerics as numerics
    previous = []  # the gates of this test's previous call, under which the cached traces were made

    def run(fn, *args, **gates):
        for name, value in gates.items():
            monkeypatch.setattr(numerics, name, value, raising=True)
        if previous != [gates]:
            jax.clear_caches()
            previous[:] = [dict(gates)]
        return jax.tree.map(np.asarray, fn(*args))

    yield run
    monkeypatch.undo()
    jax.clear_caches()
