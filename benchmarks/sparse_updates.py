"""Training step time with Keras' Adam vs `zoo.optimizers.LazyAdam` (``train.sparse_updates``), per recipe.

For each recipe (``name`` or ``name:preset``): its own data preparation, its first ``--batches`` training batches
(materialised once), and its member-0 model built twice by the recipe itself, once per optimiser, from the same seed.
Rounds alternate the two (these machines are noisy); each round trains one pass over the batches with ``model.fit``,
after an untimed warm-up round. It prints the trainable embedding tables (the only variables whose gradients are
sparse, and so the only ones `LazyAdam` treats differently), the median step time of each optimiser and their ratio.

    python -m benchmarks.sparse_updates [--recipes translation ner dna sentiment:words] [--batches 20] [--rounds 3]

It measures speed only: whether a recipe's default should switch also depends on what the switch does to its
results (see the README's notes on `train.sparse_updates`).
"""

from __future__ import annotations

import argparse
import statistics

import keras
import tensorflow as tf

from benchmarks import recipe_runs

DEFAULT_RECIPES = ["translation", "ner", "dna", "sentiment:words"]


def embedding_tables(model: keras.Model) -> list[tuple[str, tuple]]:
    """(path, shape) of each trainable embedding table in ``model`` (nested models and layers included)."""
    return [(w.path, tuple(w.shape)) for w in model.trainable_weights if w.path.endswith("/embeddings")]


def measure(spec: str, batches: int, rounds: int) -> dict:
    configs = {sparse: recipe_runs.configure(spec, {"train": {"sparse_updates": sparse}}) for sparse in (False, True)}
    recipe, cfg = configs[False]
    prepared = recipe_runs.prepare(recipe, cfg)
    data = prepared.train.take(batches).cache()
    for _ in data:  # fill the cache: both optimisers read the same batches from memory
        pass

    models = {}
    for sparse, (_, variant) in configs.items():
        keras.utils.set_random_seed(cfg.train.seed)
        models[sparse] = recipe.build(variant, prepared, 0)
        models[sparse].fit(data, epochs=1, verbose=0)  # traces the train step
    tables = embedding_tables(models[False])
    seconds = recipe_runs.alternating_fits({sparse: (model, data) for sparse, model in models.items()}, rounds)
    times = {sparse: [s / batches for s in passes] for sparse, passes in seconds.items()}
    adam, lazy = statistics.median(times[False]), statistics.median(times[True])
    params = sum(int(tf.size(w)) for w in models[False].trainable_weights)
    return dict(recipe=spec, tables=tables, table_params=sum(int(tf.reduce_prod(s)) for _, s in tables),
                params=params, adam_ms=1e3 * adam, lazy_ms=1e3 * lazy, speedup=adam / lazy,
                rounds={"adam": [round(1e3 * t, 1) for t in times[False]],
                        "lazy": [round(1e3 * t, 1) for t in times[True]]})


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipes", nargs="+", default=DEFAULT_RECIPES, help="recipe or recipe:preset names")
    parser.add_argument("--batches", type=int, default=20, help="training batches per measured pass")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds per optimiser")
    args = parser.parse_args(argv)
    results = [measure(spec, args.batches, args.rounds) for spec in args.recipes]
    print(f"\n{'recipe':<18} {'embedding tables':<40} {'table / all params':>22} {'Adam ms':>8} {'Lazy ms':>8} "
          f"{'speed-up':>8}")
    for r in results:
        tables = ", ".join(f"{path.split('/')[-2]} {'x'.join(map(str, shape))}" for path, shape in r["tables"])
        print(f"{r['recipe']:<18} {tables or '(none)':<40} {r['table_params']:>10,} / {r['params']:>9,} "
              f"{r['adam_ms']:>8.1f} {r['lazy_ms']:>8.1f} {r['speedup']:>7.2f}x   rounds {r['rounds']}")


if __name__ == "__main__":
    main()
