"""bench: the figures the README and the notes quote. Owns the speed of training and generation
against bare PyTorch loops, the shell measured as a person uses it, big corpora, quality at
equal time against the plainest alternatives (reference.py), and of char, word and BPE models
against each other (levels.py).

May import: the shell only through its public headless driver (shell.headless), and training,
analysis, session, model, data, the top-level primitives. Never the CLI."""
