"""The GraphQL operations the connector sends (Admin API, the version pinned in client.py),
with the page sizes that keep each request's requested cost under Shopify's 1,000-point
maximum for one query (a connection costs 2 + first x its node; an object 1; scalars 0)."""

from __future__ import annotations

SHOP = """query Shop { shop { name currencyCode myshopifyDomain } }"""

VARIANTS_PAGE = 240  # node: variant 1 + inventoryItem 1 + unitCost 1 + product 1 = 4 -> 962
VARIANTS = """query Variants($first: Int!, $after: String, $query: String) {
  productVariants(first: $first, after: $after, query: $query, sortKey: ID) {
    pageInfo { hasNextPage endCursor }
    nodes {
      id sku title price compareAtPrice inventoryQuantity updatedAt
      inventoryItem { unitCost { amount currencyCode } }
      product { id title description vendor productType status updatedAt }
    }
  }
}"""

PRICES_PAGE = 250  # Shopify's largest input array
VARIANT_PRICES = """query VariantPrices($ids: [ID!]!) {
  nodes(ids: $ids) { ... on ProductVariant { id price product { id } } }
}"""

VARIANTS_BULK_UPDATE = """mutation VariantsBulkUpdate(
  $productId: ID!, $variants: [ProductVariantsBulkInput!]!
) {
  productVariantsBulkUpdate(
    productId: $productId, variants: $variants, allowPartialUpdates: true
  ) {
    productVariants { id price }
    userErrors { field message code }
  }
}"""
MUTATION_COST = 10

LINES_PAGE, REFUNDS_PAGE = 25, 2
ORDERS_PAGE = 5  # node: 1 + lineItems (2 + 25 x 3) + refunds 2 x (1 + 2 + 25 x 2) = 184 -> 922
ORDERS = """query Orders($first: Int!, $after: String, $query: String) {
  orders(first: $first, after: $after, query: $query, sortKey: UPDATED_AT) {
    pageInfo { hasNextPage endCursor }
    nodes {
      id name createdAt updatedAt cancelledAt currencyCode
      lineItems(first: 25) {
        pageInfo { hasNextPage endCursor }
        nodes {
          id sku quantity
          discountedUnitPriceAfterAllDiscountsSet { shopMoney { amount currencyCode } }
        }
      }
      refunds(first: 2) {
        createdAt
        refundLineItems(first: 25) { nodes { quantity lineItem { id } } }
      }
    }
  }
}"""


# The rest of an order the page above could not hold (more than 25 lines, 2 refunds or more):
# 1 + lineItems (2 + 100 x 3) + refunds 10 x (1 + 2 + 25 x 2) = 833
REST_LINES_PAGE, REST_REFUNDS = 100, 10
ORDER_REST = """query OrderRest($id: ID!, $after: String) {
  order(id: $id) {
    lineItems(first: 100, after: $after) {
      pageInfo { hasNextPage endCursor }
      nodes {
        id sku quantity
        discountedUnitPriceAfterAllDiscountsSet { shopMoney { amount currencyCode } }
      }
    }
    refunds(first: 10) {
      createdAt
      refundLineItems(first: 25) { pageInfo { hasNextPage } nodes { quantity lineItem { id } } }
    }
  }
}"""


def estimate(operation: str, variables: dict) -> float:
    """The requested cost before the shop has told us (it is learnt from each answer)."""
    first = int(variables.get("first") or 1)
    if operation == "Variants":
        return 2 + first * 4
    if operation == "Orders":
        return 2 + first * (1 + (2 + LINES_PAGE * 3) + REFUNDS_PAGE * (1 + 2 + LINES_PAGE * 2))
    if operation == "OrderRest":
        return 1 + (2 + REST_LINES_PAGE * 3) + REST_REFUNDS * (1 + 2 + LINES_PAGE * 2)
    if operation == "VariantPrices":
        return 1 + 2 * len(variables.get("ids") or [])
    if operation == "VariantsBulkUpdate":
        return MUTATION_COST
    return 1


# Webhook subscriptions (API version 2025-07: the HTTP endpoint's `callbackUrl`).
WEBHOOK_TOPICS = ("PRODUCTS_UPDATE", "ORDERS_CREATE", "ORDERS_UPDATED", "APP_UNINSTALLED")
WEBHOOKS = """query Webhooks {
  webhookSubscriptions(first: 100) {
    nodes { id topic endpoint { __typename ... on WebhookHttpEndpoint { callbackUrl } } }
  }
}"""
WEBHOOK_CREATE = """mutation WebhookCreate(
  $topic: WebhookSubscriptionTopic!, $subscription: WebhookSubscriptionInput!
) {
  webhookSubscriptionCreate(topic: $topic, webhookSubscription: $subscription) {
    webhookSubscription { id }
    userErrors { field message }
  }
}"""


# Bulk operations: one query Shopify runs on its side over the whole shop, its result a JSONL
# file (a nested connection's nodes are lines of their own, naming their parent in
# `__parentId`). Costs 10 points to start and a point a poll, whatever the shop's size.
COUNTS = """query Counts { productVariantsCount { count } ordersCount { count } }"""
BULK_VARIANTS = """{ productVariants { edges { node {
  id sku title price compareAtPrice inventoryQuantity updatedAt
  inventoryItem { unitCost { amount currencyCode } }
  product { id title description vendor productType status updatedAt }
} } } }"""
BULK_ORDERS = """{ orders { edges { node {
  id name createdAt updatedAt cancelledAt currencyCode
  refunds { id }
  lineItems { edges { node {
    id sku quantity
    discountedUnitPriceAfterAllDiscountsSet { shopMoney { amount currencyCode } }
  } } }
} } } }"""
BULK_RUN = """mutation BulkRun($query: String!) {
  bulkOperationRunQuery(query: $query) {
    bulkOperation { id status }
    userErrors { field message }
  }
}"""
BULK_STATUS = """query BulkStatus {
  currentBulkOperation(type: QUERY) { id status errorCode objectCount url }
}"""
