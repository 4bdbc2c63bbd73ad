"""Continues a finished translation run for more epochs and reports held-out BLEU/chrF: what a longer run reaches.

    python benchmarks/translation_continue.py runs/translation/model.keras /tmp/continued --epochs 5 \
        [--weights /tmp/earlier_continuation/best.weights.h5]

The model (and its vocabularies) come from the run's ``model.keras``; ``--weights`` replaces its weights with a later
checkpoint. The optimizer starts afresh (Adam state is not part of ``model.keras``). Settings are the default preset's.
"""

import argparse
import json
import time
from pathlib import Path

import keras

import zoo
from zoo import training
from zoo.recipes.translation import data, model, train


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model")
    parser.add_argument("run_dir")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--weights", default=None)
    args = parser.parse_args()
    cfg = zoo.configure("translation", train={"epochs": args.epochs, "verbose": 2, "run_dir": args.run_dir})
    translator = keras.models.load_model(args.model)
    if args.weights:
        translator.load_weights(args.weights)
    model.compile_translator(translator, cfg)
    tokenizers = (translator.source_tokenizer, translator.target_tokenizer)
    train_ds, _, boundaries = train.make_dataset(data.load_split(cfg.data, "train"), tokenizers, cfg, shuffle=True)
    val_ds, _, _ = train.make_dataset(data.load_split(cfg.data, "validation"), tokenizers, cfg, shuffle=False,
                                      boundaries=boundaries)
    started = time.time()
    training.fit(translator, train_ds, val_ds, cfg.train, Path(args.run_dir))
    metrics = train.evaluate(translator, cfg, data.load_split(cfg.data, "test"))
    metrics["train_seconds"] = round(time.time() - started, 1)
    print(train.format_metrics(metrics))
    (Path(args.run_dir) / "metrics.json").write_text(json.dumps(metrics, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
