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
The folder is not trusted: every file is opened through `safe_open` (no symbolic links unless
`follow_symlinks`, never a FIFO), wavs are probed by `audio_files`, and anything that would silently
lose or double-count labels (a label file with no rows, or one that is a directory; a column given
twice; one annotator voting twice on a clip; `X.wav` beside `X.WAV`) is bad input.
"""

from __future__ import annotations

import difflib
import re
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import BadInput
from ..labels import agreement, derive_consensus
from ..store.records import ClipRecord, CorpusRecords, LabelRecord, SkippedRecord, VoteRecord
from .audio_files import AudioInfo, case_twins, clip_id_of, read_headers, wav_names
from .csv_rows import AUDIO_DIR, CsvFile, clip_id_cell, emotion_cell, rating_cell, required_cell
from .safe_open import Refused, open_regular, present

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


def read_consensus(path: Path, shown: str, *, follow_symlinks: bool = False) -> dict[str, _ConsensusRow]:
    """labels_consensus.csv as clip_id -> row; a FileName listed twice is an error."""
    f = CsvFile(path, shown, follow_symlinks=follow_symlinks)
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


def read_detailed(path: Path, shown: str, *, follow_symlinks: bool = False) -> tuple[str, list[_VoteRow]]:
    """labels_detailed.csv in whichever release format its header shows, as votes in file order.

    One annotator judges a clip once: a second vote by the same worker on the same clip (an exact
    duplicate row included) would be counted twice in `n_annotators`, the agreement and the derived
    consensus, so it is bad input, reported at the second occurrence.
    """
    f = CsvFile(path, shown, follow_symlinks=follow_symlinks)
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


# -- transcripts ------------------------------------------------------------------------------------------
def read_transcript(path: Path, *, follow_symlinks: bool = False) -> str | None:
    """A corpus transcript (one line); an empty file counts as no transcript. Opened like every corpus
    file (a symbolic link could otherwise put any text file of the machine into the catalog)."""
    try:
        with open_regular(path, follow_symlinks=follow_symlinks) as fh:
            text = fh.read().decode("utf-8-sig")
    except Refused as e:
        raise BadInput(path, str(e)) from None
    except OSError as e:
        raise BadInput(path, f"cannot read: {e.strerror or e}") from None
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
    if not present(root / CONSENSUS_FILE) and not present(root / DETAILED_FILE):
        raise BadInput(root, f"not an MSP-Podcast corpus: neither {CONSENSUS_FILE} nor {DETAILED_FILE} exists")


def _label_file(root: Path, rel: str) -> Path | None:
    """The label file if anything is there (a directory, a FIFO or a broken link included: those are
    refused when opened, never taken for "no such file", which would drop the corpus's labels)."""
    return root / rel if present(root / rel) else None


def read_msp_podcast(
    root: str | Path,
    *,
    name: str | None = None,
    skip_bad: bool = False,
    follow_symlinks: bool = False,
    progress: bool = True,
    on_skip: Callable[[SkippedRecord], None] | None = None,
) -> CorpusRecords:
    """Read and validate a whole corpus into records; raises `BadInput` on the first problem.

    With `skip_bad`, a clip whose audio cannot be taken (missing, unreadable, empty, non-finite
    samples, a symbolic link or a special file) becomes a `SkippedRecord` (its clip, votes and labels
    are left out) instead of an error; every other problem is still an error. Symbolic links in the
    corpus are read only with `follow_symlinks`; FIFOs and devices never are.
    """
    root = Path(root)
    check_layout(root)
    corpus = name or root.resolve().name
    shown = lambda rel: str(root / rel)  # noqa: E731
    follow = follow_symlinks

    consensus: dict[str, _ConsensusRow] = {}
    if path := _label_file(root, CONSENSUS_FILE):
        consensus = read_consensus(path, shown(CONSENSUS_FILE), follow_symlinks=follow)
    fmt, vote_rows = ("none", [])
    if path := _label_file(root, DETAILED_FILE):
        fmt, vote_rows = read_detailed(path, shown(DETAILED_FILE), follow_symlinks=follow)

    # Which clips exist, and where each labelled one was first mentioned (for error messages).
    audio_dir = root / AUDIO_DIR
    on_disk = set(wav_names(audio_dir))
    mentioned: dict[str, tuple[str, int, str]] = {}  # clip_id -> (file shown, line, FileName)
    for cid, row in consensus.items():
        mentioned[cid] = (shown(CONSENSUS_FILE), row.line, row.file_name)
    for vr in vote_rows:
        mentioned.setdefault(vr.vote.clip_id, (shown(DETAILED_FILE), vr.line, vr.file_name))
    file_names = {cid: fn for cid, (_, _, fn) in mentioned.items()}
    for fn in sorted(on_disk):
        file_names.setdefault(clip_id_of(fn), fn)

    def bad_audio(cid: str, reason: str, *, name_file: bool = True) -> BadInput:
        if cid in mentioned:
            file, line, fn = mentioned[cid]
            return BadInput(file, f"{reason}: {AUDIO_DIR}/{fn}" if name_file else reason, row=line, field="FileName")
        return BadInput(audio_dir / file_names[cid], reason)

    for twins in case_twins(sorted(on_disk)):  # never skipped: which of the two is the clip?
        both = " and ".join(f"{AUDIO_DIR}/{t}" for t in twins)
        raise bad_audio(clip_id_of(twins[0]), f"{both} are one clip (names that differ only in case): keep one",
                        name_file=False)

    skipped: list[SkippedRecord] = []

    def skip_or_fail(cid: str, reason: str) -> None:
        if not skip_bad:
            raise bad_audio(cid, reason)
        where = f" (listed on {mentioned[cid][0]}:{mentioned[cid][1]})" if cid in mentioned else ""
        rec = SkippedRecord(cid, f"{AUDIO_DIR}/{file_names[cid]}", reason + where)
        skipped.append(rec)
        if on_skip:
            on_skip(rec)

    listed = []
    for cid in sorted(file_names):
        if file_names[cid] in on_disk:
            listed.append(cid)
        else:
            skip_or_fail(cid, "missing audio file")
    headers = read_headers([audio_dir / file_names[c] for c in listed], follow_symlinks=follow, progress=progress)
    infos: dict[str, AudioInfo] = {}
    for cid, h in zip(listed, headers):
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
            transcript=read_transcript(tpath, follow_symlinks=follow) if present(tpath) else None,
            size_bytes=info.size_bytes,
            mtime_ns=info.mtime_ns,
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
