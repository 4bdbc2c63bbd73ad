"""The recipe contract, and the one driver that runs any recipe.

A recipe is a `Recipe` subclass (each in ``zoo/recipes/<name>/train.py``) that hands the driver, step by step:

1. its config class and presets (``config_class``, ``presets_dir``);
2. its data: ``load_split(cfg.data, split)`` for each of ``splits`` gives a ``tf.data.Dataset`` of dict examples in
   the format its ``data.py`` documents;
3. ``prepare(cfg, splits)``: what it learns from the training split (vocabularies, tag sets, bucket boundaries) and
   the batched train / validation datasets for ``fit``, as `Prepared`;
4. ``build(cfg, prepared, member)``: a compiled Keras model for member ``member`` of an ensemble of
   ``ensemble_size(cfg)`` (usually one), trained by the shared ``zoo.training`` loop, watching ``monitor``;
5. ``finalize(...)``: the end-to-end model that is saved (``model.keras``) and served, from the trained members;
6. ``evaluate(...)``: the report on the held-out splits (the classical peers beside the model), ``summary`` its text;
7. ``endpoints(cfg, model)``: the serving signatures (``serving_default`` first), and ``request(cfg, inputs)``:
   Python inputs turned into ``serving_default``'s arguments, so that Python predictions and the SavedModel's
   answers are computed by the same function; ``example_inputs(cfg)`` become the SavedModel's warmup requests.

``run(recipe, cfg)`` does config → data → prepare → build → fit → finalize → evaluate → save → export and returns a
`Run`. The library never imports a recipe: it calls what the recipe object hands it.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import time
import typing
from pathlib import Path

from zoo import config as config_lib
from zoo import export, training
from zoo.data.pipeline import take_first
from zoo.predictor import Predictor
from zoo.training import CONFIG_FILE, MODEL_FILE, REPORT_FILE

if typing.TYPE_CHECKING:
    import keras
    import tensorflow as tf


@dataclasses.dataclass
class Prepared:
    """What a recipe learned from its training data, and the batches ``fit`` trains on.

    Attributes:
        train: `tf.data.Dataset` of batches `(inputs, targets[, sample weights])`; endless when `steps_per_epoch`
            is set (its iterator then carries on from epoch to epoch).
        validation: `tf.data.Dataset` of batches like `train`, finite.
        facts: what the run reports about its data (sizes, vocabulary sizes, class names), printed at the start and
            stored in the report under ``"data"``.
        steps_per_epoch: batches per epoch of an endless `train`; None for one pass of a finite one.
        state: the recipe's own objects that ``build``, ``finalize`` and ``evaluate`` need (vectorizers,
            vocabularies, tokenizers, ...).
    """

    train: typing.Any
    validation: typing.Any
    facts: dict = dataclasses.field(default_factory=dict)
    steps_per_epoch: int | None = None
    state: dict = dataclasses.field(default_factory=dict)


class Recipe:
    """The base class of the seven recipes; see the module docstring for the order in which its parts are called.

    Class attributes:
        name: the recipe's name (``python -m zoo.recipes.<name>``, ``runs/<name>``, ``saved_models/<name>``).
        config_class: its config dataclass (a `zoo.config.RecipeConfig` subclass).
        splits: the splits it loads; the first is the training split, the second the validation split, the rest
            are held out and read only by ``evaluate``.
        monitor: the validation metric that picks the best epoch and stops training early, and its mode.
        input_name: the name of ``serving_default``'s input when it takes a batch of strings (the default
            ``request``).
    """

    name: typing.ClassVar[str]
    config_class: typing.ClassVar[type]
    splits: typing.ClassVar[tuple[str, ...]] = ("train", "validation", "test")
    monitor: typing.ClassVar[tuple[str, str]] = ("val_loss", "min")
    input_name: typing.ClassVar[str] = "text"

    @property
    def presets_dir(self) -> Path:
        """``presets/`` beside the module that defines the recipe (shipped in the wheel)."""
        return Path(inspect.getfile(type(self))).parent / "presets"

    @property
    def description(self) -> str:
        return (inspect.getdoc(type(self)) or "").split("\n\n")[0]

    # -- data ---------------------------------------------------------------------------------------------------

    def load_split(self, data_cfg, split: str) -> "tf.data.Dataset":
        """One split of the ``data`` section's source as a dataset of dict examples (the format ``data.py``
        documents); recipes set it to their ``data.load_split``."""
        raise NotImplementedError

    def prepare(self, cfg, splits: dict[str, "tf.data.Dataset"]) -> Prepared:
        raise NotImplementedError

    # -- model --------------------------------------------------------------------------------------------------

    def ensemble_size(self, cfg) -> int:
        """Members to train: ``model.ensemble_size`` where the model section is an ``EnsembleConfig``, else one."""
        return cfg.model.ensemble_size if isinstance(cfg.model, config_lib.EnsembleConfig) else 1

    def build(self, cfg, prepared: Prepared, member: int) -> "keras.Model":
        """A freshly initialised, compiled model (built inside the run's distribution strategy scope)."""
        raise NotImplementedError

    def finalize(self, cfg, prepared: Prepared, members: list, splits: dict) -> "keras.Model":
        """The end-to-end model (raw input in) that is evaluated, saved and exported."""
        (member,) = members
        return member

    # -- evaluation ---------------------------------------------------------------------------------------------

    def evaluate(self, cfg, model, splits: dict, prepared: Prepared, run_dir: Path) -> dict:
        """The report: ``{"metrics": ...}`` on the held-out splits, and whatever else the recipe measures."""
        raise NotImplementedError

    def summary(self, report: dict) -> str:
        """The report as text for the end of a run."""
        return json.dumps(report.get("metrics", {}), indent=2, ensure_ascii=False)

    # -- serving ------------------------------------------------------------------------------------------------

    def endpoints(self, cfg, model) -> dict:
        """``{signature name: tf.function}``, ``serving_default`` first: raw input in, decoded answers out."""
        raise NotImplementedError

    def request(self, cfg, inputs, **options) -> dict:
        """Python inputs → the keyword arguments of ``serving_default``; by default a list of strings becomes the
        string batch ``input_name``."""
        import tensorflow as tf

        return {self.input_name: tf.constant(list(inputs), tf.string)}

    def example_inputs(self, cfg) -> list:
        """A few Python inputs as ``request`` takes them; the SavedModel's warmup requests are made of them."""
        raise NotImplementedError

    def warmup_requests(self, cfg) -> list[dict]:
        """TF Serving warmup requests: ``example_inputs`` as ``serving_default``'s NumPy arguments."""
        return [{name: value.numpy() for name, value in self.request(cfg, self.example_inputs(cfg)).items()}]

    # -- the config ---------------------------------------------------------------------------------------------

    def configure(self, preset: str = config_lib.DEFAULT_PRESET, config_file=None, overrides: dict | None = None):
        """This recipe's config: its defaults, a preset, a TOML file, then ``overrides`` (a nested dict)."""
        return config_lib.configure(self.config_class, self.presets_dir, preset, config_file, overrides)

    def record(self, cfg) -> str:
        """What ``config.json`` holds: the recipe's name and every setting (it also decides whether a run
        directory's saved state may be resumed)."""
        return json.dumps({"recipe": self.name, "config": config_lib.to_dict(cfg)}, indent=2)


class Run(Predictor):
    """What ``run`` returns: the trained end-to-end model (``predict`` answers as the SavedModel does), its report,
    and where everything went: ``run_dir``, ``model_path``, ``saved_model`` (None when export is off).

    On a multi-worker run's other workers, which neither evaluate nor save, ``model`` is the trained network (the
    first member), ``report`` says what they trained, and ``model_path`` and ``saved_model`` are None."""

    def __init__(self, recipe: Recipe, config, model, report: dict, run_dir: Path, model_path: Path,
                 saved_model: Path | None):
        super().__init__(recipe, config, model)
        self.report, self.run_dir, self.model_path, self.saved_model = report, run_dir, model_path, saved_model


def load_splits(recipe: Recipe, cfg) -> dict:
    """Every split of ``recipe``, cut to ``train.max_train_examples`` / ``train.max_eval_examples``."""
    limits = [cfg.train.max_train_examples] + [cfg.train.max_eval_examples] * (len(recipe.splits) - 1)
    return {split: take_first(recipe.load_split(cfg.data, split), limit)
            for split, limit in zip(recipe.splits, limits)}


def run(recipe: Recipe, cfg) -> Run:
    """Runs ``recipe`` with ``cfg``: data → prepare → fit → finalize → evaluate → save → export; returns the `Run`.

    A run killed at any point resumes when started again with the same settings (see ``zoo.training.fit``).
    """

    run_dir, strategy = training.start_run(cfg.train, recipe.name)
    resumed = training.claim(run_dir, recipe.record(cfg))
    print(f"{recipe.name}: run directory {run_dir} (settings in {run_dir / CONFIG_FILE})"
          + ("; resuming the unfinished run there" if resumed else ""), flush=True)

    started = time.time()
    splits = load_splits(recipe, cfg)
    prepared = recipe.prepare(cfg, splits)
    for name, batches in (("training", prepared.train), ("validation", prepared.validation)):
        if not any(True for _ in batches.take(1)):  # one batch, not a pass: the first element decides
            raise ValueError(f"{recipe.name}: the {name} split of data.source={cfg.data.source!r} is empty after "
                             f"preparation (see the data settings and train.max_*_examples); {recipe.name} needs "
                             f"examples in it to train and to pick the best epoch")
    data_seconds = time.time() - started
    facts = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in prepared.facts.items() if not isinstance(v, list))
    print(f"data ready in {data_seconds:.0f} s: {facts}", flush=True)

    started = time.time()
    monitor, mode = recipe.monitor
    members, epochs_run = training.fit_members(
        recipe.ensemble_size(cfg), lambda k: recipe.build(cfg, prepared, k), prepared.train, prepared.validation,
        cfg.train, run_dir, strategy, monitor=monitor, mode=mode,
        steps_per_epoch=prepared.steps_per_epoch)
    train_seconds = time.time() - started
    if not training.is_chief(strategy):  # the chief evaluates, saves and exports; the other workers are done
        report = dict(recipe=recipe.name, worker=strategy.cluster_resolver.task_id, data=prepared.facts,
                      data_seconds=round(data_seconds, 1), train_seconds=round(train_seconds, 1), epochs_run=epochs_run)
        print(f"{recipe.name}: worker {report['worker']} finished training; the chief writes the model, the report "
              f"and the export", flush=True)
        return Run(recipe, cfg, members[0], report, run_dir, None, None)
    model = recipe.finalize(cfg, prepared, members, splits)
    model_path = run_dir / MODEL_FILE
    model.save(model_path)  # before the evaluation, so that a failure there loses no training

    report = recipe.evaluate(cfg, model, splits, prepared, run_dir)
    report.update(recipe=recipe.name, data=prepared.facts, data_seconds=round(data_seconds, 1),
                  train_seconds=round(train_seconds, 1), epochs_run=epochs_run)
    cut = {str(p.parent.relative_to(run_dir)): p.read_text().strip() for p in run_dir.rglob(training.TIME_LIMIT_FILE)}
    if cut:  # the result depends on the machine's speed and load: say so
        report["stopped_by_time_limit"] = cut
    print(f"\n{recipe.summary(report)}\n", flush=True)
    report["model"] = str(model_path)
    saved_model = export.export_model(recipe, model_path, cfg) if cfg.export.enabled else None
    if saved_model is not None:
        report["saved_model"] = str(saved_model)
    (run_dir / REPORT_FILE).write_text(json.dumps(report, indent=2, ensure_ascii=False))
    print(f"report: {run_dir / REPORT_FILE}\nmodel: {model_path}"
          + (f"\nSavedModel: {saved_model}" if saved_model else ""), flush=True)
    return Run(recipe, cfg, model, report, run_dir, model_path, saved_model)
