"""Small helpers every message and file writer shares: did-you-mean, one-line text, atomic writes, file hashes.

(The board package has its own copy of the file hash: it runs on boards with the standard library only.)
"""

from __future__ import annotations

import contextlib
import difflib
import hashlib
import os
from pathlib import Path
from typing import Iterable, Optional, Union


def closest(word: str, choices: Iterable[str]) -> Optional[str]:
    """The choice closest to ``word`` (a likely typo of it), or None when none is close."""
    close = difflib.get_close_matches(word, list(choices), n=1)
    return close[0] if close else None


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """``" (did you mean 'x'?)"`` for the closest of ``choices``, or ``""`` when none is close."""
    match = closest(word, choices)
    return f" (did you mean {match!r}?)" if match is not None else ""


def one_line(text: object, limit: Optional[int] = None) -> str:
    """``text`` with its whitespace collapsed to single spaces; beyond ``limit`` characters, its head
    and tail joined by ``" ... "`` (libraries such as ONNX Runtime put the reason at the end)."""
    line = " ".join(str(text).split())
    if limit is None or len(line) <= limit:
        return line
    head = limit // 3
    return f"{line[:head]} ... {line[-(limit - head - 5) :]}"


def atomic_write(path: Path, data: Union[str, bytes]) -> None:
    """Write ``data`` (str as UTF-8) via a temp file next to ``path`` and a rename, so a reader never
    sees half a file; on an error no temp file is left behind and the error propagates."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        if isinstance(data, str):
            tmp.write_text(data, encoding="utf-8")
        else:
            tmp.write_bytes(data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def file_sha256(path: Union[str, Path]) -> str:
    """The sha256 of a file's bytes, as hex, read in 1 MiB blocks (OSError propagates)."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def model_label(name: Union[Path, str]) -> str:
    """A model as messages name it: a path's file name, a ``pkg:`` source in full."""
    return name.name if isinstance(name, Path) else name


def missing_model(path: Path) -> str:
    """``model file not found: PATH (did you mean 'x.onnx'?)``, the hint from the ``.onnx`` files of its folder."""
    try:
        models = sorted(p.name for p in path.parent.glob("*.onnx"))
    except OSError:
        models = []
    return f"model file not found: {path}{did_you_mean(path.name, models)}"
