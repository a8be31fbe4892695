"""Where each encoder's weights come from: the `paper` checkpoints or the offline `tiny` models.

`paper` loads the registered class's paper checkpoint by Hugging Face id (from the local cache when
offline) or from `--model-dir D` (one sub-directory per model: `D/whisper` or `D/whisper-large-v3`, ...).
`tiny` is the same architectures with small dims and fixed random weights, built once offline into the
store's models directory (`<models>/tiny/<kind>`) by the class itself, then loaded with
`from_pretrained` like any checkpoint. Either way an encoder sees only a `ModelSource`: a local directory
plus the provenance to record.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Iterable
from pathlib import Path

from ..errors import NotFound, SertoolError
from .base import ModelSource
from .registry import encoder_class, encoder_kinds

PRESETS = ("paper", "tiny")

TINY_VERSION = 1
"""Bump when the tiny recipe changes, so an old tiny directory is refused rather than silently reused."""
TINY_STAMP = "tiny.json"

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


# -- the tiny preset ---------------------------------------------------------------------------------

def build_tiny(root: Path, texts: Iterable[str], kinds: Iterable[str] | None = None) -> Path:
    """Build the tiny models of `kinds` (default: every registered kind) into `root/<kind>`, each once
    (atomic rename; a kind already there is left alone, so racing workers agree on one build)."""
    root = Path(root)
    stamp = root / TINY_STAMP
    if stamp.exists() and json.loads(stamp.read_text()).get("version") != TINY_VERSION:
        raise SertoolError(f"{root}: tiny models from another sertool version; delete the folder to rebuild")
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
            encoder_class(kind).build_tiny(tmp, texts)
            try:
                tmp.rename(root / kind)
            except OSError:
                if not (root / kind / "config.json").exists():  # someone else built it meanwhile: theirs wins
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    if not stamp.exists():
        stamp.write_text(json.dumps({"version": TINY_VERSION, "n_texts": len(texts)}, indent=1))
    return root
