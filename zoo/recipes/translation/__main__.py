"""``python -m zoo.recipes.translation``: train, evaluate BLEU/chrF on held-out books and export a SavedModel."""

from zoo import config
from zoo.recipes.translation.config import TranslationConfig
from zoo.recipes.translation.train import run

if __name__ == "__main__":
    run(config.load(TranslationConfig, "translation", description=__doc__))
