#!/usr/bin/env bash
# Packs what a GPU machine lent through the `device` tool lacks, into two ignored folders of the checkout
# that a run carries: .whl/ (wheels of the Python packages its image lacks, at this venv's versions) and
# .gpu/ (the packaged MiniLM with its weights stored as fp16 — fp32 is 91 MB and a call carries 64 MiB in
# all; there.sh restores fp32 — and the data sets named). Run here, in the repository root:
#
#     bash benchmarks/gpu/pack.sh clinc150 [20newsgroups]
#
# then name .whl and .gpu in the run's `carry` and start its command with `source benchmarks/gpu/there.sh`.
set -euo pipefail
cd "$(dirname "$0")/../.."
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || printf '/.whl/\n/.gpu/\n' >> .git/info/exclude
# What labelrouter's evaluation and training modules import that the image ('cuda': torch, transformers,
# numpy, scipy, scikit-learn, pandas, pyarrow …) does not hold. sentence-transformers: this venv's.
NEEDED="annotated-types beautifulsoup4 soupsieve distro filetype httpx2 httpcore2 h2 hpack hyperframe jsonpatch
jsonpointer langchain-core langchain-protocol langsmith opentelemetry-api opentelemetry-exporter-http-transport
opentelemetry-exporter-otlp-common opentelemetry-exporter-otlp-proto-common opentelemetry-exporter-otlp-proto-http
opentelemetry-exporter-prometheus opentelemetry-proto opentelemetry-sdk opentelemetry-semantic-conventions orjson
pydantic pydantic_core requests-toolbelt typing-inspection uuid_utils zstandard datasets dill multiprocess sniffio
sentence-transformers"
rm -rf .whl && mkdir -p .whl
for name in $NEEDED; do
  echo "$name==$(.venv/bin/pip show "$name" | awk '/^Version/{print $2}')"
done > .whl/requirements.txt
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  -d .whl -r .whl/requirements.txt
rm -rf .gpu && mkdir -p .gpu/model .gpu/data
.venv/bin/python - <<'PY'
import shutil
from pathlib import Path

from safetensors.torch import load_file, save_file

from labelrouter.models.encoder import packaged_encoder_path

src, dst = packaged_encoder_path(), Path(".gpu/model")
shutil.copytree(src, dst, dirs_exist_ok=True, ignore=shutil.ignore_patterns("model.safetensors", "*.md", ".git*"))
save_file({k: v.half().contiguous() for k, v in load_file(src / "model.safetensors").items()}, dst / "model-fp16.safetensors")
PY
for set in "$@"; do cp -r "../shared/data/$set" .gpu/data/; done
du -sh .whl .gpu
