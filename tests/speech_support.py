"""Speech for measuring transcripts (tests and bench/ai.py): text normalisation, word error rate,
and a set of clips spoken by espeak-ng in several voices, speeds, noise levels and codecs.

Not product code: damfleet only transcribes; judging a transcript against what was said
is the business of the tests and the benchmark, which share these helpers so both score
the same way.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "CLIPS",
    "LONG_CLIP_SECONDS",
    "SpeechClip",
    "make_clip",
    "make_long_clip",
    "normalize_text",
    "word_error_rate",
]

# ---- normalisation ------------------------------------------------------------------------

_UNITS = {w: i for i, w in enumerate(
    ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen"]
)}
_TENS = {w: 10 * i for i, w in enumerate(["twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"], start=2)}
_SCALES = {"hundred": 100, "thousand": 1000, "million": 1_000_000}
#: British spellings whisper writes the American way (and a few it is inconsistent about).
_SPELLING = {
    "harbour": "harbor", "harbours": "harbors", "colour": "color", "colours": "colors", "centre": "center",
    "catalogue": "catalog", "catalogued": "cataloged", "neighbour": "neighbor", "neighbours": "neighbors",
    "favourite": "favorite", "theatre": "theater", "metres": "meters", "metre": "meter", "kilometres": "kilometers", "grey": "gray",
    "travelled": "traveled", "digitise": "digitize", "digitised": "digitized", "organised": "organized",
    "programme": "program", "labour": "labor", "honour": "honor", "realise": "realize", "okay": "ok",
}


def _numbers_to_digits(words: list[str]) -> list[str]:
    """Spelled-out numbers become digits ("forty thousand" -> "40000", "nineteen ninety nine" -> "1999")."""
    out: list[str] = []
    i = 0
    while i < len(words):
        word = words[i]
        if word not in _UNITS and word not in _TENS:
            out.append(word)
            i += 1
            continue
        groups: list[str] = []   # adjacent two-digit groups read as one number: "nineteen ninety nine"
        total = current = 0
        last = ""
        while i < len(words):
            word = words[i]
            if word in _UNITS and last in ("", "tens", "scale") and not (last == "tens" and _UNITS[word] >= 10):
                current += _UNITS[word]
                last = "unit"
            elif word in _TENS and last in ("", "scale"):
                current += _TENS[word]
                last = "tens"
            elif word in _SCALES and last in ("unit", "tens"):
                if _SCALES[word] == 100:
                    current *= 100
                else:
                    total += current * _SCALES[word]
                    current = 0
                last = "scale"
            elif word == "and" and last == "scale" and i + 1 < len(words) and (
                    words[i + 1] in _UNITS or words[i + 1] in _TENS):
                pass
            elif (word in _UNITS or word in _TENS) and last in ("unit", "tens"):
                groups.append(str(total + current))  # a new group starts: "nineteen | ninety nine"
                total = current = 0
                last = ""
                continue
            else:
                break
            i += 1
        groups.append(str(total + current))
        out.append("".join(groups) if all(len(g) == 2 for g in groups[:-1]) else " ".join(groups))
    return out


def normalize_text(text: str) -> list[str]:
    """Words compared case-, punctuation-, number- and spelling-blind."""
    text = text.lower().replace("’", "'").replace("%", " percent").replace("&", " and ")
    text = re.sub(r"(?<=\d),(?=\d{3})", "", text)          # 40,000 -> 40000
    text = re.sub(r"(?<=\d)\.(?=\d)", " point ", text)
    text = re.sub(r"[.,;:!?]+(\s|$)", " | ", text)            # a sentence mark ends a spoken number
    text = re.sub(r"[^a-z0-9'| ]+", " ", text)
    words = [w.strip("'") for w in text.split()]
    words = [_SPELLING.get(w, w) for w in words if w]
    return [w for w in " ".join(_numbers_to_digits(words)).split() if w != "|"]


def word_error_rate(reference: str, hypothesis: str) -> float:
    """(substitutions + deletions + insertions) / reference words, after :func:`normalize_text`."""
    ref, hyp = normalize_text(reference), normalize_text(hypothesis)
    if not ref:
        return 0.0 if not hyp else 1.0
    previous = list(range(len(hyp) + 1))
    for i, ref_word in enumerate(ref, start=1):
        current = [i] + [0] * len(hyp)
        for j, hyp_word in enumerate(hyp, start=1):
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ref_word != hyp_word))
        previous = current
    return previous[-1] / len(ref)


# ---- the generated speech set ------------------------------------------------------------


@dataclass(frozen=True)
class SpeechClip:
    """One generated clip: what is said, by which espeak-ng voice, how fast, how degraded."""

    name: str
    text: str
    voice: str = "en-us"
    wpm: int = 160
    noise: float = 0.0        # pink-noise amplitude mixed in (0: clean)
    codec: str = ""           # "" (FLAC), "aac" or "opus"


_PASSAGES = (
    ("The archive opened its doors in the spring of 1998, after three years of careful restoration. "
     "Volunteers catalogued every reel of film, each photograph and all 240 recorded interviews. "
     "The mayor cut a blue ribbon while the brass band played on the steps."),
    ("Some tapes had been stored in a damp cellar, and their labels were barely readable. "
     "Engineers cleaned the heads of an old machine before they dared to play them at half speed. "
     "Two of the reels turned out to hold a wedding filmed in colour."),
    ("A fisherman described the winter storms that closed the harbour for six weeks. "
     "His daughter remembered the smell of tar and the sound of gulls above the boats each morning. "
     "She still keeps the brass compass her father carried on every trip."),
    ("Later recordings follow the town through the building of the new bridge, which took 4 years "
     "and cost more than 12 million pounds. Children talk about school trips and the summer fair. "
     "A retired nurse recalls the night the river flooded the lower streets."),
    ("One teacher explains how the library moved into the former post office on the main street. "
     "The collection now holds more than 40,000 items, and it is still growing every month. "
     "Visitors may borrow up to five recordings at a time for two weeks."),
    ("Researchers can search the spoken words of every interview by name and by place. "
     "The next project will digitise the shipping records kept by the harbour master since 1850. "
     "Each ledger lists the ships, their cargo and the names of the crew."),
    ("Anyone with old letters, maps or recordings is invited to bring them to the archive on Saturday. "
     "Staff will scan them while you wait and return the originals the same afternoon. "
     "Coffee and biscuits will be served in the reading room from ten o'clock."),
    ("The weather station on the cliff has measured the wind every hour for 75 years. "
     "On the worst night it recorded gusts of 160 kilometres an hour, and the lighthouse lost its lamp. "
     "The keeper rowed out at dawn with a spare lantern and a box of matches."),
)

#: Voices en-us and en-gb, 130-190 words a minute, some with pink noise, some through AAC or Opus.
CLIPS: tuple[SpeechClip, ...] = (
    SpeechClip("us-130", _PASSAGES[0], "en-us", 130),
    SpeechClip("gb-150", _PASSAGES[1], "en-gb", 150),
    SpeechClip("us-170-pink", _PASSAGES[2], "en-us", 170, noise=0.03),
    SpeechClip("gb-190-aac", _PASSAGES[3], "en-gb", 190, codec="aac"),
    SpeechClip("us-160-opus", _PASSAGES[4], "en-us", 160, codec="opus"),
    SpeechClip("gb-140-pink-opus", _PASSAGES[5], "en-gb", 140, noise=0.03, codec="opus"),
    SpeechClip("us-185-pink-aac", _PASSAGES[6], "en-us", 185, noise=0.02, codec="aac"),
    SpeechClip("gb-175", _PASSAGES[7], "en-gb", 175),
)

LONG_CLIP_SECONDS = 600.0


def _espeak() -> str:
    espeak = shutil.which("espeak-ng")
    if espeak is None:
        raise RuntimeError("espeak-ng is not installed (apt-get install espeak-ng; scripts/bootstrap.sh does it)")
    return espeak


def _ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-hide_banner", "-nostdin", "-v", "error", "-y", *args], check=True, timeout=600)


def make_clip(clip: SpeechClip, folder: Path) -> Path:
    """Speak ``clip`` with espeak-ng, add its noise, encode it with its codec; the file's path."""
    wav = folder / f"{clip.name}.wav"
    subprocess.run([_espeak(), "-v", clip.voice, "-s", str(clip.wpm), "-w", str(wav), clip.text],
                   check=True, timeout=120, stdout=subprocess.DEVNULL)
    suffix, codec = {"": (".flac", ["-c:a", "flac"]), "aac": (".m4a", ["-c:a", "aac", "-b:a", "48k"]),
                     "opus": (".opus", ["-c:a", "libopus", "-b:a", "24k"])}[clip.codec]
    out = folder / f"{clip.name}{suffix}"
    graph = "[0:a]aresample=16000,apad=pad_dur=0.5[s]"
    if clip.noise:
        graph += (f";anoisesrc=c=pink:a={clip.noise}:r=16000[n];"
                  "[s][n]amix=inputs=2:duration=first:normalize=0[s2]")
        label = "[s2]"
    else:
        label = "[s]"
    _ffmpeg("-i", str(wav), "-filter_complex", graph, "-map", label, "-ac", "1", *codec, str(out))
    wav.unlink()
    return out


def make_long_clip(folder: Path, seconds: float = LONG_CLIP_SECONDS) -> tuple[Path, str]:
    """About ``seconds`` of mixed speech: every passage in turn, voices and speeds varying, pauses
    of 1-2 s between, pink noise under a third of them, the whole as Opus; the file and its text."""
    pieces: list[Path] = []
    texts: list[str] = []
    spoken = 0.0
    n = 0
    while spoken < seconds:
        clip = SpeechClip(
            f"long-{n:03d}", _PASSAGES[n % len(_PASSAGES)], ("en-us", "en-gb")[n % 2], 130 + (n * 17) % 61,
            noise=0.02 if n % 3 == 2 else 0.0,
        )
        encoded = make_clip(clip, folder)
        piece = folder / f"long-{n:03d}-speech.wav"     # one PCM format for the concat demuxer
        _ffmpeg("-i", str(encoded), "-ac", "1", "-ar", "16000", "-c:a", "pcm_s16le", str(piece))
        encoded.unlink()
        pause = folder / f"long-{n:03d}-pause.wav"
        _ffmpeg("-f", "lavfi", "-i", "anullsrc=r=16000:cl=mono", "-t", f"{1.0 + (n % 3) * 0.5}",
                "-c:a", "pcm_s16le", str(pause))
        pieces += [piece, pause]
        texts.append(clip.text)
        spoken += _duration(piece) + 1.0 + (n % 3) * 0.5
        n += 1
    listing = folder / "long.txt"
    listing.write_text("".join(f"file '{p.name}'\n" for p in pieces))
    out = folder / "long-mixed.opus"
    _ffmpeg("-f", "concat", "-safe", "0", "-i", str(listing), "-ac", "1", "-ar", "16000", "-c:a", "libopus",
            "-b:a", "24k", str(out))
    for piece in pieces:
        piece.unlink()
    return out, " ".join(texts)


def _duration(path: Path) -> float:
    probe = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", str(path)],
        check=True, timeout=60, capture_output=True, text=True,
    )
    return float(probe.stdout.strip())
