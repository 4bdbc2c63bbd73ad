"""``python -m zoo.recipes.speech_ctc``: prepare data, train, evaluate on held-out speech and export a SavedModel."""

from zoo.cli import main

if __name__ == "__main__":
    main("speech_ctc")
