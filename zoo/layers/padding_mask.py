"""PaddingMask: which steps of a right-padded id or token batch are real."""

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="zoo")
class PaddingMask(keras.layers.Layer):
    """Padded ids or strings `(batch, time)` → bool mask `(batch, time)`, False where the value is `padding`.

    For models whose input is itself padded (token strings padded with "", base ids padded with 0); the mask is
    passed on explicitly (`mask=`) like `SequenceInput`'s.

    Args:
        padding: int or str. The padding value.
    """

    def __init__(self, padding=0, **kwargs):
        super().__init__(**kwargs)
        self.padding = padding

    def call(self, inputs):
        return tf.not_equal(inputs, tf.constant(self.padding, dtype=inputs.dtype))

    def compute_output_spec(self, inputs):
        return keras.KerasTensor(inputs.shape, dtype="bool")

    def get_config(self):
        return {**super().get_config(), "padding": self.padding}
