"""Model bundles: stage, promote and roll back, on any artifact store. The only module that knows the
layout (fine-tuned encoders are stored beside it: `models.encoder_store`; the served head that follows
promotions is `models.current`).

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
from datetime import UTC, datetime
from typing import Any

from labelrouter.artifacts.base import ArtifactNotFound, ArtifactStore
from labelrouter.errors import ModelArtifactError
from labelrouter.models.bundle import LinearHead, head_from_files, parse_head_meta
from labelrouter.models.encoder_store import VERSION, EncoderStore, check_version
from labelrouter.models.head import ColdStartHead, Head

log = logging.getLogger(__name__)

BUNDLE_FORMAT = "labelrouter.bundle/v1"
BUNDLE_FILES = ("head.json", "weights.safetensors")
OPTIONAL_FILES = ("lexicon.json",)  # a head with lexical features
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
            if VERSION.fullmatch(wanted.replace("@", "-")) and self.encoders.has(wanted):
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
