"""A competitor's price today from its readings (pure: numpy only).

A competitor feed reads each rival's price now and then; where the readings jitter (a scraper
that lands on another seller, shipping folded in, rounding), one reading is off the price
buyers meet by that jitter, and a product sitting near the competitor's price is priced on a
kink that is off by as much. Where the competitor has not re-priced since, its earlier readings
say the same price: their mean is the price with less of the jitter.

Which earlier readings share today's price: between two consecutive readings the price either
stayed or moved (a re-price of size N(0, jump_sd^2), with the chance `jump_share` the tenant's
feeds show: `noise_of_histogram`). `level` weighs where the latest re-price may have been by how
well each place reads the run of readings, and returns the level with its weight of readings:
the level is off the competitor's price by sd / sqrt(weight). Exact readings (sd 0), or a
jitter measured on fewer than MIN_CHANGES changes: the latest.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

# The smallest chance of a re-price between two readings the weights assume, however calm the
# feed was: a feed that never moved in its window still may.
MIN_JUMP_SHARE = 0.01
# A jitter (log price) below this is none: the readings are exact (a change this small is a
# repeat, CHANGE_EDGES[0]).
EXACT = 1e-4
# Sellers that re-price on more than this share of the steps between readings: a run of
# readings holds several re-prices, which the level's model (at most one) does not read, so
# each level is the latest reading.
MAX_LEVEL_JUMP_SHARE = 0.25
# The re-prices a run of readings the level reads may be expected to hold (its steps times the
# chance of a re-price per step): the level's model allows one, so a run is read back no
# further than 1 + LEVEL_REPRICES / jump_share readings.
LEVEL_REPRICES = 0.5
# The fewest changes between consecutive readings the tenant's jitter must be measured on before
# earlier readings are averaged in (a jitter read off a handful of changes may be one re-price).
MIN_CHANGES = 30
# A seller's readings are read with its own noise only from this many changes of its own, and
# only where the tenant's reads them clearly worse (`own_noise_differs`): fewer, or alike, the
# tenant's, fitted over every seller's (a fit on a few hundred changes is unstable: on sellers
# that all behave alike, own fits of 100 changes read levels 30-40 % further off than the
# tenant's one fit, and some read a jittery feed as exact)
SELLER_MIN_CHANGES = 1000
SELLER_LR = 30.0  # twice the log-likelihood gain of a seller's own noise over the tenant's
EXACT_REPEATS = 0.5  # a feed read as exact must repeat the reading on this share of its steps


@dataclass(frozen=True)
class Noise:
    """How a tenant's competitor readings behave, in log price: one reading's jitter (`sd`, the
    robust scale the demand fit smooths its ramp over), the share of consecutive readings
    between which the price really moved, how far such a move goes (its r.m.s.), and the
    jitter the same mixture fit reads beside them (`still_sd`: the median-based `sd` is
    inflated where many changes are re-prices; 0: not fitted, `sd` stands)."""

    sd: float = 0.0
    jump_share: float = MIN_JUMP_SHARE
    jump_sd: float = 0.0
    changes: int = 0  # how many changes between consecutive readings these were measured on
    still_sd: float = 0.0
    # each seller's own, where measured on SELLER_MIN_CHANGES changes or more and clearly
    # unlike the tenant's (`own_noise_differs`): (name, Noise) pairs (a tenant may read one
    # seller by an exact feed, another by a jittery scraper)
    sellers: tuple = ()

    def for_seller(self, name: str) -> Noise:
        """The noise a seller's readings are read with: its own where measured, else the
        tenant's (without the sellers')."""
        for seller, noise in self.sellers:
            if seller == name:
                return noise
        return replace(self, sellers=()) if self.sellers else self

    @property
    def jitter(self) -> float:
        """The jitter `level` reads the runs of readings with."""
        return self.still_sd if self.still_sd > 0 else self.sd

    @classmethod
    def of(cls, value) -> Noise:
        """From what a plan holds: a Noise, [sd, share, size, changes, still_sd] ([sd, share,
        size, changes]: a plan made before the jitter was fitted beside them), or an sd alone
        (a plan made before the rest was measured: no changes known, so each level is its
        latest reading)."""
        if isinstance(value, Noise):
            return value
        if value is None:
            return cls()
        if np.ndim(value) == 0:
            return cls(sd=float(value))
        sd, share, size, changes, still = (*value, 0.0)[:5]  # a plan of before still_sd: 4
        sellers = value[5] if len(value) > 5 and isinstance(value[5], dict) else {}
        return cls(
            sd=float(sd),
            jump_share=float(share),
            jump_sd=float(size),
            changes=int(changes),
            still_sd=float(still),
            sellers=tuple((str(k), cls.of(v)) for k, v in sorted(sellers.items())),
        )

    def as_list(self) -> list:
        """What a plan holds (JSON): five numbers, then the sellers' own by name if any."""
        own = [self.sd, self.jump_share, self.jump_sd, self.changes, self.still_sd]
        if self.sellers:
            own.append({name: noise.as_list() for name, noise in self.sellers})
        return own


# A competitor listing priced under a third of the product's price or over three times it is
# taken for another item (a mismatched listing: an accessory, a multipack, a used one) and not
# used: neither as the competitor's price today nor in the demand fit's competitor gap.
MATCH_RATIO = 3.0


def own_noise_differs(tenant: Noise, own: Noise, counts, pairs=None) -> bool:
    """Whether a seller's readings are read with its own noise `own` (fitted on its changes
    alone: `counts` their histogram, `pairs` their pairs' sums as `pair_jitter` takes them)
    rather than the tenant's: from SELLER_MIN_CHANGES changes, where the tenant's noise reads
    the seller's changes clearly worse than its own (twice the log-likelihood gain over
    SELLER_LR on its histogram: a fit's own parameters, however they split a jitter from
    re-prices, are no reason alone; review found sellers alike picked on a jitter 0.66x the
    tenant's or re-prices on 76 % of steps, one fit's way of reading the same changes). A
    seller fitted as exact (no jitter) must show it: the reading repeated on EXACT_REPEATS of
    its steps, or its pairs ruling out a jitter of the tenant's size (their 3-s.e. bound under
    the tenant's jitter: an exact API feed whose seller re-prices on most steps; a jitter its
    pairs merely do not show clearly is no proof of none)."""
    counts = np.asarray(counts, dtype=np.float64)
    total = counts.sum()
    if own.changes < SELLER_MIN_CHANGES or not total > 0:
        return False
    if not own.jitter > EXACT:
        if not tenant.jitter > EXACT:
            return False
        repeats = counts[0] / total
        return bool(repeats >= EXACT_REPEATS or _jitter_bound(pairs) < tenant.jitter)
    if not tenant.jitter > EXACT:
        return True
    gain = _histogram_loglik(own, counts) - _histogram_loglik(tenant, counts)
    return bool(2 * gain > SELLER_LR)


def _histogram_loglik(noise: Noise, counts) -> float:
    """The log-likelihood of a histogram of changes that moved (bins from 1) under a noise's
    mixture (`_mixture`'s): each change two readings' jitter, or a re-price with the noise's
    chance per step (among the changes that moved, as these counts have them)."""
    moved_counts = np.asarray(counts, dtype=np.float64)[1:]
    moving, total = moved_counts.sum(), float(np.sum(counts))
    if not moving > 0:
        return 0.0
    still = max(2 * noise.jitter**2, STILL_FLOOR)
    part = float(np.clip(noise.jump_share * total / moving, 1e-6, 1 - 1e-6))
    return _mixture_loglik(moved_counts, part, still, max(noise.jump_sd**2, 1e-12))[0]


def _jitter_bound(pairs) -> float:
    """The largest jitter consecutive changes' pairs leave possible (3 s.e. above their mean's
    minus: the products are heavy-tailed, and at 2 s.e. 14 of 3,977 jittery sellers passed
    in review; `pair_jitter`'s sums): inf where unknown."""
    moments = _pairs_mean_se(pairs)
    if moments is None:
        return np.inf
    mean, se = moments
    return float(np.sqrt(max(-mean + 3 * se, 0.0)))


def matches(competitor, own, ratio: float = MATCH_RATIO) -> np.ndarray:
    """Whether each competitor price may be the same item as the product at `own` (within
    `ratio` of it either way; True where `own` is unknown or not positive)."""
    c = np.asarray(competitor, dtype=np.float64)
    o = np.broadcast_to(np.asarray(own, dtype=np.float64), c.shape)
    with np.errstate(invalid="ignore", divide="ignore"):
        known = np.isfinite(o) & (o > 0)
        ratio_ = np.where(known, c / np.where(known, o, 1.0), 1.0)
        return ~known | ((ratio_ >= 1.0 / ratio) & (ratio_ <= ratio))


# Where this many sellers or more all price a product beyond MATCH_RATIO of its own price, on
# the same side, and within AGREE_RATIO of each other, the product's own price is in doubt
# (1999 typed for 19.99): sellers that agree are rarely all wrong matches of one other item.
DOUBT_SELLERS = 2
AGREE_RATIO = 1.5


def own_price_doubt(latest, own, group) -> np.ndarray:
    """Per group (a product: `group` numbers each seller's row, rows of a group together), True
    where its own price is in doubt: at least DOUBT_SELLERS sellers have a latest reading
    (`latest`, NaN: none, e.g. out of stock), every one of them beyond MATCH_RATIO of `own`
    (the group's own price, repeated on its rows) on the same side, and the highest within
    AGREE_RATIO of the lowest."""
    latest = np.asarray(latest, dtype=np.float64)
    own = np.asarray(own, dtype=np.float64)
    group = np.asarray(group)
    if not len(group):
        return np.zeros(0, dtype=bool)
    starts = np.flatnonzero(np.r_[True, group[1:] != group[:-1]])
    seen = np.isfinite(latest)
    off = seen & ~matches(latest, own)
    with np.errstate(invalid="ignore"):
        above = np.add.reduceat((off & (latest > own)).astype(np.int64), starts)
        below = np.add.reduceat((off & (latest < own)).astype(np.int64), starts)
    sellers = np.add.reduceat(seen.astype(np.int64), starts)
    high = np.fmax.reduceat(np.where(seen, latest, np.nan), starts)
    low = np.fmin.reduceat(np.where(seen, latest, np.nan), starts)
    with np.errstate(invalid="ignore"):
        agree = high <= low * AGREE_RATIO
    one_side = (above == sellers) | (below == sellers)
    return (sellers >= DOUBT_SELLERS) & one_side & agree


# The histogram of |log change| between consecutive readings the re-prices are measured on: a
# bin for no change (under the first edge), then bins even in log |change| up to the last edge.
CHANGE_EDGES = (1e-4, 2.0)
CHANGE_BINS = 160


def change_bin(changes) -> np.ndarray:
    """The histogram bin of each |log change| (0: under CHANGE_EDGES[0], i.e. none; the last
    edge's bin takes everything beyond): what the SQL of ml.panel.competitor_noise computes."""
    a = np.abs(np.asarray(changes, dtype=np.float64))
    low, high = np.log(CHANGE_EDGES[0]), np.log(CHANGE_EDGES[1])
    with np.errstate(divide="ignore"):
        at = np.floor((np.log(np.maximum(a, 1e-300)) - low) / (high - low) * CHANGE_BINS) + 1
    return np.where(a < CHANGE_EDGES[0], 0, np.clip(at, 1, CHANGE_BINS)).astype(np.int64)


def histogram_sd(counts) -> float:
    """The robust jitter (1.4826 x median |change| / sqrt 2) read off a histogram of changes
    (`change_bin`'s bins): the median interpolated within its bin, log-linearly (the bins are
    about 6 % wide, so within about 3 % of the exact median); 0 where it is a repeat (bin 0).
    What a seller's own fit starts from, where the exact median would cost a sort per seller."""
    counts = np.asarray(counts, dtype=np.float64)
    total = counts.sum()
    if not total > 0:
        return 0.0
    cumulative = np.cumsum(counts)
    at = int(np.searchsorted(cumulative, total / 2))
    if at == 0:
        return 0.0
    low, high = np.log(CHANGE_EDGES[0]), np.log(CHANGE_EDGES[1])
    width = (high - low) / CHANGE_BINS
    inside = (total / 2 - (cumulative[at - 1])) / max(counts[at], 1e-12)
    median = np.exp(low + (at - 1 + float(np.clip(inside, 0.0, 1.0))) * width)
    return float(median) * 1.4826 / np.sqrt(2)


def noise_of_changes(sd: float, changes, pairs=None) -> Noise:
    """`noise_of_histogram` of these log changes between consecutive readings."""
    d = np.asarray(changes, dtype=np.float64)
    d = d[np.isfinite(d)]
    counts = np.bincount(change_bin(d), minlength=CHANGE_BINS + 1)
    return noise_of_histogram(sd, counts, pairs)


def noise_of_readings(readings) -> Noise:
    """The noise of feeds read as ml.panel.competitor_noise reads a tenant's: `readings`
    (series, k) prices in time order, NaN where out of stock (a run ends there)."""
    counts, pairs, sd = changes_of_readings(readings)
    return noise_of_histogram(sd, counts, pairs)


def changes_of_readings(readings) -> tuple[np.ndarray, tuple[float, float, int], float]:
    """What ml.panel.competitor_noise counts of feeds' changes: their histogram
    (`change_bin`), the pairs' sums (`pair_jitter`) and the robust jitter of their median."""
    x = np.log(np.asarray(readings, dtype=np.float64))
    step = x[:, 1:] - x[:, :-1]  # NaN across a gap
    with np.errstate(invalid="ignore"):
        moved = (np.abs(step) >= CHANGE_EDGES[0]) & (np.abs(step) < PAIR_STEP_MAX)
    both = moved[:, 1:] & moved[:, :-1]
    product = (step[:, 1:] * step[:, :-1])[both]
    pairs = (float(product.sum()), float((product * product).sum()), int(both.sum()))
    changes = np.abs(step[np.isfinite(step)])
    sd = float(np.median(changes)) * 1.4826 / np.sqrt(2) if changes.size else 0.0
    return np.bincount(change_bin(changes), minlength=CHANGE_BINS + 1), pairs, sd


def sellers_noise(tenant: Noise, parts: dict) -> tuple:
    """The sellers read with their own noise (`Noise.sellers`): of `parts` (seller: its
    changes' histogram and pairs' sums), those with SELLER_MIN_CHANGES whose own fit (started
    from the median read off the histogram, `histogram_sd`) differs clearly from the
    tenant's (`own_noise_differs`), by name."""
    out = []
    for seller, (counts, pairs) in sorted(parts.items()):
        counts = np.asarray(counts, dtype=np.float64)
        total = counts.sum()
        if total < SELLER_MIN_CHANGES:
            continue
        own = noise_of_histogram(histogram_sd(counts), counts, pairs)
        if own_noise_differs(tenant, own, counts, pairs):
            out.append((seller, own))
    return tuple(out)


# Pairs of consecutive changes the jitter is read from: both moved the price, neither by this
# much or more (a step that large is a re-price or a reading of another item: no news of the
# jitter, only noise in the products).
PAIR_STEP_MAX = 0.5


def pair_jitter(pairs) -> float | None:
    """One reading's jitter from consecutive changes that both moved the price (under
    PAIR_STEP_MAX), given as (sum of their products, sum of their squares, how many): two
    consecutive changes share a reading, so their covariance is minus its jitter's variance,
    and a re-price independent of the jitter adds nothing to it. 0 where the products are not
    clearly negative (under two standard errors: no jitter shown, e.g. an exact feed whose
    sellers re-price often, or prices that trend); None under MIN_CHANGES pairs."""
    moments = _pairs_mean_se(pairs)
    if moments is None:
        return None
    mean, se = moments
    return float(np.sqrt(-mean)) if -mean > 2 * se else 0.0


def _pairs_mean_se(pairs) -> tuple[float, float] | None:
    """The mean of consecutive changes' products and its standard error, from their sums
    (`pair_jitter`'s); None under MIN_CHANGES pairs or where the sums are not finite."""
    if pairs is None or int(pairs[-1]) < MIN_CHANGES:
        return None
    total, squares, n = float(pairs[0]), float(pairs[1]), int(pairs[2])
    if not (np.isfinite(total) and np.isfinite(squares)):
        return None
    mean = total / n
    return mean, float(np.sqrt(max(squares / n - mean * mean, 0.0) / n))


def noise_of_histogram(sd: float, counts, pairs=None, iterations: int = 20000) -> Noise:
    """The share and r.m.s. size of real re-prices among consecutive readings, and the jitter
    beside them, from the histogram of their |log change| (`change_bin`'s bins): the changes
    that moved the price at all (bins from 1; a repeat, bin 0, is a step without a re-price,
    from a feed that reads exactly) are a mixture fitted by EM, each either two readings'
    jitter, N(0, 2 still_sd^2), or a re-price, N(0, 2 still_sd^2 + jump_sd^2) (a re-price
    smaller than the jitter cannot be told from it), started at the robust `sd` (which it
    returns as `sd` unchanged) and run until the log-likelihood settles (the best parameters
    seen kept). Where `pairs` (`pair_jitter`) show a lower jitter than the mixture's own, the
    jitter is held at theirs and the EM fits the re-prices beside it alone (an exact feed whose
    sellers re-price often: its moves are re-prices, not jitter); the lower of the two is kept
    because the higher one averages more readings into a level, across re-prices it may miss.
    The robust `sd` may be 0 (most changes repeats) where the pairs measure the jitter. Under
    MIN_CHANGES changes, or that few that moved: not fitted."""
    sd = float(sd) if sd is not None and np.isfinite(sd) and sd > 0 else 0.0
    counts = np.asarray(counts, dtype=np.float64)
    total = int(counts.sum())
    moved_counts = counts[1:]
    held = pair_jitter(pairs)
    if (sd <= 0 and held is None) or total < MIN_CHANGES or moved_counts.sum() < MIN_CHANGES:
        return Noise(sd=sd, changes=total)  # too few to fit: each level is its latest reading
    start = sd
    if start <= 0:  # most changes repeats: start at the changes that moved
        low, high = np.log(CHANGE_EDGES[0]), np.log(CHANGE_EDGES[1])
        centres = np.exp(low + (np.arange(CHANGE_BINS) + 0.5) * (high - low) / CHANGE_BINS)
        half = np.searchsorted(np.cumsum(moved_counts), moved_counts.sum() / 2)
        start = float(centres[min(half, CHANGE_BINS - 1)]) * 1.4826 / np.sqrt(2)
    fit = _mixture(moved_counts, start, None, iterations)
    if held is not None and held < np.sqrt(fit[1] / 2):
        fit = _mixture(moved_counts, held, held, iterations)
    part, still, jump2 = fit
    return Noise(
        sd=sd,
        jump_share=float(
            np.clip(part * moved_counts.sum() / total, MIN_JUMP_SHARE, 1 - MIN_JUMP_SHARE)
        ),
        jump_sd=float(np.sqrt(jump2)),
        changes=total,
        still_sd=float(np.sqrt(still / 2)),
    )


# each bin's (geometric) centre, squared, of the bins of changes that moved (from bin 1)
_BIN_X2 = (lambda e: e[:-1] * e[1:])(
    np.exp(np.linspace(np.log(CHANGE_EDGES[0]), np.log(CHANGE_EDGES[1]), CHANGE_BINS + 1))
)
STILL_FLOOR = (CHANGE_EDGES[0] / 2) ** 2  # the jitter's variance never below the first bin's


def _mixture_loglik(moved_counts, part: float, still: float, jump2: float):
    """The log-likelihood of the changes that moved (bins from 1) under the mixture: two
    readings' jitter (variance `still`), or with chance `part` a re-price beside it (variance
    `still` + `jump2`); and each bin's two log terms, which the EM's responsibilities read."""
    moved = still + jump2
    a = np.log1p(-part) - 0.5 * np.log(still) - 0.5 * _BIN_X2 / still
    b = np.log(part) - 0.5 * np.log(moved) - 0.5 * _BIN_X2 / moved
    top = np.maximum(a, b)
    loglik = float(np.sum(moved_counts * (top + np.log(np.exp(a - top) + np.exp(b - top)))))
    return loglik, a, b


def _mixture(moved_counts, start_sd: float, held_sd: float | None, iterations: int):
    """EM of `noise_of_histogram` on the changes that moved (bins from 1): the share of
    re-prices among them, two readings' jitter variance and the re-prices' variance, the
    jitter started at `start_sd`, or held at `held_sd`."""
    x2, floor = _BIN_X2, STILL_FLOOR
    moving = float(moved_counts.sum())
    still = max(2 * start_sd**2, floor)
    part, jump2 = 0.1, max(float(x2[moved_counts > 0].max()) - still, still)
    before, best = -np.inf, (-np.inf, part, still, jump2)
    for _ in range(iterations):
        loglik, a, b = _mixture_loglik(moved_counts, part, still, jump2)
        if loglik > best[0]:
            best = (loglik, part, still, jump2)
        if abs(loglik - before) < 1e-9 * max(abs(loglik), 1.0):
            break
        before = loglik
        resp = moved_counts / (1.0 + np.exp(np.clip(a - b, -700, 700)))  # each bin's re-prices
        weight = resp.sum()
        part = float(np.clip(weight / moving, 1e-6, 1 - 1e-6))
        stay = moved_counts - resp
        if held_sd is None:
            still = float(max(np.sum(stay * x2) / max(stay.sum(), 1e-12), floor))
        jump2 = float(max(np.sum(resp * x2) / max(weight, 1e-12) - still, still))
    return best[1:]


def level(readings, noise: Noise) -> tuple[np.ndarray, np.ndarray]:
    """Per series (row), the competitor's price level today and the readings' weight behind it:
    the jitter's variance (`Noise.jitter`) over the level's, 1 for the latest reading alone,
    more where earlier readings say the same price, under 1 where the run leaves it open
    whether the price just moved (the level then lies between the two prices it may be).
    `readings`: (series, k) prices, the latest first; a series' run ends at its first NaN (a
    row whose first is NaN has no level: NaN, weight 0). A run that repeats a reading exactly
    is an exact feed's: its latest reading, weighed by the readings that repeat it.

    The run's readings either all say today's price, or the latest L do and a re-price came
    before them (L = 1 .. run - 1; a chance `jump_share` per step back, its size N(0,
    jump_sd^2)); at most one re-price in the run (a run is a few readings). Given L the readings
    are normal around their levels with the jitter's variance: the level today is its
    generalised-least-squares estimate (the older readings tell it through the re-price's
    prior), each L weighed by its posterior, the readings' likelihood with the level's flat
    prior integrated out."""
    r = np.asarray(readings, dtype=np.float64)
    if r.ndim != 2:
        raise ValueError("readings: one row of prices per series, the latest first")
    with np.errstate(divide="ignore", invalid="ignore"):
        x = np.where(r > 0, np.log(r), np.nan)
    if not r.shape[1]:
        return np.full(len(r), np.nan), np.zeros(len(r))
    first = x[:, 0]
    run = np.cumprod(np.isfinite(x), axis=1).sum(axis=1)  # readings before the first gap
    latest = np.where(np.isfinite(first), r[:, 0], np.nan)
    if (
        not noise.jitter > EXACT
        or noise.changes < MIN_CHANGES
        or noise.jump_share > MAX_LEVEL_JUMP_SHARE
        or r.shape[1] < 2
    ):
        return latest, np.where(np.isfinite(first), 1.0, 0.0)
    k = r.shape[1]
    share = float(np.clip(noise.jump_share, MIN_JUMP_SHARE, 1 - MIN_JUMP_SHARE))
    # At most one re-price in the run is the model: the run is read back only as far as a
    # second one stays unlikely (LEVEL_REPRICES expected among its steps). Eight daily readings
    # of sellers re-pricing on 22 % of the steps hold two or more re-prices in half the runs;
    # read whole, the level was further off than the latest reading (r.m.s. 0.038 against 0.030)
    # and 10 % of levels beyond 3 stated s.d.; read over its latest three, 0.024 and 0.9 %.
    whole = np.arange(k)[None, :] < run[:, None]  # (an exact feed's repeats: the whole run)
    run = np.minimum(run, 1 + int(LEVEL_REPRICES / share))
    inside = np.arange(k)[None, :] < run[:, None]
    y = np.where(inside, x - np.nan_to_num(first)[:, None], 0.0)  # about the latest reading
    s2, j2 = noise.jitter**2, noise.jump_sd**2
    total, total_sq = y.sum(axis=1), (y * y).sum(axis=1)
    head = np.cumsum(y, axis=1)
    n = run.astype(np.float64)
    logs, means, variances = [], [], []
    for length in range(1, k + 1):
        ok = length <= run
        older = np.where(ok, n - length, 0.0)  # readings before the re-price (0: none)
        s_old = total - head[:, length - 1]
        a = j2 / (s2 + j2 * older)
        ones = n - a * older * older  # 1' S^-1 1, times s2
        cross = total - a * older * s_old  # 1' S^-1 y, times s2
        quad = total_sq - a * s_old * s_old  # y' S^-1 y, times s2
        with np.errstate(divide="ignore", invalid="ignore"):
            q = (quad - cross * cross / ones) / s2
            loglik = -0.5 * (np.log1p(j2 * older / s2) + np.log(ones) + q)
        # prior: a re-price just before the latest `length` readings, none among them
        prior = np.where(older > 0, (length - 1) * np.log1p(-share) + np.log(share), 0.0)
        prior = prior + np.where(older > 0, 0.0, (n - 1) * np.log1p(-share))
        logs.append(np.where(ok & (n > 0), loglik + prior, -np.inf))
        with np.errstate(divide="ignore", invalid="ignore"):
            means.append(cross / ones)
            variances.append(s2 / ones)
    logs = np.array(logs)
    top = np.max(logs, axis=0)
    with np.errstate(invalid="ignore"):
        post = np.exp(logs - np.where(np.isfinite(top), top, 0.0))
        post = post / post.sum(axis=0)
    post = np.nan_to_num(post)
    means, variances = np.nan_to_num(np.array(means)), np.nan_to_num(np.array(variances))
    mean = np.sum(post * means, axis=0)
    var = np.sum(post * (variances + (means - mean) ** 2), axis=0)
    known = n > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        weight = np.where(known, s2 / np.maximum(var, 1e-12 * s2), 0.0)
    level_ = np.where(known, latest * np.exp(mean), np.nan)
    # A run that repeats a reading to the cent is an exact feed's (a jitter all but never
    # repeats): its price is its latest reading, as sure as the readings that repeat it say.
    with np.errstate(invalid="ignore"):
        repeats = whole[:, 1:] & (np.abs(x[:, 1:] - x[:, :-1]) < EXACT)
        at_latest = whole & (np.abs(x - np.nan_to_num(first)[:, None]) < EXACT)
    same = np.cumprod(at_latest, axis=1).sum(axis=1)
    exact = repeats.any(axis=1) & known
    level_ = np.where(exact, latest, level_)
    weight = np.where(exact, np.maximum(same, 1), weight)
    return level_, np.where(known, weight, 0.0)
