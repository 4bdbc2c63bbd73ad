"""TimeFolded: apply a per-step layer to every step of a sequence by folding time into the batch."""

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="zoo")
class TimeFolded(keras.layers.Wrapper):
    """Applies ``layer`` to every step of `(batch, time, ...)` input as one `(batch * time, ...)` call.

    A drop-in for ``keras.layers.TimeDistributed`` where the time axis is dynamic (variable-length clips, ragged
    batches): Keras 3.15's TimeDistributed maps over ``range(batch)`` instead of ``range(time)`` when time is not
    static, which silently truncates the sequence to the batch size when batch < time and fails with "slice index
    out of bounds" when batch > time. Folding is also one big call instead of a per-step loop, which is faster.
    Padded steps are computed like the others (the wrapped layer sees no mask); mask them downstream. A Keras mask
    on the input is passed on unchanged, since the time axis is.

    Args:
        layer: a `keras.layers.Layer` that maps one step `(batch, ...)` to `(batch, ...)`.

    Call args:
        inputs: tensor `(batch, time, *step_shape)`.

    Returns:
        Tensor `(batch, time, *layer_output_shape)`.
    """

    def __init__(self, layer, **kwargs):
        super().__init__(layer, **kwargs)
        self.supports_masking = True

    def build(self, input_shape):
        if not self.layer.built:
            self.layer.build((None, *input_shape[2:]))
        self.built = True

    def call(self, inputs, training=None):
        shape = tf.shape(inputs)
        folded = tf.reshape(inputs, tf.concat([[-1], shape[2:]], 0))
        kwargs = {"training": training} if self.layer._call_has_training_arg else {}
        outputs = self.layer(folded, **kwargs)
        return tf.reshape(outputs, tf.concat([shape[:2], tf.shape(outputs)[1:]], 0))

    def compute_output_shape(self, input_shape):
        step_shape = self.layer.compute_output_shape((None, *input_shape[2:]))
        return (input_shape[0], input_shape[1], *step_shape[1:])
