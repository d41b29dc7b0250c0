"""The checks an edge item runs (conformance, no CPU fallback, golden, latency), free of pytest."""
