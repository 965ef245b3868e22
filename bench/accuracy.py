"""Accuracy and speed of diarist's pipeline against the bare engines, on generated dialogues.

Makes its own corpus with espeak-ng (dialogues of 2, 3 and 4 voices in English, Spanish, French,
German and Italian, with the exact reference turns), then runs every configuration (engine x
model) in fresh subprocesses, once through `pipeline.run` and once as the engine's own plain
`transcribe` of the whole file, and prints WER, DER, speaker counts, language identification,
real-time factors and peak memory.

    python bench/accuracy.py [--quick] [--control] [--only ENGINE:MODEL ...] [--save results.json]
    python bench/accuracy.py --diarization [--conversations 16] [--seed 0] [--save run.json]
    python bench/accuracy.py --lid [--only faster-whisper:base] [--threads 2] [--save run.json]

--diarization runs diarization alone (decode, VAD, speaker turns; no transcription) on the
evaluation split of the real-voice corpus (bench/corpus.py: clean, telephone, noisy) and on the
espeak dialogues, with today's method (bench/baseline_diarization.py) beside the current one.
--lid runs language identification alone on the real-voice language clips (bench/language_id.py).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import warnings
from collections import defaultdict
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.procstat import cpu_mark, foreign_cpu, proc_kib  # noqa: E402

CONFIGS = [("faster-whisper", "base"), ("faster-whisper", "tiny.en"),
           ("openai-whisper", "base"), ("openai-whisper", "tiny.en")]
MODES = ("diarist", "bare")
# --control: the bare call once more with the decoding settings diarist uses (no no-speech
# gate), to tell what the settings cost from what the pipeline does.
CONTROL = "control"
MULTILINGUAL = {"base": True, "tiny.en": False}
WER_BUDGET = 1.0  # points of WER that going through diarist may add over the bare engine

# Natural lines per language, in three blocks: a 2-voice, a 3-voice and a 4-voice dialogue. No
# digits, so that "two" against "2" never counts as an error. English has longer blocks, as it is
# the only language the English-only models (tiny.en) get.
LINES: dict[str, list[list[str]]] = {
    "en": [
        ["Good morning, did you sleep well last night?",
         "Not really, the neighbours were playing loud music until very late.",
         "That sounds awful. Did you ask them to turn it down?",
         "I knocked on their door, but nobody answered.",
         "Maybe you should write them a short and polite letter.",
         "That is a good idea. I will do it this evening.",
         "By the way, are you still coming to the market on Saturday?",
         "Yes, I need fresh vegetables and some flowers for the garden.",
         "We could have lunch together at the small cafe near the river.",
         "I would love that. Their soup is always delicious.",
         "What are you going to bake for the dinner party next week?",
         "I am thinking about a large cake with chocolate and cherries.",
         "Your cakes are famous. Everybody will be very happy.",
         "Thank you, I hope it turns out as well as last time.",
         "Then let us meet at the bridge around noon on Saturday.",
         "Perfect, I will see you there. Have a nice day at work."],
        ["Welcome everyone, and thank you for joining the project meeting.",
         "Before we start, could someone share the latest schedule?",
         "I can do that. The design is finished and testing begins next week.",
         "Good news. Are there any problems with the new servers?",
         "One machine was running slowly, but we replaced the broken disk.",
         "How long will the testing phase take?",
         "A couple of weeks, if the customers send their feedback on time.",
         "I will call them tomorrow morning and remind them.",
         "Has anybody heard from the marketing team this week?",
         "They asked for a short demonstration of the new features.",
         "We can show them the prototype on Thursday afternoon.",
         "I will book the large meeting room for that.",
         "We also need a volunteer to update the user guide.",
         "I can write the guide, but I will need some screenshots.",
         "I will prepare the screenshots and send them to you by Friday.",
         "Great, that settles it. Let us meet again next Tuesday."],
        ["So, where should we go for our holiday this summer?",
         "I would like to visit the mountains and go hiking every day.",
         "The mountains are beautiful, but I prefer a quiet beach.",
         "Why not both? There are lakes near the mountains where we can swim.",
         "That could work. How would we travel there?",
         "The train is comfortable and much cheaper than flying.",
         "But the train takes almost a whole day to get there.",
         "We could stop in a small town halfway and spend the night.",
         "I like that plan. Who is going to book the hotel?",
         "I will look for a hotel with a view of the lake.",
         "Remember that my sister wants to bring her dog.",
         "Then we need a place that allows pets.",
         "I will ask about that when I call the hotel.",
         "Should we also rent bicycles for the week?",
         "Yes, cycling around the lake sounds wonderful.",
         "Then it is decided. I cannot wait for the summer."],
    ],
    "es": [
        ["Buenos días, ¿qué tal has dormido esta noche?",
         "Muy bien, gracias. Hoy me siento con mucha energía.",
         "Me alegro. ¿Quieres desayunar conmigo en la terraza?",
         "Claro que sí, prepararé café y unas tostadas.",
         "Yo traigo zumo de naranja y un poco de fruta.",
         "Después podemos dar un paseo por el parque.",
         "Buena idea, hace un tiempo estupendo para caminar.",
         "Luego tengo que ir al banco antes de que cierre.",
         "Te acompaño, también necesito comprar unos libros.",
         "La librería de la plaza tiene novelas muy interesantes.",
         "Perfecto, entonces vamos primero al banco y después a la librería.",
         "De acuerdo, salimos en media hora."],
        ["Bienvenidos a la reunión, vamos a hablar del nuevo proyecto.",
         "Gracias. ¿Ya tenemos el presupuesto para este año?",
         "Sí, el director lo aprobó ayer por la tarde.",
         "Excelente noticia. ¿Cuándo empezamos a trabajar?",
         "Podemos empezar el lunes que viene si todos están de acuerdo.",
         "A mí me parece bien, pero necesito ayuda con el diseño.",
         "Yo puedo ayudarte con el diseño durante la primera semana.",
         "Muchas gracias, eso me facilita mucho las cosas.",
         "También hay que llamar a los clientes para confirmar las fechas.",
         "Yo me encargo de las llamadas mañana por la mañana.",
         "Muy bien. Entonces nos vemos el lunes a primera hora.",
         "Hasta el lunes, y que tengáis un buen fin de semana."],
        ["¿Adónde vamos de vacaciones este verano?",
         "A mí me gustaría ir a la playa y nadar todos los días.",
         "Yo prefiero la montaña, allí hace menos calor.",
         "Podríamos alquilar una casa cerca de un lago.",
         "Es una idea estupenda, así todos estamos contentos.",
         "¿Vamos en coche o en tren?",
         "El tren es más cómodo y podemos leer durante el viaje.",
         "Pero con el coche podemos visitar los pueblos de la zona.",
         "Entonces vamos en coche y paramos donde queramos.",
         "Yo busco la casa esta noche en internet.",
         "No olvides que mi hermana quiere venir con su perro.",
         "Vale, buscaré una casa donde acepten animales."],
    ],
    "fr": [
        ["Bonjour, comment vas-tu ce matin ?",
         "Très bien, merci. Et toi, tu as bien dormi ?",
         "Pas vraiment, les voisins ont fait la fête toute la nuit.",
         "C'est pénible. Tu devrais leur parler aujourd'hui.",
         "Oui, je vais frapper à leur porte ce soir.",
         "Au fait, tu viens au marché samedi matin ?",
         "Bien sûr, je dois acheter des légumes et du fromage.",
         "On pourrait déjeuner ensemble au petit café près de la rivière.",
         "Avec plaisir, leur soupe est toujours délicieuse.",
         "Alors rendez-vous devant le pont à midi.",
         "D'accord, à samedi. Bonne journée au travail.",
         "Merci, à toi aussi. À bientôt."],
        ["Bienvenue à tous, merci d'être venus à cette réunion.",
         "Avant de commencer, quelqu'un peut-il présenter le calendrier ?",
         "Oui, la conception est terminée et les essais commencent la semaine prochaine.",
         "Très bonne nouvelle. Y a-t-il des problèmes avec les nouveaux serveurs ?",
         "Une machine était lente, mais nous avons remplacé le disque.",
         "Combien de temps vont durer les essais ?",
         "Quelques semaines, si les clients répondent à temps.",
         "Je vais les appeler demain matin pour le leur rappeler.",
         "Il nous faut aussi quelqu'un pour mettre à jour le guide.",
         "Je peux écrire le guide, mais j'ai besoin de quelques images.",
         "Je prépare les images et je te les envoie vendredi.",
         "Parfait, on se retrouve mardi prochain."],
        ["Alors, où partons-nous en vacances cet été ?",
         "J'aimerais aller à la montagne et faire de la randonnée.",
         "La montagne, c'est beau, mais je préfère une plage tranquille.",
         "Pourquoi pas les deux ? Il y a des lacs près des montagnes.",
         "Bonne idée. Comment allons-nous voyager ?",
         "Le train est confortable et beaucoup moins cher que l'avion.",
         "Mais le voyage en train dure presque toute la journée.",
         "Nous pouvons nous arrêter dans une petite ville pour la nuit.",
         "Qui va réserver l'hôtel ?",
         "Je cherche un hôtel avec une vue sur le lac.",
         "N'oubliez pas que ma sœur veut venir avec son chien.",
         "Alors il faut un hôtel qui accepte les animaux."],
    ],
    "de": [
        ["Guten Morgen, hast du gut geschlafen?",
         "Nicht so gut, die Nachbarn haben bis spät in die Nacht gefeiert.",
         "Das ist ärgerlich. Hast du mit ihnen gesprochen?",
         "Ich habe geklopft, aber niemand hat die Tür geöffnet.",
         "Vielleicht solltest du ihnen einen freundlichen Brief schreiben.",
         "Das ist eine gute Idee, das mache ich heute Abend.",
         "Kommst du am Samstag mit auf den Markt?",
         "Ja, ich brauche frisches Gemüse und ein paar Blumen für den Garten.",
         "Danach könnten wir im kleinen Café am Fluss zu Mittag essen.",
         "Sehr gern, dort gibt es immer eine leckere Suppe.",
         "Dann treffen wir uns mittags an der Brücke.",
         "Einverstanden, bis Samstag und einen schönen Tag noch."],
        ["Willkommen zur Besprechung, schön dass ihr alle da seid.",
         "Kann jemand den aktuellen Zeitplan vorstellen?",
         "Ja, der Entwurf ist fertig und die Tests beginnen nächste Woche.",
         "Sehr gut. Gibt es Probleme mit den neuen Servern?",
         "Ein Rechner war langsam, aber wir haben die Festplatte ersetzt.",
         "Wie lange dauern die Tests ungefähr?",
         "Nicht lange, wenn die Kunden rechtzeitig antworten.",
         "Ich rufe die Kunden morgen früh an und erinnere sie daran.",
         "Außerdem muss jemand die Anleitung aktualisieren.",
         "Ich schreibe die Anleitung, aber ich brauche ein paar Bilder.",
         "Ich bereite die Bilder vor und schicke sie dir am Freitag.",
         "Prima, dann sehen wir uns nächsten Dienstag wieder."],
        ["Wohin fahren wir diesen Sommer in den Urlaub?",
         "Ich möchte in die Berge fahren und jeden Tag wandern.",
         "Die Berge sind schön, aber ich liege lieber am Strand.",
         "Warum nicht beides? In den Bergen gibt es viele Seen.",
         "Gute Idee. Wie reisen wir dorthin?",
         "Der Zug ist bequem und viel billiger als das Flugzeug.",
         "Aber mit dem Zug dauert die Reise fast den ganzen Tag.",
         "Wir können unterwegs in einer kleinen Stadt übernachten.",
         "Wer kümmert sich um das Hotel?",
         "Ich suche heute Abend ein Hotel mit Blick auf den See.",
         "Vergesst nicht, dass meine Schwester ihren Hund mitbringen möchte.",
         "Dann brauchen wir ein Hotel, in dem Hunde erlaubt sind."],
    ],
    "it": [
        ["Buongiorno, come hai dormito stanotte?",
         "Benissimo, grazie. Oggi mi sento pieno di energia.",
         "Che bello. Vuoi fare colazione con me in terrazza?",
         "Volentieri, preparo il caffè e qualche biscotto.",
         "Io porto il succo d'arancia e un po' di frutta.",
         "Dopo possiamo fare una passeggiata nel parco.",
         "Ottima idea, oggi il tempo è davvero splendido.",
         "Più tardi devo andare in banca prima che chiuda.",
         "Vengo con te, devo anche comprare alcuni libri.",
         "La libreria in piazza ha sempre dei romanzi interessanti.",
         "Allora andiamo prima in banca e poi in libreria.",
         "D'accordo, usciamo tra mezz'ora."],
        ["Benvenuti alla riunione, oggi parliamo del nuovo progetto.",
         "Grazie. Abbiamo già il bilancio per quest'anno?",
         "Sì, il direttore lo ha approvato ieri pomeriggio.",
         "Ottima notizia. Quando cominciamo a lavorare?",
         "Possiamo cominciare lunedì prossimo, se siete tutti d'accordo.",
         "Per me va bene, ma ho bisogno di aiuto con il disegno.",
         "Posso aiutarti io durante la prima settimana.",
         "Grazie mille, così è tutto più semplice.",
         "Bisogna anche chiamare i clienti per confermare le date.",
         "Me ne occupo io domani mattina.",
         "Perfetto. Allora ci vediamo lunedì di buon'ora.",
         "A lunedì, e buon fine settimana a tutti."],
        ["Dove andiamo in vacanza quest'estate?",
         "Mi piacerebbe andare al mare e nuotare ogni giorno.",
         "Io preferisco la montagna, lì fa meno caldo.",
         "Potremmo affittare una casa vicino a un lago.",
         "È un'idea fantastica, così siamo tutti contenti.",
         "Andiamo in macchina o in treno?",
         "Il treno è più comodo e possiamo leggere durante il viaggio.",
         "Ma con la macchina possiamo visitare i paesi vicini.",
         "Allora prendiamo la macchina e ci fermiamo dove vogliamo.",
         "Stasera cerco una casa su internet.",
         "Non dimenticate che mia sorella vuole portare il suo cane.",
         "Va bene, cercherò una casa dove accettano gli animali."],
    ],
}
LANGUAGES = list(LINES)
QUICK_LINES = 6
QUICK_SPEAKERS = [2, 3, 4, 2, 3]  # --quick: one dialogue per language, these many voices in turn


def make_corpus(directory: Path, quick: bool) -> dict:
    from soundfile import info

    from tests.audio import dialogue, speak

    files = []
    for i, language in enumerate(LANGUAGES):
        blocks = LINES[language]
        plan = ([(QUICK_SPEAKERS[i], blocks[QUICK_SPEAKERS[i] - 2][:QUICK_LINES])] if quick
                else [(speakers, blocks[speakers - 2]) for speakers in (2, 3, 4)])
        for speakers, lines in plan:
            path = directory / f"{language}-{speakers}.wav"
            turns = dialogue(path, speakers, lines, language=language)
            files.append({"name": path.stem, "path": str(path), "language": language, "speakers": speakers,
                          "duration": info(str(path)).duration, "turns": turns})
    warmup = speak("Hello, this is a short clip to warm the models up.", directory / "warmup.wav")
    return {"files": files, "warmup": str(warmup)}


# ---------------------------------------------------------------------------------------------
# One configuration and mode, in a subprocess of its own (so that its peak memory is its own)

def bare(transcriber, engine: str, path: str, as_diarist: bool = False) -> tuple[str, str | None]:
    """The engine's plain transcription of the whole file; (text, language it identified).
    as_diarist: with the decoding settings diarist uses (no no-speech gate)."""
    settings = {"no_speech_threshold": None} if as_diarist else {}
    if engine == "faster-whisper":
        segments, info = transcriber.model.transcribe(path, beam_size=5, word_timestamps=True, vad_filter=True,
                                                      **settings)
        return " ".join(s.text.strip() for s in segments), info.language
    # openai-whisper reads files with the ffmpeg program, which this machine does not have; PyAV
    # decodes it instead, as faster-whisper does (16 kHz mono float32).
    from faster_whisper import decode_audio

    result = transcriber.model.transcribe(decode_audio(path), beam_size=5, best_of=5, word_timestamps=True,
                                          fp16=False, **settings)
    return result["text"].strip(), result.get("language")


def worker(engine: str, model: str, mode: str, manifest_path: str, out_path: str) -> None:
    from diarist.infra.settings import Settings
    from diarist.streams.inference import asr, pipeline
    from diarist.streams.inference.process import bound_malloc

    bound_malloc()  # as in the service's engine process

    manifest = json.loads(Path(manifest_path).read_text())
    files = [f for f in manifest["files"] if MULTILINGUAL[model] or f["language"] == "en"]
    threads = Settings().inference_threads
    started = time.perf_counter()
    transcriber = asr.load(engine, model, threads)
    load_s = time.perf_counter() - started

    def once(path: str) -> dict:
        if mode in ("bare", CONTROL):
            text, language = bare(transcriber, engine, path, as_diarist=mode == CONTROL)
            return {"text": text, "language": language}
        result = pipeline.run(transcriber, Path(path), {"task": "TRANSCRIPTION"}, lambda *_: None)
        return {"text": " ".join(s["text"] for s in result["segments"]), "language": result["language"],
                "speakers": result["speakers"],
                "segments": [[s["channel"], s["speaker"], s["start"], s["end"]] for s in result["segments"]]}

    once(manifest["warmup"])  # loads the VAD and speaker models, first-call costs: kept out of the figures
    out = []
    for f in files:
        t0 = time.perf_counter()
        got = once(f["path"])
        seconds = time.perf_counter() - t0
        out.append({"name": f["name"], "seconds": seconds, **got})
        print(f"  {engine} {model} {mode} {f['name']}: {f['duration']:.1f} s audio in {seconds:.1f} s",
              file=sys.stderr, flush=True)
    Path(out_path).write_text(json.dumps({"engine": engine, "model": model, "mode": mode, "threads": threads,
                                          "load_seconds": load_s, "peak_kib": proc_kib("VmHWM"),
                                          "files": out}))


def run_config(engine: str, model: str, mode: str, manifest: Path, directory: Path) -> dict:
    out = directory / f"{engine}-{model}-{mode}.json"
    cpu0, wall0 = cpu_mark(), time.perf_counter()
    subprocess.run([sys.executable, __file__, "--worker", engine, model, mode, str(manifest), str(out)],
                   check=True)
    wall = time.perf_counter() - wall0
    foreign = foreign_cpu(cpu0)
    return json.loads(out.read_text()) | {"foreign_cpu": foreign, "wall": wall}


# ---------------------------------------------------------------------------------------------
# Scoring

def normalise():
    import jiwer

    return jiwer.Compose([jiwer.ToLowerCase(), jiwer.SubstituteRegexes({r"[^\w\s]": " "}),
                          jiwer.RemoveMultipleSpaces(), jiwer.Strip(), jiwer.ReduceToListOfListOfWords()])


def word_errors(reference: str, hypothesis: str) -> tuple[int, int]:
    """(errors, reference words) after lowercasing and replacing punctuation by spaces."""
    import jiwer

    t = normalise()
    o = jiwer.process_words(reference, hypothesis, reference_transform=t, hypothesis_transform=t)
    return o.substitutions + o.deletions + o.insertions, o.substitutions + o.deletions + o.hits


def der_components(file: dict, segments: list, collar: float) -> dict[str, float]:
    from pyannote.core import Annotation, Segment, Timeline
    from pyannote.metrics.diarization import DiarizationErrorRate

    reference, hypothesis = Annotation(), Annotation()
    for start, end, speaker, _ in file["turns"]:
        reference[Segment(start, end)] = f"ref{speaker}"
    for i, (channel, speaker, start, end) in enumerate(segments):
        if end > start:
            hypothesis[Segment(start, end), i] = f"{channel}:{speaker}"
    uem = Timeline([Segment(0, file["duration"])])
    return DiarizationErrorRate(collar=collar, skip_overlap=False).compute_components(reference, hypothesis, uem=uem)


def pct(errors: float, total: float) -> str:
    return f"{100 * errors / total:.1f}" if total else "-"


def report(console, command: list[str], corpus: dict, runs: dict, started: datetime, wall: float) -> bool:
    from rich.table import Table

    files = {f["name"]: f for f in corpus["files"]}
    reference = {n: " ".join(t[3] for t in f["turns"]) for n, f in files.items()}
    threads = next(iter(runs.values()))["threads"]
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    import ctranslate2
    import faster_whisper
    import torch
    import whisper

    console.print(f"date: {started:%Y-%m-%d %H:%M}; command: python bench/accuracy.py {' '.join(command)}")
    console.print(f"machine: {os.cpu_count()} CPUs ({cpu}), {platform.system()} {platform.release()}, Python "
                  f"{platform.python_version()}; faster-whisper {faster_whisper.__version__} (ctranslate2 "
                  f"{ctranslate2.__version__}, int8), openai-whisper {whisper.__version__} (torch {torch.__version__}, "
                  f"float32); {threads} threads")
    by_language = defaultdict(float)
    for f in corpus["files"]:
        by_language[f["language"]] += f["duration"]
    total_audio = sum(by_language.values())
    console.print(f"corpus: {len(files)} dialogues, {total_audio / 60:.1f} min ("
                  + ", ".join(f"{lang} {s / 60:.1f}" for lang, s in by_language.items())
                  + f"); {sum(len(r.split()) for r in reference.values())} reference words; whole run {wall / 60:.1f} min")

    # CPU of other processes while each subprocess ran: above 5% the speed figures are skewed.
    foreign = sum(r["foreign_cpu"] for r in runs.values())
    run_wall = sum(r["wall"] for r in runs.values())
    share = foreign / (run_wall * (os.cpu_count() or 1))
    console.print(f"CPU used by other processes during the runs: about {foreign:.1f} s in {run_wall:.1f} s "
                  f"({share:.1%} of the machine)" + ("  [bold red]speed figures are skewed" if share > 0.05 else ""))

    configs = sorted({(r["engine"], r["model"]) for r in runs.values()}, key=CONFIGS.index)
    ok = True

    # WER
    table = Table(title=f"WER % (lowercased, punctuation removed); requirement: diarist - bare <= {WER_BUDGET:g} point")
    table.add_column("engine / model")
    table.add_column("language")
    table.add_column("words", justify="right")
    control = any(mode == CONTROL for _, _, mode in runs)
    for name in ("diarist", "bare", "diarist - bare", "check") + (("bare, as diarist", "diarist - that") if control else ()):
        table.add_column(name, justify="right")
    for engine, model in configs:
        modes = MODES + (CONTROL,) * control
        counts = {mode: defaultdict(lambda: [0, 0]) for mode in modes}
        for mode in modes:
            for r in runs[(engine, model, mode)]["files"]:
                errors, words = word_errors(reference[r["name"]], r["text"])
                for key in (files[r["name"]]["language"], "all"):
                    counts[mode][key][0] += errors
                    counts[mode][key][1] += words
        keys = [k for k in LANGUAGES if k in counts["diarist"]] + ["all"]
        for key in keys:
            d, b = counts["diarist"][key], counts["bare"][key]
            delta = 100 * d[0] / d[1] - 100 * b[0] / b[1]
            passed = delta <= WER_BUDGET
            if key == "all":
                ok &= passed
            extra = []
            if control:
                c = counts[CONTROL][key]
                extra = [pct(*c), f"{100 * d[0] / d[1] - 100 * c[0] / c[1]:+.1f}"]
            table.add_row(f"{engine} {model}" if key == keys[0] else "",
                          "overall" if key == "all" else key, str(d[1]), pct(*d), pct(*b), f"{delta:+.1f}",
                          ("ok" if passed else "[bold red]OVER") if key == "all" else ("" if passed else "over"),
                          *extra, end_section=key == "all")
    console.print(table)
    if control:
        console.print("bare, as diarist: the bare call with diarist's decoding settings (no_speech_threshold="
                      "None); diarist - that: what the rest of the pipeline (VAD-trimmed chunk, language found "
                      "on the first 30 s of speech, words regrouped by speaker) adds on top of that setting.")

    # DER and speaker counts
    table = Table(title="Diarization through diarist: DER % (pyannote.metrics; collar = total no-score width "
                        "around each reference boundary), speakers found")
    for name, justify in (("engine / model", "left"), ("speakers", "right"), ("files", "right"),
                          ("DER c=0", "right"), ("missed", "right"), ("false alarm", "right"),
                          ("confusion", "right"), ("DER c=0.25", "right"), ("count right", "right"),
                          ("found", "left")):
        table.add_column(name, justify=justify)
    for engine, model in configs:
        results = runs[(engine, model, "diarist")]["files"]
        counts = sorted({files[r["name"]]["speakers"] for r in results})
        for n in counts + ["all"]:
            chosen = [r for r in results if n == "all" or files[r["name"]]["speakers"] == n]
            c0, c25 = defaultdict(float), defaultdict(float)
            for r in chosen:
                for totals, collar in ((c0, 0.0), (c25, 0.25)):
                    for k, v in der_components(files[r["name"]], r["segments"], collar).items():
                        totals[k] += v
            der = lambda c: pct(c["missed detection"] + c["false alarm"] + c["confusion"], c["total"])  # noqa: E731
            right = sum(r["speakers"] == files[r["name"]]["speakers"] for r in chosen)
            table.add_row(f"{engine} {model}" if n == counts[0] else "", str(n), str(len(chosen)), der(c0),
                          pct(c0["missed detection"], c0["total"]), pct(c0["false alarm"], c0["total"]),
                          pct(c0["confusion"], c0["total"]), der(c25), f"{right}/{len(chosen)}",
                          "" if n == "all" else " ".join(str(r["speakers"]) for r in chosen), end_section=n == "all")
    console.print(table)

    # Language identification
    multilingual = [(e, m) for e, m in configs if MULTILINGUAL[m]]
    if multilingual:
        table = Table(title="Language identification (multilingual model): identified == true language")
        table.add_column("engine / model")
        table.add_column("way")
        for lang in LANGUAGES + ["all"]:
            table.add_column(lang, justify="right")
        table.add_column("wrong", justify="left")
        for engine, model in multilingual:
            for mode in MODES:
                results = runs[(engine, model, mode)]["files"]
                cells, wrong = [], []
                for lang in LANGUAGES + ["all"]:
                    chosen = [r for r in results if lang == "all" or files[r["name"]]["language"] == lang]
                    cells.append(f"{sum(r['language'] == files[r['name']]['language'] for r in chosen)}/{len(chosen)}")
                wrong = [f"{r['name']}→{r['language']}" for r in results if r["language"] != files[r["name"]]["language"]]
                table.add_row(f"{engine} {model}" if mode == "diarist" else "", mode, *cells, " ".join(wrong))
        console.print(table)

    # Speed and memory
    table = Table(title="Speed (RTF = audio seconds / processing seconds, model loaded and warm) and peak memory")
    for name, justify in (("engine / model", "left"), ("audio s", "right"), ("diarist s", "right"),
                          ("bare s", "right"), ("RTF diarist", "right"), ("RTF bare", "right"),
                          ("diarist / bare time", "right"), ("peak MiB diarist", "right"),
                          ("peak MiB bare", "right"), ("other CPU", "right")):
        table.add_column(name, justify=justify)
    rtf: dict[tuple[str, str, str], float] = {}
    for engine, model in configs:
        d, b = runs[(engine, model, "diarist")], runs[(engine, model, "bare")]
        audio = sum(files[r["name"]]["duration"] for r in d["files"])
        ds, bs = sum(r["seconds"] for r in d["files"]), sum(r["seconds"] for r in b["files"])
        rtf[(engine, model, "diarist")], rtf[(engine, model, "bare")] = audio / ds, audio / bs
        other = (d["foreign_cpu"] + b["foreign_cpu"]) / ((d["wall"] + b["wall"]) * (os.cpu_count() or 1))
        table.add_row(f"{engine} {model}", f"{audio:.0f}", f"{ds:.1f}", f"{bs:.1f}", f"{audio / ds:.2f}×",
                      f"{audio / bs:.2f}×", f"{ds / bs:.2f}×", f"{d['peak_kib'] / 1024:,.0f}",
                      f"{b['peak_kib'] / 1024:,.0f}", f"{other:.1%}")
    console.print(table)
    ratios = []
    for model in ("base", "tiny.en"):
        for mode in MODES:
            fw, ow = rtf.get(("faster-whisper", model, mode)), rtf.get(("openai-whisper", model, mode))
            if fw and ow:
                ratios.append(f"{model} {mode} {fw / ow:.2f}×")
    if ratios:
        console.print("faster-whisper speed / openai-whisper speed (same files, same weights): " + ", ".join(ratios))
    console.print("Peak memory is VmHWM of the subprocess that ran that configuration alone (model, VAD, speaker "
                  "encoder, decoded audio).")
    return ok


# ---------------------------------------------------------------------------------------------
# --diarization: diarization alone, today's method beside the current one, on real voices

DIARIZATION_TARGETS = {"clean": 12.0, "telephone": 18.0, "noisy": 18.0}


def diarization_corpus(directory: Path, conversations: int, seed: int, quick: bool) -> list[dict]:
    """The evaluation split of the real-voice corpus (every condition) and the espeak dialogues."""
    from bench import corpus

    files = corpus.build(directory / "real", "evaluation", conversations, seed)
    for f in files:
        f["corpus"] = "real"
    (directory / "espeak").mkdir(parents=True, exist_ok=True)
    generated = make_corpus(directory / "espeak", quick)["files"]
    for f in generated:
        f.update(corpus="espeak", condition="espeak")
    return files + generated


def diarization_runs(files: list[dict], console, after=None) -> list[dict]:
    """Both methods without hints; the new one with speakers_count given too (today's met counts
    exactly already, and is slow: one unbatched embedding per piece)."""
    from bench import baseline_diarization
    from bench.diarization_runs import run
    from diarist.streams.inference import diarization

    return run(files, {"today": baseline_diarization.diarize, "new": diarization.diarize}, hinted_methods=("new",),
               log=lambda line: console.print(line, highlight=False), after=after)


def diarization_report(console, command: list[str], files: list[dict], rows: list[dict], started: datetime,
                       wall: float) -> bool:
    from rich.table import Table

    from bench.diarization_runs import der, score

    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    real = [f for f in files if f["corpus"] == "real"]
    conversations = sorted({f["conversation"] for f in real})
    voices = sorted({v for f in real for v in f["voices"]})
    console.print(f"date: {started:%Y-%m-%d %H:%M}; command: python bench/accuracy.py {' '.join(command)}")
    console.print(f"machine: {os.cpu_count()} CPUs ({cpu}), Python {platform.python_version()}; whole run "
                  f"{wall / 60:.1f} min")
    console.print(f"real-voice corpus, evaluation split: {len(conversations)} conversations x 3 conditions, "
                  f"{sum(f['duration'] for f in real if f['condition'] == 'clean') / 60:.1f} min per condition, "
                  f"{len(voices)} voices ({', '.join(voices)}); espeak corpus: "
                  f"{sum(f['corpus'] == 'espeak' for f in files)} dialogues")
    done = {r["file"] for r in rows}
    files = [f for f in files if f["name"] in done]  # a partial run: the files it reached
    real = [f for f in files if f["corpus"] == "real"]
    totals = score(files, rows)
    methods = ("today", "new")

    def cells(group: str, hinted: bool) -> list[str]:
        out = []
        for m in methods:
            t = totals.get((m, hinted, group))
            out.append(f"{der(t):.1f}" if t and t["files"] else "-")
        for m in methods:
            t = totals.get((m, hinted, group))
            out.append(f"{int(t['right'])}/{int(t['files'])}" if t and t["files"] else "-")
        return out

    ok = True
    table = Table(title="Diarization alone (VAD + diarization, no transcription): DER % (collar 0.25 total width, "
                        "pyannote.metrics), speaker count right; today = pieces + AHC 0.21, new = this version")
    for name, justify in (("corpus / condition", "left"), ("files", "right"), ("DER today", "right"),
                          ("DER new", "right"), ("count today", "right"), ("count new", "right"),
                          ("DER today, n given", "right"), ("DER new, n given", "right"),
                          ("count today, n given", "right"), ("count new, n given", "right"), ("target", "left")):
        table.add_column(name, justify=justify)
    for condition in ("clean", "telephone", "noisy"):
        group = f"condition={condition}"
        target = DIARIZATION_TARGETS[condition]
        reached = der(totals[("new", False, group)]) <= target
        ok &= reached
        table.add_row(f"real, {condition}", str(int(totals[("new", False, group)]["files"])),
                      *cells(group, False), *cells(group, True),
                      f"DER <= {target:g}: " + ("yes" if reached else "[bold red]no"))
    group = "corpus=real"
    t = totals[("new", False, group)]
    counted = t["right"] / t["files"] >= 0.9
    hinted_all = totals[("new", True, group)]["right"] == totals[("new", True, group)]["files"]
    ok &= counted and hinted_all
    table.add_row("real, all", str(int(t["files"])), *cells(group, False), *cells(group, True),
                  f"count >= 90%: {'yes' if counted else '[bold red]no'}; n given 100%: "
                  f"{'yes' if hinted_all else '[bold red]no'}", end_section=True)
    group = "corpus=espeak"
    if totals[("new", False, group)]["files"]:
        worse = der(totals[("new", False, group)]) > der(totals[("today", False, group)])
        table.add_row("espeak dialogues", str(int(totals[("new", False, group)]["files"])), *cells(group, False),
                      *cells(group, True), "no worse than today: " + ("[bold red]no" if worse else "yes"))
    console.print(table)

    table = Table(title="Real voices, every condition, by number of speakers (no hints)")
    for name in ("speakers", "files", "DER today", "DER new", "count today", "count new", "found today", "found new"):
        table.add_column(name, justify="left" if name.startswith("found") else "right")
    by_name = {f["name"]: f for f in files}
    for n in sorted({f["speakers"] for f in real}):
        group = f"speakers={n}"
        found = {m: " ".join(str(r["speakers"]) for r in rows if r["method"] == m and not r["hinted"]
                             and by_name[r["file"]]["corpus"] == "real" and by_name[r["file"]]["speakers"] == n)
                 for m in methods}
        table.add_row(str(n), str(int(totals[("new", False, group)]["files"])), *cells(group, False),
                      found["today"], found["new"])
    console.print(table)

    table = Table(title="Where the error is (no hints): missed speech, false alarm, confusion, % of reference speech")
    for name in ("corpus / condition", "method", "missed", "false alarm", "confusion", "DER",
                 "diarization s per audio min"):
        table.add_column(name, justify="left" if name in ("corpus / condition", "method") else "right")
    for group, label in (("condition=clean", "real, clean"), ("condition=telephone", "real, telephone"),
                         ("condition=noisy", "real, noisy"), ("corpus=espeak", "espeak")):
        for m in methods:
            t = totals[(m, False, group)]
            if not t["files"]:
                continue
            table.add_row(label if m == "today" else "", m, *(f"{100 * t[k] / t['total']:.1f}" for k in
                          ("missed detection", "false alarm", "confusion")), f"{der(t):.1f}",
                          f"{60 * t['seconds'] / t['audio']:.2f}", end_section=m == "new")
    console.print(table)
    vad = {r["file"]: r["vad_seconds"] for r in rows}
    console.print(f"decode + VAD (shared by both methods): {60 * sum(vad.values()) / sum(f['duration'] for f in files):.2f} "
                  "s per audio minute. The reference counts overlapped speech once per speaker; both methods give "
                  "one speaker at a time, so overlap is missed speech for both.")
    return ok


def diarization_main(args, console) -> None:
    started, t0 = datetime.now(), time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="diarist-diarization-") as tmp:
        console.print("making the corpora (real voices: bench/corpus.py, evaluation split; espeak-ng) ...")
        files = diarization_corpus(Path(tmp), args.conversations, args.seed, args.quick)

        def save(rows: list[dict]) -> None:
            if args.save:
                args.save.write_text(json.dumps({"mode": "diarization", "command": sys.argv[1:],
                                                 "started": started.isoformat(), "wall": time.perf_counter() - t0,
                                                 "files": files, "rows": rows}, indent=1, ensure_ascii=False))

        rows = diarization_runs(files, console, after=save)
    wall = time.perf_counter() - t0
    save(rows)
    ok = diarization_report(console, sys.argv[1:], files, rows, started, wall)
    sys.exit(0 if ok else 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one short dialogue per language (~2 minutes)")
    parser.add_argument("--control", action="store_true",
                        help="also run the bare call with diarist's decoding settings (no no-speech gate)")
    parser.add_argument("--only", nargs="+", metavar="ENGINE:MODEL", help="run only these configurations")
    parser.add_argument("--save", type=Path, help="write the corpus and raw results to this JSON file")
    parser.add_argument("--worker", nargs=5, help=argparse.SUPPRESS)
    parser.add_argument("--report", type=Path, metavar="SAVED", help="print the tables of a run saved with --save")
    parser.add_argument("--diarization", action="store_true",
                        help="diarization alone on real voices and espeak: today's method beside the current one")
    parser.add_argument("--conversations", type=int, default=16, help="--diarization: conversations of the evaluation split")
    parser.add_argument("--seed", type=int, default=0, help="--diarization, --lid: corpus seed")
    parser.add_argument("--lid", action="store_true", help="language identification alone on real voices (bench/"
                        "language_id.py): today's method, the new one and the bare engine, multilingual models")
    parser.add_argument("--threads", type=int, default=2, help="--lid: engine threads")
    args = parser.parse_args()
    if args.worker:
        worker(*args.worker)
        return
    if args.report:
        from rich.console import Console

        warnings.filterwarnings("ignore")
        saved = json.loads(args.report.read_text())
        if saved.get("mode") == "diarization":
            ok = diarization_report(Console(width=None if sys.stdout.isatty() else 160), saved["command"],
                                     saved["files"], saved["rows"], datetime.fromisoformat(saved["started"]),
                                     saved["wall"])
            sys.exit(0 if ok else 1)
        runs = {(r["engine"], r["model"], r["mode"]): r for r in saved["runs"]}
        ok = report(Console(width=None if sys.stdout.isatty() else 140), saved["command"], saved["corpus"], runs,
                    datetime.fromisoformat(saved["started"]), saved["wall"])
        sys.exit(0 if ok else 1)
    configs = CONFIGS
    if args.only:
        wanted = [tuple(c.split(":", 1)) for c in args.only]
        configs = [c for c in CONFIGS if c in wanted]
        if len(configs) != len(wanted):
            parser.error(f"known configurations: {', '.join(f'{e}:{m}' for e, m in CONFIGS)}")

    if args.lid:
        from bench import language_id

        warnings.filterwarnings("ignore")
        chosen = [c for c in configs if MULTILINGUAL[c[1]]]
        sys.exit(0 if language_id.main(chosen, args.seed, args.threads, args.save) else 1)

    from rich.console import Console

    warnings.filterwarnings("ignore")
    console = Console(width=None if sys.stdout.isatty() else 140)
    if args.diarization:
        diarization_main(args, Console(width=None if sys.stdout.isatty() else 160))
    started, t0 = datetime.now(), time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="diarist-accuracy-") as tmp:
        directory = Path(tmp)
        console.print("making the corpus with espeak-ng ...")
        corpus = make_corpus(directory, args.quick)
        manifest = directory / "manifest.json"
        manifest.write_text(json.dumps(corpus))
        runs = {}
        for engine, model in configs:
            for mode in MODES + (CONTROL,) * args.control:
                console.print(f"{engine} {model} {mode} ...")
                runs[(engine, model, mode)] = run_config(engine, model, mode, manifest, directory)
        wall = time.perf_counter() - t0
        if args.save:
            args.save.write_text(json.dumps({"command": sys.argv[1:], "started": started.isoformat(), "wall": wall,
                                             "corpus": corpus, "runs": list(runs.values())}, indent=1))
        ok = report(console, sys.argv[1:], corpus, runs, started, wall)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
