"""``python -m zoo.recipes.video``: render or load clips, train, evaluate with baselines and export a SavedModel."""

from zoo.cli import main

if __name__ == "__main__":
    main("video")
