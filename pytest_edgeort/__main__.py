"""``python -m pytest_edgeort <command>``: the commands that run outside pytest, from one table."""

from __future__ import annotations

import importlib
import sys
from typing import Optional, Sequence

from ._text import did_you_mean

#: command -> ("module:function" taking the remaining arguments and returning the exit code, one line of help)
COMMANDS = {
    "diff": (
        "pytest_edgeort.reporting.diff_cli:main",
        "compare two --edge-report files; exit 1 when anything got worse",
    ),
    "prepare": (
        "pytest_edgeort.prepare_command:main",
        "write a suite's model as the suite runs it ([prepare] applied) to a file",
    ),
}

USAGE = "usage: python -m pytest_edgeort {%s} ..." % ",".join(COMMANDS)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Dispatch to the command named first; 2 (with the usage) for none or an unknown one."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        lines = [USAGE, *(f"  {name:10s} {help_}" for name, (_, help_) in COMMANDS.items())]
        print("\n".join(lines), file=sys.stdout if args else sys.stderr)
        return 0 if args else 2
    entry = COMMANDS.get(args[0])
    if entry is None:
        print(f"{USAGE}\nunknown command {args[0]!r}{did_you_mean(args[0], COMMANDS)}", file=sys.stderr)
        return 2
    module, function = entry[0].split(":")
    return int(getattr(importlib.import_module(module), function)(args[1:]))


if __name__ == "__main__":
    sys.exit(main())
