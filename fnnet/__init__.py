"""fnnet: neural-network layers differentiated by hand in JAX, and a gradient checker you can trust."""
from fnnet import activations
from fnnet.activations import *  # noqa: F401,F403  (jax.nn-compatible names at the top level)
from fnnet.primitive import Kink, Primitive, forward_mode, get, registry

__version__ = "0.1.0"
