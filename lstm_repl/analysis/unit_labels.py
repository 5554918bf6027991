"""Labels of units found by `lstm-repl units --save`, kept beside the checkpoint in units.json
(plain JSON, like everything in a checkpoint folder): the shell names pinned units with them
("#244 in-quotes 0.93"). Reading is lenient: a missing or broken file means no labels, and an
entry whose fields are not of their types is left out."""

from __future__ import annotations

import json
from pathlib import Path

from lstm_repl.errors import CheckpointError, LstmReplError
from lstm_repl.analysis.features import Feature
from lstm_repl.safe_read import MB, read_json, typed_object
from lstm_repl.analysis.unit_scores import UnitScore

LABELS_FILE = "units.json"
FORMAT = "lstm-repl-units"
KEPT_PER_FEATURE = 3
LABELS_LIMIT = 4 * MB  # three entries per feature, a few hundred bytes each
ENTRY_FIELDS = {"feature": str, "layer": int, "unit": int, "score": float}


def save_labels(folder: Path, feature: Feature, ranking: list[UnitScore], measured_on: str) -> Path:
    """Keep the best KEPT_PER_FEATURE units for `feature`, replacing what an earlier run kept for it."""
    path = folder / LABELS_FILE
    entries = [e for e in _entries(path) if e.get("feature") != feature.name]
    entries += [{"feature": feature.name, "layer": s.layer + 1, "unit": s.unit, "quantity": s.quantity,
                 "score": round(s.score, 4), "metric": "auroc" if feature.binary else "abs_pearson_r",
                 "direction": s.direction, "measured_on": measured_on} for s in ranking[:KEPT_PER_FEATURE]]
    try:
        path.write_text(json.dumps({"format": FORMAT, "format_version": 1, "labels": entries}, indent=1), "utf-8")
    except OSError as exc:
        raise CheckpointError(f"cannot write {path} ({exc.strerror}); the checkpoint folder is not writable") from None
    return path


def read_labels(folder: Path) -> dict[tuple[int, int], str]:
    """(layer, unit), 0-based -> "in-quotes 0.93" (a unit found for several features: the best)."""
    labels: dict[tuple[int, int], tuple[float, str]] = {}
    for entry in _entries(folder / LABELS_FILE):
        try:
            typed_object(entry, ENTRY_FIELDS, LABELS_FILE, required=tuple(ENTRY_FIELDS))
        except LstmReplError:
            continue
        key, score = (entry["layer"] - 1, entry["unit"]), float(entry["score"])
        text = f"{entry['feature']} {score:.2f}"
        if key not in labels or score > labels[key][0]:
            labels[key] = (score, text)
    return {key: text for key, (_, text) in labels.items()}


def _entries(path: Path) -> list[dict]:
    try:
        document = read_json(path, LABELS_LIMIT, CheckpointError, "units.json")
    except LstmReplError:
        return []
    entries = document.get("labels") if isinstance(document, dict) else None
    return [e for e in entries if isinstance(e, dict)] if isinstance(entries, list) else []
