"""``python -m zoo.recipes.ner``: train, evaluate on the held-out split and export a SavedModel."""

from zoo import config
from zoo.recipes.ner.config import NerConfig
from zoo.recipes.ner.train import run

if __name__ == "__main__":
    run(config.load(NerConfig, "ner", description=__doc__))
