"""Benchmark 'compile' of fnnet.bench alone: `python experiments/benchmarks/compile_depth.py [--quick|--full] [options]`.

The measurement code lives in fnnet/bench.py (so that `python -m fnnet bench` runs it too); see that
module's docstring and docs/performance.md for what is measured and how.
"""
import sys

from fnnet.bench import main

if __name__ == "__main__":
    sys.exit(main(["--only", "compile", *sys.argv[1:]]))
