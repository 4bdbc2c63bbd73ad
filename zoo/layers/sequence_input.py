"""SequenceInput: the model boundary that turns ragged or padded input into right-padded dense + mask."""

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="zoo")
class SequenceInput(keras.layers.Layer):
    """Accepts a ragged batch or a padded batch and emits right-padded dense steps with a Keras mask.

    Keras 3 LSTM/GRU reject `tf.RaggedTensor` input ("Cannot index into an inner ragged dimension"), so variable-length
    batches are converted here, once, at the model boundary. Padding is always on the right, which the cuDNN kernels
    need.

    Args:
        pad_value: float or int. Value written into padded positions of the dense output.

    Call args:
        inputs: `tf.RaggedTensor` of shape `(batch, (time), ...)`, or a dense tensor `(batch, time, ...)` already
            right-padded.
        mask: optional bool tensor `(batch, time)`; for dense input, which steps are valid. Ignored for ragged input.
        lengths: optional int tensor `(batch,)`; for dense input, the number of valid steps of each row. Takes
            precedence over `mask`.

    Returns:
        A tuple `(dense, mask)`: the right-padded tensor `(batch, time, ...)` and the bool mask `(batch, time)`,
        which callers pass on explicitly (`mask=`) — explicit masks survive export and functional-model replay
        where implicit Keras masks would be recomputed from the padded tensor. For dense input without `mask` or
        `lengths` every step is valid.
    """

    def __init__(self, pad_value=0, **kwargs):
        super().__init__(**kwargs)
        self.pad_value = pad_value
        self.supports_masking = True  # accepts `mask=`; the mask it returns is explicit (compute_mask: None)

    def call(self, inputs, mask=None, lengths=None):
        if isinstance(inputs, tf.RaggedTensor):
            dense = inputs.to_tensor(default_value=tf.cast(self.pad_value, inputs.dtype))
            lengths = inputs.row_lengths()
        else:
            dense = tf.convert_to_tensor(inputs)
        if lengths is not None:
            mask = tf.sequence_mask(lengths, maxlen=tf.shape(dense)[1])
        elif mask is None:
            mask = tf.ones(tf.shape(dense)[:2], dtype=tf.bool)
        mask = tf.cast(mask, tf.bool)
        # Overwrite whatever sits in padded positions so padding content can never leak into a prediction.
        mask_b = tf.reshape(mask, tf.concat([tf.shape(mask), tf.ones([tf.rank(dense) - 2], tf.int32)], 0))
        dense = tf.where(mask_b, dense, tf.cast(self.pad_value, dense.dtype))
        return dense, mask

    def compute_mask(self, inputs, mask=None, lengths=None):
        return None

    def compute_output_spec(self, inputs, mask=None, lengths=None):
        return (keras.KerasTensor(inputs.shape, dtype=inputs.dtype),
                keras.KerasTensor(inputs.shape[:2], dtype="bool"))

    def get_config(self):
        return {**super().get_config(), "pad_value": self.pad_value}
