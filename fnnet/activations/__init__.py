"""Activation functions: jax.nn's names, signatures and defaults, plus torch.nn.functional's extras.

Every function here is a :class:`fnnet.primitive.Primitive`'s public function: jitted, usable in
forward and reverse mode, and its reverse mode runs a hand-written rule (see ``docs/activations.md``).

The modules are grouped by the kernel their rules share: ``_smooth`` (the sigmoid family, exponential
units, glu: σ′ and left-tail scaling), ``_piecewise`` (the ReLU family, hard, sparse and shrink
functions, threshold, prelu: selects on the input), ``_softmax`` (softmax, log_softmax, logsumexp,
softmin: the softmax kernel) and ``_stochastic`` (rrelu, gumbel_softmax: an explicit PRNG key).
"""
from fnnet.activations._piecewise import hard_sigmoid as hard_sigmoid
from fnnet.activations._piecewise import hard_silu as hard_silu
from fnnet.activations._piecewise import hard_swish as hard_swish
from fnnet.activations._piecewise import hard_tanh as hard_tanh
from fnnet.activations._piecewise import hardshrink as hardshrink
from fnnet.activations._piecewise import leaky_relu as leaky_relu
from fnnet.activations._piecewise import prelu as prelu
from fnnet.activations._piecewise import relu as relu
from fnnet.activations._piecewise import relu6 as relu6
from fnnet.activations._piecewise import softshrink as softshrink
from fnnet.activations._piecewise import sparse_plus as sparse_plus
from fnnet.activations._piecewise import sparse_sigmoid as sparse_sigmoid
from fnnet.activations._piecewise import threshold as threshold
from fnnet.activations._smooth import celu as celu
from fnnet.activations._smooth import elu as elu
from fnnet.activations._smooth import gelu as gelu
from fnnet.activations._smooth import glu as glu
from fnnet.activations._smooth import identity as identity
from fnnet.activations._smooth import log1mexp as log1mexp
from fnnet.activations._smooth import log_sigmoid as log_sigmoid
from fnnet.activations._smooth import mish as mish
from fnnet.activations._smooth import selu as selu
from fnnet.activations._smooth import sigmoid as sigmoid
from fnnet.activations._smooth import silu as silu
from fnnet.activations._smooth import soft_sign as soft_sign
from fnnet.activations._smooth import softplus as softplus
from fnnet.activations._smooth import squareplus as squareplus
from fnnet.activations._smooth import swish as swish
from fnnet.activations._smooth import tanh as tanh
from fnnet.activations._smooth import tanhshrink as tanhshrink
from fnnet.activations._softmax import log_softmax as log_softmax
from fnnet.activations._softmax import logsumexp as logsumexp
from fnnet.activations._softmax import softmax as softmax
from fnnet.activations._softmax import softmin as softmin
from fnnet.activations._stochastic import gumbel_softmax as gumbel_softmax
from fnnet.activations._stochastic import rrelu as rrelu

__all__ = [
    # smooth
    "celu", "elu", "gelu", "glu", "identity", "log1mexp", "log_sigmoid", "mish", "selu", "sigmoid",
    "silu", "soft_sign", "softplus", "squareplus", "swish", "tanh", "tanhshrink",
    # piecewise
    "hard_sigmoid", "hard_silu", "hard_swish", "hard_tanh", "hardshrink", "leaky_relu", "prelu", "relu",
    "relu6", "softshrink", "sparse_plus", "sparse_sigmoid", "threshold",
    # softmax family
    "log_softmax", "logsumexp", "softmax", "softmin",
    # stochastic
    "gumbel_softmax", "rrelu",
]
