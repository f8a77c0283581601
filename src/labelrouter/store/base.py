"""The Store protocol: what the pipeline, training and label changes need from persistence.

Two backends implement it: SQLite (`store/sqlite.py`, the embedded default) and PostgreSQL
(`store/postgres.py`, e.g. Supabase's database by its direct connection URL). `open_store(settings)` in
`labelrouter.store` is the only place a concrete store is built. Rows come back typed (`store.rows`:
`DecisionRow`, `ExampleRow`), with the same keys and Python types on both backends
(`tests/store/test_store_contract.py` holds them to that).
"""

from __future__ import annotations

from typing import Protocol

from labelrouter.state import ApplyResult, LabelingState, Routing
from labelrouter.store.rows import DecisionRow, ExampleRow, SyncUpdate, Verdict


class Store(Protocol):
    store_text: bool

    def schema_version(self) -> int:
        """The newest migration applied."""

    def migrate(self) -> list[str]:
        """Apply pending migrations (safe when several processes do it at once); returns their names."""

    def record_labeled(self, state: LabelingState) -> bool:
        """Persist a finished decision in one step; never overwrites a labeled row."""

    def record_intent(self, state: LabelingState, label_id: str) -> bool:
        """Before the mailbox changes: the decision as 'applying'. False when another run owns the message."""

    def complete(self, message_id: str, applied: ApplyResult) -> bool:
        """After the mailbox changed: 'applying' becomes 'labeled' with what the mailbox carries."""

    def record_reapply(self, message_id: str, routing: Routing, label_id: str) -> bool:
        """A replayed decision about to be re-applied: an untouched labeled row becomes an intent."""

    def abandon_intent(self, message_id: str, error: str) -> bool:
        """An intent that can never complete: recorded as failed."""

    def pending_intents(self) -> list[DecisionRow]:
        """Rows still 'applying' (a crash or an error between intent and completion)."""

    def record_failed(self, message_id: str, error: str, state: LabelingState | None = None) -> bool:
        """Record a failure; labeled rows stay labeled, applying rows keep their intent."""

    def purge_text(self, before: str) -> int:
        """Delete stored message text older than `before` (ISO time); labels and embeddings stay."""

    def add_examples(self, rows: list[ExampleRow]) -> int:
        """Insert training examples in one transaction; an example id already stored is replaced."""

    def examples(self, encoder_version: str) -> list[ExampleRow]:
        """Examples embedded by this encoder, oldest first."""

    def put_example_vectors(self, encoder_version: str, rows: list[tuple[str, bytes, int]]) -> int:
        """Store (example id, embedding, dim) made by another encoder (a candidate's re-embedding)."""

    def example_vectors(self, encoder_version: str) -> dict[str, bytes]:
        """Example id → embedding, for the examples another encoder has embedded."""

    def drop_example_vectors(self, encoder_version: str) -> int:
        """Forget one encoder's stored vectors (a candidate that was not promoted)."""

    def switch_example_vectors(self, encoder_version: str) -> int:
        """Make that encoder's stored vectors the examples' own, keeping the ones they replace; one transaction."""

    def sync_candidates(self, processed_since: str | None = None) -> list[DecisionRow]:
        """Labeled messages a sync looks at: never synced (incremental), or processed since (nightly)."""

    def record_sync(self, updates: list[SyncUpdate]) -> int:
        """What a sync read per message, in one transaction."""

    def feedback_rows(self) -> list[DecisionRow]:
        """Labeled decisions with their synced state and embedding, for mining."""

    def important_rows(self, encoder_version: str) -> list[DecisionRow]:
        """Decisions whose IMPORTANT flag a sync read back, for the important head."""

    def sync_cursor(self, mailbox: str) -> str | None:
        """Where a mailbox's change feed was read up to (None: never)."""

    def set_sync_cursor(self, mailbox: str, cursor: str, when: str) -> None: ...

    def mark_undone(self, message_ids: list[str], when: str) -> int:
        """Record an undo of our labels before the mailbox changes."""

    def example_counts(self) -> dict[str, int]:
        """Examples per kind (gold, correction, confirmation, silver)."""

    def record_feedback(self, verdicts: list[Verdict], examples: list[ExampleRow],
                        drop_example_ids: list[str]) -> None:
        """Mining's verdicts and the examples they yield, in one transaction."""

    def relabel(self, old: str, new: str) -> dict[str, int]:
        """A renamed or merged label, in examples and decisions (one transaction)."""

    def labeled_ids(self) -> set[str]:
        """Messages with a decision (labeled or applying)."""

    def get(self, message_id: str) -> DecisionRow | None: ...

    def rows(self, status: str | None = None) -> list[DecisionRow]: ...

    def report_rows(self) -> list[DecisionRow]:
        """Every decision's date, outcome, feedback verdict and model, for `labelrouter report`."""

    def counts(self) -> dict[str, int]: ...

    def close(self) -> None: ...
