"""Shared fixtures. Offline by construction: no model hub, no LLM key, the real encoder loaded once.

Lanes (pyproject's markers): a test that uses the real encoder (the `encoder` fixture, directly or through
another fixture) is marked `slow` here; tests that read `../shared/data` are marked `data` where they are
written. `pytest -m "not slow and not data"` is the fast lane (stub encoder, no data sets); CI runs all.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from labelrouter.graph.wiring import LabelerContext, build_context
from labelrouter.models.encoder import Encoder, load_encoder
from labelrouter.settings import PACKAGED_LABELS, Settings, load_settings

PROJECT_ROOT = Path(__file__).resolve().parents[1]
DATA = PROJECT_ROOT.parent / "shared" / "data"
LABELS_JSON = PACKAGED_LABELS  # the default label list shipped with the package
# Variables that would change what a test sees: removed for every test, restored afterwards.
FOREIGN_ENV = ("GOOGLE_API_KEY", "GEMINI_API_KEY", "SUPABASE_URL", "SUPABASE_SERVICE_ROLE_KEY")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if "encoder" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session", autouse=True)
def _offline():
    """No model hub, for the whole session (set before the encoder's first import, restored after)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        mp.setenv("TRANSFORMERS_OFFLINE", "1")
        yield


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts without the developer's LABELROUTER_* settings or service keys."""
    for name in list(os.environ):
        if name.startswith("LABELROUTER_") or name in FOREIGN_ENV:
            monkeypatch.delenv(name)


@pytest.fixture(scope="session")
def postgres_schemas():
    """Schemas of this test run on the local PostgreSQL (started if installed), dropped at the end."""
    from tests.postgres import URL, ensure_postgres

    problem = ensure_postgres()
    if problem:
        pytest.skip(f"POSTGRES TESTS SKIPPED: {problem}")
    created: list[str] = []
    yield created
    import psycopg

    with psycopg.connect(URL, autocommit=True) as conn:
        for schema in created:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture(scope="session")
def dovecot():
    """A real Dovecot IMAP server of this test run (tests/dovecot_server.py), stopped at the end. Its folder
    is outside pytest's (which is private to root) so that its unprivileged processes can read it."""
    import shutil
    import tempfile

    from tests.dovecot_server import start_dovecot

    root = Path(tempfile.mkdtemp(prefix="labelrouter-dovecot-"))
    server, problem = start_dovecot(root)
    if server is None:
        shutil.rmtree(root, ignore_errors=True)
        pytest.skip(f"IMAP TESTS SKIPPED: {problem}")
    yield server
    server.stop()
    shutil.rmtree(root, ignore_errors=True)


def registry_at(models_dir: Path):
    """The model registry of a local models directory (what `open_artifacts` gives without Supabase)."""
    from labelrouter.artifacts import LocalArtifacts
    from labelrouter.models.registry import ModelRegistry

    return ModelRegistry(LocalArtifacts(models_dir))


@pytest.fixture(scope="session")
def encoder() -> Encoder:
    return load_encoder()


@pytest.fixture
def stub_encoder(monkeypatch: pytest.MonkeyPatch):
    """The stub encoder, also for code that builds its encoder from settings (the CLI, build_context and
    training resolve it through `models.encoder_store.serving_encoder`, which calls `encoder_for`)."""
    import labelrouter.models.encoder
    from tests.stub_encoder import StubEncoder

    stub = StubEncoder()
    monkeypatch.setattr(labelrouter.models.encoder, "encoder_for", lambda settings: stub)
    return stub


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return load_settings(home=tmp_path / "home", labels_path=LABELS_JSON,
                         mailbox_ids_path=tmp_path / "gmail_labels.json")


@pytest.fixture
def ctx(settings: Settings, encoder: Encoder) -> LabelerContext:
    return build_context(settings, mode="decide")
