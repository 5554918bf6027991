"""session: a model reading text, without any UI. Owns sampling (temperature, top-k, top-p, the
generate stream), per-token traces of every gate, the Session the shell drives (typed text as
tokens, the states kept, edits, interventions, predictions, ghost text) and reading interventions
as people write them.

May import: model, data, the top-level primitives. Never training, analysis, the shell, bench or
the CLI; never rich, click or prompt_toolkit."""
