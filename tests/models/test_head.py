"""The head artifact format: round trip, unseen labels, and clear errors for anything corrupt."""

import json
from pathlib import Path

import numpy as np
import pytest

from labelrouter.artifacts import LocalArtifacts
from labelrouter.errors import ModelArtifactError
from labelrouter.models.bundle import LinearHead, load_head
from labelrouter.models.head import ColdStartHead
from labelrouter.models.registry import ModelRegistry

LABELS = ["a", "b", "c"]


def _head(version="v1") -> LinearHead:
    rng = np.random.default_rng(1)
    return LinearHead(labels=LABELS, W=rng.normal(size=(3, 8)).astype(np.float32),
                      b=np.zeros(3, np.float32), version=version, embedder="enc@1", thresholds={"fallback": 0.2})


def test_round_trip_gives_the_same_weights(tmp_path: Path):
    head = _head()
    head.save(tmp_path / "h")
    loaded = load_head(tmp_path / "h", embedder="enc@1", dim=8)
    x = np.random.default_rng(2).normal(size=(5, 8)).astype(np.float32)
    np.testing.assert_allclose(loaded.weights(x, LABELS), head.weights(x, LABELS), rtol=1e-6)
    w = loaded.weights(x, LABELS)
    assert ((w >= 0) & (w <= 1)).all() and np.allclose(w.sum(axis=1), 1.0, atol=1e-5)
    assert loaded.thresholds == {"fallback": 0.2}
    # The artifact is JSON + safetensors: nothing that executes on load.
    assert sorted(p.name for p in (tmp_path / "h").iterdir()) == ["head.json", "weights.safetensors"]


def test_config_label_missing_from_head_gets_the_mean_weight():
    head = _head()
    x = np.random.default_rng(3).normal(size=(4, 8)).astype(np.float32)
    w = head.weights(x, ["a", "new", "b", "c"])
    np.testing.assert_allclose(w[:, 1], w[:, [0, 2, 3]].mean(axis=1), rtol=1e-6)


def test_cold_start_is_all_ones(tmp_path: Path):
    head = ModelRegistry(LocalArtifacts(tmp_path)).current_head(embedder="enc@1", dim=8)
    assert isinstance(head, ColdStartHead)
    assert (head.weights(np.zeros((2, 8)), LABELS) == 1.0).all()


def test_current_pointer_selects_a_version(tmp_path: Path):
    registry = ModelRegistry(LocalArtifacts(tmp_path))
    registry.stage(_head("v7"))
    registry.promote("v7", embedder="enc@1", dim=8)
    assert json.loads((tmp_path / "current.json").read_text()) == {"version": "v7"}
    assert registry.current_head(embedder="enc@1", dim=8).version == "v7"


@pytest.mark.parametrize(
    ("breakage", "message"),
    [
        (lambda d: (d / "head.json").write_text("{not json"), "unreadable"),
        (lambda d: (d / "head.json").unlink(), "head.json is missing"),
        (lambda d: (d / "weights.safetensors").write_bytes(b"garbage"), "weights.safetensors unreadable"),
        (lambda d: (d / "weights.safetensors").unlink(), "weights.safetensors is missing"),
        (lambda d: _patch(d, format="pickle"), "not a labelrouter.head/v1 artifact"),
        (lambda d: _patch(d, labels=["a", "b"]), "expected W (2, 8)"),
        (lambda d: _patch(d, embedder="other@2"), "trained on embeddings of 'other@2'"),
        (lambda d: _patch(d, temperature=0), "temperature must be a positive number"),
    ],
)
def test_corrupt_artifacts_raise_a_clear_error(tmp_path: Path, breakage, message):
    directory = tmp_path / "h"
    _head().save(directory)
    breakage(directory)
    with pytest.raises(ModelArtifactError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_head(directory, embedder="enc@1", dim=8)


def _patch(directory: Path, **changes):
    meta = json.loads((directory / "head.json").read_text())
    meta.update(changes)
    (directory / "head.json").write_text(json.dumps(meta))
