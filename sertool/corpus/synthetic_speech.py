"""Render one synthetic clip's audio and transcript from its latent emotion.

Used by `sertool.corpus.synthetic`; split out so the signal rules (what a model can learn from each
modality) sit in one short file. The cues, by design:

* **arousal -> audio**: loudness (+2.5 dB per arousal unit), speaking rate (2.2 to 5.5 syllables/s)
  and pitch (+9% per unit, wider pitch movement). A model that hears energy and tempo hears arousal.
* **dominance -> audio**: spectral tilt (harmonics decay as exp(-frequency / tilt_hz), tilt_hz 240 Hz
  at dominance 1 to 670 Hz at 7: a brighter, "pressed" voice) and lower pitch (-3.5% per unit).
* **valence -> text**: each sentiment slot of a sentence template is filled from a positive, negative
  or neutral word list with probabilities that move with valence.
* **class -> text, a little**: with probability 0.4 a short class-typical phrase ("that makes me
  furious") is appended, so text alone also separates e.g. Angry from Fear, which share valence.

Everything else (speaker voice, recording gain, background noise, pauses, word choice, syllable timing)
is nuisance variation so that learning is real, not a lookup.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..audio import SAMPLE_RATE


# --- transcript vocabulary --------------------------------------------------------------------------
# Sentiment-bearing words. Tests and analyses count these lists, so keep them disjoint from each other,
# from NOUNS and from the class cue phrases.
POSITIVE_ADJ = ("great", "wonderful", "lovely", "amazing", "brilliant", "fantastic", "beautiful",
                "perfect", "pleasant", "delightful")
NEGATIVE_ADJ = ("terrible", "awful", "horrible", "dreadful", "miserable", "painful", "ugly",
                "hopeless", "disappointing", "nasty")
NEUTRAL_ADJ = ("ordinary", "typical", "normal", "usual", "regular", "standard", "average", "routine",
               "plain", "common")
POSITIVE_FEEL = ("happy", "glad", "grateful", "proud", "hopeful", "cheerful", "relieved", "thankful")
NEGATIVE_FEEL = ("sad", "upset", "hurt", "bitter", "lonely", "worried", "gloomy", "unhappy")
NEUTRAL_FEEL = ("busy", "ready", "informed", "aware", "present", "seated", "awake", "around")
POSITIVE_WORDS = frozenset(POSITIVE_ADJ + POSITIVE_FEEL)
NEGATIVE_WORDS = frozenset(NEGATIVE_ADJ + NEGATIVE_FEEL)
NOUNS = ("meeting", "weekend", "show", "game", "trip", "dinner", "interview", "project", "episode",
         "movie", "season", "call", "class", "drive")
# {n} noun, {a} adjective slot, {f} feeling slot; only {a} and {f} carry sentiment.
TEMPLATES = (
    "the {n} was {a}",
    "I felt {f} after the {n}",
    "honestly the whole {n} was {a} and {a}",
    "we talked about the {n} and it seemed {a}",
    "my friend said the {n} was {a}, so I was {f}",
    "it is a {a} {n} if you ask me",
    "after that {n} everyone was {f}",
    "you know, the {n} felt {a} to me",
)
# Class-typical phrases (class code -> phrases); Neutral has none on purpose.
CLASS_CUES = {
    "A": ("that makes me furious", "I am so mad about it"),
    "S": ("I really miss those days", "I could cry"),
    "H": ("I love it", "we laughed the whole time"),
    "U": ("I did not see that coming", "wait, really"),
    "F": ("I was scared to death", "that frightens me"),
    "D": ("that is just gross", "it made me sick"),
    "C": ("they have no clue whatsoever", "what a joke"),
}
CUE_PROBABILITY = 0.4


def sentiment_probabilities(valence: float) -> tuple[float, float, float]:
    """(p_positive, p_negative, p_neutral) for one sentiment slot at this valence (1-7).

    At valence 4 a slot is positive or negative with 0.21 each; at 7 it is positive with 0.85, at 1
    negative with 0.85; at 3 and 5 the opposite polarity is already rare (0.03). Logistic, so the
    count of positive words is monotone in valence.
    """
    p_pos = 0.85 / (1.0 + np.exp(-2.2 * (valence - 4.5)))
    p_neg = 0.85 / (1.0 + np.exp(2.2 * (valence - 3.5)))
    return float(p_pos), float(p_neg), float(1.0 - p_pos - p_neg)


def render_transcript(rng: np.random.Generator, valence: float, region_class: str,
                      duration_s: float) -> str:
    """One line of text: longer clips say more (one sentence per ~2.2 s, at most 4)."""
    probs = sentiment_probabilities(valence)
    n_sentences = min(4, 1 + int(duration_s // 2.2))
    sentences = []
    for _ in range(n_sentences):
        template = TEMPLATES[rng.integers(len(TEMPLATES))]
        words = {"n": NOUNS, "a": (POSITIVE_ADJ, NEGATIVE_ADJ, NEUTRAL_ADJ),
                 "f": (POSITIVE_FEEL, NEGATIVE_FEEL, NEUTRAL_FEEL)}
        out, rest = [], template
        while "{" in rest:
            head, _, tail = rest.partition("{")
            slot, _, rest = tail.partition("}")
            out.append(head)
            if slot == "n":
                out.append(NOUNS[rng.integers(len(NOUNS))])
            else:
                pool = words[slot][rng.choice(3, p=probs)]
                out.append(pool[rng.integers(len(pool))])
        out.append(rest)
        sentences.append("".join(out))
    cues = CLASS_CUES.get(region_class, ())
    if cues and rng.random() < CUE_PROBABILITY:
        sentences.append(cues[rng.integers(len(cues))])
    return " ".join(s[0].upper() + s[1:] + "." for s in sentences)


# --- audio ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Voice:
    """A speaker's fixed traits: what stays the same across their clips (nuisance for emotion)."""

    f0_hz: float  # base pitch at arousal 4, dominance 4
    tilt: float  # spectral-tilt offset, in octaves of the tilt frequency
    gain_db: float  # level offset (how loud this speaker talks / is recorded)
    rate: float  # speaking-rate factor


def random_voice(rng: np.random.Generator, gender: str) -> Voice:
    """Male voices around 120 Hz, female around 210 Hz; Unknown picks either."""
    if gender == "Unknown":
        gender = ("Male", "Female")[rng.integers(2)]
    f0 = rng.uniform(100, 140) if gender == "Male" else rng.uniform(180, 240)
    return Voice(f0_hz=float(f0), tilt=float(rng.uniform(-0.1, 0.1)),
                 gain_db=float(rng.uniform(-1.5, 1.5)), rate=float(rng.uniform(0.9, 1.1)))


def render_speech(rng: np.random.Generator, duration_s: float, arousal: float, dominance: float,
                  voice: Voice) -> np.ndarray:
    """A speech-like signal: voiced syllables (harmonic source with a pitch contour and an amplitude
    envelope) each preceded by a short noise burst (consonant), over background noise. float32 [n].

    The harmonic source is the closed form of sum_k r^k sin(k*phase) (harmonic k has amplitude r^k),
    so the whole clip costs two trig calls per sample; r = exp(-f0 / tilt_hz) sets the tilt.
    """
    sr = SAMPLE_RATE
    n = int(round(duration_s * sr))
    t = np.arange(n) / sr
    lead, tail = rng.uniform(0.08, 0.25, size=2)
    speech_end = duration_s - tail

    # Syllable timing: consonant (35 ms) + voiced nucleus; rate rises with arousal; some pauses.
    rate = (2.2 + 0.55 * (arousal - 1.0)) * voice.rate  # syllables per second
    k = int(np.ceil(duration_s * rate * 1.5)) + 4
    period = rng.uniform(0.7, 1.3, size=k) / rate
    pauses = np.where(rng.random(k) < 0.12, rng.uniform(0.15, 0.4, size=k), 0.0)
    starts = lead + np.concatenate([[0.0], np.cumsum(period + pauses)[:-1]])
    consonant = 0.035
    voiced = np.maximum(period * 0.8 - consonant, 0.05)
    keep = starts + consonant + voiced <= speech_end
    keep[0] = True  # at least one syllable even in the shortest clip
    starts, voiced, period = starts[keep], voiced[keep], period[keep]
    m = len(starts)

    # Per-syllable level and pitch.
    level_db = 2.5 * (arousal - 4.0) + voice.gain_db + rng.normal(0.0, 1.0, size=m)
    amp = 0.05 * 10.0 ** (level_db / 20.0)
    f0 = voice.f0_hz * 2.0 ** (0.13 * (arousal - 4.0) - 0.05 * (dominance - 4.0))
    f0_syl = f0 * 2.0 ** rng.normal(0.0, 0.08, size=m)
    slope = rng.uniform(-1.0, 1.0, size=m) * (0.08 + 0.04 * (arousal - 1.0))
    # Spectral tilt: harmonics decay as exp(-frequency / tilt_hz), so the slope is set in Hz (by
    # dominance), not in harmonic numbers, and a voice's pitch does not change it.
    tilt_hz = 400.0 * 2.0 ** (0.25 * (dominance - 4.0) + voice.tilt + rng.normal(0.0, 0.05, size=m))

    # Map samples to syllables (vectorised): offset of each sample from its syllable's start.
    idx = np.searchsorted(starts, t, side="right") - 1
    before = idx < 0
    idx = np.maximum(idx, 0)
    offset = t - starts[idx]
    in_cons = ~before & (offset < consonant)
    local = (offset - consonant) / voiced[idx]  # 0..1 across the voiced nucleus
    in_voiced = ~before & (local >= 0.0) & (local < 1.0)
    local_c = np.clip(local, 0.0, 1.0)

    declination = 1.0 - 0.1 * t / duration_s
    f0_t = f0_syl[idx] * (1.0 + slope[idx] * (local_c - 0.5)) * declination
    phase = 2.0 * np.pi * np.cumsum(f0_t) / sr
    r = np.clip(np.exp(-f0_t / tilt_hz[idx]), 0.2, 0.92)  # per-harmonic decay ratio
    # sum_k r^k sin(k x) = r sin x / (1 - 2 r cos x + r^2); scaled to unit RMS.
    source = (np.sqrt(2.0 * (1.0 - r * r)) * np.sin(phase)) / (1.0 - 2.0 * r * np.cos(phase) + r * r)
    envelope = np.where(in_voiced, np.sin(np.pi * local_c) ** 2, 0.0) * amp[idx]

    noise = rng.standard_normal(n)
    burst = np.where(in_cons, 0.3 * np.exp(-offset / 0.012), 0.0) * amp[idx]
    floor = 10.0 ** (rng.uniform(-56.0, -44.0) / 20.0)  # background noise level (20-35 dB SNR)
    mic = 10.0 ** (rng.normal(0.0, 1.5) / 20.0)  # recording gain jitter
    y = mic * (source * envelope + noise * burst) + floor * rng.standard_normal(n)
    return np.clip(y, -1.0, 1.0).astype(np.float32)
