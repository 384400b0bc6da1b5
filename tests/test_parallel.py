"""fnnet.parallel on 8 host devices: each layout's step equals the one-device step.

The device count of the CPU platform is fixed when jax is imported, and tests/conftest.py imports jax
first, so the multi-device work runs in a subprocess: this file run as a script
(``XLA_FLAGS=--xla_force_host_platform_device_count=8 python tests/test_parallel.py``) prints one JSON
line of measurements, and the tests below assert on it.

Tolerance: a sharded gradient is the one-device gradient summed in another order (per-shard partial
sums, then an all-reduce). Reordering a float32 sum of n terms moves it by at most about
log2(n)·ε·Σ|terms| ≈ 8 · 6e-8 · Σ|terms| here; measured norm-wise (‖Δ‖/‖g‖, per leaf) it is ~1e-7.
The tests ask for 1e-6 relative, which leaves room for that and fails on any real error (a missing
or doubled all-reduce is off by a factor of 8 or 2, a wrong shard by O(1)).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

N_DEVICES = 8
RTOL = 1e-6


def _worker() -> dict:
    """Runs in the subprocess: one-device reference, then every layout, errors as JSON."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    jax.config.update("jax_numpy_dtype_promotion", "strict")
    from fnnet import layers, parallel, train

    assert jax.device_count() == N_DEVICES, jax.devices()
    sizes = [12, 32, 32, 16, 10]  # hidden widths divisible by the model axis (4 and 8)
    batch = 64
    kp, kx, ky = jax.random.split(jax.random.key(0), 3)
    params = layers.init_mlp(kp, sizes, dtype=jnp.float32)
    x = jax.random.normal(kx, (batch, sizes[0]), jnp.float32)
    labels = jax.random.randint(ky, (batch,), 0, sizes[-1])
    lr = 0.1

    def rel_err(a, b):
        """Worst over leaves of ‖a − b‖ / ‖b‖."""
        errs = jax.tree_util.tree_map(
            lambda u, v: float(np.linalg.norm(np.asarray(u, np.float64) - np.asarray(v, np.float64))
                               / max(np.linalg.norm(np.asarray(v, np.float64)), 1e-30)),
            a, b,
        )
        return max(jax.tree_util.tree_leaves(errs))

    # One device: the plain jit of the same loss and gradient, everything on device 0.
    vg = jax.value_and_grad(train.loss_fn)
    dev0 = jax.devices()[0]
    ref_loss, ref_grads = jax.jit(vg)(*jax.device_put((params, x, labels), dev0))
    ref_new = jax.tree_util.tree_map(lambda p, g: p - lr * g, params, ref_grads)

    # The gradient really comes from fnnet's hand rules: the loss is made of custom_vjp calls named
    # after fnnet's primitives (under jax.grad their bwd is inlined, so look at the forward's jaxpr).
    jaxpr = str(jax.make_jaxpr(train.loss_fn)(params, x, labels))
    out = {"hand_rules": all(f"name={n}" in jaxpr for n in ("affine", "relu"))}

    loss_and_grads = {"jax.grad": None}
    results, errors = {}, {}
    loss_and_grads["hand backprop"] = train.loss_and_grad

    mesh8 = parallel.make_mesh((N_DEVICES,), ("data",))
    mesh24 = parallel.make_mesh((2, 4), ("data", "model"))
    mesh18 = parallel.make_mesh((1, 8), ("data", "model"))
    layouts = {
        "data": lambda: (mesh8, parallel.data_parallel(mesh8, params)),
        "hidden 2x4": lambda: (mesh24, parallel.hidden_sharded(mesh24, params)),
        "hidden 1x8": lambda: (mesh18, parallel.hidden_sharded(mesh18, params)),
    }
    for lg_name, lg in loss_and_grads.items():
        try:
            results.update(_run_layouts(parallel, lg_name, lg, layouts, mesh8, params, x, labels, lr,
                                        ref_loss, ref_grads, ref_new, rel_err))
        except Exception as e:  # noqa: BLE001 - reported to the test that owns this competitor
            errors[lg_name] = f"{type(e).__name__}: {e}"
    out["errors"] = errors
    out["results"] = results
    return out


def _run_layouts(parallel, lg_name, lg, layouts, mesh8, params, x, labels, lr, ref_loss, ref_grads,
                 ref_new, rel_err):
    results = {}
    for name, make in layouts.items():
        mesh, layout = make()
        step = parallel.sgd_step(layout, lr, lg)
        placed = layout.place(params, x, labels)
        compiled = step.lower(*placed).compile()  # compiled once: run it, and read its HLO
        new, loss, grads = compiled(*placed)
        hlo = compiled.as_text()
        w0, w1 = grads[0]["W"], grads[1]["W"]
        results[f"{lg_name} / {name}"] = {
            "loss": abs(float(loss) - float(ref_loss)) / abs(float(ref_loss)),
            "grads": rel_err(grads, ref_grads),
            "params": rel_err(new, ref_new),
            "devices": len(w0.sharding.device_set),
            "w0_spec": list(w0.sharding.spec),
            "w1_spec": list(w1.sharding.spec),
            # How much of W0 one device holds: 1/(model-axis size) when sharded.
            "w0_local_fraction": w0.addressable_shards[0].data.size / w0.size,
            # The collectives XLA inserted: a hidden-sharded step must all-reduce partial products and
            # must not all-gather the weights (that would be replication in disguise).
            "all_reduce": hlo.count(" all-reduce(") + hlo.count(" all-reduce-start("),
            "all_gather": hlo.count(" all-gather(") + hlo.count(" all-gather-start("),
        }
    step = parallel.data_parallel_shard_map(mesh8, lr, lg)
    new, loss, grads = step(*parallel.data_parallel(mesh8, params).place(params, x, labels))
    results[f"{lg_name} / shard_map"] = {
        "loss": abs(float(loss) - float(ref_loss)) / abs(float(ref_loss)),
        "grads": rel_err(grads, ref_grads),
        "params": rel_err(new, ref_new),
        "devices": len(grads[0]["W"].sharding.device_set),
    }
    return results


@pytest.fixture(scope="module")
def report():
    env = dict(os.environ)
    env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + f" --xla_force_host_platform_device_count={N_DEVICES}").strip()
    env["JAX_PLATFORMS"] = "cpu"
    proc = subprocess.run(
        [sys.executable, os.path.abspath(__file__)], env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, f"worker failed:\n{proc.stdout}\n{proc.stderr}"
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_gradient_comes_from_hand_rules(report):
    assert report["hand_rules"], "the jaxpr of the step holds no custom_vjp call of dense and relu"


def _check_matches(report, competitor):
    assert competitor not in report["errors"], report["errors"][competitor]
    results = {k: v for k, v in report["results"].items() if k.startswith(competitor + " / ")}
    assert {f"{competitor} / {n}" for n in ("data", "hidden 2x4", "hidden 1x8", "shard_map")} == set(results)
    for name, r in results.items():
        assert r["devices"] == N_DEVICES, (name, r)
        for what in ("loss", "grads", "params"):
            assert r[what] <= RTOL, f"{name}: {what} differs from one device by {r[what]:.2e} (relative)"


def test_every_layout_matches_one_device(report):
    """jax.grad through fnnet's custom_vjp rules, in every layout."""
    _check_matches(report, "jax.grad")


def test_hand_backprop_matches_one_device(report):
    """fnnet.train's explicit hand backprop as the step's loss_and_grad, in every layout."""
    _check_matches(report, "hand backprop")


def test_layouts_really_shard(report):
    """Guard against a vacuous pass: the layouts must place the arrays as documented."""
    r = report["results"]
    data, h24, h18 = r["jax.grad / data"], r["jax.grad / hidden 2x4"], r["jax.grad / hidden 1x8"]
    assert data["w0_local_fraction"] == 1.0  # replicated
    assert h24["w0_spec"] == ["model", None] and h24["w1_spec"] == [None, "model"]
    assert h24["w0_local_fraction"] == pytest.approx(1 / 4)
    assert h18["w0_local_fraction"] == pytest.approx(1 / 8)
    for r in (data, h24, h18):
        assert r["all_reduce"] >= 1 and r["all_gather"] == 0, r


def test_hidden_sharded_rejects_indivisible_width():
    import jax
    import jax.numpy as jnp
    from fnnet import layers, parallel

    mesh = parallel.make_mesh((1, 1), ("data", "model"))
    params = layers.init_mlp(jax.random.key(0), [3, 5, 2], dtype=jnp.float32)
    parallel.hidden_sharded(mesh, params)  # axis size 1 divides everything
    with pytest.raises(ValueError, match="needs 8 devices"):
        parallel.make_mesh((8,), ("data",), devices=jax.devices()[:1])
    fake = type("M", (), {"axis_names": ("data", "model"), "shape": {"data": 1, "model": 4}})()
    with pytest.raises(ValueError, match=r"params\[0\]\['W'\] has 5 output units, not divisible by the 4"):
        parallel.hidden_sharded(fake, params)


if __name__ == "__main__":
    print(json.dumps(_worker()))
