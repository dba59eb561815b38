"""Name -> model-builder registry of the zoo (DNN, IPNN, NFwFM, xDeepFM, DCNv2, FinalMLP, AutoInt+, ...)."""

import dataclasses
import inspect
from typing import Any, Callable, Dict, List, Optional, Sequence, TypeVar

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


def register_variant(name: str, build_fn: Callable[..., tf.keras.Model], base_embedding_dim: int = 10,
                     **options: Any) -> Callable[..., tf.keras.Model]:
    """Registers `build_fn` with some options set under a name of its own (e.g. "dcnv2_space_similarity"), so
    train.py `--model` and the scaling study can train it; the variant is `build_fn`, not a copy of the model.

    Its signature is `build_fn`'s with these defaults (`model_options` reads it); explicit keyword arguments still
    win, and its Keras name is the variant's ("me_<name>_4x10").

    Example (models/dcnv2.py registers `register_variant("dcnv2_shared_interaction", build_dcnv2,
    shared_interaction=True)`):
        >>> from tf_multiembed.models import build_model
        >>> type(build_model("dcnv2_shared_interaction", [10, 20], scale=2).get_layer("fold_sets")).__name__
        'FoldSets'
    """
    from tf_multiembed.models.common import model_name

    signature = inspect.signature(build_fn)
    unknown = sorted(set(options) - set(signature.parameters))
    if unknown:
        raise ValueError(f"register_variant({name!r}): {build_fn.__name__} takes no option {unknown}.")

    def build(vocabulary_sizes: Sequence[int], *, num_sets: int, embedding_dim: int, name: Optional[str] = None,
              **kwargs: Any) -> tf.keras.Model:
        return build_fn(vocabulary_sizes, num_sets=num_sets, embedding_dim=embedding_dim,
                        name=name or model_name(family, num_sets, embedding_dim), **{**options, **kwargs})

    family = name
    build.__name__ = f"build_{name}"
    build.__doc__ = f"`{build_fn.__name__}` with {options} by default."
    # mypy knows no `__signature__` on functions; inspect.signature reads it (the variant's defaults).
    build.__signature__ = signature.replace(parameters=[  # type: ignore[attr-defined]
        parameter.replace(default=options[parameter.name]) if parameter.name in options else parameter
        for parameter in signature.parameters.values()])
    return register_model(name, base_embedding_dim)(build)


def model_options(name: str) -> Dict[str, Any]:
    """`{option: default}` of the keyword options the registered model `name` takes (a variant's own defaults).

    Example:
        >>> model_options("dcnv2_space_similarity")["space_similarity_coefficient"]
        0.0001
    """
    parameters = inspect.signature(get_model_spec(name).build_fn).parameters.values()
    return {parameter.name: parameter.default for parameter in parameters
            if parameter.kind is inspect.Parameter.KEYWORD_ONLY}


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
