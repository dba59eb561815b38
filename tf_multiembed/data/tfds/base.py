"""A TFDS builder over a `Schema`: reads the user's files from `manual_dir` (no download) and yields raw features.

Examples are `{"features": {field name: raw value}, "label": 0/1}` with the raw values typed as
`encoding.raw_feature_signature` types them (text for categorical fields, float64 with NaN for empty numeric
cells), so `tfds.load(..., as_supervised=True)` batches feed `RawFeatureEncoder` directly. Bad lines are skipped
and counted as in `prepare_dataset` (a `SkippedInputWarning`; more than `MAX_SKIPPED_FRACTION` fails the build).
The splits are the paper's: `numpy.random.default_rng(0).permutation`, 8:1:1, identical to `prepare_dataset`'s
default random split; the split assignment holds one byte per row in memory while the dataset is generated.
"""

import abc
import math
import pathlib
from typing import Any, Dict, Iterator, List, Tuple, Union

import numpy as np
import tensorflow_datasets as tfds

from tf_multiembed.data import schema as schema_lib
from tf_multiembed.data import splits as splits_lib
from tf_multiembed.data import transforms
from tf_multiembed.data.quality import BadInputTracker
from tf_multiembed.data.records import BlockParser, ValidRows, make_reader


class SchemaBuilder(tfds.core.GeneratorBasedBuilder, abc.ABC):
    """Base of the offline builders; subclasses name the schema and find their files in `manual_dir`."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Raw features from manual_dir, random 8:1:1 split with seed 0."}
    SPLIT_SEED = 0
    STRICT = False
    MAX_SKIPPED_FRACTION = 0.01
    HOMEPAGE = ""
    CITATION = ""

    @abc.abstractmethod
    def schema(self) -> schema_lib.Schema:
        """The schema of the files."""

    @abc.abstractmethod
    def input_paths(self, manual_dir: pathlib.Path) -> Union[pathlib.Path, List[pathlib.Path]]:
        """The input paths inside `manual_dir` (raise with the expected file names when absent)."""

    def _info(self) -> tfds.core.DatasetInfo:
        raw = {}
        for field in self.schema().fields:
            if transforms.get_transform(field.transform).input_kind == "string":
                raw[field.name] = tfds.features.Text()
            else:
                raw[field.name] = tfds.features.Scalar(dtype=np.float64)
        return tfds.core.DatasetInfo(
            builder=self, description=self.__doc__,
            features=tfds.features.FeaturesDict({"features": tfds.features.FeaturesDict(raw),
                                                 "label": tfds.features.Scalar(dtype=np.int64)}),
            supervised_keys=("features", "label"), homepage=self.HOMEPAGE or None, citation=self.CITATION or None)

    def _split_generators(self, dl_manager: tfds.download.DownloadManager) -> Dict[str, Iterator[Tuple[int, Any]]]:
        schema = self.schema()
        paths = self.input_paths(pathlib.Path(dl_manager.manual_dir))
        tracker = BadInputTracker(strict=self.STRICT)
        num_rows = sum(rows.num_rows for rows in _parsed(schema, paths, tracker))
        tracker.warn_if_skipped()
        tracker.check(self.MAX_SKIPPED_FRACTION)
        membership = splits_lib.split_membership(num_rows, self.SPLIT_SEED)
        return {name: self._generate_examples(schema, paths, membership, index)
                for index, name in enumerate(splits_lib.SPLIT_NAMES)}

    def _generate_examples(self, schema: schema_lib.Schema, paths: Union[pathlib.Path, List[pathlib.Path]],
                           membership: np.ndarray, split_index: int) -> Iterator[Tuple[int, Dict[str, Any]]]:
        numeric = [transforms.get_transform(field.transform).input_kind == "number" for field in schema.fields]
        tracker = BadInputTracker(max_examples=0)  # the counting pass already reported the bad lines
        row = 0
        for rows in _parsed(schema, paths, tracker):
            columns = [rows.columns[field.column].to_pylist() for field in schema.fields]
            for position, label in enumerate(rows.labels.tolist()):
                if membership[row] == split_index:
                    features = {field.name: _raw_value(cells[position], is_numeric)
                                for field, cells, is_numeric in zip(schema.fields, columns, numeric)}
                    yield row, {"features": features, "label": label}
                row += 1


def _parsed(schema: schema_lib.Schema, paths: Union[pathlib.Path, List[pathlib.Path]],
            tracker: BadInputTracker) -> Iterator[ValidRows]:
    """The valid rows (with their raw cells) of each block of the inputs."""
    parser = BlockParser(schema, tracker)
    for block in make_reader(schema, paths).read_blocks(tracker):
        yield parser.validate(block)


def _raw_value(cell: str, numeric: bool) -> Union[str, float]:
    """A raw feature value as the serving signature types it (an empty numeric cell is NaN)."""
    if not numeric:
        return cell
    return math.nan if cell == "" else float(cell)
