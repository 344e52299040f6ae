"""load_texts: every source kind it reads, every error it raises, and that it imports nothing heavy."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from induction_nb.errors import InputError
from induction_nb.probes.texts import load_texts

ROOT = Path(__file__).resolve().parent.parent


def _jsonl(path: Path, *rows) -> Path:
    """One JSON value per line ("" writes a blank line); non-ASCII characters are written raw."""
    lines = ("" if row == "" else json.dumps(row, ensure_ascii=False) for row in rows)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


# ---------------------------------------------------------------- files and folders


def test_txt_file_is_one_document(tmp_path):
    (tmp_path / "a.txt").write_text("line one\nline two\n", encoding="utf-8")
    assert load_texts(tmp_path / "a.txt") == ["line one\nline two\n"]
    assert load_texts(str(tmp_path / "a.txt")) == ["line one\nline two\n"]


def test_md_file_and_byte_order_mark(tmp_path):
    (tmp_path / "n.md").write_bytes("\ufeff# Title\n\nBody.".encode("utf-8"))
    assert load_texts(tmp_path / "n.md") == ["# Title\n\nBody."]


def test_txt_in_another_encoding(tmp_path):
    (tmp_path / "l.txt").write_bytes("café".encode("latin-1"))
    with pytest.raises(InputError, match=r"l\.txt' is not valid utf-8.*encoding='latin-1'"):
        load_texts(tmp_path / "l.txt")
    assert load_texts(tmp_path / "l.txt", encoding="latin-1") == ["café"]
    with pytest.raises(InputError, match="unknown encoding 'nope'"):
        load_texts(tmp_path / "l.txt", encoding="nope")


def test_jsonl_default_and_custom_column(tmp_path):
    path = _jsonl(tmp_path / "d.jsonl", {"text": "first", "id": 1}, {"text": "second\u2028still second"})
    assert load_texts(path) == ["first", "second\u2028still second"]
    path = _jsonl(tmp_path / "e.jsonl", {"body": "x"}, "", {"body": "y"})  # blank lines are skipped
    assert load_texts(path, column="body") == ["x", "y"]


def test_jsonl_bare_string_lines(tmp_path):
    path = tmp_path / "s.jsonl"
    path.write_text('"one"\n{"text": "two"}\n\n  \n"three"\n', encoding="utf-8")
    assert load_texts(path) == ["one", "two", "three"]


def test_jsonl_invalid_json_names_file_and_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"text": "ok"}\n{"text": oops}\n', encoding="utf-8")
    with pytest.raises(InputError, match=r"bad\.jsonl', line 2: invalid JSON"):
        load_texts(path)


def test_jsonl_missing_field_lists_fields(tmp_path):
    path = _jsonl(tmp_path / "m.jsonl", {"body": "x", "id": 3})
    with pytest.raises(
        InputError,
        match=r"m\.jsonl', line 1: no field 'text'; its fields are 'body', 'id'; "
        r"pass column='body'",
    ):
        load_texts(path)


def test_jsonl_non_string_value(tmp_path):
    path = _jsonl(tmp_path / "n.jsonl", {"text": "ok"}, {"text": 5})
    with pytest.raises(InputError, match=r"n\.jsonl', line 2: field 'text' is a JSON number, not a string"):
        load_texts(path)
    path = _jsonl(tmp_path / "l.jsonl", [1, 2])
    with pytest.raises(InputError, match=r"line 1: a JSON list; each line must be an object"):
        load_texts(path)


def test_jsonl_empty_document_names_file_and_line(tmp_path):
    path = _jsonl(tmp_path / "e.jsonl", {"text": "ok"}, {"text": "   "})
    with pytest.raises(InputError, match=r"document 1 \('.*e\.jsonl', line 2\) is empty.*drop"):
        load_texts(path)


def test_empty_files(tmp_path):
    (tmp_path / "blank.txt").write_text(" \n", encoding="utf-8")
    with pytest.raises(InputError, match=r"document 0 \(file '.*blank\.txt'\) is empty or only whitespace"):
        load_texts(tmp_path / "blank.txt")
    (tmp_path / "none.jsonl").write_text("\n\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"no documents in file '.*none\.jsonl'"):
        load_texts(tmp_path / "none.jsonl")


def test_nested_folder_order(tmp_path):
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "deep").mkdir()
    (tmp_path / ".ipynb_checkpoints").mkdir()
    (tmp_path / "a.txt").write_text("A", encoding="utf-8")
    (tmp_path / "b" / "z.md").write_text("BZ", encoding="utf-8")
    (tmp_path / "b" / "deep" / "x.TXT").write_text("BDX", encoding="utf-8")
    _jsonl(tmp_path / "b" / "c.jsonl", {"text": "BC1"}, "BC2")
    (tmp_path / "c.txt").write_text("C", encoding="utf-8")
    (tmp_path / "skip.csv").write_text("text\nno", encoding="utf-8")
    (tmp_path / ".ipynb_checkpoints" / "a-checkpoint.txt").write_text("dup", encoding="utf-8")
    assert load_texts(tmp_path) == ["A", "BC1", "BC2", "BDX", "BZ", "C"]
    assert load_texts(str(tmp_path)) == load_texts(tmp_path)


def test_folder_without_documents(tmp_path):
    (tmp_path / "data.csv").write_text("text\nx", encoding="utf-8")
    with pytest.raises(InputError, match=r"holds no \.txt, \.md or \.jsonl files"):
        load_texts(tmp_path)


def test_other_suffix_file(tmp_path):
    (tmp_path / "data.csv").write_text("text\nx", encoding="utf-8")
    with pytest.raises(InputError, match=r"cannot read '.*data\.csv': it reads \.txt, \.md and \.jsonl.*pandas"):
        load_texts(tmp_path / "data.csv")


def test_string_that_is_no_path_is_never_text(tmp_path):
    with pytest.raises(
        InputError,
        match=r"no such file or folder: 'The cat sat\.'; to score a string itself, "
        r"pass a list: \[text\]",
    ):
        load_texts("The cat sat.")
    with pytest.raises(InputError, match="no such file or folder"):
        load_texts(tmp_path / "missing.txt")
    with pytest.raises(InputError, match="no such file or folder"):
        load_texts("x" * 5000)  # too long to be a file name: still a clear error
    with pytest.raises(InputError, match="blank string, not a path"):
        load_texts("")


# ---------------------------------------------------------------- in-memory sources


def test_list_tuple_and_generator():
    texts = ["a b", "c d"]
    out = load_texts(texts)
    assert out == texts and out is not texts
    assert load_texts(("a b", "c d")) == texts
    assert load_texts(t for t in texts) == texts


def test_document_type_errors():
    with pytest.raises(InputError, match=r"document 3 is a float, not a str \(NaN\? a missing value"):
        load_texts(["a", "b", "c", float("nan")])
    with pytest.raises(InputError, match=r"document 1 is a NoneType.*missing value"):
        load_texts(["a", None])
    with pytest.raises(InputError, match=r"document 0 is a bytes.*\.decode\(\)"):
        load_texts([b"abc"])
    with pytest.raises(InputError, match=r"document 1 is a int"):
        load_texts(["a", 1])


def test_empty_and_zero_documents():
    with pytest.raises(InputError, match=r"document 1 is empty or only whitespace; drop empty documents"):
        load_texts(["a", " \n"])
    with pytest.raises(InputError, match="no documents in the list"):
        load_texts([])


def test_unsupported_sources():
    with pytest.raises(InputError, match=r"got bytes; decode them first.*\.decode\("):
        load_texts(b"some text")
    with pytest.raises(InputError, match=r"pass source\['text'\] instead"):
        load_texts({"text": ["a"]})
    with pytest.raises(InputError, match="cannot read documents from a int"):
        load_texts(3)


def test_pandas_series_and_dataframe():
    pd = pytest.importorskip("pandas")
    assert load_texts(pd.Series(["x", "y"], index=[5, 2])) == ["x", "y"]
    df = pd.DataFrame({"body": ["p", "q"], "n": [1, 2]})
    assert load_texts(df, column="body") == ["p", "q"]
    with pytest.raises(InputError, match=r"DataFrame has no column 'text'; its columns are 'body', 'n'"):
        load_texts(df)
    with pytest.raises(InputError, match=r"document 1 is a float.*NaN"):
        load_texts(pd.DataFrame({"text": ["a", None]}))


def test_pyarrow_arrays_and_table():
    pa = pytest.importorskip("pyarrow")
    assert load_texts(pa.array(["a", "b"])) == ["a", "b"]
    assert load_texts(pa.chunked_array([["a"], ["b", "c"]])) == ["a", "b", "c"]
    table = pa.table({"body": ["u", "v"], "n": [1, 2]})
    assert load_texts(table, column="body") == ["u", "v"]
    with pytest.raises(InputError, match=r"Table has no column 'text'; its columns are 'body', 'n'"):
        load_texts(table)
    with pytest.raises(InputError, match=r"document 1 is a NoneType"):
        load_texts(pa.array(["a", None]))


def test_hf_dataset_and_iterable_dataset():
    datasets = pytest.importorskip("datasets")
    ds = datasets.Dataset.from_dict({"text": ["d1", "d2"], "label": [0, 1]})
    assert load_texts(ds) == ["d1", "d2"]
    assert load_texts(ds.rename_column("text", "body"), column="body") == ["d1", "d2"]
    with pytest.raises(InputError, match=r"Dataset has no column 'body'; its columns are 'text', 'label'"):
        load_texts(ds, column="body")
    assert load_texts(ds.to_iterable_dataset()) == ["d1", "d2"]
    with pytest.raises(InputError, match=r"IterableDataset has no column 'body'"):
        load_texts(ds.to_iterable_dataset(), column="body")


def test_hf_dataset_dict_asks_for_a_split():
    datasets = pytest.importorskip("datasets")
    dd = datasets.DatasetDict({"train": datasets.Dataset.from_dict({"text": ["a"]})})
    with pytest.raises(InputError, match=r"holds several splits \('train'\); pick one, e\.g\. ds\['train'\]"):
        load_texts(dd)


def test_module_imports_no_table_library():
    """texts.py adds none of pandas/pyarrow/datasets to sys.modules (induction_nb itself is checked first)."""
    code = (
        "import sys; import induction_nb; before = {m for m in ('pandas', 'pyarrow', 'datasets') "
        "if m in sys.modules}; import induction_nb.probes.texts as t; t.load_texts(['a']); "
        "print(sorted({m for m in ('pandas', 'pyarrow', 'datasets') if m in sys.modules} - before))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "[]"
