# cronium runtime helpers for python scripts (importable as `cronium`).
# The runner puts this directory first on PYTHONPATH.
# Placeholder: the runtime helpers are added in a later task.
