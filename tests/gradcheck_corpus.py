"""A corpus of custom gradient rules modelled on public code, each correct and with a real or seeded bug.

Every rule here is written anew for these tests (nothing is copied); the comment above each case names
the public source it is modelled on. A case gives:

* ``make(bug)``: the function with its custom rule (``bug=None``: the correct rule, else the bug's name);
* ``draw(dtype, rng)``: the positional arguments of one input draw, including the awkward points the
  rule was written for (zeros, removable singularities, -inf, domain edges);
* ``options``: extra gradcheck options (``argnums``, ``reference_vjp``, ``order``);
* ``bugs``: ``{name: where}``, the keypath-and-index a report must name (``None``: any entry), and
  ``finding``: text the report of the *correct* rule must contain (e.g. that the reference is NaN).

tests/test_gradcheck_corpus.py runs every case correct and buggy, float32 and float64, over several
draws; the docs table (docs/reference/gradcheck.md) is produced by ``python tests/test_gradcheck_corpus.py``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from typing import Callable

import jax
import jax.numpy as jnp
import jax.scipy.linalg as jsl
import jax.scipy.special as jsp
import numpy as np


@dataclass
class Case:
    name: str
    source: str
    make: Callable
    draw: Callable
    bugs: dict
    options: dict = field(default_factory=dict)
    finding: str | None = None  # text the correct rule's report must contain
    dtypes: tuple = ("float32", "float64")


def _arr(values, dtype):
    return jnp.asarray(np.asarray(values, dtype=np.float64).astype(dtype))


# -------------------------------------------------------------------------------------------------
# 1. log(1 + e^x) with a custom JVP (the sigmoid), as in the JAX tutorial on custom derivative rules:
#    https://docs.jax.dev/en/latest/notebooks/Custom_derivative_rules_for_Python_code.html
#    Seeded bug: sigmoid(-x) in place of sigmoid(x).
# -------------------------------------------------------------------------------------------------
def make_log1pexp(bug=None):
    @jax.custom_jvp
    def log1pexp(x):
        return jnp.log(1.0 + jnp.exp(x))

    @log1pexp.defjvp
    def _jvp(primals, tangents):
        (x,), (dx,) = primals, tangents
        z = -x if bug == "sigmoid_of_minus_x" else x
        return log1pexp(x), dx * (1.0 - 1.0 / (1.0 + jnp.exp(z)))

    return log1pexp


def draw_log1pexp(dtype, rng):
    x = rng.normal(size=7) * 4.0
    x[:2] = [30.0, -25.0]
    return (_arr(x, dtype),)


# -------------------------------------------------------------------------------------------------
# 2. x / (1 + sqrt(x)) with a custom JVP valid at x = 0, where autodiff of the plain formula gives NaN
#    (0 * inf); same tutorial. x = 0 is a domain edge: f(-h) is NaN, so only the right-sided finite
#    difference exists. Seeded bug: (sqrt(x) + 1) for (sqrt(x) + 2) in the numerator.
# -------------------------------------------------------------------------------------------------
def make_sqrt_ratio(bug=None):
    @jax.custom_jvp
    def f(x):
        return x / (1.0 + jnp.sqrt(x))

    @f.defjvp
    def _jvp(primals, tangents):
        (x,), (dx,) = primals, tangents
        s = jnp.sqrt(x)
        top = s + (1.0 if bug == "numerator" else 2.0)
        return f(x), dx * top / (2.0 * (s + 1.0) ** 2)

    return f


def draw_sqrt_ratio(dtype, rng):
    x = np.abs(rng.normal(size=5)) * 3.0 + 0.05
    x[0] = 0.0
    return (_arr(x, dtype),)


# -------------------------------------------------------------------------------------------------
# 3. A "safe" Euclidean norm with a custom JVP that is 0 at the zero vector, as robotics code does
#    (jaxsim's safe_norm, https://github.com/ami-iit/jaxsim, jaxsim/math/utils.py). Autodiff of the
#    norm is NaN at 0; the norm has a kink there and 0 is in its subgradient (the unit ball).
#    Real bug: the unguarded rule x.dx / |x|, NaN at the zero vector (the reason such rules exist).
#    Seeded bug: dividing by |x|^2.
# -------------------------------------------------------------------------------------------------
def make_safe_norm(bug=None):
    @jax.custom_jvp
    def safe_norm(x):
        return jnp.sqrt(jnp.sum(x * x, axis=-1))

    @safe_norm.defjvp
    def _jvp(primals, tangents):
        (x,), (dx,) = primals, tangents
        y = safe_norm(x)
        if bug == "unguarded":
            return y, jnp.sum(x * dx, axis=-1) / y
        zero = y == 0
        denom = jnp.where(zero, jnp.ones_like(y), y)
        if bug == "squared":
            denom = denom**2
        return y, jnp.where(zero, jnp.zeros_like(y), jnp.sum(x * dx, axis=-1) / denom)

    return safe_norm


def draw_safe_norm(dtype, rng):
    x = rng.normal(size=(4, 3))
    x[1] = 0.0
    return (_arr(x, dtype),)


# -------------------------------------------------------------------------------------------------
# 4. sinc with a removable singularity at 0 and a custom JVP that uses the Maclaurin series near 0
#    (https://github.com/jax-ml/jax/pull/5077, fixing https://github.com/jax-ml/jax/issues/5054). The
#    undecorated function is the old code (where(x == 0, 1, sin(pi x)/(pi x))): its autodiff is NaN at
#    0 and its second derivative there is 0 instead of -pi^2/3. Bugs: the series term with the wrong
#    sign; the series only at x == 0 and the cancelling quotient everywhere else, as jax.numpy.sinc
#    shipped it until https://github.com/jax-ml/jax/issues/34139 (the rule loses ~u/x relative
#    accuracy near 0: 1.4 % at x = 1e-3 in float32, 300 % at 1e-4); "autodiff_form" is that rule
#    written as jax.numpy.sinc's autodiff forms it (tests/test_gradcheck_verdicts.py).
# -------------------------------------------------------------------------------------------------
def make_sinc(bug=None):
    @jax.custom_jvp
    def sinc(x):
        px = jnp.pi * x
        return jnp.where(x == 0, jnp.ones_like(x), jnp.sin(px) / px)

    @sinc.defjvp
    def _jvp(primals, tangents):
        (x,), (dx,) = primals, tangents
        px = jnp.pi * x
        # The series where the quotient cancels: below |u| = 0.1 (0.01 before) its second derivative
        # (order=2) lost 0.1 % at u = 0.016 in float32; the next term is below 1e-20 there.
        small = (x == 0) if bug in ("at_zero_only", "autodiff_form") else (jnp.abs(px) < 0.1)
        safe = jnp.where(small, jnp.ones_like(px), px)
        if bug == "autodiff_form":  # jax.numpy.sinc's form of the same quotient, cos u/u − sin u/u²
            exact = jnp.cos(safe) / safe - jnp.sin(safe) / (safe * safe)
        else:
            exact = (jnp.cos(safe) * safe - jnp.sin(safe)) / (safe * safe)
        sign = 1.0 if bug == "series_sign" else -1.0
        u2 = px * px  # d/du sin(u)/u = -u/3 + u^3/30 - u^5/840 + u^7/45360 - u^9/3991680 + ...
        series = px * (sign / 3.0 + u2 * (1.0 / 30.0 + u2 * (-1.0 / 840.0 + u2 * (1.0 / 45360.0 - u2 / 3991680.0))))
        return sinc(x), dx * jnp.pi * jnp.where(small, series, exact)

    return sinc


def draw_sinc(dtype, rng):
    x = rng.normal(size=6)
    x[0], x[1] = 0.0, 1e-3
    return (_arr(x, dtype),)


def draw_sinc_near_zero(dtype, rng):
    x = rng.normal(size=6)
    x[0], x[1] = 0.0, 1e-4
    return (_arr(x, dtype),)


# -------------------------------------------------------------------------------------------------
# 5. logsumexp over a log semiring with a custom VJP whose gradient is 0 (not NaN) for a row that is
#    all -inf, the workaround posted in https://github.com/jax-ml/jax/issues/6811 for CTC-like
#    dynamic programs. Real bug: the plain softmax backward, NaN on the all -inf row. Seeded bug:
#    the weights not normalised by the row's sum.
# -------------------------------------------------------------------------------------------------
def make_log_semiring_sum(bug=None):
    @jax.custom_vjp
    def lse(a):
        m = jnp.max(a, axis=-1, keepdims=True)
        m = jnp.where(jnp.isfinite(m), m, jnp.zeros_like(m))
        return jnp.log(jnp.sum(jnp.exp(a - m), axis=-1)) + m[..., 0]

    def fwd(a):
        out = lse(a)
        return out, (a, out)

    def bwd(res, g):
        a, out = res
        if bug == "softmax_nan":
            w = jnp.exp(a - out[..., None])
        else:
            finite = jnp.isfinite(out)[..., None]
            w = jnp.where(finite, jnp.exp(a - jnp.where(finite, out[..., None], jnp.zeros_like(a))),
                          jnp.zeros_like(a))
            if bug == "unnormalised":
                w = jnp.exp(a - jnp.max(jnp.where(finite, a, jnp.zeros_like(a)), axis=-1, keepdims=True))
                w = jnp.where(finite, w, jnp.zeros_like(w))
        return (g[..., None] * w,)

    lse.defvjp(fwd, bwd)
    return lse


def draw_log_semiring_sum(dtype, rng):
    a = rng.normal(size=(3, 4))
    a[1, :] = -np.inf
    a[2, 1] = -np.inf
    return (_arr(a, dtype),)


# -------------------------------------------------------------------------------------------------
# 6. Attention with a hand-written backward in the style of FlashAttention (saves the row
#    log-sum-exp, recomputes P, dS = P * (dP - rowsum(dO * O))), as in
#    https://github.com/lucidrains/flash-attention-jax and the Pallas reference kernels
#    (https://github.com/jax-ml/jax/blob/main/jax/experimental/pallas/ops/gpu/attention.py).
#    Seeded bugs: the rowsum(dO * O) term dropped; dK computed from the untransposed dS.
# -------------------------------------------------------------------------------------------------
def make_attention(bug=None):
    @jax.custom_vjp
    def attention(q, k, v):
        s = q @ k.T / jnp.sqrt(jnp.asarray(q.shape[-1], q.dtype))
        return jax.nn.softmax(s, axis=-1) @ v

    def fwd(q, k, v):
        scale = 1.0 / jnp.sqrt(jnp.asarray(q.shape[-1], q.dtype))
        s = q @ k.T * scale
        lse = jax.nn.logsumexp(s, axis=-1)
        o = jnp.exp(s - lse[:, None]) @ v
        return o, (q, k, v, o, lse)

    def bwd(res, do):
        q, k, v, o, lse = res
        scale = 1.0 / jnp.sqrt(jnp.asarray(q.shape[-1], q.dtype))
        p = jnp.exp(q @ k.T * scale - lse[:, None])
        dv = p.T @ do
        dp = do @ v.T
        d = jnp.sum(do * o, axis=-1, keepdims=True)
        ds = p * (dp - (0.0 if bug == "no_rowsum" else d))
        dq = ds @ k * scale
        dk = (ds @ q if bug == "untransposed" else ds.T @ q) * scale
        return dq, dk, dv

    attention.defvjp(fwd, bwd)
    return attention


def draw_attention(dtype, rng):
    q, k, v = rng.normal(size=(3, 4, 4))
    return (_arr(q, dtype), _arr(k, dtype), _arr(v, dtype))


# -------------------------------------------------------------------------------------------------
# 7. Implicit differentiation of a fixed point x = a + sin(x)/2 (a contraction), with a custom VJP
#    that solves the adjoint fixed point, as in the JAX tutorial's fixed_point example
#    (https://docs.jax.dev/en/latest/notebooks/Custom_derivative_rules_for_Python_code.html).
#    The solver is a while_loop, so there is no autodiff reference: finite differences decide.
#    Seeded bug: the adjoint iteration dropped (only the direct term d/da of one step).
# -------------------------------------------------------------------------------------------------
def make_fixed_point(bug=None):
    def step(a, x):
        return a + 0.5 * jnp.sin(x)

    def solve(fn, x0):
        def cond(c):
            return (c[2] < 60) & (jnp.max(jnp.abs(c[0] - c[1])) > 0)
        def body(c):
            return fn(c[0]), c[0], c[2] + 1
        return jax.lax.while_loop(cond, body, (fn(x0), x0, 0))[0]

    @jax.custom_vjp
    def root(a):
        return solve(partial(step, a), jnp.ones_like(a))

    def fwd(a):
        x = root(a)
        return x, (a, x)

    def bwd(res, g):
        a, x = res
        _, vjp_a = jax.vjp(lambda a_: step(a_, x), a)
        _, vjp_x = jax.vjp(lambda x_: step(a, x_), x)
        if bug == "no_adjoint_solve":
            return vjp_a(g)
        w = solve(lambda u: g + vjp_x(u)[0], jnp.zeros_like(g))
        return vjp_a(w)

    root.defvjp(fwd, bwd)
    return root


def draw_fixed_point(dtype, rng):
    return (_arr(rng.normal(size=5) * 2, dtype),)


# -------------------------------------------------------------------------------------------------
# 8. The modified Bessel function I0 with a custom JVP (I0' = I1), the fix of
#    https://github.com/jax-ml/jax/issues/11479 (https://github.com/jax-ml/jax/pull/18706): autodiff
#    of exp(|x|) * i0e(x) gave 1 at x = 0 instead of 0. Real bug (rebuilt): the rule that reproduces
#    that old derivative, d|x|/dx taken as 1 at 0.
# -------------------------------------------------------------------------------------------------
def make_i0(bug=None):
    @jax.custom_jvp
    def i0(x):
        return jnp.exp(jnp.abs(x)) * jsp.i0e(x)

    @i0.defjvp
    def _jvp(primals, tangents):
        (x,), (dx,) = primals, tangents
        if bug == "abs_at_zero":
            s = jnp.where(x >= 0, jnp.ones_like(x), -jnp.ones_like(x))
            d = jnp.exp(jnp.abs(x)) * (s * jsp.i0e(x) + jsp.i1e(x) - jnp.sign(x) * jsp.i0e(x))
        else:
            d = jnp.exp(jnp.abs(x)) * jsp.i1e(x)
        return i0(x), dx * d

    return i0


def draw_i0(dtype, rng):
    x = rng.normal(size=5) * 2
    x[0] = 0.0
    return (_arr(x, dtype),)


# -------------------------------------------------------------------------------------------------
# 9. Gradient clipping, a rule that is not a derivative by design (JAX tutorial, clip_gradient):
#    the forward is the identity, the backward clips the cotangent. Checked against a given
#    reference VJP only. Seeded bug: the bounds swapped in sign (clip to [hi, lo] -> constant).
# -------------------------------------------------------------------------------------------------
LO, HI = -0.5, 0.5


def make_clip_gradient(bug=None):
    @jax.custom_vjp
    def clip_gradient(x):
        return x

    def bwd(_, g):
        lo, hi = (HI, LO) if bug == "bounds_swapped" else (LO, HI)
        return (jnp.clip(g, lo, hi),)

    clip_gradient.defvjp(lambda x: (x, None), bwd)
    return clip_gradient


def clip_reference_vjp(args, g):
    return (jnp.clip(g, LO, HI),)


def draw_clip_gradient(dtype, rng):
    return (_arr(rng.normal(size=6), dtype),)


# -------------------------------------------------------------------------------------------------
# 10. A holomorphic function of a complex argument with a custom VJP in JAX's convention
#     (vjp(g) = g * f'(z), no conjugate: https://docs.jax.dev/en/latest/notebooks/autodiff_cookbook.html,
#     "Complex numbers and differentiation"). Seeded bug: the conjugated derivative (PyTorch's
#     convention), a classic porting slip.
# -------------------------------------------------------------------------------------------------
def make_complex_exp_sq(bug=None):
    @jax.custom_vjp
    def f(z):
        return jnp.exp(z) * z

    def fwd(z):
        return f(z), z

    def bwd(z, g):
        d = jnp.exp(z) * (1.0 + z)
        return (g * (jnp.conj(d) if bug == "conjugated" else d),)

    f.defvjp(fwd, bwd)
    return f


def draw_complex_exp_sq(dtype, rng):
    cdt = {"float32": np.complex64, "float64": np.complex128}[np.dtype(dtype).name]
    z = (rng.normal(size=4) + 1j * rng.normal(size=4)).astype(cdt)
    return (jnp.asarray(z),)


# -------------------------------------------------------------------------------------------------
# 11. xlogy(x, y) = x log y, 0 at x = 0, with a custom JVP as jax.scipy.special ships it
#     (https://github.com/jax-ml/jax/blob/main/jax/_src/scipy/special.py). d/dx = log y everywhere,
#     x = 0 included; autodiff of the plain where(x != 0, ...) gives 0 there. Real bug (rebuilt):
#     that same 0 in the rule, as TensorFlow and PyTorch had it
#     (https://github.com/tensorflow/tensorflow/issues/56873, https://github.com/pytorch/pytorch/issues/80770):
#     rule and reference agree, finite differences alone disagree. Seeded bug: log1p(y) (xlog1py's).
# -------------------------------------------------------------------------------------------------
def make_xlogy(bug=None):
    @jax.custom_jvp
    def xlogy(x, y):
        return jnp.where(x != 0, x * jnp.log(y), jnp.zeros_like(x))

    @xlogy.defjvp
    def _jvp(primals, tangents):
        (x, y), (dx, dy) = primals, tangents
        if bug == "masked_at_zero":
            dfdx = jnp.where(x != 0, jnp.log(y), jnp.zeros_like(y))
        else:
            dfdx = jnp.log1p(y) if bug == "log1p" else jnp.log(y)
        return xlogy(x, y), dx * dfdx + dy * x / y

    return xlogy


def draw_xlogy(dtype, rng):
    x = rng.normal(size=6)
    y = np.abs(rng.normal(size=6)) * 2.0 + 0.05
    x[:3] = [0.0, 0.0, 1e-3]
    y[:3] = [3.0, 1e-3, 0.2]
    return (_arr(x, dtype), _arr(y, dtype))


# -------------------------------------------------------------------------------------------------
# 12. The upper Cholesky factor of a matrix of which only the upper triangle is read (scipy's
#     lower=False), with a custom JVP dL = L Phi(L^-1 dS L^-T) as JAX's cholesky rule
#     (https://github.com/jax-ml/jax/blob/main/jax/_src/lax/linalg.py). Real bug (rebuilt,
#     https://github.com/jax-ml/jax/issues/40421): the rule symmetrises dA as (dA + dA^T)/2, giving a
#     ghost gradient on the ignored lower triangle. Seeded bug: Phi without halving the diagonal.
# -------------------------------------------------------------------------------------------------
def _sym_from_upper(a):
    return jnp.triu(a) + jnp.triu(a, 1).T


def make_cholesky_upper(bug=None):
    @jax.custom_jvp
    def cholesky_upper(a):
        return jnp.linalg.cholesky(_sym_from_upper(a)).T

    @cholesky_upper.defjvp
    def _jvp(primals, tangents):
        (a,), (da,) = primals, tangents
        u = cholesky_upper(a)
        low = u.T
        ds = (da + da.T) / 2 if bug == "ghost_gradient" else _sym_from_upper(da)
        x = jsl.solve_triangular(low, jsl.solve_triangular(low, ds, lower=True).T, lower=True).T
        phi = jnp.tril(x) - (0.0 if bug == "diagonal_not_halved" else 0.5) * jnp.diag(jnp.diag(x))
        return u, (low @ phi).T

    return cholesky_upper


def draw_cholesky_upper(dtype, rng):
    m = rng.normal(size=(3, 3))
    a = m @ m.T + 3.0 * np.eye(3)
    a[np.tril_indices(3, -1)] = rng.normal(size=3) * 5.0  # not read: only the upper triangle is
    return (_arr(a, dtype),)


# -------------------------------------------------------------------------------------------------
# 13. optax's weighted_logsoftmax (w * log_softmax(x), 0 where w = 0, so masked -inf logits give 0,
#     not NaN), with a custom JVP (https://github.com/google-deepmind/optax, optax/losses/
#     _classification.py; the -inf handling: https://github.com/google-deepmind/optax/issues/896).
#     Only the logits are differentiated (argnums=0); the rows hold -inf, +-60 and zero weights.
#     Seeded bug: the softmax over the wrong axis. Real bug (rebuilt,
#     https://github.com/google-deepmind/optax/pull/1762): the weights' tangent times log_softmax
#     unguarded, 0 * -inf = NaN in the JVP only (its transpose drops the weights' zero tangent), which
#     the JVP-vs-VJP check catches and locates entry by entry.
# -------------------------------------------------------------------------------------------------
def make_weighted_logsoftmax(bug=None):
    @jax.custom_jvp
    def weighted_logsoftmax(x, w):
        ls = jax.nn.log_softmax(x, axis=-1)
        return jnp.where(w != 0, w * ls, jnp.zeros_like(ls))

    @weighted_logsoftmax.defjvp
    def _jvp(primals, tangents):
        (x, w), (dx, dw) = primals, tangents
        ls = jax.nn.log_softmax(x, axis=-1)
        p = jax.nn.softmax(x, axis=0 if bug == "softmax_axis" else -1)
        dls = dx - jnp.sum(dx * p, axis=-1, keepdims=True)
        dw_ls = dw * ls if bug == "nan_jvp" else dw * jnp.where(jnp.isfinite(ls), ls, jnp.zeros_like(ls))
        return weighted_logsoftmax(x, w), w * dls + dw_ls

    return weighted_logsoftmax


def draw_weighted_logsoftmax(dtype, rng):
    x = rng.normal(size=(3, 4)) * 3.0
    x[0, 1] = -np.inf
    x[1] = [60.0, -60.0, 58.0, 0.0]
    w = np.abs(rng.normal(size=(3, 4)))
    w[0, 1] = w[2, 3] = 0.0
    return (_arr(x, dtype), _arr(w / w.sum(-1, keepdims=True), dtype))


# -------------------------------------------------------------------------------------------------
# 14. An embedding bag (sum_j w[b, j] table[ids[b, j]], as torch's EmbeddingBag with per-sample
#     weights) with a custom VJP; the integer ids are held fixed. The table's cotangent is a
#     scatter-add, as JAX's gather transpose (https://github.com/jax-ml/jax/blob/main/jax/_src/lax/slicing.py).
#     Real bug (rebuilt, https://github.com/pytorch/pytorch/issues/1631): a scatter that overwrites,
#     wrong for repeated ids. Seeded bug: the bag weights left out of the table's cotangent.
# -------------------------------------------------------------------------------------------------
def make_embedding_bag(bug=None):
    @jax.custom_vjp
    def embedding_bag(table, ids, w):
        return jnp.sum(w[..., None] * table[ids], axis=-2)

    def fwd(table, ids, w):
        return embedding_bag(table, ids, w), (table, ids, w)

    def bwd(res, g):
        table, ids, w = res
        rows = (jnp.ones_like(w) if bug == "unweighted" else w)[..., None] * g[:, None, :]
        dtable = jnp.zeros_like(table).at[ids]
        dtable = dtable.set(rows) if bug == "scatter_set" else dtable.add(rows)
        return dtable, None, jnp.sum(table[ids] * g[:, None, :], axis=-1)

    embedding_bag.defvjp(fwd, bwd)
    return embedding_bag


def draw_embedding_bag(dtype, rng):
    ids = np.array([[1, 1, 4], [0, 3, 1]], dtype=np.int32)  # row 1 three times, row 2 never
    return (_arr(rng.normal(size=(5, 3)), dtype), jnp.asarray(ids), _arr(rng.normal(size=(2, 3)), dtype))


# -------------------------------------------------------------------------------------------------
# 15. Layer norm with a dict of parameters and a hand-written backward (saved x-hat and 1/std;
#     dx = (w dy - x-hat mean(x-hat w dy) - mean(w dy)) / std), as the Pallas layer norm
#     (https://github.com/jax-ml/jax/blob/main/jax/experimental/pallas/ops/gpu/layer_norm.py).
#     One row is constant (variance 0: 1/std = 1/sqrt(eps)). Seeded bugs: the x-hat term dropped;
#     the scale's cotangent from x instead of x-hat.
# -------------------------------------------------------------------------------------------------
LN_EPS = 1e-5


def make_layer_norm(bug=None):
    def normalise(x):
        mean = jnp.mean(x, axis=-1, keepdims=True)
        rstd = jax.lax.rsqrt(jnp.mean((x - mean) ** 2, axis=-1, keepdims=True) + LN_EPS)
        return (x - mean) * rstd, rstd

    @jax.custom_vjp
    def layer_norm(x, params):
        return normalise(x)[0] * params["scale"] + params["bias"]

    def fwd(x, params):
        xhat, rstd = normalise(x)
        return xhat * params["scale"] + params["bias"], (x, xhat, rstd, params["scale"])

    def bwd(res, dy):
        x, xhat, rstd, scale = res
        wdy = dy * scale
        c1 = 0.0 if bug == "no_xhat_term" else xhat * jnp.mean(xhat * wdy, axis=-1, keepdims=True)
        dx = (wdy - c1 - jnp.mean(wdy, axis=-1, keepdims=True)) * rstd
        dscale = jnp.sum(dy * (x if bug == "scale_from_x" else xhat), axis=0)
        return dx, {"scale": dscale, "bias": jnp.sum(dy, axis=0)}

    layer_norm.defvjp(fwd, bwd)
    return layer_norm


def draw_layer_norm(dtype, rng):
    x = rng.normal(size=(3, 4)) * 2.0 + 1.0
    x[1] = 0.7
    params = {"scale": _arr(rng.normal(size=4) + 1.0, dtype), "bias": _arr(rng.normal(size=4), dtype)}
    return (_arr(x, dtype), params)


# -------------------------------------------------------------------------------------------------
# 16. A transposed triangular solve x = L^-T b (the second half of a Cholesky solve; only L's lower
#     triangle is read) with a custom VJP: u = L^-1 g, dL = -tril(x u^T), db = u. The transpose
#     flag is what JAX's triangular-solve rule once got wrong (https://github.com/jax-ml/jax/issues/1458).
#     Bugs: the adjoint solve with L^T instead of L (rebuilt from that); the tril projection dropped.
# -------------------------------------------------------------------------------------------------
def make_triangular_solve(bug=None):
    @jax.custom_vjp
    def solve_lt(low, b):
        return jsl.solve_triangular(jnp.tril(low), b, lower=True, trans="T")

    def fwd(low, b):
        x = solve_lt(low, b)
        return x, (low, x)

    def bwd(res, g):
        low, x = res
        u = jsl.solve_triangular(jnp.tril(low), g, lower=True, trans="T" if bug == "untransposed" else "N")
        dlow = -(x @ u.T)
        return (dlow if bug == "no_tril" else jnp.tril(dlow)), u

    solve_lt.defvjp(fwd, bwd)
    return solve_lt


def draw_triangular_solve(dtype, rng):
    low = rng.normal(size=(3, 3))
    low[np.diag_indices(3)] = np.abs(np.diag(low)) + 0.5
    low[2, 2] = 0.2  # a small pivot
    return (_arr(low, dtype), _arr(rng.normal(size=(3, 2)), dtype))


CASES = [
    Case("log1pexp", "https://docs.jax.dev/en/latest/notebooks/Custom_derivative_rules_for_Python_code.html",
         make_log1pexp, draw_log1pexp, {"sigmoid_of_minus_x": "args[0]"}),
    Case("sqrt_ratio", "https://docs.jax.dev/en/latest/notebooks/Custom_derivative_rules_for_Python_code.html",
         make_sqrt_ratio, draw_sqrt_ratio, {"numerator": "args[0]"}, finding="NaN"),
    Case("safe_norm", "https://github.com/ami-iit/jaxsim", make_safe_norm, draw_safe_norm,
         {"unguarded": "args[0][1, 0]", "squared": "args[0]"}, finding="NaN"),
    Case("sinc", "https://github.com/jax-ml/jax/pull/5077", make_sinc, draw_sinc,
         {"series_sign": "args[0][1]"}, finding="NaN"),
    Case("sinc_order2", "https://github.com/jax-ml/jax/issues/5054", make_sinc, draw_sinc,
         {"series_sign": "args[0][1]"}, options={"order": 2}),
    # jax.numpy.sinc's cancelling rule in float32: 300 % off at x = 1e-4, 1.4 % at 1e-3 (3ε/u²
    # relative; below UNSTABLE there); in float64 7e-11 at 1e-4, which no witness resolves, so the
    # case is float32's.
    Case("sinc_jnp", "https://github.com/jax-ml/jax/issues/34139", make_sinc, draw_sinc_near_zero,
         {"at_zero_only": "args[0][1]"}, dtypes=("float32",)),
    Case("sinc_jnp_order2", "https://github.com/jax-ml/jax/issues/34139", make_sinc, draw_sinc_near_zero,
         {"at_zero_only": "args[0][1]"}, options={"order": 2}, dtypes=("float32",)),
    Case("log_semiring_sum", "https://github.com/jax-ml/jax/issues/6811", make_log_semiring_sum,
         draw_log_semiring_sum, {"softmax_nan": "args[0][1, 0]", "unnormalised": "args[0]"}, finding="NaN"),
    Case("attention", "https://github.com/lucidrains/flash-attention-jax", make_attention, draw_attention,
         {"no_rowsum": "args[0]", "untransposed": "args[1]"}),
    Case("fixed_point", "https://docs.jax.dev/en/latest/notebooks/Custom_derivative_rules_for_Python_code.html",
         make_fixed_point, draw_fixed_point, {"no_adjoint_solve": "args[0]"}),
    Case("i0", "https://github.com/jax-ml/jax/issues/11479", make_i0, draw_i0, {"abs_at_zero": "args[0][0]"}),
    Case("clip_gradient", "https://docs.jax.dev/en/latest/notebooks/Custom_derivative_rules_for_Python_code.html",
         make_clip_gradient, draw_clip_gradient, {"bounds_swapped": "args[0]"},
         options={"reference_vjp": clip_reference_vjp}),
    Case("complex_exp_z", "https://docs.jax.dev/en/latest/notebooks/autodiff_cookbook.html",
         make_complex_exp_sq, draw_complex_exp_sq, {"conjugated": "args[0]"}),
    Case("xlogy", "https://github.com/tensorflow/tensorflow/issues/56873", make_xlogy, draw_xlogy,
         {"masked_at_zero": "args[0][1]", "log1p": "args[0]"}, finding="reference is wrong"),
    Case("cholesky_upper", "https://github.com/jax-ml/jax/issues/40421", make_cholesky_upper, draw_cholesky_upper,
         {"ghost_gradient": "args[0][1, 0]", "diagonal_not_halved": "args[0]"}),
    Case("weighted_logsoftmax", "https://github.com/google-deepmind/optax/issues/896", make_weighted_logsoftmax,
         draw_weighted_logsoftmax, {"softmax_axis": "args[0]", "nan_jvp": "args[0]"}, options={"argnums": 0}),
    Case("embedding_bag", "https://github.com/pytorch/pytorch/issues/1631", make_embedding_bag,
         draw_embedding_bag, {"scatter_set": "args[0][1, 0]", "unweighted": "args[0]"}),
    Case("layer_norm", "https://github.com/jax-ml/jax/blob/main/jax/experimental/pallas/ops/gpu/layer_norm.py",
         make_layer_norm, draw_layer_norm, {"no_xhat_term": "args[0]", "scale_from_x": "args[1]['scale']"}),
    Case("triangular_solve", "https://github.com/jax-ml/jax/issues/1458", make_triangular_solve,
         draw_triangular_solve, {"untransposed": "args[0]", "no_tril": "args[0][0, 1]"}),
]
