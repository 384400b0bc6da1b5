"""Dry run of ``python -m benchmarks dropin --quick``: it runs, prints parsable tables, writes sane JSON.

No timing is asserted (the machines that run the suite are shared and loaded): only that every ratio
the script reports is a positive finite number, in its markdown tables and in its --json output, that
no op errored, and that it ends with a one-line verdict. A subprocess, so that the script is run the
way a user runs it (its own process, its own jax configuration: no float64, default promotion).
"""
from __future__ import annotations

import json
import math
import os
import pathlib
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fnnet

ROOT = pathlib.Path(__file__).resolve().parents[1]
OPS = ["relu", "softmax"]


def _tables(stdout: str) -> list[tuple[list[str], list[list[str]]]]:
    """The markdown tables in stdout: (header, rows)."""
    tables, lines = [], stdout.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("|---"):
            header = [c.strip() for c in lines[i - 1].strip("|").split("|")]
            rows = []
            for ln in lines[i + 1:]:
                if not ln.startswith("| "):
                    break
                rows.append([c.strip() for c in ln.strip("|").split("|")])
            tables.append((header, rows))
    return tables


def _ratios(obj, path=""):
    """Every number stored under a key ending in 'ratio' in the JSON results."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            if k.endswith("ratio") and not isinstance(v, (dict, list)):
                yield f"{path}.{k}", v
            else:
                yield from _ratios(v, f"{path}.{k}")


@pytest.mark.slow  # ~40 s of compilation: run with `make test-slow`
def test_bench_dropin_quick_dry_run(tmp_path):
    out = tmp_path / "dropin.json"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "JAX_PLATFORMS": os.environ.get("JAX_PLATFORMS", "cpu")}
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks", "dropin", "--quick", "--ops", ",".join(OPS), "--mlp-acts", "relu",
         "--json", str(out)],
        capture_output=True, text=True, timeout=300, cwd=ROOT, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "ERROR" not in proc.stdout, proc.stdout

    tables = _tables(proc.stdout)
    assert len(tables) == 4  # eager, jit, compile, MLP memory
    for header, rows in tables:
        expected = ["relu"] if header[0] == "activation" else OPS
        assert [r[0] for r in rows] == expected, (header, rows)
        ratio_cols = [j for j, h in enumerate(header) if "ratio" in h]
        assert ratio_cols, header
        for r in rows:
            assert len(r) == len(header), (header, r)
            for j in ratio_cols:
                v = float(r[j])
                assert math.isfinite(v) and v > 0, (header[j], r)
    assert proc.stdout.strip().splitlines()[-1].startswith("VERDICT: drop-in at no cost: ")
    assert proc.stdout.strip().splitlines()[-2].startswith("TARGETS (eager 16 ≤ 1.2×")

    data = json.loads(out.read_text())
    assert set(data["results"]) == {"eager", "jit", "compile", "mlp"}
    ratios = dict(_ratios(data["results"]))
    # 2 ops x (eager 16, eager n, jit fwd+bwd, jit fwd, compile) + MLP temp and arg+out
    assert len(ratios) == 2 * 5 + 2, sorted(ratios)
    for where, v in ratios.items():
        assert isinstance(v, float) and math.isfinite(v) and v > 0, (where, v)
    for rec in data["results"]["eager"].values():
        assert rec["max_rel_diff"] < 1e-5  # the two compute the same thing
    mlp = data["results"]["mlp"]["relu"]
    for side in ("fnnet", "jax"):
        assert mlp[side]["temp_size_in_bytes"] > 0 and mlp[side]["argument_size_in_bytes"] > 0
    assert data["meta"]["fnnet_file"].startswith(str(ROOT))
    assert data["verdict"] == proc.stdout.strip().splitlines()[-1]
    assert data["targets"] == proc.stdout.strip().splitlines()[-2]


def _results(**ratios):
    """A results dict as the script stores it: label -> {measure: ratio} for a few measures."""
    keys = {"eager 16": ("eager", "small"), "eager n": ("eager", "large"),
            "jit fwd+bwd": ("jit", "fwd_bwd"), "jit fwd": ("jit", "fwd"), "compile": ("compile", "compile")}
    out = {"eager": {}, "jit": {}, "compile": {}, "mlp": {}}
    for label, measures in ratios.items():
        for measure, r in measures.items():
            if measure == "mlp":
                out["mlp"][label] = {"temp_ratio": r}
                continue
            section, key = keys[measure]
            out[section].setdefault(label, {})[key] = {"ratio": r}
    return out


def test_targets_line_names_each_miss_and_keeps_the_accurate_forms_apart():
    from benchmarks import dropin

    met = _results(relu={"eager 16": 1.19, "jit fwd+bwd": 1.05, "compile": 1.2, "mlp": 1.0})
    assert "met by all 1 rows outside the accurate forms" in dropin.targets_line(met)

    line = dropin.targets_line(_results(
        relu={"eager 16": 1.0, "jit fwd+bwd": 1.06, "compile": 1.0},
        softmax={"eager n": 1.0, "jit fwd+bwd": 1.0, "jit fwd": 1.3, "compile": 1.21},
        tanh={"mlp": 1.5},
        silu={"jit fwd+bwd": 1.4, "compile": 1.5}))
    held, _, rest = line.partition("; accurate forms")
    assert "missed by 3/3 rows outside the accurate forms" in held
    for miss in ("relu jit fwd+bwd 1.06×", "softmax compile 1.21×", "tanh MLP temp bytes 1.50×"):
        assert miss in held
    assert "silu" not in held and "silu jit fwd+bwd 1.40×" in rest and "silu compile 1.50×" in rest
    # a forward-only ratio is listed, as information, not as a miss
    assert "softmax jit fwd 1.30×" in rest and "softmax jit fwd 1.30×" not in held
    # an opt-in accurate variant (timed only when named) is reported with the accurate forms
    line = dropin.targets_line(_results(glu={"jit fwd+bwd": 1.0}, **{"glu(exact_tails=True)": {"jit fwd+bwd": 1.09}}))
    held, _, rest = line.partition("; accurate forms")
    assert "met by all 1 rows" in held and "glu(exact_tails=True) jit fwd+bwd 1.09×" in rest


def test_opt_in_variants_time_fnnet_s_option_against_jax_nn_s_function():
    from benchmarks import dropin

    x = jax.random.normal(jax.random.key(0), (4, 8)) * 12
    for label, (name, kw) in dropin.OPT_IN.items():
        fa, fb, _ = dropin.resolve(label)
        assert fb is getattr(jax.nn, name)
        gf = jax.grad(lambda x, fa=fa: jnp.sum(fa(x)))(x)
        np.testing.assert_array_equal(gf, jax.grad(lambda x: jnp.sum(getattr(fnnet, name)(x, **kw)))(x))
    assert "glu(exact_tails=True)" not in dropin.all_labels()  # never timed by default


def test_torch_rows_time_fnnet_against_the_jax_nn_formula():
    from benchmarks import dropin

    x = jax.random.normal(jax.random.key(1), (4, 8)) * 3
    fa, fb, transform = dropin.resolve("softmin")
    assert transform(x) is x
    np.testing.assert_allclose(fa(x), jax.nn.softmax(-x, axis=-1), rtol=1e-6)
    np.testing.assert_array_equal(fb(x), jax.nn.softmax(-x, axis=-1))
    np.testing.assert_array_equal(fa(x), fnnet.softmin(x, dim=-1))
    assert "softmin" not in dropin.all_labels()  # jax.nn has none: never timed by default


@pytest.mark.slow  # two processes of compilation: run with `make test-slow`
def test_bench_dropin_runs_dry_run(tmp_path):
    out = tmp_path / "runs.json"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "JAX_PLATFORMS": os.environ.get("JAX_PLATFORMS", "cpu")}
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks", "dropin", "--quick", "--ops", "relu", "--mlp-acts", "relu",
         "--sections", "jit,mlp", "--runs", "2", "--json", str(out)],
        capture_output=True, text=True, timeout=300, cwd=ROOT, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("## Run ") == 2 and "## All 2 runs" in proc.stdout
    header, rows = _tables(proc.stdout.split("## All 2 runs")[1])[0]
    assert header == ["op", "jit fwd+bwd", "jit fwd"] and [r[0] for r in rows] == ["relu"]
    data = json.loads(out.read_text())
    assert len(data["runs"]) == 2 and len(data["meta"]) == 2
    rec = data["results"]["jit"]["relu"]["fwd_bwd"]
    assert len(rec["ratios_of_runs"]) == 2 and rec["ratio"] == pytest.approx(sum(rec["ratios_of_runs"]) / 2)
    assert rows[0][1].startswith(f"{rec['ratio']:.2f} (")
    lines = proc.stdout.strip().splitlines()
    assert lines[-2] == data["targets"] and lines[-1] == data["verdict"]


def test_the_experiment_runs_the_same_benchmark():
    # experiments/dropin_cost.py is the drop-in benchmark under experiments/ (same options, same tables)
    import importlib

    assert importlib.import_module("experiments.dropin_cost").main is importlib.import_module("benchmarks.dropin").main


def test_runs_are_read_on_their_medians():
    from benchmarks import dropin

    runs = [_results(relu={"jit fwd+bwd": r, "compile": 1.0, "mlp": 1.0}, softmax={"jit fwd+bwd": 1.0})
            for r in (1.02, 1.09, 0.98)]
    runs[1]["jit"]["softmax"] = {"error": "ValueError: boom"}
    med = dropin.median_results(runs)
    assert med["jit"]["relu"]["fwd_bwd"] == {"ratios_of_runs": [1.02, 1.09, 0.98], "ratio": 1.02}
    assert med["jit"]["softmax"]["error"] == "ValueError: boom"  # an error in any run is kept
    assert med["mlp"] == {"relu": {"temp_ratio": 1.0}}
    line = dropin.targets_line(med)
    assert "relu" not in line.partition("; ")[0] and "1 errored: softmax" in line


def test_runs_pass_every_other_option_to_each_process():
    from benchmarks import _timing

    argv = ["--ops", "relu", "--runs", "3", "--json=x.json", "--repeats", "5", "--json", "y.json", "--runs=2"]
    assert _timing.without_options(argv, ("--runs", "--json")) == ["--ops", "relu", "--repeats", "5"]


H200 = ROOT / "benchmarks" / "gpu_targets" / "h200.pbtxt"


def _has_cuda_plugin() -> bool:
    import importlib.util

    return any(importlib.util.find_spec(m) is not None for m in ("jax_cuda12_plugin", "jax_cuda13_plugin"))


def test_gpu_target_config_compiles_only_and_names_what_it_needs(capsys, monkeypatch):
    """--gpu-target-config compiles for the described GPU without running anything: other sections
    are refused by name; a missing file is named; without jax's CUDA plugin the error says what to
    install (with it, the compile section runs and names the target in its title)."""
    from benchmarks import dropin

    monkeypatch.setattr(fnnet._numerics, "TARGET_BACKEND", None)  # restored after: a GPU compile sets it
    with pytest.raises(SystemExit):
        dropin.main(["--sections", "jit,compile", "--ops", "relu", "--gpu-target-config", str(H200)])
    assert "sections compile and phases only, got jit" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        dropin.main(["--sections", "compile", "--ops", "relu", "--gpu-target-config", "no/such.pbtxt"])
    assert "no file no/such.pbtxt" in capsys.readouterr().err
    if _has_cuda_plugin():
        assert dropin.main(["--sections", "compile", "--ops", "relu", "--compile-repeats", "1",
                            "--gpu-target-config", str(H200)]) == 0
        assert "compiled for NVIDIA H200 (deviceless)" in capsys.readouterr().out
        assert fnnet._numerics.TARGET_BACKEND == "gpu"
    else:
        with pytest.raises(SystemExit, match=r'pip install "jax\[cuda12\]=='):
            dropin.main(["--sections", "compile", "--ops", "relu", "--gpu-target-config", str(H200)])
        assert fnnet._numerics.TARGET_BACKEND is None  # refused before any rule was traced for the GPU
