"""data: text in, tokens out. Owns reading a corpus as a stream (its checks, sha256 and byte
offsets), the vocabularies (char, word), the token file cached on disk, the train/validation
split and the TBPTT batches, the catalogue of corpora the tool can build and the package index it
fetches them from, and text piped in on standard input.

May import: the top-level primitives (errors, config, safe_read, cache, ...), numpy. Never torch's
models, the shell, analysis, rich, click or prompt_toolkit."""
