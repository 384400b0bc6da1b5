"""fnnet: neural-network layers differentiated by hand in JAX, and a gradient checker you can trust.

The public surface:

* activations (jax.nn's names, plus torch.nn.functional's extras): ``fnnet.relu``, ``fnnet.gelu``, ...
  also reachable as ``fnnet.activations.X``;
* ``fnnet.ops`` (arithmetic primitives), ``fnnet.layers`` (affine, dense, init_dense, init_mlp, mlp),
  ``fnnet.losses`` (softmax cross-entropy, mse, sigmoid binary cross-entropy);
* ``fnnet.gradcheck`` / ``fnnet.assert_gradcheck``: cross-validate any custom gradient;
* ``fnnet.Graph``: backprop by topological sort with the hand rules only; ``fnnet.calculus``: Jacobians
  from the hand rules, shape convention against Jacobian form;
* ``fnnet.registry()``, ``fnnet.get(name)``, ``fnnet.Primitive``, ``fnnet.Kink``: the primitives
  themselves (``fnnet.primitive.define`` and ``elementwise`` declare new ones).
"""
from fnnet import activations as activations
from fnnet import calculus as calculus
from fnnet import layers as layers
from fnnet import losses as losses
from fnnet import ops as ops
from fnnet.activations import celu as celu
from fnnet.activations import elu as elu
from fnnet.activations import gelu as gelu
from fnnet.activations import glu as glu
from fnnet.activations import gumbel_softmax as gumbel_softmax
from fnnet.activations import hard_sigmoid as hard_sigmoid
from fnnet.activations import hard_silu as hard_silu
from fnnet.activations import hard_swish as hard_swish
from fnnet.activations import hard_tanh as hard_tanh
from fnnet.activations import hardshrink as hardshrink
from fnnet.activations import identity as identity
from fnnet.activations import leaky_relu as leaky_relu
from fnnet.activations import log1mexp as log1mexp
from fnnet.activations import log_sigmoid as log_sigmoid
from fnnet.activations import log_softmax as log_softmax
from fnnet.activations import logsumexp as logsumexp
from fnnet.activations import mish as mish
from fnnet.activations import prelu as prelu
from fnnet.activations import relu as relu
from fnnet.activations import relu6 as relu6
from fnnet.activations import rrelu as rrelu
from fnnet.activations import selu as selu
from fnnet.activations import sigmoid as sigmoid
from fnnet.activations import silu as silu
from fnnet.activations import soft_sign as soft_sign
from fnnet.activations import softmax as softmax
from fnnet.activations import softmin as softmin
from fnnet.activations import softplus as softplus
from fnnet.activations import softshrink as softshrink
from fnnet.activations import sparse_plus as sparse_plus
from fnnet.activations import sparse_sigmoid as sparse_sigmoid
from fnnet.activations import squareplus as squareplus
from fnnet.activations import swish as swish
from fnnet.activations import tanh as tanh
from fnnet.activations import tanhshrink as tanhshrink
from fnnet.activations import threshold as threshold
from fnnet.check import GradCheckReport as GradCheckReport
from fnnet.check import assert_gradcheck as assert_gradcheck
from fnnet.check import gradcheck as gradcheck
from fnnet.graph import Graph as Graph
from fnnet.graph import GraphError as GraphError
from fnnet.layers import dense as dense
from fnnet.layers import init_dense as init_dense
from fnnet.layers import init_mlp as init_mlp
from fnnet.layers import mlp as mlp
from fnnet.primitive import Kink as Kink
from fnnet.primitive import Primitive as Primitive
from fnnet.primitive import get as get
from fnnet.primitive import registry as registry

__version__ = "0.1.0"

__all__ = [
    "GradCheckReport", "Graph", "GraphError", "Kink", "Primitive",
    "activations", "assert_gradcheck", "calculus", "dense", "get", "gradcheck",
    "init_dense", "init_mlp", "layers", "losses", "mlp", "ops", "registry",
    *activations.__all__,
]
