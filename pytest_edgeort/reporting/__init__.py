"""End-of-run output: the terminal summary, the JSON report and the HTML report."""
