"""Durable runs: the inference graph's checkpoints, one thread per message id.

With a checkpointer the graph saves its state after every node, so a run killed after `label_router`
resumes at `apply` (`Labeler.resume`) without summarizing or embedding again, and a stored thread can be
inspected and run again (`labelrouter replay --from-checkpoint`). The embedded default keeps them in
`<home>/checkpoints.sqlite` (`langgraph-checkpoint-sqlite`); a PostgreSQL store keeps them in its database
(`langgraph-checkpoint-postgres`, its own tables, in `database_schema` when one is set). `apply` is idempotent (an intent row, then the mailbox
change, then completion), so a resumed or repeated `apply` still gives one label and one row.

Checkpoints are serialized by LangGraph's JSON-plus serializer with labelrouter's state types allowed by
name (`STATE_TYPES`): anything else in a checkpoint is not turned back into an object.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from labelrouter.settings import Settings

# The state's own types: the only classes a checkpoint may be read back into (besides LangGraph's).
STATE_TYPES = [("labelrouter.state.message", "EmailMessage"),
               ("labelrouter.state.graph_state", "Summary"),
               ("labelrouter.state.graph_state", "Candidate"),
               ("labelrouter.state.graph_state", "Routing"),
               ("labelrouter.state.graph_state", "ApplyResult"),
               ("labelrouter.state.graph_state", "LabelingState")]
CHECKPOINT_FILE = "checkpoints.sqlite"


def serializer() -> Any:
    from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer

    return JsonPlusSerializer(allowed_msgpack_modules=STATE_TYPES)


def thread_id(message_id: str) -> str:
    """A message's thread."""
    return f"message:{message_id}"


def thread_of(message_id: str) -> dict[str, Any]:
    """The run config of a message's thread."""
    return {"configurable": {"thread_id": thread_id(message_id)}}


def open_checkpointer(settings: Settings) -> Any:
    """The settings' checkpointer: in the PostgreSQL store's database when it is one, else a SQLite file
    beside the embedded store."""
    url = settings.database_url or ""
    if url.startswith(("postgresql://", "postgres://")):
        import psycopg
        from langgraph.checkpoint.postgres import PostgresSaver
        from psycopg.rows import dict_row

        schema = settings.database_schema
        if schema:  # validated by the settings: a plain identifier
            with psycopg.connect(url, autocommit=True) as setup:
                setup.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
        conn = psycopg.connect(url, autocommit=True, prepare_threshold=0, row_factory=dict_row,
                               **({"options": f"-c search_path={schema}"} if schema else {}))
        saver = PostgresSaver(conn, serde=serializer())
        saver.setup()  # its own migrations: idempotent
        return saver
    from langgraph.checkpoint.sqlite import SqliteSaver

    path = settings.home / CHECKPOINT_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(str(path), check_same_thread=False)
    saver = SqliteSaver(conn, serde=serializer())
    saver.setup()  # WAL
    # A checkpoint is written after every node (about six per message): with WAL, synchronous=NORMAL
    # survives a killed process — what durable runs are for — and skips an fsync per commit (~3 ms of the
    # 12-14 ms checkpoints cost a message in a chunk, on this machine). Only a power cut can lose the newest
    # checkpoints; a message whose checkpoint is lost is labeled again from the start, and the store's
    # intent rows (kept at full sync) still give it one label and one row.
    conn.execute("PRAGMA synchronous=NORMAL")
    return saver
