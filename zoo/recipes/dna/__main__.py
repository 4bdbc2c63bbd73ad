"""``python -m zoo.recipes.dna``: train, evaluate on the held-out genes and export a SavedModel."""

from zoo.cli import main

if __name__ == "__main__":
    main("dna")
