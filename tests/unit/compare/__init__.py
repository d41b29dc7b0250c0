"""Unit tests of pytest_edgeort.compare."""
