"""bench: the figures the README and the notes quote. Owns the speed of training and generation
against bare PyTorch loops, the shell measured as a person uses it, big corpora, and quality at
equal time against the plainest alternatives (reference.py).

May import: the shell only through its public headless driver (shell.headless), and training,
analysis, session, model, data, the top-level primitives. Never the CLI."""
