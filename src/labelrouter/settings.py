"""One typed settings object. Values come from `LABELROUTER_*` environment variables or a `.env` file.

Secrets (the Gemini key) are read only from the environment and never printed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from labelrouter.errors import ConfigError
from labelrouter.mail.parse import ParseLimits

# The label list shipped with the package: read when the user has no `config/labels.json` of their own.
# `labelrouter init` copies it there; commands that change labels refuse to edit the packaged copy. In the
# repository it is `config/labels.example.json` (the package's `defaults/labels.json` links to it; a wheel
# holds a copy), resolved so that either path compares equal to it.
PACKAGED_LABELS = (Path(__file__).resolve().parent / "defaults" / "labels.json").resolve()
USER_CONFIG = Path("config")
# The fallback policy's coverage floor (`min_coverage`): every fallback is a message the user files by hand,
# so the fallback keeps to the mail the model is least sure of, at most about a twentieth of it.
MIN_COVERAGE = 0.95


def _labels_default() -> Path:
    local = USER_CONFIG / "labels.json"
    return local if local.exists() else PACKAGED_LABELS


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LABELROUTER_", env_file=".env", extra="ignore")

    # Where things live (the embedded default: all local files).
    # The user's configuration lives in their own `config/` (relative to where labelrouter runs).
    labels_path: Path = Field(default_factory=_labels_default)
    mailbox_ids_path: Path = USER_CONFIG / "gmail_labels.json"
    home: Path = Path(".labelrouter")
    mailbox_path: Path | None = None  # default: <home>/mailbox (a Maildir)
    # Which mailbox run, sync and undo work on: the local Maildir, or Gmail (docs/gmail.md).
    mailbox: Literal["maildir", "gmail"] = "maildir"
    gmail_token_path: Path | None = None  # default: <home>/gmail-token.json (written by `labelrouter gmail auth`)
    gmail_user: str = "me"
    db_path: Path | None = None  # default: <home>/labelrouter.sqlite3
    # The store: unset → SQLite at db_path; a path or sqlite:///PATH; or postgresql://USER@HOST:PORT/DB
    # (Supabase: its direct connection URL). database_schema: a Postgres schema other than the default.
    database_url: str | None = None
    database_schema: str | None = Field(None, pattern=r"^[a-z_][a-z0-9_]{0,62}$")
    models_dir: Path | None = None  # default: <home>/models
    # Where model bundles live: "auto" is Supabase Storage when SUPABASE_URL and SUPABASE_SERVICE_ROLE_KEY
    # are set in the environment, the local models_dir otherwise (docs/models.md).
    artifact_store: Literal["auto", "local", "supabase"] = "auto"
    artifact_bucket: str = "models"
    artifact_prefix: str = "label-router/"
    supabase_url: str | None = Field(None, validation_alias=AliasChoices("LABELROUTER_SUPABASE_URL", "SUPABASE_URL"))
    supabase_service_role_key: SecretStr | None = Field(
        None, validation_alias=AliasChoices("LABELROUTER_SUPABASE_SERVICE_ROLE_KEY", "SUPABASE_SERVICE_ROLE_KEY"))
    cache_dir: Path | None = None  # default: <home>/cache (derived data only: label vectors)

    # Router.
    top_k: int = Field(20, ge=1)
    # A trained head's own top labels join the retrieved ones as candidates (docs/scoring.md).
    head_k: int = Field(5, ge=0)
    # Router weight = 100 · sigmoid((cosine − sim_center) / sim_scale); see docs/scoring.md.
    sim_center: float = 0.25
    sim_scale: float = Field(0.07, gt=0)
    # A decision whose confidence (winner's final score / 100) is below this gets the fallback label, until
    # a promoted head brings its own: the fallback policy refits it on validation to reach
    # `target_precision`, but never so high that fewer than `min_coverage` of messages get a real label.
    fallback_threshold: float = Field(0.35, ge=0, le=1)
    target_precision: float = Field(0.90, gt=0, le=1)
    min_coverage: float = Field(MIN_COVERAGE, ge=0, le=1)
    # What a trained head's fallback threshold is on: "auto" lets validation choose between the confidence and
    # the margin over the runner-up (docs/training.md, "The fallback policy"); the others pin one.
    fallback_on: Literal["auto", "confidence", "margin"] = "auto"
    # A label whose config archives takes the message out of the inbox only at or above this confidence
    # (until a promoted head brings its own, refit at `archive_target_precision`; a label's
    # `archive_confidence` in labels.json overrides both). Below it the label is applied, the mail stays.
    archive_threshold: float = Field(0.8, ge=0, le=1)
    archive_target_precision: float = Field(0.97, gt=0, le=1)

    # Encoder.
    encoder_path: Path | None = None  # default: the packaged all-MiniLM-L6-v2
    encoder_device: str = "cpu"
    # bf16 autocast: "auto" uses it only where the CPU has native bf16 (it is ~5x slower without).
    encoder_autocast: Literal["auto", "bf16", "off"] = "auto"
    batch_size: int = Field(64, ge=1)
    # How the settings' encoder runs: torch, or ONNX Runtime (`pip install -e ".[onnx]"`; exported locally
    # into <cache>/onnx on first use). onnx-int8 is dynamically quantized: faster on CPUs, its own vectors
    # (a different encoder version: stored examples are re-embedded for it). docs/decisions/0005-encoder-token-budget.md.
    encoder_backend: Literal["torch", "onnx", "onnx-int8"] = "torch"

    # Input cleaning. Hostile mail is capped before parsing; see mail/parse.py.
    max_message_bytes: int = Field(30_000_000, ge=1024)
    max_body_chars: int = Field(20_000, ge=100)
    snippet_chars: int = Field(1_500, ge=50)
    max_header_fields: int = Field(500, ge=10)
    max_header_chars: int = Field(8_000, ge=200)
    max_mime_depth: int = Field(32, ge=1)
    # Wall-clock budget for parsing and cleaning one message; over it, the message is recorded as failed.
    message_time_budget_s: float = Field(15.0, ge=0)
    # Checkpoint every message's run (`graph.checkpoints`: <home>/checkpoints.sqlite, or the PostgreSQL
    # store's database), so a run killed half-way resumes where it stopped; a finished message's checkpoints
    # are deleted (they hold its text).
    durable_runs: bool = False

    # The worker fleet (docs/fleet.md): read only by `labelrouter worker`, `beat` and `fleet`. The fleet file
    # names the mailboxes (each a set of these settings); the broker is Redis, which also holds the
    # per-mailbox leases, the idempotency keys and the shared Gmail quota, under `fleet_namespace`.
    fleet_path: Path = USER_CONFIG / "fleet.json"
    broker_url: str = "redis://127.0.0.1:6379/0"
    fleet_namespace: str = Field("labelrouter", pattern=r"^[A-Za-z0-9_.-]{1,64}$")  # queue name, key prefix
    # A mailbox's lease is renewed while its worker lives and expires this long after the worker dies.
    fleet_lease_s: int = Field(60, ge=1)
    # A task taken by a worker that died unacknowledged is handed out again after this long (Redis broker).
    fleet_visibility_timeout_s: int = Field(3600, ge=1)
    fleet_poll_every_s: float = Field(60.0, gt=0)
    fleet_nightly_sync_at: str = Field("02:00", pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$")  # beat's clock
    fleet_nightly_train_at: str = Field("03:00", pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$")
    nightly_sync_days: float = Field(30.0, gt=0)
    gmail_units_per_minute: int = Field(15_000, ge=1)  # Gmail's per-user quota; the fleet shares it

    # Privacy: the store keeps subject, sender and the decision; with store_text it also keeps the summary
    # (the offline summary is the subject and the lead of the body). False keeps no body-derived text.
    store_text: bool = True
    # Days the stored text (embedded text, summary) is kept; unset keeps it. Older text is deleted at the
    # start of each run; labels, scores and embeddings stay (training keeps working, re-embedding cannot).
    text_retention_days: int | None = Field(None, ge=0)

    # Extension nodes not installed as packages: module:attr,... (installed ones register the entry-point
    # group `labelrouter.nodes`). See docs/extending.md.
    extensions: str | None = None
    # The shipped sender-rules extension reads this file when it exists (docs/extending.md).
    sender_rules_path: Path = USER_CONFIG / "sender_rules.json"

    # Summarizer: "auto" uses Gemini when a key is set, the offline summarizer otherwise.
    summarizer: Literal["auto", "offline", "gemini"] = "auto"
    gemini_model: str = "gemini-2.5-flash"
    google_api_key: SecretStr | None = Field(
        None, validation_alias=AliasChoices("LABELROUTER_GOOGLE_API_KEY", "GOOGLE_API_KEY", "GEMINI_API_KEY")
    )
    llm_attempts: int = Field(3, ge=1)
    llm_backoff_s: float = Field(1.0, ge=0)
    llm_timeout_s: float = Field(30.0, gt=0)

    @property
    def uses_packaged_labels(self) -> bool:
        return self.labels_path.resolve() == PACKAGED_LABELS

    @property
    def resolved_mailbox_path(self) -> Path:
        return self.mailbox_path or self.home / "mailbox"

    @property
    def resolved_gmail_token_path(self) -> Path:
        return self.gmail_token_path or self.home / "gmail-token.json"

    @property
    def resolved_db_path(self) -> Path:
        return self.db_path or self.home / "labelrouter.sqlite3"

    @property
    def resolved_cache_dir(self) -> Path:
        return self.cache_dir or self.home / "cache"

    @property
    def resolved_models_dir(self) -> Path:
        return self.models_dir or self.home / "models"

    def parse_limits(self) -> ParseLimits:
        return ParseLimits(max_bytes=self.max_message_bytes, max_header_fields=self.max_header_fields,
                           max_header_chars=self.max_header_chars, max_mime_depth=self.max_mime_depth,
                           max_body_chars=self.max_body_chars, snippet_chars=self.snippet_chars)

    def use_gemini(self) -> bool:
        if self.summarizer == "offline":
            return False
        if self.summarizer == "gemini" and self.google_api_key is None:
            raise ConfigError("summarizer is 'gemini' but neither GOOGLE_API_KEY nor GEMINI_API_KEY is set")
        return self.google_api_key is not None


def load_settings(**overrides: object) -> Settings:
    """Build settings, turning validation errors into one readable ConfigError."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        raise ConfigError(f"invalid settings: {problems}") from None
