# cronium runtime helpers for bash scripts.
# Loaded by the runner through BASH_ENV before the user's script starts.
# Placeholder: the runtime helper functions are added in a later task.
