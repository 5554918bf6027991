"""`:export DIR` in the shell: the weights learning adapted (dynamic evaluation) saved as a
checkpoint of their own, with a model card saying what they adapted on and where they came from.
DEST follows export_folder's rules: new, empty, or an earlier export (replaced whole); nothing
else is ever deleted or overwritten."""

from __future__ import annotations

from pathlib import Path

from lstm_repl.config import DynamicConfig, to_dict
from lstm_repl.model import checkpoint
from lstm_repl.model.checkpoint import Checkpoint
from lstm_repl.training.export_folder import CARD_FILE, check_destination, write_export

KEPT_INFO = ("corpus", "metrics", "train_time_s", "device", "device_name", "precision")  # the trained model's


def export_adapted(loaded: Checkpoint, dest: Path, spans: list[dict], config: DynamicConfig, moved: float) -> Path:
    """Write loaded's model (its weights as they are now) to dest with a card; -> dest."""
    check_destination(loaded.path, dest)
    adapted = {"from": str(loaded.path), "from_sha256": loaded.info.get("files", {}).get(checkpoint.WEIGHTS_FILE,
                                                                                         {}).get("sha256"),
               "spans": spans, "settings": to_dict(config), "weights_moved": moved}
    info = {key: loaded.info[key] for key in KEPT_INFO if key in loaded.info}
    info["adapted"] = adapted

    def fill(folder: Path) -> None:
        checkpoint.write_into(folder, loaded.model, loaded.vocab, loaded.train_config, info)
        (folder / CARD_FILE).write_text(adapted_card(loaded, dest.resolve().name, adapted), "utf-8")

    return write_export(loaded.path, dest, fill)


def adapted_card(loaded: Checkpoint, name: str, adapted: dict) -> str:
    settings, spans = adapted["settings"], adapted["spans"]
    characters = sum(span["characters"] for span in spans)
    lines = [
        f"# {name}",
        "",
        f"The weights of `{loaded.name}` after the lstm-repl shell's `:learn` adapted them to "
        f"{characters:,} characters of text (dynamic evaluation, Krause et al. 2018): each segment of "
        f"{settings['segment']} tokens scored, then learned from, decaying toward the trained weights.",
        "",
        "| | |",
        "| --- | --- |",
        f"| adapted from | `{adapted['from']}` (model.safetensors sha256 `{adapted['from_sha256']}`) |",
        f"| settings | lr {settings['lr']:g}, decay {settings['decay']:g}, segment {settings['segment']} tokens, "
        f"epsilon {settings['epsilon']:g} |",
        f"| weights moved | {adapted['weights_moved']:.2%} (relative L2 distance from the trained weights) |",
        "",
        "## What it adapted on",
        "",
        "| characters | tokens | sha256 of the text | it starts |",
        "| ---: | ---: | --- | --- |",
        *(f"| {s['characters']:,} | {s['tokens']:,} | `{s['sha256']}` | {_quoted(s['start'])} |" for s in spans),
        "",
    ]
    return "\n".join(lines)


def _quoted(text: str) -> str:
    """Text as a table cell: its characters shown, never markup or control codes."""
    return "`" + repr(text)[1:-1].replace("`", "\\x60").replace("|", "\\x7c") + "`"
