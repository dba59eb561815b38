"""TFDS builders (offline, from `manual_dir`): importing this package registers `criteo_ctr`, `avazu_ctr` and
`movielens100k_ctr` with `tfds.load`."""

from tf_multiembed.data.tfds.avazu import AvazuCtr
from tf_multiembed.data.tfds.criteo import CriteoCtr
from tf_multiembed.data.tfds.movielens import Movielens100kCtr

__all__ = ["AvazuCtr", "CriteoCtr", "Movielens100kCtr"]
