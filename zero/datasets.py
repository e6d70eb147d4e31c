"""The small real data sets bundled with the course (repository folder `datasets/`).

One call per data set, each returning a float32 NumPy array:

    load_heights()        (507,)    heights of adults, cm
    load_height_weight()  (507, 2)  height (cm), weight (kg) of the same adults
    load_old_faithful()   (272, 2)  eruption duration (min), waiting time (min)

The files are plain text (see `datasets/README.md` for source, licence and
units). By default they are read from the copy that an installed zero carries
(`zero/_datasets`, put there by `pip install .`), else from the `datasets/`
folder next to the `zero` package (the repository root, for `pip install -e .`);
pass `data_dir=` to read a copy of them from somewhere else. A missing or malformed
file raises an error that names the file, and so does one with another number of
rows than the bundled file (ROWS): a copy cut short or damaged.
"""
from pathlib import Path

import numpy as np

from zero.backend import DEFAULT_DTYPE
from zero.errors import DataFileDamaged

# The installed copy first: beside an installed package, site-packages/datasets may be another
# project's (Hugging Face's `datasets` is one); a checkout has no zero/_datasets.
_PACKAGE = Path(__file__).resolve().parent
DATA_DIR = _PACKAGE / "_datasets" if (_PACKAGE / "_datasets").is_dir() else _PACKAGE.parent / "datasets"

OLD_FAITHFUL = "old_faithful.txt"
HEIGHT_WEIGHT = "height_weight.txt"
ROWS = {OLD_FAITHFUL: 272, HEIGHT_WEIGHT: 507}   # data rows of each bundled file (see datasets/README.md)


def load_table(name, n_columns, data_dir=None, rows=None):
    """Read a bundled text table: returns (rows, n_columns) float32.

    Raises FileNotFoundError if the file is missing and ValueError if it does
    not parse, has the wrong number of columns, no rows, NaN/inf values, or
    another number of rows than `rows` (if given): DataFileDamaged, a ValueError.
    """
    path = Path(data_dir if data_dir is not None else DATA_DIR) / name
    if not path.is_file():
        raise FileNotFoundError(
            f"data file not found: {path} (the bundled data lives in the repository's datasets/ "
            f"folder; pass data_dir= to read it from elsewhere)")
    try:   # utf-8-sig: a byte-order mark at the start (Notepad writes one) is skipped, not read as a number
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except UnicodeDecodeError as error:
        raise _corrupt(path, f"not text (byte {error.start} is not UTF-8)") from None
    values, line_numbers = [], []
    for line_number, line in enumerate(lines, start=1):
        fields = line.split("#", 1)[0].split()   # '#' starts a comment
        if not fields:
            continue
        if len(fields) != n_columns:
            raise _corrupt(path, f"expected {n_columns} columns per row, found {len(fields)} on line {line_number}")
        row = []
        for field in fields:
            try:
                row.append(float(field))
            except ValueError:
                raise _corrupt(path, f"{field!r} on line {line_number} is not a number") from None
        values.append(row)
        line_numbers.append(line_number)
    if not values:
        raise _corrupt(path, "no data rows")
    table = np.array(values, dtype=np.float64)
    with np.errstate(over="ignore"):  # a number beyond float32's range becomes inf, refused below
        table = table.astype(DEFAULT_DTYPE)
    if not np.isfinite(table).all():
        bad_row = int(np.nonzero(~np.isfinite(table).all(axis=1))[0][0])
        raise _corrupt(path, f"non-finite value in data row {bad_row + 1}, line {line_numbers[bad_row]} "
                             f"(NaN, inf, or beyond the float32 range)")
    if rows is not None and len(table) != rows:   # a copy cut short (or damaged) still parses
        raise _corrupt(path, f"expected {rows} data rows, found {len(table)}")
    return table


def _corrupt(path, problem):
    """DataFileDamaged naming the file, and the cure: a SetupError (a step script shows its message alone)
    and a ValueError."""
    return DataFileDamaged(f"corrupt data file {path}: {problem}. Replace it with a good copy "
                           f"(the repository's datasets/{path.name})")


def load_old_faithful(data_dir=None):
    """Old Faithful eruptions: (272, 2) float32, columns (eruption minutes, waiting minutes)."""
    return load_table(OLD_FAITHFUL, 2, data_dir, rows=ROWS[OLD_FAITHFUL])


def load_height_weight(data_dir=None):
    """507 adults: (507, 2) float32, columns (height cm, weight kg)."""
    return load_table(HEIGHT_WEIGHT, 2, data_dir, rows=ROWS[HEIGHT_WEIGHT])


def load_heights(data_dir=None):
    """Heights of the same 507 adults: (507,) float32, in cm."""
    return load_height_weight(data_dir)[:, 0].copy()
