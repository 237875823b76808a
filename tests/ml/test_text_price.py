"""The pure reference-price module: trainers, selection, intervals, artifacts, bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ml.science.text_price import (
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
from tests.factories import synthetic_catalog


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
    from ml.science.text_price import EncoderRegressor, FineTuned, fine_tune, pick_device

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


def test_under_bf16_autocast_the_head_and_loss_stay_float32(tiny_bert):
    """The encoder runs in bfloat16 where the hardware has it; the regression head's output is
    float32 (CUDA's backward refused a bfloat16 output against a float32 target)."""
    import torch

    from ml.science.text_price import EncoderRegressor

    model = EncoderRegressor(tiny_bert, torch.device("cpu"), use_bf16=True)
    value, pooled = model.forward(model.encode(["a red mug", "two blue plates"]), train=True)
    assert value.dtype == torch.float32 and pooled.dtype == torch.float32
    target = torch.zeros(2)
    torch.nn.functional.mse_loss(value, target).backward()
    assert model.head.weight.grad is not None and torch.isfinite(model.head.weight.grad).all()


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
    from ml.science.text_price import Blend

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
    from ml.science.text_price import Blend, Predictor

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
    knn = (
        TfidfKnn()
        .fit(texts, log)
        .tune(["Acme kettle black 2 litre", "Zeta phone case model K"], np.log1p([500.0, 120.0]))
    )
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
    (tmp_path / "meta.json").write_text(
        json.dumps({"kind": "blend", "interval_q": 0.3, "weight": 0.25})
    )
    loaded = load_predictor(tmp_path)
    assert loaded.weights == {"baseline": 0.25, "neural": 0.75}
    assert np.allclose(loaded.predict_log(texts[:4]), baseline.predict_log(texts[:4]))


def test_cross_fitted_prices_never_come_from_a_model_that_saw_the_product():
    from ml.science.text_price import cross_fitted

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


# --- pack sizes, brand and category, refit -------------------------------------------------------

G_PER_OZ, G_PER_LB, ML_PER_GAL = 28.349523, 453.59237, 3785.411784


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Private Sugar 10 LB", {"mass": 10 * G_PER_LB}),
        ("National Eggs - Large 1 DZ", {"count": 12}),
        ("Orange Juice 64 OZ", {"mass": 64 * G_PER_OZ}),
        ("Cola 6 x 330 ml", {"volume": 1980, "count": 6}),
        ("Cola 2 x 6 x 330ml", {"volume": 3960, "count": 12}),
        ("Soda 12 PK", {"count": 12}),
        ("Water 1.5 L", {"volume": 1500}),
        ("Water 1,5 L", {"volume": 1500}),
        ("Rice 500 g", {"mass": 500}),
        ("Batteries 2 ct", {"count": 2}),
        ("Milk 1/2 GAL", {"volume": ML_PER_GAL / 2}),
        ("Gum 3/4 OZ", {"mass": 0.75 * G_PER_OZ}),
        ("Tuna 2 1/4 OZ", {"mass": 2.25 * G_PER_OZ}),
        ("Yogurt 4 PK/4 OZ", {"mass": 16 * G_PER_OZ, "count": 4}),
        ("Beer 12 OZ/12 PK", {"mass": 144 * G_PER_OZ, "count": 12}),
        ("Water 24/16.9 OZ", {"mass": 24 * 16.9 * G_PER_OZ, "count": 24}),
        ("Juice boxes 10-1 OZ", {"mass": 10 * G_PER_OZ, "count": 10}),
        ("Granola bars 10 CT/12 OZ", {"mass": 12 * G_PER_OZ, "count": 10}),  # CT: the total
        ("Shrimp 48-54 CT", {"count": 51}),  # a range: its middle
        ("Cat food 85g (12 Pack)", {"mass": 1020, "count": 12}),
        ("Cola 330 ml x 6", {"volume": 1980, "count": 6}),
        ("Diet cola 12 fl oz", {"volume": 12 * 29.573530}),
        ("Mugs, pack of 6", {"count": 6}),
        ("Foil 75 SQ FT", {"area": 75 * 0.09290304}),
        ("Cable 1.5 m", {"length": 1.5}),
        ("Sugar (600) 4 LB", {"mass": 4 * G_PER_LB}),  # a number in brackets is no size
        ("Cotton swabs 1,000 ct", {"count": 1000}),
    ],
)
def test_pack_sizes_are_read_and_normalised(text, expected):
    from ml.science.text_price import DIMENSIONS, parse_pack_size

    size = parse_pack_size(text)
    for dimension in DIMENSIONS:
        if dimension in expected:
            assert getattr(size, dimension) == pytest.approx(expected[dimension], rel=1e-6)
        else:
            assert getattr(size, dimension) is None, dimension


@pytest.mark.parametrize(
    "text",
    [
        "HP 680 Ink Cartridge",
        "Canon EOS 1500D 24.1 MP camera",
        "iPhone 14 Pro 128 GB",
        "OnePlus Nord CE 2 Lite 5G (Blue Tide, 6GB RAM)",
        "3M Car Interior Cleaner",
        "Split AC (Copper, PM 2.5 Filter, 2023 M...",
        "Private Bread 970632  PK",  # an article number before a unit: no 970,632 items
        "Model 2000 blender, 500 W",
        "Carton CTN",
    ],
)
def test_numbers_that_are_not_sizes(text):
    from ml.science.text_price import parse_pack_size

    assert not parse_pack_size(text)


def test_a_size_attribute_speaks_first_and_a_bare_unit_is_one_of_it():
    from ml.science.text_price import parse_pack_size, text_fields

    text = product_text("Sugar 4 LB", "Was 2 LB", "Acme", "Baking", {"package_size": "10 LB"})
    assert text_fields(text) == {
        "title": "Sugar 4 LB",
        "brand": "Acme",
        "category": "Baking",
        "package_size": "10 LB",
        "description": "Was 2 LB",
    }
    assert parse_pack_size(text).mass == pytest.approx(10 * G_PER_LB)
    assert parse_pack_size(product_text("Milk", attributes={"package_size": "GAL"})).volume == (
        pytest.approx(ML_PER_GAL)
    )
    assert parse_pack_size(product_text("Sugar 4 LB", "Was 2 LB")).mass == pytest.approx(
        4 * G_PER_LB
    )  # the title before the description


def _bulk_goods(sizes, seed=0):
    """Goods sold by weight: the price grows with the pack (per-unit price by good, a small
    bulk discount); the words differ only in the number."""
    rng = np.random.default_rng(seed)
    unit = {"sugar": 0.7, "flour": 0.5, "rice": 1.1, "oats": 1.6, "salt": 0.4, "honey": 4.0}
    texts, prices = [], []
    for good, per_lb in unit.items():
        for brand in ("Acme", "Zenith", "Nova"):
            for lb in sizes:
                texts.append(
                    product_text(
                        f"{brand} {good.title()} {lb} LB",
                        brand=brand,
                        category="Baking",
                        attributes={"size": f"{lb} LB"},
                    )
                )
                prices.append(round(per_lb * lb**0.9 * float(np.exp(rng.normal(0, 0.05))), 2))
    return texts, np.asarray(prices)


def test_the_baseline_prices_by_the_pack():
    """Trained on packs of 1-5 lb, asked about 10 and 20 lb: the TF-IDF alone reads "10" and
    "20" as unknown words; with pack sizes the price grows with the pack."""
    texts, prices = _bulk_goods([1, 2, 3, 4, 5])
    big, big_prices = _bulk_goods([10, 20], seed=1)
    log = np.log1p(prices)
    plain = TfidfRidge(structured=False).fit(texts, log)
    sized = TfidfRidge().fit(texts, log)
    error_plain = rmsle(big_prices, np.expm1(plain.predict_log(big)))
    error_sized = rmsle(big_prices, np.expm1(sized.predict_log(big)))
    assert error_sized < 0.5 * error_plain
    ten, twenty = np.expm1(
        sized.predict_log(
            [
                "Acme Sugar 10 LB | brand: Acme | category: Baking | size: 10 LB",
                "Acme Sugar 20 LB | brand: Acme | category: Baking | size: 20 LB",
            ]
        )
    )
    assert twenty > 1.4 * ten


def test_brand_and_category_are_inputs_of_their_own():
    from ml.science.text_price import ProductFeatures

    texts = [
        product_text(f"item {i}", brand=b, category=c)
        for i, (b, c) in enumerate([("Acme", "Tea"), ("Nova", "Tea"), ("Acme", "Oil")] * 3)
    ]
    features = ProductFeatures()
    matrix = features.fit_transform(texts)
    assert set(features.brands) == {"acme", "nova"} and set(features.categories) == {"tea", "oil"}
    unknown = features.transform([product_text("item 1", brand="Other", category="Tea")])
    assert matrix.shape[1] == unknown.shape[1]


def test_the_winner_is_refitted_on_every_product_and_keeps_its_held_out_scores():
    texts, prices = synthetic_catalog(200)
    prices = np.asarray(prices)
    keys = [f"P{i}" for i in range(len(texts))]
    kept = train_text_model(texts, prices, TrainConfig(trainer="baseline", refit=False), keys=keys)
    refit = train_text_model(texts, prices, TrainConfig(trainer="baseline"), keys=keys)
    held = refit.held_out
    assert held["keys"] == kept.held_out["keys"] and len(held["keys"]) == refit.metrics["n_test"]
    assert refit.metrics["refit"]["products"] == 200 and refit.metrics["refit"]["refitted"] == [
        "baseline"
    ]
    # The reported score is the held-out one, from the model fitted before the refit ...
    assert refit.metrics["baseline"]["rmsle"] == kept.metrics["baseline"]["rmsle"]
    assert refit.metrics["baseline"]["rmsle"] == pytest.approx(
        float(np.sqrt(np.mean((held["log_predicted"] - held["log_actual"]) ** 2))), abs=1e-4
    )
    assert np.allclose(kept.predictor.predict_log(held["texts"]), held["log_predicted"])
    # ... and the artifact has seen the held-out products too.
    after = np.abs(refit.predictor.predict_log(held["texts"]) - held["log_actual"]).mean()
    before = np.abs(held["log_predicted"] - held["log_actual"]).mean()
    assert after < before
    assert refit.predictor.interval_q == kept.predictor.interval_q


def test_keys_hold_out_the_same_products_in_every_run():
    from ml.science.text_price import held_out_split

    keys = list(range(1000, 1500))
    first, _ = held_out_split(500, 0.2, 0, keys)
    grown, train = held_out_split(560, 0.2, 0, [*keys, *range(9000, 9060)])
    assert set(first) <= set(grown) and 70 <= len(first) <= 130
    assert not set(grown) & set(train) and len(grown) + len(train) == 560
    shuffled = keys[::-1]
    again, _ = held_out_split(500, 0.2, 0, shuffled)
    assert {shuffled[i] for i in again} == {keys[i] for i in first}


@pytest.mark.parametrize("refit_neural", [None, False, True])
def test_the_fine_tuned_part_is_refitted_only_where_asked(tiny_bert, refit_neural):
    """A blend's cheap parts are always fitted again on every product; its fine-tuned encoder
    only where config.refit_neural says so (None: on a GPU, so not here)."""
    from ml.science.text_price import (
        Blend,
        EncoderRegressor,
        FineTuned,
        _Refit,
        fine_tune,
        pick_device,
    )

    texts, prices = synthetic_catalog(120)
    log = np.log1p(np.asarray(prices))
    fit_idx, val_idx, test_idx = np.arange(0, 80), np.arange(80, 100), np.arange(100, 120)
    config = TrainConfig(
        trainer="finetune",
        base_model=str(tiny_bert),
        epochs=1,
        batch_size=16,
        refit_neural=refit_neural,
    )
    model = EncoderRegressor(tiny_bert, pick_device(config), use_bf16=False)
    fine_tune(
        model,
        [texts[i] for i in fit_idx],
        log[fit_idx],
        [texts[i] for i in val_idx],
        log[val_idx],
        config,
    )
    parts = {"baseline": TfidfRidge().fit([texts[i] for i in fit_idx], log[fit_idx]),
             "finetune": FineTuned(model)}  # fmt: skip
    blend = Blend(parts, {"baseline": 0.6, "finetune": 0.4})
    blend.interval_q, parts["finetune"].interval_q = 0.4, 0.5
    events = []
    refit = _Refit(texts, log, fit_idx, val_idx, test_idx, config, tiny_bert, events.append, None)
    again = refit(blend, "blend")
    assert again.weights == blend.weights and again.interval_q == 0.4
    assert again.parts["baseline"] is not parts["baseline"]
    if refit_neural:
        assert refit.refitted == ["baseline", "finetune", "blend"] and refit.kept == []
        assert again.parts["finetune"] is not parts["finetune"]
        assert again.parts["finetune"].interval_q == 0.5
        assert events and events[-1]["phase"] == "refit on all products"
        assert events[-1]["total_steps"] == 7  # 100 products (fit + held out), batches of 16
    else:
        assert refit.refitted == ["baseline", "blend"] and refit.kept == ["finetune"]
        assert again.parts["finetune"] is parts["finetune"] and not events
    assert np.isfinite(again.predict_log(texts[:3])).all()


def test_references_far_outside_their_category_are_flagged():
    from ml.science.text_price import category_price_bounds, outside_category_range

    categories = ["Tea"] * 10 + ["Oil"] * 10 + ["Rare"] * 2 + [""]
    prices = [2.0 + 0.1 * i for i in range(10)] + [20.0 + i for i in range(10)] + [5.0, 6.0, 3.0]
    low, high = category_price_bounds(categories, prices)
    assert low[0] == pytest.approx(np.quantile(prices[:10], 0.01) / 3)
    assert high[10] == pytest.approx(np.quantile(prices[10:20], 0.99) * 3)
    # a category with fewer than 5 priced products (and no category) takes the catalog's band
    assert low[20] == low[22] == pytest.approx(np.quantile(prices, 0.01) / 3)
    references = list(prices)
    references[0] = 1.76  # low for tea, but plausible
    references[1] = 0.5  # below a third of tea's 1st percentile
    references[11] = 200.0  # above three times oil's 99th
    references[21] = 80.0  # within the catalog's band
    flagged = outside_category_range(references, categories, prices)
    assert np.flatnonzero(flagged).tolist() == [1, 11]
    assert not outside_category_range([5.0], ["x"], [None]).any()  # no prices: no band


def test_artifacts_pickled_under_the_old_module_paths_still_load():
    import io
    import pickle

    from ml.science import text_price

    config = text_price.TrainConfig()
    old = pickle.dumps(config, protocol=0).replace(b"ml.science.text_price", b"ml.text_price")
    assert b"cml.text_price\n" in old  # the class named by the path it had before the move
    with pytest.raises(ModuleNotFoundError):
        pickle.loads(old)  # noqa: S301 (bytes made just above)
    assert text_price._unpickle(io.BytesIO(old)) == config
