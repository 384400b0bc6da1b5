"""fnnet: neural-network layers differentiated by hand in JAX, and a gradient checker you can trust.

The public surface:

* activations (jax.nn's names, plus torch.nn.functional's extras): ``fnnet.relu``, ``fnnet.gelu``, ...
  also reachable as ``fnnet.activations.X``;
* ``fnnet.ops`` (arithmetic primitives), ``fnnet.layers`` (dense, init_dense, init_mlp, mlp),
  ``fnnet.losses`` (softmax cross-entropy, mse, sigmoid binary cross-entropy);
* ``fnnet.gradcheck`` / ``fnnet.assert_gradcheck``: cross-validate any custom gradient;
* ``fnnet.Graph``: backprop by topological sort with the hand rules only; ``fnnet.calculus``: Jacobians
  from the hand rules, shape convention against Jacobian form;
* ``fnnet.registry()``, ``fnnet.get(name)``: the primitives themselves (``fnnet.forward_mode(fn)``
  returns ``fn``: every public function works in forward mode).
"""
from fnnet import activations, calculus, layers, losses, ops
from fnnet.activations import *  # noqa: F401,F403  (jax.nn-compatible names at the top level)
from fnnet.check import GradCheckReport, assert_gradcheck, gradcheck
from fnnet.graph import Graph, GraphError
from fnnet.layers import dense, init_dense, init_mlp, mlp
from fnnet.primitive import Kink, Primitive, forward_mode, get, registry

__version__ = "0.1.0"

__all__ = [  # the activations (jax.nn's and torch's names) are listed in fnnet.activations.__all__
    "GradCheckReport", "Graph", "GraphError", "Kink", "Primitive",
    "activations", "assert_gradcheck", "calculus", "dense", "forward_mode", "get", "gradcheck",
    "init_dense", "init_mlp", "layers", "losses", "mlp", "ops", "registry",
    *activations.__all__,
]
