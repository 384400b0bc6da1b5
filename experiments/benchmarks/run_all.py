"""Every benchmark, quick by default: `python experiments/benchmarks/run_all.py [--full] [--json out.json]`.

Same as `python -m fnnet bench`; docs/performance.md holds the figures it printed and how to read them.
"""
import sys

from fnnet.bench import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
