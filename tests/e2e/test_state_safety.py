"""State that fails safe: head metadata validated, pointers confined, failed training leaves nothing staged,
label names every backend can hold, label vectors cached."""

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from labelrouter.artifacts import LocalArtifacts
from labelrouter.cli.app import app
from labelrouter.errors import ConfigError, ModelArtifactError
from labelrouter.labels import parse_label_set
from labelrouter.models.bundle import LinearHead
from labelrouter.models.registry import ModelRegistry
from labelrouter.store import SQLiteStore
from labelrouter.training import build_training_context, run_training
from tests.conftest import LABELS_JSON
from tests.helpers import separable_examples

runner = CliRunner()
LABELS = ["a", "b", "c"]


def _head(version="v1") -> LinearHead:
    rng = np.random.default_rng(1)
    return LinearHead(labels=LABELS, W=rng.normal(size=(3, 8)).astype(np.float32), b=np.zeros(3, np.float32),
                      version=version, embedder="enc@1", thresholds={"fallback": 0.2}, metrics={"n_train": 3})


def _registry(models: Path) -> ModelRegistry:
    return ModelRegistry(LocalArtifacts(models))


def _load_current(models: Path):
    return _registry(models).current_head(embedder="enc@1", dim=8)


def _promoted(models: Path, **meta_changes) -> Path:
    """A bundle whose head.json carries `meta_changes` with a manifest that matches it (a bundle written
    wrong, not one damaged afterwards: the checksum would catch that first)."""
    files = _head().to_files()
    meta = json.loads(files["head.json"])
    meta.update(meta_changes)
    files["head.json"] = json.dumps(meta).encode()
    _registry(models)._write_files("versions/v1", files, version="v1", encoder="enc@1")
    (models / "current.json").write_text(json.dumps({"version": "v1"}))
    (models / "history.json").write_text(json.dumps({"promoted": ["v1"]}))
    return models / "versions" / "v1"


@pytest.mark.parametrize(
    ("changes", "fragment"),
    [
        ({"temperature": "hot"}, "'temperature'"),
        ({"temperature": "1.0"}, "'temperature'"),
        ({"thresholds": [0.2, 0.3]}, "'thresholds'"),
        ({"thresholds": {"fallback": "high"}}, "'thresholds.fallback"),
        ({"thresholds": {"fallback": 7}}, "threshold 'fallback' must be between 0 and 1"),
        ({"thresholds": {"fallback_margin": 140}}, "threshold 'fallback_margin' must be between 0 and 100"),
        ({"thresholds": {"fallback": 0.2, "fallback_margin": 12}}, "one fallback rule"),
        ({"metrics": "great"}, "'metrics'"),
        ({"labels": "abc"}, "'labels'"),
        ({"label_vector_labels": 5}, "'label_vector_labels'"),
    ],
)
def test_head_metadata_of_the_wrong_type_is_one_error_naming_the_field(tmp_path, changes, fragment):
    _promoted(tmp_path, **changes)
    with pytest.raises(ModelArtifactError, match=fragment.replace(".", r"\.")) as info:
        _load_current(tmp_path)
    assert "head.json" in str(info.value) and "models rollback" in str(info.value)
    listed = _registry(tmp_path).list_versions()  # the listing shows the damage instead of crashing
    assert listed[0]["version"] == "v1" and "error" in listed[0]


def test_a_head_whose_fallback_is_on_the_margin_loads_and_is_listed_so(tmp_path):
    _promoted(tmp_path / "home" / "models", thresholds={"fallback_margin": 12.5, "archive": 0.9})
    assert _load_current(tmp_path / "home" / "models").thresholds["fallback_margin"] == 12.5
    env = {"LABELROUTER_HOME": str(tmp_path / "home"), "LABELROUTER_LABELS_PATH": str(LABELS_JSON)}
    result = runner.invoke(app, ["models"], env={**env, "COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "margin 12.50" in result.stdout


def test_models_command_survives_damaged_metadata(tmp_path):
    _promoted(tmp_path / "home" / "models", metrics="great", thresholds={"fallback": 0.2})
    env = {"LABELROUTER_HOME": str(tmp_path / "home"), "LABELROUTER_LABELS_PATH": str(LABELS_JSON)}
    result = runner.invoke(app, ["models"], env={**env, "COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "damaged" in result.stdout and "current head: v1" in result.stdout


@pytest.mark.parametrize("version", ["../../elsewhere/head", "/etc", "..", "v1/../../x", "", 7, "a\x00b"])
def test_a_version_pointer_cannot_leave_the_models_directory(tmp_path, version):
    elsewhere = tmp_path / "elsewhere" / "head"
    _head().save(elsewhere)  # a valid head outside the models directory: must never be loaded
    models = tmp_path / "models"
    models.mkdir(parents=True)
    (models / "current.json").write_text(json.dumps({"version": version}))
    with pytest.raises(ModelArtifactError, match="not a model version name|points outside"):
        _load_current(models)
    (models / "history.json").write_text(json.dumps({"promoted": [version]}))
    with pytest.raises(ModelArtifactError):
        _registry(models).history()


def test_a_symlinked_version_that_escapes_is_refused(tmp_path):
    outside = _registry(tmp_path / "outside")
    outside.stage(_head("v9"))
    outside.promote("v9", embedder="enc@1", dim=8)  # a valid bundle, outside the models directory
    versions = tmp_path / "models" / "versions"
    versions.mkdir(parents=True)
    (versions / "v9").symlink_to(tmp_path / "outside" / "versions" / "v9")
    (tmp_path / "models" / "current.json").write_text(json.dumps({"version": "v9"}))
    with pytest.raises(ModelArtifactError, match="points outside"):
        _load_current(tmp_path / "models")


def test_a_failed_training_run_leaves_nothing_staged(tmp_path, settings, encoder, monkeypatch):
    import labelrouter.training.nodes as graph

    store = SQLiteStore(settings.resolved_db_path)
    names = [lb["name"] for lb in json.loads(LABELS_JSON.read_text())["labels"]][:4]
    store.add_examples(separable_examples(encoder, names, 15, dated=False))
    stale = settings.resolved_models_dir / "candidates" / "h-killed-earlier"
    stale.mkdir(parents=True)  # what a training run killed with -9 would leave

    def broken(*args, **kwargs):
        raise RuntimeError("evaluation bug")

    monkeypatch.setattr(graph, "fit_threshold", broken)
    with pytest.raises(RuntimeError, match="evaluation bug"):
        run_training(build_training_context(settings, store))
    candidates = settings.resolved_models_dir / "candidates"
    assert not candidates.exists() or not any(candidates.iterdir())
    assert _registry(settings.resolved_models_dir).history() == []
    monkeypatch.undo()
    state = run_training(build_training_context(settings, store))
    assert state.promoted
    registry = _registry(settings.resolved_models_dir)
    thresholds = registry.current_head(embedder=encoder.version, dim=encoder.dim).thresholds
    assert thresholds["archive"] >= thresholds["fallback"] and thresholds["archive_target_precision"] == 0.97
    assert registry.artifacts.list("candidates/") == []


@pytest.mark.parametrize(
    ("name", "fragment"),
    [("bad\x00name", "control characters"), ("line\nbreak", "control characters"), ("x" * 300, "300 characters"),
     ("🔔" * 70, "bytes in UTF-8"), ("INBOX", "reserved"), ("Spam", "reserved"), ("CATEGORY_SOCIAL", "reserved"),
     (" padded", "whitespace"), ("./.", "other than")],
)
def test_label_names_no_backend_can_hold_are_refused_up_front(name, fragment):
    data = {"fallback": "other", "labels": [{"name": "other"}, {"name": name}]}
    with pytest.raises(ConfigError, match=fragment):
        parse_label_set(data)


def test_label_vectors_are_cached_per_encoder_and_text(tmp_path, encoder, monkeypatch):
    from labelrouter.labels import load_label_set
    from labelrouter.models.label_index import LabelIndex

    labels = load_label_set(LABELS_JSON)
    first = LabelIndex.build(labels, encoder, cache_dir=tmp_path)
    calls = []
    real = encoder.encode
    monkeypatch.setattr(encoder, "encode", lambda texts: calls.append(list(texts)) or real(texts))
    again = LabelIndex.build(labels, encoder, cache_dir=tmp_path)
    np.testing.assert_array_equal(first.vectors, again.vectors)
    assert calls == []  # nothing re-embedded
    data = labels.to_json()
    data["labels"][0]["description"] = "A changed description about code reviews"
    changed = parse_label_set(data)
    LabelIndex.build(changed, encoder, cache_dir=tmp_path)
    assert len(calls) == 1 and len(calls[0]) == 1  # only the changed label
    for damaged in (tmp_path / "label-vectors").iterdir():
        damaged.write_bytes(b"garbage")
    rebuilt = LabelIndex.build(labels, encoder, cache_dir=tmp_path)  # a damaged cache is rebuilt, not fatal
    np.testing.assert_allclose(rebuilt.vectors, first.vectors, atol=1e-6)


def test_a_rolled_back_version_can_be_promoted_again(tmp_path):
    models = tmp_path / "home" / "models"
    directory = _promoted(models)
    env = {"LABELROUTER_HOME": str(tmp_path / "home"), "LABELROUTER_LABELS_PATH": str(LABELS_JSON)}
    assert "cold-start" in runner.invoke(app, ["models", "rollback"], env=env).stdout
    result = runner.invoke(app, ["models", "promote", "v1"], env=env)
    assert result.exit_code == 0 and "current head: v1" in result.stdout
    assert _load_current(models).version == "v1" and _registry(models).history() == ["v1"]
    missing = runner.invoke(app, ["models", "promote", "v9"], env=env)
    assert missing.exit_code == 2 and "no stored model version 'v9'" in missing.stderr
    runner.invoke(app, ["models", "rollback"], env=env)
    (directory / "head.json").write_text("{}")
    damaged = runner.invoke(app, ["models", "promote", "v1"], env=env)
    assert damaged.exit_code == 2 and "head.json does not match its checksum" in damaged.stderr
    assert _registry(models).history() == []
