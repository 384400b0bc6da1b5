"""Placeholder: filled in by the activations work."""
__all__: list[str] = []
