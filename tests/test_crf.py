"""The CRF against brute-force enumeration of every tag path on tiny inputs."""

import itertools

import keras
import numpy as np
import pytest
import tensorflow as tf

from zoo.layers import CRF
from zoo.layers.crf import crf_log_partition, crf_marginals, crf_sequence_score, crf_viterbi_decode

NUM_TAGS = 3


def _params(seed=0, k=NUM_TAGS):
    rng = np.random.default_rng(seed)
    return [rng.normal(size=s).astype(np.float32) for s in ((k, k), (k,), (k,))]


def _path_score(emissions, path, transitions, start, end):
    score = start[path[0]] + end[path[-1]] + sum(emissions[t, y] for t, y in enumerate(path))
    return score + sum(transitions[a, b] for a, b in zip(path[:-1], path[1:]))


def _brute_force(emissions, length, transitions, start, end):
    """(log Z, best path, best score) over all K^length paths of one row."""
    paths = list(itertools.product(range(emissions.shape[-1]), repeat=length))
    scores = np.array([_path_score(emissions[:length], p, transitions, start, end) for p in paths], np.float64)
    best = int(scores.argmax())
    return np.logaddexp.reduce(scores), list(paths[best]), scores[best]


@pytest.fixture
def batch():
    rng = np.random.default_rng(1)
    emissions = rng.normal(size=(4, 5, NUM_TAGS)).astype(np.float32) * 2
    lengths = np.array([5, 3, 1, 4])
    mask = np.arange(5)[None, :] < lengths[:, None]
    tags = rng.integers(0, NUM_TAGS, size=(4, 5)).astype(np.int32)
    return emissions, mask, lengths, tags


def test_log_partition_score_and_viterbi_match_brute_force(batch):
    emissions, mask, lengths, tags = batch
    params = _params()
    log_z = crf_log_partition(emissions, mask, *params).numpy()
    score = crf_sequence_score(emissions, tags, mask, *params).numpy()
    decoded, best_score = (t.numpy() for t in crf_viterbi_decode(emissions, mask, *params))
    for i, n in enumerate(lengths):
        exp_log_z, exp_path, exp_best = _brute_force(emissions[i], n, *params)
        np.testing.assert_allclose(log_z[i], exp_log_z, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(score[i], _path_score(emissions[i], tags[i, :n], *params), rtol=1e-5, atol=1e-5)
        assert decoded[i, :n].tolist() == exp_path
        assert (decoded[i, n:] == 0).all()
        np.testing.assert_allclose(best_score[i], exp_best, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("k", [NUM_TAGS, 10])  # the log-semiring tree, and the sequential scan above TREE_MAX_TAGS
def test_per_step_transitions_match_brute_force(k):
    rng = np.random.default_rng(3)
    emissions = rng.normal(size=(3, 4, k)).astype(np.float32)
    lengths = np.array([4, 2, 1])
    mask = np.arange(4)[None, :] < lengths[:, None]
    # Per-step scores with forbidden (-1e9) transitions, as a grammar gives them.
    steps = np.where(rng.random((3, 4, k, k)) < 0.3, -1e9, rng.normal(size=(3, 4, k, k))).astype(np.float32)
    tags = rng.integers(0, k, size=(3, 4)).astype(np.int32)
    params = _params(seed=7, k=k)
    log_z = crf_log_partition(emissions, mask, *params, steps).numpy()
    score = crf_sequence_score(emissions, tags, mask, *params, steps).numpy()
    decoded = crf_viterbi_decode(emissions, mask, *params, steps)[0].numpy()
    marginals = crf_marginals(emissions, mask, *params, steps).numpy()
    for i, n in enumerate(lengths):
        paths = list(itertools.product(range(k), repeat=int(n)))

        def path_score(path):
            return (_path_score(emissions[i, :n], path, *params)
                    + sum(steps[i, t, path[t - 1], path[t]] for t in range(1, len(path))))

        scores = np.array([path_score(p) for p in paths], np.float64)
        np.testing.assert_allclose(log_z[i], np.logaddexp.reduce(scores), rtol=1e-5)
        np.testing.assert_allclose(score[i], path_score(tags[i, :n]), rtol=1e-5)
        assert decoded[i, :n].tolist() == list(paths[int(scores.argmax())])
        expected = np.zeros((n, k))
        for p, prob in zip(paths, np.exp(scores - np.logaddexp.reduce(scores))):
            expected[np.arange(n), p] += prob
        np.testing.assert_allclose(marginals[i, :n], expected, atol=1e-5)


def _runs_long_enough(path, min_durations):
    """Every run of a tag that touches neither end of the path lasts at least that tag's minimum."""
    runs = [(tag, len(list(group))) for tag, group in itertools.groupby(path)]
    return all(length >= min_durations[tag] for tag, length in runs[1:-1])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_viterbi_with_min_durations_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    k, time, min_durations = 3, 7, (1, 3, 2)
    emissions = rng.normal(size=(4, time, k)).astype(np.float32) * 2
    lengths = np.array([7, 5, 2, 1])
    mask = np.arange(time)[None, :] < lengths[:, None]
    steps = np.where(rng.random((4, time, k, k)) < 0.2, -1e9, rng.normal(size=(4, time, k, k))).astype(np.float32)
    params = _params(seed=seed + 10, k=k)
    decoded, best = (t.numpy() for t in crf_viterbi_decode(emissions, mask, *params, steps, min_durations))
    for i, n in enumerate(lengths):
        paths = [p for p in itertools.product(range(k), repeat=int(n)) if _runs_long_enough(p, min_durations)]
        scores = [_path_score(emissions[i, :n], p, *params) + sum(steps[i, t, p[t - 1], p[t]] for t in range(1, n))
                  for p in paths]
        assert decoded[i, :n].tolist() == list(paths[int(np.argmax(scores))])
        assert (decoded[i, n:] == 0).all()
        np.testing.assert_allclose(best[i], max(scores), rtol=1e-5)
    # All minimums 1 is plain Viterbi.
    plain = crf_viterbi_decode(emissions, mask, *params, steps)[0].numpy()
    np.testing.assert_array_equal(crf_viterbi_decode(emissions, mask, *params, steps, (1,) * k)[0].numpy(), plain)


def test_log_partition_of_long_rows_matches_the_sequential_forward_algorithm():
    rng = np.random.default_rng(5)
    emissions = rng.normal(size=(4, 777, NUM_TAGS)).astype(np.float32) * 3
    lengths = np.array([777, 500, 1, 0])
    params = _params(seed=6)
    transitions, start, end = (p.astype(np.float64) for p in params)
    log_z = crf_log_partition(emissions, np.arange(777)[None] < lengths[:, None], *params).numpy()
    for i, n in enumerate(lengths):
        expected = 0.0
        if n:
            alpha = start + emissions[i, 0]
            for t in range(1, n):
                alpha = np.logaddexp.reduce(alpha[:, None] + transitions, axis=0) + emissions[i, t]
            expected = np.logaddexp.reduce(alpha + end)
        np.testing.assert_allclose(log_z[i], expected, rtol=1e-5)


def test_marginals_match_brute_force_and_ignore_padding(batch):
    emissions, mask, lengths, _ = batch
    params = _params(seed=4)
    marginals = crf_marginals(emissions, mask, *params).numpy()
    for i, n in enumerate(lengths):
        paths = list(itertools.product(range(NUM_TAGS), repeat=int(n)))
        scores = np.array([_path_score(emissions[i, :n], p, *params) for p in paths], np.float64)
        probs = np.exp(scores - np.logaddexp.reduce(scores))
        expected = np.zeros((n, NUM_TAGS))
        for p, prob in zip(paths, probs):
            expected[np.arange(n), p] += prob
        np.testing.assert_allclose(marginals[i, :n], expected, atol=1e-5)
        assert (marginals[i, n:] == 0).all()
    padded = np.pad(emissions, [(0, 0), (0, 2), (0, 0)], constant_values=9.0)
    padded_mask = np.pad(mask, [(0, 0), (0, 2)])
    np.testing.assert_allclose(crf_marginals(padded, padded_mask, *params).numpy()[:, :5], marginals, atol=1e-6)
    assert crf_marginals(np.zeros((2, 0, NUM_TAGS), np.float32), None, *params).shape == (2, 0, NUM_TAGS)


def test_layer_nll_is_minus_log_probability(batch):
    emissions, mask, lengths, tags = batch
    crf = CRF(NUM_TAGS)
    crf.build(emissions.shape)
    params = _params(seed=2)
    crf.set_weights(params)
    nll = crf.negative_log_likelihood(emissions, tags, mask).numpy()
    for i, n in enumerate(lengths):
        log_z, _, _ = _brute_force(emissions[i], n, *params)
        expected = log_z - _path_score(emissions[i], tags[i, :n], *params)
        np.testing.assert_allclose(nll[i], expected, rtol=1e-5, atol=1e-5)
    assert (nll > 0).all()


def test_padding_content_and_extra_padding_change_nothing(batch):
    emissions, mask, _, tags = batch
    crf = CRF(NUM_TAGS, transitions_initializer="random_normal")
    decoded = crf(emissions, mask=mask).numpy()
    nll = crf.negative_log_likelihood(emissions, tags, mask).numpy()
    noisy = np.where(mask[..., None], emissions, 100.0).astype(np.float32)
    noisy_tags = np.where(mask, tags, 2)
    padded = np.pad(noisy, [(0, 0), (0, 3), (0, 0)], constant_values=-50.0)
    padded_mask = np.pad(mask, [(0, 0), (0, 3)])
    padded_tags = np.pad(noisy_tags, [(0, 0), (0, 3)], constant_values=1)
    np.testing.assert_array_equal(crf(padded, mask=padded_mask).numpy()[:, :5], decoded)
    np.testing.assert_allclose(crf.negative_log_likelihood(padded, padded_tags, padded_mask).numpy(), nll, rtol=1e-6)


@pytest.mark.parametrize("min_durations", [None, (2, 1, 3)])
def test_empty_rows_and_empty_batches(min_durations):
    crf = CRF(NUM_TAGS, transitions_initializer="random_normal", min_durations=min_durations)
    emissions = np.random.default_rng(3).normal(size=(2, 3, NUM_TAGS)).astype(np.float32)
    mask = np.array([[True, True, False], [False, False, False]])
    tags = crf(emissions, mask=mask).numpy()
    assert tags.shape == (2, 3) and (tags[1] == 0).all()
    assert crf.negative_log_likelihood(emissions, tags, mask).numpy()[1] == 0.0
    assert crf(np.zeros((2, 0, NUM_TAGS), np.float32)).shape == (2, 0)
    assert crf(np.zeros((0, 4, NUM_TAGS), np.float32)).shape == (0, 4)


@pytest.mark.parametrize("min_durations", [None, (2, 1, 3)])
def test_short_and_empty_inputs_in_a_graph_with_unknown_shapes(min_durations):
    crf = CRF(NUM_TAGS, transitions_initializer="random_normal", min_durations=min_durations)
    decode = tf.function(lambda e: crf(e), input_signature=[tf.TensorSpec([None, None, NUM_TAGS], tf.float32)])
    nll = tf.function(lambda e, t: crf.negative_log_likelihood(e, t), input_signature=[
        tf.TensorSpec([None, None, NUM_TAGS], tf.float32), tf.TensorSpec([None, None], tf.int32)])
    one_step = np.array([[[0.0, 2.0, 1.0]], [[3.0, 0.0, 0.0]]], np.float32)
    np.testing.assert_array_equal(decode(one_step).numpy(), crf(one_step).numpy())
    assert decode(np.zeros((0, 0, NUM_TAGS), np.float32)).shape == (0, 0)
    assert decode(np.zeros((2, 0, NUM_TAGS), np.float32)).shape == (2, 0)
    np.testing.assert_allclose(nll(one_step, np.array([[1], [0]], np.int32)).numpy(),
                               crf.negative_log_likelihood(one_step, np.array([[1], [0]])).numpy(), rtol=1e-6)


def test_training_learns_transitions_by_gradient():
    """Emissions say nothing; the data always alternate 0,1,0,1: only the transitions can learn that."""
    crf = CRF(2)
    emissions = tf.zeros((8, 6, 2))
    tags = tf.constant([[0, 1, 0, 1, 0, 1]] * 8)
    optimizer = keras.optimizers.Adam(0.1)
    crf.build(emissions.shape)
    for _ in range(50):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(crf.negative_log_likelihood(emissions, tags))
        optimizer.apply_gradients(zip(tape.gradient(loss, crf.trainable_weights), crf.trainable_weights))
    np.testing.assert_array_equal(crf(emissions).numpy(), tags.numpy())


def test_config_round_trip_and_keras_save(tmp_path):
    crf = CRF(4, transitions_initializer="random_normal", transitions_regularizer="l2", min_durations=(1, 2, 1, 3),
              name="crf")
    clone = CRF.from_config(crf.get_config())
    assert clone.get_config() == crf.get_config()
    inputs = keras.Input((None, 4))
    model = keras.Model(inputs, crf(inputs))
    x = np.random.default_rng(4).normal(size=(3, 7, 4)).astype(np.float32)
    model.save(tmp_path / "crf.keras")
    reloaded = keras.models.load_model(tmp_path / "crf.keras")
    np.testing.assert_array_equal(reloaded(x).numpy(), model(x).numpy())
    np.testing.assert_array_equal(reloaded.get_layer("crf").transitions.numpy(), crf.transitions.numpy())


def test_rejects_bad_arguments():
    with pytest.raises(ValueError, match="num_tags"):
        CRF(0)
    with pytest.raises(ValueError, match="3 scores per step"):
        CRF(3).build((None, None, 5))
    with pytest.raises(ValueError, match="min_durations must be 3 integers >= 1"):
        CRF(3, min_durations=(1, 0, 2))


@pytest.mark.parametrize("min_durations", [None, (2, 1, 3)])
def test_decode_is_exportable(tmp_path, min_durations):
    crf = CRF(NUM_TAGS, transitions_initializer="random_normal", min_durations=min_durations)
    fn = tf.function(lambda e, m: crf(e, mask=m), input_signature=[
        tf.TensorSpec([None, None, NUM_TAGS], tf.float32), tf.TensorSpec([None, None], tf.bool)])
    module = tf.Module()
    module.crf, module.decode = crf, fn
    tf.saved_model.save(module, str(tmp_path / "sm"))
    loaded = tf.saved_model.load(str(tmp_path / "sm"))
    e = np.random.default_rng(5).normal(size=(2, 4, NUM_TAGS)).astype(np.float32)
    m = np.array([[True] * 4, [True, True, False, False]])
    np.testing.assert_array_equal(loaded.decode(e, m).numpy(), crf(e, mask=m).numpy())
