"""lstm-repl bench: the speed, memory and quality figures quoted in notes and the README."""

from __future__ import annotations

from pathlib import Path

import click

from lstm_repl.cli.options import POSITIVE, SEED, with_options
from lstm_repl.terminal_text import terminal_line


@click.group()
def bench() -> None:
    """Measure this machine: speed, memory, and quality against references at equal time."""


@bench.command("train")
@click.option("--hidden", type=click.IntRange(min=1), default=512, show_default=True)
@click.option("--embed", type=click.IntRange(min=1), default=128, show_default=True)
@click.option("--layers", type=click.IntRange(min=1), default=2, show_default=True)
@click.option("--batch-size", type=click.IntRange(min=1), default=64, show_default=True)
@click.option("--seq-len", type=click.IntRange(min=1), default=100, show_default=True)
@click.option("--vocab", type=click.IntRange(min=3), default=65, show_default=True, help="Vocabulary size.")
@click.option("--level", type=click.Choice(["char", "word"]), default="char", show_default=True,
              help="word: token ids from a Zipf law (bench.bench_ids), as the adaptive softmax's cost depends on.")
@click.option("--softmax", "softmaxes", default=None,
              help="Comma-separated output layers to time: full, adaptive [default: full; word level: full,adaptive].")
@click.option("--steps", type=click.IntRange(min=1), default=10, show_default=True, help="Timed steps per loop.")
@click.option("--precision", "precisions", default="fp32,bf16,fp16", show_default=True,
              help="Comma-separated list; those that do not run on this device are skipped, with the reason.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda", "mps"]), default="auto", show_default=True)
def bench_train_command(hidden, embed, layers, batch_size, seq_len, vocab, level, softmaxes, steps, precisions,
                        device) -> None:
    """The project's training step (with each output layer) against a bare fused nn.LSTM loop of
    the same shapes with a full softmax."""
    from lstm_repl.bench.speed import bench_train, matmul_peaks
    from lstm_repl.model.devices import resolve_device
    from lstm_repl.model.precision import device_description

    wanted = [p.strip() for p in precisions.split(",") if p.strip()]
    bad = [p for p in wanted if p not in ("fp32", "bf16", "fp16", "auto")]
    if bad:
        raise click.BadParameter(f"unknown precision {bad[0]!r}; use fp32, bf16, fp16 or auto",
                                 param_hint="--precision")
    from lstm_repl.model.precision import TRAINING_CANDIDATES, probe_training

    kinds = tuple(k.strip() for k in (softmaxes or ("full,adaptive" if level == "word" else "full")).split(","))
    if not kinds or any(k not in ("full", "adaptive") for k in kinds):
        raise click.BadParameter(f"{softmaxes!r}: list full and/or adaptive", param_hint="--softmax")

    target = resolve_device(device)
    peaks = matmul_peaks(target, tuple(p for p in TRAINING_CANDIDATES if probe_training(target, p).works))
    click.echo("matmul peak (2048^3): " + ", ".join(f"{name} {gflops:,.0f} GFLOP/s" for name, gflops in peaks.items()))
    peak_name, peak = max(peaks.items(), key=lambda kv: kv[1])
    click.echo(f"{level} level, {layers} x {hidden}, embed {embed}, batch {batch_size}, seq {seq_len}, vocab {vocab}")

    def report(row: dict) -> None:
        click.echo(
            f"{row['precision']:>5}: project {row['project_tokens_per_s']:>9,.0f} tok/s   bare loop "
            f"{row['bare_tokens_per_s']:>9,.0f} tok/s   ratio {row['ratio']:.3f}   "
            + (f"{row['project_gflops']:,.0f} GFLOP/s = {row['project_gflops'] / peak:.0%} of the {peak_name} peak"
               if kinds[0] == "full" else "")  # (the FLOP count is the full softmax's)
            + (f" ({kinds[0]} softmax)" if kinds != ("full",) else "")
        )
        for kind in kinds[1:]:
            rate, cuts = row["softmax"][kind], row["cutoffs"][kind]
            shown = f", cut-offs {cuts}" if cuts else ""
            click.echo(f"{'':>5}  {kind} softmax {rate:>9,.0f} tok/s = "
                       f"{rate / row['project_tokens_per_s']:.2f} x the {kinds[0]} softmax{shown}")

    def skipped(precision: str, why: str) -> None:
        click.echo(f"{precision:>5}: skipped, it does not run on {device_description(target)} ({why})")

    bench_train(hidden, embed, layers, batch_size, seq_len, vocab, steps, wanted, device, report, skipped, level,
                kinds)


@bench.command("generate")
@click.argument("ckpt", default="shakespeare-char")
@click.option("--tokens", type=click.IntRange(min=10), default=2000, show_default=True)
def bench_generate_command(ckpt, tokens) -> None:
    """tokens/s of generate at batch 1 (no display) against a bare loop; the cost of one step."""
    from lstm_repl.model import checkpoint
    from lstm_repl.bench.speed import bench_generate

    loaded = checkpoint.load(ckpt)
    config = loaded.model.config
    r = bench_generate(loaded, tokens)
    click.echo(terminal_line(f"{loaded.name}: {config.cell}, {config.layers} x {config.hidden}, "
                             f"vocabulary {config.vocab_size}"))
    for name, rate in r["tokens_per_s"].items():
        default = " (the default here)" if name == f"generate {r['precision']}" else ""
        click.echo(f"{name + ':':<17} {rate:>7,.0f} tokens/s{default}")
    for precision, ms in r["weights_read_ms"].items():
        click.echo(f"reading the {precision} weights once: {ms:.3f} ms, so at most {1000 / ms:,.0f} tokens/s")
    packed = "".join(f"packed {p} {ms:.3f} ms, " for p, ms in r["step_ms"].items())
    click.echo(f"one token, every gate returned: {packed}unpacked {r['plain_step_ms']:.3f} ms")
    click.echo(f"one token through the fused nn.{config.cell.upper()}: {r['fused_step_ms']:.3f} ms with oneDNN, "
               f"{r['fused_no_onednn_ms']:.3f} ms without")


@bench.command("repl")
@click.argument("ckpt", default="shakespeare-char")
@click.option("--width", type=click.IntRange(min=60), default=120, show_default=True)
@click.option("--height", type=click.IntRange(min=10), default=36, show_default=True)
@click.option("--paste", "paste_file", type=click.Path(exists=True, dir_okay=False),
              help="Text to paste as keystrokes (default: 50 kB of Shakespeare).")
@click.option("--stream-tokens", type=click.IntRange(min=100), default=200_000, show_default=True,
              help="Tokens streamed for the memory figure (then 20,000 characters typed).")
@click.option("--quick", is_flag=True, help="Only the model-side keystroke and streaming figures.")
@click.option("--learning", "learning_only", is_flag=True, help="Only the figures with :learn on.")
def bench_repl_command(ckpt, width, height, paste_file, stream_tokens, quick, learning_only) -> None:
    """The shell's speed and memory: per keystroke at three text lengths (key to frame, the real
    app fed through a pipe), with :learn on at two, a held-out paste's bits per character with
    learning on and off, a paste arriving as keystrokes against `lstm-repl eval`, and memory after
    a long stream."""
    from lstm_repl.model import checkpoint
    from lstm_repl.bench import shell_speed as sb
    from lstm_repl.bench.speed import bench_repl

    loaded = checkpoint.load(ckpt)
    if learning_only:
        _learning_figures(ckpt, paste_file)
        return
    r = bench_repl(loaded, width, height)
    click.echo(terminal_line(f"{loaded.name}, panel {width} x {height}"))
    click.echo(f"model side per keystroke: p50 {r['keystroke_p50_ms']:.2f} ms, p99 {r['keystroke_p99_ms']:.2f} ms "
               "(model step, gates, predictions, ghost text, panel rendered)")
    click.echo(f"streaming: {r['stream_tokens_per_s']:,.0f} tokens/s "
               f"with the panel drawn {r['frames_per_s']:.0f} times a second")
    if quick:
        return
    for typed in (100, 10_000, 100_000):
        to_frame, to_ghost = sb.keystroke_ms(loaded, typed)
        click.echo(f"with {typed:>7,} characters typed: key to frame p50 {sb.percentile(to_frame, 0.5):.2f} ms, "
                   f"p99 {sb.percentile(to_frame, 0.99):.2f} ms; to the ghost text p50 "
                   f"{sb.percentile(to_ghost, 0.5):.2f} ms, p99 {sb.percentile(to_ghost, 0.99):.2f} ms "
                   f"({len(to_frame)} keys, every 17th a backspace)")
    _learning_figures(ckpt, paste_file)
    text = _paste_text(paste_file)
    pasted = sb.paste_chars_per_s(loaded, text)
    evaluated = sb.eval_chars_per_s(loaded, text)
    click.echo(f"a {len(text):,}-character paste arriving as keystrokes: {pasted['chars_per_s']:,.0f} chars/s "
               f"({pasted['seconds']:.2f} s, {pasted['frames']} frames); lstm-repl eval on it: "
               f"{evaluated:,.0f} chars/s; ratio {pasted['chars_per_s'] / evaluated:.2f}")
    memory = sb.long_use_memory(loaded, stream_tokens, 20_000)
    click.echo(f"after streaming {stream_tokens:,} tokens and typing 20,000 characters: RSS "
               f"{memory['rss_end_mb']:,.0f} MB (at start {memory['rss_start_mb']:,.0f} MB, after warm-up "
               f"{memory['rss_after_warmup_mb']:,.0f} MB), {memory['kib_per_token']:.3f} KiB per token; "
               f"states kept {memory['states_kept']} (bound {memory['states_bound']}), "
               f"gate records {memory['gates_kept']}")


HELD_OUT_PASTE = 5_000


def _learning_figures(ckpt: str, paste_file: str | None) -> None:
    """With :learn on: key to frame at 100 and 10,000 characters typed, and a held-out paste's
    bits per character with learning on and off (each on a freshly loaded model)."""
    from lstm_repl.model import checkpoint
    from lstm_repl.bench import shell_speed as sb

    for typed in (100, 10_000):
        to_frame, _ = sb.keystroke_ms(checkpoint.load(ckpt), typed, learn=True)
        click.echo(f"learning on, with {typed:>7,} characters typed: key to frame p50 "
                   f"{sb.percentile(to_frame, 0.5):.2f} ms, p99 {sb.percentile(to_frame, 0.99):.2f} ms "
                   f"({len(to_frame)} keys, every 17th a backspace, learning behind them)")
    held_out = _held_out_paste(ckpt, paste_file)
    if isinstance(held_out, str):
        click.echo(f"held-out paste with learning on and off: skipped; {held_out}")
        return
    text, about = held_out
    results = {learn: sb.paste_bits_per_char(checkpoint.load(ckpt), text, learn) for learn in (False, True)}
    off, on = results[False], results[True]
    click.echo(terminal_line(f"a {len(text):,}-character held-out paste ({about}) read in the shell: "
                             f"{off['bits_per_character']:.4f} bits per character with learning off, "
                             f"{on['bits_per_character']:.4f} with it on (gain "
                             f"{off['bits_per_character'] - on['bits_per_character']:+.4f}; settled after "
                             f"{on['seconds']:.1f} s, weights moved {on['moved']:.2%})"))


def _held_out_paste(ckpt: str, path: str | None) -> tuple[str, str] | str:
    """--paste's first 5,000 characters; else, for the bundled Shakespeare models, the last 5,000
    of their corpus (held out from training). Else why there is no held-out text: a text the model
    has read before (the bench's sample, repeated) would measure memory, not learning."""
    from lstm_repl.data import catalogue as corpora

    if path:
        return _read_paste(path)[:HELD_OUT_PASTE], Path(path).name
    if not ckpt.startswith("shakespeare"):
        return "give --paste FILE, a text this model was not trained on"
    corpus = corpora.target_path(corpora.find(corpora.load_catalogue(), "shakespeare"))
    if not corpus.is_file():
        return "its text is the end of the Shakespeare corpus: run `lstm-repl corpus get shakespeare`"
    return corpus.read_text("utf-8")[-HELD_OUT_PASTE:], "the end of the Shakespeare corpus"


PASTE_LIMIT = 64 * 1024 * 1024


def _read_paste(path: str) -> str:
    from lstm_repl.safe_read import read_text

    return read_text(path, PASTE_LIMIT, what="text to paste")


def _paste_text(path: str | None) -> str:
    from lstm_repl.bench.shell_speed import SAMPLE

    if path:
        return _read_paste(path)
    return (SAMPLE * (50_000 // len(SAMPLE) + 1))[:50_000]


@bench.command("soak")
@click.argument("ckpt", default="shakespeare-char")
@click.option("--minutes", type=POSITIVE, default=10.0, show_default=True)
@click.option("--seed", type=SEED, default=1, show_default=True)
def bench_soak_command(ckpt, minutes, seed) -> None:
    """Minutes of typing, streaming, Ctrl-C, backspace, edits, :reset and :load in the real app
    (headless, seeded); the resident set sampled every 30 s. Flat after warm-up, no errors."""
    from lstm_repl.model import checkpoint
    from lstm_repl.bench.shell_speed import soak

    loaded = checkpoint.load(ckpt)
    r = soak(loaded, minutes, seed, report=lambda line: click.echo(terminal_line(line), err=True))
    samples = r["rss_samples"]
    warm = next((rss for t, rss in samples if t >= 60), samples[0][1])
    actions = ", ".join(f"{name} {count}" for name, count in r["actions"].items())
    click.echo(terminal_line(f"{loaded.name}, {minutes:g} minutes, seed {seed}: {actions}"))
    click.echo(f"RSS after the first minute {warm:,.1f} MB, at the end {samples[-1][1]:,.1f} MB, "
               f"highest {max(rss for _, rss in samples):,.1f} MB; errors: {len(r['errors'])}")
    for error in r["errors"][:10]:
        click.echo(f"  {terminal_line(error)}")
    if r["errors"]:
        raise SystemExit(1)


@bench.command("startup")
@click.argument("ckpt", default="shakespeare-char")
@click.option("--rounds", type=click.IntRange(min=1), default=3, show_default=True)
def bench_startup_command(ckpt, rounds) -> None:
    """From the command to a shell ready for typing, against `python -c "import torch"`, interleaved."""
    from lstm_repl.bench.shell_speed import startup_seconds

    r = startup_seconds(ckpt, rounds)
    click.echo(terminal_line(f"python -c 'import torch': {r['import_torch_s']:.2f} s; lstm-repl repl {ckpt} ready "
                             f"for typing: {r['shell_ready_s']:.2f} s; ratio {r['ratio']:.2f} (medians of {rounds})"))


@bench.command("big-corpus")
@click.option("--size", default="2GB", show_default=True, help="Corpus size, e.g. 500MB, 2GB.")
@click.option("--level", "levels", default="char,word", show_default=True, help="Levels to train, comma-separated.")
@click.option("--steps", type=click.IntRange(min=1), default=5, show_default=True, help="Training steps per level.")
@click.option("--dir", "folder", type=click.Path(file_okay=False), help="Where the corpus and token file go "
              "(default: the system's temporary folder); both are deleted after.")
def bench_big_corpus_command(size, levels, steps, folder) -> None:
    """A generated corpus bigger than memory: `lstm-repl train` streams it into a token file and
    trains a few steps; its peak RSS and the speed of the corpus passes, per level."""

    from lstm_repl.bench.big_corpus import big_corpus, parse_size

    try:
        size_bytes = parse_size(size)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--size") from None
    for level in levels.split(","):
        r = big_corpus(size_bytes, level.strip(), steps, Path(folder) if folder else None,
                       report=lambda line: click.echo(f"  {line}", err=True))
        click.echo(f"{level}: {r['bytes'] / 1e9:.2f} GB corpus (generated in {r['generate_s']:.0f} s), "
                   f"token file {r['token_file_bytes'] / 1e9:.2f} GB; read + count + tokenize + model "
                   f"{r['prepare_s']:.0f} s = {r['prepare_mb_per_s']:.1f} MB/s; {steps} steps, "
                   f"{r['total_s']:.0f} s in all; peak RSS of `lstm-repl train` {r['peak_rss_mb']:,.0f} MB")


DEFAULT_QUALITY_CORPUS = "shakespeare"  # from `lstm-repl corpus get shakespeare`
DEFAULT_QUALITY_CHARS = 1_115_000  # about tinyshakespeare's size


@bench.command("quality")
@click.argument("corpus", nargs=-1, type=click.Path())
@click.option("--minutes", type=POSITIVE, default=10.0, show_default=True,
              help="Training time of each side (validation excluded).")
@click.option("--steps", type=click.IntRange(min=1), help="Train each side this many steps instead (equal steps).")
@click.option("--recipe", type=click.Choice(["defaults", "reference"]), default="defaults", show_default=True,
              help="What lstm-repl trains with: its defaults, or the reference's own settings (the per-step check).")
@click.option("--precision", type=click.Choice(["auto", "bf16", "fp16", "fp32"]), default="auto", show_default=True,
              help="lstm-repl's precision; the reference is always fp32, as its recipe says.")
@click.option("--chars", type=click.IntRange(min=1), help="Use the first N characters (default corpus: 1,115,000).")
@click.option("--curve", "curve_points", type=click.IntRange(min=0), default=10, show_default=True,
              help="With --steps: held-out bpc at this many points of each run.")
@click.option("--keep", type=click.Path(file_okay=False), help="Keep lstm-repl's run in this folder.")
@click.option("--level", type=click.Choice(["char", "word"]), default="char", show_default=True,
              help="word: lstm-repl's word-level defaults against pytorch/examples' word_language_model recipe.")
@click.option("--side", type=click.Choice(["both", "lstm-repl", "reference", "gpt", "all"]), default="both",
              show_default=True, help="Train one side only (on a shared machine, each in its own command); "
              "gpt: nanoGPT's small character GPT; all: the three.")
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
def bench_quality_command(corpus, minutes, steps, recipe, precision, chars, curve_points, keep, level, side,
                          as_json) -> None:
    """lstm-repl's defaults against a plain PyTorch loop (reference.py) at equal time or equal steps:
    both trained on the first 90% of CORPUS, one after the other, and scored in bits per character
    on the last 10%. CORPUS defaults to the bundled Shakespeare cut to tinyshakespeare's size. At
    word level the reference is pytorch/examples' recipe (SGD at lr 20, 2 x 200, batch 20, bptt 35)."""
    import json

    from lstm_repl.bench.quality import SIDES, compare_quality, project_settings
    from lstm_repl.bench.reference import recipe_for
    from lstm_repl.training.plan import PLANNED

    if recipe == "reference" and level == "word":
        raise click.UsageError("--recipe reference is the char-level per-step check; use --recipe defaults")
    paths, chars = list(corpus), chars
    if not paths:
        paths, chars = [str(_default_quality_corpus())], chars or DEFAULT_QUALITY_CHARS
    time_limit = None if steps else minutes * 60
    config, model_args = project_settings(recipe, precision, steps, time_limit, level)
    wanted = {"both": SIDES, "all": (*SIDES, "gpt")}.get(side, (side,))
    split, sides = compare_quality(paths, config, model_args, recipe_for(level), steps, time_limit,
                                   chars, curve_points if steps else 0, Path(keep) if keep else None,
                                   report=lambda line: click.echo(terminal_line(line), err=True), sides=wanted,
                                   planned=frozenset(PLANNED) if recipe == "defaults" else frozenset())
    project, reference = sides.get("lstm-repl"), sides.get("reference")
    present = list(sides.values())
    result = {"corpus": split.name, "level": level, "bound": f"{steps} steps" if steps else f"{minutes:g} minutes",
              "recipe": recipe, "precision": project.precision if project else "fp32",
              "sides": {s.name: s.__dict__ for s in present}}
    if project and reference:
        result["difference_bpc"] = reference.bpc - project.bpc
    if as_json:
        click.echo(json.dumps(result))
        return
    click.echo(f"{split.name}, {level} level, {result['bound']} each, lstm-repl with its {recipe} "
               f"({result['precision']}), the reference in fp32")
    for s in present:
        click.echo(f"  {s.name:<10} {s.steps:>7,} steps  {s.tokens_per_s:>8,.0f} tok/s  held-out {s.bpc:.4f} bpc")
    if "difference_bpc" in result:
        better = "lstm-repl better" if result["difference_bpc"] > 0 else "the reference better"
        click.echo(f"  difference (reference - lstm-repl): {result['difference_bpc']:+.4f} bpc ({better})")


def _cell_options(results: str) -> list:
    """What bench matrix and bench levels take alike: where corpora lie, the results file, --list, --table."""
    return [
        click.option("--corpus", "given", multiple=True, metavar="NAME=PATH",
                     help="Where a corpus lies (wikitext-2 has no catalogue entry: give its file)."),
        click.option("--results", type=click.Path(dir_okay=False), default=results, show_default=True,
                     help="Each cell's figures are appended here as it ends."),
        click.option("--list", "listing", is_flag=True, help="List the cells and stop."),
        click.option("--table", "as_table", is_flag=True,
                     help="Print the results file as the README's table and stop."),
    ]


@bench.command("matrix")
@click.argument("cells", nargs=-1)
@with_options(_cell_options("bench-matrix.jsonl"))
@click.option("--again", is_flag=True, help="Train cells that the results file already holds.")
@click.option("--side", "retrain", multiple=True, type=click.Choice(["lstm-repl", "reference", "gpt"]),
              help="Train only this side of the chosen cells again (repeatable) and keep the others' figures "
                   "from --results, where this machine measured them (else the whole cell trains).")
def bench_matrix_command(cells, given, results, listing, as_table, again, retrain) -> None:
    """The defaults against the plain references (and nanoGPT's small GPT) on several kinds of text,
    at 2 and 10 minutes, char and word level: CELLS are names or patterns such as
    'shakespeare/char/*' (default: every cell under an hour; wikitext-2/word/60m only when named).
    Each cell trains its sides one after the other for equal time and appends a row to --results.
    A cell already in --results from this machine is skipped, so a stopped run takes up where it
    was; one measured on another CPU is measured again here, in a table of this machine's own."""
    from lstm_repl.bench import matrix
    from lstm_repl.bench.results import append_row, machine

    chosen = matrix.select(matrix.default_cells(), list(cells))
    if listing:
        for cell in chosen:
            click.echo(f"{cell.name:<28} {', '.join(cell.sides)}")
        return
    path = Path(results)
    if as_table:
        click.echo(matrix.table(matrix.read_results(path)))
        return
    rows = matrix.read_results(path) if path.exists() else []
    here = machine()
    todo = chosen if again or retrain else matrix.pending(chosen, rows, here)
    for cell in chosen:
        if cell not in todo:
            click.echo(f"{cell.name}: measured already (--again to train it again)", err=True)
    paths_given = dict(_name_and_path(item) for item in given)
    located = {cell: matrix.corpus_paths(cell.corpus, cell.name, paths_given, _catalogue_file) for cell in todo}
    for cell, (paths, chars) in located.items():
        earlier = matrix.kept_sides(matrix.row_of(cell, rows, here), retrain, here)
        if retrain and earlier is None:
            click.echo(f"{cell.name}: no row measured on this machine to keep sides from; training every side",
                       err=True)
        kept = [name for name in cell.sides if earlier and name in earlier["sides"]]
        training = [name for name in cell.sides if name not in kept]
        keeping = f"; keeping {', '.join(kept)} as measured on {earlier.get('when')}" if kept else ""
        click.echo(f"{cell.name}: {', '.join(training)}, {cell.minutes:g} minutes each{keeping}", err=True)
        row = matrix.run_cell(cell, paths, chars, lambda line: click.echo(terminal_line(line), err=True), earlier)
        append_row(Path(results), row)
        click.echo(terminal_line(matrix.table([row]).splitlines()[-1]))


@bench.command("levels")
@click.argument("cells", nargs=-1)
@with_options(_cell_options("bench-levels.jsonl"))
@click.option("--minutes", type=POSITIVE, default=10.0, show_default=True, help="Training time of each cell.")
@click.option("--steps", type=click.IntRange(min=1),
              help="Train each cell this many steps instead (a quick check; the README's figures are at equal time).")
@click.option("--again", is_flag=True, help="Train cells that the results file already holds at this budget.")
def bench_levels_command(cells, given, results, minutes, steps, again, listing, as_table) -> None:
    """Char, word and byte-level BPE at several vocabulary sizes, each trained with the planned
    defaults for the same minutes on the first 90% of a corpus and scored in bits per character on
    the last 10%. CELLS are names or patterns such as 'wikitext-2/bpe-*' (default: char, word,
    bpe-512, bpe-2048 and bpe-8192 on shakespeare and wikitext-2). A cell already in --results at
    this budget is skipped, so a stopped run takes up where it was."""

    from lstm_repl.bench import levels, matrix
    from lstm_repl.bench.results import append_row

    chosen = levels.select(levels.all_cells(), list(cells))
    if listing:
        click.echo("\n".join(cell.name for cell in chosen))
        return
    path = Path(results)
    if as_table:
        click.echo(levels.table(levels.read_results(path)))
        return
    budget = levels.budget_label(minutes, steps)
    todo = chosen if again else levels.pending(chosen, levels.read_results(path) if path.exists() else [], budget)
    for cell in chosen:
        if cell not in todo:
            click.echo(f"{cell.name}: measured at {budget} already (--again to train it again)", err=True)
    paths_given = dict(_name_and_path(item) for item in given)
    located = {cell: matrix.corpus_paths(cell.corpus, cell.name, paths_given, _catalogue_file) for cell in todo}
    for cell, (paths, chars) in located.items():
        click.echo(f"{cell.name}: {budget}", err=True)
        config, model_args = levels.cell_settings(cell, minutes, steps)
        row = levels.run_cell(cell, paths, chars, config, model_args,
                              lambda line: click.echo(terminal_line(line), err=True))
        append_row(path, row)
        click.echo(terminal_line(levels.summary(row)))


def _name_and_path(item: str) -> tuple[str, str]:
    name, sep, path = item.partition("=")
    if not sep or not name or not path:
        raise click.BadParameter(f"{item!r}: write NAME=PATH, e.g. wikitext-2=wiki.valid.txt", param_hint="--corpus")
    return name, path


def _catalogue_file(name: str):
    """The catalogue corpus's file, if `lstm-repl corpus get NAME` has fetched it."""
    from lstm_repl.data import catalogue as corpora

    path = corpora.target_path(corpora.find(corpora.load_catalogue(), name))
    return path if path.is_file() else None


def _default_quality_corpus():
    from lstm_repl.data import catalogue as corpora
    from lstm_repl.errors import CorpusError

    entry = corpora.find(corpora.load_catalogue(), DEFAULT_QUALITY_CORPUS)
    path = corpora.target_path(entry)
    if not path.is_file():
        raise CorpusError(f"bench quality trains on {path} by default: fetch it with "
                          f"`lstm-repl corpus get {DEFAULT_QUALITY_CORPUS}`, or give a corpus")
    return path


@bench.command("dynamic")
@click.option("--case", "cases", multiple=True, type=click.Choice(["shakespeare", "python", "readme"]),
              help="Measure only this case (repeatable) [default: all three].")
@click.option("--chars", type=click.IntRange(min=1_000), default=100_000, show_default=True,
              help="Characters of each text read.")
def bench_dynamic_command(cases, chars) -> None:
    """Dynamic evaluation (eval --dynamic) on the bundled models: bits per character without
    learning and with each setting of a small grid (lr x decay, then segment lengths at the
    best), on a held-out text, an unseen text of the model's kind and a text unlike either.
    Prints the table the README shows, and the setting best on average."""
    from lstm_repl.bench import dynamic as bd

    rows = []
    click.echo("| case | model | text | lr | decay | segment | bits per character | gain | weights moved |")
    click.echo("| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name in cases or tuple(bd.CASES):
        case = bd.CASES[name]
        static: list[float] = []

        def report(row, case=case, static=static) -> None:
            if row.config is None:
                static.append(row.bpc)
                settings, gain = "| no learning | | ", ""
            else:
                c = row.config
                settings, gain = f"| {c.lr:g} | {c.decay:g} | {c.segment} ", f"{static[0] - row.bpc:+.4f}"
            click.echo(f"| {case.name} | {case.model} | {case.about.format(chars=chars)} {settings}| {row.bpc:.4f} "
                       f"| {gain} | {row.moved:.2%} |")

        rows += bd.run_case(case, chars, bd.grid(), report)
    best = bd.best_overall(rows)
    if best is not None:
        click.echo(f"best on average: {best.describe()}")
