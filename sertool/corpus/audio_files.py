"""The corpus's `Audios/` folder as ingest sees it: which wavs are there, and what each one holds.

Ingest reads a wav's header only (duration, rate, channels): at MSP-Podcast scale (≈119,000 clips,
324 h) that is a few KB per file instead of 37 GB of samples. Two checks go past the header, because a
file that passes them would otherwise fail much later, in `embed`, far from the corpus:

* **no samples** (a 0-sample wav) is refused: it has nothing to embed.
* **NaN or infinite samples** are looked for only in float wavs (`FLOAT`, `DOUBLE` subtypes): integer
  PCM cannot encode them, so a PCM corpus (MSP-Podcast ships PCM_16) costs nothing more. Scanning every
  sample of the 600-clip synthetic corpus (PCM_16, 34 min of audio) took 230 ms against 26 ms for the
  headers with the page cache dropped (113 vs 13 µs per second of audio, 9x), about 2 min against 15 s at
  MSP-Podcast scale on this machine's disk and more on network storage. A float copy of that corpus,
  probed the way ingest does (8 threads, warm cache, a loaded 2-core machine), took 140 ms against
  52 ms for the PCM_16 headers: it reads what `embed` will read anyway.

Every file is opened through `safe_open.open_regular` (no symlinks unless asked, never a FIFO).
"""

from __future__ import annotations

import functools
import os
import re
from collections import defaultdict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from .safe_open import Refused, open_regular

WAV_SUFFIX = ".wav"
FLOAT_SUBTYPES = frozenset({"FLOAT", "DOUBLE"})
"""Subtypes that can hold NaN or infinity (every other wav subtype is integer-coded)."""
_SCAN_BLOCK = 1 << 16  # frames per read while scanning float samples: bounded memory for long files


@dataclass(frozen=True)
class AudioInfo:
    duration_s: float
    sample_rate: int
    n_channels: int
    size_bytes: int | None = None
    mtime_ns: int | None = None
    """The file's size and mtime as ingest saw it (`clips`: what the audio was when the corpus was read)."""


def wav_names(audio_dir: Path) -> list[str]:
    """Names in `audio_dir` ending in `.wav` in any case, whatever kind of entry they are (links and
    special files included: `probe` says what is wrong with them, once, by name)."""
    with os.scandir(audio_dir) as entries:
        return sorted(e.name for e in entries if e.name.lower().endswith(WAV_SUFFIX) and len(e.name) > len(WAV_SUFFIX))


def clip_id_of(file_name: str) -> str:
    """`X.wav` (or `X.WAV`) -> `X`."""
    return file_name[: -len(WAV_SUFFIX)] if file_name.lower().endswith(WAV_SUFFIX) else file_name


def case_twins(names: Sequence[str]) -> list[list[str]]:
    """Groups of names that are one clip (`X.wav` beside `X.WAV`): the reader could only pick one."""
    by_clip: dict[str, list[str]] = defaultdict(list)
    for name in names:
        by_clip[clip_id_of(name)].append(name)
    return [sorted(group) for _, group in sorted(by_clip.items()) if len(group) > 1]


def _first_non_finite(snd) -> int | None:
    """Index of the first NaN or infinite frame of an open float wav, or None (read in blocks: bounded
    memory; in the file's own precision, so a DOUBLE file cannot overflow to infinity on the way)."""
    import numpy as np

    dtype = "float64" if snd.subtype == "DOUBLE" else "float32"
    start = 0
    for block in snd.blocks(blocksize=_SCAN_BLOCK, dtype=dtype, always_2d=True):
        if not np.isfinite(block).all():
            return start + int(np.argmax(~np.isfinite(block).all(axis=1)))
        start += len(block)
    return None


def audio_info(path: Path, *, follow_symlinks: bool = False) -> AudioInfo | str:
    """The wav's header, or why it cannot be a clip (returned, not raised, so a pool of probes goes on).

    Raises nothing for a bad file: missing, refused (link, FIFO), unreadable, empty and non-finite
    files all come back as a short reason.
    """
    import soundfile as sf

    try:
        # libsndfile reads the descriptor itself (a Python file object would cost a callback per read)
        with open_regular(path, follow_symlinks=follow_symlinks) as fh, sf.SoundFile(fh.fileno(), closefd=False) as snd:
            if snd.frames == 0:
                return "empty audio (0 samples)"
            st = os.fstat(fh.fileno())
            info = AudioInfo(snd.frames / snd.samplerate, int(snd.samplerate), int(snd.channels),
                             st.st_size, st.st_mtime_ns)
            if snd.subtype in FLOAT_SUBTYPES:
                at = _first_non_finite(snd)
                if at is not None:
                    return f"audio holds NaN or infinite samples (first at sample {at})"
            return info
    except Refused as e:
        return str(e)
    except FileNotFoundError:
        return "missing audio file"
    except (RuntimeError, OSError, ValueError, TypeError) as e:  # soundfile's LibsndfileError is a RuntimeError
        lines = str(e).strip().splitlines()
        why = re.sub(r"^Error opening .*?: ", "", lines[0]).rstrip(".") if lines else type(e).__name__
        return f"unreadable audio ({why})"


def read_headers(
    paths: Sequence[Path], *, follow_symlinks: bool = False, progress: bool = True, threads: int = 8
) -> list[AudioInfo | str]:
    """Probe many wavs in parallel (I/O bound: network disks reward a few threads)."""
    from rich.console import Console

    from ..progress import progress_bar

    probe = functools.partial(audio_info, follow_symlinks=follow_symlinks)
    out: list[AudioInfo | str] = []
    with ThreadPoolExecutor(max_workers=threads) as pool, \
            progress_bar(Console(stderr=True) if progress else None, unit="files", transient=True) as bar:
        task = bar.add_task("reading audio headers", total=len(paths))
        for result in pool.map(probe, paths):
            out.append(result)
            bar.advance(task)
    return out
