"""``python -m pytest_edgeort COMMAND ...``: the plugin's commands outside pytest, one entry each in
:data:`COMMANDS` (its help, its arguments, what it runs); the exit status is the command's."""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from typing import Callable, Dict, Optional, Sequence

from . import prepare_command


@dataclass(frozen=True)
class Command:
    """A subcommand: one line of help, how it adds its arguments, and what it runs (returns the exit status)."""

    help: str
    arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


COMMANDS: Dict[str, Command] = {
    "prepare": Command(prepare_command.HELP, prepare_command.add_arguments, prepare_command.run),
}


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Parse ``argv`` (default: the command line) and run the command it names."""
    parser = argparse.ArgumentParser(prog="python -m pytest_edgeort")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, command in COMMANDS.items():
        command.arguments(commands.add_parser(name, help=command.help, description=command.help))
    args = parser.parse_args(argv)
    return COMMANDS[args.command].run(args)


if __name__ == "__main__":
    sys.exit(main())
