"""``python -m zoo.recipes.music``: train, evaluate frame NLL on held-out pieces, generate MIDI and export."""

from zoo.cli import main

if __name__ == "__main__":
    main("music")
