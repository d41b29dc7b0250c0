"""Public home of the Hypothesis strategies: ``pytest_edgeort.strategies.inputs_for(model)``."""

from .model.strategies import inputs_for

__all__ = ["inputs_for"]
