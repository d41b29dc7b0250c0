"""Unit tests of pytest_edgeort.board."""
