"""Training steps on many devices: the batch sharded, and the hidden dimension sharded.

Two layouts of the same SGD step on a :class:`jax.sharding.Mesh`, both differentiated by fnnet's
hand-written rules (``jax.grad`` of :func:`fnnet.train.loss_fn` through the public primitives, or any
``loss_and_grad`` you pass, e.g. the explicit hand backprop :func:`fnnet.train.loss_and_grad`); the
update is :func:`fnnet.train.sgd`'s:

**Data parallel** (:func:`data_parallel`): the batch is split along its first axis over the mesh axis
``"data"``; every device holds all the parameters. The loss is a mean over the batch, so the gradient is
the mean of the per-shard gradients: one all-reduce per parameter.

**Hidden sharded** (:func:`hidden_sharded`), Megatron-style tensor parallelism: on a mesh
``("data", "model")`` the batch is split over ``"data"`` and the hidden units over ``"model"``. In pairs of
layers, the first dense layer's ``W`` (shape ``(out, in)``) is split along ``out`` (rows) and its ``b``
with it, so each device computes a slice of the hidden units and applies the activation to its slice with
no communication; the next layer's ``W`` is split along ``in`` (columns), so each device contracts its
slice and one all-reduce sums the partial products. The last layer (the classes) stays replicated when it
does not start a pair.

**Why GSPMD (``jax.jit`` with ``NamedSharding``) and not ``shard_map``** for the step itself: the hand
rules are written for whole (global) arrays. Under GSPMD the very same rule, e.g. dense's
``dW = gᵀx`` summed over the batch, runs on any layout and XLA inserts the collective (the sum over
the batch shards, the all-reduce of partial products); nothing in fnnet's rules knows about devices,
and a new layout is one table of ``PartitionSpec``s. Under ``shard_map`` each rule would see local blocks
and the collectives would have to be written into the rules or around them. For the data-parallel case,
where that is one ``pmean``, :func:`data_parallel_shard_map` spells it out, as documentation of what
GSPMD does and as a cross-check (the tests compare all three with one device).

Exactness: the multi-device gradient is the single-device gradient summed in a different order
(partial sums per shard, then an all-reduce), so it agrees to rounding, not bit for bit; in float32 the
relative difference is a few ulp of the gradient's norm (``tests/test_parallel.py`` asserts 1e-6).

Example::

    mesh = fnnet.parallel.make_mesh((8,), ("data",))
    layout = fnnet.parallel.data_parallel(mesh, params)
    step = fnnet.parallel.sgd_step(layout, lr=0.1)          # jax.grad through fnnet's hand rules
    params, x, y = layout.place(params, x, y)
    params, loss, grads = step(params, x, y)
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Sequence

import jax
from jax import lax
from jax.typing import ArrayLike
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from fnnet import train

__all__ = [
    "Layout",
    "make_mesh",
    "data_parallel",
    "hidden_sharded",
    "sgd_step",
    "data_parallel_shard_map",
]

LossAndGrad = Callable[[Any, jax.Array, jax.Array], tuple[jax.Array, Any]]


def make_mesh(
    shape: Sequence[int], axis_names: Sequence[str], devices: Sequence[jax.Device] | None = None
) -> Mesh:
    """A mesh of ``prod(shape)`` devices (the first ones of ``jax.devices()`` unless given).

    Raises ``ValueError`` naming the mesh shape and the device count when there are too few devices.
    """
    devices = list(jax.devices() if devices is None else devices)
    shape = tuple(int(s) for s in shape)
    n = 1
    for s in shape:
        n *= s
    if len(shape) != len(axis_names):
        raise ValueError(f"make_mesh: shape {shape} and axis_names {tuple(axis_names)} differ in length")
    if n > len(devices):
        raise ValueError(
            f"make_mesh: a mesh of shape {shape} needs {n} devices; {len(devices)} available "
            "(on CPU set XLA_FLAGS=--xla_force_host_platform_device_count=N before importing jax)"
        )
    import numpy as np

    return Mesh(np.asarray(devices[:n], dtype=object).reshape(shape), tuple(axis_names))


@dataclasses.dataclass(frozen=True)
class Layout:
    """Where each array of a training step lives: ``params`` a pytree of shardings matching the
    parameters, ``batch`` the sharding of the inputs and the labels (first axis split)."""

    mesh: Mesh
    params: Any
    batch: NamedSharding
    labels: NamedSharding

    def place(self, params: Any, x: ArrayLike, labels: ArrayLike) -> tuple[Any, jax.Array, jax.Array]:
        """``params``, ``x`` and ``labels`` moved onto the mesh in this layout."""
        return (
            jax.device_put(params, self.params),
            jax.device_put(x, self.batch),
            jax.device_put(labels, self.labels),
        )


def _check_batch_axis(mesh, axis):
    if axis is not None and axis not in mesh.axis_names:
        raise ValueError(f"mesh axes are {mesh.axis_names}; batch axis {axis!r} is not one of them")


def data_parallel(mesh: Mesh, params: Any, *, batch_axis: str = "data") -> Layout:
    """Batch split over ``batch_axis``, every parameter replicated on every device."""
    _check_batch_axis(mesh, batch_axis)
    replicated = NamedSharding(mesh, P())
    return Layout(
        mesh=mesh,
        params=jax.tree_util.tree_map(lambda _: replicated, params),
        batch=NamedSharding(mesh, P(batch_axis)),
        labels=NamedSharding(mesh, P(batch_axis)),
    )


def hidden_sharded(
    mesh: Mesh, params: Any, *, model_axis: str = "model", batch_axis: str | None = "data"
) -> Layout:
    """Hidden units split over ``model_axis`` (and the batch over ``batch_axis``, None for no split).

    ``params`` is an MLP: a list of ``{"W": (out, in), "b": (out,)}``. Layers go in pairs: layer ``i``
    (even, not the last) has ``W`` split on ``out`` and ``b`` with it; layer ``i + 1`` has ``W`` split on
    ``in`` and ``b`` replicated. A last layer that starts no pair is replicated. Raises ``ValueError``
    naming the layer and the dimension when a split dimension is not divisible by the axis size.
    """
    _check_batch_axis(mesh, batch_axis)
    if model_axis not in mesh.axis_names:
        raise ValueError(f"mesh axes are {mesh.axis_names}; model axis {model_axis!r} is not one of them")
    size = mesh.shape[model_axis]
    n = len(params)
    specs = []
    for i, layer in enumerate(params):
        out, inp = layer["W"].shape
        if i % 2 == 0 and i < n - 1:  # column-parallel: this layer's hidden units are split
            if out % size:
                raise ValueError(
                    f"hidden_sharded: params[{i}]['W'] has {out} output units, not divisible by "
                    f"the {size} devices of mesh axis {model_axis!r}"
                )
            specs.append({"W": P(model_axis, None), "b": P(model_axis)})
        elif i % 2 == 1:  # row-parallel: contracts the split hidden units, then one all-reduce
            specs.append({"W": P(None, model_axis), "b": P()})
        else:
            specs.append({"W": P(), "b": P()})
        extra = set(layer) - {"W", "b"}
        if extra:
            raise ValueError(f"hidden_sharded: params[{i}] has keys {sorted(extra)} besides 'W', 'b'")
    shardings = [{k: NamedSharding(mesh, s) for k, s in d.items()} for d in specs]
    return Layout(
        mesh=mesh,
        params=shardings,
        batch=NamedSharding(mesh, P(batch_axis)),
        labels=NamedSharding(mesh, P(batch_axis)),
    )


def _sgd(lr: float) -> Callable[[Any, Any], Any]:
    """``update(params, grads) -> new params``: :func:`fnnet.train.sgd`'s step, stateless."""
    optimizer = train.sgd(lr)

    def update(params, grads):
        updates, _ = optimizer.update(grads, optimizer.init(params), params)
        return train.apply_updates(params, updates)

    return update


def sgd_step(
    layout: Layout,
    lr: float,
    loss_and_grad: LossAndGrad | None = None,
    *,
    donate: bool = False,
) -> Callable[..., tuple[Any, jax.Array, Any]]:
    """A compiled SGD step ``step(params, x, labels) -> (new_params, loss, grads)`` in ``layout``.

    ``loss_and_grad(params, x, labels) -> (loss, grads)`` defaults to ``jax.value_and_grad`` of
    :func:`fnnet.train.loss_fn` (fnnet's MLP with relu and softmax cross-entropy: the hand rules under
    ``jax.grad``); pass :func:`fnnet.train.loss_and_grad` (the explicit hand backprop) to use that
    instead. Inputs and outputs are pinned to the layout (``in_shardings``/``out_shardings``); XLA's
    SPMD partitioner inserts the collectives. ``donate=True`` lets XLA reuse the parameters' buffers.
    """
    loss_and_grad = loss_and_grad or jax.value_and_grad(train.loss_fn)
    update = _sgd(lr)
    replicated = NamedSharding(layout.mesh, P())

    def step(params, x, labels):
        loss, grads = loss_and_grad(params, x, labels)
        return update(params, grads), loss, grads

    return jax.jit(
        step,
        in_shardings=(layout.params, layout.batch, layout.labels),
        out_shardings=(layout.params, replicated, layout.params),
        donate_argnums=(0,) if donate else (),
    )


def data_parallel_shard_map(
    mesh: Mesh,
    lr: float,
    loss_and_grad: LossAndGrad | None = None,
    *,
    batch_axis: str = "data",
) -> Callable[..., tuple[Any, jax.Array, Any]]:
    """The data-parallel step with its one collective written out (``shard_map``).

    Each device runs ``loss_and_grad`` on its slice of the batch, whole parameters in hand; the loss is a
    mean, and with equal slices the mean over the batch is the mean over devices of the per-slice means,
    so the gradient and the loss are ``pmean``-ed over ``batch_axis``. The update then runs identically
    on every device. Same signature and results as ``sgd_step(data_parallel(mesh, params), lr)``.
    """
    _check_batch_axis(mesh, batch_axis)
    loss_and_grad = loss_and_grad or jax.value_and_grad(train.loss_fn)
    update = _sgd(lr)
    shard_map: Any = getattr(jax, "shard_map", None)
    if shard_map is None:  # jax < 0.7
        from jax.experimental.shard_map import shard_map  # type: ignore[no-redef]

    def local(params, x, labels):
        loss, grads = loss_and_grad(params, x, labels)
        loss, grads = lax.pmean((loss, grads), batch_axis)
        return update(params, grads), loss, grads

    # check_vma=False: with replication checking on, jax.grad w.r.t. the replicated parameters would
    # insert the sum over devices by itself (the transpose of the implicit broadcast); here the one
    # collective is the explicit pmean above, which is the point of this variant.
    try:
        mapped = shard_map(
            local, mesh=mesh, in_specs=(P(), P(batch_axis), P(batch_axis)),
            out_specs=(P(), P(), P()), check_vma=False,
        )
    except TypeError:  # older spelling of the flag
        mapped = shard_map(
            local, mesh=mesh, in_specs=(P(), P(batch_axis), P(batch_axis)),
            out_specs=(P(), P(), P()), check_rep=False,
        )
    return jax.jit(mapped)
