"""The lecture's experiments: each module measures one claim and draws its figure.

Run from the repository root: ``python -m experiments.NAME [--quick] [--out DIR]``, or all of them with
``python -m experiments.run_all [--quick]`` (``make experiments``; ``make figures`` redraws the
committed figures in docs/figures/). ``experiments._common`` holds their shared plumbing.
"""
