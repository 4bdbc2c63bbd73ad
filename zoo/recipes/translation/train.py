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


def tokenized(ds: tf.data.Dataset, tokenizers) -> tf.data.Dataset:
    """``{"source", "target"}`` strings → ``(source ids, target ids)`` per example (tokenised in batches)."""
    source_tokenizer, target_tokenizer = tokenizers

    def tokenize(batch):
        return source_tokenizer(batch["source"]), target_tokenizer(batch["target"])

    return ds.batch(1024).map(tokenize, num_parallel_calls=tf.data.AUTOTUNE).unbatch()


def make_dataset(ds: tf.data.Dataset, tokenizers, cfg: TranslationConfig, shuffle: bool, boundaries=None):
    """Teacher-forcing batches ``((source, <s> + target), target + </s>, token weights)`` of pairs within the caps.

    Returns the bucketed dataset, its example count and the bucket boundaries (learnt when not given).
    """
    bos, eos = tf.constant([model.BOS]), tf.constant([model.EOS])
    ds = tokenized(ds, tokenizers).filter(
        lambda s, t: tf.logical_and(tf.size(s) <= cfg.data.max_source_tokens, tf.size(t) <= cfg.data.max_target_tokens))
    # Per-token weights let the accuracy metric skip padding, as the loss does (ignore_class).
    ds = ds.map(lambda s, t: ((s, tf.concat([bos, t], 0)), tf.concat([t, eos], 0), tf.ones([tf.size(t) + 1]))).cache()
    length_fn = lambda x, y, w: tf.maximum(tf.size(x[0]), tf.size(y))  # noqa: E731
    lengths = [int(n) for n in ds.map(length_fn).as_numpy_iterator()]
    if boundaries is None:
        boundaries = bucket_boundaries(lengths, cfg.data.num_buckets)
    if shuffle:
        ds = ds.shuffle(len(lengths), seed=cfg.train.seed, reshuffle_each_iteration=True)
    ds = bucketed_batches(ds, length_fn, cfg.train.batch_size, boundaries)
    return ds.prefetch(tf.data.AUTOTUNE), len(lengths), boundaries


def translate_all(translator: model.Translator, texts: list[str], beam_width: int, max_length: int,
                  batch_size: int = 64) -> tuple[list[str], np.ndarray]:
    """Decodes ``texts`` in batches with one traced graph (``beam_width`` 1 = greedy)."""
    decode = tf.function(lambda text: translator.translate(text, beam_width, max_length))
    outputs, scores = [], []
    for i in range(0, len(texts), batch_size):
        translation, score = decode(tf.constant(texts[i:i + batch_size]))
        outputs += [t.decode("utf-8") for t in translation.numpy()]
        scores.append(score.numpy())
    return outputs, np.concatenate(scores) if scores else np.zeros([0])


def test_pairs(translator: model.Translator, cfg: TranslationConfig, split: tf.data.Dataset):
    """(sources, references) of a held-out split whose source fits ``data.max_source_tokens``, and the split's
    size."""
    raw = list(split.as_numpy_iterator())
    sources = [ex["source"].decode("utf-8") for ex in raw]
    references = [ex["target"].decode("utf-8") for ex in raw]
    lengths = translator.source_tokenizer(tf.constant(sources or [""])).row_lengths().numpy()
    kept = [i for i in range(len(sources)) if lengths[i] <= cfg.data.max_source_tokens]
    return [sources[i] for i in kept], [references[i] for i in kept], len(sources)


def evaluate(translator: model.Translator, cfg: TranslationConfig, split: tf.data.Dataset, name: str = "test") -> dict:
    """Corpus BLEU and chrF (sacrebleu, default 13a tokenisation, cased) of greedy and beam decoding."""
    import sacrebleu

    sources, references, total = test_pairs(translator, cfg, split)
    metrics = {"split": name, "sentences": len(sources), "sentences_in_split": total,
               "max_source_tokens": cfg.data.max_source_tokens}
    for name, width in (("greedy", 1), (f"beam{cfg.decode.beam_width}", cfg.decode.beam_width)):
        started = time.time()
        hypotheses, _ = translate_all(translator, sources, width, cfg.decode.max_length)
        metrics[name] = {
            "bleu": round(sacrebleu.corpus_bleu(hypotheses, [references]).score, 2),
            "chrf": round(sacrebleu.corpus_chrf(hypotheses, [references]).score, 2),
            "seconds": round(time.time() - started, 1),
            "samples": [{"source": s, "reference": r, "translation": h}
                        for s, r, h in list(zip(sources, references, hypotheses))[:5]],
        }
    return metrics


def plot_attention(translator: model.Translator, text: str, png: Path, max_length: int = 64) -> None:
    """Draws the greedy decoder's attention over the source pieces of ``text`` (rows: output pieces)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    source_ids = translator.source_tokenizer(tf.constant([text]))[:, :translator.max_source_tokens]
    ids, _, alignment = translator.greedy_search(source_ids, max_length)
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
    rows = [f"{metrics['split']}: {metrics['sentences']} of {metrics['sentences_in_split']} sentences "
            f"(source <= {metrics['max_source_tokens']} tokens)", f"{'decoding':10s} {'BLEU':>6s} {'chrF':>6s}"]
    rows += [f"{k:10s} {v['bleu']:6.2f} {v['chrf']:6.2f}" for k, v in metrics.items() if isinstance(v, dict)]
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
        train_ds, num_train, boundaries = make_dataset(train_raw, tokenizers, cfg, shuffle=True)
        val_ds, _, _ = make_dataset(splits["validation"], tokenizers, cfg, shuffle=False, boundaries=boundaries)
        return Prepared(train_ds, val_ds, facts={"training_pairs_within_the_caps": num_train,
                                                 "source_vocabulary": len(vocabularies[0]),
                                                 "target_vocabulary": len(vocabularies[1])},
                        state={"vocabularies": vocabularies})

    def build(self, cfg, prepared, member):
        translator = model.build_translator(cfg, *prepared.state["vocabularies"])
        model.compile_translator(translator, cfg)
        return translator

    def evaluate(self, cfg, translator, splits, prepared, run_dir):
        report = {"metrics": evaluate(translator, cfg, splits["test"])}
        sources, _, _ = test_pairs(translator, cfg, splits["test"])
        if sources:
            report["attention_plot"] = str(run_dir / "attention.png")
            plot_attention(translator, min(sources[:50], key=len), run_dir / "attention.png", cfg.decode.max_length)
        return report

    def summary(self, report):
        return format_metrics(report["metrics"])

    def endpoints(self, cfg, translator):
        serve_default, serve_translate = model.make_serving_fns(translator, cfg)
        return {"serving_default": serve_default, "translate": serve_translate}

    def example_inputs(self, cfg):
        return ["En el principio creó Dios los cielos y la tierra.", "Jesús lloró."]


RECIPE = TranslationRecipe()
