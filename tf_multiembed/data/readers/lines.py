"""Reading text files line by line in bounded chunks: plain or gzip (detected by content), with line numbers, and
with lines that fail to decode set aside for the bad-input accounting instead of stopping the read."""

import dataclasses
import gzip
import pathlib
from typing import BinaryIO, Iterator, List, Sequence, Tuple

GZIP_MAGIC = b"\x1f\x8b"
DEFAULT_CHUNK_BYTES = 1 << 20

# (line_number, reason, detail): a line a reader rejects before any schema is applied.
Rejection = Tuple[int, str, str]


def is_gzip(path) -> bool:
    """Whether the file starts with the gzip magic bytes (the extension is not trusted)."""
    with open(path, "rb") as handle:
        return handle.read(2) == GZIP_MAGIC


def open_binary(path) -> BinaryIO:
    """Opens a plain or gzip-compressed file for binary reading."""
    return gzip.open(path, "rb") if is_gzip(path) else open(path, "rb")


@dataclasses.dataclass
class LineChunk:
    """Decoded lines of one file, without their line ends.

    Attributes:
        line_numbers: 1-based line numbers of `texts`.
        texts: the decoded lines.
        rejected: lines that could not be decoded, as (line_number, "bad_encoding", detail).
    """

    line_numbers: Sequence[int]
    texts: List[str]
    rejected: List[Rejection]


def _strip_line_end(text: str) -> str:
    if text.endswith("\n"):
        text = text[:-1]
    return text[:-1] if text.endswith("\r") else text


def iter_line_chunks(path, encoding: str = "utf-8",
                     chunk_bytes: int = DEFAULT_CHUNK_BYTES) -> Iterator[LineChunk]:
    """Yields the lines of a file in chunks of about `chunk_bytes`, so memory does not grow with the file.

    Only "\\n" ends a line ("\\r\\n" is accepted); the encoding must keep "\\n" a single byte (UTF-8, Latin-1, ...).

    Example:
        >>> for chunk in iter_line_chunks("train.txt.gz"):  # doctest: +SKIP
        ...     print(chunk.line_numbers[0], len(chunk.texts))
    """
    path = pathlib.Path(path)
    next_line = 1
    with open_binary(path) as handle:
        while True:
            try:
                lines = handle.readlines(chunk_bytes)
            except (OSError, EOFError) as error:  # truncated or corrupt gzip stream
                raise ValueError(f"{path}: cannot read the file after line {next_line - 1}: {error}") from None
            if not lines:
                return
            first = next_line
            next_line += len(lines)
            try:
                decoded = b"".join(lines).decode(encoding)
                texts = decoded.split("\n")
                if texts[-1] == "":  # the chunk ended with a line end
                    texts.pop()
                if "\r" in decoded:
                    texts = [text[:-1] if text.endswith("\r") else text for text in texts]
                if len(texts) == len(lines):
                    yield LineChunk(range(first, next_line), texts, [])
                    continue
            except UnicodeDecodeError:
                pass
            # Slow path: some line does not decode (or decoding changed the line count); decode line by line.
            line_numbers, texts, rejected = [], [], []
            for offset, line in enumerate(lines):
                try:
                    text = _strip_line_end(line.decode(encoding))
                except UnicodeDecodeError as error:
                    rejected.append((first + offset, "bad_encoding", f"{encoding} decoding failed: {error.reason} at "
                                                                     f"byte {error.start}"))
                    continue
                line_numbers.append(first + offset)
                texts.append(text)
            yield LineChunk(line_numbers, texts, rejected)
