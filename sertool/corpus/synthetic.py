"""A small synthetic corpus in the exact MSP-Podcast on-disk layout, with labels a model can learn.

Why: tests, the demo and CI need a corpus without downloads, and later stages (frozen tiny encoders +
fusion model) must show real learning on it, so the labels are generated from a latent that both the
audio and the transcript encode.

Layout written under ``out_dir`` (DESIGN.md §1)::

    Audios/MSP-PODCAST_<spk4>_<seg4>.wav      16 kHz mono PCM_16, flat folder
    Audios/MSP-PODCAST_test3_<NNNN>.wav       challenge test set: audio + transcript, no labels
    Transcripts/<stem>.txt                    one line
    Labels/labels_consensus.csv               FileName,EmoClass,EmoAct,EmoVal,EmoDom,SpkrID,Gender,Split_Set
    Labels/labels_detailed.csv                FileName,EmoDetail (1.11+ format, one row per vote)
    SYNTHETIC.txt                             marks the folder as ours (safe to regenerate) + parameters

Generating rules:

1. **Speakers.** 12 known speakers (IDs 101-112, Male/Female), 4 of them Development and 8 Train, so the
   split is speaker-disjoint; 12% of labelled clips have speaker ``Unknown`` (gender ``Unknown``, a
   fresh random voice each, split Train 70% / Development 30%). Test3 (15% of clips) is spoken by 3
   further speakers that appear nowhere else and has no label or vote rows at all.
2. **Latent.** Each clip draws a latent (arousal, valence, dominance) on 1-7 from a mixture: pick a
   component by class prior (Neutral and Happy most common, as in MSP-Podcast), then a point around
   that class's prototype (`PROTOTYPES`, sd 0.5). The clip's *region class* is the nearest prototype
   to the latent, so classes are regions of emotion space: high A + low V + high D Angry, high A +
   low V + low D Fear, low A + low V Sad, high A + high V Happy, very high A + mid V Surprise, mid A +
   low V Disgust, low A + mid-low V + high D Contempt, centre Neutral. An "Other" component (5%) sits
   near the centre and makes annotators answer Other.
3. **Votes.** 5-8 annotators per clip (distinct workers from a pool of 40). Every worker has
   persistent habits drawn from the seed (a noise level, a perceived-A/V/D shift, a rating stretch,
   class preferences, a tendency to call Contempt and Disgust Angry, a rate of answering Other:
   `sertool.corpus.synthetic_annotators`), so agreement looks like MSP-Podcast's: the winning class
   gets about half of the votes and about a fifth of clips end in a tie (X). Each vote perceives
   latent + shift + noise, picks a class near the percept (``Other[-desc]`` on most votes of
   Other-component clips), rates A/V/D from the percept (rounded, clipped to 1-7) and lists 0-2
   secondary emotions. The workers draw from a random stream of their own, so changing the
   annotator model changes no audio or transcript.
4. **Consensus** is computed from the votes exactly as the reader derives it: plurality of the primary
   classes, a tie for the top is ``X``; attributes are the vote means rounded to 4 decimals. The first
   10 Train clips are steered (their votes redrawn until the consensus comes out right) to be
   A, S, H, U, F, D, C, N, O and X, so every code appears in Train at any corpus size.
5. **Audio** encodes arousal (loudness, speaking rate, pitch) and dominance (spectral tilt, pitch);
   **text** encodes valence (sentiment words) and a little of the class: see
   `sertool.corpus.synthetic_speech`. Durations 1.5-6 s (log-normal around 3.2 s); clips number 50,
   150, ... are long (8-11 s) so downstream padding and batching always meet one.

Determinism: `numpy.random.Generator(seed)` drives every clip draw and a second generator, seeded
with (seed, 1), every annotator draw, each in a fixed order; WAVs are PCM_16 (no timestamps in the
header), CSVs use ``\\n`` line endings; same seed -> byte-identical files.
"""

from __future__ import annotations

import csv
import shutil
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..audio import SAMPLE_RATE
from ..errors import SertoolError
from ..labels import ATTRIBUTES, CLASSES, CONSENSUS_CODES, class_code, plurality
from .synthetic_annotators import PROTO, PROTOTYPES, Vote, Worker, draw_workers, region_class, vote
from .synthetic_speech import Voice, random_voice, render_speech, render_transcript

CONSENSUS_HEADER = ("FileName", "EmoClass", "EmoAct", "EmoVal", "EmoDom", "SpkrID", "Gender",
                    "Split_Set")
DETAILED_HEADER = ("FileName", "EmoDetail")
MARKER = "SYNTHETIC.txt"
GENERATOR_VERSION = 2
MIN_CLIPS = 20

# Mixture weights of the latent's components: 8 classes then the "Other" component.
COMPONENT_PRIOR = {"A": 0.12, "S": 0.12, "H": 0.18, "U": 0.08, "F": 0.07, "D": 0.08, "C": 0.08,
                   "N": 0.22, "O": 0.05}
LATENT_SD = 0.5
N_KNOWN_SPEAKERS, N_DEV_SPEAKERS, N_TEST3_SPEAKERS = 12, 4, 3
P_UNKNOWN_SPEAKER, TEST3_FRACTION = 0.12, 0.15
WORKER_POOL = 40
ANNOTATOR_STREAM = 1  # second seed word of the annotators' random stream
STEERED = CONSENSUS_CODES


@dataclass(frozen=True)
class Speaker:
    spkr_id: str  # as written in SpkrID ("Unknown" for unidentified speakers)
    gender: str
    prefix: str  # the <spk4> part of file names
    split: str
    voice: Voice | None  # None: a fresh voice per clip (unknown speakers)


@dataclass(frozen=True)
class Consensus:
    emotion: str  # class code, O or X
    arousal: float
    valence: float
    dominance: float


def consensus_of(votes: list[Vote]) -> Consensus:
    """The reader's rule (`labels.plurality`: a tie for the top is X); attributes = vote means, 4 decimals."""
    emotion = plurality([class_code(v.primary, allow_x=False) for v in votes])
    mean = [round(float(np.mean([getattr(v, a) for v in votes])), 4)
            for a in ATTRIBUTES]
    return Consensus(emotion, *mean)


def write_synthetic_corpus(out_dir: Path, n_clips: int = 240, seed: int = 0) -> Path:
    """Write an MSP-Podcast-layout corpus of ``n_clips`` clips (Test3 included) under ``out_dir``.

    Returns the corpus root (``out_dir``). A folder that holds a previous synthetic corpus is
    regenerated; any other non-empty folder is refused, so user data is never overwritten.
    """
    out_dir = Path(out_dir)
    if n_clips < MIN_CLIPS:
        raise SertoolError(f"synthetic corpus needs at least {MIN_CLIPS} clips, got {n_clips}")
    _prepare(out_dir)
    rng = np.random.default_rng(seed)
    speakers = _speakers(rng)
    worker_ids = [f"WORKER{w:05d}" for w in rng.choice(np.arange(1, 100_000), WORKER_POOL, replace=False)]
    # Annotators draw from a stream of their own, so the annotator model can change without
    # changing a single latent, wav or transcript (and vice versa).
    annotator_rng = np.random.default_rng([seed, ANNOTATOR_STREAM])
    workers = draw_workers(annotator_rng, worker_ids)

    n_test3 = int(round(TEST3_FRACTION * n_clips))
    known = [s for s in speakers if s.split in ("Train", "Development")]
    train_side = [s for s in known if s.split == "Train"]
    speaker_weights = rng.dirichlet(np.full(len(known), 3.0))
    unknown = {split: Speaker("Unknown", "Unknown", f"{900 + i:04d}", split, None)
               for i, split in enumerate(("Train", "Development"))}
    test3_speakers = [s for s in speakers if s.split == "Test3"]

    segments: Counter[str] = Counter()
    consensus_rows, detailed_rows = [], []
    (out_dir / "Audios").mkdir(parents=True)
    (out_dir / "Transcripts").mkdir()
    (out_dir / "Labels").mkdir()
    import soundfile as sf

    for i in range(n_clips):
        labelled = i < n_clips - n_test3
        steer = STEERED[i] if i < len(STEERED) else None
        # Who speaks, and in which split.
        if not labelled:
            speaker = test3_speakers[rng.integers(len(test3_speakers))]
            stem = f"MSP-PODCAST_test3_{i - (n_clips - n_test3) + 1:04d}"
        else:
            if rng.random() < P_UNKNOWN_SPEAKER:
                speaker = unknown["Train" if steer or rng.random() < 0.7 else "Development"]
            elif steer:  # steered clips must land in Train
                speaker = train_side[rng.integers(len(train_side))]
            else:
                speaker = known[rng.choice(len(known), p=speaker_weights)]
            segments[speaker.prefix] += 1
            stem = f"MSP-PODCAST_{speaker.prefix}_{segments[speaker.prefix]:04d}"
        voice = speaker.voice or random_voice(rng, speaker.gender)

        latent, component = _draw_latent(rng, steer)
        if labelled:
            votes = _draw_votes(annotator_rng, latent, component, workers, steer)
            c = consensus_of(votes)
            consensus_rows.append((stem + ".wav", c.emotion, repr(c.arousal), repr(c.valence),
                                   repr(c.dominance), speaker.spkr_id, speaker.gender, speaker.split))
            detailed_rows.extend((stem + ".wav", v.emo_detail()) for v in votes)

        duration = _draw_duration(rng, long=i % 100 == 50)
        audio = render_speech(rng, duration, latent[0], latent[2], voice)
        text = render_transcript(rng, latent[1], region_class(latent), duration)
        sf.write(out_dir / "Audios" / f"{stem}.wav", audio, SAMPLE_RATE, subtype="PCM_16",
                 format="WAV")
        (out_dir / "Transcripts" / f"{stem}.txt").write_text(text + "\n", encoding="utf-8",
                                                              newline="\n")

    _write_csv(out_dir / "Labels" / "labels_consensus.csv", CONSENSUS_HEADER, sorted(consensus_rows))
    # Stable sort by file name keeps each clip's votes in annotator order.
    _write_csv(out_dir / "Labels" / "labels_detailed.csv", DETAILED_HEADER,
               sorted(detailed_rows, key=lambda row: row[0]))
    (out_dir / MARKER).write_text(
        f"sertool synthetic corpus (MSP-Podcast layout)\ngenerator_version={GENERATOR_VERSION}\n"
        f"clips={n_clips}\nseed={seed}\n", encoding="utf-8", newline="\n")
    return out_dir


def _prepare(out_dir: Path) -> None:
    """Refuse to write into a folder of someone else's files; clear a previous synthetic corpus."""
    if out_dir.exists() and not out_dir.is_dir():
        raise SertoolError(f"{out_dir}: exists and is not a directory")
    if out_dir.is_dir() and any(out_dir.iterdir()):
        if not (out_dir / MARKER).is_file():
            raise SertoolError(f"{out_dir}: directory is not empty and holds no synthetic corpus "
                               f"({MARKER} missing); choose an empty or new directory")
        for name in ("Audios", "Transcripts", "Labels"):
            if (out_dir / name).is_dir():
                shutil.rmtree(out_dir / name)
        (out_dir / MARKER).unlink()
    out_dir.mkdir(parents=True, exist_ok=True)


def _speakers(rng: np.random.Generator) -> list[Speaker]:
    """12 known speakers (4 Development, 8 Train) then 3 Test3-only speakers."""
    dev = set(rng.choice(N_KNOWN_SPEAKERS, N_DEV_SPEAKERS, replace=False).tolist())
    out = []
    for k in range(N_KNOWN_SPEAKERS + N_TEST3_SPEAKERS):
        gender = ("Male", "Female")[k % 2]
        split = "Test3" if k >= N_KNOWN_SPEAKERS else ("Development" if k in dev else "Train")
        out.append(Speaker(str(101 + k), gender, f"{101 + k:04d}", split, random_voice(rng, gender)))
    return out


def _draw_latent(rng: np.random.Generator, steer: str | None) -> tuple[np.ndarray, str]:
    """(latent A/V/D, mixture component). Steered X clips sit halfway between two prototypes."""
    if steer == "X":
        a, b = rng.choice(len(CLASSES), 2, replace=False)
        return (PROTO[a] + PROTO[b]) / 2.0, "X"
    if steer is not None:
        component = steer
    else:
        names = list(COMPONENT_PRIOR)
        component = names[rng.choice(len(names), p=np.array(list(COMPONENT_PRIOR.values())))]
    if component == "O":
        centre, sd = np.full(3, 4.0), 0.8
    else:
        centre, sd = np.array(PROTOTYPES[component]), LATENT_SD * (0.5 if steer else 1.0)
    return np.clip(centre + rng.normal(0.0, sd, size=3), 1.3, 6.7), component


def _draw_votes(rng: np.random.Generator, latent: np.ndarray, component: str, workers: list[Worker],
                steer: str | None) -> list[Vote]:
    """5-8 annotators (an even number for steered X clips); redrawn until a steered clip agrees."""
    for _ in range(1000):
        n = int(rng.choice([6, 8])) if steer == "X" else int(rng.integers(5, 9))
        chosen = rng.choice(len(workers), n, replace=False)
        votes = [vote(rng, workers[w], latent, component) for w in chosen]
        if steer is None or consensus_of(votes).emotion == steer:
            return votes
    raise RuntimeError(f"could not steer a synthetic clip to class {steer}")  # a generator bug


def _draw_duration(rng: np.random.Generator, long: bool) -> float:
    """Speech-like: log-normal around 3.2 s, clipped to 1.5-6 s; a long clip is 8-11 s."""
    if long:
        return float(rng.uniform(8.0, 11.0))
    return float(np.clip(rng.lognormal(np.log(3.2), 0.4), 1.5, 6.0))


def _write_csv(path: Path, header: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
    with path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)
