"""What every metadata file the package writes shares: the package's version and plain JSON values.

Used by the artifact contract (`artifacts.py`), the prepared-data manifest (`data/shards.py`) and the diagnostics'
JSON files; it imports nothing of the package.

Example:
    >>> import math
    >>> import numpy as np
    >>> json_value({"auc": float("nan"), "sizes": np.array([3, 4]), "loss": np.float32(0.5)})
    {'auc': None, 'sizes': [3, 4], 'loss': 0.5}
"""

import dataclasses
import math
import pathlib
from typing import Any, Mapping


def package_version() -> str:
    """The installed tf-multiembed version ("unknown" when running from a source tree without metadata)."""
    from importlib import metadata

    try:
        return metadata.version("tf-multiembed")
    except metadata.PackageNotFoundError:
        return "unknown"


def json_value(value: Any) -> Any:
    """Plain JSON: NaN and infinities become null (undefined, e.g. the AUC of one class), NumPy arrays lists and
    NumPy scalars Python's, dataclasses dicts, paths strings, mapping keys strings."""
    if isinstance(value, Mapping):
        return {str(key): json_value(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_value(item) for item in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return json_value(dataclasses.asdict(value))
    if isinstance(value, pathlib.PurePath):
        return str(value)
    if getattr(value, "ndim", 0) and hasattr(value, "tolist"):  # an array
        return json_value(value.tolist())
    if hasattr(value, "item") and callable(value.item):  # a NumPy scalar or 0-d array
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
