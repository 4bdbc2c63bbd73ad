"""The sentiment network and its serving signature.

Forward pass: text → TextVectorization (in the model, so the export takes strings) → what reads the words
(``model.encoder``: trained word embeddings + lexicon valence, or the frozen pretrained MiniLM encoder over the words'
pieces) → shared ``RecurrentStack`` (BiGRU by default) → ``MaskedPooling`` over valid steps → two heads: a softmax
over the classes (ratings 1-5, or the labels of the user's files) and, where the data has one, a positive/negative
sigmoid, which is stacked with the wide model (NBSVM on word n-grams of the same text, a ``BagLinear``).
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from zoo import training
from zoo.layers import BagLinear, MaskedPooling, RecurrentStack
from zoo.recipes.sentiment import data
from zoo.recipes.sentiment.config import DataConfig, ModelConfig, SentimentConfig, ServingConfig, WideConfig
from zoo.serving import checked_strings, gated, within_budget

NUM_RATINGS = 5
PIECES_PER_WORD = 8  # word pieces kept per word for the pretrained encoder (longer words are rare and cut)
PUNCTUATION = r"([^\p{L}\p{M}\p{N}_\s'])"  # RE2's \w is ASCII-only: it would split "café" into "caf", "é"


@keras.saving.register_keras_serializable(package="zoo")
def standardize_text(text):
    """Lower-cases and splits punctuation off words, so "great!" gives "great" and "!" (both carry sentiment);
    letters of any script (accented ones too), digits, "_" and "'" stay in their word."""
    text = tf.strings.lower(text)
    return tf.strings.regex_replace(text, PUNCTUATION, r" \1 ")


def make_vectorizer(cfg: DataConfig, vocabulary: list[str] | None = None) -> keras.layers.TextVectorization:
    """To be adapted on training text (``vocabulary=None``), or with a fixed vocabulary (no padding or OOV token)."""
    return keras.layers.TextVectorization(max_tokens=None if vocabulary else cfg.vocab_size,
                                          vocabulary=vocabulary, standardize=standardize_text, output_mode="int",
                                          name="text_vectorization")


def make_ngram_vectorizer(cfg: WideConfig) -> keras.layers.TextVectorization:
    """The wide model's features: word 1..``cfg.ngrams``-grams of the same standardised text, as ids (0 padding)."""
    return keras.layers.TextVectorization(max_tokens=cfg.max_features, standardize=standardize_text,
                                          ngrams=cfg.ngrams, output_mode="int", name="ngram_vectorization")


def lexicon_valence(vocabulary: list[str], lexicon: dict[str, float]) -> np.ndarray:
    """`(vocab_size, 1)` valence of each vocabulary entry, scaled to [-1, 1]; 0 for words not in the lexicon."""
    return np.array([[lexicon.get(token, 0.0) / 4.0] for token in vocabulary], dtype=np.float32)


def build_classifier(cfg: ModelConfig, vocab_size: int, valence: np.ndarray | None = None,
                     name: str = "sentiment_classifier", num_classes: int = NUM_RATINGS,
                     polarity: bool = True, feature_dim: int | None = None) -> keras.Model:
    """Token ids `(batch, time)` (0 = padding, right-padded) → `{"rating": (batch, num_classes)[, "polarity":
    (batch, 1)]}` (the polarity head where the data has a positive/negative target).

    With ``cfg.lexicon_feature`` each token's embedding is extended by its frozen lexicon valence ``valence``
    `(vocab_size, 1)`, set after the model is built (so the `.keras` file stores it as a weight).

    With ``feature_dim`` the input is instead a pretrained encoder's output `(batch, time, feature_dim)`, zeros at
    padded steps (`BertEncoder`'s), projected to ``cfg.projection_dim`` before the recurrent stack.
    """
    if feature_dim is None:
        inputs = keras.Input(shape=(None,), dtype="int32", name="token_ids")
        mask = keras.ops.not_equal(inputs, 0)
        x = keras.layers.Embedding(vocab_size, cfg.embedding_dim, name="embedding")(inputs)
        if cfg.lexicon_feature:
            lexicon = keras.layers.Embedding(vocab_size, 1, trainable=False, name="lexicon_valence")
            x = keras.layers.Concatenate(name="with_valence")([x, lexicon(inputs)])
            if valence is not None:
                lexicon.set_weights([valence])
    else:
        inputs = keras.Input(shape=(None, feature_dim), name="features")
        mask = keras.ops.any(keras.ops.not_equal(inputs, 0), axis=-1)
        x = inputs
    x = keras.layers.Dropout(cfg.embedding_dropout, name="embedding_dropout")(x)
    if feature_dim is not None and cfg.projection_dim:
        x = keras.layers.Dense(cfg.projection_dim, name="projection")(x)
    x = RecurrentStack(cfg.cell, cfg.units, cfg.num_layers, bidirectional=cfg.bidirectional, dropout=cfg.dropout,
                       residual=cfg.residual, return_sequences=True, name="recurrent_stack")(x, mask=mask)
    x = MaskedPooling(cfg.pooling, name="pooling")(x, mask=mask)
    x = keras.layers.Dropout(cfg.dropout, name="head_dropout")(x)
    outputs = {"rating": keras.layers.Dense(num_classes, activation="softmax", name="rating")(x)}
    if polarity:
        outputs["polarity"] = keras.layers.Dense(1, activation="sigmoid", name="polarity")(x)
    return keras.Model(inputs, outputs, name=name)


def build_ensemble(members: list[keras.Model]) -> keras.Model:
    """Averages the probabilities of classifiers trained with different seeds (same inputs and outputs)."""
    if len(members) == 1:
        return members[0]
    spec = members[0].inputs[0]
    inputs = keras.Input(shape=spec.shape[1:], dtype=spec.dtype, name=members[0].layers[0].name)
    outputs = [member(inputs) for member in members]
    averaged = {head: keras.layers.Average(name=f"{head}_mean")([o[head] for o in outputs]) for head in outputs[0]}
    return keras.Model(inputs, averaged, name="sentiment_ensemble")


def build_text_model(vectorizer: keras.layers.TextVectorization, classifier: keras.Model, max_tokens: int,
                     wide: tuple | None = None, encoder: tuple = ()) -> keras.Model:
    """Strings `(batch,)` → `{"probabilities": (batch, classes)[, "polarity": (batch, 1)]}`; what is saved,
    evaluated and exported.

    ``encoder``: layers applied in turn to the word ids before ``classifier`` (the pretrained encoder's
    `(WordPieces, BertEncoder)`), none when the classifier reads word ids.

    With ``wide = (ngram_vectorizer, bag, stack)`` the polarity is stacked: ``stack`` (a `Dense(1, sigmoid)`) on
    ``stack_features``: the network's two views of the polarity and the score that ``bag`` (a fitted `BagLinear`)
    gives the text's n-grams (``ngram_vectorizer``, not cut at ``max_tokens``).
    """
    text = keras.Input(shape=(), dtype="string", name="text")
    x = vectorizer(text)[:, :max_tokens]
    for layer in encoder:
        x = layer(x)
    outputs = classifier(x)
    outputs = {"probabilities" if head == "rating" else head: out for head, out in outputs.items()}
    if wide is not None:
        ngram_vectorizer, bag, stack = wide
        outputs["polarity"] = stack(stack_features(outputs["polarity"], outputs["probabilities"],
                                                   bag(ngram_vectorizer(text))))
    return keras.Model(text, outputs, name="sentiment")


STACKED = ("network", "wide", "rating")  # the stacker's inputs, in order


def stack_features(polarity, rating, wide_score):
    """`(batch, 3)` inputs of the polarity stacker (``STACKED``): the network's polarity logit, the wide model's
    score and the log-odds of the network's rating head for a positive (4-5) over a negative (1-2) rating — the
    rating head is trained on the 5-way target and adds what the polarity head alone misses. Arguments `(batch, 1)`,
    `(batch, 5)`, `(batch, 1)`; tensors or NumPy arrays."""
    ops = keras.ops
    p = ops.clip(ops.cast(polarity, "float32"), 1e-7, 1 - 1e-7)
    rating = ops.clip(ops.cast(rating, "float32"), 1e-7, 1)
    positive, negative = ops.sum(rating[:, 3:], axis=-1, keepdims=True), ops.sum(rating[:, :2], axis=-1, keepdims=True)
    return ops.concatenate([ops.log(p) - ops.log(1 - p), ops.cast(wide_score, "float32"),
                            ops.log(positive) - ops.log(negative)], axis=-1)


def compile_classifier(classifier: keras.Model, cfg: SentimentConfig) -> None:
    heads = {"rating": ("sparse_categorical_crossentropy", 1.0, "sparse_categorical_accuracy"),
             "polarity": ("binary_crossentropy", cfg.model.polarity_loss_weight, "binary_accuracy")}
    heads = {name: head for name, head in heads.items() if name in classifier.output}
    classifier.compile(
        optimizer=training.optimizer(cfg.train),
        loss={name: loss for name, (loss, _, _) in heads.items()},
        loss_weights={name: weight for name, (_, weight, _) in heads.items()},
        weighted_metrics={name: [metric] for name, (_, _, metric) in heads.items()},
    )


def make_serving_fn(text_model: keras.Model, cfg: ServingConfig, class_names: tuple[str, ...]):
    """The ``serving_default`` function: raw strings in, decoded answers out, with bounds checked in the graph.

    Answers: ``probabilities`` over ``class_names``; the most likely class as ``rating`` (int32) when the classes
    are integer ratings, else as ``label`` (string); ``polarity`` where the model has that head.
    """
    integer = data.integer_classes(class_names)
    classes = tf.constant([int(n) for n in class_names] if integer else list(class_names))
    layers = {layer.name: layer for layer in text_model.layers}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
    def serve(text):
        text = checked_strings(text, cfg)
        # Bound the work per string, then repair any invalid UTF-8 (or a character cut by the bound) to U+FFFD.
        text = tf.strings.substr(text, 0, cfg.max_input_bytes)
        text = tf.strings.unicode_transcode(text, "UTF-8", "UTF-8", errors="replace")
        if "word_pieces" in layers:  # the pretrained encoder costs per piece: count them (cheaply) before it runs
            pieces = layers["word_pieces"](layers["text_vectorization"](text))
            text = gated([within_budget(tf.math.count_nonzero(pieces), cfg.max_request_pieces, "word pieces",
                                        "max_request_pieces")], text)
        outputs = text_model(text, training=False)
        probabilities = outputs["probabilities"]
        answer = {"rating" if integer else "label": tf.gather(classes, tf.argmax(probabilities, axis=-1)),
                  "probabilities": probabilities}
        if "polarity" in outputs:
            answer["polarity"] = outputs["polarity"][:, 0]
        return answer

    return serve
