"""The shared Attention block: shapes, masking, precomputed keys, serialisation, argument checks."""

import keras
import numpy as np
import pytest

from zoo.layers import Attention

SCORES = ("luong", "bahdanau")


def inputs(seed=0, batch=2, query_time=3, memory_time=5):
    rng = np.random.default_rng(seed)
    query = rng.normal(size=(batch, query_time, 8)).astype("float32")
    memory = rng.normal(size=(batch, memory_time, 6)).astype("float32")
    mask = np.arange(memory_time)[None, :] < np.array([[3], [memory_time]])
    return query, memory, mask


@pytest.mark.parametrize("score", SCORES)
def test_shapes_and_weights_over_valid_steps(score):
    query, memory, mask = inputs()
    context, weights = Attention(score, units=4)(query, memory, mask=mask)
    assert context.shape == (2, 3, 6) and weights.shape == (2, 3, 5)
    weights = np.asarray(weights)
    np.testing.assert_allclose(weights.sum(-1), 1.0, rtol=1e-5)
    assert (weights[0, :, 3:] == 0).all()  # masked memory steps get exactly no weight


@pytest.mark.parametrize("score", SCORES)
def test_extra_memory_padding_changes_nothing(score):
    query, memory, mask = inputs()
    layer = Attention(score, units=4)
    context, weights = layer(query, memory, mask=mask)
    garbage = np.random.default_rng(1).normal(size=(2, 4, 6)).astype("float32")
    padded_memory = np.concatenate([memory, garbage], axis=1)
    padded_mask = np.concatenate([mask, np.zeros((2, 4), bool)], axis=1)
    padded_memory[0, 3:] = 100.0  # padding content of the short row must not leak either
    context2, weights2 = layer(query, padded_memory, mask=padded_mask)
    np.testing.assert_allclose(context2, context, atol=1e-5)
    np.testing.assert_allclose(np.asarray(weights2)[..., :5], weights, atol=1e-6)


@pytest.mark.parametrize("score", SCORES)
def test_precomputed_keys_equal_recomputed(score):
    query, memory, mask = inputs()
    layer = Attention(score, units=4)
    context, _ = layer(query, memory, mask=mask)
    context2, _ = layer(query, memory, mask=mask, keys=layer.project_memory(memory))
    np.testing.assert_allclose(context2, context, atol=1e-6)


@pytest.mark.parametrize("score", SCORES)
def test_keras_file_round_trip(score, tmp_path):
    q = keras.Input((None, 8))
    m = keras.Input((None, 6))
    mask = keras.Input((None,), dtype="bool")
    context, weights = Attention(score, units=4, name="attention")(q, m, mask=mask)
    model = keras.Model([q, m, mask], [context, weights])
    data = list(inputs())
    model.save(tmp_path / "m.keras")
    reloaded = keras.models.load_model(tmp_path / "m.keras")
    assert reloaded.get_layer("attention").get_config() == model.get_layer("attention").get_config()
    for a, b in zip(model(data), reloaded(data)):
        np.testing.assert_allclose(a, b, atol=1e-6)


def test_luong_and_bahdanau_differ():
    query, memory, mask = inputs()
    assert Attention("luong").get_config()["score"] == "luong"
    luong = Attention("luong", units=4)(query, memory, mask=mask)[1]
    bahdanau = Attention("bahdanau", units=4)(query, memory, mask=mask)[1]
    assert not np.allclose(luong, bahdanau)


@pytest.mark.parametrize("kwargs, match", [({"score": "dot"}, "score must be one of"), ({"units": 0}, "units")])
def test_bad_arguments_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Attention(**kwargs)
