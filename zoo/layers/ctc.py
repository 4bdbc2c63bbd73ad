"""CTC: connectionist temporal classification loss and decoding over per-frame logits with real lengths."""

import keras
import tensorflow as tf

_STRATEGIES = ("greedy", "beam_search")


@keras.saving.register_keras_serializable(package="zoo")
class CTC(keras.layers.Layer):
    """CTC head: the per-example loss for training and greedy or beam-search decoding for inference.

    `keras.losses.CTC` assumes every row uses the whole time dimension (keras#21876), so padded frames of short
    utterances would be scored as speech. This block always takes each row's real number of frames (from a mask
    or lengths) and, for the loss, each label sequence's real length. Both decoders are core TF ops
    (`CTCGreedyDecoder`, `CTCBeamSearchDecoder`), so decoding can live inside an exported serving graph.

    Args:
        blank_index: int. Class index of the CTC blank; labels must never use it.
        strategy: str. Default decoder, `"greedy"` (best class per frame, repeats merged, blanks dropped) or
            `"beam_search"` (prefix beam search over `beam_width` hypotheses).
        beam_width: int. Hypotheses kept by beam search, at least 1.

    Call args:
        logits: float tensor `(batch, time, num_classes)`, unnormalised scores per frame, right-padded.
        mask: optional bool tensor `(batch, time)`; which frames are valid.
        lengths: optional int tensor `(batch,)`; valid frames per row. Takes precedence over `mask`; without
            either every frame is valid.
        strategy: optional str overriding the layer's default decoder for this call.

    Returns:
        A tuple `(labels, scores)`: `labels` int32 `(batch, time)`, the decoded class ids of each row followed by
        -1 padding; `scores` float32 `(batch,)`, the decoder's score of the best path: for greedy the negated sum
        of the best frame log-probabilities (lower is more confident), for beam search the path's log probability
        (higher is more confident). Rows with 0 valid frames decode to nothing (score 0).
    """

    def __init__(self, blank_index=0, strategy="greedy", beam_width=16, **kwargs):
        super().__init__(**kwargs)
        if strategy not in _STRATEGIES:
            raise ValueError(f"strategy must be one of {_STRATEGIES}, got {strategy!r}")
        if beam_width < 1:
            raise ValueError(f"beam_width must be >= 1, got {beam_width}")
        self.blank_index = blank_index
        self.strategy = strategy
        self.beam_width = beam_width
        self.supports_masking = True

    @staticmethod
    def frame_lengths(logits, mask=None, lengths=None):
        """Valid frames per row `(batch,)` int32, from `lengths`, else `mask`, else the full time dimension."""
        if lengths is not None:
            return tf.cast(lengths, tf.int32)
        if mask is not None:
            return tf.reduce_sum(tf.cast(mask, tf.int32), axis=1)
        shape = tf.shape(logits)
        return tf.fill(shape[:1], shape[1])

    def loss(self, labels, label_lengths, logits, mask=None, lengths=None):
        """Negative log-likelihood of each row's label sequence, `(batch,)` float32.

        Args:
            labels: int tensor `(batch, max_label_length)`, right-padded with any value other than meaningful
                labels beyond `label_lengths`.
            label_lengths: int tensor `(batch,)`, real length of each label sequence.
            logits, mask, lengths: as in `call`.
        """
        frames = self.frame_lengths(logits, mask, lengths)
        return keras.ops.ctc_loss(tf.cast(labels, tf.int32), tf.cast(logits, tf.float32),
                                  tf.cast(label_lengths, tf.int32), frames, mask_index=self.blank_index)

    def call(self, logits, mask=None, lengths=None, strategy=None):
        strategy = strategy or self.strategy
        if strategy not in _STRATEGIES:
            raise ValueError(f"strategy must be one of {_STRATEGIES}, got {strategy!r}")
        frames = self.frame_lengths(logits, mask, lengths)
        log_probs = tf.nn.log_softmax(tf.cast(logits, tf.float32), axis=-1)
        # The decoders need at least one frame per row; empty rows decode one frame and are then blanked.
        log_probs = tf.pad(log_probs, [[0, 0], [0, tf.maximum(1 - tf.shape(log_probs)[1], 0)], [0, 0]])
        labels, scores = keras.ops.ctc_decode(log_probs, tf.maximum(frames, 1), strategy=strategy,
                                              beam_width=self.beam_width, top_paths=1, mask_index=self.blank_index)
        empty = tf.equal(frames, 0)
        labels = tf.where(empty[:, tf.newaxis], -1, labels[0][:, : tf.shape(logits)[1]])
        return labels, tf.where(empty, 0.0, scores[:, 0])

    def compute_output_spec(self, logits, mask=None, lengths=None, strategy=None):
        return (keras.KerasTensor(logits.shape[:2], dtype="int32"), keras.KerasTensor(logits.shape[:1]))

    def get_config(self):
        return {**super().get_config(), "blank_index": self.blank_index, "strategy": self.strategy,
                "beam_width": self.beam_width}
