"""What every shop publisher decides before it sends anything, whatever the platform.

`plan()` takes the changes handed over, the shop ids of each SKU (`ShopVariant`) and the live
prices just read from the shop, and splits them:
- a SKU the shop connection does not know fails ("sync its products first");
- a variant the shop no longer has fails ("removed; not sent");
- a live price already equal to the new one counts as done: a retry after a half-finished push
  sends nothing twice;
- a live price that is neither the old nor the new one was changed in the shop by a person:
  the change fails and the shop's price is not overwritten (it needs a new approval);
- a platform-specific refusal (`refuse(ref)` answers a reason) fails with that reason;
- the rest are to send.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

from .publishers import ChangeRow, PushResult

CENT = Decimal("0.01")


def plan(
    rows: list[ChangeRow],
    refs: dict[str, str],
    live: dict[str, Decimal],
    *,
    shop_url: str,
    refuse: Callable[[str], str] | None = None,
) -> tuple[dict[int, PushResult], list[tuple[ChangeRow, str]]]:
    """(results decided now by change id, [(change, variant ref) to send])."""
    results: dict[int, PushResult] = {}
    to_send: list[tuple[ChangeRow, str]] = []
    for row in rows:
        ref = refs.get(row.sku)
        if ref is None:
            results[row.change_id] = PushResult(
                row.change_id,
                False,
                f"SKU {row.sku} is not a product of {shop_url} (sync its products first)",
            )
            continue
        if ref not in live:
            results[row.change_id] = PushResult(
                row.change_id,
                False,
                "the shop no longer has this product or variant (removed); not sent",
            )
            continue
        price = live[ref]
        if price == row.new_price.quantize(CENT):
            results[row.change_id] = PushResult(row.change_id, True)  # already there: not resent
            continue
        if price != row.old_price.quantize(CENT):
            results[row.change_id] = PushResult(
                row.change_id,
                False,
                f"the shop's price is {price}, not the {row.old_price.quantize(CENT)} this "
                "change was made against (changed in the shop); not overwritten",
            )
            continue
        reason = refuse(ref) if refuse else ""
        if reason:
            results[row.change_id] = PushResult(row.change_id, False, reason)
            continue
        to_send.append((row, ref))
    return results, to_send


def chunks(items: list, size: int):
    for start in range(0, len(items), size):
        yield items[start : start + size]
