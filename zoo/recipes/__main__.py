"""``python -m zoo.recipes export MODEL.keras CONFIG.json``: the CPU-only half of ``zoo.export.export_model``.

``CONFIG.json`` is a run's record (``{"recipe": name, "config": {...}}``, as in ``config.json``); the last line
printed is ``EXPORTED <path of the new version>``.
"""

import json
import sys
from pathlib import Path

from zoo import config, export
from zoo.recipes import get


def main(argv: list[str]) -> None:
    command, keras_path, config_json = argv
    if command != "export":
        raise SystemExit(f"unknown command {command!r}; usage: python -m zoo.recipes export MODEL.keras CONFIG.json")
    record = json.loads(Path(config_json).read_text())
    recipe = get(record["recipe"])
    cfg = config.build(recipe.config_class, record["config"])
    assert not export.gpus_visible(), "the export process must not see a GPU"
    print(f"EXPORTED {export.export_model(recipe, Path(keras_path), cfg)}")


if __name__ == "__main__":
    main(sys.argv[1:])
