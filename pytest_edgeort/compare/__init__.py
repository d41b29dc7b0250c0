"""Comparing outputs against a reference: tolerances, the comparison engine, error patterns, rendering."""
