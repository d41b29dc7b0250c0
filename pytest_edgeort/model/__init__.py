"""Models as the host sees them: metadata, generated inputs, Hypothesis strategies, NPU preparation."""
