"""One module per CLI command; each exposes functions returning an exit code."""
