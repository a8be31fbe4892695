"""What a killed run needs to go on as if it had never stopped, written after every epoch.

The state holds the model, optimizer, scheduler and grad-scaler state, the global torch RNG (the
model's dropout draws from it), the history of finished epochs and the best epoch so far with its
weights. The sampler needs no state: each epoch's sample is planned from (seed, epoch) alone.
`sertool train --resume RUN` loads it and continues with the next epoch in the same MLflow run, and
finishes with the same figures as an uninterrupted run of the same seed.

It lives in the project's `experiments/resume/<run id>/state.pt` (training only reads the feature
store, never writes it), and the run's `sertool.resume_state` tag holds its absolute path. It is
written to a temporary file and renamed, so a kill while writing leaves the previous epoch's state;
it is read with `torch.load(weights_only=True)`: tensors and plain values only, no pickled code. A
run that finishes deletes it.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import NotFound, SertoolError

if TYPE_CHECKING:
    from .loop import EpochStats

RESUME_DIR = Path("experiments") / "resume"
STATE_FILE = "state.pt"
FORMAT = "sertool.resume/1"


def state_path(run_id: str, root: Path | None = None) -> Path:
    """`<root>/<run id>/state.pt`; root defaults to the project's `experiments/resume` (current directory)."""
    return (Path(root) if root is not None else RESUME_DIR).resolve() / run_id / STATE_FILE


@dataclass
class ResumeState:
    """A run after its `epoch`-th epoch."""

    epoch: int
    trainee: dict[str, Any]
    """`Trainee.state()`: model, optimizer, scheduler, scaler."""
    rng: dict[str, Any]
    history: list[dict[str, Any]] = field(default_factory=list)
    """Finished epochs' `EpochStats`, as dicts."""
    best_value: float = float("-inf")
    best_epoch: int = 0
    best_metrics: dict[str, float] = field(default_factory=dict)
    best_state: dict[str, Any] | None = None
    """The best epoch's model weights."""

    def save(self, path: Path) -> None:
        import torch

        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + f".tmp-{os.getpid()}")
        torch.save({"format": FORMAT, **asdict(self)}, tmp)
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: Path) -> "ResumeState":
        import torch

        if not path.is_file():
            raise NotFound(f"{path}: no resume state (the run never finished an epoch, or it finished)")
        try:
            data = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # a truncated or foreign file: one line, no traceback
            raise SertoolError(f"{path}: unreadable resume state ({type(e).__name__}: {e})") from None
        if not isinstance(data, dict) or data.pop("format", None) != FORMAT:
            raise SertoolError(f"{path}: not a sertool resume state")
        return cls(**data)

    def epochs(self) -> list["EpochStats"]:
        from .loop import EpochStats

        return [EpochStats(**e) for e in self.history]


def rng_state() -> dict[str, Any]:
    """The global torch RNG (and CUDA's, where there is one)."""
    import torch

    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    import torch

    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
