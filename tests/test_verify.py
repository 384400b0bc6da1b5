"""``python -m fnnet verify``: the table, and a failing rule turns the verdict and the exit code."""
import jax.numpy as jnp
import jax

import fnnet
from fnnet import verify


def test_verify_table_lists_every_primitive_and_passes():
    rows = verify.verify()
    names = {r.name.split()[0] for r in rows}
    assert names == set(fnnet.registry())
    assert all(r.passed for r in rows), verify.format_table(rows)
    assert "0 failed" in verify.format_table(rows)


def test_verify_flags_a_wrong_rule():
    # sin with the sign of its derivative flipped: both comparisons must see it.
    from fnnet.primitive import define

    prim = define(
        "_wrong_sin",
        forward=jnp.sin,
        bwd=lambda res, g: (-g * jnp.cos(res[0]),),
        jvp=lambda p, t, out: -t[0] * jnp.cos(p[0]),
        reference=jnp.sin,
        elementwise=True,
        register=False,
    )
    row = verify.check_primitive(prim, {}, jax.random.key(0))
    assert not row.passed
    assert row.err_autodiff > 1.0 and row.err_fd > 1.0
