"""The Python API: configure a recipe, run it, load what a run saved, predict.

    import zoo

    cfg = zoo.configure("sentiment", train={"epochs": 2})       # defaults, then a preset / file, then overrides
    run = zoo.run("sentiment", cfg)                               # train, evaluate, save, export
    run.report["metrics"], run.run_dir, run.saved_model
    zoo.load(run.run_dir).predict(["A gorgeous, witty film."])   # the SavedModel's answers, in this process
"""

from __future__ import annotations

from pathlib import Path

from zoo import config as config_lib
from zoo import recipes
from zoo.predictor import Predictor
from zoo.recipe import Recipe, Run
from zoo.recipe import run as run_recipe


def _recipe(recipe: str | Recipe) -> Recipe:
    return recipes.get(recipe) if isinstance(recipe, str) else recipe


def configure(recipe: str | Recipe, preset: str = config_lib.DEFAULT_PRESET, config_file: str | Path | None = None,
              **overrides):
    """The config of ``recipe``: its defaults, then ``preset``, then ``config_file`` (TOML), then ``overrides``
    given as ``section={key: value}`` (``train={"epochs": 2}``). Bad values raise `zoo.config.ConfigError`."""
    return _recipe(recipe).configure(preset, config_file, overrides)


def run(recipe: str | Recipe, cfg=None, **overrides) -> Run:
    """Trains, evaluates, saves and exports ``recipe`` with ``cfg`` (default: ``configure(recipe)``) and
    ``overrides`` on top; returns the `zoo.recipe.Run` (model, report, run directory, SavedModel path)."""
    recipe = _recipe(recipe)
    if cfg is None:
        cfg = recipe.configure(overrides=overrides)
    elif overrides:
        cfg = config_lib.build(type(cfg), config_lib.merge(config_lib.to_dict(cfg), overrides))
    return run_recipe(recipe, cfg)


def load(path: str | Path) -> Predictor:
    """The trained model of a run directory (``runs/<recipe>``) or of its ``model.keras``, ready to predict."""
    return Predictor.load(path)
