"""The command line every recipe shares: ``python -m zoo.recipes.<name> [--preset P] [--config F] [--s.key V]``."""

from __future__ import annotations

import sys

from zoo import config as config_lib
from zoo import recipes
from zoo.data import fetch, files
from zoo.recipe import run


def main(name: str, argv: list[str] | None = None):
    """Parses the command line of recipe ``name`` and runs it; returns the `zoo.recipe.Run`."""
    recipe = recipes.get(name)
    cfg = config_lib.parse_args(recipe.config_class, f"python -m zoo.recipes.{name}", argv, recipe.presets_dir,
                                recipe.description)
    try:
        return run(recipe, cfg)
    except (files.FileFormatError, fetch.DataUnavailableError, FileNotFoundError) as error:
        # The user's data, not the zoo: one clear message (it names the file and line), no traceback.
        sys.exit(f"{name}: error: {error}")
