"""What the user configures in files: device inventory, regression suites, provider aliases."""
