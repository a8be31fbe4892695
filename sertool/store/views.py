"""Packed training views (`sertool store pack`): the frames a training run reads, back to back in one
array per (encoder, variant), optionally quantized or pooled to 25 frames/s, small enough to load whole
into (GPU) memory.

At paper scale reading the input, not the model, is what a run costs (~3.7 TB of reads per run from the
store); a view is read once. It is a derived copy, so it records what it was made from: each source
array's encoder fingerprint and a digest of the rows it copied, and the clip set. A view whose sources
changed (an encoder re-made, clips re-embedded or added) is stale: training refuses it until it is packed
again. Files live in `<store>/views/<name>/`; the catalog's `views` table lists them.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..errors import InvalidOption, NotFound, SertoolError
from .catalog import Catalog
from .embeddings import stored_encoders
from .layout import StoreLayout
from .quantize import BYTES, STORAGE, VIEW_DTYPES, Affine, encode, pool_pairs
from .reader import EmbeddingReader
from .splits import TRAIN, scheme_clips, usable_variants

CLEAN = "clean"
RATES = (50, 25)
CHUNK = 256
"""Clips read and written per step (bounded memory at any store size)."""


class StaleView(SertoolError):
    """A view whose source frames have changed since it was packed."""


@dataclass(frozen=True)
class ViewSpec:
    """What to pack."""

    name: str
    encoders: tuple[str, ...]
    variants: tuple[str, ...] = (CLEAN,)
    splits: tuple[str, ...] = (TRAIN, "Development")
    dtype: str = "fp16"
    frame_rate: int = 50
    scheme: str = "corpus"

    def check(self) -> None:
        if not self.name or "/" in self.name or self.name.startswith("."):
            raise InvalidOption("name", f"{self.name!r} is not a view name")
        if self.dtype not in VIEW_DTYPES:
            raise InvalidOption("dtype", f"{self.dtype!r} is not one of {', '.join(VIEW_DTYPES)}")
        if self.frame_rate not in RATES:
            raise InvalidOption("frame_rate", f"{self.frame_rate} is not one of 50, 25")
        if CLEAN not in self.variants:
            raise InvalidOption("variants", "a view holds the clean frames (and optionally augmented variants)")


@dataclass
class ViewInfo:
    """A packed view as its manifest describes it."""

    spec: ViewSpec
    clips: list[str]
    arrays: dict[str, dict] = field(default_factory=dict)
    """`encoder/variant` -> {dim, rows, text, sources digest, fingerprint}."""
    bytes: int = 0
    path: Path | None = None

    def array_path(self, key: str, part: str) -> Path:
        assert self.path is not None
        return self.path / f"{key.replace('/', '__')}.{part}.npy"

    def array_clips(self, key: str) -> list[str]:
        """The clips an array holds, in its row order (a variant's array holds the clips that have it)."""
        assert self.path is not None
        return (self.path / f"{key.replace('/', '__')}.clips.txt").read_text().split()

    def frame_bytes(self, dtype: str | None = None, rate: int | None = None) -> int:
        """Bytes of the frames in `dtype` at `rate` (what the view would need another way)."""
        d, r = dtype or self.spec.dtype, rate or self.spec.frame_rate
        total = 0
        for a in self.arrays.values():
            rows = a["rows_50"] if a["text"] or r == 50 else a["rows_25"]
            total += rows * a["dim"] * BYTES[d]
        return total


def _digest(rows: list[tuple]) -> str:
    h = hashlib.sha256()
    for r in rows:
        h.update(repr(tuple(r)).encode())
    return h.hexdigest()[:16]


def _sources(catalog: Catalog, clips: list[str], encoder: str, variant: str) -> tuple[str, list[tuple]]:
    """The digest of the embedding rows a view copies from one array (any re-embed changes it)."""
    rows = catalog.execute(
        "SELECT e.clip_id, e.row_start, e.n_frames FROM embeddings e JOIN (SELECT unnest(?::VARCHAR[]) AS clip_id) w "
        "USING (clip_id) WHERE e.encoder = ? AND e.variant = ? ORDER BY e.clip_id", [clips, encoder, variant])
    return _digest(rows), rows


def _view_clips(catalog: Catalog, spec: ViewSpec) -> tuple[list[str], dict[str, list[str]], set[str]]:
    """The clips of the view's splits that have clean frames of every encoder, which of them have each
    augmented variant (audio encoders only), and which are Train clips (int8's range is fitted on them)."""
    rows = [r for r in scheme_clips(catalog, spec.scheme, list(spec.encoders)) if r.complete and r.split in spec.splits]
    clips = sorted(r.clip_id for r in rows)
    have = usable_variants(catalog, list(spec.encoders))
    variants = {v: [c for c in clips if v in have.get(c, ())] for v in spec.variants if v != CLEAN}
    return clips, variants, {r.clip_id for r in rows if r.split == TRAIN}


def pack_view(catalog: Catalog, layout: StoreLayout, spec: ViewSpec, *, replace: bool = False,
              progress=None) -> ViewInfo:
    """Write the view (atomic: a temporary folder renamed into place), then record it in the catalog."""
    spec.check()
    if layout.remote:
        raise SertoolError("views are local files: pack them from a store on a local disk")
    known = stored_encoders(catalog)
    missing = [e for e in spec.encoders if e not in known]
    if missing:
        raise NotFound(f"encoder(s) {', '.join(missing)} not in the store (it has: {', '.join(sorted(known))})")
    if not replace and catalog.execute("SELECT 1 FROM views WHERE name = ?", [spec.name]):
        raise SertoolError(f"view {spec.name!r} exists; pack it again with --replace (or remove it)")
    clips, variant_clips, train = _view_clips(catalog, spec)
    if not clips:
        raise NotFound(f"no clip of {', '.join(spec.splits)} has frames of every encoder {', '.join(spec.encoders)}")
    final = layout.views / spec.name
    tmp = layout.views / f".{spec.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    info = ViewInfo(spec, clips, path=tmp)
    reader = EmbeddingReader(layout, catalog=catalog)
    try:
        (tmp / "clips.txt").write_text("\n".join(clips) + "\n")
        for enc in spec.encoders:
            text = known[enc].text
            affine = None
            if spec.dtype == "int8":  # one range per encoder, from its clean Train clips, for every variant
                affine = _fit_int8(reader, enc, [c for c in clips if c in train] or clips,
                                   spec.frame_rate == 25 and not text)
            for variant in spec.variants if not text else (CLEAN,):
                ids = clips if variant == CLEAN else variant_clips[variant]
                _pack_array(info, reader, catalog, enc, variant, ids, text, affine, progress, known[enc].fingerprint)
        info.bytes = sum(p.stat().st_size for p in tmp.iterdir())
        (tmp / "manifest.json").write_text(json.dumps(_manifest(info), indent=1))
        with catalog.transaction():
            catalog.execute("DELETE FROM views WHERE name = ?", [spec.name])
            catalog.execute(
                "INSERT INTO views VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, now())",
                [spec.name, spec.scheme, ",".join(spec.splits), ",".join(spec.encoders), ",".join(spec.variants),
                 spec.dtype, spec.frame_rate, len(clips), info.bytes,
                 json.dumps({k: a["sources"] for k, a in info.arrays.items()})],
            )
            old = layout.views / f".{spec.name}.old-{os.getpid()}"
            if final.exists():
                final.rename(old)
            tmp.rename(final)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    info.path = final
    return info


def _fit_int8(reader: EmbeddingReader, enc: str, ids: list[str], pooled: bool) -> Affine:
    """Per-channel min/max over the clips' clean frames (pooled as the view stores them)."""
    dim = reader.index(enc, CLEAN).dim
    lo, hi = np.full(dim, np.inf), np.full(dim, -np.inf)
    for k in range(0, len(ids), CHUNK):
        for f in reader.read(enc, CLEAN, ids[k : k + CHUNK]):
            f = pool_pairs(f) if pooled else f
            if len(f):
                lo, hi = np.minimum(lo, f.min(axis=0)), np.maximum(hi, f.max(axis=0))
    return Affine.fit(np.where(np.isfinite(lo), lo, 0), np.where(np.isfinite(hi), hi, 0))


def _pack_array(info: ViewInfo, reader: EmbeddingReader, catalog: Catalog, enc: str, variant: str, ids: list[str],
                text: bool, affine: Affine | None, progress, fingerprint: str) -> None:
    spec = info.spec
    key = f"{enc}/{variant}"
    sources, rows = _sources(catalog, ids, enc, variant)
    n50 = np.array([r[2] for r in rows], dtype=np.int64)
    pooled = spec.frame_rate == 25 and not text
    lengths = (n50 + 1) // 2 if pooled else n50
    dim = reader.index(enc, variant).dim
    if affine is not None:
        np.save(info.array_path(key, "scale"), affine.scale)
        np.save(info.array_path(key, "zero"), affine.zero)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    out = np.lib.format.open_memmap(info.array_path(key, "frames"), mode="w+", dtype=STORAGE[spec.dtype],
                                    shape=(int(offsets[-1]), dim))
    task = progress.add_task(f"pack {key}", total=len(ids)) if progress is not None else None
    for k in range(0, len(ids), CHUNK):
        for j, f in enumerate(reader.read(enc, variant, ids[k : k + CHUNK])):
            f = pool_pairs(f) if pooled else f
            out[offsets[k + j] : offsets[k + j + 1]] = encode(f, spec.dtype, affine)
        if task is not None:
            progress.advance(task, min(CHUNK, len(ids) - k))
    out.flush()
    del out
    np.save(info.array_path(key, "offsets"), offsets)
    (info.path / f"{key.replace('/', '__')}.clips.txt").write_text("\n".join(ids) + "\n")  # type: ignore[operator]
    info.arrays[key] = {"dim": dim, "text": text, "rows_50": int(n50.sum()), "rows_25": int(((n50 + 1) // 2).sum()),
                        "n_clips": len(ids), "sources": sources, "fingerprint": fingerprint}


def _manifest(info: ViewInfo) -> dict:
    return {"spec": asdict(info.spec), "n_clips": len(info.clips), "arrays": info.arrays, "bytes": info.bytes}


def _has_views(catalog: Catalog) -> bool:
    """False for a catalog made before views existed, opened read-only (writers add the table)."""
    return bool(catalog.execute("SELECT 1 FROM information_schema.tables WHERE table_name = 'views'"))


def open_view(catalog: Catalog, layout: StoreLayout, name: str, *, check: bool = True) -> ViewInfo:
    """A packed view, checked against its sources (`StaleView` when an encoder or its rows changed)."""
    row = catalog.execute("SELECT sources FROM views WHERE name = ?", [name]) if _has_views(catalog) else []
    path = layout.views / name
    if not row or not (path / "manifest.json").exists():
        have = ", ".join(r["name"] for r in list_views(catalog, layout, check=False)) or "none"
        raise NotFound(f"no view {name!r} in the store (views: {have}; make one with `sertool store pack`)")
    m = json.loads((path / "manifest.json").read_text())
    spec = ViewSpec(**{k: tuple(v) if isinstance(v, list) else v for k, v in m["spec"].items()})
    clips = (path / "clips.txt").read_text().split()
    info = ViewInfo(spec, clips, m["arrays"], m["bytes"], path)
    if check:
        known = stored_encoders(catalog)
        for key, a in info.arrays.items():
            enc, variant = key.split("/")
            now, _ = _sources(catalog, info.array_clips(key), enc, variant)
            if enc not in known or known[enc].fingerprint != a["fingerprint"] or now != a["sources"]:
                raise StaleView(f"view {name!r} is stale: {key} was re-embedded since it was packed "
                                f"(run `sertool store pack {name} --replace`)")
    return info


def list_views(catalog: Catalog, layout: StoreLayout, *, check: bool = True) -> list[dict]:
    """Every view with its size and (`check`) whether it is stale."""
    out: list[dict] = []
    if not _has_views(catalog):
        return out
    for name, dtype, rate, n, size, splits in catalog.execute(
            "SELECT name, dtype, frame_rate, n_clips, bytes, splits FROM views ORDER BY name"):
        try:
            if check:
                open_view(catalog, layout, name)
            state = "ok" if check else "?"
        except StaleView:
            state = "stale"
        except NotFound:
            state = "missing files"
        out.append({"name": name, "dtype": dtype, "frame_rate": rate, "clips": n, "bytes": size, "splits": splits,
                    "state": state})
    return out


def remove_view(catalog: Catalog, layout: StoreLayout, name: str) -> int:
    """Drop a view's files and its catalog row; returns the bytes freed."""
    if not catalog.execute("SELECT 1 FROM views WHERE name = ?", [name]):
        raise NotFound(f"no view {name!r} in the store")
    path = layout.views / name
    freed = sum(p.stat().st_size for p in path.iterdir()) if path.exists() else 0
    with catalog.transaction():
        catalog.execute("DELETE FROM views WHERE name = ?", [name])
    shutil.rmtree(path, ignore_errors=True)
    return freed
