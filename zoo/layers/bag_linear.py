"""BagLinear: a linear model over the distinct ids of each row (a binarised bag of words or n-grams)."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="zoo")
class BagLinear(keras.layers.Layer):
    """``bias + Σ kernel[id]`` over the distinct non-padding ids of each row: the score of a linear model on binary
    bag-of-ids features (NBSVM, logistic regression on n-gram presence), computed from id sequences without building
    the `(batch, input_dim)` feature matrix. Its weights are usually fitted outside Keras and set with `set_weights`.

    Args:
        input_dim: int, size of the id vocabulary (ids in `[0, input_dim)`).
        padding_id: int, the id that marks padding and is never counted (`TextVectorization`'s 0).

    Call args:
        ids: int tensor `(batch, length)`, any order, repeats counted once.

    Returns:
        Float tensor `(batch, 1)`; a row with no id gives the bias.
    """

    def __init__(self, input_dim, padding_id=0, **kwargs):
        super().__init__(**kwargs)
        if int(input_dim) < 1:
            raise ValueError(f"input_dim must be >= 1, got {input_dim!r}")
        self.input_dim, self.padding_id = int(input_dim), int(padding_id)

    def build(self, input_shape):
        self.kernel = self.add_weight(shape=(self.input_dim,), initializer="zeros", name="kernel")
        self.bias = self.add_weight(shape=(), initializer="zeros", name="bias")

    def call(self, ids):
        ids = ops.sort(ops.cast(ids, "int32"), axis=-1)
        # After sorting, an id counts where it differs from its left neighbour (the first of its run).
        first = ops.concatenate([ops.ones_like(ids[:, :1], dtype="bool"), ops.not_equal(ids[:, 1:], ids[:, :-1])],
                                axis=-1)
        keep = ops.logical_and(first, ops.not_equal(ids, self.padding_id))
        weights = ops.where(keep, ops.take(self.kernel, ids), ops.zeros((), self.kernel.dtype))
        return ops.sum(weights, axis=-1, keepdims=True) + self.bias

    def compute_output_shape(self, input_shape):
        return (input_shape[0], 1)

    def get_config(self):
        return {**super().get_config(), "input_dim": self.input_dim, "padding_id": self.padding_id}
