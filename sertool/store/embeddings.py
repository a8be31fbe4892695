"""Embedding arrays: one flat fp16 ``frames[total_frames, dim]`` Zarr v3 array per (encoder, variant).

Layout (DESIGN.md §3): ``embeddings.zarr/<encoder>/<variant>/frames``, chunked and sharded along
frames, indexed by the catalog's ``embeddings(clip_id, encoder, variant, row_start, n_frames)``.

Writing is append-only and crash-safe: frames go to the array first, then the clips' catalog rows
are committed in one transaction, so a clip is in the catalog only once its frames are on disk. On
restart the writer continues at the end of the last committed clip; frames a killed run wrote past
it are overwritten. Uncompressed shards are appended in place by `shards.ShardAppender` (committed
bytes are never rewritten); compressed (archival) arrays go through zarr, whose LocalStore replaces
a whole shard file atomically (temp file + rename).

Reading goes through `EmbeddingReader` (`store.reader`), which loads the index of the wanted
(encoder, variant) pairs into numpy arrays once, closes the catalog, and serves padded batches from
mmapped shard files; it pickles without open files, so DataLoader workers can use it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from ..errors import StoreInUse, StoreMismatch
from .catalog import Catalog
from .checksums import frames_checksum
from .layout import StoreLayout
from .locking import as_unwritable
from .provenance import record_audio
from .records import EncoderRecord, StoredEncoder
from .shards import ShardAppender, ShardLayout

if TYPE_CHECKING:
    from ..audio import FileStamp
    from .reader import EmbeddingReader

FRAMES = "frames"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")

Compressor = Literal["zstd", "blosc"]


@dataclass(frozen=True)
class ArrayConfig:
    """How a new (encoder, variant) array is laid out. Existing arrays keep the layout they were made with."""

    shard_frames: int = 131_072
    """Frames per shard file. Big shards keep the file count low (a million 5 s clips of one
    encoder are ~2,000 files); appending costs nothing extra because shards are appended in place."""
    chunk_frames: int = 512
    """Frames per inner chunk: the unit zarr-python reads; about two speech clips."""
    compressor: Compressor | None = None
    """None by default: fp16 embeddings shrink only 5-10% and every codec slows reads. Compressed
    arrays are read and written through zarr (slower), e.g. for archival copies."""

    def __post_init__(self) -> None:
        if self.chunk_frames <= 0 or self.shard_frames % self.chunk_frames:
            raise ValueError("shard_frames must be a positive multiple of chunk_frames")


REMOTE_ARRAY_CONFIG = ArrayConfig(shard_frames=16_384)
"""Arrays on a remote filesystem: zarr rewrites a whole shard object per append (no in-place writes on
object stores), so shards are 8x smaller there (16,384 frames: 42 MB at 1280-d, 5.5 min of audio)."""


def _check_name(kind: str, name: str) -> None:
    if not _NAME.match(name):
        raise ValueError(f"{kind} name {name!r}: use letters, digits, '.', '_' and '-' only")


def encoder_registered(catalog: Catalog, record: EncoderRecord) -> bool:
    """Whether the catalog already records this encoder; refuse a second fingerprint under its name."""
    rows = catalog.execute(
        "SELECT fingerprint, checkpoint, layer FROM encoders WHERE name = ?", [record.name]
    )
    if rows:
        fp, checkpoint, layer = rows[0]
        if fp != record.fingerprint:
            raise StoreMismatch(
                f"encoder {record.name!r} is already in the store with another configuration "
                f"(fingerprint {fp}: {checkpoint}, layer {layer}; now {record.fingerprint}: "
                f"{record.checkpoint}, layer {record.layer}); frames of two configurations never mix: "
                f"store this one under a new name (e.g. --layer N makes '{record.kind}-lN') or use another store"
            )
    return bool(rows)


def insert_encoder(catalog: Catalog, record: EncoderRecord) -> None:
    """The encoder's provenance row, inside the caller's transaction (a merge commits it with the frames' rows)."""
    catalog.execute(
        "INSERT INTO encoders (name, kind, checkpoint, revision, layer, dim, frame_rate, dtype, "
        "fingerprint, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, now())",
        [record.name, record.kind, record.checkpoint, record.revision, record.layer, record.dim,
         record.frame_rate, record.dtype, record.fingerprint],
    )


def register_encoder(catalog: Catalog, record: EncoderRecord) -> None:
    """Record the encoder's provenance; refuse a second fingerprint under the same name."""
    if not encoder_registered(catalog, record):
        with catalog.transaction():
            insert_encoder(catalog, record)


def stored_encoders(catalog: Catalog) -> dict[str, StoredEncoder]:
    """Every encoder configuration the store holds frames of, by name."""
    rows = catalog.execute(
        "SELECT name, kind, checkpoint, revision, layer, dim, frame_rate, fingerprint FROM encoders ORDER BY name")
    return {r[0]: StoredEncoder(*r) for r in rows}


class EmbeddingStore:
    """The Zarr side of a feature store: opens writers and readers of per-(encoder, variant) arrays."""

    def __init__(self, layout: StoreLayout, config: ArrayConfig | None = None) -> None:
        self.layout = layout
        self.config = config or (REMOTE_ARRAY_CONFIG if layout.remote else ArrayConfig())

    def array_dir(self, encoder: str, variant: str) -> Path:
        """The array's local directory (for a remote store: its URL, a str)."""
        if self.layout.remote:
            return f"{self.layout.zarr_root}/{encoder}/{variant}/{FRAMES}"  # type: ignore[return-value]
        return self.layout.embeddings / encoder / variant / FRAMES

    def open_writer(self, catalog: Catalog, record: EncoderRecord, variant: str) -> "EmbeddingWriter":
        """A writer appending frames of `record` under `variant`; use as a context manager."""
        return EmbeddingWriter(self, catalog, record, variant)

    def reader(
        self, specs: Sequence[tuple[str, str]] = (), catalog: Catalog | None = None
    ) -> "EmbeddingReader":
        """A reader with the index of `specs` loaded now (from `catalog`, else a read-only open)."""
        from .reader import EmbeddingReader

        reader = EmbeddingReader(self.layout, catalog=catalog)
        for encoder, variant in specs:
            reader.index(encoder, variant)
        reader.catalog = None
        return reader

    # -- arrays -----------------------------------------------------------------------------------
    def check_array(self, record: EncoderRecord, variant: str) -> None:
        """Refuse what `_open_array` would refuse, writing nothing: a merge checks every unit before
        it moves a byte."""
        import zarr

        try:
            enc = zarr.open_group(f"{self.layout.zarr_root}/{record.name}", mode="r")
        except FileNotFoundError:
            return
        fp = enc.attrs.get("fingerprint")
        if fp is not None and fp != record.fingerprint:
            raise StoreMismatch(
                f"{self.layout.zarr_root}/{record.name}: holds frames of fingerprint {fp}, not "
                f"{record.fingerprint}; store this configuration under a new encoder name"
            )
        group = enc.get(variant)
        arr = group.get(FRAMES) if group is not None else None
        if arr is not None and (arr.shape[1] != record.dim or arr.dtype != np.float16):
            raise StoreMismatch(
                f"{self.array_dir(record.name, variant)}: holds {arr.dtype} frames of width "
                f"{arr.shape[1]}, encoder {record.name!r} makes width {record.dim}"
            )

    def _open_array(self, record: EncoderRecord, variant: str) -> Any:
        """Create or open the (encoder, variant) array; check it belongs to this fingerprint."""
        import zarr

        root = zarr.open_group(self.layout.zarr_root, mode="a")
        if record.name in root:
            enc = root[record.name]
            fp = enc.attrs.get("fingerprint")
            if fp is not None and fp != record.fingerprint:
                raise StoreMismatch(
                    f"{self.layout.zarr_root}/{record.name}: holds frames of fingerprint {fp}, not "
                    f"{record.fingerprint}; store this configuration under a new encoder name"
                )
        else:
            enc = root.create_group(record.name, attributes=record.to_dict())
        group = enc[variant] if variant in enc else enc.create_group(
            variant, attributes={"encoder": record.name, "variant": variant}
        )
        if FRAMES in group:
            arr = group[FRAMES]
            if arr.shape[1] != record.dim or arr.dtype != np.float16:
                raise StoreMismatch(
                    f"{self.array_dir(record.name, variant)}: holds {arr.dtype} frames of width "
                    f"{arr.shape[1]}, encoder {record.name!r} makes width {record.dim}"
                )
            return arr
        cfg = self.config
        compressors: Any = None
        if cfg.compressor == "zstd":
            compressors = zarr.codecs.ZstdCodec(level=3)
        elif cfg.compressor == "blosc":
            compressors = zarr.codecs.BloscCodec(cname="zstd", clevel=5, shuffle="shuffle", typesize=2)
        return group.create_array(
            FRAMES,
            shape=(0, record.dim),
            chunks=(cfg.chunk_frames, record.dim),
            shards={"shape": (cfg.shard_frames, record.dim), "index_location": "start"},
            dtype="float16",
            compressors=compressors,
            filters=None,
            fill_value=0,
            attributes={"encoder": record.name, "variant": variant, "fingerprint": record.fingerprint},
        )


_OPEN_WRITERS: set[tuple[str, str, str]] = set()


class EmbeddingWriter:
    """Appends clips' frames to one (encoder, variant) array and commits their catalog rows.

    `done()` names the clips already committed (the caller skips them); `write()` appends a batch
    and commits it in one transaction. Frames are stored as float16.
    """

    def __init__(self, store: EmbeddingStore, catalog: Catalog, record: EncoderRecord, variant: str) -> None:
        _check_name("encoder", record.name)
        _check_name("variant", variant)
        if catalog.read_only:
            raise ValueError("an EmbeddingWriter needs the catalog opened read-write")
        if record.dtype != "float16":
            raise StoreMismatch(f"encoder {record.name!r}: the store keeps float16 frames, not {record.dtype}")
        self.key = (str(store.layout.root.resolve()), record.name, variant)
        if self.key in _OPEN_WRITERS:
            raise StoreInUse(f"embeddings {record.name}/{variant}: a writer is already open in this process")
        self.store = store
        self.catalog = catalog
        self.record = record
        self.variant = variant
        register_encoder(catalog, record)
        self.dir = store.array_dir(record.name, variant)
        try:
            self._array = store._open_array(record, variant)
        except OSError as e:
            raise as_unwritable(e, self.dir) or e from None
        layout = None
        if not store.layout.remote:  # remote arrays: zarr writes whole shard objects (atomic PUTs)
            for stale in self.dir.rglob("*.partial"):  # temp files of a zarr write that was killed
                stale.unlink(missing_ok=True)
            layout = ShardLayout.from_metadata(self.dir)
        self._appender = ShardAppender(layout) if layout is not None else None
        rows = catalog.execute(
            "SELECT clip_id, row_start + n_frames FROM embeddings WHERE encoder = ? AND variant = ?",
            [record.name, variant],
        )
        self._done = {r[0] for r in rows}
        self.next_row = max((int(r[1]) for r in rows), default=0)
        _OPEN_WRITERS.add(self.key)
        self._open = True

    def __enter__(self) -> "EmbeddingWriter":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._open:
            _OPEN_WRITERS.discard(self.key)
            self._open = False

    def done(self) -> set[str]:
        """Clip ids whose frames are committed for this (encoder, variant)."""
        return set(self._done)

    def write(self, items: Sequence[tuple[str, np.ndarray]], audio: Mapping[str, "FileStamp"] | None = None,
              text: Mapping[str, tuple[str | None, str]] | None = None) -> int:
        """Append the clips' frames, then commit their catalog rows in one transaction; returns frames written.

        Each row carries the checksum of its frames, and, where `audio` has the clip, the SHA-256 of the
        audio bytes they were made from; `audio_hashes` learns those files' stamps in the same transaction.
        Where `text` has the clip (a text encoder's rows), the row records the transcript's source and
        the SHA-256 of the text embedded (`store.transcripts`).
        """
        if not self._open:
            raise RuntimeError("writer is closed")
        if not items:
            return 0
        dim = self.record.dim
        ids = [cid for cid, _ in items]
        again = [cid for cid in ids if cid in self._done]
        if again or len(set(ids)) != len(ids):
            dup = again[0] if again else next(c for c in ids if ids.count(c) > 1)
            raise ValueError(f"clip {dup!r} is already stored for {self.record.name}/{self.variant}")
        arrays, checksums = [], []
        for cid, a in items:
            a = np.asarray(a)
            if a.ndim != 2 or a.shape[1] != dim:
                raise ValueError(f"clip {cid!r}: frames of shape {a.shape}, expected (n, {dim})")
            h = a.astype(np.float16, copy=False)
            if len(h) and int((h.view(np.uint16) & 0x7C00).max()) == 0x7C00:  # exponent all ones: inf/NaN
                raise ValueError(f"clip {cid!r}: frames are not finite in float16 (overflow or NaN)")
            arrays.append(h)
            checksums.append(frames_checksum(h))  # right after the scan above, while the clip is in cache
        lengths = np.array([len(a) for a in arrays], dtype=np.int64)
        starts = self.next_row + np.concatenate([[0], np.cumsum(lengths)[:-1]])
        end = self.next_row + int(lengths.sum())
        block = np.concatenate(arrays) if len(arrays) > 1 else arrays[0]
        # 1. frames (the array's extent first, so zarr's view of it covers them). A full disk or a
        # read-only store stops here with one line: nothing of this batch is committed, and the
        # frames written so far lie past the committed end, where a rerun overwrites them.
        try:
            if self._array.shape[0] != end:
                self._array.resize((end, dim))
            if len(block):
                if self._appender is not None:
                    self._appender.write(self.next_row, block)
                else:
                    self._array[self.next_row : end] = block
        except OSError as e:
            raise as_unwritable(e, self.dir) or e from None
        # 2. catalog rows, all or nothing
        import pandas as pd

        df = pd.DataFrame(
            {
                "clip_id": ids,
                "encoder": self.record.name,
                "variant": self.variant,
                "row_start": starts.astype(np.int64),
                "n_frames": lengths.astype(np.int32),
                "checksum": checksums,
                "audio_sha256": [audio[c].sha256 if audio and c in audio else None for c in ids],
                "text_source": [text[c][0] if text and c in text else None for c in ids],
                "text_sha256": [text[c][1] if text and c in text else None for c in ids],
            }
        )
        stamps = [(c, audio[c]) for c in ids if audio and c in audio]
        with self.catalog.transaction() as cat:
            cat.con.register("_sertool_new_rows", df)
            try:
                cat.execute("INSERT INTO embeddings (clip_id, encoder, variant, row_start, n_frames, checksum, "
                            "audio_sha256, text_source, text_sha256) SELECT clip_id, encoder, variant, row_start, "
                            "n_frames, checksum, CAST(audio_sha256 AS VARCHAR), CAST(text_source AS VARCHAR), "
                            "CAST(text_sha256 AS VARCHAR) FROM _sertool_new_rows")
            finally:
                cat.con.unregister("_sertool_new_rows")
            if stamps:
                record_audio(cat, stamps)
        self._done.update(ids)
        self.next_row = end
        return int(lengths.sum())
