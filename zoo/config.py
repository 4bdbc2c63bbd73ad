"""Typed, self-validating recipe configs: one source of defaults, presets layered on them, command-line overrides.

A recipe config is a dataclass whose fields are *sections* (dataclasses too): ``data``, ``model``, ``serving``,
``train``, ``export`` and any the recipe adds. Shared sections are defined here once and composed: a recipe
subclasses them (``RecurrentConfig`` under its ``model``, ``ServingConfig`` under ``serving``, ...) and sets its own
defaults where it declares the section (``section(ModelConfig, units=128)``). Those dataclass defaults *are* the
recipe's default preset: ``--help`` prints them and the run uses them. Every field carries its help text in
``metadata["help"]``.

Values are layered: the defaults, then a preset (``<recipe package>/presets/NAME.toml``), then ``--config FILE``,
then ``--section.key value`` flags (or, from Python, ``overrides``). An unknown key or a bad value is an error that
names the key and where its value came from (the file, or the command line).
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import sys
import typing
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

DEFAULT_PRESET = "default"


class ConfigError(ValueError):
    """A config value is unknown, mistyped or out of range.

    ``key`` is the dotted name of the offending option (as far as it is known where the error is raised; ``build``
    prefixes the section), ``origin`` where its value came from once the layers are known.
    """

    def __init__(self, key: str, message: str, origin: str = ""):
        self.key, self.message, self.origin = key, message, origin
        super().__init__(f"{origin}: {key}{message}" if origin else f"{key}{message}")

    def prefixed(self, prefix: str) -> "ConfigError":
        return ConfigError(prefix + self.key, self.message, self.origin)

    def at(self, origin: str) -> "ConfigError":
        return ConfigError(self.key, self.message, origin)


def option(default, help: str, *, at_least=None, choices=None, fraction: bool = False):
    """A config field with its help text (shown by ``--help``) and the checks its value must pass: ``at_least``
    (a number, or each number of a list), ``choices`` (a value, or a non-empty list of values, drawn from them),
    ``fraction`` (in [0, 1)). `Section` runs them."""
    metadata = {"help": help, "at_least": at_least, "choices": choices, "fraction": fraction}
    if isinstance(default, (list, dict)):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def section(cls, help: str = "", **defaults):
    """A config field holding a nested section dataclass; ``defaults`` are this recipe's defaults for its fields."""
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(defaults) - names)
    if unknown:
        raise TypeError(f"{cls.__name__} has no field(s) {unknown}")
    return dataclasses.field(default_factory=functools.partial(cls, **defaults), metadata={"help": help})


def require(condition: bool, name: str, value, expectation: str) -> None:
    """Raises ``ConfigError`` naming the field and its bad value unless ``condition`` holds."""
    if not condition:
        raise ConfigError(name, f"={value!r}: {expectation}")


def one_of(name: str, value, choices) -> None:
    require(value in choices, name, value, f"must be one of {list(choices)}")


def _check(name: str, value, metadata) -> None:
    """The checks ``option`` declared for one field."""
    items = value if isinstance(value, list) else [value]
    if metadata.get("at_least") is not None:
        minimum = metadata["at_least"]
        require(all(v >= minimum for v in items), name, value,
                f"must be >= {minimum}" if items is not value else f"must hold numbers >= {minimum}")
    if metadata.get("choices") is not None:
        choices = metadata["choices"]
        if isinstance(value, list):
            require(bool(value) and all(v in choices for v in value), name, value,
                    f"must be a non-empty list drawn from {list(choices)}")
        else:
            one_of(name, value, choices)
    if metadata.get("fraction"):
        require(0 <= value < 1, name, value, "must be in [0, 1)")


@dataclasses.dataclass
class Section:
    """Base of every config section: checks each field against what its ``option`` declared. Subclasses add
    checks across fields in ``__post_init__`` (after ``super().__post_init__()``)."""

    def __post_init__(self):
        for f in dataclasses.fields(self):
            _check(f.name, getattr(self, f.name), f.metadata)


# ---------------------------------------------------------------------------------------------------------------
# Shared sections


@dataclasses.dataclass
class DataConfig(Section):
    """Where a recipe's examples come from. Subclasses list their sources in ``SOURCES`` and redeclare ``source``
    with their default and help."""

    SOURCES: typing.ClassVar[tuple[str, ...]] = ()
    source: str = option("", "data source")

    def __post_init__(self):
        super().__post_init__()
        one_of("source", self.source, self.SOURCES)


@dataclasses.dataclass
class FileSourceConfig(DataConfig):
    """A data section that can read the user's own files (``source = "files"``): ``train`` and, optionally,
    ``validation`` and ``test``; a missing one is a deterministic split of ``train``, printed with its sizes.

    A subclass names its file format in its class statement (``class DataConfig(FileSourceConfig, files="...")``);
    ``files`` then joins its ``SOURCES`` and the format its ``source`` help.
    """

    def __init_subclass__(cls, files: str | None = None, **kwargs):
        super().__init_subclass__(**kwargs)
        if files is None:
            return
        cls.SOURCES = tuple(cls.SOURCES) + ("files",)
        declared = cls.__dict__["source"]
        cls.source = option(declared.default, f"{declared.metadata['help']} | files ({files}: data.train, "
                                              f"data.validation, data.test)")

    train: str = option("", "with source = files: the training file")
    validation: str = option("", "with source = files: the validation file (empty: 10 % of train, chosen by a "
                                 "hash of each example)")
    test: str = option("", "with source = files: the test file (empty: 10 % of train, chosen by a hash of each "
                           "example)")

    def __post_init__(self):
        super().__post_init__()
        require(self.source != "files" or bool(self.train), "data.train", self.train,
                "names the training file when data.source is files")
        for name in ("train", "validation", "test"):
            require(self.source == "files" or not getattr(self, name), f"data.{name}", getattr(self, name),
                    "is read only with data.source = files")


@dataclasses.dataclass
class SequenceDataConfig(DataConfig):
    """A data source of variable-length sequences, batched by length; big public datasets come through TFDS."""

    num_buckets: int = option(4, "length buckets for batching (1 = no bucketing)", at_least=1)
    tfds_data_dir: str = option("", "TFDS data dir for the prepared datasets (empty: <zoo cache>/tfds)")


@dataclasses.dataclass
class TextDataConfig(SequenceDataConfig):
    """A source of texts read as a sequence of word tokens."""

    max_tokens: int = option(128, "tokens kept per text (longer texts are truncated, in training and serving)",
                             at_least=1)


@dataclasses.dataclass
class RecurrentConfig(Section):
    """The recurrent encoder every recipe builds on (``zoo.layers.RecurrentStack``); ``model`` sections extend it.
    Subclasses may narrow ``CELLS``."""

    CELLS: typing.ClassVar[tuple[str, ...]] = ("lstm", "gru", "rnn")
    cell: str = option("lstm", "recurrent cell: lstm | gru | rnn")
    units: int = option(128, "units per recurrent layer (and direction)", at_least=1)
    num_layers: int = option(1, "stacked recurrent layers", at_least=1)
    residual: bool = option(False, "residual connections between recurrent layers")
    dropout: float = option(0.2, "dropout between recurrent layers and before the output layer", fraction=True)

    def __post_init__(self):
        super().__post_init__()
        one_of("cell", self.cell, self.CELLS)


@dataclasses.dataclass
class PooledRecurrentConfig(RecurrentConfig):
    """A sequence → one encoder: the recurrent stack, then masked pooling over the valid steps."""

    bidirectional: bool = option(False, "bidirectional recurrent layers")
    pooling: list[str] = option(["last"], "masked pooling modes over time, concatenated: last | mean | max",
                                choices=("last", "mean", "max"))


@dataclasses.dataclass
class EnsembleConfig(Section):
    """A model that may be an ensemble: the driver trains each member from its own seed, the recipe averages them."""

    ensemble_size: int = option(1, "independently seeded members whose predictions are averaged (1 = one model)",
                                at_least=1)


@dataclasses.dataclass
class PeerConfig(Section):
    """The classical model(s) a user would pick instead, fitted on the same split and scored beside the network."""

    enabled: bool = option(True, "also fit the classical peer(s) on the training split and score them on the test "
                                 "split beside the network")


@dataclasses.dataclass
class ServingConfig(Section):
    """Bounds of the exported signatures, checked in the graph before any other work."""

    max_batch_size: int = option(64, "largest batch the served signature accepts", at_least=1)


@dataclasses.dataclass
class TextServingConfig(ServingConfig):
    """Bounds of a served signature that reads a batch of strings (``zoo.serving.checked_strings``)."""

    max_request_bytes: int = option(1 << 20, "most bytes of text in one request, all strings together (a larger "
                                             "request is refused before any work)", at_least=1)


@dataclasses.dataclass
class TrainConfig(Section):
    """Optimisation and run-directory settings shared by every recipe."""

    epochs: int = option(10, "maximum number of epochs", at_least=1)
    batch_size: int = option(64, "examples per batch; under a distribution strategy the global batch, split evenly "
                                 "over the replicas", at_least=1)
    learning_rate: float = option(1e-3, "Adam learning rate (> 0)")
    clipnorm: float = option(1.0, "gradient clipping by global norm (0 disables)", at_least=0)
    seed: int = option(1234, "seed for Python, NumPy and TensorFlow")
    early_stopping_patience: int = option(3, "epochs without validation improvement before stopping", at_least=0)
    strategy: str = option("default", "tf.distribute strategy: default | mirrored | multi_worker (reads TF_CONFIG)",
                           choices=("default", "mirrored", "multi_worker"))
    run_dir: str = option("runs/{recipe}", "run directory: checkpoints, TensorBoard logs, history.csv, curves.png")
    max_train_examples: int = option(0, "use only the first N training examples (0 = all); for smoke runs",
                                     at_least=0)
    max_eval_examples: int = option(0, "use only the first N examples of each held-out split (0 = all); for smoke "
                                       "runs", at_least=0)
    verbose: int = option(1, "Keras progress output: 0 silent, 1 progress bar, 2 one line per epoch",
                          choices=(0, 1, 2))
    max_minutes: float = option(0.0, "training wall-time budget in minutes (0 = none): no epoch is started that "
                                     "would not finish in time, and a late batch stops training", at_least=0)
    jit_compile: bool = option(False, "XLA-compile the train step (off: length-bucketed batches come in many shapes "
                                      "and XLA recompiles for each; see benchmarks/bucketing.py)")
    lr_plateau_patience: int = option(0, "epochs without validation improvement before the learning rate is "
                                         "multiplied by train.lr_plateau_factor (0 = constant learning rate)",
                                      at_least=0)
    lr_plateau_factor: float = option(0.5, "learning-rate multiplier on a plateau, in (0, 1)")
    ema_momentum: float = option(0.0, "keep an exponential moving average of the weights with this momentum "
                                      "(Polyak averaging); validation, checkpoints and the saved model use it "
                                      "(0 = off)",
                                 fraction=True)
    sparse_updates: bool = option(False, "embedding tables update only the rows a batch touched (zoo.optimizers."
                                         "LazyAdam) instead of every row every step (benchmarks/recurrent_speed.py)")

    def __post_init__(self):
        super().__post_init__()
        require(self.learning_rate > 0, "learning_rate", self.learning_rate, "must be > 0")
        require(0 < self.lr_plateau_factor < 1, "lr_plateau_factor", self.lr_plateau_factor, "must be in (0, 1)")


@dataclasses.dataclass
class ExportConfig(Section):
    """Where and whether the trained model is exported as a versioned SavedModel."""

    enabled: bool = option(True, "export a SavedModel after training")
    base_dir: str = option("saved_models", "export root; versions land in <base_dir>/<recipe>/<N>/")
    serving_base_path: str = option("/models", "model base path written into <base_dir>/models.config for TF Serving")

    def __post_init__(self):
        super().__post_init__()
        require(bool(self.base_dir), "base_dir", self.base_dir, "must not be empty")


@dataclasses.dataclass
class RecipeConfig:
    """Sections every recipe has; a recipe's config subclasses it and adds ``data``, ``model``, ``serving``, ..."""

    train: TrainConfig = section(TrainConfig, "optimisation and run directory")
    export: ExportConfig = section(ExportConfig, "SavedModel export")


# ---------------------------------------------------------------------------------------------------------------
# Building configs from layered values


def _coerce(value, tp, name: str):
    """Converts a TOML value or a command-line string to the field's declared type."""
    origin = typing.get_origin(tp)
    if origin in (list, tuple):
        (item_tp, *_) = typing.get_args(tp) or (str,)
        items = ([] if not value.strip() else value.split(",")) if isinstance(value, str) else value
        require(isinstance(items, (list, tuple)), name, value, "must be a list")
        return [_coerce(v.strip() if isinstance(v, str) else v, item_tp, name) for v in items]
    if tp is bool:
        if isinstance(value, bool):
            return value
        lowered = str(value).lower()
        require(lowered in ("true", "false", "1", "0"), name, value, "must be true or false")
        return lowered in ("true", "1")
    if tp in (int, float) and isinstance(value, bool):
        raise ConfigError(name, f"={value!r}: must be of type {tp.__name__}")
    try:
        converted = tp(value)
    except (TypeError, ValueError):
        raise ConfigError(name, f"={value!r}: must be of type {tp.__name__}") from None
    if tp is int and isinstance(value, float) and value != converted:
        raise ConfigError(name, f"={value!r}: must be an integer")
    return converted


def build(cls, values: dict, prefix: str = ""):
    """Builds dataclass ``cls`` from a nested dict over its defaults, rejecting unknown keys and coercing types."""
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = set(values) - set(fields)
    if unknown:
        known = ", ".join(sorted(fields))
        raise ConfigError(f"{prefix}{sorted(unknown)[0]}", f": unknown config key; known here: {known}")
    defaults = cls()
    kwargs = {}
    for key, value in values.items():
        tp = hints[key]
        if dataclasses.is_dataclass(tp):
            require(isinstance(value, dict), prefix + key, value, "must be a table of settings")
            current = getattr(defaults, key)
            kwargs[key] = build(type(current), {**_shallow(current), **value}, prefix=f"{prefix}{key}.")
        else:
            kwargs[key] = _coerce(value, tp, prefix + key)
    try:
        return dataclasses.replace(defaults, **kwargs)
    except ConfigError as e:
        raise e.prefixed(prefix) if "." not in e.key else e from None


def _shallow(instance) -> dict:
    """The leaf values of a section instance (nested sections as they are), to rebuild it with some changed."""
    return {f.name: getattr(instance, f.name) for f in dataclasses.fields(instance)
            if not dataclasses.is_dataclass(getattr(instance, f.name))}


def options(config, prefix: str = ""):
    """Yields (dotted name, type, value, help) for every leaf option of a config instance."""
    hints = typing.get_type_hints(type(config))
    # A recipe's own sections first, the shared train / export sections last.
    for f in sorted(dataclasses.fields(config), key=lambda f: not prefix and f.name in ("train", "export")):
        value = getattr(config, f.name)
        if dataclasses.is_dataclass(value):
            yield from options(value, prefix=f"{prefix}{f.name}.")
        else:
            yield f"{prefix}{f.name}", hints[f.name], value, f.metadata.get("help", "")


def _set_dotted(tree: dict, dotted: str, value) -> None:
    *parents, leaf = dotted.split(".")
    for p in parents:
        tree = tree.setdefault(p, {})
    tree[leaf] = value


def _dotted_keys(tree: dict, prefix: str = ""):
    for key, value in tree.items():
        if isinstance(value, dict):
            yield from _dotted_keys(value, f"{prefix}{key}.")
        yield prefix + key


def merge(base: dict, extra: dict) -> dict:
    """``extra`` layered over ``base`` (nested tables merged key by key)."""
    merged = dict(base)
    for key, value in extra.items():
        both = isinstance(value, dict) and isinstance(merged.get(key), dict)
        merged[key] = merge(merged[key], value) if both else value
    return merged


def presets(presets_dir: Path | None) -> list[str]:
    """Names of the presets a recipe ships: ``default`` (its config's defaults) and ``<presets_dir>/*.toml``."""
    files = sorted(p.stem for p in presets_dir.glob("*.toml")) if presets_dir and presets_dir.is_dir() else []
    return [DEFAULT_PRESET] + [name for name in files if name != DEFAULT_PRESET]


def read_toml(path: Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise ConfigError("", f"settings file {path} not found")
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError("", f"{path} is not valid TOML: {e}") from None


def layers(presets_dir: Path | None, preset: str = DEFAULT_PRESET, config_file: str | Path | None = None):
    """The file layers of a config, in order: ``[(origin, values)]`` for the preset (unless ``default``) and
    ``config_file``."""
    available = presets(presets_dir)
    if preset not in available:
        raise ConfigError("", f"unknown preset {preset!r}; presets: {', '.join(available)}")
    stack = []
    if preset != DEFAULT_PRESET:
        path = presets_dir / f"{preset}.toml"
        stack.append((str(path), read_toml(path)))
    if config_file:
        stack.append((str(config_file), read_toml(Path(config_file))))
    return stack


def resolve(cls, stack: list[tuple[str, dict]]):
    """Builds ``cls`` from its defaults and the layers ``stack``; a bad value is blamed on the layer that set it
    (for a check across options, on the layer at which it first fails)."""
    values, origins = {}, {}
    for origin, layer in stack:
        for key in _dotted_keys(layer):
            origins[key] = origin
        values = merge(values, layer)
        try:
            build(cls, values)
        except ConfigError as e:
            raise e.at(origins.get(e.key, origin)) from None
    return build(cls, values)


def configure(cls, presets_dir: Path | None = None, preset: str = DEFAULT_PRESET,
              config_file: str | Path | None = None, overrides: dict | None = None):
    """A config from the defaults of ``cls``, a preset, a TOML file and a nested dict of overrides, in that order."""
    stack = layers(presets_dir, preset, config_file)
    if overrides:
        stack.append(("overrides", overrides))
    return resolve(cls, stack)


def shown_value(value) -> str:
    """An option's value as ``--help`` prints it: lists comma-separated, strings quoted where blanks matter."""
    shown = ",".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)
    return repr(shown) if isinstance(value, str) and (not value or value != value.strip()) else shown


def make_parser(cls, prog: str, argv: list[str] | None = None, presets_dir: Path | None = None,
                description: str = ""):
    """The argument parser of a recipe's command line, for the preset and config file that ``argv`` names, and
    the file layers it resolved: ``(parser, layers)``. Every option's help ends in the value the run will use."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--preset", default=DEFAULT_PRESET)
    pre.add_argument("--config", default=None)
    known, _ = pre.parse_known_args(argv)
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--preset", default=DEFAULT_PRESET,
                        help=f"settings preset: {' | '.join(presets(presets_dir))} (default: {DEFAULT_PRESET})")
    parser.add_argument("--config", default=None, help="a TOML settings file layered over the preset")
    try:
        stack = layers(presets_dir, known.preset, known.config)
        base = resolve(cls, stack)
    except ConfigError as e:
        parser.error(str(e))
    for dotted, tp, value, help_text in options(base):
        help_text = f"{help_text} (default: {shown_value(value)})".replace("%", "%%")  # argparse %-formats help
        parser.add_argument(f"--{dotted}", dest=dotted, default=None, metavar=getattr(tp, "__name__", "LIST").upper(),
                            help=help_text)
    return parser, stack


def parse_args(cls, prog: str, argv: list[str] | None = None, presets_dir: Path | None = None,
               description: str = ""):
    """Parses a recipe's command line into its config; errors exit with a message naming the key and where its
    value came from. ``--help`` prints every option with the value the run will use."""
    parser, stack = make_parser(cls, prog, argv, presets_dir, description)
    args = parser.parse_args(argv)
    flags = {}
    for dotted, *_ in options(cls()):
        if getattr(args, dotted) is not None:
            _set_dotted(flags, dotted, getattr(args, dotted))
    try:
        return resolve(cls, stack + [("command line", flags)])
    except ConfigError as e:
        parser.error(str(e).replace("command line: ", "command line: --", 1))


def from_dict(cls, values: dict | None = None, **overrides):
    """Builds a config from a nested dict plus ``section={...}`` overrides over the defaults of ``cls``."""
    return build(cls, merge(values or {}, overrides))


def to_dict(config) -> dict:
    return dataclasses.asdict(config)
