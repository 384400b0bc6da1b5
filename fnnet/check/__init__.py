"""Gradient checking: a custom VJP against autodiff of a reference, finite differences, and structure.

Public surface: :func:`gradcheck`, :func:`assert_gradcheck`, :class:`GradCheckReport`.
See docs/reference/gradcheck.md for the maths (steps, Richardson error bars, tolerances, kinks, power).
"""

from .gradcheck import assert_gradcheck, gradcheck
from .report import Comparison, Entry, GradCheckReport

__all__ = ["gradcheck", "assert_gradcheck", "GradCheckReport", "Comparison", "Entry"]
