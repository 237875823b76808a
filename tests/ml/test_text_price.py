"""The pure reference-price module: trainers, selection, intervals, artifacts, bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ml.text_price import (
    BaseModelError,
    TfidfKnn,
    TfidfRidge,
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
    candidates = ("baseline", "tfidf_knn", trainer, "blend")
    assert set(candidates) <= set(metrics)
    best = min(candidates, key=lambda name: metrics[name]["rmsle"])
    assert metrics["chosen"] == outcome.chosen == best  # the best on held-out products is kept
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
    assert blend["of"] == ["baseline", "tfidf_knn", "embed_ridge"]
    assert min(blend["weights"].values()) >= 0 and sum(blend["weights"].values()) == 1.0
    assert {"baseline", "tfidf_knn", "embed_ridge", "blend"} <= set(outcome.metrics)
    from ml.text_price import Blend

    predictor = outcome.predictor
    if outcome.chosen != "blend":
        parts = {"baseline": predictor, "neighbours": TfidfKnn().fit(texts, np.log1p(prices))}
        predictor = Blend(parts, {"baseline": 0.4, "neighbours": 0.6})
    save_predictor(predictor, tmp_path / "blend")
    loaded = load_predictor(tmp_path / "blend")
    assert np.allclose(
        predictor.predict(texts[:5]).price, loaded.predict(texts[:5]).price, rtol=1e-3
    )


def test_blend_weights_minimise_validation_error_on_the_simplex():
    from ml.text_price import Blend, Predictor

    class Fixed(Predictor):
        def __init__(self, values):
            self.values = np.asarray(values, float)

        def predict_log(self, texts):
            return self.values[: len(texts)]

    truth = np.array([1.0, 2.0, 3.0, 4.0])
    good, bad = Fixed(truth), Fixed(truth[::-1])
    blend = Blend.fit({"good": good, "bad": bad, "noise": Fixed([9, 9, 9, 9])}, list("abcd"), truth)
    assert blend.weights == {"good": 1.0} and list(blend.parts) == ["good"]  # zeros dropped
    half = Blend.fit({"up": Fixed(truth + 1), "down": Fixed(truth - 1)}, list("abcd"), truth)
    assert half.weights == {"up": 0.5, "down": 0.5}
    assert np.allclose(half.predict_log(list("abcd")), truth)


def test_neighbours_read_the_price_of_near_identical_listings(tmp_path):
    texts = [f"Acme kettle {c} {n} litre" for c in ("red", "blue", "green") for n in (1, 2, 3)]
    texts += [f"Zeta phone case model {m}" for m in "ABCDEFGHIJ"]
    log = np.log1p([500.0] * 9 + [120.0] * 10)
    knn = TfidfKnn().fit(texts, log).tune(["Acme kettle black 2 litre", "Zeta phone case model K"],
                                          np.log1p([500.0, 120.0]))  # fmt: skip
    price = np.expm1(knn.predict_log(["Acme kettle white 3 litre", "Zeta phone case model Q"]))
    assert abs(price[0] - 500) < 5 and abs(price[1] - 120) < 2
    save_predictor(knn, tmp_path / "knn")
    loaded = load_predictor(tmp_path / "knn")
    assert (loaded.k, loaded.power) == (knn.k, knn.power)
    assert np.allclose(loaded.predict_log(texts[:3]), knn.predict_log(texts[:3]))


def test_a_blend_saved_in_the_old_two_part_layout_still_loads(tmp_path):
    texts, prices = synthetic_catalog(60)
    baseline = TfidfRidge().fit(texts, np.log1p(prices))
    for name in ("baseline", "neural"):
        save_predictor(baseline, tmp_path / name)
    (tmp_path / "meta.json").write_text(json.dumps({"kind": "blend", "interval_q": 0.3,
                                                    "weight": 0.25}))  # fmt: skip
    loaded = load_predictor(tmp_path)
    assert loaded.weights == {"baseline": 0.25, "neural": 0.75}
    assert np.allclose(loaded.predict_log(texts[:4]), baseline.predict_log(texts[:4]))


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


def test_neighbours_edge_cases_found_in_review():
    texts = [f"Acme kettle {c} {n} litre" for c in ("red", "blue", "green") for n in (1, 2, 3)]
    texts += [f"Zeta phone case model {m}" for m in "ABCDEFGHIJ"]
    log = np.log1p([500.0] * 9 + [120.0] * 10)
    knn = TfidfKnn(k=5, power=8).fit(texts, log)
    # A text sharing no n-gram with the catalog: the training median, not arbitrary rows.
    assert knn.predict_log(["ÿÿÿÿ"])[0] == pytest.approx(float(np.median(log)))
    assert knn.predict_log([]).shape == (0,)
    # The weights depend on how the neighbours compare, not on the best match's absolute size.
    sims = np.array([[0.2, 0.15, 0.1], [1.0, 0.75, 0.5]])
    idx = np.array([[0, 9, 10], [0, 9, 10]])
    low, high = knn._average(sims, idx, 3, 16)
    assert low == pytest.approx(high)
    # Small chunks give the same answer as one block; a refit forgets the cached neighbours.
    whole = knn.predict_log(texts)
    knn.CHUNK_CELLS = len(texts) * 2  # two queries a chunk
    knn._last = None
    assert np.allclose(knn.predict_log(texts), whole)
    knn.fit(texts, log + 1.0)
    assert np.allclose(knn.predict_log(texts), whole + 1.0)
