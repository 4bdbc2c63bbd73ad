"""Train, evaluate BLEU/chrF on the held-out test split (greedy and beam), plot an attention map, save and export."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import tensorflow as tf

from zoo import export, training
from zoo.data.pipeline import bucket_boundaries, bucketed_batches, take_first
from zoo.recipes.translation import data, model
from zoo.recipes.translation.config import TranslationConfig

RECIPE = "translation"



def tokenized(ds: tf.data.Dataset, translator: model.Translator) -> tf.data.Dataset:
    """``{"source", "target"}`` strings → ``(source ids, target ids)`` per example (tokenised in batches)."""
    def tokenize(batch):
        return translator.source_tokenizer(batch["source"]), translator.target_tokenizer(batch["target"])

    return ds.batch(1024).map(tokenize, num_parallel_calls=tf.data.AUTOTUNE).unbatch()


def make_dataset(ds: tf.data.Dataset, translator: model.Translator, cfg: TranslationConfig, shuffle: bool,
                 boundaries=None):
    """Teacher-forcing batches ``((source, <s> + target), target + </s>, token weights)`` of pairs within the caps.

    Returns the bucketed dataset, its example count and the bucket boundaries (learnt when not given).
    """
    bos, eos = tf.constant([model.BOS]), tf.constant([model.EOS])
    ds = tokenized(ds, translator).filter(
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


def test_pairs(translator: model.Translator, cfg: TranslationConfig, split: str = "test"):
    """(sources, references) of a held-out split whose source fits ``data.max_source_tokens``."""
    raw = list(take_first(data.load_split(cfg.data, split), cfg.train.max_eval_examples).as_numpy_iterator())
    sources = [ex["source"].decode("utf-8") for ex in raw]
    references = [ex["target"].decode("utf-8") for ex in raw]
    lengths = translator.source_tokenizer(tf.constant(sources or [""])).row_lengths().numpy()
    kept = [i for i in range(len(sources)) if lengths[i] <= cfg.data.max_source_tokens]
    return [sources[i] for i in kept], [references[i] for i in kept], len(sources)


def evaluate(translator: model.Translator, cfg: TranslationConfig, split: str = "test") -> dict:
    """Corpus BLEU and chrF (sacrebleu, default 13a tokenisation, cased) of greedy and beam decoding."""
    import sacrebleu

    sources, references, total = test_pairs(translator, cfg, split)
    metrics = {"split": split, "sentences": len(sources), "sentences_in_split": total,
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


def run(cfg: TranslationConfig) -> dict:
    """Trains, evaluates on the held-out test split, saves ``model.keras`` and exports; returns the report."""
    run_dir, strategy = training.start_run(cfg.train, RECIPE)
    started = time.time()

    train_raw = take_first(data.load_split(cfg.data, "train"), cfg.train.max_train_examples)
    val_raw = take_first(data.load_split(cfg.data, "validation"), cfg.train.max_eval_examples)
    source_vocabulary = model.build_vocabulary(train_raw.map(lambda ex: ex["source"]), cfg.data.source_words, True)
    target_vocabulary = model.build_vocabulary(train_raw.map(lambda ex: ex["target"]), cfg.data.target_words, False)
    prepared = time.time()
    with strategy.scope():
        translator = model.build_translator(cfg, source_vocabulary, target_vocabulary)
        model.compile_translator(translator, cfg)
    train_ds, num_train, boundaries = make_dataset(train_raw, translator, cfg, shuffle=True)
    val_ds, _, _ = make_dataset(val_raw, translator, cfg, shuffle=False, boundaries=boundaries)
    print(f"{num_train} training pairs within the length caps; vocabularies {len(source_vocabulary)} (source), "
          f"{len(target_vocabulary)} (target)")
    history = training.fit(translator, train_ds, val_ds, cfg.train, run_dir, config=cfg)
    train_seconds = time.time() - prepared

    metrics = evaluate(translator, cfg)
    print(f"\n{format_metrics(metrics)}")
    sources, _, _ = test_pairs(translator, cfg)
    if sources:
        plot_attention(translator, min(sources[:50], key=len), run_dir / "attention.png", cfg.decode.max_length)
    keras_path = run_dir / "model.keras"
    translator.save(keras_path)
    report = {"metrics": metrics, "vocabulary_seconds": round(prepared - started, 1),
              "train_seconds": round(train_seconds, 1), "epochs_run": len(history.get("epoch", [])),
              "model": str(keras_path)}
    if cfg.export.enabled:
        report["saved_model"] = str(export.export_model(RECIPE, keras_path, cfg))
        print(f"exported {report['saved_model']}")
    (run_dir / "report.json").write_text(json.dumps(report, indent=2, ensure_ascii=False))
    return report
