"""RecurrentStack: N recurrent layers (LSTM | GRU | SimpleRNN), optionally bidirectional and residual."""

import contextlib

import keras
import tensorflow as tf
from keras.src.backend.common import global_state

_CELLS = {"lstm": keras.layers.LSTM, "gru": keras.layers.GRU, "rnn": keras.layers.SimpleRNN}
_MERGE_MODES = ("concat", "sum", "mul", "ave")


def guard_fully_masked_rows(mask):
    """Unmasks the first step of every row that has no valid step.

    An all-False row (an empty string, a zero-length clip) makes the cuDNN kernels fail and gives NaN in masked
    means; treating it as one padding step keeps the batch computable. The row's answer is then the model's answer
    to "nothing", which is what an empty input should get.
    """
    if isinstance(mask, keras.KerasTensor):  # functional-model construction: same spec
        return mask
    mask = tf.cast(mask, tf.bool)
    empty = tf.logical_not(tf.reduce_any(mask, axis=1, keepdims=True))
    first_step = tf.equal(tf.range(tf.shape(mask)[1]), 0)[tf.newaxis, :]
    return tf.logical_or(mask, tf.logical_and(empty, first_step))


_SHARING_MAPS = ("shared_objects/id_to_obj_map", "shared_objects/id_to_config_map")


@contextlib.contextmanager
def _outside_object_sharing():
    """Builds layers as if no `.keras` load were under way.

    `Bidirectional` copies its layer by serializing it twice. Inside a load's `ObjectSharingScope` that records the
    layer's `id()`, and a later layer that reuses a freed one's address is then handed back an earlier copy: loading
    a model with several bidirectional stacks failed now and then ("Forward layer and backward layer should have
    different `go_backwards` value"), or could share one stack's layer with another. Nothing in a stack is shared
    with the rest of the model, so its construction does not need the scope.
    """
    saved = [global_state.get_global_attribute(key) for key in _SHARING_MAPS]
    for key in _SHARING_MAPS:
        global_state.set_global_attribute(key, None)
    try:
        yield
    finally:
        for key, value in zip(_SHARING_MAPS, saved):
            global_state.set_global_attribute(key, value)


@keras.saving.register_keras_serializable(package="zoo")
class RecurrentStack(keras.layers.Layer):
    """A stack of recurrent layers with dropout between them, optional Bidirectional wrapping and residuals.

    The defaults keep every layer eligible for the fused cuDNN kernels on GPU: tanh/sigmoid activations, no
    `recurrent_dropout`, no `unroll`, GRU with `reset_after=True`, right-padded masks. Fully-masked rows are guarded
    (see `guard_fully_masked_rows`).

    Args:
        cell: str. One of `"lstm"`, `"gru"`, `"rnn"` (SimpleRNN).
        units: int. Units of each recurrent layer (per direction).
        num_layers: int. Number of stacked layers, at least 1.
        bidirectional: bool. Wrap each layer in `keras.layers.Bidirectional`.
        merge_mode: str. How the two directions are merged: `"concat"`, `"sum"`, `"mul"` or `"ave"`.
        dropout: float in [0, 1). Dropout applied to the outputs of every layer but the last.
        residual: bool. Add each layer's input to its output where the widths match (all layers after the first,
            and the first when its input width equals its output width).
        return_sequences: bool. Return the last layer's outputs at every step `(batch, time, width)` for per-step
            heads, or its final state `(batch, width)` for sequence-to-one heads.

    Call args:
        inputs: float tensor `(batch, time, features)`, right-padded.
        mask: optional bool tensor `(batch, time)`.

    Returns:
        `(batch, time, width)` if `return_sequences` else `(batch, width)`, where `width` is `2 * units` for
        bidirectional concat and `units` otherwise. With `return_sequences` the (guarded) mask is propagated.
    """

    def __init__(self, cell="lstm", units=128, num_layers=1, bidirectional=False, merge_mode="concat",
                 dropout=0.0, residual=False, return_sequences=False, **kwargs):
        super().__init__(**kwargs)
        if cell not in _CELLS:
            raise ValueError(f"cell must be one of {sorted(_CELLS)}, got {cell!r}")
        if merge_mode not in _MERGE_MODES:
            raise ValueError(f"merge_mode must be one of {_MERGE_MODES}, got {merge_mode!r}")
        if num_layers < 1 or units < 1:
            raise ValueError(f"num_layers and units must be >= 1, got num_layers={num_layers}, units={units}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.cell = cell
        self.units = units
        self.num_layers = num_layers
        self.bidirectional = bidirectional
        self.merge_mode = merge_mode
        self.dropout = dropout
        self.residual = residual
        self.return_sequences = return_sequences
        self.supports_masking = True

        self.recurrent_layers = []
        with _outside_object_sharing():
            for i in range(num_layers):
                last = i == num_layers - 1
                layer = _CELLS[cell](units, return_sequences=return_sequences or not last, name=f"{cell}_{i}")
                if bidirectional:
                    layer = keras.layers.Bidirectional(layer, merge_mode=merge_mode, name=f"bidirectional_{i}")
                self.recurrent_layers.append(layer)
        self.dropout_layers = [keras.layers.Dropout(dropout, name=f"dropout_{i}") for i in range(num_layers - 1)]

    @property
    def output_width(self):
        return self.units * (2 if self.bidirectional and self.merge_mode == "concat" else 1)

    def build(self, input_shape):
        shape = tuple(input_shape)
        for i, layer in enumerate(self.recurrent_layers):
            layer.build(shape)
            shape = shape[:2] + (self.output_width,)
        self._residual_first = self.residual and input_shape[-1] == self.output_width
        self.built = True

    def call(self, inputs, mask=None, training=None):
        # A batch of only empty sequences has no step at all, which the RNN loops cannot stack; give it one
        # padding step (masked, then unmasked by the guard) and cut it off the output again.
        time = tf.shape(inputs)[1]
        missing = tf.maximum(1 - time, 0)
        x = tf.pad(inputs, [[0, 0], [0, missing], [0, 0]])
        if mask is not None:
            mask = guard_fully_masked_rows(tf.pad(tf.cast(mask, tf.bool), [[0, 0], [0, missing]]))
        for i, layer in enumerate(self.recurrent_layers):
            y = layer(x, mask=mask, training=training)
            last = i == self.num_layers - 1
            if self.residual and (i > 0 or self._residual_first) and (self.return_sequences or not last):
                y = y + x
            if not last:
                y = self.dropout_layers[i](y, training=training)
            x = y
        return x[:, :time] if self.return_sequences else x

    def compute_mask(self, inputs, mask=None):
        if mask is None or not self.return_sequences:
            return None
        return guard_fully_masked_rows(mask)

    def compute_output_shape(self, input_shape):
        if self.return_sequences:
            return tuple(input_shape[:2]) + (self.output_width,)
        return (input_shape[0], self.output_width)

    def get_config(self):
        return {
            **super().get_config(),
            "cell": self.cell,
            "units": self.units,
            "num_layers": self.num_layers,
            "bidirectional": self.bidirectional,
            "merge_mode": self.merge_mode,
            "dropout": self.dropout,
            "residual": self.residual,
            "return_sequences": self.return_sequences,
        }
