r"""Training an MLP with the hand-written backward pass alone.

**Backprop as an explicit loop.** :func:`loss_and_grad` runs the network forward layer by layer with
each primitive's ``fwd`` (keeping its residuals on a tape), then walks the tape in reverse with each
primitive's ``bwd``: the loss rule gives δ_L = ∂ℓ/∂logits, and for every layer l = L … 1

.. math::

    δ ← δ ⊙ φ'(z_l)\ \text{(the activation's rule; none after the last layer)},\qquad
    \bar W_l = Σ_{batch} δ\, h_{l-1}^\top,\quad \bar b_l = Σ_{batch} δ,\quad δ ← δ W_l

(the dense rule). No ``jax.grad``, ``jax.vjp`` or ``custom_vjp`` is involved: only the rules written in
:mod:`fnnet.layers`, :mod:`fnnet.activations` and :mod:`fnnet.losses`. The tests check the result
against ``jax.value_and_grad`` of the same loss, in float32 and float64.

**Training.** Optimisers are pure ``(init, update)`` pairs over pytrees with optax's signature
(``update(grads, state, params) -> (updates, state)``; new params = params + updates), so any optax
optimiser plugs in where :func:`sgd` or :func:`momentum` does. :func:`make_step` builds one pure
training step; :func:`make_epoch` one whole epoch as a single compiled ``lax.scan`` over shuffled
minibatches (no Python loop per step); :func:`fit` loops over epochs in Python, one compiled call each,
with an optional progress callback.

The command line ``python -m fnnet train`` (argparse, per-dataset defaults, a progress bar) is
application code and lives in ``fnnet/_cli.py``; the datasets it loads are in :mod:`fnnet.datasets`.
"""
from __future__ import annotations

import functools
import math
import time
from typing import Any, Callable, Mapping, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike
from jax import lax

from fnnet import layers as _layers, losses as _losses, primitive as _primitive

__all__ = [
    "Optimizer",
    "sgd",
    "momentum",
    "apply_updates",
    "LOSSES",
    "activation_names",
    "loss_fn",
    "loss_and_grad",
    "make_step",
    "make_epoch",
    "accuracy",
    "evaluate",
    "EpochInfo",
    "FitResult",
    "fit",
]

Params = Sequence[Mapping[str, jax.Array]]
#: An activation: a name (``"relu"``), an fnnet public function, a ``functools.partial`` of one, or None.
Activation = Any


# ---------------------------------------------------------------------------------------------
# Resolving the activation and the loss to their primitives (fnnet.primitive.resolve)
# ---------------------------------------------------------------------------------------------


def _activation_rule(activation):
    """``(primitive, static)`` for an activation given by name, public function or partial.

    None means no activation (a linear network): ``(None, {})``. A ``functools.partial`` of a public
    fnnet function fixes hyperparameters (``partial(fnnet.leaky_relu, negative_slope=0.2)``).
    """
    if activation is None:
        return None, {}
    static: dict[str, Any] = {}
    fn = activation
    if isinstance(fn, functools.partial):
        if fn.args:
            raise TypeError(
                "fnnet.train: a partial activation may fix hyperparameters by keyword only; got "
                f"positional arguments {fn.args!r}"
            )
        static = dict(fn.keywords)
        fn = fn.func
    try:
        prim = _primitive.resolve(fn)
    except KeyError:
        raise ValueError(
            f"fnnet.train: unknown activation {fn!r}; known: {', '.join(activation_names())}"
        ) from None
    except TypeError:
        raise TypeError(
            "fnnet.train: the hand-written backward pass needs an activation with a hand-written rule "
            "(an fnnet activation, by name or function); got "
            f"{getattr(fn, '__name__', type(fn).__name__)!r}, which has none. Use jax.grad of "
            "fnnet.train.loss_fn for arbitrary functions."
        ) from None
    if len(prim.arg_names) != 1:
        raise ValueError(
            f"fnnet.train: activation {prim.name!r} takes arrays {prim.arg_names}; an activation "
            "takes one"
        )
    unknown = sorted(set(static) - set(prim.static_defaults))
    if unknown:
        raise TypeError(
            f"fnnet.train: activation {prim.name!r} has no hyperparameter {', '.join(unknown)}; "
            f"it has {', '.join(prim.static_defaults) or 'none'}"
        )
    return prim, {**prim.static_defaults, **static}


def activation_names() -> list[str]:
    """The activations by name for :func:`loss_and_grad` and ``--activation``: fnnet's elementwise
    one-array activations, aliases included (swish, hard_swish).

    Taken from ``fnnet.activations`` (not the whole registry, which also holds arithmetic such as
    ``exp``); non-elementwise ones (softmax) can still be passed by name or as a function.
    """
    import fnnet.activations as acts

    names = []
    for name in getattr(acts, "__all__", ()):
        p = getattr(getattr(acts, name, None), "primitive", None)
        if isinstance(p, _primitive.Primitive) and p.elementwise and len(p.arg_names) == 1:
            names.append(name)
    return sorted(names)


LOSSES = ("softmax_cross_entropy", "mse")
"""The training losses that :func:`loss_fn`, :func:`loss_and_grad` and :func:`fit` accept by name."""


def _loss_name(loss) -> str:
    """The name of a training loss given by name or as fnnet's public loss function."""
    try:
        name = _primitive.resolve(loss).name
    except KeyError:
        raise ValueError(f"fnnet.train: unknown loss {loss!r}; known: {', '.join(LOSSES)}") from None
    except TypeError:
        name = ""
    if name == "softmax_cross_entropy_with_integer_labels":  # the same training loss: integer labels
        name = "softmax_cross_entropy"  # select that form in _loss_call
    if name not in LOSSES:
        raise (ValueError if isinstance(loss, str) else TypeError)(
            f"fnnet.train: loss must be one of {', '.join(LOSSES)} (a name or fnnet's function); "
            f"got {loss!r}"
        )
    return name


def _targets(labels, logits):
    """Targets in the logits' shape and dtype for mse: integer class labels become one-hot rows.

    Float targets pass unchanged. An integer label outside ``[0, C)`` gives a row of NaN, so its loss
    is NaN (as fnnet.losses' integer-label cross-entropy makes it), never a silently wrong class.
    """
    if not jnp.issubdtype(labels.dtype, jnp.integer):
        return labels
    n_classes = logits.shape[-1]
    hot = (labels[..., None] == jnp.arange(n_classes, dtype=labels.dtype)).astype(logits.dtype)
    valid = (labels >= 0) & (labels < n_classes)
    return jnp.where(valid[..., None], hot, jnp.nan)


def _loss_call(loss, logits, labels):
    """``(primitive, arrays, static)``: the loss primitive of fnnet.losses that ``loss`` and the labels
    select, its array arguments and its other parameters.

    :func:`loss_fn` calls ``primitive.fn(*arrays, **static)``; :func:`loss_and_grad` its ``fwd`` and
    ``bwd`` with the same arguments. Integer labels of the cross-entropy go to
    ``softmax_cross_entropy_with_integer_labels`` (labels out of range give NaN there); float
    distributions to ``softmax_cross_entropy``; mse takes :func:`_targets`.
    """
    name = _loss_name(loss)
    labels = jnp.asarray(labels)
    if name == "softmax_cross_entropy" and jnp.issubdtype(labels.dtype, jnp.integer):
        prim = _primitive.resolve(_losses.softmax_cross_entropy_with_integer_labels)
        return prim, (logits,), {**prim.static_defaults, "labels": labels}
    prim = _primitive.resolve(name)
    return prim, (logits, _targets(labels, logits)), dict(prim.static_defaults)


# ---------------------------------------------------------------------------------------------
# The loss, and its gradient by the hand-written backward pass
# ---------------------------------------------------------------------------------------------


def _check_params(params, x):
    """Plain-Python checks of an MLP's params against the input, before anything is traced."""
    if isinstance(params, Mapping) or not isinstance(params, Sequence) or len(params) == 0:
        raise TypeError(
            "fnnet.train: params must be a non-empty list of dense dicts {'W': (out, in), 'b': (out,)} "
            f"(fnnet.layers.init_mlp); got {type(params).__name__}"
        )
    n_in = jnp.shape(x)[-1] if jnp.ndim(x) else None
    for i, layer in enumerate(params):
        if not isinstance(layer, Mapping) or "W" not in layer:
            raise TypeError(f"fnnet.train: params[{i}] must be a dict with key 'W'; got {layer!r:.80}")
        shape = tuple(jnp.shape(layer["W"]))
        if len(shape) != 2 or shape[1] != n_in:
            raise ValueError(
                f"fnnet.train: params[{i}]['W'] has shape {shape}; expected (n_out, {n_in}) to fit "
                + ("x" if i == 0 else f"params[{i - 1}]['W'] of shape {tuple(jnp.shape(params[i - 1]['W']))}")
            )
        n_in = shape[0]


def _check_labels(params, x, labels):
    """Plain-Python checks of the labels against the network's input and output, before tracing."""
    n_classes = int(jnp.shape(params[-1]["W"])[0])
    batch = tuple(jnp.shape(x)[:-1])
    dtype = getattr(labels, "dtype", None)
    if dtype is None:
        labels = np.asarray(labels)
        dtype = labels.dtype
    if jnp.issubdtype(dtype, jnp.integer) and dtype != jnp.bool_:
        if tuple(jnp.shape(labels)) != batch:
            raise ValueError(
                f"fnnet.train: integer labels of shape {tuple(jnp.shape(labels))} must have the batch "
                f"shape {batch} of x (shape {tuple(jnp.shape(x))})"
            )
        if not isinstance(labels, jax.core.Tracer):
            lab = np.asarray(labels)
            bad = (lab < 0) | (lab >= n_classes)
            if bad.any():
                idx = tuple(int(i) for i in np.argwhere(bad)[0])
                raise ValueError(
                    f"fnnet.train: label {int(lab[idx])} at index {idx} is out of range "
                    f"[0, {n_classes}) for a network with {n_classes} outputs"
                )
    elif jnp.issubdtype(dtype, jnp.floating):
        if tuple(jnp.shape(labels)) != batch + (n_classes,):
            raise ValueError(
                f"fnnet.train: float targets of shape {tuple(jnp.shape(labels))} must have the shape "
                f"of the network's output, {batch + (n_classes,)}"
            )
    else:
        raise TypeError(
            f"fnnet.train: labels must be integer classes or float targets; got dtype {dtype}"
        )


def loss_fn(
    params: Params, x: ArrayLike, labels: ArrayLike, *, activation: Activation = "relu",
    loss: str = "softmax_cross_entropy",
) -> jax.Array:
    """The mean training loss of ``mlp(params, x, activation)`` through fnnet's public functions.

    ``loss="softmax_cross_entropy"``: integer ``labels (batch,)`` go to
    ``softmax_cross_entropy_with_integer_labels``, float ``(batch, C)`` distributions to
    ``softmax_cross_entropy``. ``loss="mse"``: targets ``(batch, C)``, or integer labels, one-hot
    encoded. The result is the mean over the batch. Under ``jax.grad`` the gradient comes from the
    same hand rules applied by JAX's reverse mode through the public functions; :func:`loss_and_grad` applies them
    itself. The two agree to rounding (tests).
    """
    logits = _layers.mlp(params, x, activation=activation)
    prim, arrays, static = _loss_call(loss, logits, labels)
    return jnp.mean(prim.fn(*arrays, **static))


def loss_and_grad(
    params: Params, x: ArrayLike, labels: ArrayLike, *, activation: Activation = "relu",
    loss: str = "softmax_cross_entropy",
) -> tuple[jax.Array, list[dict[str, jax.Array]]]:
    r"""The mean loss of an MLP and its gradient, by the hand-written backward pass alone.

    Forward: :math:`h_0 = x`, :math:`z_l = h_{l-1} W_l^\top + b_l`, :math:`h_l = φ(z_l)` for
    l < L, logits :math:`z_L`, loss :math:`ℓ = \frac1N Σ_n \operatorname{loss}(z_{L,n}, y_n)`.
    Each primitive's ``fwd`` returns its output and the residuals its rule needs.

    Backward, from the seed :math:`∂ℓ/∂\operatorname{loss}_n = 1/N` (the mean's rule): the loss rule
    gives δ = ∂ℓ/∂z_L (for the cross-entropy, :math:`(p − e_y)/N`); then for l = L … 1 the dense rule
    gives :math:`\bar W_l = δ^\top h_{l-1}`, :math:`\bar b_l = Σ_n δ_n`, :math:`δ ← δ W_l`, and the
    activation's rule :math:`δ ← δ ⊙ φ'(z_{l-1})` (from its saved input or output).

    **Arguments:**

    - ``params``: a list of ``{"W": (n_out, n_in), "b": (n_out,)}`` (``"b"`` may be absent: b = 0,
      and the gradient then has no ``"b"`` either).
    - ``x``: ``(batch, n_in)``.
    - ``labels``: integer classes ``(batch,)`` (the cross-entropy's integer-label form; one-hot rows
      for mse), or float targets ``(batch, n_out)``: class distributions for the cross-entropy,
      values for mse.
    - ``activation``: an fnnet activation by name, public function, ``functools.partial`` of one (fixing
      hyperparameters, e.g. ``partial(fnnet.leaky_relu, negative_slope=0.2)``), or None (a linear
      network). Applied after every layer but the last.
    - ``loss``: ``"softmax_cross_entropy"`` (default) or ``"mse"``, or fnnet's function of that name.

    **Returns:** ``(loss, grads)``, ``grads`` with the structure, shapes and dtypes of ``params``.

    Pure and jittable; equal to ``jax.value_and_grad(loss_fn)`` up to rounding. Integer labels outside
    ``[0, n_out)`` raise ``ValueError`` when concrete; under ``jit`` they make the loss (and their
    examples' gradient) NaN, as fnnet.losses does.
    """
    act, act_static = _activation_rule(activation)
    _loss_name(loss)
    dense = _primitive.resolve("dense")
    _check_params(params, x)
    _check_labels(params, x, labels)

    # Forward, keeping each rule's residuals on a tape.
    tape = []
    h: Any = x
    last = len(params) - 1
    for i, layer in enumerate(params):
        W = layer["W"]
        b = layer["b"] if "b" in layer else jnp.zeros(W.shape[:1], W.dtype)
        z, dense_res = dense.fwd(W, b, h)
        if i < last and act is not None:
            h, act_res = act.fwd(z, **act_static)
        else:
            h, act_res = z, None
        tape.append((dense_res, act_res))
    prim, arrays, static = _loss_call(loss, h, labels)
    per_example, loss_res = prim.fwd(*arrays, **static)
    value = jnp.mean(per_example)

    # Backward: walk the tape in reverse, each rule turning ∂ℓ/∂(its output) into ∂ℓ/∂(its inputs).
    # The mean's rule seeds every example's loss with 1/N.
    g = jnp.full(per_example.shape, 1.0 / per_example.size, per_example.dtype)
    delta = prim.bwd(loss_res, g, **static)[0]  # the targets' cotangent is not needed
    grads: list = [None] * len(params)
    for i in range(last, -1, -1):
        dense_res, act_res = tape[i]
        if act_res is not None:
            (delta,) = act.bwd(act_res, delta, **act_static)
        gW, gb, delta = dense.bwd(dense_res, delta)  # layer 0's ∂ℓ/∂x is unused: jit drops it
        grads[i] = {"W": gW, "b": gb} if "b" in params[i] else {"W": gW}
    return value, grads


# ---------------------------------------------------------------------------------------------
# Optimisers: pure (init, update) pairs, optax's signature
# ---------------------------------------------------------------------------------------------


class Optimizer(NamedTuple):
    """A pure optimiser: ``state = init(params)``; ``updates, state = update(grads, state, params)``.

    New parameters are ``apply_updates(params, updates)`` (= params + updates). The signature is
    optax's ``GradientTransformation``, so an optax optimiser can be used wherever this is.
    """

    init: Callable[[Any], Any]
    update: Callable[..., tuple[Any, Any]]


def _check_rate(name, value, lo=0.0, hi=math.inf, lo_open=True, hi_open=False):
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and (value > lo if lo_open else value >= lo) and (value < hi if hi_open else value <= hi)
    if not ok:
        interval = f"{'(' if lo_open else '['}{lo}, {hi}{')' if hi_open else ']'}"
        raise ValueError(f"fnnet.train: {name} must be a finite number in {interval}; got {value!r}")
    return float(value)


def _scale(tree, factor):
    # factor is a Python float: weakly typed, so each leaf keeps its dtype (float32 stays float32).
    return jax.tree_util.tree_map(lambda t: factor * t, tree)


def sgd(learning_rate: float) -> Optimizer:
    r"""Plain gradient descent: :math:`θ ← θ − η\,∇ℓ`. No state."""
    lr = _check_rate("learning_rate", learning_rate)

    def init(params):
        return ()

    def update(grads, state, params=None):
        return _scale(grads, -lr), state

    return Optimizer(init, update)


def momentum(learning_rate: float, beta: float = 0.9, nesterov: bool = False) -> Optimizer:
    r"""SGD with (heavy-ball) momentum: :math:`v ← βv + ∇ℓ`, :math:`θ ← θ − ηv`.

    The velocity starts at 0. With ``nesterov=True`` the step is :math:`−η(∇ℓ + βv)` with the new
    :math:`v` (the gradient's look-ahead form). Same recurrence as ``torch.optim.SGD(momentum=β)`` and
    ``optax.sgd(η, momentum=β)``. State: the velocity, a pytree shaped like the params.
    """
    lr = _check_rate("learning_rate", learning_rate)
    beta = _check_rate("beta", beta, 0.0, 1.0, lo_open=False, hi_open=True)

    def init(params):
        return jax.tree_util.tree_map(jnp.zeros_like, params)

    def update(grads, velocity, params=None):
        velocity = jax.tree_util.tree_map(lambda v, g: beta * v + g, velocity, grads)
        direction = (
            jax.tree_util.tree_map(lambda v, g: g + beta * v, velocity, grads) if nesterov else velocity
        )
        return _scale(direction, -lr), velocity

    return Optimizer(init, update)


def apply_updates(params: Any, updates: Any) -> Any:
    """``params + updates`` leaf by leaf, each result in its parameter's dtype."""
    return jax.tree_util.tree_map(lambda p, u: (p + u.astype(p.dtype)), params, updates)


# ---------------------------------------------------------------------------------------------
# Steps and epochs
# ---------------------------------------------------------------------------------------------


def make_step(
    optimizer: Optimizer,
    *,
    activation: Activation = "relu",
    loss: str = "softmax_cross_entropy",
    grad_fn: Callable[..., Any] | None = None,
) -> Callable[..., tuple[Any, Any, jax.Array]]:
    """One pure training step ``step(params, opt_state, x, labels) -> (params, opt_state, loss)``.

    ``grad_fn(params, x, labels) -> (loss, grads)`` defaults to :func:`loss_and_grad` (the hand
    backprop) with ``activation`` and ``loss``; pass ``jax.value_and_grad(...)`` or a multi-device
    variant to compare or to scale out. Not jitted: jit it, scan it or shard it as you need.
    """
    if grad_fn is None:
        _activation_rule(activation)  # fail now, in plain Python, not inside a trace
        _loss_name(loss)
        grad_fn = functools.partial(loss_and_grad, activation=activation, loss=loss)

    def step(params, opt_state, x, labels):
        value, grads = grad_fn(params, x, labels)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return apply_updates(params, updates), opt_state, value

    return step


def _batches(key, x, labels, batch_size, shuffle):
    """``(n_batches, batch_size, ...)`` stacks of a shuffled copy of the data.

    The last ``n mod batch_size`` points of each shuffle are left out of that epoch; a fresh
    permutation each epoch means every point is used in the long run.
    """
    n = x.shape[0]
    b = min(batch_size, n)
    count = n // b
    idx = jax.random.permutation(key, n)[: count * b] if shuffle else jnp.arange(count * b)
    return (
        x[idx].reshape((count, b) + x.shape[1:]),
        labels[idx].reshape((count, b) + labels.shape[1:]),
    )


def make_epoch(
    step: Callable[..., Any], batch_size: int, *, shuffle: bool = True
) -> Callable[..., tuple[Any, Any, jax.Array]]:
    """One epoch as one compiled call: ``epoch(params, opt_state, x, labels, key) -> (params,
    opt_state, losses)``.

    The data are shuffled with ``key`` (unless ``shuffle=False``), cut into ``n // batch_size``
    minibatches, and ``step`` is run over them by a single ``lax.scan``; ``losses`` holds each step's
    loss, shape ``(n_batches,)``. A ``batch_size`` above n means full-batch steps.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"fnnet.train: batch_size must be a positive int; got {batch_size!r}")

    def body(carry, batch):
        params, opt_state = carry
        params, opt_state, value = step(params, opt_state, *batch)
        return (params, opt_state), value

    @jax.jit
    def epoch(params, opt_state, x, labels, key):
        xb, yb = _batches(key, x, labels, batch_size, shuffle)
        (params, opt_state), losses = lax.scan(body, (params, opt_state), (xb, yb))
        return params, opt_state, losses

    return epoch


# ---------------------------------------------------------------------------------------------
# Evaluation
# ---------------------------------------------------------------------------------------------


@functools.partial(jax.jit, static_argnames=("activation",))
def _predict(params, x, activation):
    return jnp.argmax(_layers.mlp(params, x, activation=activation), axis=-1)


def accuracy(params: Params, x: ArrayLike, labels: ArrayLike, *, activation: Activation = "relu") -> float:
    """The fraction of examples whose largest logit is at the true class.

    ``labels``: integer classes ``(batch,)``, or float targets ``(batch, C)`` whose largest entry is
    the class.
    """
    labels = jnp.asarray(labels)
    if jnp.issubdtype(labels.dtype, jnp.floating):
        labels = jnp.argmax(labels, axis=-1)
    pred = _predict(params, jnp.asarray(x), activation)
    return float(jnp.mean((pred.astype(labels.dtype) == labels).astype(jnp.float32)))


_loss_jit = jax.jit(loss_fn, static_argnames=("activation", "loss"))


def evaluate(
    params: Params, x: ArrayLike, labels: ArrayLike, *, activation: Activation = "relu",
    loss: str = "softmax_cross_entropy",
) -> dict[str, float]:
    """``{"loss": mean loss, "accuracy": fraction correct}`` on ``(x, labels)``."""
    value = _loss_jit(params, jnp.asarray(x), jnp.asarray(labels), activation=activation, loss=loss)
    return {"loss": float(value), "accuracy": accuracy(params, x, labels, activation=activation)}


# ---------------------------------------------------------------------------------------------
# The driver
# ---------------------------------------------------------------------------------------------


class EpochInfo(NamedTuple):
    """What :func:`fit` passes to its callback after every epoch (1-based ``epoch``)."""

    epoch: int
    epochs: int
    loss: float
    params: Any
    opt_state: Any
    seconds: float


class FitResult(NamedTuple):
    """``params`` and ``opt_state`` after training; ``losses``: the mean step loss of each epoch."""

    params: Any
    opt_state: Any
    losses: list


def fit(
    params: Params,
    x: ArrayLike,
    labels: ArrayLike,
    *,
    optimizer: Optimizer,
    epochs: int,
    batch_size: int,
    activation: Activation = "relu",
    loss: str = "softmax_cross_entropy",
    key: jax.Array | None = None,
    callback: Callable[[EpochInfo], Any] | None = None,
    grad_fn: Callable[..., Any] | None = None,
) -> FitResult:
    """Train for ``epochs`` epochs: a Python loop over epochs, each one compiled ``lax.scan``.

    ``key`` (default ``jax.random.key(0)``) drives the shuffles (one split per epoch).
    ``callback(info: EpochInfo)`` runs after each epoch (progress bars, logging, early inspection).
    ``grad_fn`` as in :func:`make_step`.
    """
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 0:
        raise ValueError(f"fnnet.train: epochs must be a non-negative int; got {epochs!r}")
    key = jax.random.key(0) if key is None else key
    x, labels = jnp.asarray(x), jnp.asarray(labels)
    _check_params(params, x)
    step = make_step(optimizer, activation=activation, loss=loss, grad_fn=grad_fn)
    run_epoch = make_epoch(step, batch_size)
    opt_state = optimizer.init(params)
    losses = []
    start = time.perf_counter()
    for e in range(1, epochs + 1):
        key, sub = jax.random.split(key)
        params, opt_state, step_losses = run_epoch(params, opt_state, x, labels, sub)
        losses.append(float(jnp.mean(step_losses)))
        if callback is not None:
            callback(EpochInfo(e, epochs, losses[-1], params, opt_state, time.perf_counter() - start))
    return FitResult(params, opt_state, losses)
