"""Reading the plugin's TOML files (the device inventory, suites): the data, or one line on what is wrong with the file.

tomllib is imported on first use: a pytest run without an inventory or a suite never loads it (~2 ms of every run)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Dict


def read_toml(path: Path) -> Dict[str, Any]:
    """``path`` parsed; ValueError (one line, without the path) when it cannot be read or is not TOML."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - exercised on 3.9/3.10 only
        import tomli as tomllib
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        problem = f"invalid TOML: {exc}"
    except UnicodeDecodeError as exc:
        problem = f"not UTF-8 text (byte {exc.start}: {exc.object[exc.start : exc.start + 1]!r}); expected a TOML file"
    except OSError as exc:
        problem = f"cannot be read ({exc.strerror or exc}); expected a TOML file"
    raise ValueError(problem)
