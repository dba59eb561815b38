"""A built-in schema matched to the files at hand: the Kaggle layouts, and the CSV samples of tutorials.

Criteo's Kaggle files are tab-separated without a header; DeepCTR's `criteo_sample.txt` and most tutorials' Criteo
samples are comma-separated with a header line (`label,I1,...,I13,C1,...,C26`). `match_layout` reads the first line
of the first input file: when it names the schema's columns (under any of the usual delimiters) the schema is read
with that delimiter and header; when it has the schema's column count under another delimiter, with that delimiter.
Otherwise it raises one error that says which layout the schema expects and how to describe any other one (a schema
file, `Schema.to_file`; docs/data.md). The same columns are read either way, so the fields, ids and serving inputs are
the schema's.

`prepare_dataset` matches the built-in schemas given by name ("criteo", "avazu"); a `Schema` object or a schema file
is read exactly as written.
"""

import dataclasses
from typing import Iterable, Optional, Tuple, Union

from tf_multiembed import types
from tf_multiembed.data import schema as schema_lib
from tf_multiembed.data.readers.delimited import PathLike, expand_paths
from tf_multiembed.data.readers.lines import open_binary

DELIMITERS = ("\t", ",", ";", "|")
_DELIMITER_NAMES = {"\t": "tab", ",": "comma", ";": "semicolon", "|": "pipe", " ": "space"}


def _delimiter_name(delimiter: str) -> str:
    return _DELIMITER_NAMES.get(delimiter, repr(delimiter))


def describe_layout(schema: schema_lib.Schema) -> str:
    """The delimited layout a schema reads, in words.

    Example:
        >>> describe_layout(schema_lib.criteo_schema())
        'tab-separated lines without a header, 40 columns (label, I1, I2, ..., C25, C26)'
    """
    header = "with a header line" if schema.has_header else "without a header"
    columns = schema.column_names or schema.required_columns
    shown = ", ".join(columns) if len(columns) <= 6 else ", ".join(columns[:3]) + ", ..., " + ", ".join(columns[-2:])
    count = f"{len(columns)} columns" if schema.column_names else f"columns including {len(columns)} named"
    return f"{_delimiter_name(schema.delimiter)}-separated lines {header}, {count} ({shown})"


def first_line(path: types.PathLike, encoding: str = "utf-8") -> Optional[str]:
    """The first line of a (possibly gzip-compressed) text file, without its line end and byte-order mark; None for
    an empty file."""
    with open_binary(path) as handle:
        data = handle.readline(1 << 20)
    if not data:
        return None
    return data.decode(encoding, errors="replace").rstrip("\r\n").lstrip("\ufeff")


def _names(line: str, delimiter: str) -> Tuple[str, ...]:
    return tuple(cell.strip().strip('"') for cell in line.split(delimiter))


def match_layout(schema: schema_lib.Schema,
                 input_paths: Union[PathLike, Iterable[PathLike]]) -> Tuple[schema_lib.Schema, Optional[str]]:
    """(the schema with the delimiter and header of the input files, a note saying what changed or None).

    Args:
        schema: a delimited-reader schema (other readers are returned unchanged).
        input_paths: the input files (paths or glob patterns); the first existing one is looked at.

    Raises:
        ValueError: the first line fits neither the schema's layout nor a header naming its columns, nor its column
            count under another usual delimiter: the message says the expected layout and how to describe others.

    Example:
        >>> schema, note = match_layout(criteo_schema(), "criteo_sample.txt")  # doctest: +SKIP
        >>> schema.delimiter, schema.has_header  # doctest: +SKIP
        (',', True)
    """
    if schema.reader != schema_lib.DELIMITED_READER:
        return schema, None
    paths = [path for path in expand_paths(input_paths) if path.is_file()]
    if not paths:
        return schema, None  # the build reports missing files
    path = paths[0]
    line = first_line(path, schema.encoding)
    if line is None or not line.strip():
        return schema, None  # the build reports empty files and blank lines
    required = set(schema.required_columns)
    own = _names(line, schema.delimiter)
    columns = schema.column_names or ()  # a headerless schema always has them
    if schema.has_header and required <= set(own) and (schema.column_names is None or own == schema.column_names):
        return schema, None
    if not schema.has_header and len(own) == len(columns) and not required <= set(own):
        return schema, None
    for delimiter in (schema.delimiter,) + tuple(d for d in DELIMITERS if d != schema.delimiter):
        names = _names(line, delimiter)
        if len(names) > 1 and required <= set(names):
            quoted = line.lstrip().startswith('"')
            adapted = dataclasses.replace(schema, delimiter=delimiter, has_header=True, column_names=None,
                                          quotechar='"' if quoted else schema.quotechar)
            return adapted, (f"{path}: read as {_delimiter_name(delimiter)}-separated lines with a header line (it "
                             f"names the schema's columns), not as {describe_layout(schema)}.")
    if not schema.has_header:
        for delimiter in DELIMITERS:
            if delimiter != schema.delimiter and len(line.split(delimiter)) == len(columns):
                adapted = dataclasses.replace(schema, delimiter=delimiter)
                return adapted, (f"{path}: read as {_delimiter_name(delimiter)}-separated lines without a header "
                                 f"({len(columns)} columns), not {_delimiter_name(schema.delimiter)}-"
                                 f"separated.")
    shown = line if len(line) <= 80 else line[:80] + "..."
    raise ValueError(
        f"{path}: the first line does not fit the {schema.name!r} schema, which reads {describe_layout(schema)}; "
        f"it has {len(own)} {_delimiter_name(schema.delimiter)}-separated cell(s): {shown!r}. To read another "
        f"layout, describe it in a schema file (e.g. `{_writer(schema)}.to_file('my_schema.yaml')`, then edit "
        f"delimiter, has_header, column_names and fields) and pass it as --dataset=custom --schema=my_schema.yaml or "
        f"prepare_dataset('my_schema.yaml', ...); docs/data.md has the keys.")


def _writer(schema: schema_lib.Schema) -> str:
    if schema.name in schema_lib.BUILT_IN_SCHEMAS:
        return f"tf_multiembed.data.{schema.name}_schema()"
    return "schema"


def match_built_in(spec: Union[schema_lib.Schema, types.PathLike],
                   input_paths: Union[PathLike, Iterable[PathLike]]) -> Tuple[schema_lib.Schema, Optional[str]]:
    """`resolve_schema(spec)`, matched to the files (`match_layout`) when `spec` names a built-in delimited schema
    ("criteo", "avazu"); any other spec is resolved as written (note None)."""
    schema = schema_lib.resolve_schema(spec)
    if isinstance(spec, str) and spec in schema_lib.BUILT_IN_SCHEMAS:
        return match_layout(schema, input_paths)
    return schema, None

