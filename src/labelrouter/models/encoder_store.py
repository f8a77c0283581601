"""Fine-tuned encoders in the artifact store, beside the model bundles that name them, and the encoder
inference and training serve with. A version is one path segment (`check_version`), for bundles too."""

from __future__ import annotations

import hashlib
import json
import re
import time
from typing import Any

from labelrouter.artifacts.base import ArtifactNotFound, ArtifactStore
from labelrouter.errors import ModelArtifactError

# A version is one path segment: nothing that climbs, nothing absolute.
VERSION = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,127}")


def check_version(version: object, source: str) -> str:
    if not isinstance(version, str) or not VERSION.fullmatch(version) or ".." in version:
        raise ModelArtifactError(f"{source}: {str(version)[:80]!r} is not a model version name")
    return version


ENCODER_FORMAT = "labelrouter.encoder/v1"
# What a sentence-transformers model folder holds that loading needs; nothing that executes code on load
# (no pickled `pytorch_model.bin`): a folder with one is refused.
ENCODER_SUFFIXES = (".json", ".safetensors", ".txt")


def _encoder_key(version: str) -> str:
    """`name@fingerprint` → the registry folder name (`name-fingerprint`, a plain path segment)."""
    return check_version(version.replace("@", "-"), "encoder")


class EncoderStore:
    """Fine-tuned encoders in the artifact store, beside the bundles that name them:

        encoders/<name>-<fingerprint>/…            the model folder's files (config, safetensors, tokenizer)
        encoders/<name>-<fingerprint>/encoder.json  format, version, name, and each file's SHA-256 and size (last)

    Inference and training unpack one into `<cache>/encoders/<key>/` (checked against the manifest) and
    load it from there. The packaged encoder is never stored: it ships with the package."""

    def __init__(self, artifacts: ArtifactStore):
        self.artifacts = artifacts

    def put(self, folder: Any, *, name: str) -> str:
        """Store the model folder (`training.bi_encoder`'s output) under its version; returns the version."""
        from pathlib import Path

        from labelrouter.models.encoder import encoder_version

        folder = Path(folder)
        files = sorted(p for p in folder.rglob("*") if p.is_file())
        unsafe = [p.name for p in files if p.suffix in (".bin", ".pt", ".pth", ".pkl", ".pickle")]
        if unsafe:
            raise ModelArtifactError(f"encoder {folder}: {', '.join(unsafe)} would execute code on load; "
                                     "save it with safetensors")
        version = encoder_version(folder, name)
        key = _encoder_key(version)
        manifest: dict[str, Any] = {"format": ENCODER_FORMAT, "version": version, "name": name, "files": {}}
        for path in files:
            if path.suffix not in ENCODER_SUFFIXES:
                continue  # a model card, a training log: not needed to load it
            rel = path.relative_to(folder).as_posix()
            data = path.read_bytes()
            self.artifacts.write(f"encoders/{key}/{rel}", data)
            manifest["files"][rel] = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
        self.artifacts.write(f"encoders/{key}/encoder.json", json.dumps(manifest, indent=2).encode())  # last
        return version

    def has(self, version: str) -> bool:
        key = _encoder_key(version)
        return f"encoders/{key}/encoder.json" in self.artifacts.list(f"encoders/{key}/")

    def delete(self, version: str) -> None:
        self.artifacts.delete(f"encoders/{_encoder_key(version)}/")

    def unpack(self, version: str, cache_dir: Any) -> tuple[Any, str]:
        """(local folder, name) of a stored encoder, unpacked under `cache_dir` and checked file by file;
        an earlier unpacking is reused when it still matches."""
        from pathlib import Path

        key = _encoder_key(version)
        where = f"{self.artifacts.describe().rstrip('/')}/encoders/{key}"
        try:
            manifest = json.loads(self.artifacts.read(f"encoders/{key}/encoder.json").decode("utf-8"))
        except ArtifactNotFound:
            raise ModelArtifactError(f"encoder {version} is not in the model registry ({where}); "
                                     "`labelrouter models rollback` returns to the previous model") from None
        except (UnicodeDecodeError, ValueError) as exc:
            raise ModelArtifactError(f"encoder {where}: encoder.json unreadable ({exc})") from None
        files = manifest.get("files") if isinstance(manifest, dict) else None
        if manifest.get("format") != ENCODER_FORMAT or manifest.get("version") != version or not isinstance(files, dict):
            raise ModelArtifactError(f"encoder {where}: not a {ENCODER_FORMAT} manifest of {version}")
        target = Path(cache_dir) / "encoders" / key
        if all(_matches(target / rel, spec) for rel, spec in files.items()):
            return target, str(manifest["name"])
        import shutil

        staging = target.with_name(f"{key}.{time.time_ns()}.tmp")
        try:
            for rel, spec in files.items():
                if Path(rel).suffix not in ENCODER_SUFFIXES or ".." in Path(rel).parts or Path(rel).is_absolute():
                    raise ModelArtifactError(f"encoder {where}: unexpected file {rel!r} in its manifest")
                data = self.artifacts.read(f"encoders/{key}/{rel}")
                if not isinstance(spec, dict) or hashlib.sha256(data).hexdigest() != spec.get("sha256"):
                    raise ModelArtifactError(f"encoder {where}: {rel} does not match its checksum (corrupted or "
                                             "partly written)")
                (staging / rel).parent.mkdir(parents=True, exist_ok=True)
                (staging / rel).write_bytes(data)
            shutil.rmtree(target, ignore_errors=True)
            staging.replace(target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return target, str(manifest["name"])


def _matches(path: Any, spec: Any) -> bool:
    try:
        return isinstance(spec, dict) and path.stat().st_size == spec.get("bytes") and \
            hashlib.sha256(path.read_bytes()).hexdigest() == spec.get("sha256")
    except OSError:
        return False



def serving_encoder(settings: Any, registry: Any) -> Any:
    """The encoder inference and training use: the fine-tuned one the current bundle was trained on, when
    the registry holds it (`training.bi_encoder`, promoted with its head), else the settings' (the
    packaged MiniLM unless `LABELROUTER_ENCODER_PATH` names another, which then always wins)."""
    from labelrouter.models.encoder import encoder_for, load_encoder

    wanted = registry.current_encoder()
    if wanted and settings.encoder_path is None and registry.encoders.has(wanted):
        path, name = registry.encoders.unpack(wanted, settings.resolved_cache_dir)
        return load_encoder(path, settings.encoder_device, settings.encoder_autocast, settings.batch_size, name)
    return encoder_for(settings)
