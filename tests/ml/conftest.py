"""Fixtures of the ml tests."""

from __future__ import annotations

import pytest

from ml import services
from tenants.context import tenant_context


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory):
    """A 2-layer, 32-wide BERT with MiniLM's vocabulary, made here: nothing is downloaded."""
    from transformers import BertConfig, BertModel, BertTokenizerFast

    from ml.science.text_price import default_base_model

    folder = tmp_path_factory.mktemp("tiny-bert")
    tokenizer = BertTokenizerFast(vocab_file=str(default_base_model() / "vocab.txt"))
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
    )
    BertModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture
def train():
    """`train(world, trainer="baseline", **kwargs)`: a reference-price training run in the
    world's tenant (eager Celery runs it at once); returns the version, refreshed."""

    def train(world, trainer="baseline", **kwargs):
        with tenant_context(world.tenant):
            version = services.start_training(trainer=trainer, **kwargs)
            version.refresh_from_db()
            return version

    return train
