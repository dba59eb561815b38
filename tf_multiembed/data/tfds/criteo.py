"""TFDS builder for the Criteo Display Advertising Challenge (Kaggle `train.txt`), read from `manual_dir`."""

import pathlib
from typing import List, Sequence

from tf_multiembed.data import schema as schema_lib
from tf_multiembed.data.tfds.base import SchemaBuilder

CRITEO_FILES = ("train.txt", "train.txt.gz")


class CriteoCtr(SchemaBuilder):
    """Criteo Kaggle click logs (45.8M rows): label, I1..I13 (float64, NaN when empty), C1..C26 (hashed text).

    Example:
        >>> import tf_multiembed.data.tfds  # registers the builders  # doctest: +SKIP
        >>> tfds.load("criteo_ctr", data_dir="/data/tfds", download_and_prepare_kwargs={
        ...     "download_config": tfds.download.DownloadConfig(manual_dir="/data/criteo")})  # doctest: +SKIP
    """

    MANUAL_DOWNLOAD_INSTRUCTIONS = (f"Place the Kaggle Criteo file as one of {list(CRITEO_FILES)} in manual_dir "
                                    f"(https://www.kaggle.com/c/criteo-display-ad-challenge).")
    HOMEPAGE = "https://www.kaggle.com/c/criteo-display-ad-challenge"

    def schema(self) -> schema_lib.Schema:
        return schema_lib.criteo_schema()

    def input_paths(self, manual_dir: pathlib.Path) -> List[pathlib.Path]:
        return [find_manual_file(manual_dir, CRITEO_FILES)]


def find_manual_file(manual_dir: pathlib.Path, names: Sequence[str]) -> pathlib.Path:
    """The first of `names` present in `manual_dir`; a clear error listing them otherwise."""
    for name in names:
        if (manual_dir / name).is_file():
            return manual_dir / name
    raise FileNotFoundError(f"{manual_dir}: none of {list(names)} found; place the data file in manual_dir.")
