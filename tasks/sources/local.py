"""The local source: pairs from a .jsonl/.json/.csv/.parquet file, or a folder of them.

``source = "local"`` (see :mod:`tasks.sources`); setting ``data_path``. The readers here also load
the ``eval_path`` and ``corpus_path`` files of ``prepare``.

Every file must be well-formed: not UTF-8, invalid JSON, a JSON value that is not a list of
objects, or a CSV row whose field count differs from the header's is an
:class:`~tasks.io.InvalidInputError` whose one line names the file (and line) and says what to fix.
A folder is read recursively (hidden files and other suffixes are skipped), in sorted order.

Example::

    from tasks.sources.local import load_local

    records, info = load_local("data/pairs.csv")   # info: {"type": "local", "path", "files"}
"""

from __future__ import annotations

import codecs
import csv
import itertools
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

from tasks.config import RunConfig
from tasks.io import InvalidInputError

#: The value of ``source`` that selects this module.
NAME = "local"
FILE_SUFFIXES = (".jsonl", ".json", ".csv", ".parquet")


def load(cfg: RunConfig) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The source's entry point: every record under ``cfg.data_path``."""
    return load_local(cfg.data_path)


def load_local(
    path: str | Path, param: str = "data_path"
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Read every record of a local file or folder; returns (records, source description).

    ``param`` is the setting the path came from, for the error messages.
    """
    files = list_local_files(Path(path), param)
    records: list[dict[str, Any]] = []
    per_file = {}
    for file in files:
        rows = list(read_file(file))
        per_file[str(file)] = len(rows)
        records.extend(rows)
    if not records:
        raise InvalidInputError(f"{param} {path} is empty: it holds no records")
    return records, {
        "type": "local",
        "path": str(Path(path).expanduser().resolve()),
        "files": per_file,
    }


def list_local_files(path: Path, param: str = "data_path") -> list[Path]:
    """The data files at ``path``: the file itself, or every supported file in the folder."""
    path = Path(path).expanduser()
    if not path.exists():
        raise InvalidInputError(f"{param} {path} does not exist")
    if path.is_file():
        return [path]
    files = sorted(
        p
        for p in path.rglob("*")
        if p.is_file() and p.suffix.lower() in FILE_SUFFIXES and not p.name.startswith(".")
    )
    if not files:
        raise InvalidInputError(f"{param} {path} holds no {'/'.join(FILE_SUFFIXES)} files")
    return files


def read_file(path: Path) -> Iterator[dict[str, Any]]:
    """Yield records from one .jsonl/.json/.csv/.parquet file; bad files raise InvalidInputError."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in FILE_SUFFIXES:
        raise InvalidInputError(
            f"{path}: unsupported file type {suffix or '(none)'}; "
            f"use one of {', '.join(FILE_SUFFIXES)}"
        )
    if suffix == ".parquet":
        yield from _read_parquet(path)
        return
    _check_utf8(path)
    with open(path, encoding="utf-8-sig", newline="") as fh:  # -sig: drop a BOM
        if suffix == ".jsonl":
            yield from _read_jsonl(path, fh)
        elif suffix == ".json":
            yield from _read_json(path, fh)
        else:
            yield from _read_csv(path, fh)


def _read_parquet(path: Path) -> list[dict[str, Any]]:
    try:
        import pyarrow.parquet as pq

        table = pq.read_table(path)
    except Exception as exc:
        raise InvalidInputError(f"{path} is not a readable parquet file: {exc}") from None
    return table.to_pylist()


def _read_jsonl(path: Path, fh: TextIO) -> Iterator[dict[str, Any]]:
    for lineno, line in enumerate(fh, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InvalidInputError(f"{path}:{lineno} is not valid JSON: {exc.msg}") from None
        if not isinstance(record, dict):
            raise InvalidInputError(f"{path}:{lineno} is not a JSON object")
        yield record


def _read_json(path: Path, fh: TextIO) -> list[dict[str, Any]]:
    """A list of objects; or an object holding one such list (``{"data": [...]}``), or columns
    (``{"query": [...], "document": [...]}``)."""
    try:
        data = json.load(fh)
    except json.JSONDecodeError as exc:
        raise InvalidInputError(
            f"{path} is not valid JSON: {exc.msg} (line {exc.lineno})"
        ) from None
    if isinstance(data, dict):
        lists = [v for v in data.values() if isinstance(v, list)]
        if len(lists) == 1:
            data = lists[0]
        elif data and all(isinstance(v, list) for v in data.values()):
            keys = list(data)
            data = [dict(zip(keys, values)) for values in zip(*data.values())]
    if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
        raise InvalidInputError(f"{path}: expected a JSON list of objects")
    return data


def _read_csv(path: Path, fh: TextIO) -> Iterator[dict[str, Any]]:
    """The rows of a CSV file; a row with more or fewer fields than the header is refused.

    ``csv.DictReader`` would keep extra fields under the key ``None`` (and fill missing ones with
    ``None``): an unquoted comma in a passage would silently cut it short.
    """
    csv.field_size_limit(1 << 30)  # long passages are normal here
    reader = csv.DictReader(fh)
    try:
        for row in reader:
            if None in row or any(value is None for value in row.values()):
                width = len(reader.fieldnames or [])
                fields = width + len(row.get(None) or []) - sum(v is None for v in row.values())
                raise InvalidInputError(
                    f"{path}:{reader.line_num} has {fields} fields where the header has {width}: "
                    f'quote fields that contain commas ("like, this")'
                )
            yield row
    except csv.Error as exc:
        raise InvalidInputError(f"{path} is not valid CSV: {exc}") from None


def _check_utf8(path: Path) -> None:
    """Raise InvalidInputError at the first byte of ``path`` that is not UTF-8 (its offset)."""
    with open(path, "rb") as fh:
        offset = 0
        decoder = codecs.getincrementaldecoder("utf-8")()
        # The final empty block flushes the decoder: a truncated sequence at the end fails too.
        for block in itertools.chain(iter(lambda: fh.read(1 << 20), b""), [b""]):
            pending = len(decoder.getstate()[0])  # bytes held over from the previous block
            try:
                decoder.decode(block, final=not block)
            except UnicodeDecodeError as exc:
                raise InvalidInputError(
                    f"{path} is not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at offset "
                    f"{offset - pending + exc.start}): re-save it as UTF-8"
                ) from None
            offset += len(block)
