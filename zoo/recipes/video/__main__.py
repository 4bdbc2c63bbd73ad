"""``python -m zoo.recipes.video``: render or load clips, train, evaluate with baselines and export a SavedModel."""

from zoo import config
from zoo.recipes.video.config import VideoConfig
from zoo.recipes.video.train import run

if __name__ == "__main__":
    run(config.load(VideoConfig, "video", description=__doc__))
