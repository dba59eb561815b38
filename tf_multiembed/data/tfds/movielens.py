"""TFDS builder for MovieLens-100K as a CTR task (label = rating >= 4), read from `manual_dir`."""

import pathlib

from tf_multiembed.data import schema as schema_lib
from tf_multiembed.data.readers import movielens as movielens_reader
from tf_multiembed.data.tfds.base import SchemaBuilder


class Movielens100kCtr(SchemaBuilder):
    """MovieLens-100K ratings joined with users and items: user_id, item_id, age, gender, occupation, zip_code,
    release_year, genres (whole genre string) as text; label = rating >= 4.

    Example:
        >>> tfds.load("movielens100k_ctr", data_dir="/data/tfds", download_and_prepare_kwargs={
        ...     "download_config": tfds.download.DownloadConfig(manual_dir="../shared/data/ml-100k")})  # doctest: +SKIP
    """

    MANUAL_DOWNLOAD_INSTRUCTIONS = ("Place MovieLens-100K in manual_dir (or manual_dir/ml-100k): the GroupLens files "
                                    "u.data, u.user, u.item, or the RecBole atomic files ml-100k.inter/.user/.item "
                                    "(https://grouplens.org/datasets/movielens/100k/).")
    HOMEPAGE = "https://grouplens.org/datasets/movielens/100k/"
    CITATION = ("F. Maxwell Harper and Joseph A. Konstan. 2015. The MovieLens Datasets: History and Context. "
                "ACM Transactions on Interactive Intelligent Systems 5, 4, Article 19.")

    def schema(self) -> schema_lib.Schema:
        return schema_lib.movielens_schema()

    def input_paths(self, manual_dir: pathlib.Path) -> pathlib.Path:
        for folder in (manual_dir, manual_dir / "ml-100k"):
            try:
                return movielens_reader.detect_layout(folder)[1]
            except ValueError:
                continue
        return movielens_reader.detect_layout(manual_dir)[1]  # raises with the expected file names
