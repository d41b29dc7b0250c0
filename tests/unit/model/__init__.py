"""Unit tests of pytest_edgeort.model."""
