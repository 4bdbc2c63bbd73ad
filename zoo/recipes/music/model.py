"""The music network, its loss, and the in-graph sampler behind its serving signature.

Forward pass (teacher forcing): a start step followed by the previous steps → ``SequenceInput`` (right-padded dense
+ explicit mask) → event embedding (events) or a linear projection of the roll frame (roll) → the learned embedding
of the piece's class (``data.condition``, e.g. major / minor) appended to every step → shared ``RecurrentStack``
returning sequences → next-step logits: one per pitch (roll, sigmoid) or per event (softmax).

Generation steps the cells of the same ``RecurrentStack`` inside a ``tf.while_loop``: first over the start step and
the seed, then feeding back its own samples. Sampling uses stateless random ops keyed by ``(random_seed, step)``, so
the same request always gives the same music, in Python and in the exported SavedModel alike. ``generate_audio``
adds the waveform of the generated steps, synthesised in the graph (``synth``).
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from zoo import training
from zoo.layers import AppendToSteps, RecurrentStack, SequenceInput
from zoo.recipes.music import data, synth
from zoo.recipes.music.config import MusicConfig
from zoo.serving import gated, within_budget


@keras.saving.register_keras_serializable(package="zoo")
class FrameNLL(keras.losses.Loss):
    """Negative log-likelihood of a multi-hot frame: binary cross-entropy summed over pitches (nats per frame).

    This is the number in the polyphonic-music tables (Boulanger-Lewandowski 2012; Bai et al. 2018).

    Call args:
        y_true: 0/1 targets `(batch, time, pitches)`.
        y_pred: logits `(batch, time, pitches)`.

    Returns:
        `(batch, time)` per-frame NLL, reduced by Keras with the per-step sample weights.
    """

    def __init__(self, name="frame_nll", reduction="mean_with_sample_weight", **kwargs):
        super().__init__(name=name, reduction=reduction, **kwargs)

    def call(self, y_true, y_pred):
        bce = tf.nn.sigmoid_cross_entropy_with_logits(labels=tf.cast(y_true, y_pred.dtype), logits=y_pred)
        return tf.reduce_sum(bce, axis=-1)


def input_width(cfg: MusicConfig) -> int:
    """Features of one input step of a roll: the pitches plus a start-step flag."""
    return cfg.data.num_pitches + 1


def output_width(cfg: MusicConfig) -> int:
    return cfg.data.num_pitches if cfg.data.representation == "roll" else data.vocab_size(cfg.data)


def build_model(cfg: MusicConfig) -> keras.Model:
    """``{"inputs": (batch, time, pitches + 1) float | (batch, time) int, "lengths": (batch,)[, "condition":
    (batch,) int class]}`` → next-step logits `(batch, time, pitches | events)`. With a condition, its learned
    embedding is appended to every input step."""
    roll = cfg.data.representation == "roll"
    inputs = keras.Input(shape=(None, input_width(cfg)) if roll else (None,), dtype="float32" if roll else "int32",
                         name="inputs")
    lengths = keras.Input(shape=(), dtype="int32", name="lengths")
    features = {"inputs": inputs, "lengths": lengths}
    x, mask = SequenceInput(name="sequence_input")(inputs, lengths=lengths)
    if not roll:
        x = keras.layers.Embedding(data.vocab_size(cfg.data), cfg.model.embedding_dim, name="embedding")(x)
    elif cfg.model.embedding_dim:
        x = keras.layers.Dense(cfg.model.embedding_dim, name="embedding")(x)
    if cfg.data.class_names:
        features["condition"] = keras.Input(shape=(), dtype="int32", name="condition")
        vector = keras.layers.Embedding(len(cfg.data.class_names), cfg.model.condition_dim,
                                        name="condition_embedding")(features["condition"])
        x = AppendToSteps(name="append_condition")(x, vector)
    x = keras.layers.Dropout(cfg.model.input_dropout, name="input_dropout")(x)
    x = RecurrentStack(cfg.model.cell, cfg.model.units, cfg.model.num_layers, dropout=cfg.model.dropout,
                       residual=cfg.model.residual, return_sequences=True, name="recurrent_stack")(x, mask=mask)
    x = keras.layers.Dropout(cfg.model.dropout, name="output_dropout")(x)
    logits = keras.layers.Dense(output_width(cfg), name="logits")(x)
    return keras.Model(features, logits, name=f"music_{cfg.data.representation}")


def compile_model(model: keras.Model, cfg: MusicConfig) -> None:
    if cfg.data.representation == "roll":
        loss = FrameNLL()
    else:
        loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction="mean_with_sample_weight")
    model.compile(optimizer=training.optimizer(cfg.train),
                  loss=loss)


class Stepper:
    """One step of the trained network at a time: ``(input step, states[, condition]) → (logits, states)``.

    Runs the embedding, the condition's embedding appended to the step, each recurrent layer's cell (with the
    stack's residuals; dropout is off at inference) and the output layer of ``model``, so the weights are exactly
    those of the teacher-forced forward pass.
    """

    def __init__(self, model: keras.Model):
        layers = {layer.name: layer for layer in model.layers}
        self.embedding = layers.get("embedding")
        self.condition_embedding = layers.get("condition_embedding")
        self.append = layers.get("append_condition")
        self.stack = layers["recurrent_stack"]
        self.logits = layers["logits"]
        first_width = keras.tree.flatten(self.stack.input)[0].shape[-1]  # the stack's input (its mask follows)
        self.residual = [self.stack.residual and (i > 0 or first_width == self.stack.output_width)
                         for i in range(self.stack.num_layers)]

    def initial_states(self, batch_size):
        return [layer.cell.get_initial_state(batch_size) for layer in self.stack.recurrent_layers]

    def __call__(self, step, states, condition=None):
        x = self.embedding(step) if self.embedding is not None else step
        if self.condition_embedding is not None:
            x = self.append(x[:, None], self.condition_embedding(condition))[:, 0]
        new_states = []
        for layer, residual, state in zip(self.stack.recurrent_layers, self.residual, states):
            y, state = layer.cell(x, state, training=False)
            x = y + x if residual else y
            new_states.append(state if isinstance(state, (list, tuple)) else [state])
        return self.logits(x), new_states


def _top_k_mask(logits, top_k):
    """Sets all but the ``top_k`` largest logits of each row to -inf (``top_k`` = 0 keeps all)."""
    k = tf.minimum(tf.where(top_k > 0, top_k, tf.shape(logits)[-1]), tf.shape(logits)[-1])
    kth = tf.reduce_min(tf.math.top_k(logits, k=k).values, axis=-1, keepdims=True)
    return tf.where(logits >= kth, logits, tf.constant(-np.inf, logits.dtype))


def sample_frame(logits, temperature, top_k, seed):
    """Multi-hot frame `(batch, pitches)`: independent Bernoulli per pitch with ``sigmoid(logit / temperature)``,
    restricted to the ``top_k`` most likely pitches; ``temperature`` 0 is greedy (``logit > 0``)."""
    logits = _top_k_mask(logits, top_k)
    noise = tf.random.stateless_uniform(tf.shape(logits), seed=seed)
    sampled = noise < tf.sigmoid(logits / tf.maximum(temperature, 1e-12))
    return tf.cast(tf.where(temperature > 0, sampled, logits > 0), tf.int32)


def sample_event(logits, temperature, top_k, seed):
    """Event ids `(batch,)` drawn by the Gumbel-max trick from ``softmax(logits / temperature)`` restricted to the
    ``top_k`` most likely events; padding and the start token are never drawn; ``temperature`` 0 is greedy."""
    allowed = tf.range(tf.shape(logits)[-1]) >= data.NOTE_OFF
    logits = _top_k_mask(tf.where(allowed, logits, tf.constant(-np.inf, logits.dtype)), top_k)
    noise = tf.random.stateless_uniform(tf.shape(logits), seed=seed, minval=1e-20, maxval=1.0)
    gumbel = -tf.math.log(-tf.math.log(noise))
    sampled = tf.argmax(logits / tf.maximum(temperature, 1e-12) + gumbel, axis=-1, output_type=tf.int32)
    return tf.where(temperature > 0, sampled, tf.argmax(logits, axis=-1, output_type=tf.int32))


def seed_spec(cfg: MusicConfig) -> tf.TensorSpec:
    if cfg.data.representation == "roll":
        return tf.TensorSpec([None, None, cfg.data.num_pitches], tf.int32, name="seed")
    return tf.TensorSpec([None, None], tf.int32, name="seed")


def make_generate_fn(model: keras.Model, cfg: MusicConfig, audio: bool = False):
    """The ``serving_default`` function ``(seed, num_steps, temperature, top_k, random_seed[, condition])`` →
    generated steps.

    ``seed``: roll `(batch, seed_steps, pitches)` 0/1, or event ids `(batch, seed_steps)` in ``[2, vocab)``;
    ``seed_steps`` may be 0 (generate from nothing). ``condition`` (only when ``data.condition`` is not none): the
    class integer of each piece `(batch,)`, e.g. 0 = major, 1 = minor. Returns ``{"roll": (batch, num_steps,
    pitches)}`` or ``{"events": (batch, num_steps)}``, the continuation only. Bad inputs raise InvalidArgumentError.

    With ``audio`` (the ``generate_audio`` signature) the answer also holds ``"audio"``, float32 `(batch,
    num_steps * samples_per_step)` at 16 kHz in [-1, 1]: the continuation played at ``generate.tempo_bpm``, within
    the budget ``serving.max_request_audio_seconds`` (pieces × their length), checked before any work.
    """
    roll = cfg.data.representation == "roll"
    limits = cfg.serving
    step_samples = synth.samples_per_step(cfg.data.steps_per_quarter, cfg.generate.tempo_bpm)
    max_audio_samples = int(limits.max_request_audio_seconds * synth.SAMPLE_RATE)
    stepper = Stepper(model)
    num_pitches = cfg.data.num_pitches

    def encode_step(step):
        if roll:  # the frame plus a zero start flag
            return tf.pad(tf.cast(step, tf.float32), [[0, 0], [0, 1]])
        return step

    num_classes = len(cfg.data.class_names)
    signature = [
        seed_spec(cfg),
        tf.TensorSpec([], tf.int32, name="num_steps"),
        tf.TensorSpec([], tf.float32, name="temperature"),
        tf.TensorSpec([], tf.int32, name="top_k"),
        tf.TensorSpec([], tf.int64, name="random_seed"),
    ] + ([tf.TensorSpec([None], tf.int32, name="condition")] if num_classes else [])

    @tf.function(input_signature=signature)
    def generate(seed, num_steps, temperature, top_k, random_seed, condition=None):
        batch, seed_steps = tf.shape(seed)[0], tf.shape(seed)[1]
        low_token = 0 if roll else data.NOTE_OFF
        high_token = 1 if roll else data.vocab_size(cfg.data) - 1
        values = tf.concat([tf.reshape(seed, [-1]), [low_token, high_token]], axis=0)  # never empty
        checks = [
            tf.debugging.assert_positive(batch, message="seed: the batch must hold at least one seed"),
            tf.debugging.assert_less_equal(batch, limits.max_batch_size,
                                           message=f"seed: at most {limits.max_batch_size} seeds per request"),
            tf.debugging.assert_less_equal(seed_steps, limits.max_seed_steps,
                                           message=f"seed: at most {limits.max_seed_steps} steps"),
            tf.debugging.assert_greater_equal(tf.reduce_min(values), low_token,
                                              message=f"seed: values must be in [{low_token}, {high_token}]"),
            tf.debugging.assert_less_equal(tf.reduce_max(values), high_token,
                                           message=f"seed: values must be in [{low_token}, {high_token}]"),
            tf.debugging.assert_non_negative(num_steps, message="num_steps must be >= 0"),
            tf.debugging.assert_less_equal(num_steps, limits.max_generate_steps,
                                           message=f"num_steps must be <= {limits.max_generate_steps}"),
            tf.debugging.assert_equal(tf.math.is_finite(temperature) & (temperature >= 0.0), True,
                                      message="temperature must be finite and >= 0 (0 = greedy)"),
            tf.debugging.assert_non_negative(top_k, message="top_k must be >= 0 (0 = no limit)"),
        ]
        if num_classes:
            names = ", ".join(f"{i} = {name}" for i, name in enumerate(cfg.data.class_names))
            classes = tf.concat([condition, [0]], axis=0)  # never empty
            checks += [
                tf.debugging.assert_equal(tf.shape(condition)[0], batch,
                                          message="condition: one class per seed (as many as the seed's batch)"),
                tf.debugging.assert_equal((tf.reduce_min(classes) >= 0) & (tf.reduce_max(classes) < num_classes),
                                          True, message=f"condition: classes are {names}"),
            ]
        with tf.control_dependencies(checks):  # nothing below runs on an invalid request
            budgets = [within_budget(  # then the cost of the whole batch
                tf.cast(batch, tf.int64) * tf.cast(seed_steps + num_steps, tf.int64), limits.max_request_steps,
                "steps (seeds × (seed steps + num_steps))", "max_request_steps")]
            if audio:
                budgets.append(within_budget(
                    tf.cast(batch, tf.int64) * tf.cast(num_steps, tf.int64) * step_samples, max_audio_samples,
                    f"samples of audio at {synth.SAMPLE_RATE} Hz (pieces × num_steps × {step_samples} per step)",
                    "max_request_audio_seconds"))
            if num_classes:
                seed, num_steps, condition = gated(budgets, seed, num_steps, condition)
            else:
                seed, num_steps = gated(budgets, seed, num_steps)
            if roll:
                start = tf.one_hot(tf.fill([batch], num_pitches), num_pitches + 1)
            else:
                start = tf.fill([batch], data.START)
            logits, states = stepper(start, stepper.initial_states(batch), condition)

        def prime(i, logits, states):
            logits, states = stepper(encode_step(seed[:, i]), states, condition)
            return i + 1, logits, states

        _, logits, states = tf.while_loop(lambda i, *_: i < seed_steps, prime, (0, logits, states))

        sample = sample_frame if roll else sample_event
        out = tf.TensorArray(tf.int32, size=num_steps, element_shape=[None, num_pitches] if roll else [None])

        def generate_step(t, logits, states, out):
            step = sample(logits, temperature, top_k, tf.stack([random_seed, tf.cast(t, tf.int64)]))
            logits, states = stepper(encode_step(step), states, condition)
            return t + 1, logits, states, out.write(t, step)

        *_, out = tf.while_loop(lambda t, *_: t < num_steps, generate_step, (0, logits, states, out))
        # An empty TensorArray cannot be stacked when its element shape holds the unknown batch size.
        empty_shape = [0, batch, num_pitches] if roll else [0, batch]
        steps = tf.cond(num_steps > 0, out.stack, lambda: tf.zeros(empty_shape, tf.int32))  # (steps, batch, ...)
        generated = tf.transpose(steps, [1, 0, 2] if roll else [1, 0])
        out = {"roll": generated} if roll else {"events": generated}
        if audio:
            frames, onsets = (generated, None) if roll else synth.events_to_roll(
                generated, num_pitches, data.FIRST_PITCH_TOKEN, data.HOLD)
            out["audio"] = synth.synthesize(frames, onsets, cfg.data.low_pitch, step_samples)
        return out

    return generate
