"""Training and inference throughput of the fine-tune trainer beside a plain reference loop,
measured in one run on the same texts (this machine's speed varies: compare only within a run).

    .venv/bin/python benchmarks/text_price_throughput.py
        [--train-samples 1024] [--infer-samples 2048]

Reference: a straightforward Hugging Face loop in fp32 with fixed padding to 128 tokens.
Ours: ml.science.text_price (length-bucketed batches padded to their longest text, max length
from the text-length distribution, bf16 autocast where the CPU supports it).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from text_price_accuracy import load  # noqa: E402

from ml.science.text_price import (  # noqa: E402
    EncoderRegressor,
    FineTuned,
    TrainConfig,
    bf16_supported,
    choose_max_length,
    default_base_model,
    fine_tune,
    pick_device,
)


def reference_train(texts, targets, batch_size: int) -> float:
    import torch
    from transformers import AutoModel, AutoTokenizer

    folder = default_base_model()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    encoder = AutoModel.from_pretrained(folder)
    head = torch.nn.Linear(encoder.config.hidden_size, 1)
    optimizer = torch.optim.AdamW(list(encoder.parameters()) + list(head.parameters()), lr=5e-5)
    encoder.train()
    y = torch.tensor(targets, dtype=torch.float32)
    started, seen = None, 0
    for i, start in enumerate(range(0, len(texts), batch_size)):
        if i == 2:  # two warm-up steps
            started, seen = time.perf_counter(), 0
        chunk = texts[start : start + batch_size]
        batch = tokenizer(
            chunk, padding="max_length", truncation=True, max_length=128, return_tensors="pt"
        )
        out = encoder(**batch).last_hidden_state[:, 0]
        loss = torch.nn.functional.mse_loss(head(out).squeeze(-1), y[start : start + batch_size])
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        seen += len(batch["input_ids"])
    return seen / (time.perf_counter() - started)


def reference_infer(texts, batch_size: int) -> float:
    import torch
    from transformers import AutoModel, AutoTokenizer

    folder = default_base_model()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    encoder = AutoModel.from_pretrained(folder).eval()
    started = time.perf_counter()
    with torch.inference_mode():
        for start in range(0, len(texts), batch_size):
            chunk = texts[start : start + batch_size]
            batch = tokenizer(
                chunk, padding="max_length", truncation=True, max_length=128, return_tensors="pt"
            )
            encoder(**batch)
    return len(texts) / (time.perf_counter() - started)


def main() -> None:
    import torch

    parser = argparse.ArgumentParser()
    parser.add_argument("--train-samples", type=int, default=1024)
    parser.add_argument("--infer-samples", type=int, default=2048)
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()
    torch.manual_seed(0)
    texts, prices = load()
    pairs = [(t, p) for t, p in zip(texts, prices, strict=True) if p]
    train = pairs[: args.train_samples]
    infer = [t for t, _ in pairs[: args.infer_samples]]
    train_texts = [t for t, _ in train]
    log = np.log1p(np.array([p for _, p in train]))
    targets = ((log - log.mean()) / log.std()).tolist()
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"bf16 on this CPU: {bf16_supported(torch.device('cpu'))}"
    )

    ref_train = reference_train(train_texts, targets, args.batch_size)
    print(f"reference training : {ref_train:7.1f} samples/s (fp32, padded to 128)")
    config = TrainConfig(trainer="finetune", epochs=1, batch_size=args.batch_size)
    model = EncoderRegressor(
        default_base_model(), pick_device(config), bf16_supported(torch.device("cpu"))
    )
    model.max_length = choose_max_length(model.tokenizer, train_texts, 0.98, 128)
    events = []
    fine_tune(model, train_texts, log, train_texts[:64], log[:64], config, progress=events.append)
    ours_train = events[-1]["samples_per_s"]
    print(
        f"our training       : {ours_train:7.1f} samples/s (bf16={model.use_bf16}, max length "
        f"{model.max_length}, dynamic padding)  -> {ours_train / ref_train:.1f}x"
    )

    ref_infer = reference_infer(infer, 64)
    print(f"reference inference: {ref_infer:7.1f} samples/s (fp32, padded to 128)")
    predictor = FineTuned(model)
    started = time.perf_counter()
    predictor.predict_log(infer)
    ours_infer = len(infer) / (time.perf_counter() - started)
    print(f"our inference      : {ours_infer:7.1f} samples/s  -> {ours_infer / ref_infer:.1f}x")


if __name__ == "__main__":
    main()
