"""``python -m zoo.recipes.sentiment``: train, evaluate on the held-out test split and export a SavedModel."""

from zoo.cli import main

if __name__ == "__main__":
    main("sentiment")
