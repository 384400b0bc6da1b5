"""Smoke tests of the benchmarks (benchmarks/) on tiny configurations: the machinery runs and reports
what it says.

No timing is asserted (the machine is shared; timings are the benchmark's output, not a property).
What is asserted is structural and exact: the FLOP count, that every competitor is measured, that the
competitors compute the same step (so the benchmark compares like with like).
"""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import benchmarks
from benchmarks import _mlp, _timing, compile_time, gradcheck, memory, step, suite


def test_step_flops_counts_forward_dw_and_dx_but_not_the_data_gradient():
    # sizes 3-4-2, batch 5: per-layer 2·B·n_in·n_out = 120 and 80; forward + ∂W for both, ∂x for the second.
    assert step.step_flops([3, 4, 2], 5) == 2 * (120 + 80) + 80


def test_competitors_compute_the_same_step():
    """fnnet (hand rules under jax.grad), hand backprop (if present) and plain jax.grad agree."""
    args = _mlp.problem([12, 16, 16, 10], 8)
    outs = {k: jax.jit(s)(*args) for k, s in _mlp.make_steps().items()}
    assert set(outs) == {"fnnet", "jax", "hand"}
    ref_params, ref_loss = outs["jax"]
    for name, (params, loss) in outs.items():
        # float32 step; the two differentiations sum the same products in different orders, so they
        # agree to a few ulp of the gradient, scaled by lr = 0.01 in the update: 1e-5 is ~100 ulp of
        # the parameters (|p| ~ 0.5), far below any real error (a wrong rule moves p by ~lr·|g| ~ 1e-3).
        np.testing.assert_allclose(loss, ref_loss, rtol=1e-6, err_msg=name)
        for a, b in zip(jax.tree_util.tree_leaves(params), jax.tree_util.tree_leaves(ref_params)):
            np.testing.assert_allclose(a, b, rtol=0, atol=1e-5, err_msg=name)


# The two dry runs of whole benchmarks compile a dozen programs each (15 s of a cold suite): kept for
# `make test-slow`; the competitors' arithmetic is checked here by test_competitors_compute_the_same_step.
@pytest.mark.slow
def test_bench_step_tiny_reports_every_competitor():
    lines = []
    rows = step.bench_step(widths=(16,), batch=8, rounds=2, torch=False, min_seconds=0.0, out=lines.append)
    (row,) = rows
    assert row["width"] == 16 and row["sizes"] == [784, 16, 16, 16, 10]
    assert {"fnnet", "hand", "jax", "matmul"} <= set(row["ms"])
    assert "fnnet" in row["ratio"] and all(v > 0 for v in row["ratio"].values())
    assert row["flops"] == step.step_flops(row["sizes"], 8)
    assert len(lines) == 1 and "fnnet/jax" in lines[0]


@pytest.mark.slow
def test_bench_compile_tiny():
    rows = compile_time.bench_compile(depths=(1, 2), width=8, batch=4, repeats=1, unrolled=False, out=lambda s: None)
    assert {(r["layout"], r["model"]) for r in rows} == {("scan", "fnnet"), ("scan", "jax")}
    assert all(set(r["seconds"]) == {1, 2} and r["ratio"] > 0 for r in rows)


def test_deep_scan_model_matches_plain():
    """The scanned fnnet deep MLP and the plain one compute the same loss and gradient."""
    stacked = compile_time.init_stacked(jax.random.key(0), 3, 8)
    x = jax.random.normal(jax.random.key(1), (4, 8), jnp.float32)
    labels = jnp.array([0, 3, 7, 1])
    losses = compile_time.deep_losses()
    (lf, gf), (lj, gj) = (jax.value_and_grad(losses[k])(stacked, x, labels) for k in ("fnnet", "jax"))
    np.testing.assert_allclose(lf, lj, rtol=1e-6)
    # float32 gradients summed in different orders: agreement to ~10 ulp of the largest entry.
    for a, b in zip(jax.tree_util.tree_leaves(gf), jax.tree_util.tree_leaves(gj)):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-6 * float(jnp.max(jnp.abs(b))) * 10)


def test_bench_memory_tiny():
    (row,) = memory.bench_memory(widths=(16,), batch=8, out=lambda s: None)
    assert set(row["temp"]) == {"fnnet", "jax", "hand"}


def test_main_runs_and_rejects_unknown_benchmark(capsys, tmp_path):
    out = tmp_path / "m.json"
    assert benchmarks.main(["memory", "--widths", "16", "--batch", "8", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "python -m benchmarks memory --widths 16 --batch 8" in text
    assert out.exists()
    with pytest.raises(SystemExit):
        suite.main(["--only", "nonsense"])
    assert benchmarks.main(["nonsense"]) == 2
    err = capsys.readouterr().err
    assert "unknown benchmark 'nonsense'" in err and "step, compile, memory, gradcheck" in err


def test_bad_widths_say_what_is_expected(capsys):
    with pytest.raises(SystemExit) as e:
        benchmarks.main(["step", "--widths", "a"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "argument --widths: expected comma-separated positive integers" in err
    assert "invalid _ints value" not in err


def test_gradcheck_throughput_rows():
    lines = []
    rows = gradcheck.throughput(sizes=(20,), rounds=1, out=lines.append)
    assert [(r["mode"], r["n"]) for r in rows] == [("auto", 20), ("full", 20)]
    assert all(r["fresh_s"] > 0 and r["same_s"] > 0 for r in rows)
    assert "entries/s" in lines[0] and len(lines) == 3


def test_the_products_baseline_does_exactly_the_steps_matrix_flops():
    sizes, batch = [12, 16, 16, 10], 8
    xs, Ws, ds = step.products_args(sizes, batch)
    outs = step.matmuls_only(sizes, batch)(xs, Ws, ds)
    assert len(outs) == 3 * (len(sizes) - 1) - 1  # forward and ∂W per layer, ∂x for all but the first
    # each product (m, k) @ (k, n) is 2·m·k·n FLOPs; k is the contracted size
    flops = 0
    for i, (x, W, d) in enumerate(zip(xs, Ws, ds)):
        flops += 2 * x.shape[0] * x.shape[1] * W.shape[0]  # x Wᵀ
        flops += 2 * d.shape[1] * d.shape[0] * x.shape[1]  # δᵀ x
        if i > 0:
            flops += 2 * d.shape[0] * d.shape[1] * W.shape[1]  # δ W
    assert flops == step.step_flops(sizes, batch)


def test_summary_line_names_every_section_that_ran():
    results = {
        "step": [{"width": 16, "ratio": {"fnnet": 0.98}}, {"width": 64, "ratio": {"fnnet": 1.02}}],
        "memory": [{"ratio": {"fnnet": 1.0}}],
    }
    line = suite.summary(results, 12.3)
    assert line.startswith("bench done in 12 s: ")
    assert "fnnet step 0.98-1.02x jax.grad's time (w=16..64)" in line and "memory fnnet/jax 1.00-1.00" in line
    assert suite.summary({}, 1.0).endswith("nothing run")


def test_progress_is_drawn_on_a_terminal_and_erased_by_the_next_row(capsys):
    import io

    class Tty(io.StringIO):
        def isatty(self):
            return True

    tty = Tty()
    progress = _timing.Progress(tty)
    progress("w=128: compiling")
    progress("round 2/7")
    assert "w=128: compiling, round 2/7" in tty.getvalue()
    progress.out("  w=  128 | row")
    assert tty.getvalue().endswith("\r" + " " * 110 + "\r")  # erased before the row is printed
    assert capsys.readouterr().out == "  w=  128 | row\n"
    quiet = io.StringIO()  # not a terminal: nothing but the rows
    _timing.Progress(quiet)("w=128: compiling")
    assert quiet.getvalue() == ""


def test_report_answers_help_and_refuses_a_missing_file_argument(capsys):
    from benchmarks import report

    assert report.main(["--help"]) == 0
    assert capsys.readouterr().out.startswith("usage: python -m benchmarks report BENCH.json")
    assert report.main([]) == 2
    assert "usage:" in capsys.readouterr().err
