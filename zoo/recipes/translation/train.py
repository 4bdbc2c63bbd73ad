"""The translation recipe: learn the piece vocabularies, train, score BLEU/chrF greedy and beam, plot attention."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import tensorflow as tf

from zoo.data.pipeline import bucket_boundaries, bucketed_batches
from zoo.recipe import Prepared, Recipe
from zoo.recipes.translation import data, model
from zoo.recipes.translation.config import TranslationConfig
from zoo.report import table


def tokenized(ds: tf.data.Dataset, tokenizers) -> tf.data.Dataset:
    """``{"source", "target"}`` strings → ``(source ids, target ids)`` per example (tokenised in batches)."""
    source_tokenizer, target_tokenizer = tokenizers

    def tokenize(batch):
        return source_tokenizer(batch["source"]), target_tokenizer(batch["target"])

    return ds.batch(1024).map(tokenize, num_parallel_calls=tf.data.AUTOTUNE).unbatch()


def make_dataset(ds: tf.data.Dataset, tokenizers, cfg: TranslationConfig, shuffle: bool, boundaries=None):
    """Teacher-forcing batches ``((source, <s> + target), target + </s>, token weights)`` of the pairs within
    ``data.max_source_tokens`` / ``data.max_target_tokens``.

    Returns the bucketed dataset, its example count, the bucket boundaries (learnt when not given) and the number of
    pairs left out for their length.
    """
    bos, eos = tf.constant([model.BOS]), tf.constant([model.EOS])
    pairs = tokenized(ds, tokenizers)
    fits = lambda s, t: tf.logical_and(tf.size(s) <= cfg.data.max_source_tokens,  # noqa: E731
                                       tf.size(t) <= cfg.data.max_target_tokens)
    # Per-token weights let the accuracy metric skip padding, as the loss does (ignore_class).
    ds = pairs.filter(fits).map(
        lambda s, t: ((s, tf.concat([bos, t], 0)), tf.concat([t, eos], 0), tf.ones([tf.size(t) + 1]))).cache()
    length_fn = lambda x, y, w: tf.maximum(tf.size(x[0]), tf.size(y))  # noqa: E731
    lengths = [int(n) for n in ds.map(length_fn).as_numpy_iterator()]
    left_out = int(pairs.reduce(0, lambda n, pair: n + 1)) - len(lengths)
    if boundaries is None:
        boundaries = bucket_boundaries(lengths, cfg.data.num_buckets)
    if shuffle:
        ds = ds.shuffle(len(lengths), seed=cfg.train.seed, reshuffle_each_iteration=True)
    ds = bucketed_batches(ds, length_fn, cfg.train.batch_size, boundaries)
    return ds.prefetch(tf.data.AUTOTUNE), len(lengths), boundaries, left_out


def target_frequencies(batches: tf.data.Dataset, vocabulary_size: int) -> np.ndarray:
    """How often each target piece (``</s>`` included) is the next piece in the training batches, add-one
    smoothed: the unigram distribution the output layer starts from."""
    counts = np.ones(vocabulary_size)
    for _, targets, weights in batches.as_numpy_iterator():
        counts += np.bincount(targets[weights > 0], minlength=vocabulary_size)
    return counts / counts.sum()


def translate_all(translator: model.Translator, texts: list[str], beam_width: int, max_length: int,
                  batch_size: int = 64) -> list[str]:
    """Decodes ``texts`` with one traced graph (``beam_width`` 1 = greedy), in batches of similar length (a batch
    decodes as many steps as its longest translation); the translations come back in the order of ``texts``."""
    decode = tf.function(lambda text: translator.translate(text, beam_width, max_length))
    order = np.argsort([len(t) for t in texts], kind="stable")
    outputs = [""] * len(texts)
    for i in range(0, len(texts), batch_size):
        chunk = order[i:i + batch_size]
        translation, _ = decode(tf.constant([texts[j] for j in chunk]))
        for j, t in zip(chunk, translation.numpy()):
            outputs[j] = t.decode("utf-8")
    return outputs


LENGTH_BUCKETS = {"<=20": (0, 20), "21-40": (21, 40), ">40": (41, 10**9)}  # source pieces


def scores(hypotheses: list[str], references: list[str], bootstrap: int = 0) -> dict:
    """sacrebleu corpus BLEU and chrF (13a tokenisation, cased) and the median of each translation's length over its
    reference's (in words); with ``bootstrap`` resamples, the 95 % interval half-width of BLEU as well."""
    from sacrebleu.metrics import BLEU, CHRF

    bleu = BLEU().corpus_score(hypotheses, [references], n_bootstrap=bootstrap or 1)
    ratios = [len(h.split()) / max(len(r.split()), 1) for h, r in zip(hypotheses, references)]
    result = {"sentences": len(hypotheses), "bleu": round(bleu.score, 2),
              "chrf": round(CHRF().corpus_score(hypotheses, [references]).score, 2),
              "median_length_ratio": round(float(np.median(ratios)), 3) if ratios else None}
    if bootstrap:
        result["bleu_ci95"] = round(float(bleu._ci), 2)  # sacrebleu's paired bootstrap (its --confidence)
    return result


def evaluate(translator: model.Translator, cfg: TranslationConfig, split: tf.data.Dataset, name: str = "test") -> dict:
    """BLEU, chrF and length ratios of greedy and beam decoding on every sentence of a held-out split, overall and by
    source length in pieces (``LENGTH_BUCKETS``)."""
    raw = list(split.as_numpy_iterator())
    sources = [ex["source"].decode("utf-8") for ex in raw]
    references = [ex["target"].decode("utf-8") for ex in raw]
    pieces = translator.source_tokenizer(tf.constant(sources or [""])).row_lengths().numpy()[:len(sources)]
    metrics = {"split": name, "sentences": len(sources),
               "source_pieces": {"median": float(np.median(pieces)) if len(pieces) else 0,
                                 "max": int(pieces.max()) if len(pieces) else 0}}
    for decoding, width in (("greedy", 1), (f"beam{cfg.decode.beam_width}", cfg.decode.beam_width)):
        started = time.time()
        hypotheses = translate_all(translator, sources, width, cfg.serving.max_length_limit)
        entry = {**scores(hypotheses, references, bootstrap=1000), "seconds": round(time.time() - started, 1)}
        entry["by_source_length"] = {}
        for bucket, (low, high) in LENGTH_BUCKETS.items():
            chosen = [i for i, n in enumerate(pieces) if low <= n <= high]
            if chosen:
                entry["by_source_length"][bucket] = scores([hypotheses[i] for i in chosen],
                                                           [references[i] for i in chosen])
        entry["samples"] = [{"source": s, "reference": r, "translation": h}
                            for s, r, h in list(zip(sources, references, hypotheses))[:5]]
        metrics[decoding] = entry
    return metrics


def plot_attention(translator: model.Translator, text: str, png: Path) -> None:
    """Draws the greedy decoder's attention over the source pieces of ``text`` (rows: output pieces)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    source_ids = translator.source_tokenizer(tf.constant([text]))
    ids, _, alignment = translator.greedy_search(source_ids)
    ids = ids.numpy()[0]
    steps = int(np.argmax(ids == model.EOS)) + 1 if (ids == model.EOS).any() else len(ids)
    source = [translator.source_tokenizer.vocabulary[i] for i in source_ids[0].numpy()]
    target = [translator.target_tokenizer.vocabulary[i] for i in ids[:steps]]
    weights = alignment.numpy()[0, :steps, :len(source)]
    fig, ax = plt.subplots(figsize=(0.35 * len(source) + 2, 0.3 * len(target) + 1.5))
    ax.imshow(weights, cmap="Greys", vmin=0, vmax=1, aspect="auto")
    ax.set_xticks(range(len(source)), source, rotation=90)
    ax.set_yticks(range(len(target)), target)
    ax.set_xlabel("source")
    ax.set_ylabel("translation")
    fig.tight_layout()
    fig.savefig(png, dpi=90)
    plt.close(fig)


def format_metrics(metrics: dict) -> str:
    rows = [f"{metrics['split']}: all {metrics['sentences']} sentences (source pieces: median "
            f"{metrics['source_pieces']['median']:.0f}, max {metrics['source_pieces']['max']})",
            table({"decoding": "", "subset": "", "n": "d", "BLEU": ".2f", "±95%": ".2f", "chrF": ".2f",
                   "len ratio": ".3f"},
                  [(decoding, subset, m["sentences"], m["bleu"], m.get("bleu_ci95"), m["chrf"],
                    m["median_length_ratio"])
                   for decoding, entry in metrics.items() if isinstance(entry, dict) and "bleu" in entry
                   for subset, m in {"all": entry, **entry["by_source_length"]}.items()])]
    return "\n".join(rows)


class TranslationRecipe(Recipe):
    """Translation (sequence → sequence): Spanish text in, English text and its score out."""

    name = "translation"
    config_class = TranslationConfig

    load_split = staticmethod(data.load_split)

    def prepare(self, cfg, splits):
        train_raw = splits["train"]
        vocabularies = (model.build_vocabulary(train_raw.map(lambda ex: ex["source"]), cfg.data.source_words, True),
                        model.build_vocabulary(train_raw.map(lambda ex: ex["target"]), cfg.data.target_words, False))
        tokenizers = (model.Tokenizer(vocabularies[0], lowercase=True), model.Tokenizer(vocabularies[1]))
        train_ds, num_train, boundaries, left_out = make_dataset(train_raw, tokenizers, cfg, shuffle=True)
        val_ds, _, _, _ = make_dataset(splits["validation"], tokenizers, cfg, shuffle=False, boundaries=boundaries)
        return Prepared(train_ds, val_ds, facts={"training_pairs": num_train, "left_out_for_length": left_out,
                                                 "source_vocabulary": len(vocabularies[0]),
                                                 "target_vocabulary": len(vocabularies[1])},
                        state={"vocabularies": vocabularies,
                               "frequencies": target_frequencies(train_ds, len(vocabularies[1]))})

    def build(self, cfg, prepared, member):
        translator = model.build_translator(cfg, *prepared.state["vocabularies"], prepared.state["frequencies"])
        model.compile_translator(translator, cfg)
        return translator

    def evaluate(self, cfg, translator, splits, prepared, run_dir):
        report = {"metrics": evaluate(translator, cfg, splits["test"])}
        sources = [ex["source"].decode("utf-8") for ex in splits["test"].take(50).as_numpy_iterator()]
        if sources:
            report["attention_plot"] = str(run_dir / "attention.png")
            plot_attention(translator, min(sources, key=len), run_dir / "attention.png")
        return report

    def summary(self, report):
        return format_metrics(report["metrics"])

    def endpoints(self, cfg, translator):
        serve_default, serve_translate = model.make_serving_fns(translator, cfg)
        return {"serving_default": serve_default, "translate": serve_translate}

    def example_inputs(self, cfg):
        return ["En el principio creó Dios los cielos y la tierra.", "Jesús lloró."]


RECIPE = TranslationRecipe()
