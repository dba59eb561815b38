"""TFDS builder for Avazu Click-Through Rate Prediction (Kaggle `train`), read from `manual_dir`."""

import pathlib
from typing import List

from tf_multiembed.data import schema as schema_lib
from tf_multiembed.data.tfds.base import SchemaBuilder
from tf_multiembed.data.tfds.criteo import find_manual_file

AVAZU_FILES = ("train", "train.gz", "train.csv", "train.csv.gz")


class AvazuCtr(SchemaBuilder):
    """Avazu mobile ad clicks (40.4M rows): 22 categorical fields as text (`hour` included, `id` dropped),
    label `click`.

    Example:
        >>> tfds.load("avazu_ctr", data_dir="/data/tfds", download_and_prepare_kwargs={
        ...     "download_config": tfds.download.DownloadConfig(manual_dir="/data/avazu")})  # doctest: +SKIP
    """

    MANUAL_DOWNLOAD_INSTRUCTIONS = (f"Place the Kaggle Avazu training file as one of {list(AVAZU_FILES)} in manual_dir "
                                    f"(https://www.kaggle.com/c/avazu-ctr-prediction).")
    HOMEPAGE = "https://www.kaggle.com/c/avazu-ctr-prediction"

    def schema(self) -> schema_lib.Schema:
        return schema_lib.avazu_schema()

    def input_paths(self, manual_dir: pathlib.Path) -> List[pathlib.Path]:
        return [find_manual_file(manual_dir, AVAZU_FILES)]
