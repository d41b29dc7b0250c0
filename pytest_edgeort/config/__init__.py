"""What the user configures in files: device inventory, regression suites, provider aliases."""

MANIFEST = "edge_suite.toml"  #: the file that makes a folder a regression suite (pytest collects it)
