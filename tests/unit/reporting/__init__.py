"""Unit tests of pytest_edgeort.config."""
