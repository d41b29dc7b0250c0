"""A suite's models made ready to run: its model and float baseline resolved and, with ``[prepare]``, prepared
(cached by content hash under ``.edgeort-cache/prepared``), for suite items, ``edge_model(suite=...)`` markers and
``python -m pytest_edgeort prepare``."""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple, Optional, Union

from ..config.suite import Suite

PREPARED_DIR = "prepared"  # under the run's cache folder (.edgeort-cache)


def user_name(spec: str, path: Path) -> Union[Path, str]:
    """How records and messages name a suite's model: its ``pkg:`` source, else its path."""
    return spec if spec.startswith("pkg:") else path


class SuiteModelFiles(NamedTuple):
    """The files a suite runs (``model`` prepared where it has ``[prepare]``), and the user's names for them."""

    model: Path
    float_model: Optional[Path]
    name: Union[Path, str]
    float_name: Union[Path, str, None]


def suite_model_files(suite: Suite, cache: Path) -> SuiteModelFiles:
    """Resolve ``suite``'s model and float baseline and prepare them into ``cache`` (``.edgeort-cache``);
    SuiteError, MissingPackage or PrepareError (one line) when that fails."""
    source = suite.resolve_model(suite.model, "model")
    float_source = suite.resolve_model(suite.float_model, "float_model") if suite.float_model else None
    name = user_name(suite.model, source)
    float_name = user_name(suite.float_model, float_source) if suite.float_model and float_source else name
    model, float_model = source, float_source
    if suite.prepare is not None:
        from ..model.prepare import prepare_model

        recipe, folder = suite.prepare, cache / PREPARED_DIR
        model = prepare_model(source, recipe, suite.folder, folder)
        float_recipe = recipe.float_baseline()
        if float_source is not None:
            float_model = (
                float_source
                if float_recipe.is_empty
                else prepare_model(float_source, float_recipe, suite.folder, folder)
            )
        elif recipe.quantize:
            float_model = prepare_model(source, float_recipe, suite.folder, folder)
    return SuiteModelFiles(model, float_model, name, float_name if float_model is not None else None)
