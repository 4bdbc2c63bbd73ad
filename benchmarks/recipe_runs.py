"""What the per-recipe benchmarks share: a recipe's config and prepared data from a ``name[:preset]`` spec, and
``model.fit`` passes timed in alternating rounds (these machines are noisy)."""

from __future__ import annotations

import time

import keras

from zoo import config as config_lib
from zoo import recipe as recipe_lib
from zoo import recipes


def configure(spec: str, overrides: dict | None = None):
    """The recipe named by ``spec`` (``name`` or ``name:preset``) and its config with ``overrides``."""
    name, _, preset = spec.partition(":")
    recipe = recipes.get(name)
    return recipe, recipe.configure(preset or config_lib.DEFAULT_PRESET, overrides=overrides)


def prepare(recipe, cfg) -> recipe_lib.Prepared:
    """The recipe's own data preparation of its splits, seeded as a run seeds it."""
    keras.utils.set_random_seed(cfg.train.seed)
    return recipe.prepare(cfg, recipe_lib.load_splits(recipe, cfg))


def alternating_fits(runs: dict, rounds: int) -> dict[object, list[float]]:
    """Seconds of one ``fit`` pass per round for each ``runs[key] = (model, dataset)``, the keys taking turns;
    round 0 is untimed (the first pass after another model is built retraces: measured 5x slower)."""
    seconds = {key: [] for key in runs}
    for round_ in range(rounds + 1):
        for key, (model, ds) in runs.items():
            start = time.perf_counter()
            model.fit(ds, epochs=1, verbose=0)
            if round_:
                seconds[key].append(time.perf_counter() - start)
    return seconds
