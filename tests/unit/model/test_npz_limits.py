"""Crafted .npz files (a header that lies about its size, a deflate bomb) are refused before anything is allocated."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pytest

from pytest_edgeort.errors import InputError
from pytest_edgeort.model.inputs import NPZ_MAX_BYTES, load_npz


def npy_header(shape, descr: str = "<f4") -> bytes:
    out = io.BytesIO()
    np.lib.format.write_array_header_1_0(out, {"descr": descr, "fortran_order": False, "shape": shape})
    return out.getvalue()


def peak_rss_bytes() -> int:
    try:
        Path("/proc/self/clear_refs").write_text("5")  # resets the peak (VmHWM) where the kernel allows it
    except OSError:
        pass
    line = next(x for x in Path("/proc/self/status").read_text().splitlines() if x.startswith("VmHWM:"))
    return int(line.split()[1]) * 1024


def test_a_300_byte_file_claiming_a_286_gib_array_is_one_line_naming_it(tmp_path):
    path = tmp_path / "inputs.npz"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("x.npy", npy_header((286, 1024, 1024, 256)) + b"\0" * 64)
    assert path.stat().st_size < 400
    with pytest.raises(InputError) as info:
        load_npz(path)
    assert str(info.value) == (
        f"{path}: x.npy declares a float32 array of shape (286, 1024, 1024, 256) (307090161664 bytes) but holds "
        "64 bytes; refusing to load it"
    )


def test_a_deflate_bomb_is_refused_before_it_inflates(tmp_path):
    path = tmp_path / "calib.npz"
    size = NPZ_MAX_BYTES + 2**20
    zeros = bytes(2**24)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        with archive.open("x.npy", "w", force_zip64=True) as member:
            member.write(npy_header((size,), "|u1"))
            for start in range(0, size, len(zeros)):
                member.write(zeros[: min(len(zeros), size - start)])
    assert path.stat().st_size < 16 * 2**20  # (deflate level 1, fast to write: ~230 to 1)
    before = peak_rss_bytes()
    with pytest.raises(InputError, match=r"calib\.npz: its arrays declare 2148532224 bytes or more \(\d+ bytes on "):
        load_npz(path)
    assert peak_rss_bytes() - before < 256 * 2**20


def test_an_honest_npz_still_loads(tmp_path):
    path = tmp_path / "inputs.npz"
    np.savez_compressed(path, x=np.arange(12, dtype=np.float32).reshape(3, 4), y=np.zeros(0, np.int64))
    loaded = load_npz(path)
    assert loaded["x"].tolist() == np.arange(12).reshape(3, 4).tolist() and loaded["y"].shape == (0,)
