"""``python -m zoo.recipes.speech_ctc``: prepare data, train, evaluate on held-out speech and export a SavedModel."""

from zoo import config
from zoo.recipes.speech_ctc.config import SpeechConfig
from zoo.recipes.speech_ctc.train import run

if __name__ == "__main__":
    run(config.load(SpeechConfig, "speech_ctc", description=__doc__))
