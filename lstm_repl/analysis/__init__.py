"""analysis: what the units do. Owns the features of a text a unit may track (quotes, brackets,
line position, a regex), scoring every unit of every layer against one, chunk by chunk, gate
saturation, the labels saved beside a checkpoint (units.json), and heatmaps as HTML.

May import: session, model, data, the top-level primitives. Never training, the shell, bench or
the CLI; never rich, click or prompt_toolkit."""
