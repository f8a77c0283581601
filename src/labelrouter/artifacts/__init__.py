"""Artifact stores for model bundles: a local directory or Supabase Storage, chosen by settings."""

from __future__ import annotations

from typing import Any

from labelrouter.artifacts.base import ArtifactNotFound, ArtifactStore, check_key
from labelrouter.artifacts.local import LocalArtifacts
from labelrouter.errors import ConfigError


def open_artifacts(settings: Any) -> ArtifactStore:
    """Supabase Storage when `SUPABASE_URL` and `SUPABASE_SERVICE_ROLE_KEY` are set (or the artifact store
    is set to `supabase`), the local models directory otherwise."""
    choice = settings.artifact_store
    url, key = settings.supabase_url, settings.supabase_service_role_key
    if choice == "supabase" or (choice == "auto" and url and key):
        if not (url and key):
            raise ConfigError("artifact store 'supabase' needs SUPABASE_URL and SUPABASE_SERVICE_ROLE_KEY in the environment")
        from labelrouter.artifacts.supabase import SupabaseArtifacts

        return SupabaseArtifacts.connect(url, key.get_secret_value(), bucket=settings.artifact_bucket,
                                         prefix=settings.artifact_prefix)
    return LocalArtifacts(settings.resolved_models_dir)


__all__ = ["ArtifactNotFound", "ArtifactStore", "LocalArtifacts", "check_key", "open_artifacts"]
