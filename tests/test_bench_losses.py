"""``python -m benchmarks losses``: the targets line read from results, and a dry run of ``--quick``.

No timing is asserted (shared, loaded machines): the dry run checks that the script runs as a user runs
it (its own process), that every ratio it prints and writes is a positive finite number, that no loss
errored, and that it ends with the targets line. It runs against the losses' references, which are
always there (optax is not one of fnnet's dependencies).
"""
from __future__ import annotations

import importlib.util
import json
import math
import os
import pathlib
import subprocess
import sys

import pytest

from test_bench_dropin import _ratios, _tables

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _rec(fwd_bwd, fwd=1.0, eager=1.0, compile_=1.0, shape="8x4"):
    return {"shapes": {shape: {"fwd_bwd": {"ratio": fwd_bwd}, "fwd": {"ratio": fwd}}},
            "eager": {"ratio": eager}, "compile": {"ratio": compile_}}


def test_targets_line_names_each_miss_and_lists_forward_alone_apart():
    from benchmarks import losses

    assert losses.targets_line({"l2_loss": _rec(1.0), "squared_error": _rec(1.05)}).endswith(
        "met by all 2 losses")
    line = losses.targets_line({"l2_loss": _rec(1.06, fwd=1.3), "squared_error": _rec(0.9, compile_=1.25),
                                "sigmoid_binary_cross_entropy": _rec(1.0, eager=1.21)})
    head, fwd = line.split("; ")
    assert head.startswith("TARGETS (jit fwd+bwd ≤ 1.05×, eager ≤ 1.2×, compile ≤ 1.2×): missed by 3/3 losses: ")
    for miss in ("l2_loss jit fwd+bwd 8x4 1.06×", "squared_error compile 1.25×",
                 "sigmoid_binary_cross_entropy eager 1.21×"):
        assert miss in head, (miss, line)
    assert fwd == "jit fwd alone above 1.05× (not a target): l2_loss jit fwd 8x4 1.30×"
    line = losses.targets_line({"l2_loss": {"error": "ValueError: x"}, "squared_error": _rec(1.0)})
    assert line.endswith("missed by 0/2 losses; 1 errored: l2_loss")


def test_runs_are_read_on_their_medians(capsys):
    from benchmarks import losses

    runs = [{"l2_loss": _rec(r, compile_=c), "squared_error": _rec(1.0)}
            for r, c in ((1.02, 1.3), (1.09, 1.1), (0.98, 1.0))]
    runs[1]["squared_error"] = {"error": "ValueError: boom"}
    med = losses.median_results(runs)
    assert med["l2_loss"]["shapes"]["8x4"]["fwd_bwd"] == {"ratios_of_runs": [1.02, 1.09, 0.98], "ratio": 1.02}
    assert med["l2_loss"]["compile"] == {"ratios_of_runs": [1.3, 1.1, 1.0], "ratio": 1.1}
    assert med["squared_error"]["error"] == "ValueError: boom"  # an error in any run is kept
    line = losses.targets_line(med)
    assert line.endswith("missed by 0/2 losses; 1 errored: squared_error"), line  # 1.30 alone is no miss
    losses.print_medians(med, 3, "optax")
    (header, rows), = _tables(capsys.readouterr().out)
    assert header == ["loss", "8x4 fwd+bwd", "8x4 fwd", "eager", "compile"]
    assert rows[0] == ["l2_loss", "1.02 (0.98–1.09)", "1.00 (1.00–1.00)", "1.00 (1.00–1.00)",
                       "1.10 (1.00–1.30)"]
    assert rows[1][:2] == ["squared_error", "ERROR: ValueError: boom"]


@pytest.mark.skipif(importlib.util.find_spec("optax") is not None, reason="optax is installed here")
def test_against_optax_without_optax_says_how_to_get_it():
    from benchmarks import losses

    with pytest.raises(SystemExit, match="pip install optax"):
        losses.competitor("optax")
    name, theirs = losses.competitor("auto")
    assert name.startswith("reference") and theirs("l2_loss") is losses.L.l2_loss.reference


@pytest.mark.slow  # ~20 s of compilation: run with `make test-slow`
def test_bench_losses_quick_dry_run(tmp_path):
    out = tmp_path / "losses.json"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "JAX_PLATFORMS": os.environ.get("JAX_PLATFORMS", "cpu")}
    names = ["softmax_cross_entropy_with_integer_labels", "l2_loss"]
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks", "losses", "--quick", "--against", "reference",
         "--losses", ",".join(names), "--shapes", "64x8,8x3", "--json", str(out)],
        capture_output=True, text=True, timeout=300, cwd=ROOT, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "ERROR" not in proc.stdout, proc.stdout
    (header, rows), = _tables(proc.stdout)
    assert header[:5] == ["loss", "64x8 fwd+bwd", "8x3 fwd+bwd", "64x8 fwd", "8x3 fwd"], header
    assert [r[0] for r in rows] == names
    for r in rows:
        assert len(r) == len(header)
        for j in (1, 2, 3, 4, header.index("eager"), header.index("compile")):
            v = float(r[j])
            assert math.isfinite(v) and v > 0, (header[j], r)
    assert proc.stdout.strip().splitlines()[-1].startswith("TARGETS (jit fwd+bwd ≤ 1.05×")

    data = json.loads(out.read_text())
    assert data["meta"]["competitor"].startswith("reference")
    assert set(data["results"]) == set(names)
    found = list(_ratios(data["results"]))
    assert len(found) == len(names) * 6, found  # 2 shapes × (fwd+bwd, fwd), eager, compile
    for path, v in found:
        assert math.isfinite(v) and v > 0, (path, v)


def test_branch_benchmark_compiles_both_forms_and_prints_a_row_each():
    """``python -m benchmarks branch``: each op compiled with its gate at 0 (a cond on XLA:CPU) and
    out of reach (none), softmax and log_softmax also with the one-kernel gate at 0 (a cond, whose
    predicate reads the output's first column), the gates restored after, and one table row per op
    and shape with positive finite ratios."""
    import jax

    import fnnet._numerics as numerics
    from benchmarks import branch

    before = (numerics.BRANCH_MIN_BYTES, numerics.LOSS_BRANCH_MIN_BYTES, numerics.ONE_KERNEL_MIN_SLICES,
              numerics.ONE_KERNEL_MAX_SLICE)
    far = {branch.ONE_KERNEL: branch.OUT_OF_REACH}
    for op, gate in branch.OPS.items():
        args = branch.op_inputs(op, (8, 16))
        fa, _, _ = branch.op_functions(op, "reference")
        on = branch.compiled_with_gate(fa, gate, 0, args, **far).as_text()
        off = branch.compiled_with_gate(fa, gate, branch.OUT_OF_REACH, args, **far).as_text()
        assert (" conditional(" in on) == numerics._branch_backend()
        assert " conditional(" not in off
        if op in branch.ACTIVATIONS:
            one = branch.compiled_with_gate(fa, branch.ONE_KERNEL, 0, args,
                                            **{branch.ONE_KERNEL_LONGEST: branch.OUT_OF_REACH}).as_text()
            assert (" conditional(" in one) == numerics._branch_backend()
            assert ("slice(" in one) == numerics._branch_backend()  # the first column, read by the predicate
    assert (numerics.BRANCH_MIN_BYTES, numerics.LOSS_BRANCH_MIN_BYTES, numerics.ONE_KERNEL_MIN_SLICES,
            numerics.ONE_KERNEL_MAX_SLICE) == before
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks", "branch", "--ops", ",".join(branch.OPS), "--shapes", "8x16",
         "--against", "reference", "--repeats", "2"],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=True).stdout
    rows = [r for r in out.splitlines() if r.startswith("| ") and not r.startswith("| op")]
    assert len(rows) == len(branch.OPS)
    for r in rows:
        cells = [c.strip() for c in r.strip("|").split("|")]
        assert cells[1] == "8x16"
        for v in cells[-3 if cells[0] in branch.ACTIVATIONS else -2:]:
            assert math.isfinite(float(v)) and float(v) > 0
        if cells[0] not in branch.ACTIVATIONS:
            assert cells[-3] == "–"
