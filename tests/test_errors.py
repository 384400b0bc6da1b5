"""The bad-input table: each case checks the exception's type and that its message names the argument,
what was expected and what was received. docs/reference/errors.md lists the same cases.

No case may surface as an XLA error or a silent broadcast: fnnet checks shapes and dtypes while the
function is traced (once per shape and dtype), before any computation.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import pytest

import fnnet
from fnnet import layers, ops

W35 = {"W": jnp.ones((3, 5)), "b": jnp.ones(3)}


def _mlp_params():
    return layers.init_mlp(jax.random.key(0), [3, 4, 2])


# (id, call, exception type, fragments the message must contain)
CASES = [
    # ----- dense, mlp, init
    ("dense-x-shape", lambda: layers.dense(W35, jnp.ones((7, 4))), ValueError, ["x", "(7, 4)", "(3, 5)"]),
    ("dense-missing-W", lambda: layers.dense({"b": jnp.ones(3)}, jnp.ones(5)), KeyError, ["'W'", "keys present", "'b'"]),
    ("dense-int-x", lambda: layers.dense(W35, jnp.ones((2, 5), jnp.int32)), TypeError, ["'x'", "floating", "int32"]),
    ("dense-b-shape", lambda: layers.dense({"W": jnp.ones((3, 5)), "b": jnp.ones(4)}, jnp.ones(5)), ValueError, ["'b'", "(3,)", "(4,)"]),
    ("dense-W-1d", lambda: layers.dense({"W": jnp.ones(5), "b": jnp.ones(3)}, jnp.ones(5)), ValueError, ["'W'", "2-D", "(5,)"]),
    ("dense-params-list", lambda: layers.dense([jnp.ones((3, 5))], jnp.ones(5)), TypeError, ["params", "dict", "list"]),
    ("init-mlp-sizes", lambda: layers.init_mlp(jax.random.key(0), [3]), ValueError, ["sizes", "[3]"]),
    ("init-dense-negative", lambda: layers.init_dense(jax.random.key(0), -1, 3), ValueError, ["n_in", "positive", "-1"]),
    ("init-mlp-int-sizes", lambda: layers.init_mlp(jax.random.key(0), 4), TypeError, ["sizes", "list", "int 4"]),
    ("init-dense-int-key", lambda: layers.init_dense(0, 4, 3), TypeError, ["key", "PRNG key", "int 0"]),
    ("mlp-flax-layout-W", lambda: layers.mlp([{"W": jnp.ones((4, 3)), "b": jnp.ones(3)}], jnp.ones((2, 4))), ValueError, ["(n_in, n_out)", "Flax", "W.T"]),
    ("mlp-activation", lambda: layers.mlp(_mlp_params(), jnp.ones((2, 3)), activation="nope"), ValueError, ["activation", "'nope'", "known"]),
    ("mlp-x-shape", lambda: layers.mlp(_mlp_params(), jnp.ones((2, 5))), ValueError, ["x", "(2, 5)", "(4, 3)"]),
    # ----- ops: broadcasting and axes
    ("add-broadcast", lambda: ops.add(jnp.ones((3, 4)), jnp.ones(5)), ValueError, ["(3, 4)", "(5,)", "broadcast"]),
    ("multiply-broadcast", lambda: ops.multiply(jnp.ones((2, 3)), jnp.ones((3, 2))), ValueError, ["(2, 3)", "(3, 2)"]),
    ("matmul-contract", lambda: ops.matmul(jnp.ones((3, 4)), jnp.ones((5, 2))), ValueError, ["(3, 4)", "(5, 2)", "4", "5"]),
    ("sum-axis", lambda: ops.sum(jnp.ones((3, 4)), axis=2), ValueError, ["axis 2", "ndim 2"]),
    # ----- activations
    ("activation-ragged", lambda: fnnet.sigmoid([[1.0], [2.0, 3.0]]), TypeError, ["'x'", "floating", "rectangular"]),
    ("activation-bool", lambda: fnnet.relu(jnp.ones(3, bool)), TypeError, ["'x'", "floating", "bool"]),
    ("activation-complex", lambda: fnnet.tanh(jnp.ones(3, jnp.complex64)), TypeError, ["'x'", "complex64"]),
    ("activation-string", lambda: fnnet.sigmoid("abc"), TypeError, ["'x'", "array", "'abc'"]),
    ("activation-unknown-kwarg", lambda: fnnet.sigmoid(jnp.ones(3), foo=1), TypeError, ["sigmoid", "foo"]),
    ("hyperparameter-type", lambda: fnnet.leaky_relu(jnp.ones(3), negative_slope="a"), TypeError, ["negative_slope", "real number", "'a'"]),
    ("hyperparameter-unhashable", lambda: fnnet.softmax(jnp.ones(3), axis=[0]), TypeError, ["axis", "hashable", "[0]"]),
    ("hyperparameter-bool", lambda: fnnet.gelu(jnp.ones(3), approximate=1.0), TypeError, ["approximate", "bool", "1.0"]),
    ("hyperparameter-traced", lambda: jax.jit(lambda x, a: fnnet.gelu(x, approximate=a))(jnp.ones(3), True), TypeError, ["approximate", "static", "traced"]),
    ("softmax-axis", lambda: fnnet.softmax(jnp.ones((3, 4)), axis=5), ValueError, ["axis 5", "ndim 2"]),
    ("glu-odd", lambda: fnnet.glu(jnp.ones((3, 5))), ValueError, ["axis -1", "even", "(3, 5)"]),
    ("prelu-weight", lambda: fnnet.prelu(jnp.ones((2, 3, 4)), jnp.ones(5)), ValueError, ["weight", "(5,)", "(2, 3, 4)"]),
    ("rrelu-no-key", lambda: fnnet.rrelu(jnp.ones(3), training=True), ValueError, ["key", "training=True", "None"]),
    # ----- gradcheck
    ("gradcheck-arity", lambda: fnnet.gradcheck(lambda x, y: (x * y).sum(), jnp.ones(3)), TypeError, ["cannot be called", "'y'"]),
    ("gradcheck-none-output", lambda: fnnet.gradcheck(lambda x: None, jnp.ones(3)), TypeError, ["None", "expected an array"]),
    ("gradcheck-reference-structure", lambda: fnnet.gradcheck(lambda x: (x, x), jnp.ones(3), reference=lambda x: x), ValueError, ["reference", "PyTreeDef", "must match"]),
    # ----- graph
    ("graph-cycle", lambda: fnnet.Graph([("a", fnnet.sigmoid, ["b"]), ("b", fnnet.tanh, ["a"])]), fnnet.GraphError, ["cycle", "a", "b"]),
    ("graph-duplicate", lambda: fnnet.Graph([("a", fnnet.sigmoid, ["x"]), ("a", fnnet.tanh, ["x"])]), fnnet.GraphError, ["duplicate", "'a'"]),
    ("graph-arity", lambda: fnnet.Graph([("a", ops.add, ["x"])]), fnnet.GraphError, ["'a'", "2 input", "got 1"]),
    ("graph-missing-input", lambda: fnnet.Graph([("a", fnnet.sigmoid, ["x"])]).forward({}), fnnet.GraphError, ["missing", "'x'", "'a'"]),
]


@pytest.mark.parametrize("call,exc,fragments", [pytest.param(c, e, f, id=i) for i, c, e, f in CASES])
def test_bad_input_raises_a_clear_error(call, exc, fragments):
    with pytest.raises(exc) as info:
        call()
    message = str(info.value)
    missing = [f for f in fragments if f not in message]
    assert not missing, f"message {message!r} lacks {missing}"
    assert "XlaRuntimeError" not in type(info.value).__name__


def test_the_table_has_at_least_25_cases():
    assert len(CASES) >= 25


def test_docs_errors_lists_every_case():
    import pathlib

    doc = (pathlib.Path(__file__).resolve().parents[1] / "docs" / "reference" / "errors.md").read_text()
    missing = [case_id for case_id, *_ in CASES if f"`{case_id}`" not in doc]
    assert not missing, (
        f"docs/reference/errors.md lacks {missing}: python experiments/errors_table.py > docs/reference/errors.md")


def test_docs_errors_md_is_what_its_generator_prints():
    """docs/reference/errors.md is generated (experiments/errors_table.py): it must not drift from the messages."""
    import pathlib
    import subprocess
    import sys

    root = pathlib.Path(__file__).resolve().parents[1]
    run = subprocess.run([sys.executable, str(root / "experiments" / "errors_table.py")], capture_output=True,
                         text=True, cwd=root, check=True)
    assert run.stdout == (root / "docs" / "reference" / "errors.md").read_text(), (
        "docs/reference/errors.md is stale: python experiments/errors_table.py > docs/reference/errors.md"
    )
