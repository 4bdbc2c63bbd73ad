"""TagF1: a cheap in-graph F1 over the tags other than the background tag 0, for checkpoints and early stopping."""

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="zoo")
class TagF1(keras.metrics.Metric):
    """Micro F1 (percent) over the valid steps tagged other than the background tag 0 (NER's O, DNA's intergenic)
    in gold or prediction; a tag must match exactly (for NER: B-/I- and type). It tracks entity-level F1 closely
    and, unlike the validation loss, keeps rising while the tagger grows more confident, so checkpoints and early
    stopping follow it.

    Call args (`update_state`):
        y_true, y_pred: int tensors `(batch, time)`, gold and predicted tags.
        mask: bool tensor `(batch, time)`, the valid steps.
    """

    def __init__(self, name="tag_f1", **kwargs):
        super().__init__(name=name, **kwargs)
        self.hits = self.add_variable((), initializer="zeros", name="hits")
        self.predicted = self.add_variable((), initializer="zeros", name="predicted")
        self.actual = self.add_variable((), initializer="zeros", name="actual")

    def update_state(self, y_true, y_pred, mask):
        y_true, y_pred = tf.cast(y_true, tf.int32), tf.cast(y_pred, tf.int32)
        count = lambda x: tf.reduce_sum(tf.cast(tf.logical_and(x, mask), self.dtype))  # noqa: E731
        self.hits.assign_add(count(tf.logical_and(tf.equal(y_true, y_pred), y_true > 0)))
        self.predicted.assign_add(count(y_pred > 0))
        self.actual.assign_add(count(y_true > 0))

    def result(self):
        return 200.0 * self.hits / tf.maximum(self.predicted + self.actual, 1.0)
