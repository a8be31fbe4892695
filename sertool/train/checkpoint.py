"""Self-describing checkpoints: safetensors weights + one JSON that is enough to rebuild the model.

The JSON carries the `FusionConfig`, the encoders the model was trained on (name, dim, fingerprint: so
fine-tuning refuses frames of another encoder config), the class and attribute order, the training
config and the selected epoch's dev figures. Nothing else is needed to load it: no code version, no
store.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import NotFound, StoreMismatch

if TYPE_CHECKING:
    from ..model.fusion import FusionModel

FORMAT = "sertool.fusion/1"
WEIGHTS = "model.safetensors"
CONFIG = "config.json"


@dataclass
class CheckpointInfo:
    """The checkpoint's description (its config.json)."""

    fusion: dict[str, Any]
    """`FusionConfig.to_dict()`: encoder dims, proj/hidden/layers, pooling."""
    encoders: dict[str, dict[str, Any]]
    """Encoder name -> {"dim", "fingerprint"} of the frames it was trained on."""
    classes: list[str]
    attributes: list[str]
    train: dict[str, Any] = field(default_factory=dict)
    """The full resolved `TrainConfig` of the run that made it."""
    epoch: int | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    """Dev figures of the selected epoch (`dev_f1_macro`, `dev_ccc_*`)."""
    format: str = FORMAT

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": self.format, "fusion": self.fusion, "encoders": self.encoders, "classes": self.classes,
            "attributes": self.attributes, "train": self.train, "epoch": self.epoch, "metrics": self.metrics,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any], source: str = "checkpoint") -> "CheckpointInfo":
        if d.get("format") != FORMAT:
            raise StoreMismatch(f"{source}: not a sertool fusion checkpoint (format {d.get('format')!r}, expected {FORMAT})")
        return cls(**{k: d[k] for k in ("fusion", "encoders", "classes", "attributes")},
                   train=d.get("train", {}), epoch=d.get("epoch"), metrics=d.get("metrics", {}))


def save_checkpoint(folder: str | Path, state_dict: dict[str, Any], info: CheckpointInfo) -> Path:
    """Write `model.safetensors` + `config.json` into `folder`; returns the weights' path."""
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in state_dict.items()}
    save_file(tensors, str(folder / WEIGHTS), metadata={"format": FORMAT})
    (folder / CONFIG).write_text(json.dumps(info.to_dict(), indent=2, sort_keys=True))
    return folder / WEIGHTS


def read_info(folder: str | Path) -> CheckpointInfo:
    path = Path(folder) / CONFIG
    if not path.exists():
        raise NotFound(f"{path}: no checkpoint config here")
    return CheckpointInfo.from_dict(json.loads(path.read_text()), str(path))


def read_weights(weights: str | Path) -> dict[str, Any]:
    """The tensors of a safetensors file (never a pickle: no code runs); anything else is one line."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(weights), device="cpu")
    except (SafetensorError, OSError, ValueError) as e:
        raise StoreMismatch(f"{weights}: not a readable safetensors checkpoint ({str(e).strip()[:200]})") from None


def load_model(weights: str | Path, info: CheckpointInfo | dict[str, Any]) -> "FusionModel":
    """Rebuild the `FusionModel` a checkpoint describes and load its weights (on CPU)."""
    from ..model.fusion import FusionConfig, FusionModel

    if isinstance(info, dict):
        info = CheckpointInfo.from_dict(info, str(weights))
    model = FusionModel(FusionConfig.from_dict(dict(info.fusion)))
    try:
        model.load_state_dict(read_weights(weights))
    except RuntimeError as e:  # shapes or names that do not match the config beside them
        first = str(e).strip().splitlines()[0]
        raise StoreMismatch(f"{weights}: the weights do not fit the model its config.json describes ({first})") from None
    return model


def load_checkpoint(folder: str | Path) -> tuple["FusionModel", CheckpointInfo]:
    """A checkpoint folder (`model.safetensors` + `config.json`) as a ready model and its description."""
    info = read_info(folder)
    return load_model(Path(folder) / WEIGHTS, info), info


def check_compatible(info: CheckpointInfo, encoders: dict[str, dict[str, Any]], arch: dict[str, Any], source: str) -> None:
    """Refuse to fine-tune a checkpoint on other encoders' frames or into another architecture.

    `encoders`: name -> {"dim", "fingerprint"} of the store being trained on (in model order);
    `arch`: the run's proj_dim / lstm_hidden / lstm_layers / pooling.
    """
    mine = list(encoders)
    theirs = list(info.encoders)
    if mine != theirs:
        raise StoreMismatch(f"{source}: trained on encoders {','.join(theirs)}, this run uses {','.join(mine)}")
    for name, want in encoders.items():
        have = info.encoders[name]
        if int(have["dim"]) != int(want["dim"]):
            raise StoreMismatch(f"{source}: encoder {name} had dim {have['dim']}, the store's has {want['dim']}")
        if have.get("fingerprint") != want.get("fingerprint"):
            raise StoreMismatch(
                f"{source}: encoder {name} had fingerprint {have.get('fingerprint')}, the store's is "
                f"{want.get('fingerprint')} (frames of another encoder configuration)"
            )
    for key, value in arch.items():
        if info.fusion.get(key) != value:
            raise StoreMismatch(f"{source}: {key} is {info.fusion.get(key)!r} there, {value!r} in this run")
