// cronium runtime helpers for node scripts (require('cronium')).
// The runner puts this directory first on NODE_PATH.
// Placeholder: the runtime helpers are added in a later task.
