"""The Shopify connector: Admin GraphQL client with cost-based throttling (`client.py`), its
queries (`queries.py`), the publisher (`publisher.py`), the pull of products and orders
(`pull.py`) and webhooks (`webhooks.py`)."""
