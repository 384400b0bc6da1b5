"""Smoke tests of the lecture experiments (the ``experiments`` package): their core functions on tiny
sizes.

No figure is drawn: each experiment's ``run`` (or a piece of it) is called and the claim it prints is
asserted, so an experiment that stops supporting its claim fails here, not only in a figure nobody
looks at. The computations need no matplotlib (only the figure test does, and skips without it), so
they run in `make test`. Total well under 15 s on 2 cores.
"""
from __future__ import annotations

import importlib
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

# The experiments import matplotlib only to draw; their computations run without it.

EXPERIMENTS_DIR = pathlib.Path(__file__).resolve().parents[1] / "experiments"


def _load(name):
    return importlib.import_module(f"experiments.{name}")


# ---------------------------------------------------------------------------------------------
# 1. linear stacks
# ---------------------------------------------------------------------------------------------


def test_linear_stack_collapses_to_one_affine_map():
    ls = _load("linear_stack")
    from fnnet import layers

    params = layers.init_mlp(jax.random.key(0), [2, 16, 16, 3], dtype=jnp.float64)
    W, b = ls.collapse(params)
    W1, W2, W3 = (p["W"] for p in params)
    b1, b2, b3 = (p["b"] for p in params)
    np.testing.assert_array_equal(W, W3 @ (W2 @ W1))  # the same association: bitwise
    np.testing.assert_allclose(b, W3 @ (W2 @ b1) + W3 @ b2 + b3, rtol=1e-15, atol=1e-15)
    e = ls.collapse_error(params, jax.random.key(1))
    # Each entry of W3 W2 W1 or of net(x) is a sum of at most 16·16 rounded products, reassociated
    # between the two sides: a relative difference of a few dozen ε at worst (measured: ~4 ε).
    assert e["jacobian"] < 64 * e["eps"]
    assert e["map"] < 64 * e["eps"]


@pytest.mark.slow  # two trainings: ~5 s of compiling on a quiet machine
def test_linear_network_cannot_fit_xor_tanh_can():
    ls = _load("linear_stack")
    r = ls.run(n=200, hidden=(8,), epochs=(40,), lr=0.1, datasets=("xor",), activations=(None, "tanh"))
    # A line separates at most 3 of xor's 4 blobs: ≤ 75% plus the few noisy points near the centre.
    assert r["fits"][("xor", None)]["train_acc"] < 0.8
    assert r["fits"][("xor", "tanh")]["train_acc"] > 0.95


# ---------------------------------------------------------------------------------------------
# 2. threshold
# ---------------------------------------------------------------------------------------------


def test_threshold_gradient_is_exactly_zero_sigmoid_learns():
    ts = _load("threshold_stall")
    r = ts.run(steps=30, n=40, hidden=4)
    step, sig = r["unit"]["step"], r["unit"]["sigmoid"]
    assert np.all(step["grad_norm"] == 0.0)
    assert step["loss"][0] == step["loss"][-1]
    assert np.all(sig["grad_norm"] > 0.0)
    assert sig["loss"][-1] < 0.5 * sig["loss"][0]
    # MLP: the hidden layer below the threshold never gets a gradient; the readout does.
    assert np.all(r["mlp"]["step"]["grad_norm"][:, 0] == 0.0)
    assert r["mlp"]["step"]["hidden_moved"] == 0.0
    assert np.all(r["mlp"]["step"]["grad_norm"][:, 1] > 0.0)
    assert r["mlp"]["sigmoid"]["hidden_moved"] > 0.0


# ---------------------------------------------------------------------------------------------
# 3. tanh = 2σ(2z) − 1
# ---------------------------------------------------------------------------------------------


def test_tanh_sigmoid_identity_to_machine_precision():
    ti = _load("tanh_sigmoid_identity")
    r = ti.run(n=401, n_truth=41)
    for name, res in r.items():
        # Each form is within ~1.5 ULP of its value (≤ 1 in absolute terms: ≤ 1.5 ε); their
        # difference within the sum, 3 ε; measured 2.5 ε (float32) and 2 ε (float64).
        assert res["diff"].max() <= 4.0, name
        assert res["ddiff"].max() <= 4.0, name
        # The identity is absolute, not relative: near z = 0 the sigmoid form cancels.
        assert res["rel_sig"][0] > 1e3, name


# ---------------------------------------------------------------------------------------------
# 4, 5. hard tanh's linear region; dead units get exactly zero gradient
# ---------------------------------------------------------------------------------------------


def test_hard_tanh_linear_fraction():
    ht = _load("hard_tanh_vs_tanh")
    from fnnet import layers

    small = [{"W": 0.01 * p["W"], "b": p["b"]} for p in layers.init_mlp(jax.random.key(0), [2, 8, 8, 2])]
    x = np.linspace(-1.0, 1.0, 20, dtype=np.float32).reshape(10, 2)
    assert ht.linear_fraction(small, x) == 1.0
    big = [{"W": 100.0 * p["W"], "b": p["b"]} for p in layers.init_mlp(jax.random.key(0), [2, 8, 8, 2])]
    assert ht.linear_fraction(big, x) < 0.5


@pytest.mark.parametrize("activation, dead_grad_zero", [("relu", True), ("leaky_relu", False), ("swish", False)])
def test_never_active_unit_gets_zero_gradient_only_for_relu(activation, dead_grad_zero):
    dr = _load("dead_relu")
    from fnnet import layers

    params = layers.init_mlp(jax.random.key(0), [3, 6, 2])
    # Unit 2: |W x| ≤ 3 for |x_j| ≤ 1 (Glorot entries ≤ 1), so b = −5 gives z ≤ −2 for every input,
    # deep enough to be inactive, shallow enough that swish' = σ(z)(1 + zσ(−z)) is far from underflow.
    params[0]["b"] = params[0]["b"].at[2].set(-5.0)
    x = jax.random.uniform(jax.random.key(1), (16, 3), jnp.float32, -1.0, 1.0)
    y = jnp.arange(16, dtype=jnp.int32) % 2
    masks = dr.inactive_masks(params, x, activation)
    assert masks[0].tolist() == [i == 2 for i in range(6)]
    g = dr.dead_gradient(params, x, y, activation, masks)
    assert (g == 0.0) == dead_grad_zero


# ---------------------------------------------------------------------------------------------
# 7, 8. Jacobians; backprop on the graph
# ---------------------------------------------------------------------------------------------


def test_jacobian_structure_and_values():
    jc = _load("jacobians")
    r = jc.run(n=4, m=3)
    # float64, entries O(1), each a handful of products: hand rules vs jax.jacrev agree to ~ε.
    for name, e in r["err"].items():
        assert e <= 16 * np.finfo(np.float64).eps, name
    assert r["nonzero"]["tanh"] == 4  # diagonal
    assert r["nonzero"]["softmax"] == 16  # dense
    assert r["nonzero"]["dense wrt W"] == 3 * 4  # of 3 × 12: one block per row
    assert r["shape"].shape == (3, 4) and r["row"].shape == (1, 12)


def test_backprop_graph_order_and_gradients():
    bg = _load("backprop_graph")
    r = bg.run(batch=4, n_in=3, hidden=5, n_classes=3)
    g = r["graph"]
    seen = set(g.inputs)
    for name in r["order"]:
        assert set(g.node(name).inputs) <= seen, name
        seen.add(name)
    assert r["declared"] != r["order"]  # the sort had work to do
    for name, e in r["err"].items():
        # Same math, different association of sums: a few ε of the largest gradient entry.
        assert e["relative"] <= 32 * e["eps"], name


# ---------------------------------------------------------------------------------------------
# 9. finite differences: the V
# ---------------------------------------------------------------------------------------------


def test_gradcheck_steps_follow_the_error_model():
    gs = _load("gradcheck_steps")
    r = gs.run(n=161)["float64"]
    h = r["h"]
    # Truncation side (rounding negligible there): slopes 1 (forward) and 2 (central) on log-log.
    sel = (h > 1e-3) & (h < 1e-1)
    for method, slope in (("forward", 1.0), ("central", 2.0)):
        fit = np.polyfit(np.log10(h[sel]), np.log10(r["err"][method][sel]), 1)[0]
        assert abs(fit - slope) < 0.25, (method, fit)
    # The central optimum is within a factor 10 of (3ε|f|/|f'''|)^(1/3), and better than forward's.
    h_star = r["theory"]["central"][0]
    assert h_star / 10 < r["best"]["central"][0] < 10 * h_star
    assert r["best"]["richardson"][1] < r["best"]["central"][1] < r["best"]["forward"][1]
    # Complex step: no subtraction, so no rounding blow-up as h → 0.
    assert r["complex_floor"] <= 4 * r["eps"] * abs(r["truth"])


# ---------------------------------------------------------------------------------------------
# run_all
# ---------------------------------------------------------------------------------------------


def test_run_all_lists_every_experiment_and_skips_missing_packages(monkeypatch, capsys, tmp_path):
    ra = _load("run_all")
    assert set(ra.EXPERIMENTS) == {
        p.stem for p in EXPERIMENTS_DIR.glob("*.py") if p.stem in ra.EXPERIMENTS
    }
    for name in ra.EXPERIMENTS:
        assert (EXPERIMENTS_DIR / f"{name}.py").exists(), name
    common = _load("_common")
    monkeypatch.setattr(common, "missing", lambda requires: list(requires))
    assert ra.main(["--only", "jacobians,activation_zoo", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "activation_zoo: skipped, needs matplotlib, sklearn" in out
    assert "pip install matplotlib scikit-learn" in out
    assert not list(tmp_path.iterdir())
    with pytest.raises(SystemExit):
        ra.main(["--only", "no_such_experiment"])


# ---------------------------------------------------------------------------------------------
# figures: written where they do not dirty the checkout, the same bytes every time
# ---------------------------------------------------------------------------------------------


def test_runs_write_untracked_figures_by_default():
    C = _load("_common")
    assert C.parser("doc").parse_args([]).out == C.OUT_DIR
    assert C.OUT_DIR.relative_to(C.ROOT).parts[0] == "build"  # ignored by .gitignore
    assert "build/" in (C.ROOT / ".gitignore").read_text().split()
    assert "default=C.OUT_DIR" in (EXPERIMENTS_DIR / "run_all.py").read_text()  # run_all's --out too


def test_a_figure_saved_twice_is_the_same_bytes(tmp_path):
    pytest.importorskip("matplotlib")
    C = _load("_common")
    plt = C.pyplot()
    paths = []
    for name in ("a.png", "b.png"):
        fig, ax = plt.subplots(figsize=(2, 2))
        ax.plot([0, 1, 2], [1, 0, 1], label="x")
        ax.legend()
        paths.append(C.save(fig, tmp_path / name))
    data = [p.read_bytes() for p in paths]
    assert data[0] == data[1]
    assert b"Software" not in data[0]  # no matplotlib version in the file


def test_ablation_counts_kernels_and_triton_kernels_in_the_entry_computation():
    ablation = _load("activation_ablation")
    text = "\n".join([
        "%fused_computation (p: f32[4]) -> f32[4] {",
        "  %x = f32[4] fusion(%p), kind=kLoop, calls=%inner",  # inside a fused computation: not counted
        "}",
        "ENTRY %main (a: f32[4]) -> f32[] {",
        '  %f1 = f32[4] fusion(%a), kind=kLoop, calls=%fused_computation',
        '  %f2 = f32[] fusion(%f1), kind=kCustom, calls=%r, backend_config={"kind":"__triton"}',
        '  %c = f32[] custom-call(%f2), custom_call_target="x"',
        "  ROOT %t = (f32[]) tuple(%c)",
        "}",
    ])
    assert ablation._kernels(text) == (3, 1)


@pytest.mark.slow  # compiles 21 gradient programs twice: ~30 s
def test_compile_ablation_prints_a_positive_time_and_kernel_count_per_variant(capsys):
    ablation = _load("activation_ablation")
    ablation.compile_ablation(repeats=1)
    rows = [line.split() for line in capsys.readouterr().out.splitlines()[2:]]
    variants = {" ".join(r[:-4]) for r in rows}
    assert {"mish fnnet, plain derivative", "silu fnnet, plain derivative", "logsumexp jax.nn",
            "logsumexp fnnet reference, autodiff", "logsumexp fnnet, arithmetic shift"} <= variants
    for r in rows:
        ms, ratio, kernels, triton = float(r[-4]), float(r[-3]), int(r[-2]), int(r[-1])
        assert ms > 0 and ratio > 0 and kernels >= 1 and 0 <= triton <= kernels, r


def test_backend_forms_prints_every_form_with_positive_times(capsys, monkeypatch):
    """The forms experiment (docs/design.md, rule (8)) on this machine: every variant of the chosen
    ops gets a positive compile and run time and at least one kernel (no timing is asserted)."""
    forms = _load("backend_forms")
    monkeypatch.setattr("sys.argv", ["backend_forms", "--ops", "logsumexp,standardize", "--repeats", "1",
                                     "--runs", "1"])
    forms.main()
    rows = [line.split() for line in capsys.readouterr().out.splitlines()[2:]]
    names = {" ".join(r[:-6]) for r in rows}
    assert names == {"logsumexp jax.nn", "logsumexp shift select", "logsumexp shift arith",
                     "logsumexp shift difference", "logsumexp shift difference, sign guard",
                     "standardize jax.nn", "standardize sums stacked", "standardize sums apart"}, names
    for r in rows:
        c, cr, t, tr, k, triton = (float(v) for v in r[-6:])
        assert c > 0 and cr > 0 and t > 0 and tr > 0 and k >= 1 and 0 <= triton <= k, r


def test_backend_forms_names_an_unknown_op_and_the_known_ones(capsys, monkeypatch):
    """--ops with a name the experiment does not time is a usage error that lists the known ops, not
    a KeyError from inside."""
    forms = _load("backend_forms")
    monkeypatch.setattr("sys.argv", ["backend_forms", "--ops", "softmax,log_softmax"])
    with pytest.raises(SystemExit) as exc:
        forms.main()
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "--ops: unknown log_softmax" in err and "softmax" in err.split("the ops are", 1)[1], err


def test_backend_forms_sign_guard_is_the_library_difference_form():
    """The candidate guard the forms experiment times (c·sign|x| where x − m is NaN) gives the library's
    difference form's values, so the device measures a form fnnet could adopt: rows with ties at +inf
    and −inf, an all −inf row, NaN beside ±inf and beside finite entries, ±0, over the last axis and
    over every axis; bit for bit but for a NaN's sign."""
    import fnnet._numerics as N

    forms = _load("backend_forms")
    inf, nan = np.inf, np.nan
    x = jnp.asarray([[1.0, inf, inf, -2.0], [-inf, -inf, -inf, -inf], [nan, inf, 0.0, -inf],
                     [0.0, -0.0, nan, 3.0], [-inf, 5.0, -inf, 5.0], [2.0, -1.0, 0.5, 2.0]], jnp.float32)
    for axes in ((1,), (0, 1)):
        m = jax.lax.reduce_max(x, axes)
        ours = np.asarray(forms._difference_sign_guard(x, m, axes))
        lib = np.asarray(N._shift_difference(x, m, axes))
        np.testing.assert_array_equal(np.isnan(ours), np.isnan(lib))
        ok = ~np.isnan(lib)
        np.testing.assert_array_equal(ours[ok].view(np.uint32), lib[ok].view(np.uint32))


def test_backend_forms_weight_has_the_output_shape():
    """The cotangent the forms experiment multiplies f(x) by has f(x)'s shape: a scalar for a scalar
    output (logsumexp over every axis), not the whole input-sized array broadcast against it."""
    forms = _load("backend_forms")
    w = jnp.arange(12.0).reshape(3, 4)
    assert forms.weight_like(w, ()).shape == ()
    assert forms.weight_like(w, (3,)).shape == (3,)
    np.testing.assert_array_equal(forms.weight_like(w, (3, 4)), w)
