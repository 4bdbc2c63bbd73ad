"""Shared Keras 3 building blocks. Every layer is registered under the ``zoo`` package for `.keras` round trips."""

from zoo.layers.append_to_steps import AppendToSteps
from zoo.layers.attention import Attention
from zoo.layers.bag_linear import BagLinear
from zoo.layers.bert_encoder import BertEncoder
from zoo.layers.crf import CRF
from zoo.layers.ctc import CTC
from zoo.layers.masked_pooling import MaskedPooling
from zoo.layers.padding_mask import PaddingMask
from zoo.layers.recurrent_stack import RecurrentStack, guard_fully_masked_rows
from zoo.layers.sequence_input import SequenceInput
from zoo.layers.time_folded import TimeFolded
from zoo.layers.word_pieces import WordPieces

__all__ = ["AppendToSteps", "Attention", "BagLinear", "BertEncoder", "CRF", "CTC", "MaskedPooling", "PaddingMask",
           "RecurrentStack", "SequenceInput", "TimeFolded", "WordPieces", "guard_fully_masked_rows"]
