"""End-of-run output: the terminal summary and the JSON report."""
