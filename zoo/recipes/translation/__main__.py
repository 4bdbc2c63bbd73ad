"""``python -m zoo.recipes.translation``: train, evaluate BLEU/chrF on held-out books and export a SavedModel."""

from zoo.cli import main

if __name__ == "__main__":
    main("translation")
