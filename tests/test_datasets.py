"""The bundled data sets load with the right shapes, units and values, and a
missing or broken file gives an error that names it."""
import warnings

import numpy as np
import pytest

from zero.datasets import (DATA_DIR, HEIGHT_WEIGHT, OLD_FAITHFUL, ROWS, load_height_weight, load_heights,
                           load_old_faithful, load_table)
from zero.errors import DataFileDamaged


def test_old_faithful_is_the_r_data_set():
    data = load_old_faithful()
    assert data.shape == (272, 2) and data.dtype == np.float32
    np.testing.assert_allclose(data[0], [3.6, 79.0])  # first row of R's faithful
    np.testing.assert_allclose(data.mean(axis=0), [3.487783, 70.897059], rtol=1e-6)
    assert 1.5 < data[:, 0].min() and data[:, 0].max() < 5.2    # eruption minutes
    assert 40 <= data[:, 1].min() and data[:, 1].max() <= 96    # waiting minutes


def test_height_weight_in_cm_and_kg():
    data = load_height_weight()
    assert data.shape == (507, 2) and data.dtype == np.float32
    np.testing.assert_allclose(data[0], [174.0, 65.6])
    np.testing.assert_allclose(data.mean(axis=0), [171.143787, 69.147535], rtol=1e-6)
    assert 140 < data[:, 0].min() and data[:, 0].max() < 200
    assert 40 < data[:, 1].min() and data[:, 1].max() < 120


def test_heights_are_the_first_column():
    heights = load_heights()
    assert heights.shape == (507,) and heights.dtype == np.float32
    np.testing.assert_array_equal(heights, load_height_weight()[:, 0])
    assert heights.flags.c_contiguous


def test_missing_folder_names_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=OLD_FAITHFUL):
        load_old_faithful(data_dir=tmp_path)
    with pytest.raises(FileNotFoundError, match="data_dir="):   # and says how to read it from elsewhere
        load_old_faithful(data_dir=tmp_path)


@pytest.mark.parametrize("content, problem", [
    ("# header\n1.0 2.0\n3.0 oops\n", "'oops' on line 3 is not a number"),
    ("# header\n1.0 2.0 3.0\n4.0 5.0 6.0\n", "expected 2 columns per row, found 3 on line 2"),
    ("# header\n1.0 2.0\n\n4.0 5.0 6.0 # a note\n", r"found 3 on line 4\. Replace"),   # NumPy's advice was kept
    ("# only comments\n", "no data rows"),
    ("1.0 2.0\nnan 3.0\n", "non-finite value in data row 2, line 2"),
    ("# header\n\n1.0 2.0\nnan 3.0\n", "non-finite value in data row 2, line 4"),
    ("1.0 2.0\n3.0 inf\n", "non-finite value in data row 2"),
    ("1.0 2.0\n3.0 -inf\n5.0 nan\n", "non-finite value in data row 2"),
    ("170 80\n180 1e39\n", "non-finite value in data row 2, line 2 .*float32 range"),
    ("170.0\n180.0\n", "expected 2 columns"),
])
def test_corrupt_file_names_the_file(tmp_path, content, problem):
    (tmp_path / HEIGHT_WEIGHT).write_text(content)
    with pytest.raises(DataFileDamaged, match=problem) as error:   # a SetupError: a script shows its message alone
        load_height_weight(data_dir=tmp_path)
    assert HEIGHT_WEIGHT in str(error.value) and "Replace it with a good copy" in str(error.value)
    assert isinstance(error.value, ValueError)


def test_a_file_saved_with_a_byte_order_mark_reads_and_one_that_is_not_text_is_named(tmp_path):
    """Notepad saves UTF-8 with a byte-order mark: NumPy read it as part of the first number ('could not convert
    string to float'). Bytes that are not UTF-8 are named as such."""
    (tmp_path / HEIGHT_WEIGHT).write_bytes(b"\xef\xbb\xbf# adults\n180.5 75.0\n160 50\n")
    np.testing.assert_array_equal(load_table(HEIGHT_WEIGHT, 2, data_dir=tmp_path), [[180.5, 75.0], [160, 50]])
    (tmp_path / HEIGHT_WEIGHT).write_bytes(b"180.5 75.0\n\xff\xfe\x00\x01")
    with pytest.raises(DataFileDamaged, match=r"not text \(byte 11 is not UTF-8\)"):
        load_height_weight(data_dir=tmp_path)


def _copy_with_first_row(tmp_path, name, row):
    """A copy of the bundled file `name` in tmp_path whose first data row is `row` (text), so that reading
    it is told apart from reading the bundled file."""
    lines = (DATA_DIR / name).read_text().splitlines(keepends=True)
    first = next(i for i, line in enumerate(lines) if not line.startswith("#"))
    lines[first] = row + "\n"
    (tmp_path / name).write_text("".join(lines))


def test_data_dir_override_reads_that_folder(tmp_path):
    _copy_with_first_row(tmp_path, OLD_FAITHFUL, "2.5 60")
    data = load_old_faithful(data_dir=tmp_path)
    np.testing.assert_array_equal(data[0], [2.5, 60])
    np.testing.assert_array_equal(data[1:], load_old_faithful()[1:])
    assert (DATA_DIR / OLD_FAITHFUL).is_file()


def test_a_one_row_file_is_a_table_of_one_row(tmp_path):
    (tmp_path / HEIGHT_WEIGHT).write_text("# one adult\n180.5 75.0\n")
    data = load_table(HEIGHT_WEIGHT, 2, data_dir=tmp_path)
    assert data.shape == (1, 2)
    np.testing.assert_array_equal(data, [[180.5, 75.0]])


def test_heights_read_the_given_folder(tmp_path):
    _copy_with_first_row(tmp_path, HEIGHT_WEIGHT, "150.0 50.0")
    heights = load_heights(data_dir=tmp_path)
    assert heights[0] == 150.0 and len(heights) == 507


def test_the_bundled_files_hold_the_rows_their_provenance_notes_give():
    for name, note in [(OLD_FAITHFUL, "272 eruptions"), (HEIGHT_WEIGHT, "507 physically active adults")]:
        assert note in (DATA_DIR / name).read_text().splitlines()[0] and note.startswith(str(ROWS[name]))
        assert len(load_table(name, 2)) == ROWS[name]


@pytest.mark.parametrize("name, load", [(OLD_FAITHFUL, load_old_faithful), (HEIGHT_WEIGHT, load_height_weight)])
def test_a_copy_cut_short_is_refused_naming_the_file_and_both_counts(tmp_path, name, load):
    """A copy of old_faithful.txt cut off in the middle of a number loaded 124 of its 272 rows, the last one
    wrong (1.967 5 for 1.967 56), without an error."""
    text = (DATA_DIR / name).read_text()
    row = text.index("\n", len(text) // 2) + 1
    (tmp_path / name).write_text(text[:text.index(" ", row) + 2])   # half, then a row cut after its first digit
    found = len(load_table(name, 2, data_dir=tmp_path))
    with pytest.raises(ValueError, match=f"{tmp_path / name}: expected {ROWS[name]} data rows, found {found}"):
        load(data_dir=tmp_path)


def test_an_empty_file_is_an_error_without_a_warning(tmp_path):
    (tmp_path / HEIGHT_WEIGHT).write_text("# only comments\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error")                  # numpy's "input contained no data" would fail here
        with pytest.raises(ValueError, match="no data rows"):
            load_height_weight(data_dir=tmp_path)


def test_a_folder_in_place_of_the_file_is_a_missing_file(tmp_path):
    (tmp_path / OLD_FAITHFUL).mkdir()
    with pytest.raises(FileNotFoundError, match=OLD_FAITHFUL):
        load_old_faithful(data_dir=tmp_path)
