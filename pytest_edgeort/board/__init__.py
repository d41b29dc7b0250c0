"""Board side: the self-contained worker process that runs ONNX Runtime sessions (stdlib + numpy + onnxruntime only)."""
