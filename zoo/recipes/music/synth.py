"""Audio from generated music, inside the served graph: additive synthesis in core TensorFlow ops.

Each note is a sum of three harmonics (amplitudes 1, 1/2, 1/4; those at or above the Nyquist frequency dropped) under
a piano-like envelope: a 10 ms linear attack at its onset, an exponential decay (time constant 1 s) from the onset on,
and a 30 ms linear release before its end. Notes are added and the sum is clipped to [-1, 1]; a note's fundamental
has amplitude 0.25.

The work is a few matrix products, not one oscillator per sample and pitch: within step ``s`` (``L`` samples from
sample ``n_s``), ``sin(w (n_s + t)) = sin(w n_s) cos(w t) + cos(w n_s) sin(w t)``, so a step's samples are the
``(pitches × harmonics)`` weights of that step times two fixed ``(pitches × harmonics, L)`` tables, once for each of the
four envelope shapes a step can have (sustained, starting, ending, both). Phases are taken modulo one cycle in
float64, so a long piece stays in tune.
"""

from __future__ import annotations

import math

import numpy as np
import tensorflow as tf

SAMPLE_RATE = 16000
HARMONICS = (1.0, 0.5, 0.25)
NOTE_PEAK, ATTACK_S, DECAY_S, RELEASE_S = 0.25, 0.010, 1.0, 0.030


def samples_per_step(steps_per_quarter: int, tempo_bpm: float) -> int:
    """Audio samples of one time step at ``tempo_bpm`` (rounded: the tempo moves by under 0.01 %)."""
    return max(1, int(round(SAMPLE_RATE * 60.0 / (tempo_bpm * steps_per_quarter))))


def pitch_hz(midi_pitch) -> np.ndarray:
    return 440.0 * 2.0 ** ((np.asarray(midi_pitch, np.float64) - 69.0) / 12.0)


def events_to_roll(events, num_pitches: int, first_pitch_token: int, hold: int):
    """In-graph ``data.events_to_roll`` and ``data.event_onsets``: event ids `(batch, steps)` → (roll, onsets),
    both float32 `(batch, steps, num_pitches)`; a pitch token starts a note, ``hold`` continues it, anything else
    is silence."""
    events = tf.cast(events, tf.int32)
    started = tf.where(events >= first_pitch_token, events - first_pitch_token, -1)

    def carry(current, step):
        tokens, new = step
        return tf.where(new >= 0, new, tf.where(tokens == hold, current, -1))

    over_time = (tf.transpose(events), tf.transpose(started))
    current = tf.transpose(tf.scan(carry, over_time, initializer=tf.fill([tf.shape(events)[0]], -1)))
    return tf.one_hot(current, num_pitches), tf.one_hot(started, num_pitches)


def synthesize(roll, onsets, low_pitch: int, step_samples: int):
    """Waveform float32 `(batch, steps * step_samples)` at ``SAMPLE_RATE`` of a roll.

    Args:
        roll: float `(batch, steps, pitches)`, 1 where a pitch sounds.
        onsets: float `(batch, steps, pitches)` or None: 1 where a note starts again while the pitch was sounding
            (a repeated note). A sounding step after a silent one starts a note anyway, so a plain roll passes None.
        low_pitch: int, the MIDI pitch of pitch index 0.
        step_samples: int, samples per step (``samples_per_step``).
    """
    roll = tf.cast(roll, tf.float32)
    onsets = tf.zeros_like(roll) if onsets is None else tf.cast(onsets, tf.float32)
    batch, steps, pitches = tf.shape(roll)[0], tf.shape(roll)[1], roll.shape[-1]
    before = tf.pad(roll, [[0, 0], [1, 0], [0, 0]])[:, :-1]
    after = tf.pad(onsets, [[0, 0], [0, 1], [0, 0]])[:, 1:]
    nxt = tf.pad(roll, [[0, 0], [0, 1], [0, 0]])[:, 1:]
    starts = roll * tf.maximum(onsets, 1.0 - before)
    ends = roll * tf.maximum(1.0 - nxt, after)  # the last step of a note

    # Steps since the note's onset, for the decay: the onset step's index carried forward while the note sounds.
    index = tf.cast(tf.range(steps), tf.float32)[tf.newaxis, :, tf.newaxis]
    marked = tf.where(starts > 0, index, -1.0)
    onset_at = tf.transpose(tf.scan(tf.maximum, tf.transpose(marked, [1, 0, 2])), [1, 0, 2])
    step_seconds = step_samples / SAMPLE_RATE
    level = roll * NOTE_PEAK * tf.exp(-(index - onset_at) * step_seconds / DECAY_S)

    # Oscillator tables over one step, and each step's phase (cycles modulo 1, in float64).
    frequencies = np.concatenate([h * pitch_hz(low_pitch + np.arange(pitches)) for h in range(1, len(HARMONICS) + 1)])
    amplitudes = np.concatenate([np.full(pitches, a) * (h * pitch_hz(low_pitch + np.arange(pitches)) < SAMPLE_RATE / 2)
                                 for h, a in zip(range(1, len(HARMONICS) + 1), HARMONICS)])
    t = np.arange(step_samples) / SAMPLE_RATE
    sin_table = tf.constant(np.sin(2 * math.pi * np.outer(frequencies, t)) * amplitudes[:, None], tf.float32)
    cos_table = tf.constant(np.cos(2 * math.pi * np.outer(frequencies, t)) * amplitudes[:, None], tf.float32)
    step_start = tf.cast(tf.range(steps), tf.float64) * step_samples / SAMPLE_RATE
    cycles = tf.math.floormod(step_start[:, tf.newaxis] * tf.constant(frequencies, tf.float64)[tf.newaxis], 1.0)
    phase = tf.cast(2 * math.pi * cycles, tf.float32)[tf.newaxis]  # (1, steps, pitches × harmonics)

    # The four envelope shapes of a step, all with the decay inside the step.
    decay = np.exp(-t / DECAY_S)
    attack = np.minimum(1.0, t / ATTACK_S)
    release = np.minimum(1.0, (step_seconds - t) / RELEASE_S)
    audio = tf.zeros([batch * steps, step_samples])
    for start_kind in (0.0, 1.0):
        for end_kind in (0.0, 1.0):
            shape = decay * (attack if start_kind else 1.0) * (release if end_kind else 1.0)
            pick = (starts if start_kind else 1.0 - starts) * (ends if end_kind else 1.0 - ends)
            weight = tf.tile(level * pick, [1, 1, len(HARMONICS)])  # (batch, steps, pitches × harmonics)
            flat = lambda x: tf.reshape(x, [-1, len(frequencies)])  # noqa: E731
            block = tf.matmul(flat(weight * tf.cos(phase)), sin_table) + tf.matmul(flat(weight * tf.sin(phase)),
                                                                                    cos_table)
            audio += block * tf.constant(shape, tf.float32)[tf.newaxis]
    return tf.clip_by_value(tf.reshape(audio, [batch, steps * step_samples]), -1.0, 1.0)
