"""Argument checks shared by the layers, the models and the run configuration: each error says what was received and
what is expected."""

from typing import Any, List, Sequence, TypeVar

_T = TypeVar("_T")


def check_positive_int(value: Any, name: str, owner: str) -> int:
    """Returns `value` as an int, or raises if it is not a positive integer."""
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{owner}: `{name}` must be a positive integer, received {value!r}.")
    return int(value)


def check_rate(value: Any, name: str, owner: str) -> float:
    """Returns `value` as a float, or raises if it is not in [0, 1)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
        raise ValueError(f"{owner}: `{name}` must be a float in [0, 1), received {value!r}.")
    return float(value)


def check_positive_int_list(values: Any, name: str, owner: str, allow_empty: bool = False) -> List[int]:
    """Returns `values` as a list of ints, or raises if any entry is not a positive integer."""
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
        raise ValueError(
            f"{owner}: `{name}` must be a list of positive integers, received {values!r}."
        )
    values = list(values)
    if not values and not allow_empty:
        raise ValueError(f"{owner}: `{name}` must not be empty, received {values!r}.")
    for index, value in enumerate(values):
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ValueError(
                f"{owner}: `{name}[{index}]` must be a positive integer, received {value!r} "
                f"(full value: {values!r})."
            )
    return [int(v) for v in values]


def track_as_attribute(layer: Any, name: str, value: _T) -> _T:
    """Also stores `value` (a sub-layer or variable kept in a list) as `layer.<name>` and returns it.

    Keras 3 tracks lists of layers and variables for its own saving, but `tf.train.Checkpoint` and SavedModel
    see only attributes: without this, a checkpoint of a model silently misses e.g. the cross kernels.
    """
    setattr(layer, name, value)
    return value


def check_input_rank(input_shape: Sequence[Any], rank: int, layout: str, owner: str) -> None:
    """Raises if `input_shape` does not have `rank` dimensions (`layout` names them, e.g. '[B, M, N, K]')."""
    if len(input_shape) != rank:
        raise ValueError(
            f"{owner}: expected an input of rank {rank} with layout {layout}, "
            f"received shape {tuple(input_shape)}."
        )
    for dim in input_shape[1:]:
        if dim is None:
            raise ValueError(
                f"{owner}: all dimensions except the batch must be known, layout {layout}, "
                f"received shape {tuple(input_shape)}."
            )
