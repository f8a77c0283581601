"""Model bundles on both artifact stores: a local directory, and Supabase Storage through the official
client against an HTTP-level fake of its API (tests/fake_supabase_storage.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from labelrouter.artifacts import ArtifactNotFound, LocalArtifacts, open_artifacts
from labelrouter.artifacts.supabase import SupabaseArtifacts
from labelrouter.errors import ModelArtifactError
from labelrouter.models.bundle import LinearHead
from labelrouter.models.current import CurrentHead
from labelrouter.models.head import ColdStartHead
from labelrouter.models.registry import ModelRegistry
from labelrouter.settings import load_settings
from tests.fake_supabase_storage import FakeStorage

LABELS = ["a", "b", "c"]


def _head(version: str, favour: int = 0, embedder: str = "enc@1", dim: int = 8) -> LinearHead:
    b = np.full(len(LABELS), -3.0, np.float32)
    b[favour] = 3.0
    return LinearHead(labels=LABELS, W=np.zeros((len(LABELS), dim), np.float32), b=b, version=version,
                      embedder=embedder, thresholds={"fallback": 0.2}, metrics={"validation": {"top1": 0.9}},
                      label_vectors={"a": np.ones(dim, np.float32) / np.sqrt(dim)})


@pytest.fixture(scope="module")
def fake():
    with FakeStorage() as server:
        yield server


@pytest.fixture(params=["local", "supabase"])
def artifacts(request, tmp_path, fake):
    if request.param == "local":
        return LocalArtifacts(tmp_path / "models")
    # A prefix of its own per test, in the one bucket the fake serves.
    return SupabaseArtifacts.connect(fake.url, fake.key, prefix=f"label-router/{tmp_path.name}/")


def test_objects_round_trip_list_and_delete(artifacts):
    with pytest.raises(ArtifactNotFound):
        artifacts.read("versions/v1/head.json")
    assert artifacts.stamp("current.json") is None and artifacts.list("versions/") == []
    artifacts.write("versions/v1/head.json", b"{}")
    artifacts.write("versions/v1/weights.safetensors", b"\x00\x01")
    artifacts.write("versions/v2/head.json", b"[]")
    artifacts.write("current.json", b'{"version": "v1"}')
    assert artifacts.read("versions/v1/weights.safetensors") == b"\x00\x01"
    assert artifacts.list("versions/") == ["versions/v1/head.json", "versions/v1/weights.safetensors",
                                           "versions/v2/head.json"]
    before = artifacts.stamp("current.json")
    artifacts.write("current.json", b'{"version": "v2"}')
    assert artifacts.stamp("current.json") != before
    artifacts.delete("versions/v1/")
    assert artifacts.list("versions/") == ["versions/v2/head.json"]
    artifacts.delete("current.json")
    assert artifacts.stamp("current.json") is None


@pytest.mark.parametrize("key", ["../escape", "/etc/passwd", "a//b", "a/./b", "", "a\nb"])
def test_keys_that_climb_or_are_not_paths_are_refused(artifacts, key):
    with pytest.raises(ModelArtifactError, match="not an artifact key"):
        artifacts.write(key, b"x")


def test_registry_promotes_rolls_back_and_lists_on_either_store(artifacts):
    registry = ModelRegistry(artifacts)
    assert isinstance(registry.current_head(embedder="enc@1", dim=8), ColdStartHead)
    for version, favour in (("v1", 0), ("v2", 1)):
        registry.stage(_head(version, favour))
        registry.promote(version, embedder="enc@1", dim=8)
    current = registry.current_head(embedder="enc@1", dim=8)
    assert current.version == "v2" and current.thresholds == {"fallback": 0.2}
    assert set(current.label_vectors) == {"a"} and current.metrics["validation"]["top1"] == 0.9
    assert artifacts.list("candidates/") == []  # promoted candidates are not left behind
    assert [m["version"] for m in registry.list_versions() if m["current"]] == ["v2"]
    assert registry.rollback() == "v1" and registry.current_head(embedder="enc@1", dim=8).version == "v1"
    registry.repromote("v2")
    assert registry.history() == ["v1", "v2"]
    with pytest.raises(ModelArtifactError, match="already exists"):
        registry.stage(_head("v2"))
        registry.promote("v2", embedder="enc@1", dim=8)


def test_a_corrupted_bundle_is_one_line_and_the_running_head_stays(fake, tmp_path):
    artifacts = SupabaseArtifacts.connect(fake.url, fake.key, prefix="label-router/corrupt/")
    registry = ModelRegistry(artifacts)
    registry.stage(_head("v1"))
    registry.promote("v1", embedder="enc@1", dim=8)
    now = [0.0]
    watcher = CurrentHead(registry, embedder="enc@1", dim=8, check_every_s=1, clock=lambda: now[0])
    registry.stage(_head("v2", favour=2))
    registry.promote("v2", embedder="enc@1", dim=8)
    # Someone's bytes rot in the bucket after the promotion.
    key = ("models", "label-router/corrupt/versions/v2/weights.safetensors")
    fake.objects[key] = fake.objects[key][:-7]
    with pytest.raises(ModelArtifactError) as info:
        registry.current_head(embedder="enc@1", dim=8)
    message = str(info.value)
    assert "\n" not in message and "weights.safetensors does not match its checksum" in message
    assert "models rollback" in message
    now[0] = 5.0
    assert watcher.version == "v1"  # the process keeps deciding with the head it had


def test_a_partial_upload_is_never_current(fake):
    artifacts = SupabaseArtifacts.connect(fake.url, fake.key, prefix="label-router/partial/")
    registry = ModelRegistry(artifacts)
    registry.stage(_head("v1"))
    registry.promote("v1", embedder="enc@1", dim=8)
    registry.stage(_head("v2", favour=1))
    fake.fail_uploads_after = fake._uploads + 1  # the connection dies after the first file of the copy
    try:
        with pytest.raises(ModelArtifactError) as info:
            registry.promote("v2", embedder="enc@1", dim=8)
    finally:
        fake.fail_uploads_after = None
    assert "\n" not in str(info.value) and "upstream storage unavailable" in str(info.value)
    assert registry.current_version() == "v1" and registry.history() == ["v1"]
    assert registry.current_head(embedder="enc@1", dim=8).version == "v1"
    # Pointing at the half-written version by hand is refused with one line, too.
    with pytest.raises(ModelArtifactError, match="bundle.json is missing"):
        registry.load("v2", embedder="enc@1", dim=8)


def test_settings_choose_supabase_only_with_url_and_key_from_the_environment(fake, tmp_path, monkeypatch):
    monkeypatch.delenv("SUPABASE_URL", raising=False)
    monkeypatch.delenv("SUPABASE_SERVICE_ROLE_KEY", raising=False)
    assert isinstance(open_artifacts(load_settings(home=tmp_path)), LocalArtifacts)
    monkeypatch.setenv("SUPABASE_URL", fake.url)
    monkeypatch.setenv("SUPABASE_SERVICE_ROLE_KEY", fake.key)
    chosen = open_artifacts(load_settings(home=tmp_path))
    assert isinstance(chosen, SupabaseArtifacts) and chosen.describe().endswith("/models/label-router/")
    assert fake.key not in chosen.describe() and fake.key not in repr(load_settings(home=tmp_path))
    monkeypatch.setenv("SUPABASE_SERVICE_ROLE_KEY", "wrong-key")
    with pytest.raises(ModelArtifactError) as info:
        ModelRegistry(open_artifacts(load_settings(home=tmp_path))).current_version()
    assert "invalid signature" in str(info.value) and "wrong-key" not in str(info.value)
    monkeypatch.delenv("SUPABASE_URL")
    with pytest.raises(Exception, match="SUPABASE_URL"):
        open_artifacts(load_settings(home=tmp_path, artifact_store="supabase"))


@pytest.mark.slow
def test_a_head_promoted_to_supabase_decides_the_same_labels_in_a_new_process(fake, tmp_path, encoder, monkeypatch):
    from labelrouter.demo import sample_messages
    from labelrouter.graph.labeler import Labeler
    from labelrouter.graph.wiring import build_context
    from labelrouter.labels import load_label_set
    from labelrouter.mail.parse import parse_message
    from labelrouter.training.head import train_linear_head
    from tests.conftest import LABELS_JSON

    env = {"SUPABASE_URL": fake.url, "SUPABASE_SERVICE_ROLE_KEY": fake.key,
           "LABELROUTER_ARTIFACT_PREFIX": "label-router/roundtrip/", "LABELROUTER_HOME": str(tmp_path / "home"),
           "LABELROUTER_LABELS_PATH": str(LABELS_JSON)}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = load_settings()
    labels = load_label_set(LABELS_JSON)
    samples = sample_messages()
    messages = [parse_message(raw) for _, raw in samples]
    # A head that learned the demo's labels with two of them swapped: decisions a cold router never makes.
    swap = {"💼-work-projects": "💰-finance-bills", "💰-finance-bills": "💼-work-projects"}
    X = encoder.encode([f"{m.subject}\n{m.body[:1500]}" for m in messages])
    y = [swap.get(label, label) for label, _ in samples]
    head = train_linear_head(X, y, embedder=encoder.version, version="h-supabase", label_order=labels.names)
    registry = ModelRegistry(open_artifacts(settings))
    registry.stage(head)
    registry.promote("h-supabase", embedder=encoder.version, dim=encoder.dim)
    assert "label-router/roundtrip/versions/h-supabase/bundle.json" in fake.keys("models")
    assert not (tmp_path / "home" / "models").exists()  # nothing went to the local directory

    here = [r["routing"].label for r in Labeler(build_context(settings), settings).label_many(messages)]
    mbox = tmp_path / "mail.mbox"
    mbox.write_bytes(b"".join(b"From x@y Thu Jan  1 00:00:00 2026\n" + raw.replace(b"\nFrom ", b"\n>From ") + b"\n"
                              for _, raw in samples))
    proc = subprocess.run([sys.executable, "-m", "labelrouter", "label", str(mbox), "--compact"],
                          capture_output=True, text=True, env={**os.environ, **env}, timeout=300)
    assert proc.returncode == 0, proc.stderr
    there = [json.loads(line) for line in proc.stdout.splitlines()]
    assert all(d["model_version"].endswith("+head:h-supabase") for d in there)
    assert [d["label"] for d in there] == here
    assert sum(d["label"] == "💰-finance-bills" for d, (label, _) in zip(there, samples, strict=True)
               if label == "💼-work-projects") >= 1  # the swap the head learned is in force over there too
