"""AppendToSteps: one vector per example appended to every step of a sequence."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="zoo")
class AppendToSteps(keras.layers.Layer):
    """Concatenates a per-example vector onto each step: `(batch, time, features)` and `(batch, width)` →
    `(batch, time, features + width)`.

    How a sequence model reads a condition that holds for the whole sequence (a class embedding, a style): every
    step sees it, so a step-by-step sampler can append the same vector to each step it feeds back. The mask of the
    sequence is unchanged and passes through.

    Call args:
        steps: float `(batch, time, features)`.
        vector: float `(batch, width)`.
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True

    def call(self, steps, vector):
        tiled = ops.broadcast_to(ops.expand_dims(vector, 1),
                                 (ops.shape(steps)[0], ops.shape(steps)[1], ops.shape(vector)[-1]))
        return ops.concatenate([steps, ops.cast(tiled, steps.dtype)], axis=-1)

    def compute_mask(self, steps, vector, mask=None):
        return mask

    def compute_output_shape(self, steps_shape, vector_shape):
        width = None if steps_shape[-1] is None or vector_shape[-1] is None else steps_shape[-1] + vector_shape[-1]
        return (*steps_shape[:-1], width)
