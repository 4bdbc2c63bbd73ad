"""Models shared by several recipes."""

from zoo.models.sequence_tagger import SequenceTagger, average_taggers
from zoo.models.tag_f1 import TagF1

__all__ = ["SequenceTagger", "TagF1", "average_taggers"]
