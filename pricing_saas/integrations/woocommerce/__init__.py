"""The WooCommerce connector (REST API v3): client, pull, publisher, webhooks."""
