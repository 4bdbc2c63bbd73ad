"""Config loading: one source of defaults, presets and files layered on them, typed overrides, errors that name the
key and where its value came from."""

import dataclasses

import pytest

from zoo import config, recipes
from zoo.config import ConfigError
from zoo.recipes.sentiment.config import SentimentConfig


def parse(name, argv):
    recipe = recipes.get(name)
    return config.parse_args(recipe.config_class, name, argv, recipe.presets_dir)


def test_defaults_and_typed_overrides():
    cfg = parse("sentiment", ["--model.units", "32", "--model.bidirectional", "false",
                              "--model.pooling", "last,mean", "--train.learning_rate", "3e-4"])
    assert cfg.model.units == 32 and cfg.model.bidirectional is False
    assert cfg.model.pooling == ["last", "mean"] and cfg.train.learning_rate == pytest.approx(3e-4)
    assert cfg.data.source == "vader" and cfg.model.cell == "gru"  # the recipe's defaults, not the section's


@pytest.mark.parametrize("argv, message", [
    (["--model.units", "0"], "command line: --model.units=0: must be >= 1"),
    (["--model.cell", "lstmm"], "command line: --model.cell='lstmm'"),
    (["--train.epochs", "ten"], "command line: --train.epochs='ten'"),
    (["--model.bidirectional", "maybe"], "command line: --model.bidirectional='maybe'"),
    (["--data.train_domains", "movie,books"], "command line: --data.train_domains"),
    (["--model.unitz", "3"], "unrecognized arguments: --model.unitz"),
    (["--preset", "nosuch"], "unknown preset 'nosuch'; presets: default"),
])
def test_bad_command_line_values_are_named_with_their_origin(argv, message, capsys):
    with pytest.raises(SystemExit):
        parse("sentiment", argv)
    assert message in capsys.readouterr().err


def test_unknown_or_bad_toml_key_names_the_file(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text("[model]\nunits = 8\nlayers = 2\n")
    with pytest.raises(SystemExit):
        parse("sentiment", ["--config", str(bad)])
    assert f"{bad}: model.layers: unknown config key" in capsys.readouterr().err
    bad.write_text("[model]\nunits = -1\n")
    with pytest.raises(SystemExit):
        parse("sentiment", ["--config", str(bad)])
    assert f"{bad}: model.units=-1: must be >= 1" in capsys.readouterr().err


def test_config_file_layers_over_the_preset_and_the_command_line_over_both(tmp_path):
    layer = tmp_path / "short.toml"
    layer.write_text("[train]\nepochs = 1\n\n[data]\nmax_steps = 64\n")
    cfg = parse("music", ["--preset", "folk", "--config", str(layer), "--train.batch_size", "3"])
    folk = parse("music", ["--preset", "folk"])
    assert (cfg.train.epochs, cfg.data.max_steps, cfg.train.batch_size) == (1, 64, 3)
    # Everything the file does not name stays as the preset has it.
    assert cfg.train.learning_rate == folk.train.learning_rate == 0.002
    assert cfg.data.source == "folk" and cfg.model.embedding_dim == 64
    assert parse("music", ["--config", str(layer)]).data.source == "jsb"  # over the default preset


def test_presets_are_listed_and_named_in_errors(capsys):
    assert config.presets(recipes.get("music").presets_dir) == ["default", "folk"]
    with pytest.raises(SystemExit):
        parse("music", ["--preset", "jazz"])
    assert "unknown preset 'jazz'; presets: default, folk" in capsys.readouterr().err


def test_cross_section_checks_are_blamed_on_the_layer_that_breaks_them(tmp_path, capsys):
    with pytest.raises(SystemExit):
        parse("music", ["--generate.num_steps", "2000"])
    assert "command line: --generate.num_steps=2000: must be <= serving.max_generate_steps (1024)" \
        in capsys.readouterr().err


@pytest.mark.parametrize("name, preset", [(name, preset) for name in recipes.NAMES
                                           for preset in config.presets(recipes.get(name).presets_dir)])
def test_help_prints_the_values_the_run_uses(name, preset, capsys):
    recipe = recipes.get(name)
    parser, _ = config.make_parser(recipe.config_class, name, ["--preset", preset], recipe.presets_dir)
    helps = {action.dest: action.help for action in parser._actions}
    effective = recipe.configure(preset)
    for dotted, _, value, _ in config.options(effective):
        assert helps[dotted].endswith(f"(default: {config.shown_value(value)})"), (dotted, helps[dotted])
    with pytest.raises(SystemExit):
        parser.parse_args(["--help"])
    assert "(default: None)" not in capsys.readouterr().out


def test_from_dict_round_trips_through_to_dict():
    cfg = config.from_dict(SentimentConfig, model={"units": 16}, train={"epochs": 2})
    assert config.build(SentimentConfig, config.to_dict(cfg)) == cfg
    # recipe defaults (set on the section, not the class) survive partial tables
    assert cfg.model.cell == "gru" and cfg.model.embedding_dropout == 0.3 and cfg.model.ensemble_size == 2


def test_python_api_configure_layers_like_the_command_line(tmp_path):
    import zoo

    cfg = zoo.configure("music", preset="folk", train={"epochs": 2})
    assert cfg == parse("music", ["--preset", "folk", "--train.epochs", "2"])
    with pytest.raises(ConfigError, match="overrides: model.units=0: must be >= 1"):
        zoo.configure("sentiment", model={"units": 0})


def test_sections_are_shared_not_copied():
    """The recurrent options are declared once (``zoo.config.RecurrentConfig``) and composed by every recipe."""
    shared = {f.name for f in dataclasses.fields(config.RecurrentConfig)}
    for name in recipes.NAMES:
        cfg = recipes.get(name).configure()
        assert isinstance(cfg.model, config.RecurrentConfig) and shared <= set(vars(cfg.model)), name
        assert isinstance(cfg.serving, config.ServingConfig) and isinstance(cfg.data, config.DataConfig), name
