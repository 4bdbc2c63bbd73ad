"""One worker of the multi-worker test (`test_multi_worker.py`), started with its own ``TF_CONFIG``.

    python tests/multi_worker_worker.py OUT_JSON CRASH_AFTER_EPOCH RECIPE [--section.key value ...]

Before training it reads one epoch of the recipe's training batches through the strategy, as ``fit`` does, and
records which examples this worker got; then it runs the recipe as its command line does. With
``CRASH_AFTER_EPOCH`` > 0 it dies (``os._exit``) right after writing that epoch's backup, as a killed machine would.
At the end it records a digest of the trained networks' weights.
"""

import hashlib
import json
import os
import sys

import numpy as np
import tensorflow as tf

from zoo import config as config_lib
from zoo import recipe as recipe_lib
from zoo import recipes, training


def examples_of_one_epoch(strategy, recipe, cfg) -> list[list[str]]:
    """Per step, a digest of each training example this worker received."""
    prepared = recipe.prepare(cfg, recipe_lib.load_splits(recipe, cfg))
    steps = []
    for batch in strategy.experimental_distribute_dataset(training.for_workers(prepared.train)):
        (tokens,) = strategy.experimental_local_results(tf.nest.flatten(batch)[0])
        steps.append([hashlib.sha1(row.tobytes()).hexdigest() for row in np.asarray(tokens)])
    return steps


def main(out, crash_after_epoch, name, argv):
    recipe = recipes.get(name)
    cfg = config_lib.parse_args(recipe.config_class, name, argv, recipe.presets_dir, "")
    strategy = training.make_strategy(cfg.train.strategy)
    steps = examples_of_one_epoch(strategy, recipe, cfg)
    if crash_after_epoch:
        backup_epoch_end = training.ExactBackupAndRestore.on_epoch_end

        def on_epoch_end(self, epoch, logs=None):
            backup_epoch_end(self, epoch, logs)
            if epoch + 1 == crash_after_epoch:
                os._exit(17)

        training.ExactBackupAndRestore.on_epoch_end = on_epoch_end
    trained = []
    fit_members = training.fit_members

    def keep_members(*args, **kwargs):
        members, epochs = fit_members(*args, **kwargs)
        trained.extend(members)
        return members, epochs

    training.fit_members = keep_members
    run = recipe_lib.run(recipe, cfg)
    weights = hashlib.sha1(b"".join(np.asarray(w).tobytes() for m in trained for w in m.get_weights())).hexdigest()
    with open(out, "w") as f:
        json.dump({"steps": steps, "weights": weights, "chief": training.is_chief(strategy), "report": run.report,
                   "run_dir": str(run.run_dir)}, f, default=str)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4:])
