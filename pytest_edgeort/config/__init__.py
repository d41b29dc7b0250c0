"""What the user configures in files: device inventory, regression suites, provider aliases."""

from typing import Optional

MANIFEST = "edge_suite.toml"  #: the file that makes a folder a regression suite (pytest collects it)


def suite_of(nodeid: str) -> Optional[str]:
    """The suite file a node id belongs to (``example_suites/x/edge_suite.toml``), None for other tests."""
    path = nodeid.split("::")[0]
    return path if path.endswith(MANIFEST) else None
