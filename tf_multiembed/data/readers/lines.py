"""Reading text files in bounded blocks of whole lines: plain or gzip (detected by content), with line numbers, a
content digest taken on the way, and lines that fail to decode set aside for the bad-input accounting."""

import dataclasses
import gzip
import hashlib
import pathlib
from typing import BinaryIO, Iterator, List, Optional, Sequence, Tuple

from tf_multiembed.data.readers.blocks import Rejection

GZIP_MAGIC = b"\x1f\x8b"
DEFAULT_CHUNK_BYTES = 1 << 20
DEFAULT_BLOCK_BYTES = 1 << 23  # the columnar reader's blocks: about 33k Criteo lines


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


def count_lines(data: bytes) -> int:
    """Lines in a block of whole lines (a last line without a line end counts)."""
    return data.count(b"\n") + (1 if data and not data.endswith(b"\n") else 0)


def decode_lines(data: bytes, first_line: int, encoding: str = "utf-8") -> LineChunk:
    """Decodes a block of whole lines; a line that is not valid text in `encoding` is rejected as "bad_encoding".

    Only "\\n" ends a line (one "\\r" before it is dropped); the encoding must keep "\\n" a single byte.
    """
    num_lines = count_lines(data)
    try:
        decoded = data.decode(encoding)
        texts = decoded.split("\n")
        if texts[-1] == "":  # the block ended with a line end
            texts.pop()
        if "\r" in decoded:
            texts = [text[:-1] if text.endswith("\r") else text for text in texts]
        if len(texts) == num_lines:
            return LineChunk(range(first_line, first_line + num_lines), texts, [])
    except UnicodeDecodeError:
        pass
    # Slow path: some line does not decode (or decoding changed the line count); decode line by line.
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    line_numbers, texts, rejected = [], [], []
    for offset, line in enumerate(lines):
        try:
            text = _strip_line_end(line.decode(encoding))
        except UnicodeDecodeError as error:
            rejected.append((first_line + offset, "bad_encoding",
                             f"{encoding} decoding failed: {error.reason} at byte {error.start}"))
            continue
        line_numbers.append(first_line + offset)
        texts.append(text)
    return LineChunk(line_numbers, texts, rejected)


class _HashingReader:
    """A file object that hashes every byte read through it (gzip reads the compressed file through it)."""

    def __init__(self, raw: BinaryIO, digest):
        self._raw = raw
        self._digest = digest

    def read(self, size: int = -1) -> bytes:
        data = self._raw.read(size)
        self._digest.update(data)
        return data

    def readable(self) -> bool:
        return True


def iter_line_blocks(path, block_bytes: int = DEFAULT_BLOCK_BYTES,
                     digest: Optional["hashlib._Hash"] = None) -> Iterator[Tuple[int, bytes, int, int]]:
    """Yields `(first line number, block of whole lines as bytes, its lines, input bytes consumed)` of a plain or
    gzip file,
    reading about `block_bytes` at a time; with `digest` (a hashlib object), every byte of the file (compressed
    bytes for gzip) is hashed on the way, so a content digest costs no extra read.

    Raises:
        ValueError: naming the file and the last good line, when a gzip stream is truncated or corrupt.
    """
    path = pathlib.Path(path)
    with open(path, "rb") as raw:
        source = _HashingReader(raw, digest) if digest is not None else raw
        compressed = raw.read(2) == GZIP_MAGIC
        raw.seek(0)
        # gzip wants a seekable file object, but only seeks on rewind, which never happens here.
        stream = gzip.GzipFile(fileobj=source, mode="rb") if compressed else source  # type: ignore[arg-type]
        first_line, carry, consumed = 1, b"", 0
        while True:
            try:
                data = stream.read(block_bytes)
            except (OSError, EOFError) as error:  # truncated or corrupt gzip stream
                raise ValueError(f"{path}: cannot read the file after line {first_line - 1}: {error}") from None
            if not data:
                if carry:
                    yield first_line, carry, count_lines(carry), raw.tell() - consumed
                break
            if carry:
                data = carry + data
            cut = data.rfind(b"\n") + 1
            if cut == 0:
                carry = data
                continue
            block, carry = data[:cut], data[cut:]
            lines = block.count(b"\n")
            position = raw.tell()
            yield first_line, block, lines, position - consumed
            consumed = position
            first_line += lines
        if digest is not None:
            while source.read(1 << 20):  # bytes after the gzip stream, if any, belong to the file's content too
                pass


def file_digest(path, chunk_bytes: int = 1 << 24) -> str:
    """The sha256 hex digest of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while True:
            data = handle.read(chunk_bytes)
            if not data:
                return digest.hexdigest()
            digest.update(data)


def iter_line_chunks(path, encoding: str = "utf-8",
                     chunk_bytes: int = DEFAULT_CHUNK_BYTES) -> Iterator[LineChunk]:
    """Yields the decoded lines of a file in chunks of about `chunk_bytes`, so memory does not grow with the file.

    Only "\\n" ends a line ("\\r\\n" is accepted); the encoding must keep "\\n" a single byte (UTF-8, Latin-1, ...).

    Example:
        >>> for chunk in iter_line_chunks("train.txt.gz"):  # doctest: +SKIP
        ...     print(chunk.line_numbers[0], len(chunk.texts))
    """
    for first_line, data, _, _ in iter_line_blocks(path, chunk_bytes):
        yield decode_lines(data, first_line, encoding)
