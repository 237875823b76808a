"""The pricing science, pure: numpy / scipy / scikit-learn / torch / transformers only, never
Django or the project's apps (an import-linter contract keeps it so). Arrays and frames in,
results out: what a GPU worker, a notebook or a benchmark can call directly."""
