"""Unit tests, laid out like the package: pure functions and in-process objects, no pytester runs."""
