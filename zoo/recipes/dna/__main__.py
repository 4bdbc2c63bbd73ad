"""``python -m zoo.recipes.dna``: train, evaluate on the held-out genes and export a SavedModel."""

from zoo import config
from zoo.recipes.dna.config import DnaConfig
from zoo.recipes.dna.train import run

if __name__ == "__main__":
    run(config.load(DnaConfig, "dna", description=__doc__))
