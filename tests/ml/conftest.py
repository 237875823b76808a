from __future__ import annotations

import random

import pytest

WORDS = {
    "cheap": ["cable", "sticker", "pen", "sock", "spoon", "keychain", "eraser"],
    "mid": ["kettle", "backpack", "headphones", "lamp", "shoes", "blender", "jacket"],
    "dear": ["television", "laptop", "refrigerator", "sofa", "camera", "washing machine", "phone"],
}
PRICES = {"cheap": 3.0, "mid": 60.0, "dear": 900.0}


def synthetic_catalog(n: int = 240, seed: int = 0) -> tuple[list[str], list[float]]:
    """Texts whose words say what they cost, with noise: something any trainer can learn."""
    rng = random.Random(seed)
    texts, prices = [], []
    for i in range(n):
        tier = ("cheap", "mid", "dear")[i % 3]
        item = rng.choice(WORDS[tier])
        texts.append(f"{rng.choice(['acme', 'zenith', 'nova'])} {item} model {rng.randint(1, 99)}")
        prices.append(round(PRICES[tier] * rng.uniform(0.7, 1.4), 2))
    return texts, prices


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory):
    """A 2-layer, 32-wide BERT with MiniLM's vocabulary, made here: nothing is downloaded."""
    from transformers import BertConfig, BertModel, BertTokenizerFast

    from ml.science.text_price import default_base_model

    folder = tmp_path_factory.mktemp("tiny-bert")
    tokenizer = BertTokenizerFast(vocab_file=str(default_base_model() / "vocab.txt"))
    config = BertConfig(
        vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=128,
    )  # fmt: skip
    BertModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
