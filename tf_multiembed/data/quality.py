"""Bad-input accounting: skipped lines are counted by reason, the first few are named by file and line, strict mode
stops at the first one, and a run that skips too large a share fails instead of training on garbage.

Skip reasons (keys of `IngestReport.skipped_by_reason`):

- `wrong_column_count`: a line that does not split into the expected number of columns (blank lines included);
- `bad_encoding`: a line that is not valid text in the file's encoding (UTF-8 by default);
- `bad_quoting`: a quoted cell that is not closed on its line (delimited files read with a quote character);
- `non_numeric`: a numeric field whose cell is not a number;
- `non_finite`: a numeric field with a treatment (docs/inputs.md) whose cell is NaN or infinite (an empty cell is a
  missing value, counted per field in `numeric_missing`, not a skip);
- `bad_label`: a label that is not "0"/"1" (binary rule), not a number (threshold rule) or none of the declared
  class values (values rule);
- `bad_time`: a time column cell that is not a number (read only for the "time" split);
- `unknown_user` / `unknown_item`: a MovieLens rating whose user or item is absent from the user or item table;
- `bad_record`: a TFRecord record that is not a `tf.train.Example`, or whose feature has another type than in the
  file's first records;
- `multiple_values`: a list of several values (Parquet list column, tf.Example feature) for a single-valued field.

In Parquet and TFRecord inputs the "line" of a message is the 1-based row or record number in its file.

Missing and empty input files are listed separately (`files_missing`, `files_empty`).

The errors that stop a build (`BadInputTracker.check`) end with what to change for the most frequent reason: a hint
from what was seen (`label_hint`: labels in {-1, 1} suggest the threshold rule, class names the values rule, cells
holding several columns the delimiter) or the reason's general advice (`ADVICE`).
"""

import collections
import dataclasses
import warnings
from typing import Any, Dict, List, Optional, Sequence

ADVICE = {
    "wrong_column_count": "Check the schema's reader settings (delimiter, has_header, column_names) against the files; "
                          "any other layout is described by a schema file (docs/data.md).",
    "bad_encoding": "Set the schema's `encoding` to the files' text encoding.",
    "bad_quoting": "Check the schema's `quotechar` (None reads quote characters as text).",
    "bad_label": "Check the schema's label rule (docs/data.md: binary, threshold or values).",
    "non_numeric": "A numeric field holds text: declare it `kind: categorical`, or check its `column`.",
    "non_finite": "A numeric field holds NaN or infinity: leave the cell empty for a missing value.",
}

REASON_TEXT = {
    "wrong_column_count": "wrong number of columns",
    "bad_encoding": "not valid text in the file's encoding",
    "bad_quoting": "unterminated quoted cell",
    "non_numeric": "not a number in a numeric field",
    "non_finite": "NaN or infinity in a numeric field",
    "bad_label": "bad label",
    "bad_time": "bad time value",
    "unknown_user": "user absent from the user table",
    "unknown_item": "item absent from the item table",
    "bad_record": "not a readable tf.train.Example record",
    "multiple_values": "several values in a single-valued field",
}


class BadInputError(ValueError):
    """Raised in strict mode at the first bad line, or for a missing or empty input file."""


class TooManyBadRowsError(ValueError):
    """Raised when the share of skipped lines exceeds the allowed maximum."""


class SkippedInputWarning(UserWarning):
    """Warns that lines or files were skipped; the message names the first few by file and line."""


@dataclasses.dataclass(frozen=True)
class BadLine:
    """One skipped line: where it is, why it was skipped, and what was found."""

    path: str
    line_number: int
    reason: str
    detail: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line_number}: {REASON_TEXT.get(self.reason, self.reason)} ({self.detail})"


def _shorten(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def label_hint(column: str, rule: str, values: Sequence[str]) -> str:
    """What to change in the schema's label rule, judged from a few label cells the rule could not read.

    Example:
        >>> label_hint("label", "binary", ["-1"])[:66]
        "The label column 'label' holds numbers other than 0/1 (e.g. '-1'):"
    """
    values = [str(value) for value in values][:5]
    shown = ", ".join(repr(value) for value in values)
    if any(len(value) > 40 or any(mark in value for mark in "\t,;|") for value in values):
        return (f"The label cells of column {column!r} look like several columns (e.g. {_shorten(shown, 60)}): check "
                f"the schema's `delimiter`.")
    if values and all(value.strip() == "" for value in values):
        return (f"The label column {column!r} is empty in these rows: the files lack the label there (a TFRecord "
                f"feature missing from a record reads as empty).")
    present = [value for value in values if value.strip()]
    if rule == "values":
        return (f"The label column {column!r} holds values the schema lists neither as `positive` nor as `negative` "
                f"(e.g. {shown}): add them to one of the lists (values are compared without surrounding spaces).")
    if all(_is_number(value) for value in present):
        return (f"The label column {column!r} holds numbers other than 0/1 (e.g. {shown}): use `rule: threshold` "
                f"with a `threshold` (label = value >= threshold; `threshold: 0` for -1/1 labels, e.g. 4 for 1-5 "
                f"ratings).")
    names = ", ".join(repr(value) for value in sorted({value.strip() for value in present}))
    return (f"The label column {column!r} holds class names (seen: {names}): list them with the values rule, "
            f"`label: {{column: {column}, positive: [<the clicked class>], negative: [<the others>]}}` (values "
            f"compared without surrounding spaces; any other value is then a bad label).")


class BadInputTracker:
    """Counts the lines a pass reads and skips, and applies the strict / lenient policy.

    Args:
        strict: raise `BadInputError` at the first bad line or missing/empty file instead of skipping it.
        max_examples: how many bad lines to remember (by file and line) for the warning and the report.

    Example:
        >>> tracker = BadInputTracker()
        >>> tracker.count_lines(3)
        >>> tracker.skip("a.tsv", 2, "bad_label", "label '7'")
        >>> tracker.rows_valid, dict(tracker.skipped_by_reason)
        (2, {'bad_label': 1})
    """

    def __init__(self, strict: bool = False, max_examples: int = 5):
        self.strict = bool(strict)
        self.max_examples = int(max_examples)
        self.lines_read = 0
        self.header_lines = 0
        self.skipped_by_reason: collections.Counter[str] = collections.Counter()
        self.examples: List[BadLine] = []
        self.files_read: List[str] = []
        self.files_missing: List[str] = []
        self.files_empty: List[str] = []
        self.values_truncated: collections.Counter[str] = collections.Counter()
        self.hints: Dict[str, str] = {}

    def hint(self, reason: str, text: str) -> None:
        """Keeps the first hint of what to change for lines skipped for `reason` (shown by `check`)."""
        self.hints.setdefault(reason, text)

    def advice(self) -> str:
        """What to change for the most frequent skip reason: its hint, else the reason's general advice."""
        if not self.skipped_by_reason:
            return ""
        reason = max(sorted(self.skipped_by_reason), key=self.skipped_by_reason.__getitem__)
        return self.hints.get(reason) or ADVICE.get(reason, ADVICE["wrong_column_count"])

    def count_lines(self, count: int) -> None:
        """Records `count` data lines (good or bad; header lines excluded) as read."""
        self.lines_read += count

    def skip(self, path: str, line_number: int, reason: str, detail: str) -> None:
        """Skips one line, or raises `BadInputError` in strict mode."""
        bad_line = BadLine(str(path), int(line_number), reason, _shorten(detail))
        if self.strict:
            raise BadInputError(f"{bad_line}. Strict mode stops at the first bad line; fix the input or run without "
                                f"strict mode to skip and count such lines.")
        self.skipped_by_reason[reason] += 1
        if len(self.examples) < self.max_examples:
            self.examples.append(bad_line)

    def missing_file(self, path: str) -> None:
        if self.strict:
            raise BadInputError(f"Input file {path} does not exist.")
        self.files_missing.append(str(path))

    def empty_file(self, path: str) -> None:
        if self.strict:
            raise BadInputError(f"Input file {path} has no data lines.")
        self.files_empty.append(str(path))

    @property
    def rows_skipped(self) -> int:
        return sum(self.skipped_by_reason.values())

    @property
    def rows_valid(self) -> int:
        return self.lines_read - self.rows_skipped

    def warn_if_skipped(self) -> None:
        """Emits one `SkippedInputWarning` summarising skipped lines and files (nothing when all was read)."""
        parts = []
        if self.rows_skipped:
            share = self.rows_skipped / max(self.lines_read, 1)
            reasons = ", ".join(f"{reason}: {count}" for reason, count in sorted(self.skipped_by_reason.items()))
            first = "; ".join(str(bad_line) for bad_line in self.examples)
            parts.append(f"skipped {self.rows_skipped} of {self.lines_read} lines ({share:.2%}; {reasons}). "
                         f"First: {first}")
        if self.files_missing:
            parts.append(f"missing input files skipped: {self.files_missing}")
        if self.files_empty:
            parts.append(f"empty input files skipped: {self.files_empty}")
        if self.values_truncated:
            parts.append(f"multi-valued cells with more values than slots (extra values dropped): "
                         f"{dict(self.values_truncated)}")
        if parts:
            warnings.warn("Bad input: " + " | ".join(parts), SkippedInputWarning, stacklevel=3)

    def check(self, max_skipped_fraction: float) -> None:
        """Fails when nothing valid was read, or when the skipped share exceeds `max_skipped_fraction`."""
        first = "; ".join(str(bad_line) for bad_line in self.examples[:2])
        if self.rows_valid == 0:
            skipped = f"{self.rows_skipped} skipped" + (f" (by reason: {dict(self.skipped_by_reason)}; first: "
                                                        f"{first})" if self.rows_skipped else "")
            raise BadInputError(
                f"No valid rows were read from {self.files_read or 'the inputs'} ({self.lines_read} data lines read, "
                f"{skipped}, missing files: {self.files_missing}, empty files: {self.files_empty}). "
                f"{self.advice()}".rstrip())
        share = self.rows_skipped / self.lines_read
        if share > max_skipped_fraction:
            raise TooManyBadRowsError(
                f"{self.rows_skipped} of {self.lines_read} lines ({share:.2%}) were bad, more than the allowed "
                f"{max_skipped_fraction:.2%} (max_skipped_fraction); by reason: {dict(self.skipped_by_reason)}. "
                f"First: {first}. {self.advice()}")


@dataclasses.dataclass
class IngestReport:
    """What a build read, skipped and wrote. `lines_read = rows_valid + rows_skipped` and
    `rows_valid = sum(rows_written.values())` hold for every build (`check_totals` verifies them).

    Attributes:
        files_read: input files read.
        files_missing: input files that did not exist (skipped).
        files_empty: input files without data lines (skipped).
        header_lines: header lines read (not data).
        lines_read: data lines read, good or bad.
        rows_valid: lines that became rows.
        rows_skipped: lines skipped as bad input.
        skipped_by_reason: skipped lines per reason (see this module's docstring).
        first_bad_lines: the first few skipped lines as "file:line: reason (detail)".
        values_truncated: per multi_categorical field, cells that had more values than slots.
        rows_written: rows written per split.
        passes: per build step ("count", "encode", "shards"), its seconds, rows/s and input bytes read (empty
            when unknown).
        numeric_missing: per numeric field with a treatment, the valid rows whose value was missing (empty, and
            left out of `to_dict`, without such fields).
    """

    files_read: List[str]
    files_missing: List[str]
    files_empty: List[str]
    header_lines: int
    lines_read: int
    rows_valid: int
    rows_skipped: int
    skipped_by_reason: Dict[str, int]
    first_bad_lines: List[str]
    values_truncated: Dict[str, int]
    rows_written: Dict[str, int]
    passes: Dict[str, Dict[str, float]] = dataclasses.field(default_factory=dict)
    numeric_missing: Dict[str, int] = dataclasses.field(default_factory=dict)

    @classmethod
    def from_tracker(cls, tracker: BadInputTracker, rows_written: Optional[Dict[str, int]] = None) -> "IngestReport":
        return cls(files_read=list(tracker.files_read), files_missing=list(tracker.files_missing),
                   files_empty=list(tracker.files_empty), header_lines=tracker.header_lines,
                   lines_read=tracker.lines_read, rows_valid=tracker.rows_valid, rows_skipped=tracker.rows_skipped,
                   skipped_by_reason=dict(tracker.skipped_by_reason),
                   first_bad_lines=[str(bad_line) for bad_line in tracker.examples],
                   values_truncated=dict(tracker.values_truncated), rows_written=dict(rows_written or {}))

    def check_totals(self) -> None:
        """Raises ValueError when the counts do not add up (that would be a bug, never bad input)."""
        if self.lines_read != self.rows_valid + self.rows_skipped:
            raise ValueError(f"Ingest counts do not add up: {self.lines_read} lines read != {self.rows_valid} valid "
                             f"+ {self.rows_skipped} skipped.")
        if self.rows_written and self.rows_valid != sum(self.rows_written.values()):
            raise ValueError(f"Ingest counts do not add up: {self.rows_valid} valid rows != rows written "
                             f"{self.rows_written}.")

    def to_dict(self) -> Dict[str, Any]:
        data = dataclasses.asdict(self)
        if not data["numeric_missing"]:
            del data["numeric_missing"]
        return data

    @classmethod
    def from_dict(cls, data: Dict[str, Any]) -> "IngestReport":
        """The report of `to_dict` (keys it does not know are an error; `passes` may be absent)."""
        fields = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(data) - fields)
        if unknown:
            raise ValueError(f"IngestReport: unknown keys {unknown}; expected keys among {sorted(fields)}.")
        return cls(**data)

    def summary(self) -> str:
        written = ", ".join(f"{split} {rows}" for split, rows in self.rows_written.items())
        return (f"read {self.lines_read} lines from {len(self.files_read)} file(s): {self.rows_valid} valid, "
                f"{self.rows_skipped} skipped {self.skipped_by_reason or ''}; written: {written}")

