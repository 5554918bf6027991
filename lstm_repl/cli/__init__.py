"""cli: the command line. Owns the click commands (one module each; torch is imported lazily so
--help stays fast), the options they share, the training progress display, and turning library
errors into one-line messages (main.py, the only place that does).

May import: everything below it (bench, shell, training, analysis, session, model, data, the
top-level primitives), click, rich."""
