"""LazyAdam: Adam that updates only the rows of an embedding table that a batch touched."""

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="zoo")
class LazyAdam(keras.optimizers.Adam):
    """Adam whose sparse gradients (``tf.IndexedSlices``, as an ``Embedding`` gives) update only the rows they hold.

    Keras' Adam turns a table's gradient dense and updates every row and both moment estimates of all of them every
    step (a 25,000-word, 128-wide table is 3.2 M numbers x 3, though a batch of 64 snippets touches about a thousand
    rows). Here the touched rows' moments are decayed and updated and those rows moved; the others wait until their
    word comes up (TF 1's ``LazyAdamOptimizer`` and TF-Addons' ``LazyAdam``, which have no Keras 3 version). Dense
    gradients get Keras' Adam unchanged. The semantics differ from Adam for the rows a batch skips (their moments do
    not decay meanwhile); for word embeddings that is the usual trade.

    Args: those of `keras.optimizers.Adam` (``amsgrad`` is not supported with sparse gradients).
    """

    def update_step(self, gradient, variable, learning_rate):
        if not isinstance(gradient, tf.IndexedSlices):
            return super().update_step(gradient, variable, learning_rate)
        if self.amsgrad:
            raise ValueError("LazyAdam does not support amsgrad with sparse gradients")
        dtype = variable.dtype
        # A token repeated in a batch appears once per occurrence: sum its rows first.
        rows, position = tf.unique(gradient.indices)
        grad = tf.math.unsorted_segment_sum(tf.cast(gradient.values, dtype), position, tf.shape(rows)[0])
        step = tf.cast(self.iterations + 1, dtype)
        beta_1, beta_2 = tf.cast(self.beta_1, dtype), tf.cast(self.beta_2, dtype)
        alpha = tf.cast(learning_rate, dtype) * tf.sqrt(1 - tf.pow(beta_2, step)) / (1 - tf.pow(beta_1, step))
        index = self._get_variable_index(variable)
        m, v = self._momentums[index], self._velocities[index]
        m_rows = beta_1 * tf.gather(m.value, rows) + (1 - beta_1) * grad
        v_rows = beta_2 * tf.gather(v.value, rows) + (1 - beta_2) * tf.square(grad)
        self.assign(m, tf.IndexedSlices(m_rows, rows))
        self.assign(v, tf.IndexedSlices(v_rows, rows))
        self.assign_sub(variable, tf.IndexedSlices(alpha * m_rows / (tf.sqrt(v_rows) + self.epsilon), rows))
