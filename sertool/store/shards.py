"""Direct access to uncompressed Zarr v3 shards of a flat ``[frames, dim]`` array.

zarr-python spends most of a small read in per-call machinery (250-480 clips/s measured), so the
embedding store reads and appends its uncompressed shards itself, following the published sharding
spec (zarr v3 ``sharding_indexed``): a shard file holds inner chunks at byte ranges listed in an
index of ``(offset, nbytes)`` uint64 pairs (``2**64-1`` = missing chunk) followed by its crc32c.
We create arrays with the index at the *start* of the file, so appending frames never moves a
committed byte: new chunks go past the end of the file and the index (a few KB) is rewritten in
one ``pwrite``. A kill -9 therefore cannot damage clips committed earlier in the same shard, which
a zarr-python partial-shard write (read, merge, rewrite the whole file) would make expensive.

A shard file with a second name (a merge hard-links a segment's full shards into the store, see
`store.merge`) is never written in place: `ShardAppender` first gives its own name a copy of its
own (`_unshare`), so the other store's frames cannot change under it.

Only arrays whose layout we recognise take this path (`ShardLayout.from_metadata` returns None for
anything else: compressed codecs, index at the end, other dtypes); the store falls back to zarr's
own API for those. Bytes written here are exactly what zarr-python reads back (tests check it).
"""

from __future__ import annotations

import json
import mmap
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

MISSING = np.uint64(2**64 - 1)


@dataclass(frozen=True)
class ShardLayout:
    """What the fast path needs to know about a recognised array (parsed from its zarr.json)."""

    dir: Path
    """The array's directory (holds zarr.json and c/<shard>/0)."""
    dim: int
    shard_frames: int
    chunk_frames: int
    dtype: np.dtype
    fill_value: float
    separator: str

    @property
    def chunks_per_shard(self) -> int:
        return self.shard_frames // self.chunk_frames

    @property
    def row_bytes(self) -> int:
        return self.dim * self.dtype.itemsize

    @property
    def chunk_bytes(self) -> int:
        return self.chunk_frames * self.row_bytes

    @property
    def index_bytes(self) -> int:
        return 16 * self.chunks_per_shard + 4  # uint64 pairs + crc32c

    def shard_path(self, shard: int) -> Path:
        if self.separator == "/":
            return self.dir / "c" / str(shard) / "0"
        return self.dir / f"c{self.separator}{shard}{self.separator}0"

    def shard_files(self) -> dict[int, Path]:
        """Shard number -> file, for every shard file the array has on disk."""
        if self.separator == "/":
            found = ((p.parent.name, p) for p in (self.dir / "c").glob("*/0"))
        else:
            prefix = f"c{self.separator}"
            found = ((p.name[len(prefix):].split(self.separator)[0], p) for p in self.dir.glob(f"{prefix}*{self.separator}0"))
        return {int(k): p for k, p in found if k.isdigit()}

    @classmethod
    def from_metadata(cls, array_dir: Path) -> "ShardLayout | None":
        """The layout of the array at `array_dir`, or None if it is not one the fast path handles."""
        meta = json.loads((array_dir / "zarr.json").read_text())
        try:
            if meta.get("zarr_format") != 3 or meta.get("node_type") != "array":
                return None
            shape = meta["shape"]
            grid = meta["chunk_grid"]
            key = meta["chunk_key_encoding"]
            (codec,) = meta["codecs"]
            if len(shape) != 2 or grid["name"] != "regular" or key["name"] != "default":
                return None
            if codec["name"] != "sharding_indexed":
                return None
            cfg = codec["configuration"]
            little = {"name": "bytes", "configuration": {"endian": "little"}}
            if cfg["codecs"] != [little] or cfg.get("index_location") != "start":
                return None
            if cfg["index_codecs"] != [little, {"name": "crc32c"}]:
                return None
            shard_shape = grid["configuration"]["chunk_shape"]
            chunk_shape = cfg["chunk_shape"]
            dtype = np.dtype(meta["data_type"]).newbyteorder("<")
            if dtype.kind != "f" or shard_shape[1] != shape[1] or chunk_shape[1] != shape[1]:
                return None
            if shard_shape[0] % chunk_shape[0]:
                return None
            sep = key.get("configuration", {}).get("separator", "/")
            return cls(
                dir=array_dir,
                dim=int(shape[1]),
                shard_frames=int(shard_shape[0]),
                chunk_frames=int(chunk_shape[0]),
                dtype=dtype,
                fill_value=float(meta.get("fill_value") or 0),
                separator=sep,
            )
        except (KeyError, TypeError, ValueError):
            return None


def _crc32c(data: bytes | memoryview) -> bytes:
    import google_crc32c  # zarr's own crc32c dependency

    return np.uint32(google_crc32c.value(bytes(data))).astype("<u4").tobytes()


def live_chunks(starts: np.ndarray, lengths: np.ndarray, chunk_frames: int, n_chunks: int) -> np.ndarray:
    """(n_chunks,) bool: which chunks of the array hold a frame of some row (rows of 0 frames hold none)."""
    keep = lengths > 0
    first = starts[keep] // chunk_frames
    last = (starts[keep] + lengths[keep] - 1) // chunk_frames
    n = max(n_chunks, int(last.max()) + 1 if last.size else 0)
    marks = np.zeros(n + 1, dtype=np.int64)
    np.add.at(marks, first, 1)
    np.add.at(marks, last + 1, -1)
    return np.cumsum(marks[:n]) > 0


def decode_index(raw: bytes | memoryview, layout: ShardLayout) -> np.ndarray:
    """Shard index bytes -> (chunks_per_shard, 2) uint64 array; checks the crc32c."""
    body, crc = raw[:-4], bytes(raw[-4:])
    if _crc32c(body) != crc:
        raise ValueError(f"shard index checksum mismatch in {layout.dir}")
    return np.frombuffer(body, dtype="<u8").reshape(layout.chunks_per_shard, 2).copy()


def encode_index(index: np.ndarray) -> bytes:
    body = np.ascontiguousarray(index, dtype="<u8").tobytes()
    return body + _crc32c(body)


class _OpenShard:
    """One shard file mapped read-only, with its index; `linear_base` set when rows map linearly."""

    __slots__ = ("mm", "index", "linear_base", "size")

    def __init__(self, path: Path, layout: ShardLayout) -> None:
        with open(path, "rb") as f:
            self.size = os.fstat(f.fileno()).st_size
            self.mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) if self.size else None
        if self.mm is None or self.size < layout.index_bytes:
            self.index = np.full((layout.chunks_per_shard, 2), MISSING, dtype=np.uint64)
        else:
            self.index = decode_index(memoryview(self.mm)[: layout.index_bytes], layout)
        present = self.index[:, 0] != MISSING
        ends = self.index[present, 0] + self.index[present, 1]
        if ends.size and int(ends.max()) > self.size:
            raise ValueError(f"{path}: shard index points past the end of the file")
        # Chunks written in order after the index (what our writer and zarr-python both produce):
        # row r of the shard is then at index_bytes + r * row_bytes, one view per clip.
        expect = layout.index_bytes + np.arange(layout.chunks_per_shard, dtype=np.uint64) * np.uint64(
            layout.chunk_bytes
        )
        ok = (~present) | ((self.index[:, 0] == expect) & (self.index[:, 1] == layout.chunk_bytes))
        self.linear_base = layout.index_bytes if bool(ok.all()) else None

    def has_chunks(self, c0: int, c1: int) -> bool:
        return bool((self.index[c0 : c1 + 1, 0] != MISSING).all())

    def close(self) -> None:
        if self.mm is not None:
            self.mm.close()


class ShardReader:
    """Reads frame ranges of one recognised array straight from its shard files (mmap, zero-copy views).

    Shard files are opened lazily and kept open; a shard whose index does not yet cover a wanted
    row (appended since we opened it) is reopened once. Not shared across processes: pickling
    drops the open files and the copy reopens them on first use.
    """

    def __init__(self, layout: ShardLayout) -> None:
        self.layout = layout
        self._shards: dict[int, _OpenShard | None] = {}

    def __getstate__(self) -> dict:
        return {"layout": self.layout, "_shards": {}}

    def close(self) -> None:
        for s in self._shards.values():
            if s is not None:
                try:
                    s.close()
                except BufferError:  # a caller still holds a view; the map closes when it goes
                    pass
        self._shards.clear()

    def _shard(self, k: int, c0: int, c1: int) -> _OpenShard | None:
        s = self._shards.get(k)
        if s is None or not s.has_chunks(c0, c1):  # unseen, or appended to since we mapped it
            # The old map is dropped, not closed: views handed out earlier may still use it.
            path = self.layout.shard_path(k)
            s = _OpenShard(path, self.layout) if path.exists() else None
            self._shards[k] = s
        return s

    def view(self, start: int, n: int) -> np.ndarray | list[tuple[int, np.ndarray | None]]:
        """Frames [start, start+n) as one read-only view when they lie in one linear shard.

        Otherwise a list of (row offset within the clip, view or None for fill value) pieces.
        """
        L = self.layout
        k = start // L.shard_frames
        first = start - k * L.shard_frames
        if n and first + n <= L.shard_frames:
            s = self._shard(k, first // L.chunk_frames, (first + n - 1) // L.chunk_frames)
            if s is not None and s.linear_base is not None and s.has_chunks(
                first // L.chunk_frames, (first + n - 1) // L.chunk_frames
            ):
                off = s.linear_base + first * L.row_bytes
                return np.frombuffer(s.mm, dtype=L.dtype, count=n * L.dim, offset=off).reshape(n, L.dim)
        return self._pieces(start, n)

    def _pieces(self, start: int, n: int) -> list[tuple[int, np.ndarray | None]]:
        L = self.layout
        out: list[tuple[int, np.ndarray | None]] = []
        row, end = start, start + n
        while row < end:
            k, r = divmod(row, L.shard_frames)
            c, rc = divmod(r, L.chunk_frames)
            take = min(end - row, L.chunk_frames - rc)
            s = self._shard(k, c, c)
            piece = None
            if s is not None and s.index[c, 0] != MISSING:
                off = int(s.index[c, 0])
                if int(s.index[c, 1]) != L.chunk_bytes:
                    raise ValueError(f"{L.dir}: shard {k} chunk {c} is not an uncompressed chunk")
                piece = np.frombuffer(
                    s.mm, dtype=L.dtype, count=take * L.dim, offset=off + rc * L.row_bytes
                ).reshape(take, L.dim)
            out.append((row - start, piece))
            row += take
        return out

    def read(self, start: int, n: int) -> np.ndarray:
        """Frames [start, start+n) as a new array (fill value where no chunk was written)."""
        v = self.view(start, n)
        if isinstance(v, np.ndarray):
            return v.copy()
        out = np.full((n, self.layout.dim), self.layout.fill_value, dtype=self.layout.dtype)
        for at, piece in v:
            if piece is not None:
                out[at : at + len(piece)] = piece
        return out


class ShardAppender:
    """Writes frames into shard files in place: data past the end, then the index in one pwrite.

    Never rewrites a byte that holds a committed frame (rows below the write position), so a kill
    at any moment leaves every earlier clip readable. Rows at or past the write position may be
    overwritten freely: nothing committed lives there.
    """

    def __init__(self, layout: ShardLayout) -> None:
        self.layout = layout

    def write(self, start: int, frames: np.ndarray) -> None:
        L = self.layout
        frames = np.ascontiguousarray(frames, dtype=L.dtype)
        row, end = start, start + len(frames)
        while row < end:
            k, r = divmod(row, L.shard_frames)
            take = min(end - row, L.shard_frames - r)
            self._write_shard(k, r, frames[row - start : row - start + take])
            row += take

    def _write_shard(self, k: int, r0: int, block: np.ndarray) -> None:
        path = self.layout.shard_path(k)
        fd = -1
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            if os.fstat(fd).st_nlink > 1:  # shared with a segment (see `_unshare`): never write it in place
                os.close(fd)
                fd = -1
                fd = _unshare(path)
            self._write_open_shard(fd, path, r0, block)
        except OSError as e:  # name the file: "no space left on device" should say where
            raise OSError(e.errno, e.strerror, str(path)) from None
        finally:
            if fd >= 0:
                os.close(fd)

    def _write_open_shard(self, fd: int, path: Path, r0: int, block: np.ndarray) -> None:
        L = self.layout
        size = os.fstat(fd).st_size
        if size >= L.index_bytes:
            index = decode_index(os.pread(fd, L.index_bytes, 0), L)
        else:
            index = np.full((L.chunks_per_shard, 2), MISSING, dtype=np.uint64)
        present = index[:, 0] != MISSING
        if np.any(present & (index[:, 1] != L.chunk_bytes)):
            raise ValueError(f"{path}: holds compressed chunks; cannot append in place")
        data_end = max([L.index_bytes] + [int(o + n) for o, n in index[present]])
        c0, c1 = r0 // L.chunk_frames, (r0 + len(block) - 1) // L.chunk_frames
        for c in range(c0, c1 + 1):
            if index[c, 0] == MISSING:  # new chunk: place it past everything else
                index[c] = (data_end, L.chunk_bytes)
                data_end += L.chunk_bytes
        # Data: one pwrite per run of chunks that are contiguous in the file.
        row = r0
        stop = r0 + len(block)
        while row < stop:
            c, rc = divmod(row, L.chunk_frames)
            run_end = (c + 1) * L.chunk_frames
            while (
                run_end < stop
                and index[run_end // L.chunk_frames, 0] == index[c, 0]
                + np.uint64((run_end // L.chunk_frames - c) * L.chunk_bytes)
            ):
                run_end += L.chunk_frames
            run_end = min(run_end, stop)
            buf = block[row - r0 : run_end - r0]
            off = int(index[c, 0]) + rc * L.row_bytes
            mv = memoryview(buf).cast("B")
            while mv:
                w = os.pwrite(fd, mv, off)
                mv, off = mv[w:], off + w
            row = run_end
        if os.fstat(fd).st_size < data_end:
            os.ftruncate(fd, data_end)  # a partly filled last chunk still has its full size
        os.pwrite(fd, encode_index(index), 0)


def _unshare(path: Path) -> int:
    """Give `path` a file of its own before writing it in place, and return it opened read-write.

    A shard file with more than one name is shared with another store (a merge hard-links a
    segment's full shards into the store's array): writing it in place would change the other
    store's frames too. A copy under a temporary name replaces this name atomically; the other
    name keeps the original bytes, and a kill at any moment leaves one of the two complete files.
    """
    import shutil

    tmp = path.with_name(path.name + ".unshare")
    try:
        shutil.copyfile(path, tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return os.open(path, os.O_RDWR)
