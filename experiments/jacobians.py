"""Experiment 7: Jacobians: elementwise (diagonal) vs softmax (dense) vs a dense layer; shape convention
vs Jacobian form.

For y = f(x) with x ∈ ℝⁿ, y ∈ ℝᵐ, the Jacobian is the m × n matrix J_ij = ∂y_i/∂x_j. Its structure
decides how backprop multiplies by it:

* an elementwise activation y_i = φ(x_i): J = diag(φ'(x)), so the VJP is g ⊙ φ'(x) (n numbers, not n²);
* softmax p = softmax(x): every output depends on every input, J = diag(p) − p pᵀ (dense, symmetric,
  rows summing to 0), VJP p ⊙ (g − ⟨g, p⟩);
* a dense layer y = W x + b: ∂y/∂x = W (dense, m × n); ∂y/∂vec(W) = I_m ⊗ xᵀ, (m, m·n) and block-sparse:
  y_i depends only on row i of W.

Shape convention vs Jacobian form. For a scalar loss L(y), ∂L/∂W in the *shape convention* has W's
shape, (m, n), and equals g xᵀ (g = ∂L/∂y): what gradient descent subtracts from W. In *Jacobian form*
it is the 1 × m·n row ∂L/∂vec(W) = gᵀ (I_m ⊗ xᵀ): the same numbers laid out as a row.

Every Jacobian is built by ``fnnet.calculus.jacobian`` from the hand-written rules only (rows from the
VJP, ``mode="rev"``; columns from the JVP, ``mode="fwd"``) and compared with ``jax.jacrev`` of the
primitive's plain reference (the printed number: max abs difference, float64).

    .venv/bin/python -m experiments.jacobians [--quick]
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from experiments import _common as C

REQUIRES = ("matplotlib",)
FIGURE = "jacobians.png"


def run(*, n: int = 8, m: int = 5, seed: int = 0) -> dict:
    """The Jacobians (float64), each from the hand VJP and the hand JVP and from jax.jacrev of the reference."""
    import fnnet
    from fnnet import calculus

    out = {"J": {}, "err": {}}
    with C.float64():
        rng = np.random.default_rng(seed)  # numpy draws: no per-op JAX compilation
        x = jnp.asarray(rng.standard_normal(n), jnp.float64)
        W = jnp.asarray(rng.standard_normal((m, n)) / np.sqrt(n), jnp.float64)
        b = jnp.asarray(0.1 * rng.standard_normal(m), jnp.float64)
        g = jnp.asarray(rng.standard_normal(m), jnp.float64)  # an upstream gradient ∂L/∂y

        cases = {
            "tanh": (fnnet.get("tanh"), (x,), 0),
            "softmax": (fnnet.get("softmax"), (x,), 0),
            "dense wrt x": (fnnet.get("affine"), (W, b, x), 2),
            "dense wrt W": (fnnet.get("affine"), (W, b, x), 0),
        }
        for name, (prim, args, argnum) in cases.items():
            J_rev = jax.jit(calculus.jacobian(prim, argnum, mode="rev"))(*args)
            J_fwd = jax.jit(calculus.jacobian(prim, argnum, mode="fwd"))(*args)
            J_ref = jax.jit(jax.jacrev(prim.reference, argnum))(*args)
            y_shape = prim.reference(*args).shape
            J = np.asarray(calculus.as_matrix(J_rev, y_shape))
            out["J"][name] = J
            out["err"][name] = max(float(jnp.max(jnp.abs(J_rev - J_ref))), float(jnp.max(jnp.abs(J_fwd - J_ref))))

        # The closed forms the lecture writes down.
        p = jax.nn.softmax(x)
        out["err"]["softmax = diag(p) - p p^T"] = float(jnp.max(jnp.abs(out["J"]["softmax"] - (jnp.diag(p) - jnp.outer(p, p)))))
        out["err"]["tanh = diag(tanh'(x))"] = float(jnp.max(jnp.abs(
            out["J"]["tanh"] - jnp.diag(calculus.elementwise_jacobian("tanh", x)))))
        dj = calculus.dense_jacobians(W, b, x)
        out["err"]["dense wrt W = I kron x^T"] = float(jnp.max(jnp.abs(out["J"]["dense wrt W"] - dj.W)))

        # Shape convention vs Jacobian form for L = <g, W x + b>.
        grad_W = jax.grad(lambda W_: jnp.vdot(g, fnnet.dense({"W": W_, "b": b}, x)))(W)  # hand rules
        row = calculus.to_jacobian_form(grad_W)
        out["shape"] = np.asarray(grad_W)
        out["row"] = np.asarray(row)
        out["err"]["grad_W = g x^T (shape convention)"] = float(jnp.max(jnp.abs(grad_W - jnp.outer(g, x))))
        out["err"]["row = g^T (I kron x^T) (Jacobian form)"] = float(jnp.max(jnp.abs(row - g[None, :] @ dj.W)))
        out["err"]["round trip row -> shape"] = float(jnp.max(jnp.abs(
            calculus.to_shape_convention(row, W.shape) - grad_W)))
        out["nonzero"] = {k: int(np.count_nonzero(np.abs(v) > 0)) for k, v in out["J"].items()}
    return out


def report(result) -> None:
    print("max |J| difference, float64 (hand rules via fnnet.calculus vs jax.jacrev of the reference, and the closed forms):")
    for name, e in result["err"].items():
        print(f"  {name:<40} {e:.2e}")
    print("nonzero entries: " + ", ".join(f"{k} {v}/{result['J'][k].size}" for k, v in result["nonzero"].items()))


def plot(result, path) -> None:
    plt = C.pyplot()
    fig = plt.figure(figsize=(13, 5.6))
    grid = fig.add_gridspec(2, 4, height_ratios=[3, 1.3])
    titles = {
        "tanh": "tanh: diag(tanh′(x))  (n × n)",
        "softmax": "softmax: diag(p) − ppᵀ  (dense)",
        "dense wrt x": "dense, ∂y/∂x = W  (m × n)",
        "dense wrt W": "dense, ∂y/∂vec(W) = I ⊗ xᵀ  (m × m·n)",
    }
    for i, (name, J) in enumerate(result["J"].items()):
        ax = fig.add_subplot(grid[0, i])
        lim = float(np.abs(J).max()) or 1.0
        im = ax.imshow(J, cmap="RdBu_r", vmin=-lim, vmax=lim, aspect="equal" if J.shape[1] < 20 else "auto",
                       interpolation="nearest")
        ax.set_title(titles[name], fontsize=8)
        ax.set_xlabel("j (input)")
        ax.set_ylabel("i (output)")
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    ax = fig.add_subplot(grid[1, 0])
    S = result["shape"]
    lim = float(np.abs(S).max())
    ax.imshow(S, cmap="RdBu_r", vmin=-lim, vmax=lim, interpolation="nearest")
    ax.set_title(f"∂L/∂W, shape convention {S.shape}", fontsize=8)
    ax.set_xticks([])
    ax.set_yticks([])
    ax = fig.add_subplot(grid[1, 1:])
    R = result["row"]
    ax.imshow(R, cmap="RdBu_r", vmin=-lim, vmax=lim, aspect="auto", interpolation="nearest")
    ax.set_title(f"∂L/∂vec(W), Jacobian form {R.shape}: the same numbers, row i of W in block i", fontsize=8)
    ax.set_yticks([])
    for k in range(1, S.shape[0]):
        ax.axvline(k * S.shape[1] - 0.5, color="k", lw=0.5)
    fig.tight_layout()
    C.save(fig, path)


def main(argv=None) -> int:
    args = C.parser(__doc__).parse_args(argv)
    result = run()  # already seconds: --quick changes nothing
    report(result)
    plot(result, args.out / FIGURE)
    return 0


if __name__ == "__main__":
    C.cli(main)
