"""``python -m zoo.recipes.music``: train, evaluate frame NLL on held-out pieces, generate MIDI and export."""

from zoo import config
from zoo.recipes.music.config import MusicConfig
from zoo.recipes.music.train import run

if __name__ == "__main__":
    run(config.load(MusicConfig, "music", description=__doc__))
