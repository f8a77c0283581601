"""Shared fixtures. Offline by construction: no model hub, no LLM key, the real encoder loaded once."""

from __future__ import annotations

import os

# Before anything imports transformers / huggingface_hub.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
for _name in list(os.environ):
    if _name.startswith("LABELROUTER_") or _name in ("GOOGLE_API_KEY", "GEMINI_API_KEY"):
        del os.environ[_name]

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

from labelrouter.graph.context import LabelerContext, build_context  # noqa: E402
from labelrouter.models.encoder import Encoder, load_encoder  # noqa: E402
from labelrouter.settings import PACKAGED_LABELS, Settings, load_settings  # noqa: E402

PROJECT_ROOT = Path(__file__).resolve().parents[1]
DATA = PROJECT_ROOT.parent / "shared" / "data"
LABELS_JSON = PACKAGED_LABELS  # the default label list shipped with the package


def registry_at(models_dir: Path):
    """The model registry of a local models directory (what `open_artifacts` gives without Supabase)."""
    from labelrouter.artifacts import LocalArtifacts
    from labelrouter.models.registry import ModelRegistry

    return ModelRegistry(LocalArtifacts(models_dir))


@pytest.fixture(scope="session")
def encoder() -> Encoder:
    return load_encoder()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return load_settings(home=tmp_path / "home", labels_path=LABELS_JSON,
                         mailbox_ids_path=tmp_path / "gmail_labels.json")


@pytest.fixture
def ctx(settings: Settings, encoder: Encoder) -> LabelerContext:
    return build_context(settings, mode="decide")

