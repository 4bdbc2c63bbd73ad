"""The video network and its serving signature.

Forward pass: uint8 frames `(batch, time, S, S, 3)`, ragged or padded with ``lengths`` → shared ``SequenceInput``
(right-padded frames + mask) → per-frame CNN (``TimeFolded``: a TimeDistributed that works with a dynamic time axis)
→ shared ``RecurrentStack`` → ``MaskedPooling`` over valid frames → softmax. The ``convlstm`` variant replaces the
CNN's last block and the recurrent stack by a ``ConvLSTM2D`` over the stem's feature maps, so motion is modelled
before space is flattened.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from zoo import training
from zoo.layers import MaskedPooling, RecurrentStack, SequenceInput, TimeFolded, guard_fully_masked_rows
from zoo.recipes.video.config import ModelConfig, VideoConfig
from zoo.recipes.video.data import resize_frames
from zoo.serving import gated, nonempty_batch, within_budget


@keras.saving.register_keras_serializable(package="zoo")
class MaskedConvLSTM2D(keras.layers.Layer):
    """A ``ConvLSTM2D`` over right-padded frame features that honours an explicit mask.

    Fully-masked rows (zero-length clips) are guarded like in ``RecurrentStack``, so they get the answer to
    "nothing" instead of a failing or NaN batch.

    Args:
        filters: int. Output channels of the ConvLSTM.
        kernel_size: int. Side of its square convolution kernels.

    Call args:
        inputs: float tensor `(batch, time, height, width, channels)`.
        mask: optional bool tensor `(batch, time)`.

    Returns:
        Float tensor `(batch, time, height, width, filters)`: the output at every step.
    """

    def __init__(self, filters=32, kernel_size=3, **kwargs):
        super().__init__(**kwargs)
        self.filters = filters
        self.kernel_size = kernel_size
        self.conv_lstm = keras.layers.ConvLSTM2D(filters, kernel_size, padding="same", return_sequences=True,
                                                 name="conv_lstm")
        self.supports_masking = True

    def build(self, input_shape):
        self.conv_lstm.build(input_shape)
        self.built = True

    def call(self, inputs, mask=None, training=None):
        if mask is not None:
            mask = guard_fully_masked_rows(mask)
        return self.conv_lstm(inputs, mask=mask, training=training)

    def compute_mask(self, inputs, mask=None):
        return None  # the zoo passes masks explicitly; none rides along on the output

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.filters,)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "kernel_size": self.kernel_size}


def conv_blocks(filters: list[int], name: str) -> keras.Sequential:
    """3x3 conv + ReLU + 2x2 max-pool per entry of ``filters``, for one frame `(S, S, 3)`."""
    layers = []
    for i, f in enumerate(filters):
        layers += [keras.layers.Conv2D(f, 3, padding="same", activation="relu", name=f"conv_{i}"),
                   keras.layers.MaxPooling2D(2, name=f"pool_{i}")]
    return keras.Sequential(layers, name=name)


def build_classifier(cfg: ModelConfig, frame_size: int, num_classes: int) -> keras.Model:
    """``{"frames": uint8 (batch, time, S, S, 3), "lengths": optional int32 (batch,)}`` → probabilities.

    ``frames`` may be a ``tf.RaggedTensor`` (then ``lengths`` is None) or right-padded with ``lengths``; with dense
    frames and ``lengths=None`` every frame is valid. The encoder keeps positions (flatten, not global pooling):
    direction of motion is a change of position.
    """
    frames = keras.Input(shape=(None, frame_size, frame_size, 3), dtype="uint8", name="frames")
    lengths = keras.Input(shape=(), dtype="int32", name="lengths", optional=True)
    x, mask = SequenceInput(name="sequence_input")(frames, lengths=lengths)
    x = keras.layers.Rescaling(1 / 255, name="rescale")(x)
    if cfg.encoder == "cnn":
        x = TimeFolded(conv_blocks(cfg.filters, "frame_cnn"), name="frame_encoder")(x)
    else:
        x = TimeFolded(conv_blocks(cfg.filters[:-1] or cfg.filters, "frame_stem"), name="frame_encoder")(x)
        x = MaskedConvLSTM2D(cfg.convlstm_filters, name="conv_lstm")(x, mask=mask)
    x = TimeFolded(keras.layers.Flatten(), name="flatten")(x)
    x = keras.layers.Dense(cfg.frame_features, activation="relu", name="frame_features")(x)
    x = keras.layers.Dropout(cfg.dropout, name="frame_dropout")(x)
    if cfg.encoder == "cnn":
        x = RecurrentStack(cfg.cell, cfg.units, cfg.num_layers, bidirectional=cfg.bidirectional,
                           dropout=cfg.dropout, residual=cfg.residual, return_sequences=True,
                           name="recurrent_stack")(x, mask=mask)
    x = MaskedPooling(cfg.pooling, name="pooling")(x, mask=mask)
    x = keras.layers.Dropout(cfg.dropout, name="head_dropout")(x)
    outputs = keras.layers.Dense(num_classes, activation="softmax", name="label")(x)
    return keras.Model({"frames": frames, "lengths": lengths}, outputs, name=f"video_{cfg.encoder}")


def compile_classifier(classifier: keras.Model, cfg: VideoConfig) -> None:
    classifier.compile(
        optimizer=training.optimizer(cfg.train),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )


def make_serving_fn(classifier: keras.Model, cfg: VideoConfig, names: list[str]):
    """The ``serving_default`` function: raw frames of any size in, label, label id and probabilities out.

    Inputs: ``frames`` uint8 `(batch, time, height, width, 3)`, right-padded; ``lengths`` int32 `(batch,)`, the
    valid frames of each clip. Frames are resized to the network's size in the graph. The shapes are declared
    unknown on purpose: a signature call does not check a declared shape at run time (a rank-4 tensor would flow
    in and fail deep inside the network), so the graph checks shapes (``tf.ensure_shape``), bounds and lengths
    (``tf.debugging`` asserts) itself and a bad request fails with an InvalidArgument that says what is wrong.
    The dtypes are enforced by the signature.
    """
    names, limits = tf.constant(names), cfg.serving

    @tf.function(input_signature=[tf.TensorSpec(None, tf.uint8, name="frames"),
                                  tf.TensorSpec(None, tf.int32, name="lengths")])
    def serve(frames, lengths):
        # Everything below consumes the checked tensors (a data dependency), so a wrong rank or channel count stops
        # here with the expected shape in the message; behind a mere control dependency a strided slice failed first.
        frames = tf.ensure_shape(frames, [None, None, None, None, 3], name="frames_batch_time_height_width_3")
        lengths = tf.ensure_shape(lengths, [None], name="lengths_batch")
        shape = tf.shape(frames)
        checks = [
            tf.debugging.assert_less_equal(
                shape[0], limits.max_batch_size, message=f"batch too large: at most {limits.max_batch_size} clips"),
            tf.debugging.assert_equal(
                tf.size(lengths), shape[0], message="lengths must hold one entry per clip (frames.shape[0])"),
            tf.debugging.assert_positive(
                shape[1], message="frames.shape[1] must be >= 1 (an empty clip is a padded frame with length 0)"),
            tf.debugging.assert_less_equal(
                shape[1], limits.max_frames,
                message=f"clip too long: frames.shape[1] must be <= {limits.max_frames}"),
            tf.debugging.assert_non_negative(lengths, message="lengths must be >= 0"),
            tf.debugging.assert_less_equal(lengths, shape[1], message="lengths must be <= frames.shape[1]"),
            tf.debugging.assert_positive(shape[2:4], message="frame height and width must be >= 1"),
            tf.debugging.assert_less_equal(
                shape[2:4], limits.max_side,
                message=f"frames too large: height and width must be <= {limits.max_side}"),
            within_budget(tf.reduce_prod(tf.shape(frames, out_type=tf.int64)[:4]), limits.max_request_pixels,
                          "pixels (clips × frames × height × width)", "max_request_pixels"),
        ]
        frames, lengths = gated(checks, frames, lengths)
        (frames, lengths), batch = nonempty_batch(resize_frames(frames, cfg.data.frame_size), lengths)
        probabilities = classifier({"frames": frames, "lengths": lengths}, training=False)[:batch]
        label_id = tf.argmax(probabilities, axis=-1, output_type=tf.int32)
        return {"label": tf.gather(names, label_id), "label_id": label_id, "probabilities": probabilities}

    return serve
