"""Writes a benchmark's result table into a markdown document between two marker comments."""

import pathlib


def write_between_markers(path, begin: str, end: str, table: str) -> None:
    """Replaces the text between `begin` and `end` in the document at `path` with `table`."""
    document = pathlib.Path(path)
    text = document.read_text(encoding="utf-8")
    if begin not in text or end not in text:
        raise ValueError(f"{path} has no {begin} ... {end} markers to write the table between.")
    head, rest = text.split(begin, 1)
    _, tail = rest.split(end, 1)
    document.write_text(f"{head}{begin}\n{table}\n{end}{tail}", encoding="utf-8")
