"""Developer tools: measuring a suite model on the QNN HTP simulator (run as ``python -m tools.<name>``)."""
