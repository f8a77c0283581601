"""Model bundles: stage, promote, roll back and watch, on any artifact store. The only module that knows
the layout.

A **bundle** is one version of everything the gate judges together: the encoder id it was trained on, the
head (weights, output labels), the label vectors it refreshed, its thresholds and metrics. Layout, under
the artifact store's root (`<home>/models/` or Supabase Storage `models/label-router/`):

    candidates/<version>/…      staged by training, never read by inference
    versions/<version>/…        promoted bundles: head.json, weights.safetensors, [lexicon.json,] bundle.json
    history.json                {"promoted": [oldest, …, current]}
    current.json                {"version": current}   (what inference reads)

`bundle.json` (format `labelrouter.bundle/v1`) names the encoder and the SHA-256 and size of every file;
it is written last, and a bundle is read back and checked against it before the pointer moves, so a
partial upload or a corrupted object is refused with one line and the previous version stays current.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import numpy as np

from labelrouter.artifacts.base import ArtifactNotFound, ArtifactStore
from labelrouter.errors import ModelArtifactError
from labelrouter.models.head import ColdStartHead, Head, LinearHead, head_from_files, parse_head_meta

log = logging.getLogger(__name__)

BUNDLE_FORMAT = "labelrouter.bundle/v1"
BUNDLE_FILES = ("head.json", "weights.safetensors")
OPTIONAL_FILES = ("lexicon.json",)  # a head with lexical features
# A version is one path segment: nothing that climbs, nothing absolute.
_VERSION = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,127}")


def check_version(version: object, source: str) -> str:
    if not isinstance(version, str) or not _VERSION.fullmatch(version) or ".." in version:
        raise ModelArtifactError(f"{source}: {str(version)[:80]!r} is not a model version name")
    return version


class ModelRegistry:
    def __init__(self, artifacts: ArtifactStore):
        self.artifacts = artifacts

    def _where(self, key: str) -> str:
        return f"{self.artifacts.describe().rstrip('/')}/{key}"

    # -- the pointer and the history -----------------------------------------------------------------
    def _read_json(self, key: str, what: str, fix: str) -> Any:
        try:
            return json.loads(self.artifacts.read(key).decode("utf-8"))
        except ArtifactNotFound:
            return None
        except (UnicodeDecodeError, ValueError) as exc:
            raise ModelArtifactError(f"{self._where(key)}: unreadable {what} ({exc}); {fix}") from None

    def history(self) -> list[str]:
        data = self._read_json("history.json", "promotion history",
                               "restore it from a backup or delete it to start the history again")
        if data is None:
            return []
        versions = data.get("promoted") if isinstance(data, dict) else None
        if not isinstance(versions, list):
            raise ModelArtifactError(f"{self._where('history.json')}: 'promoted' must be a list of versions; "
                                     "restore it from a backup")
        return [check_version(v, self._where("history.json")) for v in versions]

    def current_version(self) -> str | None:
        data = self._read_json("current.json", "pointer to the current model",
                               "`labelrouter models rollback` rewrites it")
        if data is None:
            return None
        if not isinstance(data, dict) or "version" not in data:
            raise ModelArtifactError(f"{self._where('current.json')}: unreadable pointer to the current model "
                                     "(no 'version'); `labelrouter models rollback` rewrites it")
        return check_version(data["version"], self._where("current.json"))

    def _point_to(self, versions: list[str]) -> None:
        self.artifacts.write("history.json", json.dumps({"promoted": versions}).encode())
        if versions:
            self.artifacts.write("current.json", json.dumps({"version": versions[-1]}).encode())
        else:
            self.artifacts.delete("current.json")  # back to the cold-start head

    @property
    def encoders(self) -> EncoderStore:
        return EncoderStore(self.artifacts)

    def current_encoder(self) -> str | None:
        """The encoder version the current bundle was trained on (None: no bundle is current)."""
        version = self.current_version()
        if version is None:
            return None
        manifest = self._read_json(f"versions/{version}/bundle.json", "bundle manifest",
                                   "`labelrouter models rollback` returns to the previous model")
        return str(manifest["encoder"]) if isinstance(manifest, dict) and manifest.get("encoder") else None

    def stamp(self) -> str | None:
        """Changes whenever the pointer does (a promotion or rollback by any process)."""
        return self.artifacts.stamp("current.json")

    # -- bundles -------------------------------------------------------------------------------------
    def _write_bundle(self, folder: str, head: LinearHead) -> None:
        self._write_files(folder, head.to_files(), version=head.version, encoder=head.embedder,
                          created_at=head.created_at)

    def _write_files(self, folder: str, files: dict[str, bytes], *, version: str, encoder: str,
                     created_at: str = "") -> None:
        for name, data in files.items():
            self.artifacts.write(f"{folder}/{name}", data)
        manifest = {"format": BUNDLE_FORMAT, "version": version, "encoder": encoder,
                    "created_at": created_at or datetime.now(UTC).isoformat(timespec="seconds"),
                    "files": {name: {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
                              for name, data in files.items()}}
        self.artifacts.write(f"{folder}/bundle.json", json.dumps(manifest, indent=2).encode())  # last

    def _read_bundle(self, folder: str, *, embedder: str, dim: int) -> LinearHead:
        manifest, files = self._verified_files(folder)
        if manifest.get("encoder") != embedder:
            wanted = str(manifest.get("encoder"))
            if _VERSION.fullmatch(wanted.replace("@", "-")) and self.encoders.has(wanted):
                raise ModelArtifactError(  # a promotion that changed the encoder, seen by a running process
                    f"model bundle {self._where(folder)} uses the fine-tuned encoder {wanted!r}, but this process "
                    f"loaded {embedder!r}; restart it to switch encoders")
            raise ModelArtifactError(
                f"model bundle {self._where(folder)}: trained on embeddings of {wanted!r}, but "
                f"the encoder is {embedder!r}; retrain or roll back")
        return head_from_files(files, self._where(folder), embedder=embedder, dim=dim)

    def _verified_files(self, folder: str) -> tuple[dict[str, Any], dict[str, bytes]]:
        """The manifest and every file it lists, each checked against its checksum."""
        source = self._where(folder)
        try:
            manifest = json.loads(self.artifacts.read(f"{folder}/bundle.json").decode("utf-8"))
        except ArtifactNotFound:
            raise ModelArtifactError(f"model bundle {source}: bundle.json is missing (a partial upload?)") from None
        except (UnicodeDecodeError, ValueError) as exc:
            raise ModelArtifactError(f"model bundle {source}: bundle.json unreadable ({exc})") from None
        listed = manifest.get("files") if isinstance(manifest, dict) else None
        if manifest.get("format") != BUNDLE_FORMAT or not isinstance(listed, dict) \
                or not set(BUNDLE_FILES) <= set(listed) <= set(BUNDLE_FILES + OPTIONAL_FILES):  # type: ignore[arg-type]
            raise ModelArtifactError(f"model bundle {source}: not a {BUNDLE_FORMAT} manifest")
        files = {}
        for name, expected in listed.items():
            try:
                data = self.artifacts.read(f"{folder}/{name}")
            except ArtifactNotFound:
                raise ModelArtifactError(f"model bundle {source}: {name} is missing (a partial upload?)") from None
            if not isinstance(expected, dict) or hashlib.sha256(data).hexdigest() != expected.get("sha256"):
                raise ModelArtifactError(f"model bundle {source}: {name} does not match its checksum "
                                         f"({len(data)} bytes; corrupted or partly written)")
            files[name] = data
        parse_head_meta(files["head.json"], f"{source}/head.json")
        return manifest, files

    def stage(self, head: LinearHead) -> str:
        """Write a candidate where inference never looks; `promote` makes it current."""
        version = check_version(head.version, "candidate")
        self._write_bundle(f"candidates/{version}", head)
        return version

    def staged(self, version: str, *, embedder: str, dim: int) -> LinearHead:
        return self._read_bundle(f"candidates/{check_version(version, 'candidate')}", embedder=embedder, dim=dim)

    def discard(self, version: str | None = None) -> None:
        """Remove one staged candidate, or all of them (a failed or killed training run's leftovers)."""
        self.artifacts.delete(f"candidates/{check_version(version, 'candidate')}/" if version else "candidates/")

    def load(self, version: str, *, embedder: str, dim: int) -> LinearHead:
        return self._read_bundle(f"versions/{check_version(version, 'version')}", embedder=embedder, dim=dim)

    def current_head(self, *, embedder: str, dim: int) -> Head:
        """The promoted head, or the cold-start head when none is."""
        version = self.current_version()
        if version is None:
            return ColdStartHead()
        try:
            return self.load(version, embedder=embedder, dim=dim)
        except ModelArtifactError as exc:
            raise ModelArtifactError(f"{exc}; `labelrouter models rollback` returns to the previous model") from None

    def promote(self, version: str, *, embedder: str, dim: int) -> None:
        """Copy a staged candidate into `versions/`, read it back, then move the pointer to it."""
        version = check_version(version, "candidate")
        if self.artifacts.list(f"versions/{version}/"):
            self._clear_dead_promotion(version)
        head = self.staged(version, embedder=embedder, dim=dim)
        self._write_bundle(f"versions/{version}", head)
        self.load(version, embedder=embedder, dim=dim)  # what was stored is what inference will read
        self._point_to([*self.history(), version])
        self.discard(version)

    def _clear_dead_promotion(self, version: str) -> None:
        """`versions/<version>` exists already. A promotion that died before the pointer moved left either a
        partial copy or the candidate's exact files: both are cleared for the retry. A different, whole
        version of that name (current, or rolled back and kept for `models promote`) is never replaced."""
        exists = ModelArtifactError(f"model version {version} already exists in {self.artifacts.describe()}; "
                                    "`labelrouter models` lists it")
        if version in self.history():
            raise exists
        try:
            stored, _ = self._verified_files(f"versions/{version}")
        except ModelArtifactError:
            stored = None  # a partial copy
        if stored is not None and stored["files"] != self._verified_files(f"candidates/{version}")[0]["files"]:
            raise exists
        self.artifacts.delete(f"versions/{version}/")

    def repromote(self, version: str) -> None:
        """Make a stored version current again (after a rollback); it must still be whole and valid."""
        version = check_version(version, "version")
        if not self.artifacts.list(f"versions/{version}/"):
            raise ModelArtifactError(f"no stored model version {version!r} in {self.artifacts.describe()}; "
                                     "`labelrouter models` lists them")
        self._verified_files(f"versions/{version}")  # a damaged version is refused here, not at the next label
        versions = self.history()
        if not versions or versions[-1] != version:
            self._point_to([*versions, version])

    def rollback(self) -> str | None:
        """Go back one promotion; returns the version now current (None: the cold-start head)."""
        versions = self.history()
        if not versions:
            raise ModelArtifactError("nothing to roll back: no model has been promoted")
        self._point_to(versions[:-1])
        return versions[-2] if len(versions) > 1 else None

    def list_versions(self) -> list[dict[str, Any]]:
        """Every stored version with its metadata, newest first, the current one marked. A damaged version
        is listed with its error instead of failing the listing."""
        current = self.current_version()
        names = sorted({key.split("/")[1] for key in self.artifacts.list("versions/") if key.count("/") >= 2})
        found = []
        for name in names:
            try:
                meta = parse_head_meta(self.artifacts.read(f"versions/{name}/head.json"),
                                       self._where(f"versions/{name}/head.json")).model_dump(exclude={"labels"})
            except ModelArtifactError as exc:
                meta = {"version": name, "metrics": {}, "thresholds": {}, "error": str(exc)}
            meta["current"] = meta.get("version") == current
            found.append(meta)
        return sorted(found, key=lambda m: str(m.get("created_at", "")), reverse=True)


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


class CurrentHead:
    """The promoted head, reloaded when the pointer changes, so a long-running process picks up a
    promotion (or a rollback) without a restart. The pointer is checked at most every `check_every_s`.
    A new version that fails to load is reported once and the head already in use stays."""

    def __init__(self, registry: ModelRegistry, *, embedder: str, dim: int, check_every_s: float = 5.0,
                 clock: Callable[[], float] = time.monotonic):
        self.registry, self.embedder, self.dim = registry, embedder, dim
        self.check_every_s, self.clock = check_every_s, clock
        self._stamp = registry.stamp()
        self._head: Head = registry.current_head(embedder=embedder, dim=dim)
        self._checked = clock()

    def _refresh(self) -> None:
        now = self.clock()
        if now - self._checked < self.check_every_s:
            return
        self._checked = now
        stamp = self.registry.stamp()
        if stamp == self._stamp:
            return
        self._stamp = stamp
        try:
            self._head = self.registry.current_head(embedder=self.embedder, dim=self.dim)
        except ModelArtifactError as exc:
            log.error("keeping model %s: %s", self._head.version, exc)

    @property
    def head(self) -> Head:
        self._refresh()
        return self._head

    @property
    def version(self) -> str:
        return self.head.version

    @property
    def thresholds(self) -> dict[str, float]:
        return self.head.thresholds

    @property
    def metrics(self) -> dict[str, Any]:
        return self.head.metrics

    @property
    def label_vectors(self) -> dict[str, np.ndarray]:
        return self.head.label_vectors

    @property
    def rerank(self) -> Any:
        return self.head.rerank

    def weights(self, embeddings: np.ndarray, labels: list[str],
                documents: list[str] | None = None) -> np.ndarray:
        return self.head.weights(embeddings, labels, documents)

    def evidence(self, document: str, label: str, top: int = 5) -> list[tuple[str, float]]:
        return self.head.evidence(document, label, top)

    def important_probability(self, embeddings: np.ndarray) -> np.ndarray | None:
        return self.head.important_probability(embeddings)


def serving_encoder(settings: Any, registry: ModelRegistry) -> Any:
    """The encoder inference and training use: the fine-tuned one the current bundle was trained on, when
    the registry holds it (`training.bi_encoder`, promoted with its head), else the settings' (the
    packaged MiniLM unless `LABELROUTER_ENCODER_PATH` names another, which then always wins)."""
    from labelrouter.models.encoder import encoder_for, load_encoder

    wanted = registry.current_encoder()
    if wanted and settings.encoder_path is None and registry.encoders.has(wanted):
        path, name = registry.encoders.unpack(wanted, settings.resolved_cache_dir)
        return load_encoder(path, settings.encoder_device, settings.encoder_autocast, settings.batch_size, name)
    return encoder_for(settings)
