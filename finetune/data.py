"""Loading and checking an exported SFT dataset before any model is loaded.

The export (docs/export.md) writes Parquet shards under OUT/data/ with a `messages` column
in TRL's conversational format. Every check here is cheap and runs first, so bad input
fails in seconds with one line, not after minutes of model loading.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from finetune.errors import FinetuneInputError


def dataset_files(dataset_dir: str | Path) -> list[Path]:
    """The Parquet files of a dataset: DIR/data/*.parquet (an export), DIR/*.parquet, or one file."""
    path = Path(dataset_dir)
    if not path.exists():
        raise FinetuneInputError(f"dataset {path}: not found")
    if path.is_file():
        if path.suffix != ".parquet":
            raise FinetuneInputError(f"dataset {path}: expected a .parquet file or an export directory")
        return [path]
    files = sorted((path / "data").glob("*.parquet")) or sorted(path.glob("*.parquet"))
    if not files:
        raise FinetuneInputError(f"dataset {path}: no Parquet files (expected an export directory with data/*.parquet)")
    return files


def _check_messages(value: Any, where: str) -> None:
    if not isinstance(value, list) or not value:
        raise FinetuneInputError(f"{where}: 'messages' must be a non-empty list of {{role, content}}, "
                                 f"got {value!r:.80}")
    roles = []
    for m in value:
        if not isinstance(m, dict) or not isinstance(m.get("content"), str) or m.get("role") not in (
                "system", "user", "assistant"):
            raise FinetuneInputError(f"{where}: each message needs a role (system/user/assistant) and string "
                                     f"content, got {m!r:.80}")
        roles.append(m["role"])
    if "assistant" not in roles or roles[-1] != "assistant":
        raise FinetuneInputError(f"{where}: the last message must be the assistant's (roles: {roles})")


def load_sft_dataset(dataset_dir: str | Path) -> Any:
    """The training rows as a `datasets.Dataset` with only the `messages` column, checked."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    files = dataset_files(dataset_dir)
    tables = []
    for f in files:
        try:
            schema = pq.read_schema(f)
        except (pa.ArrowInvalid, OSError) as exc:
            raise FinetuneInputError(f"dataset file {f}: cannot read Parquet ({exc})") from None
        if "messages" not in schema.names:
            raise FinetuneInputError(f"dataset file {f}: no 'messages' column (available: "
                                     f"{', '.join(schema.names) or 'none'}); expected the output of sparq export")
        table = pq.read_table(f, columns=["messages"])
        # A bad row is named by its file and its row number there, counted from 1 (as seeds are).
        for n, messages in enumerate(table.column("messages").to_pylist(), 1):
            _check_messages(messages, f"dataset file {f}: row {n}")
        tables.append(table)
    table = pa.concat_tables(tables)
    if table.num_rows == 0:
        raise FinetuneInputError(f"dataset {dataset_dir}: no rows")
    rows = table.to_pylist()
    import datasets

    return datasets.Dataset.from_list(rows)
