"""Activation functions: jax.nn's names, signatures and defaults, plus torch.nn.functional's extras.

Every function here is a :class:`fnnet.primitive.Primitive`'s public function: jitted, usable in
forward and reverse mode, and its reverse mode runs a hand-written rule (see ``docs/activations.md``).

Modules: ``smooth`` (sigmoid family, exponential units), ``piecewise`` (ReLU family, hard and shrink
functions, prelu, rrelu), ``normalizing`` (softmax family, glu, gumbel_softmax).
"""
from fnnet.activations import normalizing, piecewise
from fnnet.activations.normalizing import *  # noqa: F401,F403
from fnnet.activations.piecewise import *  # noqa: F401,F403
from fnnet.activations.smooth import (
    celu, elu, gelu, identity, log1mexp, log_sigmoid, mish, selu, sigmoid, silu, soft_sign,
    softplus, squareplus, swish, tanh, tanhshrink,
)

__all__ = [
    "celu", "elu", "gelu", "identity", "log1mexp", "log_sigmoid", "mish", "selu", "sigmoid", "silu",
    "soft_sign", "softplus", "squareplus", "swish", "tanh", "tanhshrink",
] + piecewise.__all__ + normalizing.__all__
