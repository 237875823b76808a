"""The pricing science.

Pure modules (text price model, demand model, optimiser, simulator, evaluation) import only
numpy / torch / transformers / scikit-learn, never Django or pricing_saas (import-linter checks
it). models.py and tasks.py are the Django side: the model registry and the Celery tasks.
"""
