"""lstm-repl bench: the speed figures quoted in notes and the README."""

from __future__ import annotations

import click


@click.group()
def bench() -> None:
    """Measure speed on this machine."""


@bench.command("train")
@click.option("--hidden", type=click.IntRange(min=1), default=512, show_default=True)
@click.option("--embed", type=click.IntRange(min=1), default=128, show_default=True)
@click.option("--layers", type=click.IntRange(min=1), default=2, show_default=True)
@click.option("--batch-size", type=click.IntRange(min=1), default=64, show_default=True)
@click.option("--seq-len", type=click.IntRange(min=1), default=100, show_default=True)
@click.option("--vocab", type=click.IntRange(min=2), default=65, show_default=True, help="Character vocabulary size.")
@click.option("--steps", type=click.IntRange(min=1), default=10, show_default=True, help="Timed steps per loop.")
@click.option("--precision", "precisions", default="fp32,bf16", show_default=True, help="Comma-separated list.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda", "mps"]), default="auto", show_default=True)
def bench_train_command(hidden, embed, layers, batch_size, seq_len, vocab, steps, precisions, device) -> None:
    """The project's training step against a bare fused nn.LSTM loop of the same shapes."""
    from lstm_repl.bench import bench_train, matmul_peaks
    from lstm_repl.devices import resolve_device

    wanted = [p.strip() for p in precisions.split(",") if p.strip()]
    bad = [p for p in wanted if p not in ("fp32", "bf16", "auto")]
    if bad:
        raise click.BadParameter(f"unknown precision {bad[0]!r}; use fp32, bf16 or auto", param_hint="--precision")
    peaks = matmul_peaks(resolve_device(device))
    click.echo("matmul peak (2048^3): " + ", ".join(f"{name} {gflops:,.0f} GFLOP/s" for name, gflops in peaks.items()))
    peak_name, peak = max(peaks.items(), key=lambda kv: kv[1])
    click.echo(f"char level, {layers} x {hidden}, embed {embed}, batch {batch_size}, seq {seq_len}, vocab {vocab}")

    def report(row: dict) -> None:
        click.echo(
            f"{row['precision']:>5}: project {row['project_tokens_per_s']:>9,.0f} tok/s   bare loop "
            f"{row['bare_tokens_per_s']:>9,.0f} tok/s   ratio {row['ratio']:.3f}   "
            f"{row['project_gflops']:,.0f} GFLOP/s = {row['project_gflops'] / peak:.0%} of the {peak_name} peak"
        )

    bench_train(hidden, embed, layers, batch_size, seq_len, vocab, steps, wanted, device, report)


@bench.command("generate")
@click.argument("ckpt", default="shakespeare-char")
@click.option("--tokens", type=click.IntRange(min=10), default=2000, show_default=True)
def bench_generate_command(ckpt, tokens) -> None:
    """tokens/s of generate at batch 1 (no display) against a bare loop; the cost of one step."""
    from lstm_repl import checkpoint
    from lstm_repl.bench import bench_generate

    loaded = checkpoint.load(ckpt)
    config = loaded.model.config
    r = bench_generate(loaded, tokens)
    click.echo(f"{loaded.name}: {config.cell}, {config.layers} x {config.hidden}, vocabulary {config.vocab_size}")
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
def bench_repl_command(ckpt, width, height) -> None:
    """Cost per keystroke (step, gates, ghost text, panel render) and streaming with the panel on."""
    from lstm_repl import checkpoint
    from lstm_repl.bench import bench_repl

    loaded = checkpoint.load(ckpt)
    r = bench_repl(loaded, width, height)
    click.echo(f"{loaded.name}, panel {width} x {height}")
    click.echo(f"per keystroke: p50 {r['keystroke_p50_ms']:.2f} ms, p99 {r['keystroke_p99_ms']:.2f} ms "
               "(model step, gates, predictions, ghost text, panel rendered)")
    click.echo(f"streaming: {r['stream_tokens_per_s']:,.0f} tokens/s with the panel drawn {r['frames_per_s']:.0f} times a second")
