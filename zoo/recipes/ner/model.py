"""The NER network (Lample et al. 2016 style), the in-graph tokenizer and the serving signature.

Forward pass: tokens `(batch, time)` ("" = padding) → lower-cased word embedding (digits folded to 0) ⊕ character
BiLSTM over each token's characters (keeps case and shape: "@user", "#tag", capitals) → dropout → the shared
``RecurrentStack`` (BiLSTM) → dropout → per-tag emission scores → ``CRF`` (Viterbi) or an independent softmax.
Serving tokenizes raw text in the graph with core TF string ops, then tags and groups BIO tags into entity spans.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from zoo import training
from zoo.layers import PaddingMask, RecurrentStack
from zoo.models import SequenceTagger
from zoo.recipes.ner.config import DataConfig, ModelConfig, NerConfig
from zoo.serving import checked_strings

PAD = ""
WORD_CHAR = r"[\p{L}\p{N}\p{M}_]"
APOSTROPHE = r"['’]"
# Whitespace-delimited chunks kept whole: URLs, emoticons, HTML entities (the WNUT tweets keep these as one token).
ATOMIC_CHUNK = r"(?:https?://|www\.)\S+|[:;=8][-'^]?[()\[\]DPpOo/\\|*3]+|<3+|&[a-zA-Z]+;"


def word_key(tokens):
    """The word-vocabulary key of tokens: Unicode lower case with every digit folded to 0 (Lample et al.)."""
    return tf.strings.regex_replace(tf.strings.lower(tokens, encoding="utf-8"), r"\d", "0")


@keras.saving.register_keras_serializable(package="zoo")
class WordKeys(keras.layers.Layer):
    """Tokens → their `word_key`s."""

    def call(self, tokens):
        return word_key(tokens)

    def compute_output_spec(self, tokens):
        return keras.KerasTensor(tokens.shape, dtype="string")


@keras.saving.register_keras_serializable(package="zoo")
class WordDropout(keras.layers.Layer):
    """In training, replaces each known word id by the OOV id 1 with probability `rate`, so the OOV embedding
    learns from contexts like those of the unseen words it stands for at test time (Lample et al.: singletons).

    Args:
        rate: float in [0, 1). Replacement probability.
        seed: optional int.
    """

    def __init__(self, rate=0.0, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.rate, self.seed = rate, seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, ids, training=None):
        if not training or not self.rate:
            return ids
        drop = keras.random.uniform(tf.shape(ids), seed=self.seed_generator) < self.rate
        return tf.where(tf.logical_and(drop, ids > 1), tf.ones_like(ids), ids)

    def compute_output_spec(self, ids, training=None):
        return keras.KerasTensor(ids.shape, dtype=ids.dtype)

    def get_config(self):
        return {**super().get_config(), "rate": self.rate, "seed": self.seed}


@keras.saving.register_keras_serializable(package="zoo")
class TokenCharacters(keras.layers.Layer):
    """Tokens `(batch, time)` → their first `max_chars` characters `(batch, time, chars)`, "" padded to the longest
    token of the batch.

    Args:
        max_chars: int. Characters kept per token.
    """

    def __init__(self, max_chars=24, **kwargs):
        super().__init__(**kwargs)
        self.max_chars = max_chars

    def call(self, tokens):
        chars = tf.strings.unicode_split(tokens, "UTF-8", errors="replace")[:, :, :self.max_chars]
        return chars.to_tensor(default_value=PAD)

    def compute_output_spec(self, tokens):
        return keras.KerasTensor(tuple(tokens.shape) + (None,), dtype="string")

    def get_config(self):
        return {**super().get_config(), "max_chars": self.max_chars}


@keras.saving.register_keras_serializable(package="zoo")
class CharacterEncoder(keras.layers.Layer):
    """Character ids `(batch, time, chars)` (0 = padding) → one vector per token from a character BiLSTM.

    Every token's characters run through the shared ``RecurrentStack`` as one sequence; its final states of both
    directions are the token's features. Padding tokens (no character) come out as the stack's answer to nothing.

    Args:
        vocab_size: int. Character vocabulary size including padding and OOV.
        char_dim: int. Character embedding width.
        units: int. Units per direction.
    """

    def __init__(self, vocab_size, char_dim=25, units=25, **kwargs):
        super().__init__(**kwargs)
        self.vocab_size, self.char_dim, self.units = vocab_size, char_dim, units
        self.embedding = keras.layers.Embedding(vocab_size, char_dim, name="char_embedding")
        self.stack = RecurrentStack("lstm", units, bidirectional=True, name="char_stack")

    def build(self, input_shape):
        self.embedding.build((None, input_shape[-1]))
        self.stack.build((None, input_shape[-1], self.char_dim))
        self.built = True

    def call(self, char_ids, training=None):
        # At least one (padding) character step, and explicit sizes: a batch without tokens is all zeros.
        char_ids = tf.pad(char_ids, [[0, 0], [0, 0], [0, tf.maximum(1 - tf.shape(char_ids)[2], 0)]])
        shape = tf.shape(char_ids)
        flat = tf.reshape(char_ids, [shape[0] * shape[1], shape[2]])
        x = self.stack(self.embedding(flat), mask=tf.not_equal(flat, 0), training=training)
        return tf.reshape(x, [shape[0], shape[1], 2 * self.units])

    def compute_output_spec(self, char_ids, training=None):
        return keras.KerasTensor(tuple(char_ids.shape[:2]) + (2 * self.units,), dtype=self.compute_dtype)

    def get_config(self):
        return {**super().get_config(), "vocab_size": self.vocab_size, "char_dim": self.char_dim,
                "units": self.units}


@keras.saving.register_keras_serializable(package="zoo")
class TokenNGrams(keras.layers.Layer):
    """Tokens `(batch, time)` → `(batch, time, max_words)`: at `[b, i, n - 1]` the `n` tokens from position `i`
    joined by single spaces, or "" where they would run over padding or past the end.

    Args:
        max_words: int. Longest n-gram.
    """

    def __init__(self, max_words=1, **kwargs):
        super().__init__(**kwargs)
        self.max_words = max_words

    def call(self, tokens):
        time = tf.shape(tokens)[1]
        padded = tf.pad(tokens, [[0, 0], [0, self.max_words - 1]], constant_values=PAD)
        ngrams, gram, valid = [], None, None
        for k in range(self.max_words):
            word = padded[:, k:k + time]
            gram = word if gram is None else tf.strings.join([gram, word], separator=" ")
            valid = tf.not_equal(word, PAD) if valid is None else tf.logical_and(valid, tf.not_equal(word, PAD))
            ngrams.append(tf.where(valid, gram, PAD))
        return tf.stack(ngrams, axis=-1)

    def compute_output_spec(self, tokens):
        return keras.KerasTensor(tuple(tokens.shape) + (self.max_words,), dtype="string")

    def get_config(self):
        return {**super().get_config(), "max_words": self.max_words}


@keras.saving.register_keras_serializable(package="zoo")
class NGramCoverage(keras.layers.Layer):
    """Per-n-gram list memberships `(batch, time, max_words, lists)` (as from `TokenNGrams`) → per-token
    `(batch, time, lists)`: 1 where the token lies inside a listed n-gram of that list."""

    def call(self, membership):
        time = tf.shape(membership)[1]
        covered = tf.zeros_like(membership[:, :, 0])
        for k in range(membership.shape[2]):
            for shift in range(k + 1):  # a (k + 1)-gram starting up to k tokens earlier covers this token
                earlier = tf.pad(membership[:, :, k], [[0, 0], [shift, 0], [0, 0]])[:, :time]
                covered = tf.maximum(covered, earlier)
        return covered

    def compute_output_spec(self, membership):
        shape = tuple(membership.shape)
        return keras.KerasTensor(shape[:2] + shape[3:], dtype=membership.dtype)


def _list_membership(strings, gazetteers: dict[str, list[str]], name: str):
    """Per-token membership `(batch, time, len(gazetteers))` of `strings` in lists of (multi-word) entries.

    One lookup over the n-grams of all lists feeds a frozen embedding whose rows are each entry's memberships (set as
    weights, so the lists live in the lookup's vocabulary and the embedding's weights, not in code)."""
    vocabulary = sorted(set().union(*gazetteers.values()))
    index = {entry: i + 1 for i, entry in enumerate(vocabulary)}  # 0 is the lookup's OOV id
    membership = np.zeros((len(vocabulary) + 1, len(gazetteers)), np.float32)
    for column, entries in enumerate(gazetteers.values()):
        membership[[index[e] for e in entries], column] = 1.0
    max_words = max(len(entry.split(" ")) for entry in vocabulary)
    ngrams = TokenNGrams(max_words, name=f"{name}_ngrams")(strings)
    ids = keras.layers.StringLookup(vocabulary=vocabulary, name=f"{name}_lookup")(ngrams)
    embedding = keras.layers.Embedding(len(membership), len(gazetteers), trainable=False, name=f"{name}_membership")
    features = embedding(ids)
    embedding.set_weights([membership])
    return NGramCoverage(name=f"{name}_coverage")(features)


def gazetteer_features(tokens, keys, gazetteers: dict[str, list[str]]):
    """Tokens and their word keys `(batch, time)` → float `(batch, time, len(gazetteers))`: 1 where the token is
    part of an entry of a list (entries of several words match runs of tokens, "new york" both tokens).

    Lists written all in lower case match word keys (case-insensitive); the others (codes such as "NY") match the
    tokens exactly, so "NY" is a place and "ny" is not. Columns: the lower-case lists, then the exact ones, each
    in the order of `gazetteers`.
    """
    lower = {k: v for k, v in gazetteers.items() if all(e == e.lower() for e in v)}
    exact = {k: v for k, v in gazetteers.items() if k not in lower}
    groups = [_list_membership(strings, lists, name) for strings, lists, name in
              ((keys, lower, "gazetteer"), (tokens, exact, "exact_gazetteer")) if lists]
    features = groups[0] if len(groups) == 1 else keras.layers.Concatenate(name="gazetteer_groups")(groups)
    return keras.layers.Identity(name="gazetteer_features")(features)


def gazetteer_columns(gazetteers: dict[str, list[str]]) -> list[str]:
    """The list names in the column order of `gazetteer_features`: the lower-case lists, then the exact ones."""
    lower = [k for k, v in gazetteers.items() if all(e == e.lower() for e in v)]
    return lower + [k for k in gazetteers if k not in lower]


def _flag(name: str, condition):
    return tf.where(condition, name, PAD)


def _full_match(strings, pattern: str):
    return tf.strings.regex_full_match(strings, "(?s)" + pattern)


def _collapse_runs(strings):
    """Each string with every run of one repeated character cut to one ("XXxx.." → "Xx.")."""
    chars = tf.strings.unicode_split(strings, "UTF-8")
    flat = chars.flat_values
    first = tf.equal(tf.range(tf.size(flat, out_type=tf.int64)), tf.gather(chars.row_starts(), chars.value_rowids()))
    keep = tf.logical_or(first, tf.not_equal(flat, _shifted(flat, first, PAD)))
    return tf.strings.reduce_join(tf.ragged.boolean_mask(chars, chars.with_flat_values(keep)), axis=1)


def _along_time(values, offset: int, fill):
    """values[:, t + offset] at every step t of `(batch, time)` (``fill`` past either end)."""
    time = tf.shape(values)[1]
    if offset < 0:
        return tf.pad(values, [[0, 0], [-offset, 0]], constant_values=fill)[:, :time]
    return tf.pad(values, [[0, 0], [0, offset]], constant_values=fill)[:, offset:offset + time]


@keras.saving.register_keras_serializable(package="zoo")
class TokenAttributes(keras.layers.Layer):
    """Tokens `(batch, time)` (and gazetteer memberships) → the feature CRF's attributes `(batch, time, K)`: strings
    such as ``"lower=york"``, ``"-1:title"``, ``"+0:in_location"``, ``""`` where a flag is off and at padding.

    Per token: a bias, the word shape (``Xxxx``, ``dd``, Unicode letter classes) and the shape with runs collapsed,
    prefixes and suffixes of 1-4 lower-cased characters, the lower-cased word, upper / title / digit / punctuation
    and ``@``/``#``/URL flags; the word features of the two tokens on each side (or ``edge``); the word bigrams
    with each neighbour; with gazetteers, the list memberships of the token and its neighbours. Core TF string
    ops, so the served graph computes exactly what the CRF was trained on (`peers.FeatureCRF`).

    Args:
        gazetteer_names: list of str. Names of the membership columns passed as the second input, or empty.

    Call args:
        tokens: string `(batch, time)`, "" padded.
        memberships: optional float `(batch, time, len(gazetteer_names))`, as from `gazetteer_features`.
    """

    AFFIXES = 4
    NEIGHBOURS = (-2, -1, 1, 2)

    def __init__(self, gazetteer_names=(), **kwargs):
        super().__init__(**kwargs)
        self.gazetteer_names = list(gazetteer_names)

    def _word(self, tokens, lower):
        """The features a token shares with its neighbours."""
        return [
            "lower=" + lower,
            "short_shape=" + tf.reshape(_collapse_runs(tf.reshape(self._shape(tokens), [-1])), tf.shape(tokens)),
            _flag("upper", _full_match(tokens, r"[^\p{Ll}]*\p{Lu}[^\p{Ll}]*")),
            _flag("title", _full_match(tokens, r"[^\p{L}]*\p{Lu}\p{Ll}*(?:[^\p{L}]+\p{Lu}\p{Ll}*)*[^\p{L}]*")),
            _flag("digit", _full_match(tokens, r"\p{Nd}+")),
            _flag("mention", _full_match(tokens, "@.*")),
            _flag("hashtag", _full_match(tokens, "#.*")),
            _flag("url", _full_match(lower, r"(?:http|www\.).*")),
        ]

    @staticmethod
    def _shape(tokens):
        shape = tf.strings.regex_replace(tokens, r"\p{Lu}", "X")
        return tf.strings.regex_replace(tf.strings.regex_replace(shape, r"\p{Ll}", "x"), r"\p{Nd}", "d")

    def call(self, tokens, memberships=None):
        valid = tf.not_equal(tokens, PAD)
        lower = tf.strings.lower(tokens, encoding="utf-8")
        chars = tf.strings.unicode_split(tf.reshape(lower, [-1]), "UTF-8", errors="replace")
        affix = lambda part: tf.reshape(tf.strings.reduce_join(part, axis=1), tf.shape(tokens))  # noqa: E731
        word = [tf.where(valid, feature, PAD) for feature in self._word(tokens, lower)]  # none from padding
        attributes = [tf.fill(tf.shape(tokens), "bias"), "shape=" + self._shape(tokens),
                      _flag("punct", tf.logical_not(_full_match(tokens, r".*[\p{L}\p{N}].*"))), *word]
        for k in range(1, self.AFFIXES + 1):
            attributes += [f"prefix{k}=" + affix(chars[:, :k]), f"suffix{k}=" + affix(chars[:, -k:])]
        for offset in self.NEIGHBOURS:
            there = _along_time(valid, offset, False)
            for feature in word:
                feature = _along_time(feature, offset, PAD)
                attributes.append(tf.where(tf.not_equal(feature, PAD), f"{offset:+d}:" + feature, PAD))
            attributes.append(_flag(f"{offset:+d}:edge", tf.logical_not(there)))
        before, after = _along_time(lower, -1, PAD), _along_time(lower, 1, PAD)
        attributes += [tf.where(_along_time(valid, -1, False), "bigram-1=" + before + " " + lower, PAD),
                       tf.where(_along_time(valid, 1, False), "bigram+1=" + lower + " " + after, PAD)]
        for offset in (-1, 0, 1):
            for column, name in enumerate(self.gazetteer_names):
                member = _along_time(memberships[:, :, column], offset, 0.0) > 0.5
                attributes.append(_flag(f"{offset:+d}:in_{name}", member))
        return tf.where(valid[:, :, tf.newaxis], tf.stack(attributes, axis=-1), PAD)

    def compute_output_spec(self, tokens, memberships=None):
        return keras.KerasTensor(tuple(tokens.shape) + (self.num_attributes,), dtype="string")

    @property
    def num_attributes(self):
        return 3 + 8 + 2 * self.AFFIXES + len(self.NEIGHBOURS) * 9 + 2 + 3 * len(self.gazetteer_names)

    def get_config(self):
        return {**super().get_config(), "gazetteer_names": self.gazetteer_names}


def token_attributes(tokens, gazetteers: dict[str, list[str]] | None):
    """`TokenAttributes` of ``tokens`` (a Keras tensor), with the recipe's own gazetteer matching when given."""
    if not gazetteers:
        return TokenAttributes(name="token_attributes")(tokens)
    memberships = gazetteer_features(tokens, WordKeys(name="crf_word_keys")(tokens), gazetteers)
    return TokenAttributes(gazetteer_columns(gazetteers), name="token_attributes")(tokens, memberships)


def build_encoder(cfg: ModelConfig, data_cfg: DataConfig, words: list[str], chars: list[str],
                  num_tags: int, name: str = "ner_encoder",
                  gazetteers: dict[str, list[str]] | None = None) -> keras.Model:
    """Tokens `(batch, time)` ("" padded) → `(emissions (batch, time, num_tags), mask (batch, time))`."""
    tokens = keras.Input(shape=(None,), dtype="string", name="tokens")
    mask = PaddingMask(PAD, name="token_mask")(tokens)
    keys = WordKeys(name="word_keys")(tokens)
    word_ids = keras.layers.StringLookup(vocabulary=words, mask_token=PAD, name="word_lookup")(keys)
    word_ids = WordDropout(cfg.word_dropout, name="word_dropout")(word_ids)
    features = [keras.layers.Embedding(len(words) + 2, cfg.word_dim, name="word_embedding")(word_ids)]
    if gazetteers:
        features.append(gazetteer_features(tokens, keys, gazetteers))
    if cfg.char_units:
        char_ids = keras.layers.StringLookup(vocabulary=chars, mask_token=PAD, name="char_lookup")(
            TokenCharacters(data_cfg.max_token_chars, name="token_characters")(tokens))
        features.append(CharacterEncoder(len(chars) + 2, cfg.char_dim, cfg.char_units,
                                         name="character_encoder")(char_ids))
    x = keras.layers.Concatenate(name="token_features")(features) if len(features) > 1 else features[0]
    x = keras.layers.Dropout(cfg.dropout, name="feature_dropout")(x)
    x = RecurrentStack(cfg.cell, cfg.units, cfg.num_layers, bidirectional=True, dropout=cfg.dropout,
                       residual=cfg.residual, return_sequences=True, name="recurrent_stack")(x, mask=mask)
    x = keras.layers.Dropout(cfg.dropout, name="head_dropout")(x)
    emissions = keras.layers.Dense(num_tags, name="emissions")(x)
    return keras.Model(tokens, [emissions, mask], name=name)


def build_tagger(cfg: NerConfig, words: list[str], chars: list[str], num_tags: int, name: str = "ner_tagger",
                 gazetteers: dict[str, list[str]] | None = None) -> SequenceTagger:
    encoder = build_encoder(cfg.model, cfg.data, words, chars, num_tags, name=f"{name}_encoder",
                            gazetteers=gazetteers)
    tagger = SequenceTagger(encoder, cfg.model.head, name=name)
    tagger(tf.constant([["a"]]))  # builds the head's weights before compile and save
    return tagger


def feature_crf_scores(attributes, vocabulary: list[str], num_tags: int):
    """`(batch, time, num_tags)`: per token, the summed tag weights of its `TokenAttributes` in ``vocabulary`` (the
    feature CRF's state weights, set by `weigh_feature_crf`; unknown and absent attributes score 0)."""
    ids = keras.layers.StringLookup(vocabulary=vocabulary, mask_token=PAD, name="attribute_lookup")(attributes)
    weights = keras.layers.Embedding(len(vocabulary) + 2, num_tags, trainable=False, name="attribute_weights")(ids)
    return keras.ops.sum(weights, axis=2)


def with_feature_crf(network: SequenceTagger, gazetteers: dict[str, list[str]] | None, vocabulary: list[str],
                     name: str = "ner_tagger") -> SequenceTagger:
    """``network`` (CRF head) with a feature CRF's emission scores added to its own in the graph (raw tokens in):
    with transitions summed too (`weigh_feature_crf`), decoding is the Viterbi path of the product of both CRFs."""
    tokens = keras.Input(shape=(None,), dtype="string", name="tokens")
    emissions, mask = network.encoder(tokens)
    scores = feature_crf_scores(token_attributes(tokens, gazetteers), vocabulary, network.num_tags)
    emissions = keras.layers.Add(name="network_and_feature_crf")([emissions, scores])
    tagger = SequenceTagger(keras.Model(tokens, [emissions, mask], name=f"{name}_encoder"), "crf", name=name)
    tagger(tf.constant([["a"]]))  # builds, for saving
    return tagger


def weigh_feature_crf(tagger: SequenceTagger, network: SequenceTagger, state: np.ndarray, transitions: np.ndarray,
                      weight: float) -> None:
    """Sets ``tagger`` (from `with_feature_crf`) to the network's scores plus ``weight`` times the feature CRF's
    (``state`` `(vocabulary + 2, K)` by attribute id, ``transitions`` `(K, K)`)."""
    tagger.encoder.get_layer("attribute_weights").set_weights([weight * state])
    own, start, end = network.crf.get_weights()
    tagger.crf.set_weights([own + weight * transitions, start, end])


def compile_tagger(tagger: SequenceTagger, cfg: NerConfig) -> None:
    tagger.compile(optimizer=training.optimizer(cfg.train))


def _shifted(values, first_in_row, fill):
    """values[i - 1] within each row (`fill` at a row's first element), for flat per-character tensors."""
    prev = tf.concat([tf.fill([1], fill), values[:-1]], axis=0)[:tf.size(values)]
    return tf.where(first_in_row, tf.fill(tf.shape(values), fill), prev)


def _next(values, last_in_row, fill):
    """values[i + 1] within each row (`fill` at a row's last element)."""
    return tf.reverse(_shifted(tf.reverse(values, [0]), tf.reverse(last_in_row, [0]), fill), [0])


def tokenize(text, max_chars: int, max_tokens: int):
    """Splits strings `(batch,)` into tokens in the manner of the WNUT tweets, with core TF string ops only.

    Words (letters, digits, marks, `_`) with inner apostrophes ("don't", "I'm"), @mentions and #hashtags are one
    token each; runs of `.`/`!`/`?` and repeats of one punctuation character ("!!!", "--") are one token; other
    punctuation stands alone; whitespace-delimited URLs, emoticons and HTML entities stay whole. Invalid UTF-8 is
    repaired to U+FFFD and only the first `max_chars` characters are read.

    Returns:
        `(tokens, starts, ends, text)`: tokens `(batch, time)` "" padded (at most `max_tokens` per row), their
        character offsets `[start, end)` in the repaired text `(batch, time)` int32, and the repaired text.
    """
    text = tf.strings.substr(text, 0, 4 * max_chars)  # a UTF-8 character has at most 4 bytes
    text = tf.strings.unicode_transcode(text, "UTF-8", "UTF-8", errors="replace", replacement_char=0xFFFD)
    chars = tf.strings.unicode_split(text, "UTF-8")[:, :max_chars]
    text = tf.strings.reduce_join(chars, axis=1)
    flat, rows = chars.flat_values, chars.value_rowids()
    position = tf.cast(tf.range(tf.size(flat), dtype=tf.int64) - tf.gather(chars.row_starts(), rows), tf.int32)
    first = tf.equal(position, 0)
    space = tf.strings.regex_full_match(flat, r"\s")
    word = tf.strings.regex_full_match(flat, WORD_CHAR)
    apostrophe = tf.strings.regex_full_match(flat, APOSTROPHE)
    prefix = tf.strings.regex_full_match(flat, r"[@#]")
    stop = tf.strings.regex_full_match(flat, r"[.!?]")
    prev = lambda x, fill=False: _shifted(x, first, fill)  # noqa: E731
    prev_space = prev(space, True)
    last = tf.equal(position + 1, tf.gather(tf.cast(chars.row_lengths(), tf.int32), rows))
    next_word = _next(word, last, False)

    # Whitespace-delimited chunks that stay whole (URLs, emoticons, ...).
    chunk_start = tf.logical_and(tf.logical_not(space), prev_space)
    chunk_id = tf.cumsum(tf.cast(chunk_start, tf.int32)) - 1
    num_chunks = tf.reduce_sum(tf.cast(chunk_start, tf.int32))
    solid = tf.logical_not(space)
    chunks = tf.strings.unsorted_segment_join(tf.boolean_mask(flat, solid), tf.boolean_mask(chunk_id, solid),
                                              num_chunks)
    chunk_atomic = tf.concat([tf.strings.regex_full_match(chunks, ATOMIC_CHUNK), [False]], axis=0)
    atomic = tf.gather(chunk_atomic, tf.where(space, num_chunks, chunk_id))  # spaces read the False sentinel

    prev_word, prev_apostrophe = prev(word), prev(apostrophe)
    continues = tf.reduce_any(tf.stack([
        atomic,
        tf.logical_and(word, prev_word),
        tf.logical_and(word, prev(prefix)),
        tf.logical_and(word, tf.logical_and(prev_apostrophe, prev(prev_word))),
        tf.logical_and(apostrophe, tf.logical_and(prev_word, next_word)),
        tf.logical_and(stop, prev(stop)),
        tf.logical_and(tf.logical_not(word), tf.equal(flat, prev(flat, PAD))),
    ]), axis=0)
    starts_token = tf.logical_and(solid, tf.logical_or(prev_space, tf.logical_not(continues)))
    token_id = tf.cumsum(tf.cast(starts_token, tf.int32)) - 1
    num_tokens = tf.reduce_sum(tf.cast(starts_token, tf.int32))
    member = tf.boolean_mask(token_id, solid)
    token_text = tf.strings.unsorted_segment_join(tf.boolean_mask(flat, solid), member, num_tokens)
    token_end = tf.math.unsorted_segment_max(tf.boolean_mask(position, solid) + 1, member, num_tokens)
    token_start = tf.boolean_mask(position, starts_token)
    token_row = tf.boolean_mask(rows, starts_token)
    batch = tf.shape(text, out_type=tf.int64)[0]

    def padded(values, default):
        ragged = tf.RaggedTensor.from_value_rowids(values, token_row, nrows=batch)[:, :max_tokens]
        return ragged.to_tensor(default_value=default)

    return padded(token_text, PAD), padded(token_start, 0), padded(token_end, 0), text


def entity_spans(tag_ids, mask, starts, ends, text, tag_names, max_entities: int):
    """Groups BIO tags into entities as seqeval does (an I- tag after O or another type opens an entity).

    Returns a dict of `(batch, entities)` tensors, padded: `entity_text`, `entity_type` (strings), `entity_start`,
    `entity_end` (character offsets into `text`), plus `num_entities` `(batch,)`.
    """
    prefixes = tf.constant([name[:1] for name in tag_names])
    types = [name[2:] for name in tag_names]
    type_names = sorted({t for t in types if t})
    type_ids = tf.constant([type_names.index(t) if t else -1 for t in types], tf.int32)
    prefix = tf.where(mask, tf.gather(prefixes, tag_ids), "O")
    kind = tf.where(mask, tf.gather(type_ids, tag_ids), -1)
    time = tf.shape(tag_ids)[1]
    prev_prefix = tf.pad(prefix, [[0, 0], [1, 0]], constant_values="O")[:, :time]
    prev_kind = tf.pad(kind, [[0, 0], [1, 0]], constant_values=-1)[:, :time]
    inside = tf.not_equal(prefix, "O")
    begins = tf.logical_and(inside, tf.reduce_any(tf.stack([
        tf.equal(prefix, "B"), tf.equal(prev_prefix, "O"), tf.not_equal(prev_kind, kind)]), axis=0))
    entity_id = tf.reshape(tf.cumsum(tf.reshape(tf.cast(begins, tf.int32), [-1])) - 1, tf.shape(begins))
    member = tf.boolean_mask(entity_id, inside)
    count = tf.reduce_sum(tf.cast(begins, tf.int32))
    start = tf.math.unsorted_segment_min(tf.boolean_mask(starts, inside), member, count)
    end = tf.math.unsorted_segment_max(tf.boolean_mask(ends, inside), member, count)
    row = tf.cast(tf.where(begins)[:, 0], tf.int32)
    kind = tf.boolean_mask(kind, begins)
    span_text = tf.strings.substr(tf.gather(text, row), start, end - start, unit="UTF8_CHAR")
    batch = tf.shape(tag_ids)[0]

    def padded(values, default):
        ragged = tf.RaggedTensor.from_value_rowids(values, row, nrows=batch)[:, :max_entities]
        return ragged.to_tensor(default_value=default)

    return {
        "entity_text": padded(span_text, PAD),
        "entity_type": padded(tf.gather(tf.constant(type_names), kind), PAD),
        "entity_start": padded(start, 0),
        "entity_end": padded(end, 0),
        "num_entities": tf.minimum(tf.math.bincount(row, minlength=batch, maxlength=batch), max_entities),
    }


def make_serving_fn(tagger: keras.Model, cfg: NerConfig, tag_names):
    """The ``serving_default`` function: raw strings in; tokens, tags and entity spans out."""
    tag_table = tf.constant(list(tag_names))

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
    def serve(text):
        text = checked_strings(text, cfg.serving)
        tokens, starts, ends, text = tokenize(text, cfg.serving.max_input_chars, cfg.data.max_tokens)
        mask = tf.not_equal(tokens, PAD)
        tag_ids = tagger(tokens, training=False)["tags"]
        return {
            "tokens": tokens,
            "tags": tf.where(mask, tf.gather(tag_table, tag_ids), PAD),
            "token_start": starts,
            "token_end": ends,
            "num_tokens": tf.reduce_sum(tf.cast(mask, tf.int32), axis=1),
            **entity_spans(tag_ids, mask, starts, ends, text, tag_names, cfg.serving.max_entities),
        }

    return serve
