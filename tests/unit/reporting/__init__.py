"""Unit tests of pytest_edgeort.reporting."""
