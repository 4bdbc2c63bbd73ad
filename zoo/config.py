"""Typed, self-validating recipe configs loaded from TOML with command-line overrides.

A recipe config is a dataclass whose fields are *sections* (dataclasses too): ``data``, ``model``, ``train``,
``export``. Each field carries its help text in ``metadata["help"]``, so ``--help`` documents every option. Values
come from the dataclass defaults, then ``recipes/<name>/<preset>.toml``, then ``--section.key value`` flags; an unknown
key anywhere is an error that names it.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import typing
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

RECIPES_DIR = Path(__file__).resolve().parent.parent / "recipes"


class ConfigError(ValueError):
    """A config value is unknown, mistyped or out of range."""


def option(default, help: str):
    """A config field with its help text (shown by ``--help``)."""
    if isinstance(default, (list, dict)):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata={"help": help})
    return dataclasses.field(default=default, metadata={"help": help})


def section(cls, help: str = ""):
    """A config field holding a nested section dataclass."""
    return dataclasses.field(default_factory=cls, metadata={"help": help})


def require(condition: bool, name: str, value, expectation: str) -> None:
    """Raises ``ConfigError`` naming the field and its bad value unless ``condition`` holds."""
    if not condition:
        raise ConfigError(f"{name}={value!r}: {expectation}")


def require_at_least(section: str, config, names, minimum=1) -> None:
    """Checks that each field ``names`` of ``config`` is ``>= minimum``; a failure names the ``section.field``."""
    for name in names:
        value = getattr(config, name)
        require(value >= minimum, f"{section}.{name}", value, f"must be >= {minimum}")


def one_of(name: str, value, choices) -> None:
    require(value in choices, name, value, f"must be one of {list(choices)}")


@dataclasses.dataclass
class TrainConfig:
    """Optimisation and run-directory settings shared by every recipe."""

    epochs: int = option(10, "maximum number of epochs")
    batch_size: int = option(64, "examples per batch (per replica under a distribution strategy)")
    learning_rate: float = option(1e-3, "Adam learning rate")
    clipnorm: float = option(1.0, "gradient clipping by global norm (0 disables)")
    seed: int = option(1234, "seed for Python, NumPy and TensorFlow")
    early_stopping_patience: int = option(3, "epochs without validation improvement before stopping")
    strategy: str = option("default", "tf.distribute strategy: default | mirrored | multi_worker (reads TF_CONFIG)")
    run_dir: str = option("runs/{recipe}", "run directory: checkpoints, TensorBoard logs, history.csv, curves.png")
    max_train_examples: int = option(0, "use only the first N training examples (0 = all); for smoke runs")
    max_eval_examples: int = option(0, "use only the first N validation/test examples (0 = all); for smoke runs")
    verbose: int = option(1, "Keras progress output: 0 silent, 1 progress bar, 2 one line per epoch")
    max_minutes: float = option(0.0, "training wall-time budget in minutes (0 = none): no epoch is started that "
                                     "would not finish in time, and a late batch stops training")
    jit_compile: bool = option(False, "XLA-compile the train step (off: length-bucketed batches come in many shapes "
                                      "and XLA recompiles for each; see benchmarks/bucketing.py)")

    def __post_init__(self):
        require_at_least("train", self, ("epochs", "batch_size"))
        require(self.learning_rate > 0, "train.learning_rate", self.learning_rate, "must be > 0")
        require(self.clipnorm >= 0, "train.clipnorm", self.clipnorm, "must be >= 0")
        require(self.max_minutes >= 0, "train.max_minutes", self.max_minutes, "must be >= 0")
        require(self.early_stopping_patience >= 0, "train.early_stopping_patience", self.early_stopping_patience,
                "must be >= 0")
        one_of("train.strategy", self.strategy, ("default", "mirrored", "multi_worker"))
        require(self.max_train_examples >= 0, "train.max_train_examples", self.max_train_examples, "must be >= 0")
        require(self.max_eval_examples >= 0, "train.max_eval_examples", self.max_eval_examples, "must be >= 0")
        one_of("train.verbose", self.verbose, (0, 1, 2))


@dataclasses.dataclass
class ExportConfig:
    """Where and whether the trained model is exported as a versioned SavedModel."""

    enabled: bool = option(True, "export a SavedModel after training")
    base_dir: str = option("saved_models", "export root; versions land in <base_dir>/<recipe>/<N>/")
    serving_base_path: str = option("/models", "model base path written into <base_dir>/models.config for TF Serving")

    def __post_init__(self):
        require(bool(self.base_dir), "export.base_dir", self.base_dir, "must not be empty")


def _coerce(value, tp, name: str):
    """Converts a TOML value or a command-line string to the field's declared type."""
    origin = typing.get_origin(tp)
    if origin in (list, tuple):
        (item_tp, *_) = typing.get_args(tp) or (str,)
        items = value.split(",") if isinstance(value, str) else value
        require(isinstance(items, (list, tuple)), name, value, "must be a list")
        return [_coerce(v.strip() if isinstance(v, str) else v, item_tp, name) for v in items]
    if tp is bool:
        if isinstance(value, bool):
            return value
        lowered = str(value).lower()
        require(lowered in ("true", "false", "1", "0"), name, value, "must be true or false")
        return lowered in ("true", "1")
    try:
        converted = tp(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name}={value!r}: must be of type {tp.__name__}") from None
    if tp is int and isinstance(value, float) and value != converted:
        raise ConfigError(f"{name}={value!r}: must be an integer")
    return converted


def _section_types(cls) -> dict[str, type]:
    return typing.get_type_hints(cls)


def build(cls, values: dict, prefix: str = ""):
    """Builds dataclass ``cls`` from a nested dict, rejecting unknown keys and coercing types."""
    hints = _section_types(cls)
    unknown = set(values) - set(hints)
    if unknown:
        known = ", ".join(sorted(hints))
        raise ConfigError(f"unknown config key(s) {sorted(prefix + k for k in unknown)}; known here: {known}")
    kwargs = {}
    for key, value in values.items():
        tp = hints[key]
        if dataclasses.is_dataclass(tp):
            require(isinstance(value, dict), prefix + key, value, "must be a table of settings")
            kwargs[key] = build(tp, value, prefix=f"{prefix}{key}.")
        else:
            kwargs[key] = _coerce(value, tp, prefix + key)
    return cls(**kwargs)


def _flatten_options(cls, prefix: str = ""):
    """Yields (dotted name, type, default, help) for every leaf option of a config class."""
    hints = _section_types(cls)
    defaults = cls()
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp):
            yield from _flatten_options(tp, prefix=f"{prefix}{f.name}.")
        else:
            yield f"{prefix}{f.name}", tp, getattr(defaults, f.name), f.metadata.get("help", "")


def _set_dotted(tree: dict, dotted: str, value) -> None:
    *parents, leaf = dotted.split(".")
    for p in parents:
        tree = tree.setdefault(p, {})
    tree[leaf] = value


def _merge(base: dict, extra: dict) -> dict:
    merged = dict(base)
    for key, value in extra.items():
        merged[key] = _merge(merged[key], value) if isinstance(value, dict) and isinstance(merged.get(key), dict) else value
    return merged


def load(cls, recipe: str, argv: list[str] | None = None, description: str = ""):
    """Parses the command line of a recipe into a validated config of type ``cls``.

    ``--preset NAME`` picks ``recipes/<recipe>/NAME.toml`` (default ``default``); ``--config PATH`` any TOML file;
    ``--section.key value`` overrides one option.
    """
    parser = argparse.ArgumentParser(prog=f"python -m zoo.recipes.{recipe}", description=description,
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--preset", default="default", help=f"settings file recipes/{recipe}/<preset>.toml")
    parser.add_argument("--config", default=None, help="path of a TOML settings file (overrides --preset)")
    for dotted, tp, default, help_text in _flatten_options(cls):
        shown = ",".join(map(str, default)) if isinstance(default, (list, tuple)) else default
        parser.add_argument(f"--{dotted}", dest=dotted, default=None, metavar=getattr(tp, "__name__", "LIST").upper(),
                            help=f"{help_text} (default: {shown})")
    args = parser.parse_args(argv)
    path = Path(args.config) if args.config else RECIPES_DIR / recipe / f"{args.preset}.toml"
    if not path.is_file():
        parser.error(f"settings file {path} not found")
    try:
        with open(path, "rb") as f:
            values = tomllib.load(f)
        for dotted, _, _, _ in _flatten_options(cls):
            if getattr(args, dotted) is not None:
                _set_dotted(values, dotted, getattr(args, dotted))
        return build(cls, values)
    except (ConfigError, tomllib.TOMLDecodeError) as e:
        parser.error(f"{path}: {e}")


def from_dict(cls, values: dict | None = None, **overrides):
    """Builds a config from a nested dict plus ``section={...}`` overrides; handy in tests and notebooks."""
    return build(cls, _merge(values or {}, overrides))


def to_dict(config) -> dict:
    return dataclasses.asdict(config)
