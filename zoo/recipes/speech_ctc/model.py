"""The speech_ctc network (DeepSpeech2-like) and its serving signature.

Forward pass: 16 kHz float waveform `(batch, samples)` + lengths → ``LogMelFeatures`` (tf.signal STFT, log-mel,
per-utterance mean/variance normalisation over the valid frames) → ``VocalTractWarp`` and ``SpecAugment`` (training
only) → 2-D conv front end (time stride ``model.conv_time_strides``, frequency stride 2) → shared bidirectional
``RecurrentStack`` → per-frame character logits, blank = class 0. The shared ``CTC`` block gives the loss (real frame
and label lengths) and the greedy / beam-search decoding inside the exported graph.

Padding invariance: samples past each row's length are zeroed, features are normalised over valid frames only and
zeroed after, and the convs pad explicitly (``ceil(n / stride)`` outputs aligned to frame 0 whatever the padded
length), so appending silence to a batch does not change a shorter row's transcript.
"""

from __future__ import annotations

import math

import keras
import numpy as np
import tensorflow as tf

from zoo import training
from zoo.layers import CTC, RecurrentStack
from zoo.recipes.speech_ctc.config import SAMPLE_RATE, ModelConfig, SpeechConfig
from zoo.serving import gated, nonempty_batch, within_budget

CONV_KERNEL = (5, 5)  # (time, frequency)
MEL_LOWER_HZ = 20.0
MEL_UPPER_FRACTION = 0.475  # of the sample rate: the top band stays below Nyquist


def mel_band_centers_hz(sample_rate: int, num_mels: int) -> np.ndarray:
    """Centre frequencies of the bands of ``tf.signal.linear_to_mel_weight_matrix`` (HTK mel scale)."""
    to_mel = lambda hz: 1127.0 * np.log1p(hz / 700.0)  # noqa: E731
    edges = np.linspace(to_mel(MEL_LOWER_HZ), to_mel(MEL_UPPER_FRACTION * sample_rate), num_mels + 2)
    return 700.0 * np.expm1(edges[1:-1] / 1127.0)


@keras.saving.register_keras_serializable(package="zoo")
class LogMelFeatures(keras.layers.Layer):
    """Raw waveform → normalised log-mel frames, computed with `tf.signal` so a SavedModel takes audio.

    Non-finite samples are replaced by 0 and each row is peak-normalised over its valid samples, so NaN/Inf, any
    gain, clipping and digital silence all give finite features.

    Args:
        sample_rate: int. Sample rate of the input in Hz.
        frame_length: int. STFT window in samples.
        frame_step: int. STFT hop in samples.
        num_mels: int. Mel bands (`MEL_LOWER_HZ` to `MEL_UPPER_FRACTION` × `sample_rate`).

    Call args:
        audio: float tensor `(batch, samples)`, right-padded.
        lengths: int tensor `(batch,)`, valid samples per row.

    Returns:
        A tuple `(features, mask)`: float32 `(batch, frames, num_mels)` with `frames = ceil(samples / frame_step)`
        (at least 1), zero at padded frames, and the bool frame mask `(batch, frames)`.
    """

    def __init__(self, sample_rate=SAMPLE_RATE, frame_length=400, frame_step=160, num_mels=80, **kwargs):
        super().__init__(**kwargs)
        self.sample_rate = sample_rate
        self.frame_length = frame_length
        self.frame_step = frame_step
        self.num_mels = num_mels
        self.fft_length = 1 << (frame_length - 1).bit_length()

    def call(self, audio, lengths):
        audio = tf.cast(audio, tf.float32)
        lengths = tf.cast(lengths, tf.int32)
        audio = tf.pad(audio, [[0, 0], [0, tf.maximum(self.frame_length - tf.shape(audio)[1], 0)]])
        valid = tf.sequence_mask(lengths, maxlen=tf.shape(audio)[1])
        audio = tf.where(valid & tf.math.is_finite(audio), audio, 0.0)
        peak = tf.reduce_max(tf.abs(audio), axis=1, keepdims=True)
        audio = audio / tf.maximum(peak, 1e-6)
        spectrum = tf.signal.stft(audio, self.frame_length, self.frame_step, self.fft_length, pad_end=True)
        mel_matrix = tf.signal.linear_to_mel_weight_matrix(self.num_mels, self.fft_length // 2 + 1, self.sample_rate,
                                                           MEL_LOWER_HZ, MEL_UPPER_FRACTION * self.sample_rate)
        log_mel = tf.math.log(tf.matmul(tf.square(tf.abs(spectrum)), mel_matrix) + 1e-6)
        frames = (lengths + self.frame_step - 1) // self.frame_step
        mask = tf.sequence_mask(frames, maxlen=tf.shape(log_mel)[1])
        weight = tf.cast(mask, tf.float32)[:, :, tf.newaxis]
        count = tf.maximum(tf.reduce_sum(weight, axis=1, keepdims=True), 1.0)
        mean = tf.reduce_sum(log_mel * weight, axis=1, keepdims=True) / count
        variance = tf.reduce_sum(tf.square(log_mel - mean) * weight, axis=1, keepdims=True) / count
        features = (log_mel - mean) * tf.math.rsqrt(variance + 1e-3) * weight
        return features, mask

    def compute_output_spec(self, audio, lengths):
        frames = None if audio.shape[1] is None else max(1, math.ceil(audio.shape[1] / self.frame_step))
        return (keras.KerasTensor((audio.shape[0], frames, self.num_mels), dtype="float32"),
                keras.KerasTensor((audio.shape[0], frames), dtype="bool"))

    def get_config(self):
        return {**super().get_config(), "sample_rate": self.sample_rate, "frame_length": self.frame_length,
                "frame_step": self.frame_step, "num_mels": self.num_mels}


@keras.saving.register_keras_serializable(package="zoo")
class VocalTractWarp(keras.layers.Layer):
    """Vocal tract length perturbation (Jaitly & Hinton, 2013) on log-mel frames; identity unless training.

    Each utterance's frequency axis is scaled by a random factor `alpha`, log-uniform in
    `[1 / max_factor, max_factor]`: band `b` takes the (linearly interpolated) value the input has at
    `centre_hz[b] / alpha`, so formants and pitch move up by `alpha`, as from a shorter vocal tract. Bands that
    would read above the top band repeat it. It makes voices unlike any training voice (a child's formants) less
    foreign.

    Args:
        sample_rate: int. Sample rate the mel bands were computed at.
        num_mels: int. Mel bands of the input.
        max_factor: float >= 1. Largest scaling either way (1 = identity).
        seed: optional int. Seeds the layer's `keras.random.SeedGenerator`, whose state a resumed run restores.

    Call args:
        features: float tensor `(batch, frames, num_mels)`.

    Returns:
        Warped `features`, same shape.
    """

    def __init__(self, sample_rate=SAMPLE_RATE, num_mels=80, max_factor=1.2, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.sample_rate = sample_rate
        self.num_mels = num_mels
        self.max_factor = max_factor
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.supports_masking = True

    def call(self, features, training=None):
        if not training or self.max_factor == 1:
            return features
        centres = tf.constant(mel_band_centers_hz(self.sample_rate, self.num_mels), tf.float32)
        log_max = math.log(self.max_factor)
        alpha = tf.exp(keras.random.uniform([tf.shape(features)[0], 1], -log_max, log_max, seed=self.seed_generator))
        # Band index of a frequency: mel is linear in band index, centres[0] is band 0.
        mel = lambda hz: 1127.0 * tf.math.log1p(hz / 700.0)  # noqa: E731
        mel_step = mel(centres[1]) - mel(centres[0])
        position = (mel(centres[tf.newaxis, :] / alpha) - mel(centres[0])) / mel_step
        position = tf.clip_by_value(position, 0.0, self.num_mels - 1.0)
        below = tf.minimum(tf.cast(tf.floor(position), tf.int32), self.num_mels - 2)
        weight = (position - tf.cast(below, tf.float32))[:, tf.newaxis, :]
        low = tf.gather(features, below, axis=2, batch_dims=1)
        high = tf.gather(features, below + 1, axis=2, batch_dims=1)
        return low + weight * (high - low)

    def get_config(self):
        return {**super().get_config(), "sample_rate": self.sample_rate, "num_mels": self.num_mels,
                "max_factor": self.max_factor, "seed": self.seed}


@keras.saving.register_keras_serializable(package="zoo")
class SpecAugment(keras.layers.Layer):
    """SpecAugment-style masking (Park et al., 2019) of frequency bands and time spans; identity unless training.

    Args:
        freq_masks, freq_mask_width: number of frequency masks per row and widest mask (bands).
        time_masks, time_mask_width: number of time masks per row and widest mask (frames); placed in valid frames.
        seed: optional int. Seeds the layer's `keras.random.SeedGenerator`, whose state a resumed run restores.

    Call args:
        features: float tensor `(batch, frames, bands)`; mask: bool `(batch, frames)`.

    Returns:
        `features` with masked regions set to 0 (the normalised mean).
    """

    def __init__(self, freq_masks=2, freq_mask_width=10, time_masks=2, time_mask_width=8, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.freq_masks = freq_masks
        self.freq_mask_width = freq_mask_width
        self.time_masks = time_masks
        self.time_mask_width = time_mask_width
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.supports_masking = True

    def _spans(self, batch, extent, count, max_width, limit):
        """Bool `(batch, extent)`: True inside `count` random spans of width <= max_width starting below `limit`."""
        keep = tf.zeros([batch, extent], tf.bool)
        positions = tf.range(extent)[tf.newaxis, :]
        for _ in range(count):
            width = keras.random.randint([batch, 1], 0, max_width + 1, dtype="int32", seed=self.seed_generator)
            start = tf.cast(keras.random.uniform([batch, 1], seed=self.seed_generator)
                            * tf.cast(tf.maximum(limit - width, 1), tf.float32), tf.int32)
            keep |= (positions >= start) & (positions < start + width)
        return keep

    def compute_mask(self, features, mask=None):
        return None  # callers pass the frame mask on explicitly

    def call(self, features, mask=None, training=None):
        if not training:
            return features
        shape = tf.shape(features)
        frames = tf.reduce_sum(tf.cast(mask, tf.int32), axis=1)[:, tf.newaxis] if mask is not None else shape[1]
        freq = self._spans(shape[0], shape[2], self.freq_masks, self.freq_mask_width, shape[2])
        time = self._spans(shape[0], shape[1], self.time_masks, self.time_mask_width, frames)
        hidden = freq[:, tf.newaxis, :] | time[:, :, tf.newaxis]
        return tf.where(hidden, 0.0, features)

    def get_config(self):
        return {**super().get_config(), "freq_masks": self.freq_masks, "freq_mask_width": self.freq_mask_width,
                "time_masks": self.time_masks, "time_mask_width": self.time_mask_width, "seed": self.seed}


@keras.saving.register_keras_serializable(package="zoo")
class MaskedConv(keras.layers.Layer):
    """2-D conv over `(batch, frames, bands, channels)` with explicit 'same' padding, ReLU, and the frame mask
    subsampled by the time stride; padded output frames are zeroed.

    Args:
        filters: int. Output channels.
        time_stride: int. Stride along frames (bands always use stride 2).

    Call args:
        inputs: float `(batch, frames, bands, channels)`; mask: bool `(batch, frames)`.

    Returns:
        `(outputs, mask)`: `(batch, ceil(frames / time_stride), ceil(bands / 2), filters)` and its frame mask.
    """

    def __init__(self, filters, time_stride=1, **kwargs):
        super().__init__(**kwargs)
        self.filters = filters
        self.time_stride = time_stride
        pad = [(k // 2, k // 2) for k in CONV_KERNEL]
        self.pad = keras.layers.ZeroPadding2D(pad)
        self.conv = keras.layers.Conv2D(filters, CONV_KERNEL, strides=(time_stride, 2), padding="valid",
                                        activation="relu")

    def build(self, input_shape):
        padded = (input_shape[0], None, input_shape[2] + CONV_KERNEL[1] - 1, input_shape[3])
        self.conv.build(padded)
        self.built = True

    def call(self, inputs, mask):
        outputs = self.conv(self.pad(inputs))
        # With k // 2 padding on both sides the output has ceil(n / stride) frames, output j centred on input
        # j * stride, so the valid outputs are exactly the strided valid inputs.
        mask = mask[:, :: self.time_stride]
        return outputs * tf.cast(mask, outputs.dtype)[:, :, tf.newaxis, tf.newaxis], mask

    def compute_output_spec(self, inputs, mask):
        frames = None if inputs.shape[1] is None else math.ceil(inputs.shape[1] / self.time_stride)
        return (keras.KerasTensor((inputs.shape[0], frames, math.ceil(inputs.shape[2] / 2), self.filters)),
                keras.KerasTensor((inputs.shape[0], frames), dtype="bool"))

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "time_stride": self.time_stride}


def frame_count(samples, cfg: ModelConfig):
    """Output frames of the network for `samples` input samples (ints or int tensors)."""
    hop = hop_samples(cfg)
    frames = (samples + hop - 1) // hop
    for stride in cfg.conv_time_strides:
        frames = (frames + stride - 1) // stride
    return frames


def hop_samples(cfg: ModelConfig) -> int:
    return int(round(cfg.hop_ms * SAMPLE_RATE / 1000))


def build_acoustic_model(cfg: ModelConfig, num_classes: int) -> keras.Model:
    """`{"audio": (batch, samples) float32, "lengths": (batch,) int32}` →
    `{"logits": (batch, frames, num_classes), "frame_lengths": (batch,) int32}`; class 0 is the CTC blank."""
    audio = keras.Input(shape=(None,), dtype="float32", name="audio")
    lengths = keras.Input(shape=(), dtype="int32", name="lengths")
    x, mask = LogMelFeatures(SAMPLE_RATE, int(round(cfg.frame_ms * SAMPLE_RATE / 1000)), hop_samples(cfg),
                             cfg.num_mels, name="log_mel")(audio, lengths)
    if cfg.vtlp_max_factor > 1:
        x = VocalTractWarp(SAMPLE_RATE, cfg.num_mels, cfg.vtlp_max_factor, name="vocal_tract_warp")(x)
    if cfg.spec_augment:
        x = SpecAugment(cfg.freq_masks, cfg.freq_mask_width, cfg.time_masks, cfg.time_mask_width,
                        name="spec_augment")(x, mask=mask)
    x = keras.layers.Reshape((-1, cfg.num_mels, 1), name="add_channel")(x)
    for i, (filters, stride) in enumerate(zip(cfg.conv_filters, cfg.conv_time_strides)):
        x, mask = MaskedConv(filters, stride, name=f"conv_{i}")(x, mask)
    bands = x.shape[2]
    x = keras.layers.Reshape((-1, bands * cfg.conv_filters[-1]), name="flatten_bands")(x)
    x = keras.layers.Dense(cfg.units, name="projection")(x)
    x = keras.layers.LayerNormalization(name="projection_norm")(x)
    x = RecurrentStack(cfg.cell, cfg.units, cfg.num_layers, bidirectional=True, dropout=cfg.dropout,
                       residual=cfg.residual, return_sequences=True, name="recurrent_stack")(x, mask=mask)
    x = keras.layers.Dropout(cfg.dropout, name="logits_dropout")(x)
    logits = keras.layers.Dense(num_classes, name="logits")(x)
    frame_lengths = keras.ops.sum(keras.ops.cast(mask, "int32"), axis=1)
    return keras.Model({"audio": audio, "lengths": lengths}, {"logits": logits, "frame_lengths": frame_lengths},
                       name="speech_ctc")


class CTCTrainer(keras.Model):
    """Wraps the acoustic model for `fit`: the CTC loss needs each row's frame count, which is a model output, and
    each label sequence's length; neither fits the `loss(y_true, y_pred)` contract of `compile`.

    Targets are `{"labels": (batch, max_label_length) int32, "label_lengths": (batch,) int32}`. Only the acoustic
    model is saved; this wrapper exists for training and its checkpoints.
    """

    def __init__(self, acoustic: keras.Model, ctc: CTC, **kwargs):
        super().__init__(**kwargs)
        self.acoustic = acoustic
        self.ctc = ctc
        self.built = True  # the wrapped functional model already holds every variable

    def call(self, inputs, training=None):
        return self.acoustic(inputs, training=training)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        per_example = self.ctc.loss(y["labels"], y["label_lengths"], y_pred["logits"], lengths=y_pred["frame_lengths"])
        return tf.reduce_mean(per_example)


def make_trainer(acoustic: keras.Model, cfg: SpeechConfig) -> CTCTrainer:
    trainer = CTCTrainer(acoustic, CTC(beam_width=cfg.model.beam_width), name="ctc_trainer")
    trainer.compile(optimizer=training.optimizer(cfg.train))
    return trainer


def ids_to_text(ids, alphabet: str):
    """Decoded class ids `(batch, time)` (-1 padding, 0 blank, k → alphabet[k - 1]) → strings `(batch,)`."""
    table = tf.constant(["", ""] + list(alphabet))
    return tf.strings.reduce_join(tf.gather(table, tf.cast(ids, tf.int32) + 1), axis=1)


def transcribe(acoustic: keras.Model, audio, lengths, alphabet: str, beam_width: int) -> dict[str, tf.Tensor]:
    """Greedy and beam-search transcripts `(batch,)` and the beam score of a padded 16 kHz batch."""
    outputs = acoustic({"audio": audio, "lengths": lengths}, training=False)
    ctc = CTC(beam_width=beam_width)
    greedy, _ = ctc(outputs["logits"], lengths=outputs["frame_lengths"], strategy="greedy")
    beam, score = ctc(outputs["logits"], lengths=outputs["frame_lengths"], strategy="beam_search")
    return {"transcript": ids_to_text(beam, alphabet), "greedy_transcript": ids_to_text(greedy, alphabet),
            "score": score}


def make_serving_fn(acoustic: keras.Model, cfg: SpeechConfig, alphabet: str):
    """The ``serving_default`` function: 16 kHz float audio + lengths in, transcripts in ``alphabet`` out, bounds
    checked."""
    limits = cfg.serving
    max_samples = int(limits.max_input_seconds * SAMPLE_RATE)

    @tf.function(input_signature=[tf.TensorSpec([None, None], tf.float32, name="audio"),
                                  tf.TensorSpec([None], tf.int32, name="lengths")])
    def serve(audio, lengths):
        checks = [
            tf.debugging.assert_less_equal(tf.shape(audio)[0], limits.max_batch_size,
                                           message=f"batch too large: at most {limits.max_batch_size} clips"),
            tf.debugging.assert_less_equal(tf.shape(audio)[1], max_samples, message=(
                f"audio too long: at most {limits.max_input_seconds:g} s ({max_samples} samples at "
                f"{SAMPLE_RATE} Hz) per request; split longer recordings")),
            tf.debugging.assert_equal(tf.shape(lengths)[0], tf.shape(audio)[0],
                                      message="lengths needs one entry per row of audio"),
            tf.debugging.assert_non_negative(lengths, message="lengths must be >= 0"),
            tf.debugging.assert_less_equal(lengths, tf.shape(audio)[1],
                                           message="lengths must not exceed the number of samples per row"),
            within_budget(tf.size(audio, out_type=tf.int64), limits.max_request_samples,
                          "audio samples (clips × samples per padded row)", "max_request_samples"),
        ]
        (audio, lengths), batch = nonempty_batch(*gated(checks, audio, lengths))
        out = transcribe(acoustic, audio, lengths, alphabet, cfg.model.beam_width)
        return {name: value[:batch] for name, value in out.items()}

    return serve
