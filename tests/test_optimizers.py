"""LazyAdam: Adam on dense gradients, row-wise updates of embedding tables."""

import keras
import numpy as np

from zoo import config, training
from zoo.optimizers import LazyAdam
from zoo.recipes.sentiment.config import SentimentConfig


def embedding_model(seed=0):
    keras.utils.set_random_seed(seed)
    ids = keras.Input((None,), dtype="int32")
    x = keras.layers.Embedding(20, 4, name="table")(ids)
    return keras.Model(ids, keras.layers.Dense(1)(keras.layers.GlobalAveragePooling1D()(x)))


def trained(optimizer, batches):
    model = embedding_model()
    model.compile(optimizer, "mse")
    for x in batches:
        model.train_on_batch(np.array(x), np.ones((len(x), 1)))
    return [np.asarray(w) for w in model.get_weights()]


def test_first_step_equals_adam_and_repeated_tokens_count_once():
    distinct = [[[1, 2], [5, 7]]]
    for a, b in zip(trained(LazyAdam(0.1, clipnorm=1.0), distinct),
                    trained(keras.optimizers.Adam(0.1, clipnorm=1.0), distinct)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
    # Adam's first step moves every coordinate with a gradient by the learning rate. A row whose token comes k times
    # has k slices; Keras' Adam squares them one by one before adding them up, which moves it by lr x sqrt(k).
    repeated = [[[1, 2, 2, 5], [5, 5, 7, 1]]]
    initial = embedding_model().get_weights()[0]
    moved = np.abs(trained(LazyAdam(0.1), repeated)[0] - initial)
    np.testing.assert_allclose(moved[[1, 2, 5, 7]], 0.1, rtol=1e-4)
    untouched = [r for r in range(20) if r not in (1, 2, 5, 7)]
    np.testing.assert_array_equal(moved[untouched], 0.0)
    keras_moved = np.abs(trained(keras.optimizers.Adam(0.1), repeated)[0] - initial)
    np.testing.assert_allclose(keras_moved[[7, 2, 5]].mean(axis=1), [0.1, 0.1 * 2 ** 0.5, 0.1 * 3 ** 0.5], rtol=1e-3)


def test_rows_a_batch_skips_stay_put_unlike_adam():
    batches = [[[1, 2]], [[3, 4]]]
    lazy = trained(LazyAdam(0.1), batches)
    dense = trained(keras.optimizers.Adam(0.1), batches)
    after_first = trained(LazyAdam(0.1), batches[:1])
    np.testing.assert_array_equal(lazy[0][[1, 2]], after_first[0][[1, 2]])  # not touched by the second batch
    assert np.abs(dense[0][[1, 2]] - after_first[0][[1, 2]]).min() > 0  # Adam's momentum moves them on
    assert np.abs(lazy[0][[3, 4]] - after_first[0][[3, 4]]).min() > 0


def test_train_sparse_updates_picks_it_and_a_compiled_model_round_trips(tmp_path):
    cfg = config.from_dict(SentimentConfig, train={"sparse_updates": True, "learning_rate": 0.01})
    optimizer = training.optimizer(cfg.train)
    assert isinstance(optimizer, LazyAdam) and optimizer.clipnorm == cfg.train.clipnorm
    assert type(training.optimizer(config.from_dict(SentimentConfig).train)) is keras.optimizers.Adam
    model = embedding_model()
    model.compile(optimizer, "mse")
    model.train_on_batch(np.array([[1, 2]]), np.ones((1, 1)))
    model.save(tmp_path / "m.keras")
    reloaded = keras.models.load_model(tmp_path / "m.keras")
    assert isinstance(reloaded.optimizer, LazyAdam) and abs(float(reloaded.optimizer.learning_rate) - 0.01) < 1e-8
