"""The pure reference-price module: trainers, selection, intervals, artifacts, bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ml.text_price import (
    BaseModelError,
    TooFewProducts,
    TrainConfig,
    TrainingCancelled,
    check_base_model,
    default_base_model,
    load_predictor,
    product_text,
    rmsle,
    save_predictor,
    train_text_model,
)

from .conftest import synthetic_catalog


def test_default_base_model_is_the_packaged_minilm():
    folder = check_base_model(None)
    assert folder == default_base_model() and (folder / "model.safetensors").exists()


def test_missing_base_model_folder(tmp_path):
    with pytest.raises(BaseModelError, match="does not exist"):
        check_base_model(tmp_path / "nope")


def test_not_a_checkpoint_folder(tmp_path):
    with pytest.raises(BaseModelError, match=r"no config\.json"):
        check_base_model(tmp_path)


def test_not_a_bert_model(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    with pytest.raises(BaseModelError, match="'gpt2' model; a BERT-family encoder is needed"):
        check_base_model(tmp_path)


def test_bert_config_without_tokenizer(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(BaseModelError, match="no tokenizer"):
        check_base_model(tmp_path)


def test_bad_base_model_fails_before_any_work(tmp_path):
    texts, prices = synthetic_catalog(240)
    with pytest.raises(BaseModelError):
        train_text_model(texts, prices, TrainConfig(trainer="finetune", base_model=str(tmp_path)))


def test_baseline_learns_and_its_interval_covers():
    texts, prices = synthetic_catalog(300)
    outcome = train_text_model(texts, prices, TrainConfig(trainer="baseline"))
    metrics = outcome.metrics
    assert outcome.chosen == "baseline"
    assert metrics["baseline"]["rmsle"] < 0.5 * metrics["median_rmsle"]
    assert 0.6 <= metrics["baseline"]["interval_coverage"] <= 1.0
    prediction = outcome.predictor.predict(["nova television model 7", "acme sock model 3"])
    assert prediction.price[0] > 10 * prediction.price[1]
    assert np.all(prediction.low <= prediction.price) and np.all(
        prediction.price <= prediction.high
    )


def test_bad_rows_are_excluded_and_counted():
    texts, prices = synthetic_catalog(60)
    texts += ["", "   ", "ok text", "ok text 2", "very " * 5000 + "long", "中文 电视机 55英寸"]
    prices += [10, 20, 0, None, 50, "abc"]
    outcome = train_text_model(texts, prices, TrainConfig(trainer="baseline"))
    assert outcome.metrics["excluded"] == {"empty_text": 2, "missing_or_non_positive_price": 3}
    assert outcome.metrics["n_products"] == 61


def test_too_few_products_is_a_clear_error():
    with pytest.raises(TooFewProducts, match="at least 10"):
        train_text_model(["a", "b"], [1, 2], TrainConfig(trainer="baseline"))


def test_small_catalog_trains_the_baseline_only(tiny_bert):
    texts, prices = synthetic_catalog(60)
    outcome = train_text_model(
        texts, prices, TrainConfig(trainer="finetune", base_model=str(tiny_bert))
    )
    assert outcome.chosen == "baseline" and "baseline only" in outcome.metrics["note"]
    assert "finetune" not in outcome.metrics


@pytest.mark.parametrize("trainer", ["finetune", "lora", "embed_ridge"])
def test_neural_trainers_run_and_are_scored_beside_the_baseline(tiny_bert, trainer):
    texts, prices = synthetic_catalog(240)
    events = []
    config = TrainConfig(
        trainer=trainer, base_model=str(tiny_bert), epochs=2, batch_size=16, threads=1
    )
    outcome = train_text_model(texts, prices, config, progress=events.append)
    metrics = outcome.metrics
    assert {"baseline", trainer} <= set(metrics) and metrics["chosen"] in ("baseline", trainer)
    assert metrics[trainer]["rmsle"] > 0 and metrics[trainer]["max_length"] <= 128
    if trainer != "embed_ridge":
        assert events and {"step", "total_steps", "epoch", "loss", "eta_s"} <= set(events[-1])
        assert metrics[trainer]["epochs_run"] >= 1


def test_fine_tuned_artifact_round_trips(tiny_bert, tmp_path):
    from ml.text_price import EncoderRegressor, FineTuned, fine_tune, pick_device

    texts, prices = synthetic_catalog(120)
    log = np.log1p(np.asarray(prices))
    config = TrainConfig(trainer="finetune", epochs=1, batch_size=16)
    model = EncoderRegressor(tiny_bert, pick_device(config), use_bf16=False)
    fine_tune(model, texts[:100], log[:100], texts[100:], log[100:], config)
    predictor = FineTuned(model)
    predictor.calibrate(texts[100:], log[100:], 0.8)
    save_predictor(predictor, tmp_path / "artifact")
    loaded = load_predictor(tmp_path / "artifact")
    loaded.model.use_bf16 = False
    a, b = predictor.predict(texts[:5]), loaded.predict(texts[:5])
    assert np.allclose(a.price, b.price, rtol=1e-4) and loaded.interval_q == predictor.interval_q


def test_training_can_be_cancelled(tiny_bert):
    texts, prices = synthetic_catalog(240)
    config = TrainConfig(trainer="finetune", base_model=str(tiny_bert), epochs=2, batch_size=16)
    with pytest.raises(TrainingCancelled):
        train_text_model(texts, prices, config, cancelled=lambda: True)


def test_product_text_and_rmsle():
    assert product_text("Mug", "Big mug", "Acme", "Kitchen", {"colour": "red", "x": ""}) == (
        "Mug | brand: Acme | category: Kitchen | colour: red | Big mug"
    )
    assert rmsle(np.array([100.0]), np.array([100.0])) == 0.0
    assert rmsle(np.array([0.0]), np.array([-5.0])) == 0.0  # negative predictions clip at 0


def test_blend_is_scored_and_round_trips(tiny_bert, tmp_path):
    texts, prices = synthetic_catalog(240)
    config = TrainConfig(trainer="embed_ridge", base_model=str(tiny_bert), threads=1)
    outcome = train_text_model(texts, prices, config)
    blend = outcome.metrics["blend"]
    assert 0.0 <= blend["baseline_weight"] <= 1.0 and blend["of"] == ["baseline", "embed_ridge"]
    from ml.text_price import Blend

    predictor = outcome.predictor
    if outcome.chosen != "blend":
        predictor = Blend.fit(predictor, predictor, texts[:20], np.log1p(prices[:20]))
    save_predictor(predictor, tmp_path / "blend")
    loaded = load_predictor(tmp_path / "blend")
    assert np.allclose(
        predictor.predict(texts[:5]).price, loaded.predict(texts[:5]).price, rtol=1e-3
    )


def test_cross_fitted_prices_never_come_from_a_model_that_saw_the_product():
    from ml.text_price import cross_fitted

    texts, prices = synthetic_catalog(300)
    prices[0] = 50_000.0  # wildly mispriced: an in-sample model would echo it back
    prediction = cross_fitted(texts, prices)
    assert prediction.price[0] < 5_000 and prices[0] > prediction.high[0]
    inside = np.mean(
        (np.asarray(prices) >= prediction.low) & (np.asarray(prices) <= prediction.high)
    )
    assert 0.7 <= inside <= 0.95  # the 80% interval holds out of sample
