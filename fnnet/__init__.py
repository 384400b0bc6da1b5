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
from fnnet.activations import *  # noqa: F403  (exactly fnnet.activations.__all__)
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
