"""The translation network, its tokenisers, greedy and beam-search decoding, and its serving signatures.

Forward pass (teacher forcing): source pieces → embedding → shared ``RecurrentStack`` (bidirectional) → memory;
decoder LSTM/GRU over the shifted target, initialised from the masked mean of the memory → shared ``Attention``
(Luong or Bahdanau scores) of every decoder output over the memory → ``tanh(W [output; context])`` → vocabulary logits.

The decoder attends *after* its recurrent step (Luong et al. 2015, without input feeding), so in training the decoder
runs as one fused recurrent layer over the whole target and attention scores all steps in one batched product; while
decoding, one step is the recurrent cell plus one attention query. Decoding (greedy and beam search with GNMT length
normalisation) is written with core TF ops in a ``tf.while_loop``, so it runs inside the exported graph.

Vocabulary: the most frequent words whole, every other word spelt as characters, "##" marking word-internal ones
(WordPiece's convention with a words-or-characters segmentation), built and applied with core TF string ops.
"""

from __future__ import annotations

import collections

import keras
import numpy as np
import tensorflow as tf

from zoo import training
from zoo.layers import Attention, MaskedPooling, RecurrentStack, SequenceInput, guard_fully_masked_rows
from zoo.recipes.translation.config import DecodeConfig, ModelConfig, TranslationConfig
from zoo.serving import at_most, checked_strings, gated, within_budget

PAD, UNK, BOS, EOS = 0, 1, 2, 3
SPECIAL_TOKENS = ["", "[UNK]", "<s>", "</s>"]
CONTINUATION = "##"


def standardize(text, lowercase: bool):
    """Repairs UTF-8, optionally lower-cases, and splits punctuation off words (apostrophes stay inside words)."""
    text = tf.strings.unicode_transcode(text, "UTF-8", "UTF-8", errors="replace")
    if lowercase:
        text = tf.strings.lower(text, encoding="utf-8")
    # RE2's \w is ASCII-only; \pL and \pN keep accented letters inside words.
    text = tf.strings.regex_replace(text, r"([^\pL\pN\s'])", r" \1 ")
    return tf.strings.split(text)


def build_vocabulary(texts: tf.data.Dataset, max_words: int, lowercase: bool) -> list[str]:
    """Pieces learnt from a dataset of strings: special tokens, the ``max_words`` most frequent words, then every
    character seen, as a word start and as a continuation ("##c")."""
    words, chars = collections.Counter(), set()
    for batch in texts.batch(1024).map(lambda t: standardize(t, lowercase).flat_values):
        for word in batch.numpy():
            words[word.decode()] += 1
    for word in words:
        chars.add(word[0])
        chars.update(CONTINUATION + c for c in word[1:])
    # Ties broken alphabetically so the vocabulary is the same on every machine.
    kept = [w for w, _ in sorted(words.items(), key=lambda kv: (-kv[1], kv[0]))[:max_words]]
    return SPECIAL_TOKENS + kept + sorted(chars - set(kept))


@keras.saving.register_keras_serializable(package="zoo")
class Tokenizer(keras.layers.Layer):
    """Strings ↔ piece ids with a words-or-characters vocabulary, in core TF ops.

    Args:
        vocabulary: list of str. `["", "[UNK]", "<s>", "</s>", words..., characters...]` (see `build_vocabulary`).
        lowercase: bool. Lower-case text before splitting.

    Call args:
        text: string tensor `(batch,)`.

    Returns:
        int32 `tf.RaggedTensor` `(batch, (pieces))`: a known word is one piece, any other word its characters.
    """

    def __init__(self, vocabulary, lowercase=False, **kwargs):
        super().__init__(**kwargs)
        if list(vocabulary[:len(SPECIAL_TOKENS)]) != SPECIAL_TOKENS:
            raise ValueError(f"vocabulary must start with {SPECIAL_TOKENS}")
        self.vocabulary = list(vocabulary)
        self.lowercase = lowercase
        self.lookup = keras.layers.StringLookup(vocabulary=self.vocabulary[2:], mask_token="", oov_token="[UNK]",
                                                output_mode="int", name="lookup")
        self.built = True

    @property
    def vocabulary_size(self):
        return len(self.vocabulary)

    def call(self, text):
        words = standardize(text, self.lowercase)  # (batch, (words))
        word_ids = tf.cast(self.lookup(words.flat_values), tf.int32)
        chars = tf.strings.unicode_split(words.flat_values, "UTF-8")  # (words, (chars))
        position = tf.ragged.range(chars.row_lengths()).flat_values
        marked = tf.where(position > 0, CONTINUATION + chars.flat_values, chars.flat_values)
        char_ids = chars.with_flat_values(tf.cast(self.lookup(marked), tf.int32))
        known = tf.not_equal(word_ids, UNK)
        pieces = tf.concat([word_ids[:, tf.newaxis], char_ids], axis=1)  # (words, 1 + (chars))
        piece_position = tf.ragged.range(pieces.row_lengths()).flat_values
        keep = tf.where(tf.repeat(known, pieces.row_lengths()), piece_position == 0, piece_position > 0)
        per_word = tf.ragged.boolean_mask(pieces, pieces.with_flat_values(keep))
        return words.with_flat_values(per_word).merge_dims(1, 2)

    def detokenize(self, ids):
        """Piece ids `(batch, time)` → strings `(batch,)`, reading each row up to its first `</s>` or padding."""
        ids = tf.convert_to_tensor(ids)
        valid = tf.cumsum(tf.cast(tf.logical_or(ids == EOS, ids == PAD), tf.int32), axis=1) == 0
        pieces = tf.gather(tf.constant(self.vocabulary), tf.ragged.boolean_mask(ids, valid))
        text = tf.strings.reduce_join(pieces, axis=1, separator=" ")
        text = tf.strings.regex_replace(text, "(^| )" + CONTINUATION, "")
        text = tf.strings.regex_replace(text, r" ([,.;:!?)\]])", r"\1")
        return tf.strings.regex_replace(text, r"([(\[]) ", r"\1")

    def compute_output_spec(self, text):
        return keras.KerasTensor((text.shape[0], None), dtype="int32", ragged=True)

    def get_config(self):
        return {**super().get_config(), "vocabulary": self.vocabulary, "lowercase": self.lowercase}


class TiedProjection(keras.layers.Layer):
    """Logits of hidden vectors `(..., dim)` against an `Embedding`'s rows `(vocab, dim)`, plus a bias `(vocab,)`.

    Built only inside `Translator` (which recreates it from its own config), so it is not serialised on its own.
    """

    def __init__(self, embedding: keras.layers.Embedding, **kwargs):
        super().__init__(**kwargs)
        self.embedding = embedding

    def build(self, input_shape):
        self.bias = self.add_weight(shape=(self.embedding.input_dim,), initializer="zeros", name="bias")
        self.built = True

    def call(self, hidden):
        return tf.matmul(hidden, self.embedding.embeddings, transpose_b=True) + self.bias


def length_normalised(score, length, alpha: float):
    """GNMT length normalisation: log-probability / ((5 + length) / 6) ** alpha."""
    return score / tf.pow((5.0 + tf.cast(length, tf.float32)) / 6.0, alpha)


@keras.saving.register_keras_serializable(package="zoo")
class Translator(keras.Model):
    """Attentional encoder-decoder over piece ids, with greedy and beam-search decoding in TF ops.

    Args:
        source_vocabulary, target_vocabulary: list of str. Piece vocabularies (see `build_vocabulary`).
        embedding_dim, cell, units, attention, attention_units, dropout: see `ModelConfig`.
        encoder_layers: int. Stacked bidirectional encoder layers (`model.num_layers`).
        residual: bool. Residual connections between encoder layers.
        length_penalty: float. Alpha of the length normalisation of decoding scores.
        tie_embeddings: bool. Score outputs against the target embeddings instead of a separate output matrix.
        length_ratio, length_offset: float, int. Decoding stops at `</s>` or after `length_ratio * source pieces +
            length_offset` pieces, whichever comes first (and never after the `max_length` a caller gives).
        sampled_softmax: int. Training scores each target piece against this many candidate pieces drawn from
            the proposal that `set_candidate_frequencies` sets (uniform until then) instead of the whole
            vocabulary (sampled softmax, Jean et al. 2015); 0 trains with the full softmax. Evaluation, decoding and
            serving always use the full softmax.

    Call args (training): a tuple `(source_ids, target_in_ids)`, int `(batch, source_time)` and
    `(batch, target_time)`, right-padded with 0; `target_in_ids` starts with `<s>`.

    Returns:
        Logits `(batch, target_time, target_vocabulary_size)`.
    """

    def __init__(self, source_vocabulary, target_vocabulary, embedding_dim=128, cell="lstm", units=256,
                 encoder_layers=1, attention="luong", attention_units=128, dropout=0.2, length_penalty=1.0,
                 length_ratio=2.0, length_offset=10, residual=False, tie_embeddings=False, sampled_softmax=0,
                 **kwargs):
        super().__init__(**kwargs)
        if sampled_softmax < 0:
            raise ValueError(f"sampled_softmax must be >= 0, got {sampled_softmax}")
        self.hyperparameters = dict(embedding_dim=embedding_dim, cell=cell, units=units, encoder_layers=encoder_layers,
                                    attention=attention, attention_units=attention_units, dropout=dropout,
                                    length_penalty=length_penalty, length_ratio=length_ratio,
                                    length_offset=length_offset, residual=residual, tie_embeddings=tie_embeddings,
                                    sampled_softmax=sampled_softmax)
        self.sampled_softmax = sampled_softmax
        self.cell_type, self.units = cell, units
        self.length_penalty, self.length_ratio, self.length_offset = length_penalty, length_ratio, length_offset
        self.source_tokenizer = Tokenizer(source_vocabulary, lowercase=True, name="source_tokenizer")
        self.target_tokenizer = Tokenizer(target_vocabulary, lowercase=False, name="target_tokenizer")
        self.target_vocabulary_size = len(target_vocabulary)
        self.source_input = SequenceInput(name="source_input")
        # Unit-variance embeddings: with Keras' default (uniform ±0.05) the recurrent layers barely see their inputs
        # at first, and Adam takes hundreds of steps to grow them, a plateau at the unigram loss (see the README).
        embeddings = keras.initializers.RandomNormal(stddev=1.0)
        self.source_embedding = keras.layers.Embedding(len(source_vocabulary), embedding_dim,
                                                       embeddings_initializer=embeddings, name="source_embedding")
        self.target_embedding = keras.layers.Embedding(len(target_vocabulary), embedding_dim,
                                                       embeddings_initializer=embeddings, name="target_embedding")
        self.embedding_dropout = keras.layers.Dropout(dropout, name="embedding_dropout")
        self.encoder = RecurrentStack(cell, units // 2, encoder_layers, bidirectional=True, dropout=dropout,
                                      residual=residual, return_sequences=True, name="encoder")
        self.pooling = MaskedPooling(["mean"], name="memory_mean")
        num_states = 2 if cell == "lstm" else 1
        self.bridges = [keras.layers.Dense(units, activation="tanh", name=f"bridge_{i}") for i in range(num_states)]
        rnn = keras.layers.LSTM if cell == "lstm" else keras.layers.GRU
        self.decoder = rnn(units, return_sequences=True, name="decoder")
        self.attention = Attention(attention, attention_units, name="attention")
        # Tied: the output layer scores a hidden vector against every target embedding (Press & Wolf 2017), which
        # halves the output layer's cost and shares what the two learn about each piece.
        self.combine = keras.layers.Dense(embedding_dim if tie_embeddings else units, activation="tanh",
                                          name="combine")
        self.output_dropout = keras.layers.Dropout(dropout, name="output_dropout")
        self.projection = (TiedProjection(self.target_embedding, name="projection") if tie_embeddings
                           else keras.layers.Dense(len(target_vocabulary), name="projection"))
        if sampled_softmax:
            # The sampler's state is a variable, so a resumed run draws the candidates an uninterrupted one would.
            self.candidate_seed = keras.random.SeedGenerator(0, name="candidate_seed")

    def build(self, input_shape=None):
        # Every sublayer is built by one forward pass on a tiny batch, whatever shape the caller names.
        self.call((tf.ones((1, 2), tf.int32), tf.ones((1, 2), tf.int32)))
        if self.sampled_softmax:
            # log of the proposal the candidates are drawn from; `set_candidate_frequencies` sets it from the
            # training targets (uniform until then). A weight, so saved and restored with the model.
            self.candidate_log_probs = self.add_weight(
                shape=(self.target_vocabulary_size,), trainable=False, name="candidate_log_probs",
                initializer=keras.initializers.Constant(-np.log(self.target_vocabulary_size)))
        self.built = True

    def get_build_config(self):
        return {"built": self.built}  # non-empty, so loading calls build_from_config before restoring weights

    def build_from_config(self, config):
        self.build()

    # -- forward pass -------------------------------------------------------------------------------------------

    def encode(self, source_ids, training=None):
        """Ids (ragged, or dense right-padded with 0) → (memory, mask, initial decoder states)."""
        if isinstance(source_ids, tf.RaggedTensor):
            ids, mask = self.source_input(source_ids)
        else:
            lengths = tf.reduce_sum(tf.cast(tf.not_equal(source_ids, PAD), tf.int32), axis=1)  # right-padded
            ids, mask = self.source_input(source_ids, lengths=lengths)
        mask = guard_fully_masked_rows(mask)  # the same guard the encoder applies, for pooling and attention
        x = self.embedding_dropout(self.source_embedding(ids), training=training)
        memory = self.encoder(x, mask=mask, training=training)
        summary = self.pooling(memory, mask=mask)
        states = [bridge(summary) for bridge in self.bridges]
        return memory, mask, states

    def attend(self, outputs, memory, mask, keys, training=None):
        """Decoder outputs `(batch, time, units)` → the output layer's input `(batch, time, width)` and attention
        weights; `keys` is `attention.project_memory(memory)` or None."""
        context, weights = self.attention(outputs, memory, mask=mask, keys=keys)
        hidden = self.combine(tf.concat([outputs, context], axis=-1))
        return self.output_dropout(hidden, training=training), weights

    def features(self, inputs, training=None):
        """Teacher-forced `(source_ids, target_in_ids)` → the output layer's input `(batch, target_time, width)`."""
        source_ids, target_in = inputs
        memory, mask, states = self.encode(source_ids, training=training)
        x = self.embedding_dropout(self.target_embedding(target_in), training=training)
        outputs = self.decoder(x, mask=tf.not_equal(target_in, PAD), initial_state=states, training=training)
        return self.attend(outputs, memory, mask, None, training=training)[0]

    def call(self, inputs, training=None):
        return self.projection(self.features(inputs, training=training))

    def step(self, tokens, states, memory, mask, keys):
        """One decoding step: previous tokens `(n,)` → log-probabilities `(n, vocab)`, new states, weights `(n, S)`."""
        output, states = self.decoder.cell(self.target_embedding(tokens), list(states))
        states = list(states)
        hidden, weights = self.attend(output[:, tf.newaxis], memory, mask, keys)
        return tf.nn.log_softmax(self.projection(hidden)[:, 0]), states, weights[:, 0]

    # -- training with a sampled softmax -------------------------------------------------------------------------

    def set_candidate_frequencies(self, frequencies, distortion=0.75):
        """Draw training candidates from `frequencies ** distortion` (word2vec's flattening, so rarer pieces are
        drawn too) of the target pieces `(vocab,)`."""
        weights = np.power(np.asarray(frequencies, np.float64), distortion)
        self.candidate_log_probs.assign(np.log(weights / weights.sum()).astype(np.float32))

    def sampled_loss(self, hidden, targets, weights):
        """Mean sampled-softmax cross-entropy of the weighted target pieces: each real piece against
        `sampled_softmax` candidates drawn (with replacement) from the proposal, logits corrected by the log of
        their expected count, so its gradient estimates the full softmax's."""
        real = tf.reshape(weights, [-1]) > 0  # padding costs no work
        hidden = tf.boolean_mask(tf.reshape(hidden, [-1, tf.shape(hidden)[-1]]), real)
        labels = tf.cast(tf.boolean_mask(tf.reshape(targets, [-1]), real), tf.int64)
        token_weights = tf.boolean_mask(tf.reshape(tf.cast(weights, tf.float32), [-1]), real)
        log_q = self.candidate_log_probs.value
        sampled = tf.cast(keras.random.categorical(log_q[tf.newaxis], self.sampled_softmax,
                                                   seed=self.candidate_seed)[0], tf.int64)
        expected = lambda ids: self.sampled_softmax * tf.exp(tf.gather(log_q, ids))  # noqa: E731
        if isinstance(self.projection, TiedProjection):
            classes, bias = self.target_embedding.embeddings, self.projection.bias
        else:
            classes, bias = tf.transpose(self.projection.kernel), self.projection.bias
        losses = tf.nn.sampled_softmax_loss(
            classes, bias, labels[:, tf.newaxis], hidden, self.sampled_softmax, self.target_vocabulary_size,
            sampled_values=(sampled, expected(labels)[:, tf.newaxis], expected(sampled)))
        return tf.reduce_sum(losses * token_weights) / tf.maximum(tf.reduce_sum(token_weights), 1.0)

    def train_step(self, data):
        if not self.sampled_softmax:
            return super().train_step(data)
        inputs, targets, weights = data
        with tf.GradientTape() as tape:
            loss = self.sampled_loss(self.features(inputs, training=True), targets, weights)
            # Gradients are summed over replicas, so each replica's loss is its share (as Keras scales its own).
            scaled = self.optimizer.scale_loss(loss / tf.distribute.get_strategy().num_replicas_in_sync)
        self.optimizer.apply_gradients(zip(tape.gradient(scaled, self.trainable_weights), self.trainable_weights))
        # Keras' own loss tracker (what its train_step updates), so "loss" is one metric in training and
        # evaluation; the training accuracy would need the full softmax, so only the loss is logged.
        self._loss_tracker.update_state(loss, sample_weight=tf.reduce_sum(weights))
        return {"loss": self._loss_tracker.result()}

    # -- decoding -----------------------------------------------------------------------------------------------

    def decode_lengths(self, source_ids, max_length=None):
        """The most pieces decoded for each source `(batch,)`: `length_ratio * pieces + length_offset`, at most
        `max_length` (a scalar) when given."""
        if isinstance(source_ids, tf.RaggedTensor):
            pieces = tf.cast(source_ids.row_lengths(), tf.float32)
        else:
            pieces = tf.reduce_sum(tf.cast(tf.not_equal(source_ids, PAD), tf.float32), axis=1)
        limits = tf.cast(tf.math.ceil(self.length_ratio * pieces), tf.int32) + self.length_offset
        return limits if max_length is None else tf.minimum(limits, tf.cast(max_length, tf.int32))

    def greedy_search(self, source_ids, max_length=None):
        """Ids → (ids `(batch, steps)` ending in `</s>` then padding, scores `(batch,)`, attention
        `(batch, steps, source_time)`); scores are length-normalised log-probabilities. Each row stops at `</s>`
        or at its `decode_lengths(source_ids, max_length)`; `steps` is the longest of those limits."""
        memory, mask, states = self.encode(source_ids)
        keys = self.attention.project_memory(memory)  # once per source, reused at every step
        batch, source_time = tf.shape(memory)[0], tf.shape(memory)[1]
        row_limits = self.decode_lengths(source_ids, max_length)
        max_length = tf.reduce_max(tf.concat([row_limits, [0]], axis=0))
        columns = tf.range(max_length)

        def body(t, tokens, states, finished, scores, lengths, ids, alignment):
            log_probs, states, weights = self.step(tokens, states, memory, mask, keys)
            best = tf.cast(tf.argmax(log_probs, axis=-1), tf.int32)
            token = tf.where(finished, PAD, best)
            scores += tf.where(finished, 0.0, tf.reduce_max(log_probs, axis=-1))
            lengths += tf.cast(tf.logical_not(finished), tf.int32)
            at_t = tf.cast(columns == t, tf.int32)[tf.newaxis]
            ids += token[:, tf.newaxis] * at_t
            alignment += weights[:, tf.newaxis] * tf.cast(at_t, tf.float32)[..., tf.newaxis]
            finished = tf.logical_or(finished, tf.logical_or(token == EOS, t + 1 >= row_limits))
            return t + 1, token, states, finished, scores, lengths, ids, alignment

        def cond(t, tokens, states, finished, *_):
            return tf.logical_and(t < max_length, tf.logical_not(tf.reduce_all(finished)))

        loop_vars = (tf.constant(0), tf.fill([batch], BOS), states, row_limits <= 0, tf.zeros([batch]),
                     tf.zeros([batch], tf.int32), tf.zeros([batch, max_length], tf.int32),
                     tf.zeros([batch, max_length, source_time]))
        _, _, _, _, scores, lengths, ids, alignment = tf.while_loop(cond, body, loop_vars)
        return ids, length_normalised(scores, lengths, self.length_penalty), alignment

    def beam_search(self, source_ids, beam_width, max_length=None):
        """Ids → (best ids `(batch, steps)`, its length-normalised log-probability `(batch,)`).

        Hypotheses are ranked by length-normalised score at every step; a finished hypothesis stays in the beam with
        its score until better ones push it out; a hypothesis that reaches its source's `decode_lengths` is
        finished. With `beam_width` 1 this is exactly greedy search.
        """
        memory, mask, states = self.encode(source_ids)
        keys = self.attention.project_memory(memory)  # once per source, reused at every step
        batch = tf.shape(memory)[0]
        k, vocab = beam_width, self.target_vocabulary_size
        row_limits = self.decode_lengths(source_ids, max_length)
        max_length = tf.reduce_max(tf.concat([row_limits, [0]], axis=0))

        def tile(x):  # (batch, ...) → (batch * k, ...), the k beams of a sentence next to each other
            return tf.repeat(x, k, axis=0)

        memory, mask, keys, states = tile(memory), tile(mask), tile(keys), [tile(s) for s in states]
        columns = tf.range(max_length)
        # Only the first beam is alive at the start, so the first step does not pick k copies of one token.
        initial = tf.tile(tf.concat([[0.0], tf.fill([k - 1], -1e9)], 0)[tf.newaxis], [batch, 1])
        finished_row = tf.one_hot(PAD, vocab, on_value=0.0, off_value=-1e9)  # a finished beam only extends by PAD

        def body(t, tokens, states, finished, scores, lengths, ids):
            log_probs, states, _ = self.step(tokens, states, memory, mask, keys)
            log_probs = tf.where(tf.reshape(finished, [-1, 1]), finished_row[tf.newaxis], log_probs)
            total = scores[..., tf.newaxis] + tf.reshape(log_probs, [batch, k, vocab])
            new_lengths = lengths[..., tf.newaxis] + tf.cast(tf.logical_not(finished), tf.int32)[..., tf.newaxis]
            ranked = length_normalised(total, new_lengths, self.length_penalty)
            _, best = tf.math.top_k(tf.reshape(ranked, [batch, k * vocab]), k=k)
            parent, token = best // vocab, best % vocab
            scores = tf.gather(tf.reshape(total, [batch, k * vocab]), best, batch_dims=1)
            lengths = tf.gather(lengths, parent, batch_dims=1) + tf.cast(
                tf.logical_not(tf.gather(finished, parent, batch_dims=1)), tf.int32)
            finished = tf.logical_or(tf.gather(finished, parent, batch_dims=1), token == EOS)
            finished = tf.logical_or(finished, (t + 1 >= row_limits)[:, tf.newaxis])
            flat_parent = tf.reshape(parent + k * tf.range(batch)[:, tf.newaxis], [-1])
            states = [tf.gather(s, flat_parent) for s in states]
            ids = tf.gather(ids, parent, batch_dims=1) + token[..., tf.newaxis] * tf.cast(columns == t, tf.int32)
            return t + 1, tf.reshape(token, [-1]), states, finished, scores, lengths, ids

        def cond(t, tokens, states, finished, *_):
            return tf.logical_and(t < max_length, tf.logical_not(tf.reduce_all(finished)))

        loop_vars = (tf.constant(0), tf.fill([batch * k], BOS), states,
                     tf.tile((row_limits <= 0)[:, tf.newaxis], [1, k]), initial,
                     tf.zeros([batch, k], tf.int32), tf.zeros([batch, k, max_length], tf.int32))
        _, _, _, _, scores, lengths, ids = tf.while_loop(cond, body, loop_vars)
        normalised = length_normalised(scores, lengths, self.length_penalty)
        best = tf.argmax(normalised, axis=1, output_type=tf.int32)
        return tf.gather(ids, best, batch_dims=1), tf.gather(normalised, best, batch_dims=1)

    def translate(self, text, beam_width=1, max_length=None):
        """Strings `(batch,)` → (translations `(batch,)`, scores `(batch,)`); beam width 1 decodes greedily. The
        whole text is read; each translation is at most `decode_lengths` pieces long."""
        return self.translate_ids(self.source_tokenizer(text), beam_width, max_length)

    def translate_ids(self, source_ids, beam_width=1, max_length=None):
        """`translate` of tokenised sources (ragged, or right-padded with 0)."""
        if isinstance(beam_width, int) and beam_width == 1:
            ids, scores, _ = self.greedy_search(source_ids, max_length)
        else:
            ids, scores = self.beam_search(source_ids, beam_width, max_length)
        return self.target_tokenizer.detokenize(ids), scores

    def get_config(self):
        return {**super().get_config(), "source_vocabulary": self.source_tokenizer.vocabulary,
                "target_vocabulary": self.target_tokenizer.vocabulary, **self.hyperparameters}


def build_translator(cfg: TranslationConfig, source_vocabulary: list[str], target_vocabulary: list[str],
                     target_frequencies: np.ndarray | None = None) -> Translator:
    """The translator, built; with ``target_frequencies`` (of each target piece in training) its output layer
    starts from their log, so training begins at the unigram distribution instead of learning it first."""
    m: ModelConfig = cfg.model
    translator = Translator(source_vocabulary, target_vocabulary, embedding_dim=m.embedding_dim, cell=m.cell,
                            units=m.units, encoder_layers=m.num_layers, residual=m.residual, attention=m.attention,
                            attention_units=m.attention_units, dropout=m.dropout,
                            length_penalty=cfg.decode.length_penalty, length_ratio=cfg.decode.length_ratio,
                            length_offset=cfg.decode.length_offset, tie_embeddings=m.tie_embeddings,
                            sampled_softmax=m.sampled_softmax, name="translator")
    translator.build()
    if target_frequencies is not None:
        translator.projection.bias.assign(np.log(target_frequencies).astype(np.float32))
        if m.sampled_softmax:
            translator.set_candidate_frequencies(target_frequencies)
    return translator


def compile_translator(translator: Translator, cfg: TranslationConfig) -> None:
    translator.compile(
        optimizer=training.optimizer(cfg.train),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=PAD),
        weighted_metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
    )
    if translator.sampled_softmax:
        # Keras builds the compiled metrics in its own train_step; the sampled one never calls them, so build
        # them here (on one tiny batch) before fit reads their results at the end of an epoch.
        x = (tf.ones((1, 2), tf.int32), tf.ones((1, 2), tf.int32))
        translator.compute_metrics(x, x[1], translator(x), sample_weight=tf.ones((1, 2)))
        translator.reset_metrics()


# Unicode separators and format characters that render as nothing (ZWSP, word joiner, BOM) count as blank.
BLANK = r"[\s\p{Z}\x{200B}-\x{200D}\x{2060}\x{FEFF}]"


def checked_source_ids(text, translator: Translator, cfg: TranslationConfig):
    """The piece ids of a served batch of strings, after the request's bounds are checked, cheapest first: the
    batch size and the bytes of each text before any work on them, then no blank text, then the pieces of each
    text. Every check gates what follows it (control dependencies + identity), so a bad request fails with its own
    message and nothing later runs; longer input is an error, never silently cut."""
    limits = cfg.serving
    text = checked_strings(text, limits)
    longest = tf.reduce_max(tf.concat([tf.strings.length(text), [0]], 0))
    text = gated([at_most(longest, limits.max_input_bytes, f"text too long: at most {limits.max_input_bytes} bytes "
                                                          "per text; split longer texts into sentences")], text)
    text = tf.strings.unicode_transcode(text, "UTF-8", "UTF-8", errors="replace")
    blank = tf.equal(tf.strings.length(tf.strings.regex_replace(text, BLANK, "")), 0)
    with tf.control_dependencies([tf.debugging.assert_equal(
            tf.reduce_any(blank), False, message="empty input: every text must hold at least one visible character")]):
        ids = translator.source_tokenizer(tf.identity(text))
    pieces = tf.reduce_max(tf.concat([ids.row_lengths(), [0]], 0))
    with tf.control_dependencies([tf.debugging.assert_less_equal(
            pieces, tf.cast(limits.max_source_pieces, pieces.dtype), message=(
                f"text too long: at most {limits.max_source_pieces} pieces (words and spelt-out characters) per "
                f"text; split longer texts into sentences"))]):
        return ids.with_flat_values(tf.identity(ids.flat_values))


def make_serving_fns(translator: Translator, cfg: TranslationConfig):
    """``serving_default(text)`` with the configured beam width, and ``translate(text, beam_width, max_length)``
    with both bounded; each returns ``{"translation": string, "score": float}`` per input string. Every text is
    translated whole (see `checked_source_ids` for the bounds); a translation stops at ``</s>`` or after
    ``decode.length_ratio * pieces + decode.length_offset`` pieces (at most ``serving.max_length_limit``)."""
    d: DecodeConfig = cfg.decode
    limits = cfg.serving

    def translate(text, beam_width, max_length):
        ids = checked_source_ids(text, translator, cfg)
        # The decoding cost: every text and beam runs to the longest length limit in the batch.
        steps = tf.reduce_max(tf.concat([translator.decode_lengths(ids, max_length), [0]], 0))
        rows = tf.cast(ids.nrows(), tf.int64) * tf.cast(beam_width, tf.int64)
        ids = ids.with_flat_values(gated([within_budget(
            rows * tf.cast(steps, tf.int64), limits.max_request_steps,
            "decoder steps (texts × beam width × the longest translation's length limit)", "max_request_steps")],
            ids.flat_values))
        translation, score = translator.translate_ids(ids, beam_width, max_length)
        return {"translation": translation, "score": score}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
    def serve_default(text):
        return translate(text, d.beam_width, limits.max_length_limit)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text"),
                                  tf.TensorSpec([], tf.int32, name="beam_width"),
                                  tf.TensorSpec([], tf.int32, name="max_length")])
    def serve_translate(text, beam_width, max_length):
        checks = [
            tf.debugging.assert_greater_equal(beam_width, 1, message="beam_width must be >= 1"),
            tf.debugging.assert_less_equal(beam_width, limits.max_beam_width,
                                           message=f"beam_width must be <= {limits.max_beam_width}"),
            tf.debugging.assert_greater_equal(max_length, 1, message="max_length must be >= 1"),
            tf.debugging.assert_less_equal(max_length, limits.max_length_limit,
                                           message=f"max_length must be <= {limits.max_length_limit}"),
        ]
        with tf.control_dependencies(checks):
            beam_width, max_length = tf.identity(beam_width), tf.identity(max_length)
        return translate(text, beam_width, max_length)

    return serve_default, serve_translate
