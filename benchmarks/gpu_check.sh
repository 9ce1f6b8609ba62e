#!/usr/bin/env bash
# The GPU path in one run, sized for a lent GPU machine: under 9 minutes, under 64 MiB carried.
#
#   benchmarks/gpu_check.sh                 # on the GPU machine, from the repository root
#   benchmarks/gpu_check.sh --dry-run       # here, on the CPU: the same steps, small
#   benchmarks/gpu_check.sh --fetch-wheels  # here: the wheels the GPU image lacks, into .whl/
#
# With the device tool: --fetch-wheels here once, then run `benchmarks/gpu_check.sh` with
# carry [".whl"] and timeout_s 560; the step logs come back from $OUT.
#
# Steps (each with its own time limit, each logged to $OUT/<step>.log; a failed step does not
# stop the others): the machine and what it lacks; the `gpu`-marked tests; classify throughput
# of the bundled model and of a KoELECTRA-base-shaped checkpoint on CUDA beside the model
# card's one-text loop; 10,000 synthetic tracks indexed on CUDA; FAISS on the GPU.
#
# The GPU image has PyTorch, transformers, pandas and pyarrow but not pydantic or pydantic-settings
# (imported by the package) nor FAISS. Their wheels are small and travel in .whl/ (--fetch-wheels). A FAISS
# wheel does not fit beside the repository in 64 MiB (faiss-cpu ~30 MB, faiss-gpu-cu12 and its
# CUDA 12 libraries far more; the image's CUDA is 13), so without one the index write and the
# FAISS rows report that they were not measured.
set -uo pipefail
cd "$(dirname "$0")/.."

mode=${1:-run}
PY=${PYTHON:-python3}
[[ $mode != run && -x .venv/bin/python ]] && PY=.venv/bin/python
if [[ $mode == --fetch-wheels ]]; then
    # The versions installed here, as wheels for the GPU image's Python 3.12.
    mkdir -p .whl
    for name in pydantic pydantic-core pydantic-settings python-dotenv annotated-types \
        typing-inspection typing-extensions; do
        version=$("$PY" -c 'import importlib.metadata as m, sys; print(m.version(sys.argv[1]))' \
            "$name") || exit 1
        "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
            --implementation cp --platform manylinux_2_28_x86_64 \
            --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl \
            "$name==$version" || exit 1
    done
    du -sh .whl
    exit 0
fi

if [[ $mode == --dry-run ]]; then
    DEVICE=cpu TEXTS=16 TRACKS=200 VECTORS=20000 SMALL=--small
    OUT=${OUT:-$(mktemp -d)}
else
    DEVICE=cuda TEXTS=512 TRACKS=10000 VECTORS=1000000 SMALL=
    OUT=${OUT:-/tmp/gpu-check}
fi
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false

if compgen -G ".whl/*.whl" >/dev/null && [[ $mode != --dry-run ]]; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}  # the package from this tree

failed=0
step() {  # step NAME SECONDS COMMAND...
    local name=$1 limit=$2
    shift 2
    echo "=== $name (limit ${limit}s) ==="
    local start=$SECONDS
    timeout "$limit" "$@" 2>&1 | tee "$OUT/$name.log"
    local status=${PIPESTATUS[0]}
    echo "=== $name: exit $status after $((SECONDS - start))s ==="
    ((status == 0)) || failed=$((failed + 1))
}

step environment 30 bash -c "
    date -u; nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || true
    $PY - <<'EOF'
import importlib.util, sys
import torch
print('python', sys.version.split()[0], 'torch', torch.__version__,
      'cuda', torch.version.cuda, 'sees a GPU:', torch.cuda.is_available())
missing = [m for m in ('transformers', 'pandas', 'pyarrow', 'pydantic', 'pydantic_settings',
                       'onnxruntime',
                       'tqdm', 'click', 'faiss', 'ray', 'pytest')
           if importlib.util.find_spec(m) is None]
print('missing:', ', '.join(missing) or 'nothing')
EOF"
step gpu-tests 100 "$PY" -m pytest -q -p no:cacheprovider -m gpu \
    tests/test_indexing.py tests/test_track_index.py -rs
step classify 200 "$PY" benchmarks/gpu.py classify --device "$DEVICE" --texts "$TEXTS" $SMALL
step index 120 "$PY" benchmarks/gpu.py index --device "$DEVICE" --tracks "$TRACKS"
step faiss 45 "$PY" benchmarks/gpu.py faiss --vectors "$VECTORS"
echo "logs in $OUT; $failed step(s) failed"
exit $((failed > 0))
