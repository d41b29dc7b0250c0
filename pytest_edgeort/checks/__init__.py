"""The checks an edge item runs (conformance, no CPU fallback, golden, latency, fuzz), free of pytest."""
