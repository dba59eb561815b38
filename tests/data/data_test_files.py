"""Writers of small hand-made input files for the data tests (the tests write every file they read)."""

import gzip
import pathlib

from tf_multiembed.data import schema as schema_lib

# A Criteo-layout file with 2 integer and 2 categorical fields: label, I1, I2, C1, C2.
SMALL_CRITEO_LINES = [
    "1\t5\t\taa\tx",     # line 1
    "0\t0\t3\taa\ty",    # line 2
    "0\t5\t-1\tbb\tx",   # line 3
    "1\t\t3\taa\t",      # line 4
    "0\t1000\t3\tcc\tx",  # line 5
    "1\t5\t2\tbb\ty",    # line 6
]


def small_criteo_schema(min_count=2):
    return schema_lib.criteo_schema(min_count=min_count, num_numeric=2, num_categorical=2, name="small-criteo")


def write_lines(path, lines, compress=False, line_end="\n", encoding="utf-8"):
    """Writes text lines (str, or bytes written as they are) to a plain or gzip file."""
    path = pathlib.Path(path)
    data = b"".join((line if isinstance(line, bytes) else line.encode(encoding)) + line_end.encode()
                    for line in lines)
    if compress:
        with gzip.open(path, "wb") as handle:
            handle.write(data)
    else:
        path.write_bytes(data)
    return path


def write_grouplens(folder, ratings, users, items, genre_names=None):
    """A GroupLens-layout MovieLens folder: ratings (user, item, rating, time), users (id, age, gender, occupation,
    zip), items (id, title, release date, flags string of 19 '0'/'1')."""
    folder = pathlib.Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    write_lines(folder / "u.data", ["\t".join(map(str, row)) for row in ratings], encoding="latin-1")
    write_lines(folder / "u.user", ["|".join(map(str, row)) for row in users], encoding="latin-1")
    write_lines(folder / "u.item", [f"{item}|{title}|{date}||http://x|" + "|".join(flags)
                                    for item, title, date, flags in items], encoding="latin-1")
    if genre_names is not None:
        write_lines(folder / "u.genre", [f"{name}|{index}" for index, name in enumerate(genre_names)])
    return folder
