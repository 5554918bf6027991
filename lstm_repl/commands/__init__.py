"""One module per command; each imports torch lazily so --help stays fast."""
