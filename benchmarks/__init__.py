"""fnnet's benchmarks: is a hand-written backward pass as fast and as lean as XLA's own autodiff, and
is fnnet a drop-in for jax.nn and optax's losses at no cost? Not part of the fnnet package (the wheel ships none of it);
run from a source checkout:

    python -m benchmarks                  # the suite, quick: step, compile, memory, gradcheck (make bench)
    python -m benchmarks NAME [--quick] [options]    # one benchmark (python -m benchmarks NAME --help)

=============  ====================================================================================
step           one SGD step of a 784-w-w-w-10 MLP: fnnet, its explicit hand backprop, jax.grad of
               plain jnp (and PyTorch when installed); the roofline (the step's matrix products
               alone) in the same rounds (:mod:`benchmarks.step`)
compile        compile time of a deep MLP's step, layers run by lax.scan, against depth
               (:mod:`benchmarks.compile_time`)
memory         XLA's temporary bytes of each compiled step (:mod:`benchmarks.memory`)
gradcheck      fnnet.gradcheck's entries per second; ``--against`` torch's gradcheck and
               check_grads; ``--before REV`` a git revision (:mod:`benchmarks.gradcheck`)
activations    forward + backward time of every activation against jax.nn's
               (:mod:`benchmarks.activations`)
dropin         every activation shared with jax.nn: eager, jit, compile time, MLP memory
               (:mod:`benchmarks.dropin`)
losses         every loss shared with optax: jit, eager, compile time against optax's (or the
               losses' plain-jnp references) (:mod:`benchmarks.losses`)
branch         the forwards without gradient that take a plain formula behind a branch (softmax,
               log_softmax, the softmax cross-entropies), branch against selects, in the same rounds
               (:mod:`benchmarks.branch`)
report         markdown tables from the suite's ``--json`` output (:mod:`benchmarks.report`)
=============  ====================================================================================

Every comparison is measured side by side in one process, in interleaved rounds
(:mod:`benchmarks._timing`); docs/reference/performance.md and docs/reference/performance_dropin.md hold the figures.
"""
from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

#: name -> (module, arguments put before the user's): step, compile and memory are sections of the suite.
BENCHMARKS = {
    "step": ("benchmarks.suite", ["--only", "step"]),
    "compile": ("benchmarks.suite", ["--only", "compile"]),
    "memory": ("benchmarks.suite", ["--only", "memory"]),
    "gradcheck": ("benchmarks.gradcheck", []),
    "activations": ("benchmarks.activations", []),
    "dropin": ("benchmarks.dropin", []),
    "losses": ("benchmarks.losses", []),
    "branch": ("benchmarks.branch", []),
    "report": ("benchmarks.report", []),
}


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m benchmarks [NAME] [options]``: the suite without a name, else benchmark NAME."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0
    if argv and not argv[0].startswith("-"):
        name, rest = argv[0], argv[1:]
        if name not in BENCHMARKS:
            print(f"python -m benchmarks: unknown benchmark {name!r}; the benchmarks are "
                  f"{', '.join(BENCHMARKS)}", file=sys.stderr)
            return 2
        module, before = BENCHMARKS[name]
        return importlib.import_module(module).main(before + rest)
    return importlib.import_module("benchmarks.suite").main(argv)
