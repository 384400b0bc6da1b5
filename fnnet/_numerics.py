"""Shared numerics: the few formulas that several rules need, written once in their stable form.

* σ′ and softplus, the sigmoid family's building blocks (activations, glu, the binary loss);
* the softmax kernel: the slice maximum chosen per slice, the normalisation, the VJP
  y ⊙ (g − ⟨g, y⟩) (softmax, log_softmax, logsumexp, softmin, gumbel_softmax, the softmax losses);
* left-tail scaling, so that no product in a left tail passes through a subnormal e^x;
* the adjoint of broadcasting (``unbroadcast``) and the NaN rule of a derivative (``keep_nan``).

Why each form was chosen is said where it is defined; the measurements are in docs/reference/accuracy.md.
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.custom_batching import custom_vmap

__all__ = [
    "const",
    "where",
    "dsigmoid",
    "softplus",
    "shifted",
    "normalize",
    "masked",
    "softmax_vjp",
    "keep",
    "reduce_sum",
    "slice_sums",
    "exp_sums",
    "branch_pays",
    "log_branch_pays",
    "one_kernel_pays",
    "first_entries",
    "plain_exp_sums",
    "rule_branch_pays",
    "lse_rule_branch_pays",
    "loss_branch_pays",
    "unless_nan",
    "SHIFT",
    "SHIFT_FROM",
    "E_SHIFT",
    "exp_neg_scaled",
    "unbroadcast",
    "keep_nan",
    "TARGET_BACKEND",
    "backend",
    "max_slope",
]


#: The backend whose forms the rules choose where XLA:CPU and the accelerators run different forms
#: fastest (:func:`arith_pays`, :func:`apart_pays`, :func:`shift_form`, the branches, gelu's derivative
#: clip, standardize's sums). ``None``
#: follows :func:`jax.default_backend`; set ``"gpu"`` (or ``"tpu"``) to trace for another platform
#: than this process's default, as in a compile ahead of time for a GPU from a CPU machine
#: (``python -m benchmarks dropin --gpu-target-config``). Every such choice is between forms of the
#: same function (the same bits, or a reduction summed in another order), so the setting changes the
#: compiled program's speed, not what it computes. Read when a rule is traced: a program traced
#: before a change keeps its forms (``jax.clear_caches()``).
TARGET_BACKEND: str | None = None


def backend() -> str:
    """The platform the rules are traced for: ``TARGET_BACKEND``, or :func:`jax.default_backend`."""
    return TARGET_BACKEND or jax.default_backend()


def where(c, a, b):
    """``jnp.where(c, a, b)`` (jax.numpy's broadcasting and dtype promotion: a Python number takes the
    array's dtype) as one ``lax.select``: same operations, same bits, less Python per call. The rules
    are traced flat (``fnnet.primitive._flat``), so jnp.where no longer leaves a nested ``jit``
    there, but its own promotion and checks still cost: with jnp.where in its place, the trace of
    jit(value_and_grad) of gelu took 47–55 ms against 32–33 (1024×1024 float32, caches cleared,
    median of 15, two alternated runs); mish and silu traced in the same time either way."""
    if not (hasattr(a, "aval") or hasattr(b, "aval")):  # two numbers: jnp's weakly typed result
        return jnp.where(c, a, b)
    dtype = jnp.result_type(a, b)
    shape = np.broadcast_shapes(np.shape(c), np.shape(a), np.shape(b))

    def full(v, dt):
        if not hasattr(v, "aval"):  # a Python or numpy number, or a numpy array: a constant
            v = np.asarray(v, dt)
        elif v.dtype != dt:
            v = lax.convert_element_type(v, dt)
        if np.shape(v) == shape:
            return v
        return lax.broadcast_in_dim(v, shape, tuple(range(len(shape) - np.ndim(v), len(shape))))

    return lax.select(full(c, np.bool_), full(a, dtype), full(b, dtype))


def const(value, like):
    """``value`` as a scalar of ``like``'s dtype, for a lax operation beside ``like`` (what jax.numpy's
    weak typing makes of a Python number there)."""
    return np.asarray(value, like.dtype)


# ----- the sigmoid family -------------------------------------------------------------------------


def max_slope(v, floor):
    """d max(v, floor)/dv as jax's maximum differentiates it: 1 above the floor, ½ at it (a tie splits
    the derivative), 0 below (a NaN included), in ``v``'s dtype."""
    one = jnp.ones((), v.dtype)
    return jnp.where(v > floor, one, jnp.where(v == floor, one / 2, jnp.zeros((), v.dtype)))


def dsigmoid(x):
    """σ'(x) = σ(x)σ(−x) = s(1 − s) with s = σ(−|x|) ≤ ½: 1 − s ∈ [½, 1) does not cancel, and s → 0
    at ±∞ (one lax.logistic, as cheap as jax.nn's s(1 − s) with s = σ(x), which cancels for x ≫ 0)."""
    s = lax.logistic(lax.neg(lax.abs(x)))
    return lax.mul(s, lax.sub(const(1, s), s))


def softplus(x):
    """softplus(x) = log(1 + e^x) as ``logaddexp(x, 0)``: no overflow, exact 0 and x in the tails."""
    return jnp.logaddexp(x, 0.0)


# ----- the softmax kernel -------------------------------------------------------------------------


def keep(v, axes, shape):
    """A reduction's result ``v`` (``axes`` removed) broadcast back to ``shape``."""
    kept = tuple(i for i in range(len(shape)) if i not in axes)
    return lax.broadcast_in_dim(v, shape, kept)


def reduce_sum(v, axes):
    """Σ over ``axes`` (sorted, non-negative; none: ``v`` itself), the axes removed."""
    return lax.reduce_sum(v, axes) if axes else v


def _full(v, c):
    return lax.full_like(v, c)


# The kernel below is written with lax operations, not jax.numpy's: each jnp function re-checks
# dtypes and broadcasting every time a program is traced (and, outside the mechanism's flat tracing,
# leaves a nested jit), and the kernel is traced twice per differentiated call (forward, then the
# tangent rule). Same operations, same bits; the jit of value_and_grad of softmax traced in 22 ms
# instead of 49 (measured before rules were traced flat).


def shifted(x, axes, mask, form="select"):
    """``(m, x − m, e)``: the slice maximum (reduced axes kept, of size 1), the shifted input,
    ``e = exp(x − m)`` (0 where masked).

    Where the maximum is ±inf, ``x − m`` would be ``inf − inf``: there the entries equal to the maximum
    are shifted to 0 and the others to −inf (ties at infinity share the mass). The choice is made per
    slice (on ``m``), so a finite slice is plain ``x − m``. A NaN entry stays NaN in every form, and so
    makes its slice's sum and the outputs NaN: the maximum is not relied on for that, since
    XLA:CPU's may skip a NaN (over rows of 64 and more: a finite maximum, or ±inf beside it;
    ``test_a_nan_makes_its_slice_nan_in_every_form``). The maximum starts at −inf, so an empty axis
    is valid (an empty result).

    ``form`` writes the rule with selects on the entries (``"select"``), or, where there is no mask,
    with arithmetic alone (``"arith"``, :func:`_shift_arith`) or as the plain difference with one
    select on it (``"difference"``, :func:`_shift_difference`): the same bits but for the sign of a
    NaN. The rules that keep ``e`` for their backward pass take :func:`shift_form` (softmax's,
    logsumexp's, the integer-label cross-entropy's), where it was measured to pay.
    """
    masked_x = x if mask is None else lax.select(jnp.broadcast_to(mask, x.shape), x, _full(x, -jnp.inf))
    m = lax.reduce_max(masked_x, axes) if axes else masked_x
    if form not in ("select", "arith", "difference"):
        raise ValueError(f"form must be 'select', 'arith' or 'difference', got {form!r}")
    if form == "arith" and mask is None:
        out = _shift_arith(x, m, axes)
    elif form == "difference" and mask is None:
        out = _shift_difference(x, m, axes)
    else:
        inf_m = lax.eq(lax.abs(m), _full(m, jnp.inf))
        out = _shift(x, keep(m, axes, x.shape), keep(inf_m, axes, x.shape),
                     keep(lax.select(inf_m, _full(m, 0), m), axes, x.shape))
    e = lax.exp(out)
    if mask is not None:
        e = lax.select(jnp.broadcast_to(mask, x.shape), e, _full(e, 0))
    return lax.expand_dims(m, axes), out, e


def _shift(x, m, inf_m, finite_m):
    """x − m by :func:`shifted`'s rule, every argument of x's shape: ``inf_m`` where m is ±inf,
    ``finite_m`` is m with 0 there. At an infinite m a lesser entry becomes x − ∞ (−inf; a NaN entry
    stays NaN: XLA:CPU's maximum may skip a NaN, over rows of 64 and more, and return ±inf beside
    it)."""
    at_inf = lax.select(lax.eq(x, m), _full(x, 0), lax.sub(x, _full(x, jnp.inf)))
    return lax.select(inf_m, at_inf, lax.sub(x, finite_m))


def _shift_arith(x, m, axes):
    """:func:`shifted`'s rule without a select on the entries: ``min(a·x − b, 0)·c`` with per-slice
    coefficients chosen from the (reduced) maximum m: (1, m, 1) where m is finite or NaN (x·1 − m is
    x − m exactly, ≤ 0, so the minimum and the product change nothing, a NaN included); at m = +inf
    (½, largest finite, 4): an entry at +inf gives min(inf, 0) = 0, a finite one at most ½·max − max
    = −max/2, which ·4 overflows to −inf, as −inf stays; at m = −inf (every entry −inf) (−1, 0, 1):
    −inf·−1 − 0 = +inf, min 0. The same bits as the selects (`test_arithmetic_shift_is_the_same_bits`);
    XLA:CPU vectorizes its loop with the exponential over short slices, where the select's loop runs
    about twice as long (:func:`arith_pays`)."""
    pinf = lax.eq(m, _full(m, jnp.inf))
    ninf = lax.eq(m, _full(m, -jnp.inf))
    a = lax.select(pinf, _full(m, 0.5), lax.select(ninf, _full(m, -1), _full(m, 1)))
    b = lax.select(pinf, _full(m, float(jnp.finfo(m.dtype).max)), lax.select(ninf, _full(m, 0), m))
    c = lax.select(pinf, _full(m, 4), _full(m, 1))
    ax = lax.sub(lax.mul(x, keep(a, axes, x.shape)), keep(b, axes, x.shape))
    return lax.mul(lax.min(ax, _full(x, 0)), keep(c, axes, x.shape))


def _shift_difference(x, m, axes):
    """:func:`shifted`'s rule as jax.nn writes its shift, ``d = x − m``, with one select on ``d``: where
    ``d`` is NaN but ``x`` is not, the slice's ``c`` (NaN where m is NaN, else 0). There d is NaN only
    at x = m = ±inf (the ties at infinity: 0) or where m is NaN (the slice is NaN); a NaN entry keeps
    its NaN whatever m, for XLA:CPU's maximum may skip a NaN (it did over rows of 64 and more: a
    finite maximum, or −inf for a NaN in the last place, where the rows of 4–40 gave NaN). Elsewhere
    d is the selects' x − m, bit for bit, and at m = ±inf a lesser entry gives x − m = −inf as the
    selects do. The broadcast maximum is read once, as in jax.nn's exp(x − m), not twice (x = m,
    x − m) as by the selects. A NaN's sign may differ from the selects' (IEEE 754 leaves it
    unspecified)."""
    c = lax.select(lax.ne(m, m), m, _full(m, 0))
    d = lax.sub(x, keep(m, axes, x.shape))
    return lax.select(lax.bitwise_and(lax.ne(d, d), lax.eq(x, x)), keep(c, axes, x.shape), d)


#: The shortest slice (entries over the reduced axes) whose shift :func:`shift_form` forms as the
#: difference off XLA:CPU, or None: never. None until the NaN-keeping difference form is measured on a
#: device, on the drop-in benchmark's program: the form without its NaN guard (``x = x``) compiled
#: faster on the H200 over the whole array and slower over rows of 1024, in a program with an
#: input-sized cotangent (:func:`shift_form`); the guard, one comparison per entry, is not measured
#: there.
DIFFERENCE_MIN_SLICE: int | None = None

#: A form that :func:`shift_form` returns whatever the backend and the slice (``"select"``,
#: ``"arith"``, ``"difference"``), or None: its own choice. For experiments (``python -m
#: experiments.backend_forms``).
SHIFT_FORM: str | None = None


def shift_form(x, axes) -> str:
    """The form of :func:`shifted`'s rule for a rule that keeps ``e``, for ``x`` reduced over ``axes``:
    ``"arith"`` where :func:`arith_pays`; off XLA:CPU the difference (:func:`_shift_difference`) over
    slices of ``DIFFERENCE_MIN_SLICE`` entries or more; else the selects. On the H200 (jax 0.11.2),
    XLA's compile of jit(value_and_grad(sum(f(x)·W))) at 1024 × 1024, fnnet / jax.nn, selects against
    the difference without its NaN guard: logsumexp over every axis 1.34 against 1.07, logmeanexp 1.30
    against 1.02 (the sum of the exponentials over the whole array, a reduction in stages, emitted with
    one Triton kernel more with the selects); over the last axis (rows of 1024) 0.93 against 1.12, the
    integer-label loss 0.88 against 1.09; softmax 0.56 and 0.57; run times within 1 % of each other
    (``python -m experiments.backend_forms``, 7 compile rounds, 50 runs; W was input-sized there,
    broadcast against the smaller f(x) of logsumexp, logmeanexp and the loss: the experiment now takes
    w of f(x)'s shape, the drop-in benchmark's program, not yet run on a device). On the 2-core CPU the
    NaN-keeping difference compiles softmax's rule a little faster than the selects and runs it a
    little slower (compile 1.12–1.25 against 1.17–1.33 in eleven runs of ``python -m
    experiments.backend_forms --repeats 9 --runs 80 --ops softmax`` and of a script outside the
    repository; jit(value_and_grad) 0–8 % slower at 1024 × 1024, 4096 × 100, 256 × 64 and 64 × 1024,
    and logsumexp's and the integer-label loss's up to 20 % slower): the CPU keeps the selects.
    Decided from the static shape and the backend while the rule is traced."""
    if SHIFT_FORM is not None:
        return SHIFT_FORM
    if arith_pays(x, axes):
        return "arith"
    long = DIFFERENCE_MIN_SLICE is not None and slice_size(x, axes) >= DIFFERENCE_MIN_SLICE
    return "difference" if backend() != "cpu" and long else "select"


#: The longest slice (entries over the reduced axes) whose shift :func:`arith_pays` forms arithmetically.
ARITH_MAX_SLICE = 40


def slice_size(x, axes) -> int:
    """Entries per slice: the product of the reduced axes' lengths."""
    return math.prod(x.shape[a] for a in axes)


def slice_count(x, axes, where, dtype, keepdims=True):
    """n per slice in ``dtype``: the slice's size (one number for every slice) without a mask, else
    its entries where ``where`` is True (the reduced axes kept, or removed)."""
    if where is None:
        return jnp.asarray(slice_size(x, axes), dtype)
    return jnp.sum(jnp.broadcast_to(where, x.shape), axes, keepdims=keepdims, dtype=dtype)


def arith_pays(x, axes) -> bool:
    """Whether a rule that keeps ``e`` should form the shift arithmetically (:func:`shifted`) for ``x``
    reduced over ``axes``: on XLA:CPU, for slices of at most ``ARITH_MAX_SLICE`` entries. There XLA:CPU
    runs the select's loop with the exponential about twice as long as jax.nn's plain exp(x − m)
    (jit(value_and_grad), 2²⁰ entries in rows of 32: softmax 2.28–2.31× jax.nn's with the selects,
    1.00–1.13× arithmetic; logsumexp 1.89–1.93× and 0.66–0.67×; the integer-label loss at 4096 × 32
    1.64–1.79× optax's and 0.77–0.79×; the commands: docs/reference/performance_dropin.md, "Short
    slices"); from 48 entries on both vectorize alike. Not where the shifted value is an output too
    (log_softmax, the soft-label loss: the arithmetic cost more there than it saved), nor an
    evaluation without gradient (no faster). softmin's rule, which keeps its output, is softmax's
    of −x and takes it as softmax's does (256 × 10: 0.95–1.00× jax.nn.softmax(−x) against
    1.40–1.56× with the selects). Decided from the static shape and the backend
    while the rule is traced; both forms give the same bits."""
    return backend() == "cpu" and slice_size(x, axes) <= ARITH_MAX_SLICE


def shift_entries(xk, m):
    """Entries ``xk`` of a slice (gathered, one or a few per slice) shifted by the slice's maximum ``m``
    (the first value of :func:`shifted`, broadcast to ``xk``'s shape) by :func:`shifted`'s rule: the
    same operations on the same values, so the same bits as the corresponding entries of its shifted
    input, without forming the shifted input over the whole slice."""
    m = jnp.broadcast_to(m, xk.shape)
    inf_m = lax.eq(lax.abs(m), _full(m, jnp.inf))
    return _shift(xk, m, inf_m, lax.select(inf_m, _full(m, 0), m))


#: The smallest array (entries) for which a rule forms the shifted input apart (:func:`apart_pays`).
APART_MIN_SIZE = 1 << 14


def apart_pays(x, axes) -> bool:
    """Whether a rule that keeps ``e`` should form the shifted input apart (:func:`shifted_apart`) for
    ``x`` reduced over ``axes``: on XLA:CPU, from 2¹⁴ entries on, and for slices longer than
    ``ARITH_MAX_SLICE``. Below 2¹⁴ entries the second loop costs more than the pass it saves.
    jit(value_and_grad), one process, 300 rounds, fnnet / jax.nn (log_softmax) and fnnet / optax
    (softmax cross-entropy), apart against single: 256 × 10 1.15 and 1.13 against 0.96 and 0.94;
    256 × 40 1.67 and 1.58 against 1.08 and 1.06; 256 × 64 (2¹⁴) 1.02 and 1.01 against 1.02 and 1.05;
    256 × 100 0.84 and 0.85 against 1.01 and 1.07 (the command: docs/design.md). Over short slices it
    costs at any size (log_softmax, 2²⁰ entries in rows of 32: 2.70–2.82× jax.nn's apart, 1.15–1.18×
    single; performance_dropin.md, "Short slices"). Decided from the
    static shape and the backend while the rule is traced; both forms give the same bits."""
    return (backend() == "cpu" and math.prod(x.shape) >= APART_MIN_SIZE
            and slice_size(x, axes) > ARITH_MAX_SLICE)


def shifted_apart(x, m, axes):
    """:func:`shifted`'s shifted input again, from its ``m``, written with other operations (each
    select's condition negated and its branches swapped) so that XLA does not merge the two. A rule
    that keeps ``e`` for its backward pass then forms ``e`` in one loop with its select (x read, e
    written) and the shifted value in another, fused into its consumer (x read again), instead of
    writing the shifted value and reading it back for the exponential: log_softmax's
    jit(value_and_grad) 2–3 % faster on XLA:CPU (its rule uses it there, where it was measured). The
    same bits, a NaN's sign included: the same subtraction of the same operands, and a negated
    comparison is False exactly where the original is True, NaN included."""
    mr = lax.squeeze(m, axes) if axes else m
    finite_m = lax.ne(lax.abs(mr), _full(mr, jnp.inf))
    m0 = keep(lax.select(finite_m, mr, _full(mr, 0)), axes, x.shape)
    at_inf = lax.select(lax.ne(x, keep(mr, axes, x.shape)), lax.sub(x, _full(x, jnp.inf)), _full(x, 0))
    return lax.select(keep(finite_m, axes, x.shape), lax.sub(x, m0), at_inf)


def _branch_backend() -> bool:
    """Where the branches (:func:`exp_sums`, :func:`unless_nan`) are taken at all: XLA:CPU with one
    device. On a GPU the host would read the predicate; over several devices a sharded predicate is
    an all-reduce in every call (one more collective in a data-parallel step: a softmax over short
    slices, sharded over 8 CPU devices, compiled with 2 all-reduces instead of 1)."""
    return backend() == "cpu" and jax.device_count() == 1


def _gate(x, mask, min_bytes) -> bool:
    """The branches' common gate: :func:`_branch_backend`, no mask, and at least ``min_bytes`` of
    ``x``."""
    return _branch_backend() and mask is None and math.prod(x.shape) * x.dtype.itemsize >= min_bytes


#: The smallest input (bytes) whose softmax, evaluated without gradient, takes jax.nn's kernel behind
#: a branch whatever its slices' length (:func:`branch_pays`; short slices from 1/16 of it).
BRANCH_MIN_BYTES = 1 << 18


def branch_pays(x, axes, mask) -> bool:
    """Whether softmax evaluated without gradient over ``axes`` should compute ``exp(x − m)`` and its
    sums by :func:`exp_sums`: on XLA:CPU, without a mask, from 256 KiB of input on, and over slices
    of at most ``ARITH_MAX_SLICE`` entries from 16 KiB on (``BRANCH_MIN_BYTES`` and 1/16 of it, so
    that setting it to 0 or out of reach turns both gates on or off). The branch costs a predicate
    on the slice sums and a cond per call and then runs jax.nn's kernels; the selects' cost grows
    with the number of slices (their per-slice select, and XLA:CPU's slow loop over slices of 12–48
    entries: "Short slices" in the docs) and, beyond the cache, with the second read of x. jit
    forward, fnnet / jax.nn, branch against selects, one run (``python -m benchmarks branch --ops
    softmax --shapes ...``, 100 rounds, the run tabled in the docs): rows of 10–40 at 16–160 KiB
    1.03–1.22 against 1.66–3.77, at 4 MiB 1.23 against 1.60 (at 10 KiB 1.23 against 1.25, at 4 × 4
    1.12 against 1.01); rows of 64–1024 from 256 KiB to 16 MiB 0.93–1.26 against 0.96–2.02 (at 4–8 MiB
    in rows of 1024, where x stays in this machine's 32 MiB cache, 1.00–1.01 against 0.96–0.97: the
    branch is kept there, at jax.nn's speed, for one gate), at 64 KiB 1.14–1.22 against 0.91–0.92
    (docs/reference/performance_dropin.md, "Large inputs and short slices"). The rules keep the
    selects (or the arithmetic shift) except softmax's over short slices (:func:`rule_branch_pays`):
    under a gradient the branch saved little and cost compile time. Decided from the static shape
    and the backend while the forward is traced."""
    short = slice_size(x, axes) <= ARITH_MAX_SLICE
    return _gate(x, mask, BRANCH_MIN_BYTES >> 4 if short else BRANCH_MIN_BYTES)


def rule_branch_pays(x, axes, mask) -> bool:
    """Whether softmax's rule (the forward beside a gradient) should compute ``exp(x − m)`` and its
    sums by :func:`exp_sums`, as the forward alone does: where :func:`branch_pays` says so over
    slices of at most ``ARITH_MAX_SLICE`` entries (from 16 KiB of input on). There the branch's
    plain kernel is what XLA:CPU runs fast and the arithmetic shift (:func:`arith_pays`) less so:
    jit(value_and_grad) at 2²⁰ entries in rows of 10, 16 and 32, fnnet / jax.nn, 0.99–1.00,
    0.92–0.98 and 0.96–1.02 against 1.64–1.70, 1.14–1.21 and 1.07–1.14 (two runs each of
    ``python -c "import fnnet._numerics as n; n.BRANCH_MIN_BYTES = B; from benchmarks.dropin import
    main; main(['--sections', 'jit', '--ops', 'softmax', '--width', 'W'])"``, B the default or out of
    reach), and its compile time unchanged (1.53–1.63 against 1.57–1.69× jax.nn's at rows of 16,
    the branch switched in the rule by a patch outside the repository). Over longer slices the rule
    keeps the selects: there the branch saved a few per cent under a gradient (the backward's passes
    dominate; 0.83–1.03 against 0.87–1.06 at 2¹⁶–2²⁰ entries in rows of 128–1024) but XLA compiled
    it in 1.48–1.54× jax.nn's time against 1.13–1.17× (the same patch, two runs each). Where the rule
    takes the branch, the value beside the gradient has the forward alone's bits."""
    return slice_size(x, axes) <= ARITH_MAX_SLICE and branch_pays(x, axes, mask)


#: The longest slice over which logsumexp's rule takes the branch (:func:`lse_rule_branch_pays`).
LSE_BRANCH_MAX_SLICE = 24


def lse_rule_branch_pays(x, axes, mask) -> bool:
    """Whether logsumexp's rule (without weights ``b``) should form ``exp(x − m)`` and its sums by
    :func:`exp_sums`: where :func:`rule_branch_pays` says so, over slices of at most
    ``LSE_BRANCH_MAX_SLICE`` entries. Over longer short slices its arithmetic shift
    (:func:`arith_pays`) runs faster than jax.nn's program: jit(value_and_grad) at 2²⁰ entries,
    fnnet / jax.nn, branch against the arithmetic shift, rows of 4, 10, 12, 16, 20, 24: 0.98, 0.99,
    1.01, 1.00, 0.98, 1.00 against 0.98, 1.23, 1.26, 1.03, 1.05, 1.03; rows of 28, 32, 40: 1.00, 1.00,
    0.99 against 0.50, 0.72, 0.67 (one run each of ``python -c "import fnnet._numerics as n;
    n.BRANCH_MIN_BYTES = B; from benchmarks.dropin import main; main(['--sections', 'jit', '--ops',
    'logsumexp(axis=-1)', '--width', 'W'])"``, B the default or 2⁶² for the arithmetic shift, with
    the branch allowed up to 40 entries by ``n.LSE_BRANCH_MAX_SLICE = 40``; the loop over B and W:
    docs/reference/performance_dropin.md, "Short slices")."""
    return slice_size(x, axes) <= LSE_BRANCH_MAX_SLICE and rule_branch_pays(x, axes, mask)


#: The smallest input (bytes) whose log_softmax, evaluated without gradient, takes jax.nn's formula
#: behind a branch (:func:`log_branch_pays`).
LOG_BRANCH_MIN_BYTES = 1 << 18


def log_branch_pays(x, mask) -> bool:
    """Whether log_softmax evaluated without gradient should compute jax.nn's formula
    and the tie rule's only over the slices where that gives NaN (:func:`unless_nan`, its predicate
    on the slice sums): on XLA:CPU with one device, without a mask, from 256 KiB of input on. jit
    forward, fnnet / jax.nn, branch against selects, one run (``python -m benchmarks branch --ops
    log_softmax --shapes ...``, 100 rounds): from 256 KiB 0.94–1.22 against 1.02–1.60 over rows of
    64–1024, 1.37–1.55 against 1.61–1.94 over rows of 16–40; at 128 KiB 1.03–1.09 against
    1.01–1.06, at 40–160 KiB over short rows 1.02–1.19 against 0.77–1.06
    (docs/reference/performance_dropin.md, "Large inputs and short slices"). Unlike softmax's, this
    gate does not depend on the slices' length."""
    return _gate(x, mask, LOG_BRANCH_MIN_BYTES)


#: From this many slices on (over the last axis), XLA:CPU runs jax.nn's whole softmax or log_softmax
#: (maximum, exponential, sum, quotient or logarithm) as one library kernel; below it, as four
#: (:func:`one_kernel_pays`).
ONE_KERNEL_MIN_SLICES = 4096

#: The longest slice over which that one kernel, with its predicate, beats the branch on the slice sums.
ONE_KERNEL_MAX_SLICE = 48


def one_kernel_pays(x, axes, mask) -> bool:
    """Whether softmax or log_softmax evaluated without gradient should be jax.nn's formula as it
    stands, with the tie rule's only over the slices where that gives NaN (:func:`unless_nan`, its
    predicate on the output's first entry of each slice, :func:`first_entries`): on XLA:CPU with one
    device, without a mask, over the last axis, from ``ONE_KERNEL_MIN_SLICES`` slices of at most
    ``ONE_KERNEL_MAX_SLICE`` entries on. From that many slices XLA:CPU (jax 0.10) compiles jax.nn's
    formula into one library kernel, whatever the slices' length (4095 × 10 compiles to four
    kernels; 4096 × 10, 8192 × 3 and 4096 × 1024 to one), which the predicate of the branch on the
    slice sums (:func:`exp_sums`, :func:`log_branch_pays`) takes apart, since the sums then have to
    be written. The output's first column is read instead: a read of every slice after the library
    kernel (over slices of ≤ 16 entries, of every cache line), which over long slices the sums'
    branch, reading one sum per slice, does not pay. jit
    forward, fnnet / jax.nn, one kernel against the sums' branch against the selects, two runs
    (``python -m benchmarks branch --ops softmax,log_softmax --shapes ...``, 100 rounds; the
    table in docs/reference/performance_dropin.md, "Many short slices"): over 4096–65536 slices of
    10–48 entries softmax 1.04–1.49 against 1.11–1.45 (4096 × 16 and 16384 × 16: 1.18–1.49
    against 1.16–1.45, even), log_softmax 1.06–1.38 against 1.34–1.72; over 4096 slices of 64
    softmax 1.07–1.12 against 1.06–1.18, log_softmax 1.11 against 0.92–0.98, hence the longest
    slice. Decided from the static shape and the backend while the forward is traced."""
    last = (x.ndim - 1,)
    return (_branch_backend() and mask is None and x.ndim >= 1 and tuple(axes) == last
            and 0 < x.shape[-1] <= ONE_KERNEL_MAX_SLICE and math.prod(x.shape[:-1]) >= ONE_KERNEL_MIN_SLICES)


def first_entries(y):
    """``y``'s first entry of every slice over its last axis: a predicate's probe for an output whose
    slices are NaN throughout or nowhere (jax.nn's softmax and log_softmax: a maximum of ±inf or a
    NaN in the slice makes every entry NaN, through the slice's sum)."""
    return lax.slice_in_dim(y, 0, 1, axis=y.ndim - 1)


def _tie_exp_sums(x, axes, e, s):
    """``(e, s)`` from the plain ``e = exp(x − m)`` and its sums, with :func:`shifted`'s rule where a
    slice's maximum m is ±inf. There ``x − m`` is NaN exactly at the entries equal to m (``inf − inf``;
    every entry of an all-−inf slice) and −inf elsewhere, so a NaN in ``e`` where ``x`` is not NaN
    marks a tied entry, whose exp(0) is 1; the others' exp(−inf) = 0 are already there. A finite
    slice has no NaN in ``e`` and keeps its values and its sum bit for bit; a slice holding a NaN
    keeps that NaN, and so a NaN sum."""
    tied = lax.bitwise_and(lax.ne(e, e), lax.eq(x, x))
    e = lax.select(tied, _full(e, 1), e)
    return e, lax.select(lax.ne(s, s), reduce_sum(e, axes), s)


def plain_exp_sums(x, axes):
    """``(e, s)`` as jax.nn forms them: ``e = exp(x − max x)``, ``s = Σe`` per slice (axes removed)."""
    m = lax.reduce_max(x, axes)
    e = lax.exp(lax.sub(x, keep(m, axes, x.shape)))
    return e, lax.reduce_sum(e, axes)


def _sum_is_nan(s):
    """Whether any entry of ``s`` is NaN, as one sum: one reduction to compile, where
    ``any(isnan(s))`` compiled as four small kernels on XLA:CPU. The sum is NaN when an entry is,
    and otherwise only when both +inf and −inf occur (finite entries may overflow to ±inf, which is
    not NaN). Slice sums of exponentials are at least 1 or +inf, softmax's outputs lie in [0, 1] and
    log_softmax's in [−inf, 0], so for them it is exact; for a loss per example, +inf beside −inf is
    a false alarm, on which the caller's exact branch runs (the same values, only slower)."""
    t = lax.reduce_sum(s, tuple(range(s.ndim)))
    return lax.ne(t, t)


@custom_vmap
def _any_nan(s):
    return _sum_is_nan(s)


@_any_nan.def_vmap
def _any_nan_vmap(axis_size, in_batched, s):
    # One predicate for the whole batch, not one per member: a batched predicate would make lax.cond
    # a select that evaluates both branches. Either branch gives every finite slice the same bits, so
    # a member whose slices are all finite loses nothing when a neighbour takes the tie branch.
    return _sum_is_nan(s), False


def _needs_exact(probe):
    """The branches' predicate: whether ``probe`` holds a NaN (:func:`_any_nan`, one answer per ``vmap``
    batch), read through an optimization barrier: without it XLA merged the predicate's sum with the
    reduction that formed ``probe`` (slice sums, a loss per example) into one over the whole input,
    a second pass over memory."""
    return _any_nan(lax.optimization_barrier(lax.stop_gradient(probe)))


def exp_sums(x, axes, negate=False):
    """``(e, s)``: ``e = exp(x − m)`` by :func:`shifted`'s rule and its slice sums ``s`` (axes removed),
    computed as jax.nn computes them, behind a branch taken only where a slice needs the tie rule.
    ``negate``: of ``−x`` (softmin), the negation inside the kernels that read x: the branch's
    operand is ``x`` itself, which is already in memory, where ``−x`` would have to be written for it
    (a pass over the input; the tie branch needs only x's NaNs, which −x shares).

    jax.nn's plain ``exp(x − max(x))`` is what XLA:CPU runs as one kernel (the maximum, the
    subtraction and the exponential a row at a time in cache); the per-slice select of the tie rule
    takes that kernel apart (docs/design.md). Here the plain form runs first; a slice whose maximum is
    ±inf (or that holds a NaN) gives a NaN sum, and only then does a ``lax.cond`` replace the slices
    with an infinite maximum by the tie rule's exact 0s and 1s (:func:`_tie_exp_sums`), leaving every
    other slice's values as they are: the same bits whichever branch ran. The predicate is one for a whole
    ``vmap`` batch (:func:`_any_nan`), so that vmap keeps the branch instead of evaluating both."""
    e, s = plain_exp_sums(lax.neg(x) if negate else x, axes)
    return lax.cond(_needs_exact(s), lambda x, e, s: _tie_exp_sums(x, axes, e, s), lambda x, e, s: (e, s),
                    x, e, s)


#: The smallest logits (bytes) whose softmax cross-entropy, evaluated without gradient, takes the
#: plain formula behind a branch (:func:`loss_branch_pays`).
LOSS_BRANCH_MIN_BYTES = 1 << 18


def loss_branch_pays(x, mask) -> bool:
    """Whether a softmax cross-entropy evaluated without gradient should compute the plain formula
    first and the exact one only where it gives a NaN (:func:`unless_nan`): on XLA:CPU, without a
    mask, from 256 KiB of logits on. The plain formula is optax's, whose kernels XLA:CPU runs without
    writing a logits-sized array; the exact one's selects (the tie rule, 0·log 0 = 0) add a loop
    that writes and reads one. jit forward, fnnet / optax, branch against selects (soft labels;
    integer labels): 4096 × 1000 0.96 against 2.61; 0.98 against 1.35; 1024 × 1024 0.99 against 1.05;
    1.00 against 1.45; 64 × 1024 (256 KiB) 1.02 against 1.29; 1.02 against 1.23; at 32 × 1024 and
    512 × 64 (128 KiB) the branch cost more than it saved (1.06–1.09 against 0.95–0.99), at 256 × 10
    1.16–1.23 against 0.90–0.95 (``python -m benchmarks branch``; docs/reference/performance_dropin.md,
    "Losses against optax"). Decided from the static shape
    and the backend while the forward is traced."""
    return _gate(x, mask, LOSS_BRANCH_MIN_BYTES)


def unless_nan(value, exact, *operands, probe=None):
    """``value``, a plain formula's result, with ``exact(*operands)``'s entries where it is NaN: the
    exact formula runs behind a ``lax.cond`` only when some entry is NaN, which is how the plain
    one's shortcuts show where they matter. Every other entry keeps the plain value's bits, whether
    or not the branch ran. The predicate (:func:`_needs_exact`) reads ``probe`` if given, else
    ``value``: a smaller array that holds a NaN exactly when ``value`` does (a slice sum for the
    slice's entries), so that the predicate does not read ``value`` again."""

    def fix(v, *o):
        return lax.select(lax.ne(v, v), exact(*o), v)

    return lax.cond(_needs_exact(value if probe is None else probe), fix, lambda v, *o: v, value, *operands)


def slice_sums(e, axes, mask):
    """Σe per slice (the axes removed), to divide by: a fully masked slice's 0 becomes 1 (otherwise
    Σe ≥ 1, the maximum contributes e⁰), so that its entries, all 0, stay 0."""
    s = reduce_sum(e, axes)
    if mask is not None:
        s = lax.select(lax.eq(s, _full(s, 0)), _full(s, 1), s)
    return s


def normalize(e, axes, mask):
    """``e / Σe``; a fully masked slice gives 0 (:func:`slice_sums`)."""
    return lax.div(e, keep(slice_sums(e, axes, mask), axes, e.shape))


def masked(v, mask):
    """``v`` with 0 where ``mask`` is False (``v`` itself without a mask)."""
    return v if mask is None else where(mask, v, 0.0)


def softmax_vjp(y, g, axes):
    """y ⊙ (g − ⟨g, y⟩): the transpose of J = diag(y) − y yᵀ (and, J being symmetric, its JVP)."""
    gy = lax.mul(g, y)
    return lax.mul(y, lax.sub(g, keep(reduce_sum(gy, axes), axes, y.shape)))


# ----- left-tail scaling --------------------------------------------------------------------------
# x·σ(x), σ(x)σ(−x)·g, ... are normal numbers down to x ≈ −91.7 in float32 (−715 in float64) while e^x
# is already subnormal below −87.3 (−708): a product formed through e^x loses up to all its bits there.
# So e^{−a} (a = |x|) is formed as e_s·E with e_s = e^{c−a} (a − c is exact: c is a multiple of ulp(a)
# and |a − c| ≤ a) and E = fl(e^{−c}) applied last, once the product is back in the normal range.
# c = 86: of the integers 40…90, e^{−86} is the one nearest a float in both float32 and float64
# (0.02 ULP; e^{−64} is 0.5 ULP off), and e^{−86} is still normal in float32. The shift applies from
# a > 64 on (a − 86 is still exact there, Sterbenz), so that products of e^{−a} with factors down to
# ~e^{−20} stay normal before the scale is applied.
SHIFT = 86.0
SHIFT_FROM = 64.0
E_SHIFT = math.exp(-SHIFT)


def exp_neg_scaled(a):
    """For a ≥ 0: (e, e_s, scale) with e = e^{−a} (may be subnormal) and e^{−a} = e_s·scale, e_s normal.
    float16 is not scaled: e^{22} overflows it, and its left tails are far below its range anyway."""
    if a.dtype == jnp.float16:
        e = jnp.exp(-a)
        return e, e, jnp.ones_like(a)
    big = a > SHIFT_FROM
    e_s = jnp.exp(where(big, SHIFT - a, -a))
    scale = where(big, jnp.asarray(E_SHIFT, a.dtype), jnp.asarray(1.0, a.dtype))
    return e_s * scale, e_s, scale


# ----- rules --------------------------------------------------------------------------------------


def unbroadcast(g, shape):
    """Sum a cotangent back to ``shape``: the rule for an input that was broadcast.

    Broadcasting copies an input along new leading axes and along axes of size 1; the adjoint of a
    copy is a sum, so the cotangent is summed over exactly those axes.
    """
    shape = tuple(shape)
    if g.shape == shape:
        return g
    lead = g.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(
        lead + i for i, s in enumerate(shape) if s == 1 and g.shape[lead + i] != 1
    )
    return jnp.sum(g, axis=axes).reshape(shape) if axes else g.reshape(shape)


def keep_nan(x, d):
    """The derivative ``d``, but NaN wherever the input is NaN (comparisons with NaN are False, so a
    masked rule would otherwise pick one of its constant branches)."""
    return where(jnp.isnan(x), x, d)
