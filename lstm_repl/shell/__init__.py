"""shell: the interactive shell. Owns the prompt_toolkit application and its key bindings, the
colon commands, the panel (pure views of one model step laid out to an exact width, written to
the terminal a changed line at a time), the plain shell for pipes, recording and replaying
sessions, asciicasts, the scripted tour, --follow, and the headless driver that tests, bench,
replay and demo run the shell with.

May import: analysis, session, model, data, the top-level primitives, prompt_toolkit, rich.
Never training, bench or the CLI. Views take plain numbers and never import torch."""
