"""The network the benchmarks train: an MNIST-shaped MLP, its plain-jnp twin, and the SGD step.

fnnet's side is :mod:`fnnet.train`'s: ``train.loss_fn`` (differentiated by ``jax.grad`` through the
hand rules), ``train.loss_and_grad`` (the explicit reverse loop) and the update of ``train.sgd``. The
baseline is the same MLP and loss written in plain ``jax.numpy``, differentiated by XLA's autodiff.
"""
from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp

from fnnet import layers, train

BATCH = 256
WIDTHS = (128, 512, 2048)
LR = 0.01


def mlp_sizes(width: int, n_in: int = 784, n_out: int = 10, hidden: int = 3) -> list[int]:
    """``[n_in, width × hidden, n_out]``: an MNIST-shaped MLP (784-w-w-w-10)."""
    return [n_in] + [width] * hidden + [n_out]


def plain_cross_entropy(logits, labels):
    """Softmax cross-entropy per example in plain jnp: ``logsumexp(z) − z_label``."""
    lse = jax.nn.logsumexp(logits, axis=-1)
    return lse - jnp.take_along_axis(logits, labels[:, None], axis=-1)[:, 0]


def plain_loss(params, x, labels):
    """The MLP (relu) and loss of ``train.loss_fn`` in plain jnp, differentiated by ``jax.grad``."""
    h = x
    for i, layer in enumerate(params):
        h = h @ layer["W"].T + layer["b"]
        if i < len(params) - 1:
            h = jnp.maximum(h, 0)
    return jnp.mean(plain_cross_entropy(h, labels))


def sgd_step(grad_fn: Callable[..., Any]) -> Callable[..., tuple[Any, jax.Array]]:
    """``step(params, x, labels) -> (new_params, loss)``: ``train.make_step`` with ``train.sgd(LR)``
    (stateless) and ``grad_fn(params, x, labels) -> (loss, grads)``."""
    step = train.make_step(train.sgd(LR), grad_fn=grad_fn)

    def run(params, x, labels):
        params, _, loss = step(params, (), x, labels)
        return params, loss

    return run


def make_steps() -> dict[str, Callable]:
    """Uncompiled training steps ``step(params, x, labels) -> (new_params, loss)`` by name."""
    return {
        "fnnet": sgd_step(jax.value_and_grad(train.loss_fn)),
        "jax": sgd_step(jax.value_and_grad(plain_loss)),
        "hand": sgd_step(train.loss_and_grad),
    }


def problem(sizes, batch: int, seed: int = 0):
    """``(params, x, labels)``: He-initialised float32 params of an MLP of ``sizes``, a random batch."""
    kp, kx, ky = jax.random.split(jax.random.key(seed), 3)
    params = layers.init_mlp(kp, sizes, init="he", dtype=jnp.float32)
    x = jax.random.normal(kx, (batch, sizes[0]), jnp.float32)
    labels = jax.random.randint(ky, (batch,), 0, sizes[-1])
    return params, x, labels
