"""``python -m pytest_edgeort prepare SUITE -o OUT``: write a suite's model as the suite runs it (``[prepare]``
applied, from the same content-hash cache), for marker tests, other tools or a board by hand."""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path
from typing import Sequence

from ._text import file_sha256, model_label
from .config import MANIFEST
from .config.suite import load_suite
from .errors import EdgeError
from .items.prepared import suite_model_files
from .run import CACHE_DIR

HELP = "write a suite's model as the suite runs it ([prepare] applied) to a file"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("suite", type=Path, help=f"the suite folder (or its {MANIFEST})")
    parser.add_argument("-o", "--output", type=Path, required=True, help="the .onnx file to write")
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=Path(CACHE_DIR),
        help=f"the cache the prepared models live in (default: {CACHE_DIR}, as pytest run here uses)",
    )


def main(argv: Sequence[str]) -> int:
    """``python -m pytest_edgeort prepare ARGS``: parse ``argv`` and :func:`run` it."""
    parser = argparse.ArgumentParser(prog="python -m pytest_edgeort prepare", description=HELP)
    add_arguments(parser)
    return run(parser.parse_args(argv))


def run(args: argparse.Namespace) -> int:
    """Prepare (or reuse the cached preparation of) the suite's model and copy it to ``args.output``."""
    from .model.prepare import PrepareError

    manifest = args.suite if args.suite.name == MANIFEST else args.suite / MANIFEST
    try:
        suite = load_suite(manifest)
        files = suite_model_files(suite, args.cache_dir)
        args.output.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(files.model, args.output)
    except (EdgeError, PrepareError, OSError) as exc:
        print(f"pytest_edgeort prepare: {exc}", file=sys.stderr)
        return 1
    recipe = suite.prepare.to_mapping() if suite.prepare is not None else {}
    steps = ", ".join(step for step, value in recipe.items() if value)
    how = f"with [prepare] {steps} applied" if steps else f"as is ({manifest} has no [prepare])"
    print(f"wrote {args.output}: {model_label(files.name)} {how}; sha256 {file_sha256(args.output)}")
    return 0
