"""OOS encrypted-parameter backend (objectType `oos`)."""
