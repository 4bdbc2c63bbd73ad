"""The seven recipes, one package each with the same files: config, data, model, train (the `Recipe`) and a thin
``__main__``; presets beside them in ``presets/``.

This registry of names is the one place that knows them all: ``get(name)`` imports a recipe on demand, and
``register_custom_objects()`` imports every recipe's model module so that ``keras.models.load_model`` finds their
layers after a plain ``import zoo``.
"""

from __future__ import annotations

import importlib

NAMES = ("sentiment", "video", "ner", "music", "translation", "speech_ctc", "dna")


def get(name: str):
    """The `zoo.recipe.Recipe` called ``name``."""
    if name not in NAMES:
        raise KeyError(f"unknown recipe {name!r}; recipes: {', '.join(NAMES)}")
    return importlib.import_module(f"zoo.recipes.{name}.train").RECIPE


def register_custom_objects() -> None:
    """Imports every recipe's model module, whose Keras layers register themselves under the package ``zoo``."""
    for name in NAMES:
        importlib.import_module(f"zoo.recipes.{name}.model")
