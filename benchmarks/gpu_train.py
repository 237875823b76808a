"""Fine-tune the reference-price model on one GPU (Amazon India products, 80/20 split, seed 0);
prints samples/s and RMSLE. Meant to finish in under 5 minutes on a data-centre GPU.

    .venv/bin/python benchmarks/gpu_train.py [--epochs 10] [--batch-size 64] [--trainer finetune]
        [--patience 2] [--base-model FOLDER] [--data CSV] [--out FILE.json]

`--base-model` is a local checkpoint folder (default: the packaged MiniLM), `--data` the
Amazon India CSV (default: ../shared/data/amazon_in_products.csv), `--out` also writes the JSON
there. `benchmarks/gpu_run.sh` runs the measured configurations on a GPU machine.

A CPU smoke run of the script itself (not a measurement; `--max-products N` reads only the
first N rows of the data set, at least 200 for the neural trainer to run):
    .venv/bin/python benchmarks/gpu_train.py --device cpu --max-products 250 --epochs 1
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

from text_price_accuracy import DATA, load  # noqa: E402

from ml.science.text_price import TrainConfig, train_text_model  # noqa: E402


def main() -> None:
    import torch

    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--trainer", default="finetune", choices=["finetune", "lora"])
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    parser.add_argument("--max-train", type=int, default=None)
    parser.add_argument("--max-products", type=int, default=None)
    parser.add_argument("--patience", type=int, default=TrainConfig.patience)
    parser.add_argument("--base-model", default=None)
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("no CUDA device: this benchmark needs a GPU (--device cpu: smoke run)")
    name = torch.cuda.get_device_name(0) if args.device == "cuda" else "cpu (smoke run)"
    print(f"device: {name}, torch {torch.__version__}")
    texts, prices = load(args.data, limit=args.max_products)
    config = TrainConfig(
        trainer=args.trainer,
        epochs=args.epochs,
        batch_size=args.batch_size,
        device=args.device,
        learning_rate=1e-4,
        max_train_samples=args.max_train,
        patience=args.patience,
        base_model=args.base_model,
    )
    started = time.monotonic()
    outcome = train_text_model(texts, prices, config)
    seconds = time.monotonic() - started
    neural = outcome.metrics[args.trainer]
    candidates = ("baseline", "tfidf_knn", args.trainer, "blend")
    report = json.dumps(
        {
            "device": name,
            "trainer": args.trainer,
            "epochs": args.epochs,
            "batch_size": args.batch_size,
            "patience": args.patience,
            "products": outcome.metrics["n_products"],
            "train_products": outcome.metrics["n_train"],
            "seconds": round(seconds, 1),
            "train_seconds": neural.get("train_seconds"),
            "epochs_run": neural.get("epochs_run"),
            "stopped": neural.get("stopped"),
            "history": neural.get("history"),
            "weights": neural.get("weights"),
            "train_samples_per_s": neural.get("train_samples_per_s"),
            "predict_samples_per_s": neural.get("predict_samples_per_s"),
            "rmsle": {k: outcome.metrics[k]["rmsle"] for k in candidates if k in outcome.metrics},
            "chosen": outcome.chosen,
            "refit": outcome.metrics.get("refit"),
            "under_5_minutes": seconds < 300,
        },
        indent=2,
    )
    print(report, flush=True)
    if args.out:
        args.out.write_text(report + "\n")


if __name__ == "__main__":
    main()
