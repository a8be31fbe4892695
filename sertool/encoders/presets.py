"""Where each encoder's weights come from: the `paper` checkpoints, or offline `paper-random` and `tiny`.

`paper` loads the registered class's paper checkpoint by Hugging Face id (from the local cache when
offline) or from `--model-dir D` (one sub-directory per model: `D/whisper` or `D/whisper-large-v3`, ...).
`tiny` is the same architectures with small dims and fixed random weights, built once offline into the
store's models directory (`<models>/tiny/<kind>`) by the class itself, then loaded with
`from_pretrained` like any checkpoint. `paper-random` is the paper architectures at full size with
random weights: the store's models directory holds only their configs and feature extractors /
tokenizers (`<models>/paper-random/<kind>`, built once, the BPEs trained on the corpus as tiny's are), and
the weights are made from a fixed seed when a model is built (`ModelSource.random_seed`: gigabytes of
random numbers are not worth a disk). `sertool models save` writes them as checkpoints (`encoders.paper`).
Either way an encoder sees only a `ModelSource`: a local directory plus the provenance to record.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable, Iterable
from importlib.metadata import version
from pathlib import Path

from ..errors import NotFound, SertoolError
from .base import ModelSource
from .registry import encoder_class, encoder_kinds

PRESETS = ("paper", "paper-random", "tiny")
BUILT = ("paper-random", "tiny")
"""Presets built offline into the store's models folder (`<models>/<preset>`), tokenizers trained on the
corpus transcripts: the jobs that load them hand `resolve` those texts."""

TINY_VERSION = 1
"""Bump when the tiny recipe changes, so an old tiny directory is refused rather than silently reused."""
TINY_STAMP = "tiny.json"
PAPER_RANDOM_VERSION = 1
"""Bump when the paper-random recipe changes (configs, processors), as TINY_VERSION."""
PAPER_RANDOM_STAMP = "paper-random.json"

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".json", ".txt", ".model")
"""Files whose bytes determine a local model's output: weights, configs, tokenizer vocabularies."""


def check_preset(preset: str) -> str:
    if preset not in PRESETS:
        raise NotFound(f"unknown preset {preset!r} (known: {', '.join(PRESETS)})")
    return preset


def hash_files(directory: Path) -> str:
    """Content hash of the files that determine a local model's output (names and bytes)."""
    h = hashlib.sha256()
    for f in sorted(p for p in directory.rglob("*") if p.is_file() and p.suffix in WEIGHT_SUFFIXES):
        h.update(f.relative_to(directory).as_posix().encode())
        with f.open("rb") as fh:
            h.update(hashlib.file_digest(fh, "sha256").digest())
    return "sha256:" + h.hexdigest()[:16]


def resolve(
    kind: str,
    preset: str,
    *,
    model_dir: str | Path | None = None,
    models_dir: str | Path | None = None,
    texts: Iterable[str] | None = None,
) -> ModelSource:
    """The local directory and provenance for encoder `kind` (`asr` is the Whisper checkpoint).

    `models_dir` is the store's models folder, where `tiny` is built (on first use, its tokenizers
    trained on `texts`, the corpus transcripts).
    """
    kind = "whisper" if kind == "asr" else kind
    cls = encoder_class(kind)
    check_preset(preset)
    if preset == "paper-random":
        if models_dir is None:
            raise SertoolError("the paper-random preset is built into a store's models folder: give models_dir")
        if kind not in random_kinds():
            raise NotFound(f"{kind}: no paper-random model (it has: {', '.join(random_kinds())})")
        return random_source(kind, build_paper_random(Path(models_dir) / "paper-random", texts or []))
    if preset == "tiny":
        if models_dir is None:
            raise SertoolError("the tiny preset is built into a store's models folder: give models_dir")
        # Every registered kind at once, as the first job that needs one sees the corpus: the tokenizers
        # must not depend on which job came first (ASR would otherwise add its own transcripts).
        root = build_tiny(Path(models_dir) / "tiny", texts or [])
        path = root / kind
        return ModelSource(path, f"sertool-tiny/{kind}", hash_files(path), preset)
    repo = cls.paper_checkpoint
    if model_dir is not None:
        base = Path(model_dir)
        for cand in (base / kind, base / repo.split("/")[-1], base / repo):
            if (cand / "config.json").exists():
                return ModelSource(cand, str(cand.resolve()), hash_files(cand), preset)
        raise NotFound(
            f"{base}: no {kind} model here (expected {base / kind}/config.json or {base / repo.split('/')[-1]}/config.json)"
        )
    return _from_hub(repo, preset)


def _from_hub(repo: str, preset: str) -> ModelSource:
    """The cached snapshot of `repo` (downloading it when online); the snapshot folder is the commit hash."""
    # Configs, tokenizers and the default weights only (large-v3 also ships fp32 shards, flax, tf...).
    patterns = ["*.json", "*.txt", "model.safetensors", "model-*-of-*.safetensors"]
    p = _snapshot(repo, patterns)
    if not any(p.glob("*.safetensors")):  # older repos (wavlm-large) have only the torch pickle
        p = _snapshot(repo, [*patterns, "pytorch_model.bin"])
    return ModelSource(p, repo, p.name, preset)


def _snapshot(repo: str, patterns: list[str]) -> Path:
    """Cache first; the network only when the cache lacks the files and HF_HUB_OFFLINE is not set."""
    from huggingface_hub import snapshot_download

    how = (f"download it where the Hub is reachable (`huggingface-cli download {repo}`, then copy the cache) "
           "or pass --model-dir DIR holding the checkpoints; `--preset tiny` builds small random-weight "
           "models offline (tests, the demo)")
    try:
        return Path(snapshot_download(repo, allow_patterns=patterns, local_files_only=True))
    except Exception:
        if os.environ.get("HF_HUB_OFFLINE") == "1":  # huggingface_hub's own switch, honoured as it is
            raise NotFound(f"{repo}: not in the Hugging Face cache and HF_HUB_OFFLINE=1: {how}") from None
    try:
        return Path(snapshot_download(repo, allow_patterns=patterns))
    except Exception as e:
        first = (str(e).strip().splitlines() or [""])[0][:160]
        raise NotFound(f"{repo}: not in the Hugging Face cache and not downloadable ({type(e).__name__}: {first}): "
                       f"{how}") from None


def random_source(kind: str, root: Path) -> ModelSource:
    """The `paper-random` source of `kind` built under `root` (`build_paper_random`): its directory holds
    config and processor, and the weights come from the class's seed. The revision hashes those files and
    names the torch release, whose CPU generator turns the seed into weights."""
    cls = encoder_class(kind)
    path = Path(root) / kind
    revision = f"torch-{version('torch').split('+')[0]}:{hash_files(path)}"
    return ModelSource(path, f"sertool-paper-random/{kind}", revision, "paper-random", random_seed=cls.tiny_seed)


# -- the offline presets -----------------------------------------------------------------------------

def build_tiny(root: Path, texts: Iterable[str], kinds: Iterable[str] | None = None) -> Path:
    """Build the tiny models of `kinds` (default: every registered kind) into `root/<kind>`, each once
    (atomic rename; a kind already there is left alone, so racing workers agree on one build)."""
    return _build_once(root, texts, kinds, lambda kind, tmp, texts: encoder_class(kind).build_tiny(tmp, texts),
                       TINY_STAMP, TINY_VERSION, "tiny models")


def random_kinds() -> list[str]:
    """The registered kinds that can build a paper-random model (the three paper encoders do)."""
    from .base import EncoderBase

    base = EncoderBase.build_paper_random.__func__  # type: ignore[attr-defined]
    return [k for k in encoder_kinds() if encoder_class(k).build_paper_random.__func__ is not base]


def build_paper_random(root: Path, texts: Iterable[str], kinds: Iterable[str] | None = None,
                       layers: int | None = None) -> Path:
    """Write the paper-random configs and processors of `kinds` (default: every kind that has one,
    `random_kinds`) into `root/<kind>`, each once, as `build_tiny`; `layers` reduces every model's depth
    (quick checks)."""
    kinds = random_kinds() if kinds is None else kinds

    def build(kind: str, tmp: Path, texts: list[str]) -> None:
        encoder_class(kind).build_paper_random(tmp, texts, layers)

    return _build_once(root, texts, kinds, build, PAPER_RANDOM_STAMP, PAPER_RANDOM_VERSION, "paper-random models")


def _build_once(root: Path, texts: Iterable[str], kinds: Iterable[str] | None,
                build: Callable[[str, Path, list[str]], None], stamp_name: str, stamp_version: int,
                what: str) -> Path:
    root = Path(root)
    stamp = root / stamp_name
    if stamp.exists() and json.loads(stamp.read_text()).get("version") != stamp_version:
        raise SertoolError(f"{root}: {what} from another sertool version; delete the folder to rebuild")
    todo = [k for k in (encoder_kinds() if kinds is None else kinds) if not (root / k / "config.json").exists()]
    if not todo:
        return root
    from ._hf import quiet_transformers

    quiet_transformers()
    texts = [t for t in texts if t and t.strip()]
    root.mkdir(parents=True, exist_ok=True)
    for kind in todo:
        tmp = root / f".{kind}.tmp-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            build(kind, tmp, texts)
            try:
                tmp.rename(root / kind)
            except OSError:
                if not (root / kind / "config.json").exists():  # someone else built it meanwhile: theirs wins
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    if not stamp.exists():
        stamp.write_text(json.dumps({"version": stamp_version, "n_texts": len(texts)}, indent=1))
    return root
