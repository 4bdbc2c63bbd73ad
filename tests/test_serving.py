"""zoo.serving: the in-graph request checks every served signature shares."""

import pytest
import tensorflow as tf

from zoo.config import TextServingConfig
from zoo.serving import at_most, checked_strings, gated, nonempty_batch, within_budget


def test_a_budget_compares_as_int64_so_large_totals_cannot_wrap_around():
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"request too large: at most 10 bases .*serving.max_b"):
        within_budget(tf.constant(2 ** 32 + 3, tf.int64), 10, "bases", "max_bases")
    within_budget(tf.constant(10, tf.int32), 10, "bases", "max_bases")  # at the limit is legal


def test_gated_tensors_pass_through_once_the_checks_hold():
    x, y = gated([at_most(tf.constant(3), 5, "three is at most five")], tf.constant([1, 2]), tf.constant("a"))
    assert x.numpy().tolist() == [1, 2] and y.numpy() == b"a"
    with pytest.raises(tf.errors.InvalidArgumentError, match="six is not"):
        gated([at_most(tf.constant(6), 5, "six is not at most five")], tf.constant(1))


@tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
def _checked(text):
    return checked_strings(text, TextServingConfig(max_batch_size=3, max_request_bytes=10))


def test_checked_strings_bound_the_batch_and_its_bytes():
    assert _checked(tf.constant(["abc", "defg", ""])).shape == (3,)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"batch too large: at most 3 strings"):
        _checked(tf.constant(["a"] * 4))
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"at most 10 bytes of text .*max_request_bytes"):
        _checked(tf.constant(["abcdef", "ghijk"]))  # each string is short, the two together are not


@pytest.mark.parametrize("rows", [0, 2])
def test_nonempty_batch_adds_one_zero_row_only_to_an_empty_batch(rows):
    @tf.function(input_signature=[tf.TensorSpec([None, None, 3], tf.float32), tf.TensorSpec([None], tf.int32)])
    def pad(frames, lengths):
        return nonempty_batch(frames, lengths)

    (frames, lengths), batch = pad(tf.ones([rows, 4, 3]), tf.fill([rows], 4))
    assert int(batch) == rows and frames.shape == (max(rows, 1), 4, 3) and lengths.shape == (max(rows, 1),)
    if rows == 0:
        assert not frames.numpy().any() and lengths.numpy().tolist() == [0]
    else:
        assert frames.numpy().all() and lengths.numpy().tolist() == [4, 4]
