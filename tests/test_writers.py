"""The transcript writers: golden files for hand-written results, and properties of the captions
and of Rev's JSON for random word timings.

Regenerate the golden files (then read them!) with DIARIST_UPDATE_GOLDEN=1."""
from __future__ import annotations

import csv as csvlib
import io
import json
import os
import re
import string
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from diarist.api import writers

pytestmark = pytest.mark.unit

GOLDEN = Path(__file__).parent / "golden" / "writers"


def seg(channel: int, speaker: int, words: list[tuple[str, float, float, float]]) -> dict[str, Any]:
    """A segment as streams/pipeline.py makes them: its span and text are its words'."""
    return {"channel": channel, "speaker": speaker, "start": words[0][1], "end": words[-1][2],
            "text": " ".join(w[0] for w in words),
            "words": [{"word": t, "start": s, "end": e, "confidence": c} for t, s, e, c in words]}


LONG_WORD = "pneumonoultramicroscopicsilicovolcanoconiosis-free"
assert len(LONG_WORD) == 50

# Two speakers on one channel: a long sentence broken over two lines and split at 7 s, speaker 1
# starting before speaker 0 has finished (clamped), a 50-character word on a line of its own,
# characters WebVTT escapes, a zero-length word, a segment without words.
DIALOGUE = {
    "job_id": "golden-dialogue", "task": "TRANSCRIPTION", "language": "en", "language_probability": 0.97,
    "language_confidences": [{"language": "en", "confidence": 0.97}, {"language": "de", "confidence": 0.01}],
    "duration": 24.5, "speakers": 2,
    "channels": [{"channel": 0, "duration": 24.5, "speech": 21.9, "silence": 2.6, "redundant_of": None}],
    "segments": [
        seg(0, 0, [("Hello,", 0.0, 0.48, 0.98), ("everyone.", 0.56, 1.2, 0.95)]),
        seg(0, 0, [("Today", 1.5, 1.82, 0.97), ("we", 1.82, 1.94, 0.99), ("are", 1.94, 2.1, 0.99),
                   ("going", 2.1, 2.34, 0.96), ("to", 2.34, 2.42, 0.99), ("talk", 2.42, 2.7, 0.98),
                   ("about", 2.7, 2.96, 0.97), ("the", 2.96, 3.06, 0.99), ("remarkable", 3.06, 3.6, 0.88),
                   ("history", 3.6, 4.02, 0.93), ("of", 4.02, 4.12, 0.99), ("subtitles,", 4.12, 4.86, 0.81),
                   ("and", 5.3, 5.46, 0.9), ("why", 5.46, 5.7, 0.92)]),
        seg(0, 0, [("broadcasters", 5.7, 6.5, 0.86), ("care", 6.5, 6.8, 0.94), ("so", 7.4, 7.6, 0.9),
                   ("much", 8.1, 8.5, 0.95), ("about", 9.3, 9.7, 0.9), ("reading", 10.6, 11.1, 0.89),
                   ("speed", 11.9, 12.4, 0.93), ("on", 13.1, 13.3, 0.99), ("screen.", 13.3, 14.1, 0.9)]),
        seg(0, 1, [("Really?", 13.9, 14.4, 0.62), ("That", 14.6, 14.8, 0.95), ("sounds", 14.8, 15.1, 0.97),
                   ("fascinating!", 15.1, 15.9, 0.91)]),
        seg(0, 1, [("We", 16.5, 16.62, 0.99), ("promise", 16.62, 17.0, 0.96), (LONG_WORD, 17.0, 19.4, 0.42),
                   ("studios", 19.4, 19.9, 0.9), ("&", 19.9, 20.0, 0.5), ("R&D", 20.0, 20.5, 0.3),
                   ("<labs>.", 20.5, 20.9, 0.2)]),
        seg(0, 0, [("Okay.", 21.0, 21.0, 0.7)]),
        {"channel": 0, "speaker": 0, "start": 21.2, "end": 22.4, "text": "Thank you, \"all\".", "words": []},
        seg(0, 0, [("Bye.", 22.6, 22.9, 0.99)]),
    ]}

# A call recorded on two channels, the two talking over each other.
STEREO = {
    "job_id": "golden-stereo", "task": "TRANSCRIPTION", "language": "en", "language_probability": 0.99,
    "language_confidences": [{"language": "en", "confidence": 0.99}], "duration": 6.5, "speakers": 2,
    "channels": [{"channel": 0, "duration": 6.5, "speech": 4.0, "silence": 2.5, "redundant_of": None},
                 {"channel": 1, "duration": 6.5, "speech": 3.4, "silence": 3.1, "redundant_of": None}],
    "segments": [
        seg(0, 0, [("Thanks", 0.0, 0.3, 0.97), ("for", 0.3, 0.42, 0.99), ("calling,", 0.42, 0.9, 0.95),
                   ("this", 1.0, 1.2, 0.99), ("is", 1.2, 1.3, 0.99), ("support.", 1.3, 2.1, 0.93)]),
        seg(1, 1, [("Hi!", 1.8, 2.2, 0.88), ("My", 2.5, 2.62, 0.99), ("router", 2.62, 3.0, 0.96),
                   ("keeps", 3.0, 3.3, 0.97), ("dropping", 3.3, 3.8, 0.95), ("the", 3.8, 3.9, 0.99),
                   ("connection.", 3.9, 4.6, 0.94)]),
        seg(0, 0, [("Okay,", 4.4, 4.8, 0.91), ("let", 4.8, 5.0, 0.98), ("me", 5.0, 5.1, 0.99),
                   ("check.", 5.1, 5.6, 0.97)]),
        seg(1, 1, [("Thanks.", 5.8, 6.2, 0.9)]),
    ]}

WRITERS: dict[str, Callable[[dict], Any]] = {
    "json": writers.native_json, "csv": writers.csv, "txt": writers.txt, "srt": writers.srt, "vtt": writers.vtt,
    "rev.json": writers.rev_transcript, "rev.txt": writers.rev_text, "cpqd.json": writers.cpqd_segments}


def as_text(output: Any) -> str:
    return output if isinstance(output, str) else json.dumps(output, indent=2, ensure_ascii=False) + "\n"


@pytest.mark.parametrize("name,document", [("dialogue", DIALOGUE), ("stereo", STEREO)])
@pytest.mark.parametrize("extension", list(WRITERS))
def test_writers_match_the_golden_files(name, document, extension):
    path = GOLDEN / f"{name}.{extension}"
    output = as_text(WRITERS[extension](document))
    if os.environ.get("DIARIST_UPDATE_GOLDEN"):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(output.encode())  # bytes: the CSV keeps its CRLF
    assert output == path.read_bytes().decode()


def test_a_result_without_segments_gives_empty_outputs():
    result = {**DIALOGUE, "task": "LANGUAGE_IDENTIFICATION", "segments": []}
    assert writers.csv(result) == "channel,speaker,start,end,word,confidence\r\n"
    assert writers.txt(result) == writers.srt(result) == writers.rev_text(result) == ""
    assert writers.vtt(result) == "WEBVTT\n"
    assert writers.rev_transcript(result) == {"monologues": []}
    assert writers.cpqd_segments(result) == []


def test_csv_quotes_as_rfc_4180():
    result = {"segments": [seg(0, 0, [('"Hi,"', 0.0, 0.5, 0.5), ("there", 0.5, 1.0, 0.25)])]}
    text = writers.csv(result)
    assert text.splitlines(keepends=True)[1] == '0,0,0.000,0.500,"""Hi,""",0.5\r\n'
    rows = list(csvlib.reader(io.StringIO(text, newline="")))
    assert rows[1][4] == '"Hi,"' and len(rows) == 3


def test_cpqd_scores_and_model_name():
    result = {"segments": [seg(1, 3, [("a", 0.0, 0.5, 0.505), ("b", 0.5, 1.0, 0.9), ("c", 1.0, 1.5, 1.0)])]}
    [segment] = writers.cpqd_segments(result, lm="tiny.en")
    alternative = segment["alternatives"][0]
    assert [w["score"] for w in alternative["words"]] == [51, 90, 100]
    assert alternative["score"] == 80 and alternative["lm"] == "tiny.en" and alternative["text"] == "a b c"
    # CPqD counts channels and speakers from 1, and speakers are strings
    assert (segment["channel"], segment["speaker"], segment["status"]) == (2, "4", "RECOGNIZED")


def test_rev_text_follows_revs_plain_text_layout():
    line = writers.rev_text(DIALOGUE).splitlines()[1]
    assert re.fullmatch(r"Speaker 1 {4}00:00:13 {4}Really\? That sounds fascinating! We promise \S+ .*", line)


# -- properties ----------------------------------------------------------------------------------

class Cue(NamedTuple):
    start: int  # ms
    end: int
    voice: str | None
    lines: list[str]


_TIME = r"(\d\d):(\d\d):(\d\d){}(\d{{3}})"


def _ms(match: re.Match, first: int) -> int:
    h, m, s, ms = (int(match[first + i]) for i in range(4))
    return ((h * 60 + m) * 60 + s) * 1000 + ms


def parse_captions(text: str, kind: str) -> list[Cue]:
    """A strict little SRT/WebVTT reader: numbered (SRT) blocks, a timing line, text lines."""
    separator = "," if kind == "srt" else r"\."
    timing = re.compile(f"{_TIME.format(separator)} --> {_TIME.format(separator)}")
    if kind == "vtt":
        assert text.startswith("WEBVTT\n")
        text = text[len("WEBVTT\n"):]
    cues = []
    for n, block in enumerate(filter(None, text.split("\n\n")), 1):
        lines = block.strip("\n").split("\n")
        if kind == "srt":
            assert lines.pop(0) == str(n)
        match = timing.fullmatch(lines.pop(0))
        assert match and lines and all(lines)
        voice = None
        if kind == "vtt":
            tag = re.match(r"<v ([^>]+)>", lines[0])
            assert tag, "every cue names its speaker"
            voice, lines[0] = tag[1], lines[0][tag.end():]
            assert not any("<" in line or ">" in line for line in lines)
            lines = [line.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&") for line in lines]
        cues.append(Cue(_ms(match, 1), _ms(match, 5), voice, lines))
    return cues


class W(NamedTuple):
    channel: int
    speaker: int
    start: int  # ms
    end: int
    text: str


WORD_TEXT = st.builds(str.__add__, st.text(string.ascii_letters + "'-&<>.,", min_size=1, max_size=49),
                      st.sampled_from(["", "", "", "", "", "", ",", ".", "?", "!"]))


@st.composite
def channel_words(draw, channel: int, speakers: list[int]) -> list[W]:
    words, start, speaker = [], 0, draw(st.sampled_from(speakers))
    for _ in range(draw(st.integers(1, 30))):
        start += draw(st.sampled_from([0, 10, 80, 300, 700, 1500, 4000]) | st.integers(0, 3000))
        duration = draw(st.sampled_from([0, 0, 120, 400, 2000]) | st.integers(0, 9000))  # overlaps, zero, > 7 s
        if draw(st.integers(0, 4)) == 0:  # speakers take turns of a few words
            speaker = draw(st.sampled_from(speakers))
        words.append(W(channel, speaker, start, start + duration, draw(WORD_TEXT)))
    return words


def segments_of(words: list[W], cuts: list[bool]) -> list[dict]:
    """Segments as the pipeline cuts them: at every speaker change, and here and there."""
    segments: list[list[W]] = []
    for word, cut in zip(words, cuts):
        if not segments or cut or segments[-1][-1].speaker != word.speaker:
            segments.append([])
        segments[-1].append(word)
    return [seg(s[0].channel, s[0].speaker, [(w.text, w.start / 1000, w.end / 1000, 0.5) for w in s])
            for s in segments]


@st.composite
def documents(draw, channels: int = 1) -> tuple[dict, list[W]]:
    words, segments = [], []
    for c in range(channels):
        these = draw(channel_words(c, [2 * c, 2 * c + 1, 2 * c + 2] if channels == 1 else [2 * c, 2 * c + 1]))
        words += these
        segments += segments_of(these, draw(st.lists(st.booleans(), min_size=len(these), max_size=len(these))))
    segments.sort(key=lambda s: (s["start"], s["channel"]))  # as the pipeline sorts them
    return {"channels": [{"channel": c} for c in range(channels)], "segments": segments}, words


def check_cues(cues: list[Cue], words: list[W]) -> None:
    """The broadcast rules, for cues whose words (in the order written) are `words`."""
    tokens = [token for cue in cues for line in cue.lines for token in line.split(" ")]
    assert tokens == [w.text for w in words], "every word once, in order"
    at = 0
    for i, cue in enumerate(cues):
        count = sum(len(line.split(" ")) for line in cue.lines)
        mine, at = words[at:at + count], at + count
        assert len({(w.channel, w.speaker) for w in mine}) == 1, "a cue has one speaker"
        assert all(not re.search(r"[.?!]$", w.text) for w in mine[:-1]), "a sentence end ends the cue"
        assert cue.start == mine[0].start, "a cue starts with its first word"
        assert cue.end >= cue.start
        if i + 1 < len(cues):
            assert cue.end <= cues[i + 1].start, "cues don't overlap"
        last_end = max(w.end for w in mine)
        assert cue.end <= max(last_end, cue.start + writers.MIN_CUE_MS)
        if last_end > cue.start and (i + 1 == len(cues) or cues[i + 1].start >= last_end):
            assert cue.end == last_end, "cue times are the word times, to the millisecond"
        assert len(cue.lines) <= 2
        assert all(len(line) <= 42 or " " not in line for line in cue.lines)
        assert count == 1 or cue.end - cue.start <= 7000
    assert at == len(words)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents())
def test_captions_keep_the_broadcast_rules(generated):
    document, words = generated
    srt = parse_captions(writers.srt(document), "srt")
    vtt = parse_captions(writers.vtt(document), "vtt")
    assert [c._replace(voice=None) for c in vtt] == srt, "SRT and WebVTT show the same cues"
    check_cues(srt, words)
    at = 0
    for cue in vtt:  # the voice names the speaker of the cue's words
        assert cue.voice == f"Speaker {words[at].speaker}"
        at += sum(len(line.split(" ")) for line in cue.lines)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents(channels=2))
def test_channels_interleave_by_time(generated):
    document, words = generated
    cues = parse_captions(writers.vtt(document), "vtt")
    assert [c._replace(voice=None) for c in cues] == parse_captions(writers.srt(document), "srt")
    labels = [re.fullmatch(r"Speaker (\d+) \(channel (\d+)\)", cue.voice) for cue in cues]
    assert all(labels)
    for channel in (0, 1):  # each channel's cues, read alone, keep every rule but spacing
        mine = [cue for cue, label in zip(cues, labels) if int(label[2]) == channel]
        check_cues_without_neighbours(mine, [w for w in words if w.channel == channel],
                                      [int(label[1]) for label in labels if int(label[2]) == channel])
    for before, after in zip(cues, cues[1:]):
        assert before.start <= after.start and before.end <= after.start


def check_cues_without_neighbours(cues: list[Cue], words: list[W], speakers: list[int]) -> None:
    tokens = [token for cue in cues for line in cue.lines for token in line.split(" ")]
    assert tokens == [w.text for w in words]
    at = 0
    for cue, speaker in zip(cues, speakers):
        count = sum(len(line.split(" ")) for line in cue.lines)
        assert {w.speaker for w in words[at:at + count]} == {speaker}
        at += count
        assert cue.end >= cue.start and len(cue.lines) <= 2
        assert all(len(line) <= 42 or " " not in line for line in cue.lines)
        assert count == 1 or cue.end - cue.start <= 7000


@settings(max_examples=200, deadline=None)
@given(documents())
def test_rev_json_elements_spell_the_words(generated):
    document, words = generated
    monologues = writers.rev_transcript(document)["monologues"]
    runs: list[list[W]] = []
    for word in words:
        if not runs or runs[-1][-1].speaker != word.speaker:
            runs.append([])
        runs[-1].append(word)
    assert [m["speaker"] for m in monologues] == [run[0].speaker for run in runs]
    timed = []
    for monologue, run in zip(monologues, runs):
        elements = monologue["elements"]
        assert "".join(e["value"] for e in elements) == " ".join(w.text for w in run)
        assert all(e["type"] in ("text", "punct") for e in elements)
        assert all(set(e) == ({"type", "value", "ts", "end_ts", "confidence"} if e["type"] == "text"
                              else {"type", "value"}) for e in elements)
        timed += [e for e in elements if e["type"] == "text"]
    assert all(e["ts"] <= e["end_ts"] for e in timed)
    assert all(a["ts"] <= b["ts"] for a, b in zip(timed, timed[1:]))
    assert writers.rev_text(document).count("\n") == len(runs)
