"""training: making a model from a corpus. Owns assembling a run (new or resumed), the loop
(trainer.py: it reports through a callback and never prints), the schedule, divergence, what a
run writes in its folder (best/, last/, log.jsonl, the lock), resuming, data-parallel training
under torchrun, evaluation in bits per character and perplexity per word, the adaptive softmax's
cut-offs, cell kinds trained side by side, and exporting a run with its model card.

May import: session (a sample at each validation), model, data, the top-level primitives. Never
analysis, the shell, bench or the CLI; never rich, click or prompt_toolkit."""
