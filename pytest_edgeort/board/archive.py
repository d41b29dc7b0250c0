"""Imports the worker's package from the zipapp's verified bytes in memory (never from the file again).

The host's bootstrap reads the zipapp once, checks its sha256, and then runs it from those bytes:
it executes this module's source from the archive, calls :func:`install`, then runs the archive's
``__main__.py``. So a file swapped on the board after the check never runs. Standard library only,
and no imports of its own package: it runs before that package can be imported. (Not an
``importlib.abc`` subclass: that module imports ``importlib.resources``, ~8 ms of every worker's start.)
"""

import sys
from importlib.machinery import ModuleSpec


class ArchiveImporter:
    """A meta path finder and loader of the modules and packages stored in an open :class:`zipfile.ZipFile`."""

    def __init__(self, archive, path):
        self.archive = archive
        self.path = path  # the zipapp's path on the board, for tracebacks
        self.names = frozenset(archive.namelist())

    def find_spec(self, fullname, path=None, target=None):
        base = fullname.replace(".", "/")
        for entry, package in ((base + "/__init__.py", True), (base + ".py", False)):
            if entry in self.names:
                return ModuleSpec(fullname, self, origin=self.path + "/" + entry, is_package=package)
        return None

    def create_module(self, spec):
        return None  # the default module object

    def exec_module(self, module):
        origin = module.__spec__.origin
        code = compile(self.archive.read(origin[len(self.path) + 1 :]), origin, "exec")
        exec(code, module.__dict__)


def install(archive, path):
    """Make the modules of ``archive`` importable (ahead of anything else on ``sys.path``)."""
    sys.meta_path.insert(0, ArchiveImporter(archive, path))
