"""Attention: queries attend over a masked memory with Bahdanau (additive) or Luong (multiplicative) scores."""

import keras
from keras import ops

_SCORES = ("bahdanau", "luong")


@keras.saving.register_keras_serializable(package="zoo")
class Attention(keras.layers.Layer):
    """Soft attention of every query step over the valid steps of a memory (e.g. encoder outputs).

    Scores between a query `q` and a memory step `m`:
    - `"bahdanau"` (additive, Bahdanau et al. 2015): `v^T tanh(W_q q + W_m m + b)`;
    - `"luong"` (multiplicative "general", Luong et al. 2015): `q^T W m`.

    The layer scores all query steps at once, so a decoder can attend with its recurrent outputs over a whole target
    sequence in one call during teacher-forced training and with one step at a time while decoding. The projected
    memory does not depend on the query: `project_memory` computes it once per source and `call(..., keys=)` reuses it
    at every decoding step.

    Args:
        score: str. `"bahdanau"` or `"luong"`.
        units: int. Width of the additive score's hidden layer (`"bahdanau"` only; ignored by `"luong"`, whose
            projection maps the memory to the query width).

    Call args:
        query: float tensor `(batch, query_time, query_dim)`.
        memory: float tensor `(batch, memory_time, memory_dim)`, right-padded.
        mask: optional bool tensor `(batch, memory_time)`: which memory steps are valid. Masked steps get exactly
            zero weight, so extra padding of the memory does not change the result.
        keys: optional `project_memory(memory)`, to skip recomputing it.

    Returns:
        A tuple `(context, weights)`: `context` `(batch, query_time, memory_dim)` is the weighted sum of memory steps,
        `weights` `(batch, query_time, memory_time)` sums to 1 over the valid memory steps of each query step.
    """

    def __init__(self, score="luong", units=128, **kwargs):
        super().__init__(**kwargs)
        if score not in _SCORES:
            raise ValueError(f"score must be one of {_SCORES}, got {score!r}")
        if units < 1:
            raise ValueError(f"units must be >= 1, got {units}")
        self.score = score
        self.units = units
        self.supports_masking = True  # the mask describes the memory; the outputs carry none

    def build(self, query_shape, memory_shape, keys_shape=None):
        query_dim, memory_dim = query_shape[-1], memory_shape[-1]
        if self.score == "bahdanau":
            self.query_dense = keras.layers.Dense(self.units, use_bias=False, name="query_dense")
            self.memory_dense = keras.layers.Dense(self.units, name="memory_dense")
            self.score_dense = keras.layers.Dense(1, use_bias=False, name="score_dense")
            self.query_dense.build((None, None, query_dim))
            self.score_dense.build((None, None, None, self.units))
        else:
            self.memory_dense = keras.layers.Dense(query_dim, use_bias=False, name="memory_dense")
        self.memory_dense.build((None, None, memory_dim))
        self.built = True

    def project_memory(self, memory):
        """The query-independent part of the scores: `(batch, memory_time, units or query_dim)`."""
        return self.memory_dense(memory)

    def call(self, query, memory, mask=None, keys=None):
        if keys is None:
            keys = self.project_memory(memory)
        if self.score == "bahdanau":
            hidden = ops.tanh(ops.expand_dims(self.query_dense(query), 2) + ops.expand_dims(keys, 1))
            scores = ops.squeeze(self.score_dense(hidden), -1)
        else:
            scores = ops.matmul(query, ops.transpose(keys, (0, 2, 1)))
        if mask is not None:
            # A large finite negative (not -inf) keeps a fully masked row finite instead of NaN.
            scores = ops.where(ops.expand_dims(ops.cast(mask, "bool"), 1), scores, ops.cast(-1e9, scores.dtype))
        weights = ops.softmax(scores, axis=-1)
        return ops.matmul(weights, memory), weights

    def compute_mask(self, query, memory, mask=None, keys=None):
        return None

    def compute_output_spec(self, query, memory, mask=None, keys=None):
        return (keras.KerasTensor(tuple(query.shape[:2]) + (memory.shape[-1],), dtype=memory.dtype),
                keras.KerasTensor(tuple(query.shape[:2]) + (memory.shape[1],), dtype=memory.dtype))

    def get_config(self):
        return {**super().get_config(), "score": self.score, "units": self.units}
