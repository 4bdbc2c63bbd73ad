"""Predictor: a trained model with its recipe and settings; Python inputs in, the served answers out."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from zoo import config as config_lib
from zoo.training import CONFIG_FILE, MODEL_FILE


def _as_python(value) -> np.ndarray:
    """A signature output as NumPy, with strings decoded from UTF-8 (the SavedModel returns bytes)."""
    array = value.numpy()
    if array.dtype == object:
        return np.vectorize(lambda b: b.decode("utf-8", errors="replace"), otypes=[object])(array)
    return array


class Predictor:
    """Runs a recipe's ``serving_default`` function on Python inputs, in this process.

    The function is the one the SavedModel exports, built from the same model and settings, so its answers have
    the same names and meaning: for example ``Predictor(...).predict(["a gorgeous film"])["rating"]`` is the 1-5
    rating that ``serving_default(text=...)`` returns.

    Args:
        recipe: the `zoo.recipe.Recipe`.
        config: the recipe's config (the one the model was trained with).
        model: the trained end-to-end Keras model (`Run.model`, or `model.keras` loaded).
    """

    def __init__(self, recipe, config, model):
        self.recipe, self.config, self.model = recipe, config, model
        self._endpoints = None

    @property
    def endpoints(self) -> dict:
        """The serving signatures as ``tf.function``s (traced on first use)."""
        if self._endpoints is None:
            self._endpoints = self.recipe.endpoints(self.config, self.model)
        return self._endpoints

    def predict(self, inputs, **options) -> dict[str, np.ndarray]:
        """``inputs`` as the recipe takes them (a list of strings, of arrays, ...; see its README) → the decoded
        outputs of ``serving_default`` as NumPy arrays (strings as ``str``)."""
        outputs = self.endpoints["serving_default"](**self.recipe.request(self.config, inputs, **options))
        return {name: _as_python(value) for name, value in outputs.items()}

    @classmethod
    def load(cls, path: str | Path) -> "Predictor":
        """The model of a run directory (or a ``model.keras`` inside one), with the settings of its
        ``config.json``."""
        import keras

        from zoo import recipes

        path = Path(path)
        model_path = path / MODEL_FILE if path.is_dir() else path
        record_path = model_path.parent / CONFIG_FILE
        if not model_path.is_file():
            raise FileNotFoundError(f"no trained model at {model_path}")
        if not record_path.is_file():
            raise FileNotFoundError(f"{record_path} is missing: it names the recipe and settings of {model_path}")
        record = json.loads(record_path.read_text())
        recipe = recipes.get(record["recipe"])
        cfg = config_lib.build(recipe.config_class, record["config"])
        return cls(recipe, cfg, keras.models.load_model(model_path))
