"""Regenerate inputs.npz / calib.npz: the same real-image crops as ../ppocr_det (see its make_data.py),
so the two suites differ only in preparation (this one leaves the Erf-GELUs unfused).

    python example_suites/ppocr_det_erf_cpu_op/make_data.py
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

HERE = Path(__file__).parent


def main() -> None:
    spec = importlib.util.spec_from_file_location("ppocr_det_make_data", HERE.parent / "ppocr_det" / "make_data.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    mod.HERE = HERE  # write here instead of ../ppocr_det
    mod.main()


if __name__ == "__main__":
    main()
