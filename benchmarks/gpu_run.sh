#!/usr/bin/env bash
# The reference-price model's GPU measurements, as one prepared run on a machine with one CUDA
# device and the image's own PyTorch (no package registry there).
#
#   benchmarks/gpu_run.sh bundle BUNDLE         # here: make the bundle (needs .venv, PyPI access)
#   benchmarks/gpu_run.sh stage BUNDLE          # first part of the bundle: stash it, install wheels
#   benchmarks/gpu_run.sh measure BUNDLE OUTDIR [ARGS...]  # second part: assemble, measure
#
# ARGS go to every benchmarks/gpu_train.py run (a CPU smoke run of this script:
# PYTHON=.venv/bin/python benchmarks/gpu_run.sh measure BUNDLE OUT --device cpu
# --max-products 250 --epochs 1).
#
# BUNDLE: a folder inside the checkout that git ignores (`.gpu`, in .gitignore), made by
# `bundle` on a machine with the project's virtual environment;
# `stage` carries whl/ and model_a/ to the GPU machine, `measure` (while it is still warm)
# model_b/ and data/:
#   whl/      transformers, tokenizers, huggingface_hub and peft wheels at requirements/ml.txt's
#             versions (the image's transformers is another major version);
#   model_a/  the packaged MiniLM's config and tokenizer files and the first part of its
#             model.safetensors (split -b 42M -d: part_00, ...); model_b/ the other parts and
#             the whole file's sha256 (a transfer is limited in size, so the weights travel in two
#             calls while the machine stays warm; they are checked bit for bit before use);
#   data/     amazon_in_products.csv.
# OUTDIR receives one JSON per configuration (benchmarks/gpu_train.py --out) and the log.
set -euo pipefail
stage=${1:?bundle|stage|measure}
bundle=${2:?bundle folder}
py=${PYTHON:-python3}
keep=/tmp/pricing-gpu
site=$keep/site
case "$stage" in
bundle)
    model=$(.venv/bin/python -c 'from ml.science.text_price import default_base_model as d; print(d())')
    rm -rf "$bundle" && mkdir -p "$bundle"/whl "$bundle"/data "$bundle"/model_a "$bundle"/model_b
    pins=$(grep -E '^(transformers|peft)==' requirements/ml.txt)
    pins="$pins $(.venv/bin/pip freeze | grep -iE '^(tokenizers|huggingface.hub)==')"
    # shellcheck disable=SC2086
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
        --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
        --platform manylinux2014_x86_64 -d "$bundle"/whl $pins
    cp ../shared/data/amazon_in_products.csv "$bundle"/data/
    find "$model" -maxdepth 1 -type f ! -name model.safetensors ! -name '.*' \
        -exec cp {} "$bundle"/model_a/ \;
    split -b 42M -d "$model/model.safetensors" "$bundle/part_"
    mv "$bundle"/part_00 "$bundle"/model_a/
    mv "$bundle"/part_* "$bundle"/model_b/
    sha256sum "$model/model.safetensors" | cut -c1-64 >"$bundle"/model_b/sha256
    du -sh "$bundle"/*
    ;;
stage)
    mkdir -p "$keep/model" "$keep/parts"
    cp "$bundle"/model_a/part_* "$keep/parts/"
    find "$bundle"/model_a -maxdepth 1 -type f ! -name 'part_*' -exec cp {} "$keep/model/" \;
    "$py" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target "$site" "$bundle"/whl/*.whl
    PYTHONPATH=$site "$py" -c 'import torch, transformers, peft; print("torch", torch.__version__, "cuda", torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else "-"); print("transformers", transformers.__version__, "peft", peft.__version__)'
    ls -la "$keep/model" "$keep/parts"
    ;;
measure)
    out=${3:?output folder}
    shift 3
    extra=("$@")
    mkdir -p "$out"
    cp "$bundle"/model_b/part_* "$keep/parts/"
    cat "$keep"/parts/part_* >"$keep/model/model.safetensors"
    echo "$(cat "$bundle/model_b/sha256")  $keep/model/model.safetensors" | sha256sum -c -
    export PYTHONPATH=$site PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
    failed=0
    run() {  # one configuration; a failure is reported, and the next still runs
        local name=$1
        shift
        "$py" benchmarks/gpu_train.py --base-model "$keep/model" \
            --data "$bundle/data/amazon_in_products.csv" --out "$out/$name.json" "$@" \
            ${extra[@]+"${extra[@]}"} 2>&1 | tee "$out/$name.log" || {
            echo "$name failed" >&2
            failed=1
        }
    }
    # The RESULTS row: 10 epochs, batch 64, early stopping after 2 epochs without gain.
    run default
    # Longer training: 30 epochs, patience 4.
    run long --epochs 30 --patience 4
    # LoRA adapters instead of the whole encoder, 10 epochs.
    run lora --trainer lora
    exit "$failed"
    ;;
*)
    echo "unknown stage $stage" >&2
    exit 2
    ;;
esac
