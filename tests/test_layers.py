"""Shared blocks: shapes, config round trips, ragged == padded, masking invariance, cuDNN eligibility."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from zoo.layers import AppendToSteps, BagLinear, MaskedPooling, PaddingMask, RecurrentStack, SequenceInput, guard_fully_masked_rows

RNG = np.random.default_rng(0)


def ragged_batch(lengths, features=3):
    return tf.ragged.constant([RNG.normal(size=(n, features)).tolist() for n in lengths], ragged_rank=1,
                              dtype=tf.float32)


def padded(ragged, extra=0):
    dense = ragged.to_tensor()
    dense = tf.pad(dense, [[0, 0], [0, extra], [0, 0]], constant_values=7.0)  # garbage in the padding
    return dense, tf.cast(ragged.row_lengths(), tf.int32)


def test_sequence_input_ragged_equals_padded_and_zeroes_padding():
    rag = ragged_batch([2, 5, 1])
    dense_r, mask_r = SequenceInput()(rag)
    dense_p, lengths = padded(rag, extra=3)
    dense_l, mask_l = SequenceInput()(dense_p, lengths=lengths)
    dense_m, mask_m = SequenceInput()(dense_p, mask=tf.sequence_mask(lengths, 8))
    np.testing.assert_array_equal(mask_r, mask_l[:, :5])
    np.testing.assert_array_equal(mask_l, mask_m)
    np.testing.assert_allclose(dense_r, dense_l[:, :5])
    assert float(tf.reduce_sum(tf.abs(dense_l[:, 5:]))) == 0.0  # the garbage 7.0 padding was cleared
    assert not bool(mask_l[0, 2])


def test_padding_mask_of_ids_and_strings():
    assert PaddingMask(0)(tf.constant([[3, 1, 0], [0, 0, 0]])).numpy().tolist() == [[True, True, False], [False] * 3]
    assert PaddingMask("")(tf.constant([["a", ""]])).numpy().tolist() == [[True, False]]


def test_append_to_steps_repeats_the_vector_on_every_step_and_keeps_the_mask():
    steps, vector = tf.random.normal((2, 4, 3)), tf.constant([[1.0, 2.0], [3.0, 4.0]])
    mask = tf.sequence_mask([4, 2], 4)
    layer = AppendToSteps()
    out = layer(steps, vector)
    assert out.shape == (2, 4, 5) and layer.compute_output_shape((2, None, 3), (2, 2)) == (2, None, 5)
    np.testing.assert_array_equal(out[:, :, :3], steps)
    np.testing.assert_array_equal(out[:, :, 3:], np.repeat(vector.numpy()[:, None], 4, axis=1))
    np.testing.assert_array_equal(layer.compute_mask(steps, vector, mask=mask), mask)


@pytest.mark.parametrize("layer", [
    AppendToSteps(),
    SequenceInput(pad_value=-1),
    RecurrentStack("gru", 4, num_layers=2, bidirectional=True, merge_mode="sum", dropout=0.2, residual=True),
    MaskedPooling(["last", "max"]),
    PaddingMask(""),
    BagLinear(7, padding_id=1),
])
def test_config_round_trip(layer):
    clone = layer.__class__.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("return_sequences", [False, True])
def test_recurrent_stack_shapes_and_extra_padding_invariance(cell, bidirectional, return_sequences):
    stack = RecurrentStack(cell, 5, num_layers=2, bidirectional=bidirectional, residual=True,
                           return_sequences=return_sequences)
    rag = ragged_batch([3, 6, 2])
    short, lengths = padded(rag)
    long, _ = padded(rag, extra=4)
    mask_short = tf.sequence_mask(lengths, short.shape[1])
    mask_long = tf.sequence_mask(lengths, long.shape[1])
    out_short = stack(SequenceInput()(short, lengths=lengths)[0], mask=mask_short)
    out_long = stack(SequenceInput()(long, lengths=lengths)[0], mask=mask_long)
    width = 10 if bidirectional else 5
    if return_sequences:
        assert out_short.shape == (3, 6, width) and out_long.shape == (3, 10, width)
        valid = mask_short.numpy()
        np.testing.assert_allclose(out_short.numpy()[valid], out_long.numpy()[:, :6][valid], atol=1e-5)
    else:
        assert out_short.shape == (3, width)
        np.testing.assert_allclose(out_short, out_long, atol=1e-5)


def test_recurrent_stack_keeps_cudnn_eligible_defaults():
    stack = RecurrentStack("gru", 4, num_layers=2, bidirectional=True)
    stack.build((None, None, 3))
    for wrapper in stack.recurrent_layers:
        for rnn in (wrapper.forward_layer, wrapper.backward_layer):
            assert rnn.cell.activation is keras.activations.tanh
            assert rnn.cell.recurrent_activation is keras.activations.sigmoid
            assert rnn.cell.recurrent_dropout == 0 and not rnn.unroll and rnn.cell.reset_after


def test_fully_masked_row_is_guarded_and_does_not_touch_other_rows():
    stack = RecurrentStack("lstm", 4, bidirectional=True)
    x = tf.random.normal((2, 4, 3))
    mask = tf.constant([[True, True, False, False], [False] * 4])
    out = stack(x, mask=mask)
    alone = stack(x[:1], mask=mask[:1])
    assert np.isfinite(out.numpy()).all()
    np.testing.assert_allclose(out[0], alone[0], atol=1e-6)
    np.testing.assert_array_equal(guard_fully_masked_rows(mask), [[True, True, False, False], [True] + [False] * 3])


@pytest.mark.parametrize("kwargs", [dict(cell="transformer"), dict(merge_mode="concatenate"), dict(num_layers=0),
                                    dict(dropout=1.0)])
def test_recurrent_stack_rejects_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        RecurrentStack(**kwargs)


def test_masked_pooling_matches_numpy():
    x = RNG.normal(size=(3, 5, 2)).astype(np.float32)
    lengths = np.array([2, 5, 0])
    mask = np.arange(5)[None, :] < lengths[:, None]
    out = MaskedPooling(["last", "mean", "max"])(x, mask=mask).numpy()
    for i, n in enumerate(lengths):
        expected = (np.concatenate([x[i, n - 1], x[i, :n].mean(0), x[i, :n].max(0)]) if n
                    else np.zeros(6, np.float32))
        np.testing.assert_allclose(out[i], expected, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError):
        MaskedPooling(["median"])


def test_model_with_all_blocks_survives_keras_save_and_reload(tmp_path):
    rag_in = keras.Input(shape=(None, 3), ragged=True)
    x, mask = SequenceInput(name="sequence_input")(rag_in)
    h = RecurrentStack("lstm", 6, num_layers=2, bidirectional=True, dropout=0.1, return_sequences=True)(x, mask=mask)
    model = keras.Model(rag_in, keras.layers.Dense(2)(MaskedPooling(["last", "mean"])(h, mask=mask)))
    rag = ragged_batch([4, 1, 3])
    path = tmp_path / "m.keras"
    model.save(path)
    reloaded = keras.models.load_model(path)
    np.testing.assert_allclose(model(rag), reloaded(rag), atol=1e-6)
    # The first example alone (no padding at all) gets the same answer as inside the padded batch.
    np.testing.assert_allclose(model(rag[:1]), model(rag)[:1], atol=1e-5)


def test_many_bidirectional_stacks_build_inside_a_keras_load_scope():
    # A `.keras` load builds layers inside an ObjectSharingScope keyed by id(); Bidirectional's copies of a freed
    # layer's address used to come back as another stack's layer (a sentiment ensemble failed to reload now and then).
    from keras.src.saving import serialization_lib

    with serialization_lib.ObjectSharingScope():
        stacks = []
        for i in range(100):  # most are freed at once, so that their addresses get reused
            stack = RecurrentStack("gru", 4, num_layers=2, bidirectional=True)
            if i % 10 == 0:
                stacks.append(stack)
    layers = [sub for stack in stacks for bi in stack.recurrent_layers for sub in (bi.forward_layer, bi.backward_layer)]
    assert len({id(layer) for layer in layers}) == len(layers)
    assert [layer.go_backwards for layer in layers[:2]] == [False, True]


@pytest.mark.parametrize("return_sequences", [False, True])
def test_batch_of_only_empty_sequences(return_sequences):
    stack = RecurrentStack("lstm", 4, bidirectional=True, return_sequences=return_sequences)
    out = stack(tf.zeros((3, 0, 2)), mask=tf.zeros((3, 0), tf.bool))
    assert out.shape == ((3, 0, 8) if return_sequences else (3, 8))
    assert np.isfinite(out.numpy()).all()


def test_masked_pooling_of_a_batch_without_steps():
    out = MaskedPooling(["last", "mean", "max"])(tf.zeros((2, 0, 3)), mask=tf.zeros((2, 0), tf.bool))
    np.testing.assert_array_equal(out, np.zeros((2, 9)))


def test_bag_linear_scores_each_distinct_id_once_in_any_order_and_never_padding():
    layer = BagLinear(6)
    layer.build((None, None))
    kernel = RNG.normal(size=6).astype(np.float32)
    layer.set_weights([kernel, np.float32(0.5)])
    ids = np.array([[3, 1, 3, 0, 0], [5, 5, 5, 5, 2], [0, 0, 0, 0, 0]])
    out = layer(ids).numpy()
    expected = [0.5 + sum(kernel[i] for i in set(row) - {0}) for row in ids]
    np.testing.assert_allclose(out[:, 0], expected, rtol=1e-6)
    np.testing.assert_allclose(layer(ids[:, ::-1]).numpy(), out, rtol=1e-6)  # order does not matter
    np.testing.assert_allclose(layer(np.pad(ids, [[0, 0], [0, 3]])).numpy(), out, rtol=1e-6)  # nor extra padding
    np.testing.assert_allclose(layer(np.zeros((2, 0), np.int64)).numpy(), [[0.5], [0.5]])


def test_bag_linear_rejects_an_empty_vocabulary():
    with pytest.raises(ValueError, match="input_dim"):
        BagLinear(0)
