"""``python -m zoo.recipes.ner``: train, evaluate on the held-out split and export a SavedModel."""

from zoo.cli import main

if __name__ == "__main__":
    main("ner")
