"""SequenceTagger (shared by ner and dna): heads, probabilities, and the averaged ensemble."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from zoo.models import SequenceTagger, average_taggers


@keras.saving.register_keras_serializable(package="zoo_tests")
class NonZero(keras.layers.Layer):
    def call(self, ids):
        return tf.not_equal(ids, 0)

    def compute_output_spec(self, ids):
        return keras.KerasTensor(ids.shape, dtype="bool")


def tagger(seed, head="crf", name="tagger"):
    keras.utils.set_random_seed(seed)
    ids = keras.Input(shape=(None,), dtype="int32", name="ids")
    emissions = keras.layers.Dense(3, name="emissions")(keras.layers.Embedding(10, 4, name="embed")(ids))
    mask = NonZero(name="mask")(ids)
    model = SequenceTagger(keras.Model(ids, [emissions, mask], name=f"{name}_encoder"), head, name=name)
    model(tf.ones((1, 2), tf.int32))
    if model.crf is not None:
        model.crf.set_weights([w + np.random.default_rng(seed).normal(size=w.shape) for w in model.crf.get_weights()])
    return model


IDS = np.array([[1, 2, 3, 4], [5, 6, 0, 0]], np.int32)


@pytest.mark.parametrize("head", ["crf", "softmax"])
def test_probabilities_are_distributions_on_valid_steps(head):
    model = tagger(0, head)
    out = model(IDS)
    probabilities = model.probabilities(out["emissions"], out["mask"]).numpy()
    np.testing.assert_allclose(probabilities[0].sum(-1), 1.0, rtol=1e-5)
    assert (probabilities[1, 2:] == 0).all()
    assert out["tags"].numpy()[1, 2:].tolist() == [0, 0]


@pytest.mark.parametrize("head", ["crf", "softmax"])
def test_average_of_taggers_averages_emissions_and_transitions(head):
    members = [tagger(seed, head, name=f"member_{seed}") for seed in (1, 2, 3)]
    ensemble = average_taggers(members)
    expected = np.mean([m(IDS)["emissions"].numpy() for m in members], axis=0)
    out = ensemble(IDS)
    np.testing.assert_allclose(out["emissions"].numpy(), expected, atol=1e-6)
    if head == "crf":
        transitions = np.mean([m.crf.get_weights()[0] for m in members], axis=0)
        np.testing.assert_allclose(ensemble.crf.get_weights()[0], transitions, atol=1e-6)
        assert (out["tags"].numpy() == ensemble.crf(out["emissions"], mask=out["mask"]).numpy()).all()
    assert average_taggers(members[:1]) is members[0]


def test_ensemble_survives_keras_save(tmp_path):
    ensemble = average_taggers([tagger(seed, name=f"member_{seed}") for seed in (1, 2)])
    ensemble.save(tmp_path / "ensemble.keras")
    clone = keras.models.load_model(tmp_path / "ensemble.keras")
    for key in ("tags", "emissions"):
        np.testing.assert_allclose(clone(IDS)[key].numpy(), ensemble(IDS)[key].numpy(), atol=1e-6)


@pytest.mark.parametrize("head", ["crf", "softmax"])
def test_background_bias_shifts_decoding_but_not_the_loss(head, tmp_path):
    model = tagger(4, head)
    out = model(IDS)
    loss = float(model.compute_loss(y=tf.zeros_like(IDS), y_pred=out))
    model.background_bias = -100.0
    biased = model(IDS)
    assert (biased["tags"].numpy()[0] != 0).all() and (biased["tags"].numpy()[1, 2:] == 0).all()
    assert (model.probabilities(biased["emissions"], biased["mask"]).numpy()[0, :, 0] < 1e-6).all()
    np.testing.assert_allclose(float(model.compute_loss(y=tf.zeros_like(IDS), y_pred=biased)), loss, rtol=1e-6)
    model.save(tmp_path / "biased.keras")
    assert keras.models.load_model(tmp_path / "biased.keras").background_bias == -100.0


def test_emission_loss_adds_the_weighted_cross_entropy_and_survives_saving(tmp_path):
    plain = tagger(0)
    y = np.array([[1, 2, 0, 1], [2, 2, 0, 0]], np.int32)
    out = plain(IDS)
    crf_loss = float(plain.compute_loss(IDS, y, out))
    cross_entropy = keras.losses.sparse_categorical_crossentropy(y, out["emissions"], from_logits=True).numpy()
    local = float((cross_entropy * (IDS != 0)).sum(axis=1).mean())
    weighted = SequenceTagger(plain.encoder, emission_loss_weight=0.5, name="weighted")
    weighted(IDS)
    weighted.crf.set_weights(plain.crf.get_weights())
    np.testing.assert_allclose(float(weighted.compute_loss(IDS, y, out)), crf_loss + 0.5 * local, rtol=1e-5)
    weighted.save(tmp_path / "w.keras")
    assert keras.models.load_model(tmp_path / "w.keras").emission_loss_weight == 0.5
