#!/usr/bin/env bash
# Pack what bench/gpu_check.py needs for a GPU machine without network (a cluster node, a lent machine) that has
# torch, transformers, peft and accelerate: the wheels of the packages it lacks, and SmolLM2's tokenizer (from the
# built-in model, converted once here). Run here, with the repository's .venv set up:
#     bash bench/gpu_check_offline.sh DIR [PYTHON_VERSION]      # PYTHON_VERSION of the GPU machine, default 3.12
# then copy the repository and DIR there and run what this prints. About 50 MB (bitsandbytes is 43 of them).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:?give a folder to pack into}
py=${2:-3.12}
mkdir -p "$out/wheels"
# the versions this repository is tested with (what .venv holds); their own needs the GPU image already has,
# except datasets' dill and multiprocess
for pkg in trl datasets bitsandbytes gguf dill multiprocess; do
  version=$(.venv/bin/python -c "from importlib.metadata import version; print(version('$pkg'))")
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version "$py" --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_24_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform any -d "$out/wheels" "$pkg==$version"
done
python3 -m pip download -q --no-deps --only-binary=:all: --python-version "$py" --implementation cp \
  --platform any -d "$out/wheels" liger-kernel  # not in .venv: Triton kernels, CUDA only
.venv/bin/python - "$out/tokenizer" <<'PY'
import shutil, sys
from transformers import AutoTokenizer
from medtune.models import gguf
AutoTokenizer.from_pretrained(gguf.local_folder(gguf.BUILTIN)).save_pretrained(sys.argv[1])
PY
du -sh "$out"
cat <<MSG
on the GPU machine, in the repository's root (with DIR copied there as $out):
  python3 -m pip install -q --no-index --no-deps --target /tmp/site $out/wheels/*.whl
  PYTHONPATH=/tmp/site:src python3 bench/gpu_check.py --out gpu-check --tokenizer $out/tokenizer
MSG
