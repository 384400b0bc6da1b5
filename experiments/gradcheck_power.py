"""Detection and false-positive rates of gradient checkers on seeded VJP bugs.

    python experiments/gradcheck_power.py --quick     # N in {10, 1000}, 1 seed
    python experiments/gradcheck_power.py             # N in {10, 100, 1e3, 1e4, 1e5}, 3 seeds

Each case is a scalar loss of N inputs (float32 and float64) with a hand-written ``jax.custom_vjp``,
once correct and once with a seeded bug. Checkers: fnnet auto (reference = the undecorated primal),
fnnet auto with no reference (finite-difference probes only: the function is wrapped in jax.jit,
which hides ``.fun``), fnnet full (N <= 1e4), ``jax.test_util.check_grads(modes=["rev"])``, and
``torch.autograd.gradcheck`` fast and full (N <= 1e3; only if ``import torch`` works; torch runs the
same JAX forward and custom VJP through a ``torch.autograd.Function``). A cell is the fraction of
seeds flagged; the ``correct`` rows are false-positive rates.
"""

from __future__ import annotations

import argparse
import time
import warnings

import jax
import jax.numpy as jnp
import numpy as np

from fnnet.check import gradcheck


# ---- cases: make(n, dtype, bug, rng) -> (custom_vjp f, args) -----------------------------------
def _custom(primal, rule):
    f = jax.custom_vjp(primal)
    f.defvjp(lambda *a: (primal(*a), a), lambda a, g: rule(g, *a))
    return f


def entry(rel):
    def make(n, dtype, bug, rng):
        x = jnp.asarray(rng.standard_normal(n), dtype)
        k = int(rng.integers(n))

        def rule(g, x):
            y = jnp.tanh(x)
            v = g * 2 * y * (1 - y**2)
            return (v.at[k].multiply(1 + rel) if bug else v,)

        return _custom(lambda x: jnp.sum(jnp.tanh(x) ** 2), rule), (x,)

    return make


def leaf_factor(n, dtype, bug, rng):
    a, b = (jnp.asarray(rng.standard_normal(max(n // 2, 1)), dtype) for _ in range(2))

    def rule(g, a, b):
        da = g * (1 - jnp.tanh(a) ** 2) * b
        db = g * jnp.tanh(a) * (1.01 if bug else 1.0)
        return da, db

    return _custom(lambda a, b: jnp.sum(jnp.tanh(a) * b), rule), (a, b)


def sign_region(n, dtype, bug, rng):
    x = jnp.asarray(rng.standard_normal(n), dtype)
    m = max(1, n // 100)

    def rule(g, x):
        y = jnp.tanh(x)
        v = g * 2 * y * (1 - y**2)
        return (v.at[:m].multiply(-1.0) if bug else v,)

    return _custom(lambda x: jnp.sum(jnp.tanh(x) ** 2), rule), (x,)


def transpose(n, dtype, bug, rng):
    d = max(2, int(np.sqrt(n)))
    W = jnp.asarray(rng.standard_normal((d, d)) / np.sqrt(d), dtype)
    x = jnp.asarray(rng.standard_normal((4, d)), dtype)

    def rule(g, W, x):
        delta = g * (1 - jnp.tanh(x @ W) ** 2)
        dW = delta.T @ x if bug else x.T @ delta
        return dW, delta @ W.T

    return _custom(lambda W, x: jnp.sum(jnp.tanh(x @ W)), rule), (W, x)


def fan_out(n, dtype, bug, rng):
    x = jnp.asarray(rng.standard_normal(n), dtype)

    def rule(g, x):  # d/dx sum(tanh(x) x) = (1 - y^2) x + y; the bug drops the second path
        y = jnp.tanh(x)
        return (g * ((1 - y**2) * x + (0.0 if bug else y)),)

    return _custom(lambda x: jnp.sum(jnp.tanh(x) * x), rule), (x,)


def broadcast(n, dtype, bug, rng):
    d = max(1, n // 4)
    b = jnp.asarray(rng.standard_normal(d), dtype)
    x = jnp.asarray(rng.standard_normal((4, d)), dtype)

    def rule(g, b, x):
        delta = g * (1 - jnp.tanh(x + b) ** 2)
        return (delta[0] if bug else delta.sum(0)), delta

    return _custom(lambda b, x: jnp.sum(jnp.tanh(x + b)), rule), (b, x)


def softmax(n, dtype, bug, rng):
    x = jnp.asarray(rng.standard_normal(n), dtype)
    w = jnp.asarray(rng.standard_normal(n), dtype)

    def rule(gl, x):
        y = jax.nn.softmax(x)
        g = gl * w
        return ((y * g) if bug else y * (g - jnp.sum(g * y)),)

    return _custom(lambda x: jnp.sum(w * jax.nn.softmax(x)), rule), (x,)


CASES = {
    "entry 1e-1": entry(1e-1), "entry 1e-3": entry(1e-3), "entry 1e-6": entry(1e-6),
    "leaf x1.01": leaf_factor, "sign region": sign_region, "transposed W": transpose,
    "missing fan-out": fan_out, "broadcast not summed": broadcast, "softmax no subtraction": softmax,
}


# ---- checkers: (f, args) -> True when a problem is reported ------------------------------------
def fnnet_auto(f, args):
    return not gradcheck(f, *args).passed


def fnnet_fd_only(f, args):
    return not gradcheck(jax.jit(f), *args).passed


def fnnet_full(f, args):
    return not gradcheck(jax.jit(f), *args, mode="full").passed


def check_grads(f, args):
    from jax.test_util import check_grads as cg

    try:
        cg(f, args, order=1, modes=["rev"])
        return False
    except AssertionError:
        return True


def _torch_fn(f, args):
    import torch

    dtype = args[0].dtype

    class Fn(torch.autograd.Function):
        @staticmethod
        def forward(ctx, *ts):
            xs = [jnp.asarray(t.detach().numpy()) for t in ts]
            ctx.xs = xs
            return torch.tensor(np.asarray(f(*xs)))

        @staticmethod
        def backward(ctx, g):
            _, vjp = jax.vjp(f, *ctx.xs)
            cot = vjp(jnp.asarray(g.numpy(), dtype))
            return tuple(torch.tensor(np.asarray(c)) for c in cot)

    return Fn.apply


def torch_check(fast):
    def run(f, args):
        import torch

        ts = [torch.tensor(np.asarray(a), requires_grad=True) for a in args]
        try:
            return not torch.autograd.gradcheck(_torch_fn(f, args), tuple(ts), fast_mode=fast, raise_exception=False)
        except Exception:  # noqa: BLE001 - e.g. float32 warnings turned errors: count as flagged
            return True

    return run


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--sizes", type=str, default=None, help="comma-separated N values")
    parser.add_argument("--seeds", type=int, default=None)
    parser.add_argument("--plot", type=str, default=None, help="write a PNG of the rates here")
    parser.add_argument("--replot", nargs="*", default=None,
                        help="no run: plot the tables printed by earlier runs (text files) to --plot")
    opts = parser.parse_args()
    if opts.replot:
        plot(parse_tables(opts.replot), opts.plot or "docs/figures/gradcheck_power.png")
        return
    warnings.filterwarnings("ignore", message=".*double precision.*")  # torch on float32: we know
    sizes = [10, 1000] if opts.quick else [10, 100, 1000, 10_000, 100_000]
    seeds = 1 if opts.quick else 3
    if opts.sizes:
        sizes = [int(float(v)) for v in opts.sizes.split(",")]
    if opts.seeds:
        seeds = opts.seeds
    checkers = {"fnnet auto": (fnnet_auto, 10**9), "fnnet fd-only": (fnnet_fd_only, 10**9),
                "fnnet full": (fnnet_full, 10_000), "check_grads": (check_grads, 10**9)}
    try:
        import torch  # noqa: F401

        checkers["torch fast"] = (torch_check(True), 1000)
        checkers["torch full"] = (torch_check(False), 1000)
    except ImportError:
        pass
    names = list(checkers)
    results = {}
    t0 = time.time()
    print(f"jax {jax.__version__}; seeds per cell {seeds}; '-' = not run at that N")
    header = f"{'case':<24} {'dtype':<8} {'N':>6}  " + "  ".join(f"{n:>13}" for n in names)
    print(header)
    for dtype in (jnp.float32, jnp.float64):
        with jax.enable_x64(dtype == jnp.float64):
            for n in sizes:
                for case in ["correct"] + list(CASES):
                    cells = []
                    for name in names:
                        check, limit = checkers[name]
                        if n > limit:
                            cells.append("-")
                            continue
                        hits = 0
                        runs = 0
                        for seed in range(seeds):
                            rng = np.random.default_rng(seed)
                            if case == "correct":  # false positives over every case's correct rule
                                for make in CASES.values():
                                    f, args = make(n, dtype, False, np.random.default_rng(seed))
                                    hits += check(f, args)
                                    runs += 1
                            else:
                                f, args = CASES[case](n, dtype, True, rng)
                                hits += check(f, args)
                                runs += 1
                        cells.append(f"{hits}/{runs}")
                        results[(jnp.dtype(dtype).name, n, case, name)] = (hits, runs)
                    label = "correct (false pos.)" if case == "correct" else case
                    print(f"{label:<24} {jnp.dtype(dtype).name:<8} {n:>6}  " + "  ".join(f"{c:>13}" for c in cells),
                          flush=True)
    print(f"total {time.time() - t0:.0f} s")
    if opts.plot:
        plot(results, opts.plot)


def parse_tables(paths) -> dict:
    """Results back from printed tables, or from the Markdown tables of docs/reference/gradcheck.md:
    {(dtype, N, case, checker): (hits, runs)}."""
    import re

    results = {}
    for path in paths:
        names = None
        for line in open(path):
            if line.startswith("| case |"):  # Markdown: | case | dtype | N | checker ... |
                names = [c.strip() for c in line.strip().strip("|").split("|")][3:]
                continue
            if line.startswith("|") and names is not None:
                cells = [c.strip() for c in line.strip().strip("|").split("|")]
                if len(cells) != 3 + len(names) or not cells[2].isdigit():
                    continue
                case = "correct" if cells[0].startswith("correct") else cells[0]
                for name, cell in zip(names, cells[3:]):
                    if "/" in cell:
                        h, r = cell.split("/")
                        results[(cells[1], int(cells[2]), case, name)] = (int(h), int(r))
                continue
            if line.startswith("case "):
                names = re.split(r"\s{2,}", line.split(" N ", 1)[1].strip())
                continue
            m = re.match(r"(.{24}) (\S+)\s+(\d+)\s+(.*)", line.rstrip())
            if not m or names is None:
                continue
            case = "correct" if m.group(1).startswith("correct") else m.group(1).strip()
            for name, cell in zip(names, m.group(4).split()):
                if "/" in cell:
                    h, r = cell.split("/")
                    results[(m.group(2), int(m.group(3)), case, name)] = (int(h), int(r))
    return results


def plot(results: dict, path: str) -> None:
    """Detection rate over the seeded bugs (top row) and false-positive rate (bottom row) against N,
    float32 left and float64 right. Each checker has its own marker and a small sideways offset, so
    that checkers with equal rates stay visible side by side; the legend sits outside the axes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    checkers = sorted({k[3] for k in results}, key=lambda c: (not c.startswith("fnnet"), c))
    markers = "osD^vP*X"
    fig, axes = plt.subplots(2, 2, figsize=(11, 6.2), sharex=True, sharey=True)
    for col, dtype in enumerate(("float32", "float64")):
        for i, checker in enumerate(checkers):
            sizes = sorted({k[1] for k in results if k[0] == dtype and k[3] == checker})
            det, fp = [], []
            for n in sizes:
                bug = [v for k, v in results.items() if k[:2] == (dtype, n) and k[3] == checker and k[2] != "correct"]
                ok = results.get((dtype, n, "correct", checker))
                det.append(sum(h for h, _ in bug) / max(1, sum(r for _, r in bug)))
                fp.append(ok[0] / ok[1] if ok else float("nan"))
            shift = 1.12 ** (i - (len(checkers) - 1) / 2)  # side by side on the log axis
            xs = [n * shift for n in sizes]
            style = {"marker": markers[i % len(markers)], "color": f"C{i}", "lw": 1.2, "ms": 5}
            axes[0, col].plot(xs, det, label=checker, **style)
            axes[1, col].plot(xs, fp, ls="--", **style)
        axes[0, col].set_title(f"{dtype}: detection of the seeded bugs")
        axes[1, col].set_title(f"{dtype}: false positives on correct rules")
        axes[1, col].set_xlabel("N inputs")
    for ax in axes.flat:
        ax.set_xscale("log")
        ax.set_ylim(-0.05, 1.05)
        ax.grid(True, alpha=0.3)
    axes[0, 0].set_ylabel("fraction of bugs flagged")
    axes[1, 0].set_ylabel("fraction of correct rules flagged")
    fig.legend(*axes[0, 0].get_legend_handles_labels(), loc="center right", title="checker", fontsize=8)
    fig.tight_layout(rect=(0, 0, 0.84, 1))
    fig.savefig(path, dpi=100, metadata={"Software": None})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
