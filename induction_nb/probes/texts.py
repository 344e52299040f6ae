"""Bring your own documents: ``load_texts`` turns files, folders and in-memory tables into ``list[str]``.

Sources: ``.txt``/``.md``/``.jsonl`` files and folders of them, iterables of strings, pandas, pyarrow and
Hugging Face ``datasets`` objects (see ``load_texts``), so real documents can be scored without downloads.

Limits: nothing is ever downloaded and no format is guessed. A ``str`` is always a path (wrap a text in a
list to use it as a document); other file types (``.csv``, ``.parquet``, ...) are read with pandas first.
A folder's hidden files and folders (``.git``, ``.ipynb_checkpoints``) are skipped, and symlinked folders
are not followed. Everything is read into memory; an ``IterableDataset`` or generator is read to its end
(a streaming dataset reads from wherever it was opened). pandas, pyarrow and datasets are imported only
when an object of theirs is passed.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from ..errors import InputError

__all__ = ["load_texts"]

_TEXT_SUFFIXES = (".txt", ".md")
_SUFFIXES = (*_TEXT_SUFFIXES, ".jsonl")
_Docs = list[tuple[Any, "str | None"]]  # (candidate document, where it came from)


def load_texts(source: Any, *, column: str = "text", encoding: str = "utf-8") -> list[str]:
    """Return the documents in ``source`` as a new ``list[str]``, in a deterministic order.

    ``source`` is a path (``str`` or ``os.PathLike``) to a ``.txt``/``.md`` file (one document), a
    ``.jsonl`` file (one document per non-blank line: the object's ``column`` field, or a bare JSON
    string) or a folder (its ``.txt``/``.md``/``.jsonl`` files, recursively, sorted by relative path); a
    list, tuple or other iterable of ``str``; a pandas ``Series`` or ``DataFrame`` (``df[column]``); a
    pyarrow ``Array``/``ChunkedArray`` or ``Table`` (its ``column``); a Hugging Face ``Dataset``
    (``ds[column]``) or ``IterableDataset`` (``row[column]`` of each row). A ``str`` that is no existing
    path is an error, never a document: pass ``[text]`` to score a string itself. ``encoding`` is used
    for files. Nothing is downloaded.

    Raises ``InputError`` (naming the document, and the file and line where known) for a document that
    is not a ``str``, or is empty or only whitespace, for zero documents, a missing column or field,
    invalid JSON, a file not valid in ``encoding``, or a source of an unsupported kind.

    Limits: no format is guessed, and files other than ``.txt``/``.md``/``.jsonl`` (``.csv``, ``.parquet``,
    ...) are refused: read them with pandas first and pass the DataFrame. A folder's hidden files and folders
    (``.git``, ``.ipynb_checkpoints``) are skipped and symlinked folders are not followed. Everything is read
    into memory (an ``IterableDataset`` or generator to its end); a leading byte-order mark is dropped.
    pandas, pyarrow and datasets are imported only when an object of theirs is passed. The documents feed
    ``detect_on_text`` and the other tools that score real text.

    Args:
        source: where the documents are: a path (``str`` or ``os.PathLike``) to a ``.txt``/``.md`` file, a
            ``.jsonl`` file or a folder of them (recursively, sorted by relative path); an iterable of
            ``str``; a pandas ``Series``/``DataFrame``; a pyarrow ``Array``/``ChunkedArray``/``Table``; or a
            Hugging Face ``Dataset``/``IterableDataset``. A ``str`` is always a path, never a document.
        column: the column of a table or dataset, or the field of each ``.jsonl`` object, that holds the
            text (default ``"text"``).
        encoding: the text encoding of files (default ``"utf-8"``; e.g. ``"latin-1"``, ``"cp1252"``).

    Returns:
        list[str]: a new list of the documents, each a non-empty ``str``, in a deterministic order (files:
        sorted by relative path, lines in file order; tables and iterables: their own order).

    Raises:
        InputError: for a path that does not exist (wrap a text in a list to score it), a blank string,
            ``bytes`` (decode them first), a mapping (pass ``source[column]``), a folder without
            ``.txt``/``.md``/``.jsonl`` files, a file of another type, an unknown encoding or a file not
            valid in ``encoding``, a ``.jsonl`` line that is not valid JSON or lacks the field, a missing
            ``column``, a ``DatasetDict`` (pick a split), zero documents, or a document that is not a
            ``str`` (``None``/NaN: a missing value) or is empty or only whitespace.

    Examples:
        >>> from induction_nb import load_texts
        >>> load_texts(["The cat sat on the mat.", "A dog ran."])
        ['The cat sat on the mat.', 'A dog ran.']
        >>> import pandas as pd
        >>> load_texts(pd.DataFrame({"id": [1, 2], "body": ["one", "two"]}), column="body")
        ['one', 'two']

        A folder of files (``.jsonl``: one document per line, an object's field or a bare string):

        >>> import tempfile
        >>> from pathlib import Path
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     _ = (Path(folder) / "b.txt").write_text("A whole file is one document.")
        ...     _ = (Path(folder) / "a.jsonl").write_text('{"text": "first line"}\\n"a bare string"\\n')
        ...     print(load_texts(folder))
        ['first line', 'a bare string', 'A whole file is one document.']
        >>> load_texts(["fine", "   "])
        Traceback (most recent call last):
        ...
        induction_nb.errors.InputError: document 1 is empty or only whitespace; drop empty documents first, ...
    """
    docs, what = _collect(source, column, encoding)
    return _validated(docs, what)


def _collect(source: Any, column: str, encoding: str) -> tuple[_Docs, str]:
    if isinstance(source, (bytes, bytearray, memoryview)):
        raise InputError("load_texts got bytes; decode them first, e.g. load_texts([data.decode('utf-8')])")
    if isinstance(source, (str, os.PathLike)):
        return _from_path(source, column, encoding)
    library = _library_of(source)
    if library is not None:
        reader = {"pandas": _from_pandas, "pyarrow": _from_pyarrow, "datasets": _from_datasets}[library]
        return [(doc, None) for doc in reader(source, column)], f"the {type(source).__name__}"
    if isinstance(source, Mapping):
        hint = f"source[{column!r}]" if column in source else "a list of its values"
        raise InputError(f"load_texts got a {type(source).__name__}, which is ambiguous; pass {hint} instead")
    if isinstance(source, Iterable):
        return [(doc, None) for doc in source], f"the {type(source).__name__}"
    raise InputError(
        f"load_texts cannot read documents from a {type(source).__name__}; pass a path, a list "
        "of strings, a pandas Series/DataFrame, a pyarrow Array/Table or a datasets.Dataset"
    )


def _library_of(obj: Any) -> str | None:
    """'pandas', 'pyarrow' or 'datasets' when ``obj``'s class comes from one of them; nothing imported."""
    for cls in type(obj).__mro__:
        root = (getattr(cls, "__module__", None) or "").split(".")[0]
        if root in ("pandas", "pyarrow", "datasets"):
            return root
    return None


def _from_path(source: str | os.PathLike, column: str, encoding: str) -> tuple[_Docs, str]:
    name = os.fsdecode(os.fspath(source))
    if isinstance(source, str) and not source.strip():
        raise InputError(
            "load_texts got a blank string, not a path; pass a file or folder path, or a list of documents"
        )
    if os.path.isdir(name):
        return _from_folder(Path(name), column, encoding), f"folder {name!r}"
    if os.path.isfile(name):
        return _from_file(Path(name), column, encoding), f"file {name!r}"
    shown = name if len(name) <= 80 else name[:77] + "..."
    hint = "; to score a string itself, pass a list: [text]" if isinstance(source, str) else ""
    raise InputError(f"load_texts: no such file or folder: {shown!r}{hint}")


def _from_folder(folder: Path, column: str, encoding: str) -> _Docs:
    found: list[Path] = []
    for root, dirs, files in os.walk(folder):  # symlinked folders are not followed
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        found += [Path(root, f) for f in files if not f.startswith(".") and f.lower().endswith(_SUFFIXES)]
    if not found:
        raise InputError(
            f"folder '{folder}' holds no .txt, .md or .jsonl files (searched recursively, hidden "
            "ones skipped); load_texts reads only those suffixes"
        )
    docs: _Docs = []
    for path in sorted(found, key=lambda p: p.relative_to(folder).parts):
        docs += _from_file(path, column, encoding)
    return docs


def _from_file(path: Path, column: str, encoding: str) -> _Docs:
    suffix = path.suffix.lower()
    if suffix not in _SUFFIXES:
        raise InputError(
            f"load_texts cannot read '{path}': it reads .txt, .md and .jsonl files; for a table "
            "(.csv, .parquet, ...) read it with pandas and pass the DataFrame with column="
        )
    text = _read(path, encoding)
    if suffix in _TEXT_SUFFIXES:
        return [(text, f"file '{path}'")]
    return _parse_jsonl(text, path, column)


def _read(path: Path, encoding: str) -> str:
    try:
        text = path.read_text(encoding=encoding)
    except LookupError:
        raise InputError(f"unknown encoding {encoding!r}; pass e.g. encoding='utf-8' or 'latin-1'") from None
    except UnicodeDecodeError as e:
        raise InputError(
            f"file '{path}' is not valid {encoding} (byte {e.start}: {e.reason}); pass its "
            "encoding, e.g. encoding='latin-1' or 'cp1252'"
        ) from None
    return text.removeprefix("\ufeff")  # a byte-order mark is never part of a document


def _parse_jsonl(text: str, path: Path, column: str) -> _Docs:
    docs: _Docs = []
    for number, line in enumerate(text.split("\n"), start=1):  # not splitlines(): JSON may hold U+2028
        if not line.strip():
            continue
        where = f"'{path}', line {number}"
        try:
            value = json.loads(line)
        except json.JSONDecodeError as e:
            raise InputError(
                f"{where}: invalid JSON ({e.msg} at column {e.colno}); each line of a .jsonl "
                "file must be one JSON object or string"
            ) from None
        docs.append((_jsonl_document(value, where, column), where))
    return docs


def _jsonl_document(value: Any, where: str, column: str) -> str:
    is_object = isinstance(value, dict)
    if is_object and column not in value:
        raise InputError(f"{where}: no field {column!r}; {_fields_hint(list(value), value)}")
    doc = value[column] if is_object else value
    if isinstance(doc, str):
        return doc
    kind = {type(None): "null", dict: "object", bool: "boolean", int: "number", float: "number"}.get(
        type(doc), type(doc).__name__
    )
    if is_object:
        raise InputError(f"{where}: field {column!r} is a JSON {kind}, not a string")
    raise InputError(f"{where}: a JSON {kind}; each line must be an object with a {column!r} field or a string")


def _fields_hint(names: list, row: Mapping) -> str:
    if not names:
        return "the object has no fields"
    texts = [n for n in names if isinstance(row.get(n), str)]
    example = texts[0] if len(texts) == 1 else names[0]
    return f"its fields are {', '.join(map(repr, names))}; pass column={example!r}"


def _from_pandas(obj: Any, column: str) -> list:
    import pandas as pd

    if isinstance(obj, pd.DataFrame):
        _check_column(obj, column, list(obj.columns))
        obj = obj[column]
        if isinstance(obj, pd.DataFrame):
            raise InputError(f"the DataFrame has {obj.shape[1]} columns named {column!r}; keep one")
    if isinstance(obj, (pd.Series, pd.Index)):
        return obj.tolist()
    raise InputError(
        f"load_texts cannot read documents from a pandas {type(obj).__name__}; pass a Series or a DataFrame"
    )


def _from_pyarrow(obj: Any, column: str) -> list:
    import pyarrow as pa

    if isinstance(obj, (pa.Table, pa.RecordBatch)):
        _check_column(obj, column, obj.column_names)
        obj = obj.column(column)
    if isinstance(obj, (pa.Array, pa.ChunkedArray)):
        return obj.to_pylist()
    raise InputError(
        f"load_texts cannot read documents from a pyarrow {type(obj).__name__}; pass an Array, "
        "a ChunkedArray or a Table"
    )


def _from_datasets(obj: Any, column: str) -> list:
    import datasets

    if isinstance(obj, (datasets.DatasetDict, datasets.IterableDatasetDict)):
        splits = list(obj.keys())
        first = splits[0] if splits else "train"
        raise InputError(
            f"a {type(obj).__name__} holds several splits ({', '.join(map(repr, splits))}); "
            f"pick one, e.g. ds[{first!r}]"
        )
    names = getattr(obj, "column_names", None)
    if names is not None:  # an IterableDataset of unknown features has none; its rows are checked instead
        _check_column(obj, column, names)
    if isinstance(obj, datasets.Dataset):
        return list(obj[column])
    if isinstance(obj, datasets.IterableDataset):
        return [_row_value(row, i, column) for i, row in enumerate(obj)]
    raise InputError(
        f"load_texts cannot read documents from a datasets {type(obj).__name__}; pass a Dataset or an IterableDataset"
    )


def _check_column(table: Any, column: str, names: list) -> None:
    if column not in names:
        raise InputError(
            f"the {type(table).__name__} has no column {column!r}; its columns are "
            f"{', '.join(map(repr, names)) or '(none)'}; pass column=<one of them>"
        )


def _row_value(row: Mapping, index: int, column: str) -> Any:
    if column not in row:
        raise InputError(f"row {index} of the IterableDataset has no field {column!r}; {_fields_hint(list(row), row)}")
    return row[column]


def _validated(docs: _Docs, what: str) -> list[str]:
    if not docs:
        raise InputError(f"load_texts found no documents in {what}; pass at least one non-empty string")
    out: list[str] = []
    for index, (doc, where) in enumerate(docs):
        label = f"document {index}" + (f" ({where})" if where else "")
        if not isinstance(doc, str):
            raise InputError(f"{label} is a {type(doc).__name__}, not a str{_type_hint(doc)}")
        if not doc.strip():
            raise InputError(
                f"{label} is empty or only whitespace; drop empty documents first, e.g. [t for t in texts if t.strip()]"
            )
        out.append(doc if type(doc) is str else str(doc))
    return out


def _type_hint(doc: Any) -> str:
    if isinstance(doc, (bytes, bytearray)):
        return "; decode it first with .decode() (e.g. data.decode('utf-8'))"
    if doc is None:
        return " (None: a missing value in the column?); drop or fill missing values first"
    if isinstance(doc, float):
        return " (NaN? a missing value in the column); drop or fill missing values first, e.g. df.dropna()"
    return "; every document must be a str"
