"""Activation functions: jax.nn's names, signatures and defaults, plus torch.nn.functional's extras.

Every function here is a :class:`fnnet.primitive.Primitive`'s public function: jitted, usable in
forward and reverse mode, and its reverse mode runs a hand-written rule (see ``docs/reference/activations.md``).

The modules are grouped by the kernel their rules share: ``_smooth`` (the sigmoid family, exponential
units, glu: σ′ and left-tail scaling), ``_piecewise`` (the ReLU family, hard, sparse and shrink
functions, threshold, prelu: selects on the input), ``_softmax`` (softmax, log_softmax, logsumexp,
logmeanexp, softmin: the softmax kernel), ``_standardize`` (jax.nn's standardize: the slice's mean and
variance) and ``_stochastic`` (rrelu, gumbel_softmax: an explicit PRNG key).
"""
# Each public name is listed once, in the ``__all__`` of the module that defines it; a star import takes
# exactly that list (and type checkers read it), so adding an activation touches its module only.
from fnnet.activations import _piecewise, _smooth, _softmax, _standardize, _stochastic
from fnnet.activations._piecewise import *  # noqa: F403
from fnnet.activations._smooth import *  # noqa: F403
from fnnet.activations._softmax import *  # noqa: F403
from fnnet.activations._standardize import *  # noqa: F403
from fnnet.activations._stochastic import *  # noqa: F403

__all__ = [*_smooth.__all__, *_piecewise.__all__, *_softmax.__all__, *_standardize.__all__, *_stochastic.__all__]
