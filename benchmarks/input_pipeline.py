"""Does the input wait? A recipe's training epoch read through its own tf.data pipeline vs from memory.

For each recipe (``name`` or ``name:preset``): its own data preparation and its member-0 model built by the recipe;
then epochs alternate between ``prepared.train`` (the recipe's pipeline: its caches, shuffling, bucketing, prefetch)
and the same number of batches materialised in memory beforehand. The pipeline's caches are filled first, as the
first epoch of a run fills them. A ratio near 1 means the step, not the input, sets the pace.

    python -m benchmarks.input_pipeline [--recipes sentiment:words ner] [--rounds 4] [--batches N]

An epoch is the recipe's (``steps_per_epoch`` batches of an endless stream), or its first ``--batches``.
"""

from __future__ import annotations

import argparse
import statistics

from benchmarks import recipe_runs

DEFAULT_RECIPES = ["sentiment:words", "ner"]


def measure(spec: str, rounds: int, limit: int = 0) -> dict:
    recipe, cfg = recipe_runs.configure(spec)
    prepared = recipe_runs.prepare(recipe, cfg)
    steps = min(filter(None, (prepared.steps_per_epoch, limit)), default=0)
    pipeline = prepared.train.take(steps) if steps else prepared.train
    for _ in pipeline:  # fills the pipeline's caches, as a run's first epoch does
        pass
    memory = pipeline.cache()
    batches = sum(1 for _ in memory)  # this pass fills the in-memory copy
    model = recipe.build(cfg, prepared, 0)
    seconds = recipe_runs.alternating_fits({"pipeline": (model, pipeline), "memory": (model, memory)}, rounds)
    pipe, mem = statistics.median(seconds["pipeline"]), statistics.median(seconds["memory"])
    return dict(recipe=spec, batches=batches, pipeline_s=pipe, memory_s=mem, ratio=pipe / mem,
                rounds={k: [round(s, 2) for s in v] for k, v in seconds.items()})


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipes", nargs="+", default=DEFAULT_RECIPES, help="recipe or recipe:preset names")
    parser.add_argument("--rounds", type=int, default=4, help="alternating rounds per source")
    parser.add_argument("--batches", type=int, default=0, help="batches per epoch (0: the recipe's epoch)")
    args = parser.parse_args(argv)
    results = [measure(spec, args.rounds, args.batches) for spec in args.recipes]
    print(f"\n{'recipe':<18} {'batches':>8} {'pipeline s':>11} {'memory s':>9} {'pipeline / memory':>18}")
    for r in results:
        print(f"{r['recipe']:<18} {r['batches']:>8} {r['pipeline_s']:>11.2f} {r['memory_s']:>9.2f} "
              f"{r['ratio']:>17.2f}x   rounds {r['rounds']}")


if __name__ == "__main__":
    main()
