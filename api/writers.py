"""Writers: a job's result document (docs/api.md, "GET /v1/jobs/{id}/result") in the formats the
API surfaces serve. Like openai-whisper's writers, each is one function of the document; the
JSON ones return objects, the others text.

Rules shared by every writer:

* Words come from the segments in document order (segments sorted by start, then channel).
  Whitespace inside a word is collapsed; an empty word is dropped.
* A segment without words (rare) is spread over its span: its text split at spaces, each word
  given a share of the time proportional to its length. Such words have no confidence (an empty
  CSV cell, no `confidence` in Rev's JSON, score 0 for CPqD).
* Times are whole milliseconds internally (the document has 3 decimals), so nothing drifts.
* Labels are "Speaker N"; when the transcript has words from more than one channel, txt and vtt
  add the channel: "Speaker N (channel C)". Rev and CPqD formats keep their own fields.

Captions (`srt`, `vtt`) follow broadcast practice:

* at most MAX_LINE (42) characters a line and two lines a cue; a word longer than a line gets a line of its
  own (it can't be split). Text that fits on one line stays on one line; otherwise the break is
  the one that makes the longer line shortest (ties: the top line shorter);
* at most MAX_CUE_MS (7 s) a cue, first word's start to last word's end, unless one word is longer;
* a new cue at every change of speaker or channel and after every sentence end (a word ending
  in . ? ! … 。 ？ or ！, closing quotes or brackets allowed after it);
* channels interleave by word start time, each keeping its own order;
* cue times are word times, exact to the millisecond, then made safe for players: starts never
  go back, a cue ends at or before the next one starts (end clamped), never before its own
  start, and a zero-length cue is stretched to MIN_CUE_MS only as far as the next cue allows.
* SRT carries no speaker label (as Whisper's SRT; a label would eat into the 42 characters);
  cues still split at speaker changes. WebVTT names the speaker with a voice span, `<v Speaker 0>`, and escapes & < >.
"""
from __future__ import annotations

import csv as _csv
import heapq
import io
import itertools
import re
import sys
from typing import Any, NamedTuple

MAX_LINE = 42  # characters a caption line
MAX_CUE_MS = 7000  # a cue's duration
MIN_CUE_MS = 500  # what a zero-length cue is stretched to, where the next cue leaves room

# A sentence ends with . ? ! or …, possibly inside closing quotes or brackets: "fox." "(right?)"
_SENTENCE_END = re.compile(r"[.?!…。？！][\"'”’»)\]]*$")
# What Rev splits off a word's end. Not every Unicode punctuation: "R&D", "50%" and "dogs'" stay whole.
_TRAILING_PUNCTUATION = ".,;:?!…\"”»)]。、，？！：；"


class Word(NamedTuple):
    channel: int
    speaker: int
    start: int  # ms
    end: int  # ms
    text: str
    confidence: float | None


class Cue(NamedTuple):
    start: int  # ms
    end: int  # ms
    channel: int
    speaker: int
    lines: list[str]


def native_json(result: dict[str, Any]) -> dict[str, Any]:
    """The document as it is."""
    return result


def csv(result: dict[str, Any]) -> str:
    """One row per word, with a header: channel, speaker, start, end, word, confidence.

    RFC 4180: CRLF line ends, fields quoted only when they need it, quotes doubled.
    Times are seconds with 3 decimals."""
    out = io.StringIO()
    writer = _csv.writer(out, lineterminator="\r\n")
    writer.writerow(["channel", "speaker", "start", "end", "word", "confidence"])
    for word in _words(result):
        writer.writerow([word.channel, word.speaker, _seconds(word.start), _seconds(word.end), word.text,
                         "" if word.confidence is None else word.confidence])
    return out.getvalue()


def txt(result: dict[str, Any]) -> str:
    """One line per speaker turn, "Speaker 0: text": consecutive segments of the same speaker and
    channel merge into one turn."""
    multichannel = _multichannel(result)
    return "".join(f"{_label(run[0], multichannel)}: {' '.join(w.text for w in run)}\n" for run in _runs(result))


def srt(result: dict[str, Any]) -> str:
    """SubRip captions (rules in the module docstring); no speaker labels."""
    return "\n".join(f"{n}\n{_timestamp(cue.start, ',')} --> {_timestamp(cue.end, ',')}\n" + "\n".join(cue.lines) + "\n"
                     for n, cue in enumerate(_cues(result), 1))


def vtt(result: dict[str, Any]) -> str:
    """WebVTT captions (rules in the module docstring), each cue in a voice span naming its speaker:
    `<v Speaker 0>`, or `<v Speaker 0 (channel 1)>` when the transcript has several channels."""
    multichannel = _multichannel(result)
    blocks = [f"{_timestamp(cue.start, '.')} --> {_timestamp(cue.end, '.')}\n"
              f"<v {_label(cue, multichannel)}>" + "\n".join(_escape(line) for line in cue.lines) + "\n"
              for cue in _cues(result)]
    return "\n".join(["WEBVTT\n", *blocks])


def rev_transcript(result: dict[str, Any]) -> dict[str, Any]:
    """Rev AI's transcript JSON (application/vnd.rev.transcript.v1.0+json): one monologue per run of
    one speaker; a word's trailing punctuation is a `punct` element of its own, words are separated
    by `{"type": "punct", "value": " "}`, and a monologue ends with its last word or punctuation
    (no trailing space), as Rev's own transcripts. A word that is all punctuation ("...") is one
    `punct` element. `end_ts` is never before `ts`."""
    monologues = []
    for run in _runs(result):
        elements: list[dict[str, Any]] = []
        for word in run:
            if elements:
                elements.append({"type": "punct", "value": " "})
            text, punct = _split_punctuation(word.text)
            if not text:
                elements.append({"type": "punct", "value": punct})
                continue
            element: dict[str, Any] = {"type": "text", "value": text, "ts": word.start / 1000,
                                       "end_ts": max(word.end, word.start) / 1000}
            if word.confidence is not None:
                element["confidence"] = word.confidence
            elements.append(element)
            if punct:
                elements.append({"type": "punct", "value": punct})
        monologues.append({"speaker": run[0].speaker, "elements": elements})
    return {"monologues": monologues}


def rev_text(result: dict[str, Any]) -> str:
    """Rev AI's text/plain transcript: one line per monologue, "Speaker 0    00:00:00    Hello there.",
    four spaces between the fields, the monologue's start time in whole seconds (rounded down)."""
    return "".join(f"Speaker {run[0].speaker}    {_clock(run[0].start)}    {' '.join(w.text for w in run)}\n"
                   for run in _runs(result))


def cpqd_segments(result: dict[str, Any], lm: str = "base") -> list[dict[str, Any]]:
    """CPqD Transcrição de Diálogos v3 segments, one per segment of the document. Scores are 0-100
    integers (a word's confidence × 100, rounded half up; the alternative's score is the mean of
    its words', 0 without words); `lm` names the model. As CPqD does, channels count from 1 and
    speakers are strings counting from "1"."""
    segments = []
    for segment in _segments(result):
        words = _segment_words(segment)
        scores = [_score(w.confidence) for w in words]
        segments.append({
            "channel": segment["channel"] + 1, "speaker": str(segment["speaker"] + 1),
            "start": segment["start"], "end": segment["end"], "status": "RECOGNIZED",
            "alternatives": [{
                "text": " ".join(w.text for w in words),
                "words": [{"text": w.text, "score": score, "start_time": w.start / 1000, "end_time": w.end / 1000}
                          for w, score in zip(words, scores)],
                "score": int(sum(scores) / len(scores) + 0.5) if scores else 0,
                "lm": lm}],
            "task_results": {}})
    return segments


def plain_text(result: dict[str, Any]) -> str:
    """The words alone, in document order, joined by single spaces: no labels, times or line breaks
    (NYT's transcript, DeepAffects' `transcript`)."""
    return " ".join(word.text for word in _words(result))


def deepaffects_transcript(result: dict[str, Any], speakers: bool) -> dict[str, Any]:
    """DeepAffects' transcription response: `transcript` (plain_text), `words` with times in
    seconds, and `confidence`, the mean of the words' (null without any). With `speakers`, each word
    has a `speaker_id` ("0", "1", ...) and the response `num_speakers`; DeepAffects sets both only
    when speaker diarization was asked for."""
    words = _words(result)
    scores = [w.confidence for w in words if w.confidence is not None]
    response: dict[str, Any] = {
        "transcript": plain_text(result),
        "confidence": round(sum(scores) / len(scores), 3) if scores else None,
        "words": [{"word": w.text, "start": w.start / 1000, "end": w.end / 1000, "confidence": w.confidence,
                   **({"speaker_id": str(w.speaker)} if speakers else {})} for w in words]}
    if speakers:
        response["num_speakers"] = result["speakers"]
    return response


def deepaffects_diarization(result: dict[str, Any]) -> dict[str, Any]:
    """DeepAffects' diarization response: `num_speakers`, and `segments`, one per segment of the
    document, each with its `speaker_id` ("0", "1", ...) and times in seconds."""
    return {"num_speakers": result["speakers"],
            "segments": [{"speaker_id": str(s["speaker"]), "start": s["start"], "end": s["end"]}
                         for s in _segments(result)]}


# -- words ---------------------------------------------------------------------------------------

# The native formats: name -> (writer, media type). The native API and NYT's facade serve them.
FORMATS = {
    "json": (native_json, "application/json"),
    "csv": (csv, "text/csv; charset=utf-8"),
    "srt": (srt, "application/x-subrip; charset=utf-8"),
    "vtt": (vtt, "text/vtt; charset=utf-8"),
    "txt": (txt, "text/plain; charset=utf-8"),
}


def _segments(result: dict[str, Any]) -> list[dict[str, Any]]:
    return result.get("segments") or []  # a language_identification result has none


def _ms(seconds: float) -> int:
    return round(seconds * 1000)


def _segment_words(segment: dict[str, Any]) -> list[Word]:
    channel, speaker = segment["channel"], segment["speaker"]
    if segment.get("words"):
        words = (Word(channel, speaker, _ms(w["start"]), _ms(w["end"]), " ".join(str(w["word"]).split()),
                      w.get("confidence")) for w in segment["words"])
        return [w for w in words if w.text]
    # No word times: share the segment's span among its words by length, so that captions still
    # get sensible times.
    tokens = str(segment.get("text") or "").split()
    start, end = _ms(segment["start"]), _ms(segment["end"])
    span, total = max(end - start, 0), sum(map(len, tokens))
    bounds = [start + span * done // total for done in itertools.accumulate(map(len, tokens), initial=0)] if total else []
    return [Word(channel, speaker, a, b, token, None) for token, a, b in zip(tokens, bounds, bounds[1:])]


def _words(result: dict[str, Any]) -> list[Word]:
    return [word for segment in _segments(result) for word in _segment_words(segment)]


def _runs(result: dict[str, Any]) -> list[list[Word]]:
    """The words in runs of one speaker on one channel, in document order."""
    return [list(run) for _, run in itertools.groupby(_words(result), key=lambda w: (w.channel, w.speaker))]


def _multichannel(result: dict[str, Any]) -> bool:
    return len({segment["channel"] for segment in _segments(result)}) > 1


def _label(who: Word | Cue, multichannel: bool) -> str:
    return f"Speaker {who.speaker} (channel {who.channel})" if multichannel else f"Speaker {who.speaker}"


def _split_punctuation(word: str) -> tuple[str, str]:
    """"fox." -> ("fox", "."); "Hello?!" -> ("Hello", "?!"); "..." -> ("", "...")."""
    text = word.rstrip(_TRAILING_PUNCTUATION)
    return text, word[len(text):]


def _score(confidence: float | None) -> int:
    return 0 if confidence is None else min(100, max(0, int(confidence * 100 + 0.5)))


# -- captions ------------------------------------------------------------------------------------

def _cues(result: dict[str, Any]) -> list[Cue]:
    channels: dict[int, list[Word]] = {}
    for segment in _segments(result):
        channels.setdefault(segment["channel"], []).extend(_segment_words(segment))
    # Channels are transcribed on their own and overlap in time: interleave them by word start;
    # a merge (not a sort) keeps each channel's own order even where its word times don't.
    words = heapq.merge(*(channels[c] for c in sorted(channels)), key=lambda w: w.start)
    groups: list[list[Word]] = []
    for word in words:
        group = groups[-1] if groups else []
        if (not group or (word.channel, word.speaker) != (group[-1].channel, group[-1].speaker)
                or _SENTENCE_END.search(group[-1].text)
                or max(word.end, *(w.end for w in group)) - group[0].start > MAX_CUE_MS
                or _layout([*(w.text for w in group), word.text]) is None):
            groups.append([word])
        else:
            group.append(word)
    # Players want cues in order and apart: starts never go back, ends are clamped to the next start.
    starts = list(itertools.accumulate((group[0].start for group in groups), max))
    cues = []
    for i, group in enumerate(groups):
        start, limit = starts[i], starts[i + 1] if i + 1 < len(starts) else sys.maxsize
        end = max(start, min(max(w.end for w in group), limit))
        if end == start:  # invisible: stretch it, as far as the next cue leaves room
            end = min(start + MIN_CUE_MS, limit)
        lines = _layout([w.text for w in group])
        assert lines is not None  # every group was built to fit
        cues.append(Cue(start, end, group[0].channel, group[0].speaker, lines))
    return cues


def _layout(words: list[str]) -> list[str] | None:
    """The words as the lines of one cue, or None when they need more than two lines."""
    one = " ".join(words)
    if len(one) <= MAX_LINE or len(words) == 1:
        return [one]
    best: tuple[str, str] | None = None
    for k in range(1, len(words)):
        top, bottom = " ".join(words[:k]), " ".join(words[k:])
        # A line may be longer than MAX_LINE only when it is one word.
        if (len(top) > MAX_LINE and k > 1) or (len(bottom) > MAX_LINE and len(words) - k > 1):
            continue
        if best is None or _balance(top, bottom) < _balance(*best):
            best = (top, bottom)
    return list(best) if best else None


def _balance(top: str, bottom: str) -> tuple[int, bool]:
    # The shorter the longer line the better; on a tie, the shorter line on top (subtitlers'
    # bottom-heavy shape: it hides less of the picture).
    return max(len(top), len(bottom)), len(top) > len(bottom)


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _timestamp(ms: int, separator: str) -> str:
    return f"{_clock(ms)}{separator}{ms % 1000:03d}"


def _clock(ms: int) -> str:
    minutes, seconds = divmod(ms // 1000, 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours:02d}:{minutes:02d}:{seconds:02d}"


def _seconds(ms: int) -> str:
    whole, millis = divmod(ms, 1000)
    return f"{whole}.{millis:03d}"

