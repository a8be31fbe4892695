"""Reader for the MSP-Podcast on-disk layout (releases 1.11/1.12 and the older detailed-label formats).

```
ROOT/Audios/<FileName>                16 kHz wav, flat folder
ROOT/Transcripts/<stem>.txt           one line per clip (optional)
ROOT/Labels/labels_consensus.csv      FileName,EmoClass,EmoAct,EmoVal,EmoDom,SpkrID,Gender,Split_Set
ROOT/Labels/labels_detailed.csv       one row per vote, in one of three release formats:
    FileName,Workers,EmoClass_Major,EmoClass_Second,EmoAct,EmoVal,EmoDom
    FileName,WorkerID,EmoClass_Major,EmoClass_Second,EmoAct,EmoVal,EmoDom
    FileName,EmoDetail   with EmoDetail = "WORKER00012; Happy; Excited,Amused; A:5.0; V:6.0; D:4.0;"
```
The whole corpus is read and checked before anything is written, so bad input never leaves a
half-ingested catalog. Errors name the file, the 1-based line (header = line 1) and the column.
Anything that would silently lose or double-count labels (a label file with no rows, or one that is
a directory; a column given twice; one annotator voting twice on a clip) is bad input.
"""

from __future__ import annotations

import difflib
import os
import re
from collections import defaultdict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from ..errors import BadInput
from ..labels import agreement, derive_consensus
from .csv_rows import AUDIO_DIR, CsvFile, clip_id_cell, emotion_cell, rating_cell, required_cell
from ..store.records import ClipRecord, CorpusRecords, LabelRecord, SkippedRecord, VoteRecord

TRANSCRIPT_DIR = "Transcripts"
CONSENSUS_FILE = "Labels/labels_consensus.csv"
DETAILED_FILE = "Labels/labels_detailed.csv"

CONSENSUS_COLUMNS = ("FileName", "EmoClass", "EmoAct", "EmoVal", "EmoDom", "SpkrID", "Gender", "Split_Set")
WORKER_COLUMNS = ("EmoClass_Major", "EmoClass_Second", "EmoAct", "EmoVal", "EmoDom")
CORPUS_SPLITS = ("Train", "Development", "Test1", "Test2", "Test3")
# Audio with no label row is the challenge test set (MSP-PODCAST_test3_NNNN.wav).
UNLABELLED_SPLIT = "Test3"

_ATTR_PREFIX = re.compile(r"([AVDavd])\s*:\s*(.*)")


# -- label files --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _ConsensusRow:
    line: int
    file_name: str
    emotion: str
    arousal: float | None
    valence: float | None
    dominance: float | None
    speaker_id: str | None
    gender: str | None
    split: str


@dataclass(frozen=True)
class _VoteRow:
    line: int
    file_name: str
    vote: VoteRecord


def read_consensus(path: Path, shown: str) -> dict[str, _ConsensusRow]:
    """labels_consensus.csv as clip_id -> row; a FileName listed twice is an error."""
    f = CsvFile(path, shown)
    f.require(CONSENSUS_COLUMNS)
    out: dict[str, _ConsensusRow] = {}
    for line, cells in f.rows():
        c = lambda col: f.cell(cells, col)  # noqa: E731
        name = c("FileName")
        clip_id = clip_id_cell(shown, line, "FileName", name)
        if clip_id in out:
            raise BadInput(shown, f"duplicate FileName {name!r} (first on line {out[clip_id].line})", row=line, field="FileName")
        split = required_cell(f, line, "Split_Set", c("Split_Set"))
        if split not in CORPUS_SPLITS:
            raise BadInput(shown, f"unknown split {split!r} (expected one of {', '.join(CORPUS_SPLITS)})", row=line, field="Split_Set")
        out[clip_id] = _ConsensusRow(
            line=line,
            file_name=name,
            emotion=emotion_cell(shown, line, "EmoClass", required_cell(f, line, "EmoClass", c("EmoClass")), allow_x=True),
            arousal=rating_cell(shown, line, "EmoAct", c("EmoAct")),
            valence=rating_cell(shown, line, "EmoVal", c("EmoVal")),
            dominance=rating_cell(shown, line, "EmoDom", c("EmoDom")),
            speaker_id=c("SpkrID") or None,
            gender=c("Gender") or None,
            split=split,
        )
    return out


def detailed_format(header: Sequence[str]) -> str:
    """Which release format a labels_detailed.csv header is: `emodetail`, `workers` or `workerid`."""
    if "EmoDetail" in header:
        return "emodetail"
    if "Workers" in header:
        return "workers"
    if "WorkerID" in header:
        return "workerid"
    return "unknown"


def _parse_emo_detail(shown: str, line: int, clip_id: str, text: str) -> VoteRecord:
    """`"WORKER00012; Happy; Excited,Amused; A:5.0; V:6.0; D:4.0;"` -> a vote."""
    parts = [p.strip() for p in text.split(";")]
    while parts and not parts[-1]:
        parts.pop()
    if len(parts) < 2 or not parts[0] or not parts[1]:
        raise BadInput(shown, f"expected 'WORKER; Primary; secondary; A:x; V:y; D:z;', got {text!r}", row=line, field="EmoDetail")
    worker, primary, rest = parts[0], parts[1], parts[2:]
    secondary: str | None = None
    ratings: dict[str, float | None] = {}
    for i, part in enumerate(rest):
        m = _ATTR_PREFIX.fullmatch(part)
        if m:
            key = m.group(1).upper()
            if key in ratings:
                raise BadInput(shown, f"rating {key}: given twice in {text!r}", row=line, field="EmoDetail")
            ratings[key] = rating_cell(shown, line, f"EmoDetail {key}", m.group(2).strip())
        elif i == 0:
            secondary = part or None
        else:
            raise BadInput(shown, f"unexpected part {part!r} in {text!r}", row=line, field="EmoDetail")
    return VoteRecord(
        clip_id=clip_id,
        annotator_id=worker,
        emotion=emotion_cell(shown, line, "EmoDetail", primary, allow_x=False),
        secondary=secondary,
        arousal=ratings.get("A"),
        valence=ratings.get("V"),
        dominance=ratings.get("D"),
    )


def read_detailed(path: Path, shown: str) -> tuple[str, list[_VoteRow]]:
    """labels_detailed.csv in whichever release format its header shows, as votes in file order.

    One annotator judges a clip once: a second vote by the same worker on the same clip (an exact
    duplicate row included) would be counted twice in `n_annotators`, the agreement and the derived
    consensus, so it is bad input, reported at the second occurrence.
    """
    f = CsvFile(path, shown)
    fmt = detailed_format(f.header)
    if fmt == "unknown":
        f.require(["FileName"])
        f.close()
        near = difflib.get_close_matches("EmoDetail", f.header, n=1) or difflib.get_close_matches("WorkerID", f.header, n=1)
        hint = f" (found {near[0]!r}: misspelled?)" if near else ""
        raise BadInput(shown, f"missing column: expected EmoDetail, or Workers/WorkerID with {','.join(WORKER_COLUMNS)}{hint}", row=1, field="EmoDetail")
    worker_col = {"workers": "Workers", "workerid": "WorkerID"}.get(fmt)
    f.require(["FileName", "EmoDetail"] if fmt == "emodetail" else ["FileName", worker_col, *WORKER_COLUMNS])
    out: list[_VoteRow] = []
    first: dict[tuple[str, str], _VoteRow] = {}
    for line, cells in f.rows():
        c = lambda col: f.cell(cells, col)  # noqa: E731
        name = c("FileName")
        clip_id = clip_id_cell(shown, line, "FileName", name)
        if fmt == "emodetail":
            vote = _parse_emo_detail(shown, line, clip_id, required_cell(f, line, "EmoDetail", c("EmoDetail")))
        else:
            vote = VoteRecord(
                clip_id=clip_id,
                annotator_id=required_cell(f, line, worker_col, c(worker_col)),
                emotion=emotion_cell(shown, line, "EmoClass_Major", required_cell(f, line, "EmoClass_Major", c("EmoClass_Major")), allow_x=False),
                secondary=c("EmoClass_Second") or None,
                arousal=rating_cell(shown, line, "EmoAct", c("EmoAct")),
                valence=rating_cell(shown, line, "EmoVal", c("EmoVal")),
                dominance=rating_cell(shown, line, "EmoDom", c("EmoDom")),
            )
        row = _VoteRow(line, name, vote)
        seen = first.setdefault((clip_id, vote.annotator_id), row)
        if seen is not row:
            what = (f"duplicate of line {seen.line}" if seen.vote == vote
                    else f"{vote.annotator_id} already voted on {name} (line {seen.line})")
            raise BadInput(shown, f"{what}: one vote per annotator and clip", row=line, field=worker_col or "EmoDetail")
        out.append(row)
    return fmt, out


# -- audio and transcripts ------------------------------------------------------------------------------
@dataclass(frozen=True)
class AudioInfo:
    duration_s: float
    sample_rate: int
    n_channels: int


def audio_info(path: Path) -> AudioInfo:
    """Duration, rate and channels from the file header (no decode). Raises OSError/RuntimeError if unreadable."""
    import soundfile as sf

    info = sf.info(str(path))
    return AudioInfo(float(info.duration), int(info.samplerate), int(info.channels))


def _probe(path: Path) -> AudioInfo | str:
    """The header, or the reason it could not be read (returned, not raised, so the pool keeps going)."""
    try:
        return audio_info(path)
    except (RuntimeError, OSError, ValueError) as e:
        lines = str(e).strip().splitlines()
        why = re.sub(r"^Error opening .*?: ", "", lines[0]).rstrip(".") if lines else type(e).__name__
        return f"unreadable audio ({why})"


def read_headers(paths: Sequence[Path], *, progress: bool = True, threads: int = 8) -> list[AudioInfo | str]:
    """Probe many audio headers in parallel (I/O bound: network disks reward a few threads)."""
    from rich.console import Console

    from ..progress import progress_bar

    out: list[AudioInfo | str] = []
    with ThreadPoolExecutor(max_workers=threads) as pool, \
            progress_bar(Console(stderr=True) if progress else None, unit="files", transient=True) as bar:
        task = bar.add_task("reading audio headers", total=len(paths))
        for result in pool.map(_probe, paths):
            out.append(result)
            bar.advance(task)
    return out


def read_transcript(path: Path) -> str | None:
    """A corpus transcript (one line); an empty file counts as no transcript."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise BadInput(path, "not UTF-8 text", row=1) from None
    text = " ".join(text.split())
    return text or None


# -- the reader ---------------------------------------------------------------------------------------------
def check_layout(root: Path) -> None:
    """Refuse a directory that is not an MSP-Podcast-style corpus before reading anything."""
    if not root.is_dir():
        raise BadInput(root, "not a directory")
    if not (root / AUDIO_DIR).is_dir():
        raise BadInput(root, f"not an MSP-Podcast corpus: no {AUDIO_DIR}/ folder")
    if not os.path.lexists(root / CONSENSUS_FILE) and not os.path.lexists(root / DETAILED_FILE):
        raise BadInput(root, f"not an MSP-Podcast corpus: neither {CONSENSUS_FILE} nor {DETAILED_FILE} exists")


def read_msp_podcast(
    root: str | Path,
    *,
    name: str | None = None,
    skip_bad: bool = False,
    progress: bool = True,
    on_skip: Callable[[SkippedRecord], None] | None = None,
) -> CorpusRecords:
    """Read and validate a whole corpus into records; raises `BadInput` on the first problem.

    With `skip_bad`, a missing or unreadable audio file becomes a `SkippedRecord` (its clip, votes and
    labels are left out) instead of an error; every other problem is still an error.
    """
    root = Path(root)
    check_layout(root)
    corpus = name or root.resolve().name
    shown = lambda rel: str(root / rel)  # noqa: E731

    # Anything at a label file's path is read: a directory or a broken link is refused when opened,
    # never taken for "no such file", which would drop the corpus's labels.
    consensus = read_consensus(root / CONSENSUS_FILE, shown(CONSENSUS_FILE)) if os.path.lexists(root / CONSENSUS_FILE) else {}
    fmt, vote_rows = ("none", [])
    if os.path.lexists(root / DETAILED_FILE):
        fmt, vote_rows = read_detailed(root / DETAILED_FILE, shown(DETAILED_FILE))

    # Which clips exist, and where each labelled one was first mentioned (for error messages).
    audio_dir = root / AUDIO_DIR
    on_disk = {p.name for p in audio_dir.iterdir() if p.suffix.lower() == ".wav"}
    mentioned: dict[str, tuple[str, int, str]] = {}  # clip_id -> (file shown, line, FileName)
    for cid, row in consensus.items():
        mentioned[cid] = (shown(CONSENSUS_FILE), row.line, row.file_name)
    for vr in vote_rows:
        mentioned.setdefault(vr.vote.clip_id, (shown(DETAILED_FILE), vr.line, vr.file_name))
    file_names = {cid: fn for cid, (_, _, fn) in mentioned.items()}
    for fn in on_disk:
        cid = fn[:-4]
        file_names.setdefault(cid, fn)

    skipped: list[SkippedRecord] = []

    def skip_or_fail(cid: str, reason: str) -> None:
        if cid in mentioned:
            file, line, fn = mentioned[cid]
            err = BadInput(file, f"{reason}: {AUDIO_DIR}/{fn}", row=line, field="FileName")
        else:
            err = BadInput(audio_dir / file_names[cid], reason)
        if not skip_bad:
            raise err
        where = f" (listed on {mentioned[cid][0]}:{mentioned[cid][1]})" if cid in mentioned else ""
        rec = SkippedRecord(cid, f"{AUDIO_DIR}/{file_names[cid]}", reason + where)
        skipped.append(rec)
        if on_skip:
            on_skip(rec)

    clip_ids = sorted(file_names)
    present = []
    for cid in clip_ids:
        if file_names[cid] in on_disk:
            present.append(cid)
        else:
            skip_or_fail(cid, "missing audio file")
    headers = read_headers([audio_dir / file_names[c] for c in present], progress=progress)
    infos: dict[str, AudioInfo] = {}
    for cid, h in zip(present, headers):
        if isinstance(h, str):
            skip_or_fail(cid, h)
        else:
            infos[cid] = h

    votes_by_clip: dict[str, list[VoteRecord]] = defaultdict(list)
    for vr in vote_rows:
        if vr.vote.clip_id in infos:
            votes_by_clip[vr.vote.clip_id].append(vr.vote)

    transcript_dir = root / TRANSCRIPT_DIR
    clips: list[ClipRecord] = []
    labels: list[LabelRecord] = []
    for cid in sorted(infos):
        info, row, votes = infos[cid], consensus.get(cid), votes_by_clip.get(cid, [])
        tpath = transcript_dir / f"{cid}.txt"
        clips.append(ClipRecord(
            clip_id=cid,
            path=f"{AUDIO_DIR}/{file_names[cid]}",
            split=row.split if row else (None if votes else UNLABELLED_SPLIT),
            duration_s=info.duration_s,
            sample_rate=info.sample_rate,
            n_channels=info.n_channels,
            speaker_id=row.speaker_id if row else None,
            gender=row.gender if row else None,
            transcript=read_transcript(tpath) if tpath.is_file() else None,
        ))
        emotions = [v.emotion for v in votes]
        if row:
            labels.append(LabelRecord(cid, row.emotion, row.arousal, row.valence, row.dominance,
                                      len(votes), agreement(emotions, row.emotion), "corpus"))
        elif votes:
            c = derive_consensus(emotions, [v.arousal for v in votes], [v.valence for v in votes],
                                 [v.dominance for v in votes])
            labels.append(LabelRecord(cid, c.emotion, c.arousal, c.valence, c.dominance,
                                      c.n_annotators, c.agreement, "votes"))
    votes_out = [v for v in (vr.vote for vr in vote_rows) if v.clip_id in infos]
    return CorpusRecords(
        name=corpus,
        root=str(root.resolve()),
        format=f"msp-podcast/{fmt}",
        clips=clips,
        votes=votes_out,
        labels=labels,
        skipped=sorted(skipped, key=lambda s: s.clip_id),
    )
