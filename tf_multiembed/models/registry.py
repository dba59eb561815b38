"""Name -> model-builder registry of the zoo (DNN, IPNN, NFwFM, xDeepFM, DCNv2, FinalMLP, AutoInt+, ...)."""

import dataclasses
from typing import Callable, Dict, List, TypeVar

import tensorflow as tf

_BuildFn = TypeVar("_BuildFn", bound=Callable[..., tf.keras.Model])


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """A registered model family.

    Attributes:
        name: registry name, e.g. "dcnv2".
        build_fn: `build_fn(vocabulary_sizes, *, num_sets, embedding_dim, field_names=None, **kwargs) -> keras.Model`.
        base_embedding_dim: the paper's base width K (10; NFwFM 50; FFM 8).
    """

    name: str
    build_fn: Callable[..., tf.keras.Model]
    base_embedding_dim: int


_REGISTRY: Dict[str, ModelSpec] = {}


def register_model(name: str, base_embedding_dim: int = 10) -> Callable[[_BuildFn], _BuildFn]:
    """Decorator that registers a model-building function under `name`.

    Example:
        >>> @register_model("my_dnn", base_embedding_dim=10)
        ... def build_my_dnn(vocabulary_sizes, *, num_sets, embedding_dim, field_names=None):
        ...     ...
    """

    def decorate(build_fn: _BuildFn) -> _BuildFn:
        if name in _REGISTRY and _REGISTRY[name].build_fn is not build_fn:
            raise ValueError(f"register_model: the name {name!r} is already registered by "
                             f"{_REGISTRY[name].build_fn.__module__}.{_REGISTRY[name].build_fn.__name__}.")
        _REGISTRY[name] = ModelSpec(name, build_fn, int(base_embedding_dim))
        return build_fn

    return decorate


def get_model_spec(name: str) -> ModelSpec:
    """The registered `ModelSpec` for `name`; an error lists the available names otherwise."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(
            f"Unknown model name {name!r}; expected one of {available_models()}."
        ) from None


def available_models() -> List[str]:
    """Sorted names of all registered models."""
    return sorted(_REGISTRY)
