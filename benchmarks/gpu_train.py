"""Fine-tune the reference-price model on one GPU (Amazon India products, 80/20 split, seed 0);
prints samples/s and RMSLE. Meant to finish in under 5 minutes on a data-centre GPU.

    .venv/bin/python benchmarks/gpu_train.py [--epochs 4] [--batch-size 64] [--trainer finetune]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from text_price_accuracy import load  # noqa: E402

from ml.text_price import TrainConfig, train_text_model  # noqa: E402


def main() -> None:
    import torch

    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--trainer", default="finetune", choices=["finetune", "lora"])
    args = parser.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("no CUDA device: this benchmark needs a GPU")
    print(f"device: {torch.cuda.get_device_name(0)}, torch {torch.__version__}")
    texts, prices = load()
    config = TrainConfig(trainer=args.trainer, epochs=args.epochs, batch_size=args.batch_size,
                         device="cuda", learning_rate=1e-4)  # fmt: skip
    started = time.monotonic()
    outcome = train_text_model(texts, prices, config)
    seconds = time.monotonic() - started
    neural = outcome.metrics[args.trainer]
    print(json.dumps({
        "seconds": round(seconds, 1),
        "train_samples_per_s": neural.get("train_samples_per_s"),
        "predict_samples_per_s": neural.get("predict_samples_per_s"),
        "rmsle": {k: outcome.metrics[k]["rmsle"] for k in ("baseline", args.trainer, "blend")
                  if k in outcome.metrics},
        "chosen": outcome.chosen,
        "under_5_minutes": seconds < 300,
    }, indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
