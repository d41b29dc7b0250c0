"""The board side: the worker process and its wire format (stdlib + numpy + onnxruntime only)."""
