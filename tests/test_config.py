"""Config loading: presets, typed overrides, unknown keys and bad values named in the error."""

import pytest

from zoo import config
from zoo.recipes.sentiment.config import SentimentConfig


def test_default_preset_loads_and_overrides_are_typed():
    cfg = config.load(SentimentConfig, "sentiment", ["--model.units", "32", "--model.bidirectional", "false",
                                                     "--model.pooling", "last,mean", "--train.learning_rate", "3e-4"])
    assert cfg.model.units == 32 and cfg.model.bidirectional is False
    assert cfg.model.pooling == ["last", "mean"] and cfg.train.learning_rate == pytest.approx(3e-4)
    assert cfg.data.source == "vader"


@pytest.mark.parametrize("argv, message", [
    (["--model.units", "0"], "model.units=0"),
    (["--model.cell", "lstmm"], "model.cell='lstmm'"),
    (["--train.epochs", "ten"], "train.epochs='ten'"),
    (["--model.bidirectional", "maybe"], "model.bidirectional='maybe'"),
    (["--data.train_domains", "movie,books"], "data.train_domains"),
    (["--model.unitz", "3"], "unrecognized arguments: --model.unitz"),
])
def test_bad_command_line_values_are_named(argv, message, capsys):
    with pytest.raises(SystemExit):
        config.load(SentimentConfig, "sentiment", argv)
    assert message in capsys.readouterr().err


def test_unknown_toml_key_is_rejected(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text("[model]\nunits = 8\nlayers = 2\n")
    with pytest.raises(SystemExit):
        config.load(SentimentConfig, "sentiment", ["--config", str(bad)])
    assert "unknown config key(s) ['model.layers']" in capsys.readouterr().err


def test_help_documents_every_option(capsys):
    with pytest.raises(SystemExit):
        config.load(SentimentConfig, "sentiment", ["--help"])
    text = capsys.readouterr().out
    for dotted, *_ in config._flatten_options(SentimentConfig):
        assert f"--{dotted}" in text


def test_from_dict_round_trips_through_to_dict():
    cfg = config.from_dict(SentimentConfig, model={"units": 16}, train={"epochs": 2})
    assert config.build(SentimentConfig, config.to_dict(cfg)) == cfg
