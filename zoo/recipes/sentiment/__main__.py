"""``python -m zoo.recipes.sentiment``: train, evaluate on the held-out test split and export a SavedModel."""

from zoo import config
from zoo.recipes.sentiment.config import SentimentConfig
from zoo.recipes.sentiment.train import run

if __name__ == "__main__":
    run(config.load(SentimentConfig, "sentiment", description=__doc__))
