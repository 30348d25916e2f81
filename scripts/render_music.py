#!/usr/bin/env python3
"""Render the project's tagged music set (its stand-in for MagnaTagATune, ASSETS.md):
folk tunes in ABC notation from the music21 wheel (abc2midi) and accompaniment grooves from
mma's standard library, played with the FluidR3 General MIDI soundfont (fluidsynth, 22050 Hz).

Every render gets multi-label tags: genre or rhythm, instruments, meter, tempo bucket, and
mode where known. Writes OUT/<id>.wav and OUT/sources.jsonl (one line per render); the Rust
builder (`smg data build`) cuts renders into clips with the sound corpus's pipeline, split by
tune or groove pattern. Deterministic for a given --seed; renders already on disk are kept.

    render_music.py --data-dir data --out data/music/render [--abc 240] [--grooves 2] [--seed 0]
"""
import argparse
import glob
import json
import os
import random
import re
import subprocess
import sys
import tempfile

ABC_RHYTHMS = {  # R: field -> (genre tag, typical tempo range in quarter notes per minute)
    "reel": ("reel", (100, 140)), "hornpipe": ("hornpipe", (70, 100)), "jig": ("jig", (100, 130)),
    "double jig": ("jig", (100, 130)), "slipjig": ("slip jig", (100, 130)), "slip jig": ("slip jig", (100, 130)),
    "strathspey": ("strathspey", (60, 85)), "polka": ("polka", (110, 140)), "waltz": ("waltz", (90, 150)),
    "march": ("march", (90, 120)), "air": ("air", (50, 80)), "slow air": ("air", (50, 80)),
}
INSTRUMENTS = [  # (GM program, tag)
    (0, "piano"), (40, "violin"), (73, "flute"), (21, "accordion"), (24, "acoustic guitar"),
    (71, "clarinet"), (46, "harp"), (78, "whistle"), (68, "oboe"), (13, "xylophone"), (56, "trumpet"), (22, "harmonica"),
]
GROOVE_FAMILIES = [  # substring of the groove file name -> genre family
    ("waltz", "waltz"), ("march", "march"), ("tango", "tango"), ("blues", "blues"), ("boggie", "blues"),
    ("swing", "swing"), ("bigband", "swing"), ("jazz", "jazz"), ("bebop", "jazz"), ("dixie", "jazz"), ("evansish", "jazz"),
    ("rock", "rock"), ("8beat", "rock"), ("16beat", "rock"), ("ballad", "ballad"), ("country", "country"), ("bluegrass", "country"),
    ("hillcountry", "country"), ("folk", "folk"), ("bossa", "latin"), ("samba", "latin"), ("rhumba", "latin"), ("mambo", "latin"),
    ("merengue", "latin"), ("chacha", "latin"), ("beguine", "latin"), ("bolero", "latin"), ("calypso", "latin"), ("cuban", "latin"),
    ("latin", "latin"), ("salsa", "latin"), ("reggae", "reggae"), ("ska", "reggae"), ("funk", "funk and soul"), ("soul", "funk and soul"),
    ("disco", "funk and soul"), ("polka", "polka"), ("hymn", "hymn"), ("lullaby", "ballad"), ("foxtrot", "swing"), ("jive", "swing"),
    ("charleston", "swing"), ("broadway", "show tune"), ("pop", "pop"), ("softshoe", "swing"), ("shuffle", "blues"), ("trance", "electronic"),
    ("house", "electronic"), ("techno", "electronic"), ("hiphop", "hip hop"), ("rap", "hip hop"), ("desert", "world"), ("afro", "world"),
]
PROGRESSIONS = [["I", "vi", "ii", "V"], ["I", "IV", "V", "I"], ["I", "V", "vi", "IV"], ["ii", "V", "I", "I"], ["I", "IV", "I", "V"], ["vi", "IV", "I", "V"]]
KEYS = ["C", "D", "Eb", "F", "G", "A", "Bb"]
NOTES = ["C", "Db", "D", "Eb", "E", "F", "Gb", "G", "Ab", "A", "Bb", "B"]


def tempo_bucket(bpm):
    return "slow tempo" if bpm < 90 else ("medium tempo" if bpm <= 130 else "fast tempo")


def chord(key, degree):
    steps = {"I": 0, "ii": 2, "iii": 4, "IV": 5, "V": 7, "vi": 9}[degree]
    root = NOTES[(NOTES.index(key) + steps) % 12]
    return root + ("m" if degree in ("ii", "iii", "vi") else ("7" if degree == "V" else ""))


def run(cmd, **kw):
    r = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if r.returncode != 0:
        raise RuntimeError(f"{cmd[0]} failed: {(r.stderr or r.stdout).strip()[-300:]}")


def synth(sf2, mid, wav):
    tmp = wav + ".partial.wav"
    run(["fluidsynth", "-ni", "-q", "-F", tmp, "-r", "22050", "-g", "0.5", sf2, mid])
    os.replace(tmp, wav)


def mode_of(key_field):
    k = key_field.strip().lower()
    for word, mode in (("mix", "mixolydian"), ("dor", "dorian"), ("phr", "phrygian"), ("lyd", "lydian"), ("min", "minor"), ("aeo", "minor")):
        if word in k:
            return mode
    if re.match(r"^[a-g][#b]?m\b", k):
        return "minor"
    return "major"


def abc_tunes(corpus):
    """(collection, file, tune text, fields) of tunes with a known rhythm."""
    out = []
    for path in sorted(glob.glob(os.path.join(corpus, "**", "*.abc"), recursive=True)):
        text = open(path, encoding="latin-1").read()
        for tune in re.split(r"\n(?=X:)", text):
            fields = dict((m.group(1), m.group(2).strip()) for m in re.finditer(r"^([A-Z]):(.*)$", tune, re.M))
            rhythm = fields.get("R", "").lower().strip(" ]")
            if "X" in fields and "K" in fields and rhythm in ABC_RHYTHMS and fields.get("M"):
                out.append((os.path.relpath(path, corpus), tune, fields))
    return out


def render_abc(args, rng, out, sf2):
    tunes = abc_tunes(os.path.join(args.data_dir, "wheel/music21/music21/corpus"))
    rng.shuffle(tunes)
    per_genre = {}
    records = []
    for rel, tune, f in tunes:
        if len(records) >= args.abc:
            break
        genre, (lo, hi) = ABC_RHYTHMS[f["R"].lower().strip(" ]")]
        if per_genre.get(genre, 0) >= max(args.abc // 6, 10):
            continue  # keep genres balanced
        program, instrument = rng.choice(INSTRUMENTS)
        bpm = rng.randrange(lo, hi + 1, 5)
        rid = f"abc-{re.sub(r'[^a-z0-9]+', '-', rel.lower()).strip('-')}-x{f['X']}"
        wav = os.path.join(out, rid + ".wav")
        meter = f["M"].replace("C|", "2/2").replace("C", "4/4")
        rec = {"file": os.path.relpath(wav, args.data_dir), "source": f"{rel}#X{f['X']}", "kind": "abc tune",
               "genre": genre, "instruments": [instrument], "meter": meter, "tempo": bpm, "mode": mode_of(f["K"]),
               "title": f.get("T", ""), "licence": "public-domain tune (music21 corpus, BSD-3-Clause)"}
        if not os.path.exists(wav):
            body = re.sub(r"^Q:.*$\n?", "", tune, flags=re.M)
            # one tempo and one instrument for the whole tune; repeat the tune twice (~20-40 s)
            body = re.sub(r"^(K:.*)$", lambda m: f"Q:1/4={bpm}\n{m.group(1)}\n%%MIDI program {program}", body, count=1, flags=re.M)
            with tempfile.TemporaryDirectory() as td:
                abc, mid = os.path.join(td, "t.abc"), os.path.join(td, "t.mid")
                open(abc, "w", encoding="latin-1").write(body + "\n")
                try:
                    run(["abc2midi", abc, "-o", mid, "-silent"])
                    synth(sf2, mid, wav)
                except RuntimeError as e:
                    print(f"skip {rid}: {e}", file=sys.stderr)
                    continue
            rec["_new"] = True
        per_genre[genre] = per_genre.get(genre, 0) + 1
        records.append(rec)
    return records


def groove_info(path):
    text = open(path, encoding="latin-1").read()
    grooves = re.findall(r"^\s*DefGroove\s+(\S+)", text, re.M | re.I)
    voices = set()
    for line in re.findall(r"^\s*(?:\S+\s+)?Voice\s+(.+)$", text, re.M | re.I):
        for v in line.split():
            if v != "/" and re.match(r"^[A-Za-z]", v):
                voices.add(v)
    m = re.search(r"^\s*Time\s+(\d+)", text, re.M | re.I)
    beats = int(m.group(1)) if m else 4
    drums = bool(re.search(r"^\s*Drum", text, re.M | re.I))
    return grooves, sorted(voices), beats, drums


def voice_tags(voices, drums):
    tags = set()
    table = [("piano", "piano"), ("guitar", "guitar"), ("bass", "bass"), ("string", "strings"), ("organ", "organ"),
             ("sax", "saxophone"), ("trumpet", "trumpet"), ("brass", "brass"), ("choir", "choir"), ("aah", "choir"),
             ("ooh", "choir"), ("vibe", "vibraphone"), ("flute", "flute"), ("accordion", "accordion"), ("clarinet", "clarinet"),
             ("harp", "harp"), ("banjo", "banjo"), ("violin", "violin"), ("fiddle", "violin"), ("marimba", "marimba"),
             ("trombone", "trombone"), ("synth", "synth"), ("pad", "synth")]
    for v in voices:
        for key, tag in table:
            if key in v.lower():
                tags.add(tag)
    if drums:
        tags.add("drums")
    return sorted(tags)


def render_mma(args, rng, out, sf2):
    records = []
    files = sorted(glob.glob("/usr/share/mma/lib/stdlib/*.mma"))
    for path in files:
        name = os.path.basename(path)[:-4]
        fam = next((g for key, g in GROOVE_FAMILIES if key in name.lower()), None)
        if fam is None or "metronome" in name:
            continue
        grooves, voices, beats, drums = groove_info(path)
        main = [g for g in grooves if not re.search(r"(intro|end|fill|sus\d*end)", g, re.I)]
        for groove in main[: args.grooves]:
            key = rng.choice(KEYS)
            prog = rng.choice(PROGRESSIONS)
            bpm = rng.randrange(70, 171, 5) if fam not in ("ballad", "hymn") else rng.randrange(55, 91, 5)
            rid = f"mma-{name}-{groove.lower()}"
            wav = os.path.join(out, rid + ".wav")
            rec = {"file": os.path.relpath(wav, args.data_dir), "source": f"mma:{name}", "kind": "mma groove",
                   "genre": fam, "instruments": voice_tags(voices, drums), "meter": f"{beats}/4", "tempo": bpm,
                   "mode": "major", "title": groove, "licence": "rendered from mma's groove library (GPL-2+)"}
            if not os.path.exists(wav):
                bars = "\n".join(f"{i + 1} {chord(key, prog[i % 4])}" for i in range(16))
                with tempfile.TemporaryDirectory() as td:
                    src, mid = os.path.join(td, "t.mma"), os.path.join(td, "t.mid")
                    open(src, "w").write(f"Tempo {bpm}\nGroove {groove}\n{bars}\n")
                    try:
                        run(["mma", "-f", mid, src], cwd=td)
                        synth(sf2, mid, wav)
                    except RuntimeError as e:
                        print(f"skip {rid}: {e}", file=sys.stderr)
                        continue
                rec["_new"] = True
            records.append(rec)
    return records


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--abc", type=int, default=240, help="number of ABC tunes to render")
    ap.add_argument("--grooves", type=int, default=2, help="grooves rendered per mma groove file")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    sf2 = os.path.join(args.data_dir, "deb/fluid-soundfont-gm/usr/share/sounds/sf2/FluidR3_GM.sf2")
    for tool in ("abc2midi", "fluidsynth", "mma"):
        if subprocess.run(["which", tool], capture_output=True).returncode != 0:
            sys.exit(f"error: {tool} not found (scripts/setup.sh installs abcmidi, fluidsynth, mma)")
    if not os.path.exists(sf2):
        sys.exit(f"error: soundfont missing: {sf2} (run scripts/fetch_assets.sh)")
    os.makedirs(args.out, exist_ok=True)
    rng = random.Random(args.seed)
    records = render_abc(args, rng, args.out, sf2) + render_mma(args, random.Random(args.seed + 1), args.out, sf2)
    for r in records:
        r["tags"] = sorted({r["genre"], *r["instruments"], r["meter"], tempo_bucket(r["tempo"]), r["mode"]})
    new_flags = [r.pop("_new", False) for r in records]
    tmp = os.path.join(args.out, "sources.jsonl.partial")
    with open(tmp, "w") as f:
        for r in records:
            f.write(json.dumps(r, sort_keys=True) + "\n")
    os.replace(tmp, os.path.join(args.out, "sources.jsonl"))
    new = sum(new_flags)
    print(f"music renders: {len(records)} in {args.out} ({new} new{'' if new else ', nothing to render'})")


if __name__ == "__main__":
    main()
