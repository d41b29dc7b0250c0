"""pytest-edgeort: on-device ONNX model conformance testing with pytest."""

__version__ = "0.1.0"

from .errors import ComparisonError

__all__ = ["ComparisonError"]
