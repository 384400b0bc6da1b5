"""Gradient checking (see fnnet.check.gradcheck)."""
