"""The Django side of ml: the per-tenant model registry lives here (see the ml issues)."""
