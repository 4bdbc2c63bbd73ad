"""MaskedPooling: sequence-to-one pooling that only looks at valid steps."""

import keras
import tensorflow as tf

_MODES = ("last", "mean", "max")


@keras.saving.register_keras_serializable(package="zoo")
class MaskedPooling(keras.layers.Layer):
    """Pools a right-padded sequence over its valid steps; several modes are concatenated.

    Args:
        modes: str or list of str from `"last"` (output at the last valid step), `"mean"` and `"max"` (over valid
            steps). With several modes the pooled vectors are concatenated in the given order.

    Call args:
        inputs: float tensor `(batch, time, features)`.
        mask: optional bool tensor `(batch, time)`; all steps are valid without it. A row with no valid step pools
            to zeros.

    Returns:
        Float tensor `(batch, features * len(modes))`.
    """

    def __init__(self, modes=("max",), **kwargs):
        super().__init__(**kwargs)
        modes = [modes] if isinstance(modes, str) else list(modes)
        bad = [m for m in modes if m not in _MODES]
        if not modes or bad:
            raise ValueError(f"modes must be a non-empty list drawn from {_MODES}, got {modes!r}")
        self.modes = modes
        self.supports_masking = True

    def call(self, inputs, mask=None):
        if mask is None:
            mask = tf.ones(tf.shape(inputs)[:2], dtype=tf.bool)
        mask = tf.cast(mask, tf.bool)
        valid = tf.cast(mask, inputs.dtype)[..., tf.newaxis]
        count = tf.reduce_sum(valid, axis=1)
        pooled = []
        for mode in self.modes:
            if mode == "mean":
                pooled.append(tf.reduce_sum(inputs * valid, axis=1) / tf.maximum(count, 1.0))
            elif mode == "max":
                lowest = tf.cast(inputs.dtype.min, inputs.dtype)
                best = tf.reduce_max(tf.where(mask[..., tf.newaxis], inputs, lowest), axis=1)
                pooled.append(tf.where(count > 0, best, tf.zeros_like(best)))
            else:
                last = tf.maximum(tf.reduce_sum(tf.cast(mask, tf.int32), axis=1) - 1, 0)
                # One extra step so a batch with no step at all still has an index 0 to gather (then zeroed).
                padded = tf.pad(inputs, [[0, 0], [0, 1], [0, 0]])
                pooled.append(tf.gather(padded, last, axis=1, batch_dims=1) * tf.cast(count > 0, inputs.dtype))
        return pooled[0] if len(pooled) == 1 else tf.concat(pooled, axis=-1)

    def compute_mask(self, inputs, mask=None):
        return None

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[-1] * len(self.modes))

    def get_config(self):
        return {**super().get_config(), "modes": list(self.modes)}
