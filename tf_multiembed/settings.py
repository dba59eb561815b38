"""Settings declared once: dataclass fields that carry their flag's help, bounds and choices, and the machinery that
checks them and turns them into absl flags (and back).

`training.config.RunConfig` (train.py's flags) and `data.build.BuildSettings` (the data build's, shared by
`prepare_dataset` and the Beam pipeline's command line) are declared with `setting`; their flags come from
`define_flags`, their values from `values_from_flags`, so a name, default or help text exists in one place.

Example:
    >>> import dataclasses
    >>> @dataclasses.dataclass(frozen=True)
    ... class Example:
    ...     rows: int = setting(int, 10, "Rows to read.", lower_bound=1)
    ...     def __post_init__(self):
    ...         check_settings(self)
    >>> setting_defaults(Example)
    {'rows': 10}
    >>> Example(rows=0)
    Traceback (most recent call last):
    ...
    ValueError: `rows` must be >= 1, received 0.
"""

import dataclasses
import inspect
import math
import textwrap
from typing import TYPE_CHECKING, Any, Callable, Dict, Iterable, List, Optional, Sequence, Union

if TYPE_CHECKING:
    from absl import flags


def setting(kind: type, default: Any, help_text: Union[str, Callable[[], str]], *,
            choices: Optional[Sequence[str]] = None, lower_bound: Optional[float] = None,
            upper_bound: Optional[float] = None, optional: bool = False, changes_result: bool = True,
            item_kind: Optional[type] = None) -> Any:
    """A dataclass field with what its flag and its validation need.

    Args:
        kind: int, float, bool, str, or tuple (a comma-separated flag of `item_kind` values).
        default: the default value (for a tuple, a tuple).
        help_text: the flag's help and the field's documentation; a function returning it when the text depends on
            what is known only at run time (e.g. the registered model names).
        choices: the allowed values (an enum flag).
        lower_bound: the smallest allowed value (numbers).
        upper_bound: the largest allowed value (numbers).
        optional: whether None is allowed (the flag's default then is None).
        changes_result: False for settings that may differ between runs that must otherwise match (where files go,
            how much is printed); see `RunConfig.result_settings`.
        item_kind: the type of a tuple's items.
    """
    metadata = dict(kind=kind, help=help_text, choices=tuple(choices) if choices else None, lower_bound=lower_bound,
                    upper_bound=upper_bound, optional=optional, changes_result=changes_result, item_kind=item_kind)
    return dataclasses.field(default=default, metadata=metadata)


def declared_fields(settings_class: type) -> List["dataclasses.Field[Any]"]:
    """The fields of `settings_class` declared with `setting`, in declaration order."""
    return [field for field in dataclasses.fields(settings_class) if "kind" in field.metadata]


def setting_help(field: "dataclasses.Field[Any]") -> str:
    """The help text of a declared field."""
    text = field.metadata["help"]
    return text() if callable(text) else text


def setting_defaults(settings_class: type) -> Dict[str, Any]:
    """`{name: default}` of every declared setting."""
    return {field.name: field.default for field in declared_fields(settings_class)}


def check_setting(field: "dataclasses.Field[Any]", value: Any, spell: str = "`{}`") -> None:
    """Raises a ValueError naming the setting (as `spell` formats it, e.g. "--{}" for a flag) if `value` has the
    wrong type or lies outside its choices or bounds. Tuples are left to their class's own check."""
    meta, name = field.metadata, spell.format(field.name)
    kind = meta["kind"]
    if (value is None and meta["optional"]) or kind is tuple:
        return
    expected = {int: "an integer", float: "a number", bool: "True or False", str: "a string"}[kind]
    valid_type = isinstance(value, kind) and not (kind is int and isinstance(value, bool))
    if kind is float:
        valid_type = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not valid_type:
        raise ValueError(f"{name} must be {expected}{' or None' if meta['optional'] else ''}, received {value!r}.")
    if meta["choices"] is not None and value not in meta["choices"]:
        raise ValueError(f"{name} must be one of {list(meta['choices'])}, received {value!r}.")
    if meta["lower_bound"] is not None and value < meta["lower_bound"]:
        raise ValueError(f"{name} must be >= {meta['lower_bound']}, received {value!r}.")
    if meta["upper_bound"] is not None and value > meta["upper_bound"]:
        raise ValueError(f"{name} must be <= {meta['upper_bound']}, received {value!r}.")


def check_settings(instance: Any, spell: str = "`{}`") -> None:
    """`check_setting` for every declared field of a settings dataclass instance."""
    for field in declared_fields(type(instance)):
        check_setting(field, getattr(instance, field.name), spell)


def _selected(settings_class: type, names: Optional[Iterable[str]]) -> List["dataclasses.Field[Any]"]:
    fields = declared_fields(settings_class)
    if names is None:
        return fields
    wanted = set(names)
    unknown = wanted - {field.name for field in fields}
    if unknown:
        raise ValueError(f"{sorted(unknown)} are not {settings_class.__name__} settings; expected some of "
                         f"{[field.name for field in fields]}.")
    return [field for field in fields if field.name in wanted]


def define_flags(settings_class: type, names: Optional[Iterable[str]] = None,
                 flag_values: Optional["flags.FlagValues"] = None, module_name: Optional[str] = None) -> None:
    """Defines absl flags for the declared fields of `settings_class` (all by default): the same name, default,
    bounds, choices and help. They belong to `module_name` (default: the class's module), so a script lists them in
    its `--help` with `flags.adopt_module_key_flags(<that module>)`. A flag already defined for the same module (two
    scripts of one process, e.g. a test importing both, asking for the same setting) is left as it is.

    Example:
        >>> from absl import flags
        >>> from tf_multiembed.data.build import BuildSettings
        >>> flag_values = flags.FlagValues()
        >>> define_flags(BuildSettings, ["seed", "split_fractions"], flag_values)
        >>> flag_values(["prog", "--split_fractions=0.9,0.05,0.05"]) and None
        >>> values_from_flags(BuildSettings, ["seed", "split_fractions"], flag_values)
        {'seed': 0, 'split_fractions': (0.9, 0.05, 0.05)}
    """
    from absl import flags

    flag_values = flags.FLAGS if flag_values is None else flag_values
    default: Any  # a field's default (a declared setting always has one)
    module_name = module_name or settings_class.__module__
    for field in _selected(settings_class, names):
        if field.name in flag_values and flag_values.find_module_defining_flag(field.name) == module_name:
            continue
        meta, default = field.metadata, field.default
        common = dict(name=field.name, default=default, help=setting_help(field), flag_values=flag_values,
                      module_name=module_name)
        bounds = dict(lower_bound=meta["lower_bound"], upper_bound=meta["upper_bound"])
        if meta["choices"] is not None:
            flags.DEFINE_enum(enum_values=list(meta["choices"]), **common)
        elif meta["kind"] is bool:
            flags.DEFINE_bool(**common)
        elif meta["kind"] is int:
            flags.DEFINE_integer(**common, **bounds)
        elif meta["kind"] is float:
            flags.DEFINE_float(**common, **bounds)
        elif meta["kind"] is tuple:
            flags.DEFINE_list(**{**common, "default": [str(item) for item in default]})
        else:
            flags.DEFINE_string(**common)


def values_from_flags(settings_class: type, names: Optional[Iterable[str]] = None,
                      flag_values: Optional["flags.FlagValues"] = None) -> Dict[str, Any]:
    """`{name: value}` of parsed flags defined by `define_flags` (tuples converted back from their list flags)."""
    from absl import flags

    flag_values = flags.FLAGS if flag_values is None else flag_values
    values: Dict[str, Any] = {}
    for field in _selected(settings_class, names):
        value = flag_values[field.name].value
        if field.metadata["kind"] is tuple:
            item_kind = field.metadata["item_kind"] or str
            try:
                value = tuple(item_kind(item) for item in value)
            except ValueError:
                raise ValueError(f"--{field.name} must be comma-separated values of type {item_kind.__name__}, "
                                 f"received {','.join(value)!r}.") from None
        values[field.name] = value
    return values


def arguments_doc(settings_class: type, indent: int = 8) -> str:
    """The declared settings as the lines of a Google-style `Args:` section (name: help)."""
    lines = []
    for field in declared_fields(settings_class):
        text = f"{field.name}: {setting_help(field)} Default {field.default!r}."
        lines.append(textwrap.fill(text, width=118, initial_indent=" " * indent,
                                   subsequent_indent=" " * (indent + 4)))
    return "\n".join(lines)


def with_settings_signature(function: Any, settings_class: type, marker: str = "{settings}") -> Any:
    """Gives `function(..., **settings)` the signature of its explicit parameters followed by the declared settings as
    keyword-only parameters with their defaults (what `help()` and `inspect.signature` show), and replaces the line
    holding `marker` in its docstring with the settings' help (`arguments_doc`). Returns `function`."""
    signature = inspect.signature(function)
    explicit = [parameter for parameter in signature.parameters.values()
                if parameter.kind is not inspect.Parameter.VAR_KEYWORD]
    declared = [inspect.Parameter(field.name, inspect.Parameter.KEYWORD_ONLY, default=field.default)
                for field in declared_fields(settings_class)]
    function.__signature__ = signature.replace(parameters=explicit + declared)
    if function.__doc__ and marker in function.__doc__:
        lines = function.__doc__.split("\n")
        index = next(number for number, line in enumerate(lines) if marker in line)
        indent = len(lines[index]) - len(lines[index].lstrip())
        lines[index] = arguments_doc(settings_class, indent)
        function.__doc__ = "\n".join(lines)
    return function
