"""``python -m fnnet verify``: the table, and a failing rule turns the verdict and the exit code."""
import os
import pathlib
import shutil
import subprocess

import jax
import jax.numpy as jnp
import pytest

import fnnet
from fnnet import verify


def test_verify_table_rows_and_verdicts():
    """A few primitives of each kind (elementwise, with variants, two arguments, a reduction); the
    full table is what `make run` prints, and tests/test_primitives.py checks every primitive."""
    names = ["sigmoid", "gelu", "multiply", "softmax", "affine"]
    rows = verify.verify(names, gradcheck=True)
    assert {r.name.split()[0] for r in rows} == set(names)
    assert len(rows) == sum(len(fnnet.get(n).variants) for n in names)
    assert all(r.passed for r in rows), verify.format_table(rows)
    assert all(r.gradcheck is not None and r.gradcheck.passed for r in rows)
    assert f"{len(rows)} passed, 0 failed" in verify.format_table(rows)
    assert "gradcheck f32" in verify.format_table(rows)


def test_verify_main_exit_code(capsys, monkeypatch):
    # main() adds compiler flags to XLA_FLAGS (for a backend not started yet): keep them out of later tests
    monkeypatch.setenv("XLA_FLAGS", os.environ.get("XLA_FLAGS", ""))
    assert verify.main(["sigmoid", "relu"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("checking 3 primitives and variants")  # sigmoid's two, relu
    assert "gradcheck" not in out[1]  # the checker's column only with --gradcheck
    rows = [line.split() for line in out[3:6]]
    assert [r[0] for r in rows] == ["sigmoid", "sigmoid", "relu"]  # rows in registry order
    assert all(r[-1] == "PASS" for r in rows) and len(rows[-1]) == 4  # relu, two errors, the verdict
    assert out[-2].startswith("3 passed, 0 failed in ")
    assert out[-1].startswith("verify: OK, all 3 ")
    assert verify.main(["relu", "--no-gradcheck"]) == 0  # the old spelling of the default
    assert "gradcheck" not in capsys.readouterr().out.splitlines()[1]
    assert verify.main(["relu", "--gradcheck"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert "gradcheck f32" in out[1], out
    cells = out[3].split()
    assert cells[0] == "relu" and cells[-2:] == ["ok", "PASS"] and len(cells) == 7, out  # + (a) (b) (c)


def test_verdict_names_the_failing_rows():
    rows = [verify.Row("good", 0.0, 0.0), verify.Row("bad", 1.0, 0.0)]
    assert verify.verdict(rows) == "verify: FAILED, 1 of 2 rows: bad"


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
    row = verify.check_primitive(prim, {}, jax.random.key(0), gradcheck=True)
    assert not row.passed
    assert row.err_autodiff > 1.0 and row.err_fd > 1.0
    assert not row.gradcheck.passed  # the full checker sees it too, and the table prints its report
    assert "gradcheck FAILED" in verify.format_table([row])


def test_unknown_primitive_is_a_value_error_naming_it_and_the_cli_exits_2(capsys, monkeypatch):
    monkeypatch.setenv("XLA_FLAGS", os.environ.get("XLA_FLAGS", ""))  # as in test_verify_main_exit_code
    with pytest.raises(ValueError, match=r"fnnet.verify: argument 'names' .* got unknown nope \(known: .*sigmoid"):
        verify.verify(["sigmoid", "nope"])
    from fnnet.__main__ import main

    assert main(["verify", "nope"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("python -m fnnet verify: fnnet.verify: ") and "nope" in err


def test_verify_flags_a_wrong_rule_in_the_second_argument_alone():
    # x·y with the cotangent of y doubled: all arguments share one program, each judged on its own block.
    from fnnet.primitive import define

    prim = define(
        "_wrong_mul_y",
        forward=lambda x, y: x * y,
        bwd=lambda res, g: (g * res[1], 2 * g * res[0]),
        jvp=lambda p, t, out: t[0] * p[1] + 2 * t[1] * p[0],
        reference=lambda x, y: x * y,
        arg_names=("x", "y"),
        register=False,
    )
    row = verify.check_primitive(prim, {}, jax.random.key(0), gradcheck=False)
    assert not row.passed
    assert row.err_autodiff > 0.4 and row.err_fd > 0.4


def test_only_the_xla_switches_this_jaxlib_knows_are_used():
    """An unknown flag in XLA_FLAGS aborts a process and an unknown compile option is an error (jaxlib
    0.11 dropped xla_cpu_use_fusion_emitters): verify keeps the ones that work and drops the rest."""
    bogus = "--xla_fnnet_no_such_switch=true"
    assert verify.usable_xla_flags(["--xla_backend_optimization_level=0", bogus]) == [
        "--xla_backend_optimization_level=0"
    ]
    from fnnet.check import programs

    exe = programs.compile_with(jax.jit(lambda v: v * 2).lower(1.0), programs.run_once_options())
    assert float(exe(1.0)) == 2.0  # an option this XLA refuses is dropped, the others compile
    options = programs.run_once_options() or {}
    assert set(options) <= set(verify.COMPILER_OPTIONS)
    if jax.default_backend() == "cpu":
        assert "xla_backend_optimization_level" in options
        jax.jit(lambda v: v * 2).lower(1.0).compile(options)  # every kept option compiles as given


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
@pytest.mark.parametrize("test_flags,caller_flags,expected", [
    ("", None, ""),  # a jaxlib that knows none of the switches, or `make test TEST_XLA_FLAGS=`
    ("--xla_a=1", None, "--xla_a=1"),
    ("", "--xla_b=2", "--xla_b=2"),
    ("--xla_a=1", "--xla_b=2", "--xla_a=1 --xla_b=2"),
])
def test_make_test_sets_xla_flags_without_stray_spaces(tmp_path, test_flags, caller_flags, expected):
    """XLA reads an XLA_FLAGS that does not start with "--" as a file name and aborts the process: a
    lone space (an empty switch list joined to an empty caller's list) crashed every pytest worker."""
    stub = tmp_path / "py"  # stands in for the venv's python: prints what pytest would have been given
    stub.write_text('#!/bin/sh\nprintf "[%s]" "$XLA_FLAGS"\n')
    stub.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "MAKEFLAGS", "MAKELEVEL")}
    if caller_flags is not None:
        env["XLA_FLAGS"] = caller_flags
    root = pathlib.Path(__file__).resolve().parents[1]
    out = subprocess.run(
        ["make", "-s", "-o", ".venv/.installed-test", "-o", ".venv/.installed", "test", f"PY={stub}",
         f"TEST_XLA_FLAGS={test_flags}"],
        cwd=root, env=env, capture_output=True, text=True, check=True,
    ).stdout
    assert out == f"[{expected}]"
