"""The shared CTC block: loss against a brute-force path sum, real lengths, decoding, config, serialisation."""

import itertools

import keras
import numpy as np
import pytest
import tensorflow as tf

from zoo.layers import CTC


def _collapse(path, blank=0):
    out = [k for i, k in enumerate(path) if k != blank and (i == 0 or k != path[i - 1])]
    return tuple(out)


def _brute_force_nll(logits, label, blank=0):
    """-log of the summed probability of every frame path that collapses to ``label``."""
    log_probs = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    total = 0.0
    for path in itertools.product(range(logits.shape[1]), repeat=logits.shape[0]):
        if _collapse(path, blank) == tuple(label):
            total += np.exp(sum(log_probs[t, k] for t, k in enumerate(path)))
    return -np.log(total)


@pytest.mark.parametrize("blank", [0, 3])
def test_loss_equals_brute_force_path_sum_with_real_lengths(blank):
    rng = np.random.default_rng(0)
    classes = 4
    logits = rng.normal(size=(2, 6, classes)).astype(np.float32)
    frames = np.array([4, 5], np.int32)
    labels_list = [[1, 1], [2, 1, 2]]  # the repeat needs a blank between its two labels
    labels = np.full((2, 3), 9, np.int32)  # padding value must not matter
    for i, row in enumerate(labels_list):
        labels[i, : len(row)] = row
    # Frames past each row's length hold garbage that must be ignored.
    logits[0, 4:] = 50.0
    expected = [_brute_force_nll(logits[i, : frames[i]], labels_list[i], blank) for i in range(2)]
    got = CTC(blank_index=blank).loss(labels, np.array([2, 3], np.int32), logits, lengths=frames)
    np.testing.assert_allclose(np.asarray(got), expected, rtol=1e-4)
    mask = np.arange(6)[None, :] < frames[:, None]
    np.testing.assert_allclose(np.asarray(CTC(blank_index=blank).loss(labels, [2, 3], logits, mask=mask)), expected,
                               rtol=1e-4)


def test_full_time_dimension_differs_from_real_lengths():
    """Guards against the keras.losses.CTC behaviour (keras#21876): padding frames must change nothing."""
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(1, 8, 3)).astype(np.float32)
    labels = np.array([[1, 2]], np.int32)
    short = CTC().loss(labels, [2], logits, lengths=[5])
    full = CTC().loss(labels, [2], logits)
    assert abs(float(short[0]) - float(full[0])) > 1e-3
    np.testing.assert_allclose(short, CTC().loss(labels, [2], logits[:, :5]), rtol=1e-5)


@pytest.mark.parametrize("strategy", ["greedy", "beam_search"])
def test_decoding_recovers_a_clear_path_and_respects_lengths(strategy):
    # Frames spell 1 1 _ 1 2 then padding that would add a 3.
    path = [1, 1, 0, 1, 2, 3, 3]
    logits = np.full((2, 7, 4), -5.0, np.float32)
    for t, k in enumerate(path):
        logits[:, t, k] = 5.0
    labels, scores = CTC(strategy=strategy, beam_width=4)(logits, lengths=np.array([5, 0], np.int32))
    labels = np.asarray(labels)
    assert labels.shape == (2, 7) and np.asarray(scores).shape == (2,)
    assert labels[0].tolist()[:3] == [1, 1, 2] and (labels[0, 3:] == -1).all()
    assert (labels[1] == -1).all()  # no frames, no text


def test_validation_and_serialisation():
    with pytest.raises(ValueError, match="strategy"):
        CTC(strategy="viterbi")
    with pytest.raises(ValueError, match="beam_width"):
        CTC(beam_width=0)
    layer = CTC(blank_index=2, strategy="beam_search", beam_width=5)
    clone = keras.layers.deserialize(keras.layers.serialize(layer))
    assert (clone.blank_index, clone.strategy, clone.beam_width) == (2, "beam_search", 5)


def test_decoders_are_core_ops():
    assert {"CTCGreedyDecoder", "CTCBeamSearchDecoder", "CTCLoss"} <= set(dir(tf.raw_ops))
