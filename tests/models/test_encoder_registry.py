"""Fine-tuned encoders in the model registry: stored with checksums, unpacked and checked, never a pickle;
inference and training load the one the current bundle was trained on."""

import shutil
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file

from labelrouter.artifacts import LocalArtifacts
from labelrouter.errors import ModelArtifactError
from labelrouter.models.bundle import LinearHead
from labelrouter.models.encoder import packaged_encoder_path
from labelrouter.models.encoder_store import serving_encoder
from labelrouter.models.registry import ModelRegistry
from labelrouter.settings import load_settings


def _model_folder(path: Path, weight: float = 1.0) -> Path:
    (path / "1_Pooling").mkdir(parents=True)
    (path / "config.json").write_text('{"hidden_size": 4}')
    (path / "modules.json").write_text("[]")
    (path / "1_Pooling" / "config.json").write_text('{"pooling_mode_mean_tokens": true}')
    (path / "vocab.txt").write_text("[PAD]\nhello\n")
    (path / "README.md").write_text("a model card")
    save_file({"w": np.full((4, 4), weight, np.float32)}, str(path / "model.safetensors"))
    return path


def test_an_encoder_round_trips_checked_and_its_version_is_its_content(tmp_path):
    registry = ModelRegistry(LocalArtifacts(tmp_path / "models"))
    version = registry.encoders.put(_model_folder(tmp_path / "out"), name="tuned")
    assert version.startswith("tuned@") and registry.encoders.has(version)
    other = registry.encoders.put(_model_folder(tmp_path / "out2", weight=2.0), name="tuned")
    assert other != version  # other weights, another version
    folder, name = registry.encoders.unpack(version, tmp_path / "cache")
    assert name == "tuned" and (folder / "1_Pooling" / "config.json").exists()
    assert (folder / "model.safetensors").read_bytes() == (tmp_path / "out" / "model.safetensors").read_bytes()
    assert not (folder / "README.md").exists()  # not needed to load it
    stamp = (folder / "model.safetensors").stat().st_mtime_ns
    assert registry.encoders.unpack(version, tmp_path / "cache")[0] == folder
    assert (folder / "model.safetensors").stat().st_mtime_ns == stamp  # a matching unpacking is reused

    stored = tmp_path / "models" / "encoders" / version.replace("@", "-") / "model.safetensors"
    stored.write_bytes(stored.read_bytes()[:-3] + b"xyz")
    with pytest.raises(ModelArtifactError, match="checksum"):
        registry.encoders.unpack(version, tmp_path / "fresh-cache")
    assert not list((tmp_path / "fresh-cache" / "encoders").iterdir())  # nothing half-made is left
    with pytest.raises(ModelArtifactError, match="not in the model registry"):
        registry.encoders.unpack("tuned@000000000000", tmp_path / "cache")


def test_a_pickled_model_is_refused(tmp_path):
    folder = _model_folder(tmp_path / "out")
    (folder / "pytorch_model.bin").write_bytes(b"\x80\x04pickle")
    with pytest.raises(ModelArtifactError, match="pytorch_model.bin would execute code"):
        ModelRegistry(LocalArtifacts(tmp_path / "models")).encoders.put(folder, name="tuned")


def test_the_current_bundle_names_the_encoder_inference_loads(encoder, tmp_path):
    settings = load_settings(home=tmp_path / "home")
    registry = ModelRegistry(LocalArtifacts(settings.resolved_models_dir))
    assert registry.current_encoder() is None
    assert serving_encoder(settings, registry).version == encoder.version  # nothing promoted: the packaged one
    folder = tmp_path / "tuned"
    shutil.copytree(packaged_encoder_path(), folder, ignore=shutil.ignore_patterns("*.bin", "*.onnx", "onnx", "openvino"))
    version = registry.encoders.put(folder, name="tuned")
    head = LinearHead(labels=["a", "b"], W=np.zeros((2, encoder.dim), np.float32), b=np.zeros(2, np.float32),
                      version="h1", embedder=version)
    registry.stage(head)
    registry.promote("h1", embedder=version, dim=encoder.dim)
    assert registry.current_encoder() == version
    serving = serving_encoder(settings, registry)
    assert serving.version == version and serving.name == "tuned"
    np.testing.assert_allclose(serving.encode(["hello"]), encoder.encode(["hello"]), atol=1e-5)  # same weights
    assert serving_encoder(settings.model_copy(update={"encoder_path": packaged_encoder_path()}),
                           registry).version != version  # an explicit encoder path always wins
    with pytest.raises(ModelArtifactError, match="restart it to switch encoders"):  # a process started before
        registry.current_head(embedder=encoder.version, dim=encoder.dim)
