"""MovieLens-100K in either layout, as one stream of rating rows joined with their user and item attributes.

- GroupLens (what users download): `u.data` (user, item, rating, timestamp; tab-separated), `u.user`
  (user|age|gender|occupation|zip), `u.item` (item|title|release date|video date|URL|19 genre flags; Latin-1), and
  optionally `u.genre` (genre names in flag order).
- RecBole atomic files (../shared/data/ml-100k): `ml-100k.inter`, `ml-100k.user`, `ml-100k.item`, tab-separated
  with typed headers such as `user_id:token`; the item's `class` column holds the genres separated by spaces.

Both give rows with the columns of `COLUMNS`: the release year is the year of the GroupLens release date, and the
genres are the names of the set flags joined by spaces in flag order, as RecBole writes them. Known differences are
RecBole's: item 267's empty GroupLens release date is "unkonwn" there, and item 1412's release year is "V" there
(apparently taken from a "(V)" suffix of its GroupLens title); both are kept as the files give them."""

import pathlib
import warnings
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

from tf_multiembed.data.quality import BadInputTracker, SkippedInputWarning
from tf_multiembed.data.readers.blocks import ColumnBlock, block_from_rows
from tf_multiembed.data.readers.delimited import DelimitedReader, RowChunk, check_columns
from tf_multiembed.data.readers.lines import DEFAULT_CHUNK_BYTES, file_digest

RATING_COLUMN = "rating"
TIMESTAMP_COLUMN = "timestamp"
USER_COLUMNS = ("age", "gender", "occupation", "zip_code")
ITEM_COLUMNS = ("movie_title", "release_year", "genres")
COLUMNS = ("user_id", "item_id", RATING_COLUMN, TIMESTAMP_COLUMN) + USER_COLUMNS + ITEM_COLUMNS

GROUPLENS = "grouplens"
RECBOLE = "recbole"
GROUPLENS_FILES = ("u.data", "u.user", "u.item")
RECBOLE_FILES = ("ml-100k.inter", "ml-100k.user", "ml-100k.item")
GROUPLENS_GENRES = ("unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary",
                    "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller",
                    "War", "Western")
_GROUPLENS_ENCODING = "latin-1"  # the GroupLens files are ISO-8859-1 (titles with accents)


class _RecBoleReader(DelimitedReader):
    """RecBole atomic files: tab-separated, header cells typed as `name:type`."""

    def _header(self, path, text):
        names = tuple(cell.strip().split(":", 1)[0] for cell in text.split(self.delimiter))
        check_columns(path, names, self.required_columns, None)
        return names


def detect_layout(path) -> Tuple[str, pathlib.Path]:
    """The layout ("grouplens" or "recbole") and folder of MovieLens-100K at `path` (the folder or a file in it).

    Example:
        >>> detect_layout("../shared/data/ml-100k")  # doctest: +SKIP
        ('recbole', PosixPath('../shared/data/ml-100k'))
    """
    folder = pathlib.Path(path)
    if folder.is_file():
        folder = folder.parent
    if (folder / RECBOLE_FILES[0]).is_file():
        return RECBOLE, folder
    if (folder / GROUPLENS_FILES[0]).is_file():
        return GROUPLENS, folder
    raise ValueError(f"{folder}: no MovieLens-100K found; expected {list(GROUPLENS_FILES)} (GroupLens layout) or "
                     f"{list(RECBOLE_FILES)} (RecBole layout) in this folder.")


class MovieLensReader:
    """Reads MovieLens-100K ratings joined with user and item attributes, as rows of `COLUMNS`.

    Args:
        path: the MovieLens-100K folder (or a file in it), in the GroupLens or the RecBole layout.
        chunk_bytes: about how many bytes of ratings to read at a time.
        required_columns: the columns `read_blocks` yields (default: all of `COLUMNS`).

    Example:
        >>> reader = MovieLensReader("../shared/data/ml-100k")  # doctest: +SKIP
        >>> next(reader.read(BadInputTracker())).rows[0]  # doctest: +SKIP
        ['196', '242', '3', '881250949', '49', 'M', 'writer', '55105', 'Kolya', '1996', 'Comedy']
    """

    def __init__(self, path, chunk_bytes: int = DEFAULT_CHUNK_BYTES, required_columns: Sequence[str] = ()):
        paths = [path] if isinstance(path, (str, pathlib.Path)) else list(path)
        if len(paths) != 1:
            raise ValueError(f"MovieLensReader reads one MovieLens-100K folder, got {len(paths)} paths: {paths}.")
        self.path = pathlib.Path(paths[0])
        self.chunk_bytes = int(chunk_bytes)
        unknown = [column for column in required_columns if column not in COLUMNS]
        if unknown:
            raise ValueError(f"MovieLens-100K has no columns {unknown}; its columns are {list(COLUMNS)}.")
        self.required_columns = tuple(required_columns) or COLUMNS

    def _files(self) -> Tuple[str, pathlib.Path, List[pathlib.Path]]:
        layout, folder = detect_layout(self.path)
        names = RECBOLE_FILES if layout == RECBOLE else GROUPLENS_FILES
        files = [folder / name for name in names]
        missing = [str(file) for file in files if not file.is_file()]
        if missing:
            raise ValueError(f"{folder}: the {layout} layout of MovieLens-100K also needs {missing}.")
        if layout == GROUPLENS and (folder / "u.genre").is_file():
            files.append(folder / "u.genre")
        return layout, folder, files

    def input_files(self) -> List[pathlib.Path]:
        """The files this reader reads (for cache keys); the folder itself when it holds no MovieLens files."""
        if not self.path.exists():
            return [self.path]
        return self._files()[2]

    def read(self, tracker: BadInputTracker) -> Iterator[RowChunk]:
        """Yields joined rating rows; ratings whose user or item is unknown are rejected as bad input."""
        if not self.path.exists():
            tracker.missing_file(str(self.path))
            return
        layout, folder, files = self._files()
        side_tracker = BadInputTracker(strict=tracker.strict)
        ratings: DelimitedReader  # RecBole's files are read by a subclass
        if layout == RECBOLE:
            users = _table(_RecBoleReader(files[1], delimiter="\t", required_columns=("user_id",) + USER_COLUMNS),
                           "user_id", USER_COLUMNS, side_tracker)
            items = _table(_RecBoleReader(files[2], delimiter="\t",
                                          required_columns=("item_id", "movie_title", "release_year", "class")),
                           "item_id", ("movie_title", "release_year", "class"), side_tracker)
            ratings = _RecBoleReader(files[0], delimiter="\t", chunk_bytes=self.chunk_bytes,
                                     required_columns=("user_id", "item_id", RATING_COLUMN, TIMESTAMP_COLUMN))
        else:
            users = _table(DelimitedReader(files[1], delimiter="|", has_header=False,
                                           column_names=("user_id",) + USER_COLUMNS, encoding=_GROUPLENS_ENCODING),
                           "user_id", USER_COLUMNS, side_tracker)
            genres = _grouplens_genres(files[3]) if len(files) > 3 else GROUPLENS_GENRES
            item_columns = ("item_id", "movie_title", "release_date", "video_release_date", "url") + tuple(
                f"genre_{index}" for index in range(len(genres)))
            raw_items = _table(DelimitedReader(files[2], delimiter="|", has_header=False, column_names=item_columns,
                                               encoding=_GROUPLENS_ENCODING),
                               "item_id", item_columns[1:], side_tracker)
            items = {item: _grouplens_item(values, genres) for item, values in raw_items.items()}
            ratings = DelimitedReader(files[0], delimiter="\t", has_header=False, chunk_bytes=self.chunk_bytes,
                                      column_names=("user_id", "item_id", RATING_COLUMN, TIMESTAMP_COLUMN),
                                      encoding=_GROUPLENS_ENCODING)
        tracker.files_read.extend(side_tracker.files_read)
        if side_tracker.rows_skipped:
            warnings.warn(f"MovieLens user/item tables: skipped {side_tracker.rows_skipped} bad lines (their ratings "
                          f"are skipped as unknown users/items); first: "
                          f"{'; '.join(str(bad) for bad in side_tracker.examples)}", SkippedInputWarning, stacklevel=2)
        for chunk in ratings.read(tracker):
            index = [chunk.column_names.index(column)
                     for column in ("user_id", "item_id", RATING_COLUMN, TIMESTAMP_COLUMN)]
            rows, line_numbers, rejected = [], [], list(chunk.rejected)
            for row, line_number in zip(chunk.rows, chunk.line_numbers):
                user_id, item_id, rating, timestamp = (row[i] for i in index)
                user, item = users.get(user_id), items.get(item_id)
                if user is None:
                    rejected.append((line_number, "unknown_user", f"user_id {user_id!r}"))
                elif item is None:
                    rejected.append((line_number, "unknown_item", f"item_id {item_id!r}"))
                else:
                    rows.append([user_id, item_id, rating, timestamp, *user, *item])
                    line_numbers.append(line_number)
            yield RowChunk(chunk.path, COLUMNS, line_numbers, rows, sorted(rejected))

    def read_blocks(self, tracker: BadInputTracker, digests: Optional[dict] = None) -> Iterator[ColumnBlock]:
        """`read` as `ColumnBlock`s of the required columns; with `digests`, stores each file's sha256 there."""
        for chunk in self.read(tracker):
            yield block_from_rows(chunk.path, chunk.column_names, self.required_columns, chunk.rows,
                                  chunk.line_numbers, chunk.rejected)
        if digests is not None and self.path.exists():
            digests.update((str(file), file_digest(file)) for file in self._files()[2])


def _table(reader: DelimitedReader, key: str, columns: Sequence[str],
           tracker: BadInputTracker) -> Dict[str, Tuple[str, ...]]:
    """Reads a small side table into {key: values of `columns`}; bad lines are counted on `tracker`."""
    table = {}
    for chunk in reader.read(tracker):
        for line_number, reason, detail in chunk.rejected:
            tracker.skip(chunk.path, line_number, reason, detail)
        key_index = chunk.column_names.index(key)
        indices = [chunk.column_names.index(column) for column in columns]
        for row in chunk.rows:
            table[row[key_index]] = tuple(row[i] for i in indices)
    return table


def _grouplens_genres(path: pathlib.Path) -> Tuple[str, ...]:
    """Genre names from `u.genre` ("name|flag index" lines) in flag order."""
    pairs = []
    for line_number, line in enumerate(path.read_text(encoding=_GROUPLENS_ENCODING).split("\n"), start=1):
        if line.strip():
            name, _, index = line.strip().rpartition("|")
            if not index.isdigit():
                raise ValueError(f"{path}:{line_number}: expected 'genre name|flag index', got {line!r}.")
            pairs.append((int(index), name))
    return tuple(name for _, name in sorted(pairs))


def _grouplens_item(values: Tuple[str, ...], genres: Sequence[str]) -> Tuple[str, str, str]:
    """(title, release year, genres) of a GroupLens u.item row (values after the item id)."""
    title, release_date, flags = values[0], values[1], values[4:]
    year = release_date.rsplit("-", 1)[-1] if release_date else ""
    names = " ".join(genre for genre, flag in zip(genres, flags) if flag == "1")
    return title, year, names
