"""The bundled ICP model and model files written for a test, shared by the scoring tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from enrichment_pipeline.lib.scoring.loader import ModelLoader, default_model_path, load_model

MODEL = load_model()
BUNDLED: dict[str, Any] = yaml.load(default_model_path().read_text(), Loader=ModelLoader)


class _NoAliases(yaml.SafeDumper):
    """Shared sub-objects written out in full: the model loader refuses aliases."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def write_model(tmp_path: Path, data: Any, name: str = "model.yaml") -> Path:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else yaml.dump(data, Dumper=_NoAliases, sort_keys=False))
    return path


def variant(change) -> dict[str, Any]:
    data = json.loads(json.dumps(BUNDLED))
    change(data)
    return data
