//! Finding the real recordings inside the fetched Debian packages and labelling them from what
//! the packages say about them (folder names, file names, qabcs's `abc1.json`, hydrogen's
//! `drumkit.xml`): a coarse category, a fine label in words, and tags. ASSETS.md lists the
//! packages; the rules below are keyword tables, checked in order, first match wins.

use crate::error::{DataError, Result};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// The corpus's coarse categories, with the noun phrase captions use.
pub const CATEGORIES: &[(&str, &str)] = &[
    ("kick drum", "a kick drum"),
    ("snare drum", "a snare drum"),
    ("hi-hat", "a hi-hat"),
    ("cymbal", "a cymbal"),
    ("tom drum", "a tom drum"),
    ("hand percussion", "hand percussion"),
    ("tabla", "a tabla"),
    ("drum loop", "a drum loop"),
    ("bass", "a bass sound"),
    ("guitar", "a guitar"),
    ("keyboard", "a keyboard instrument"),
    ("strings and pads", "strings and pads"),
    ("wind and brass", "a wind instrument"),
    ("electronic", "an electronic sound"),
    ("animal", "an animal"),
    ("human sounds", "a human sound"),
    ("voice", "a voice"),
    ("vehicles and machines", "a machine"),
    ("water", "water"),
    ("impacts and objects", "an object being hit"),
    ("bells", "a bell"),
    ("scratch and vinyl", "a record scratch"),
];

/// A recording found in a package, labelled, before cutting into clips.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceItem {
    pub path: PathBuf,
    /// Path relative to the data folder.
    pub rel: String,
    /// The split key: the recording itself for sound events, the tune or groove pattern for
    /// rendered music (several renders of one groove stay in one split).
    pub group: String,
    pub package: String,
    pub licence: String,
    pub category: String,
    pub label: String,
    pub tags: Vec<String>,
    pub captions: Vec<String>,
}

/// Keyword rules: if any keyword occurs in the (lower-case, `_`/`-`/space-separated) words of a
/// name, the category applies. Order matters (a "bass drum" is a kick, not a bass).
const RULES: &[(&str, &[&str])] = &[
    ("scratch and vinyl", &["vinyl", "scratch", "backspin", "rewind"]),
    ("tabla", &["tabla"]),
    (
        "drum loop",
        &[
            "loop amen",
            "amen",
            "breakbeat",
            "break",
            "beat",
            "jungle",
            "house loop",
            "drummachine",
            "909beat",
            "loop perc",
            "loop industrial",
            "loop compus",
            "loop safari",
            "loop mika",
            "loop garzul",
            "loop mehackit",
            "loop weirdo",
            "loop 3d",
            "loop electric",
        ],
    ),
    ("kick drum", &["kick", "bd", "bassdrum", "bass drum", "drum bass", "kik"]),
    ("snare drum", &["snare", "sn", "rim", "sidestick", "stick"]),
    ("hi-hat", &["hihat", "hi hat", "hat", "hh", "hi-hat"]),
    ("cymbal", &["cymbal", "crash", "ride", "splash", "china", "cym"]),
    ("tom drum", &["tom", "toms", "floor"]),
    (
        "hand percussion",
        &[
            "clap",
            "shaker",
            "cowbell",
            "conga",
            "bongo",
            "tamb",
            "tambourine",
            "perc",
            "wood",
            "clav",
            "clave",
            "snap",
            "triangle",
            "cabasa",
            "guiro",
            "maraca",
            "maracas",
            "agogo",
            "timbale",
            "djembe",
            "castanets",
            "handclap",
            "drum roll",
            "roll",
            "claves",
            "block",
            "udu",
            "shekere",
            "metronome",
            "cuica",
            "hang",
            "ratchet",
            "slit drum",
            "spoons",
            "timpani",
            "ipu",
            "click",
            "djembe",
            "sangban",
            "dununba",
            "kenkeni",
            "drums",
            "bongo",
            "cabasa",
            "vibraslap",
            "tabla",
        ],
    ),
    ("bass", &["bass", "basses", "bassloops", "tb303", "acid", "briff"]),
    (
        "guitar",
        &[
            "guit",
            "guitar",
            "strum",
            "pluck",
            "afrostring",
            "tambura",
            "banjo",
            "harp",
            "sitar",
            "ukulele",
            "mandolin",
            "lute",
            "topshuur",
            "yueqin",
            "zither",
        ],
    ),
    (
        "keyboard",
        &[
            "piano",
            "organ",
            "harpsichord",
            "keys",
            "aeoline",
            "accordion",
            "harmonium",
            "xylo",
            "marimba",
            "glockenspiel",
            "vibraphone",
            "keyboard",
            "squeezebox",
        ],
    ),
    (
        "strings and pads",
        &[
            "strings",
            "string",
            "pad",
            "choir",
            "chorus",
            "drone",
            "cello",
            "violin",
            "ambi",
            "ambient",
            "stringsnpads",
            "suspense",
            "spookystring",
            "viola",
            "bell choir",
            "erhu",
            "gamba",
            "rabel",
            "yangqin",
            "youhikko",
        ],
    ),
    (
        "wind and brass",
        &[
            "trumpet",
            "flute",
            "brass",
            "horn",
            "sax",
            "saxophone",
            "bagpipes",
            "dijjeridoo",
            "didgeridoo",
            "harmonica",
            "whistle",
            "clarinet",
            "oboe",
            "tuba",
            "trombone",
            "recorder",
            "pipe",
            "dulzaina",
            "kazoo",
            "ney",
            "quena",
            "rozhok",
            "washint",
            "xun",
            "zhaleyka",
            "zurna",
            "yobel",
        ],
    ),
    ("bells", &["bell", "bells", "chime", "chimes", "gong", "dong", "ding", "toll"]),
    (
        "voice",
        &[
            "vocals",
            "singer",
            "sing",
            "song",
            "beatbox",
            "come and play",
            "hey",
            "ya",
            "oooo",
            "doy",
            "join us",
            "inspiration",
            "speech",
            "talk",
            "hello",
        ],
    ),
    (
        "human sounds",
        &[
            "cough",
            "sneeze",
            "laugh",
            "scream",
            "cry",
            "baby",
            "footsteps",
            "footstep",
            "breath",
            "burp",
            "slurp",
            "applause",
            "crowd",
            "party",
            "kiss",
            "yawn",
            "snore",
            "clapping",
            "human",
            "chew",
            "hiccup",
        ],
    ),
    (
        "animal",
        &[
            "animal",
            "animals",
            "dog",
            "cat",
            "kitten",
            "meow",
            "bird",
            "birds",
            "cricket",
            "crickets",
            "duck",
            "goose",
            "horse",
            "owl",
            "rooster",
            "sealion",
            "sea lion",
            "wolf",
            "crow",
            "cow",
            "pig",
            "sheep",
            "frog",
            "lion",
            "elephant",
            "monkey",
            "chimpanzee",
            "bear",
            "bee",
            "fly",
            "mosquito",
            "snake",
            "chicken",
            "hen",
            "donkey",
            "goat",
            "seagull",
            "dolphin",
            "whale",
            "tiger",
            "parrot",
            "pigeon",
            "albatross",
            "calf",
            "fish",
            "mouse",
            "rat",
            "camel",
            "zebra",
            "penguin",
            "turkey",
            "gull",
            "deer",
            "emu",
            "ferret",
            "flamingo",
            "foal",
            "grasshopper",
            "guinea fowl",
            "hamster",
            "hedgehog",
            "heron",
            "hyena",
            "jerboa",
            "ladybug",
            "lynx",
            "moose",
            "moth",
            "otter",
            "pelican",
            "pheasant",
            "porcupine",
            "raccoon",
            "rhinoceros",
            "snail",
            "sparrow",
            "spider",
            "squirrel",
            "stork",
            "wallaby",
            "weevil",
            "giant panda",
            "quetzal",
            "iora",
            "beetle",
            "booby",
            "chinchilla",
            "crane",
            "python",
        ],
    ),
    (
        "vehicles and machines",
        &[
            "car",
            "motorcycle",
            "airplane",
            "plane",
            "train",
            "engine",
            "sewing",
            "typing",
            "printer",
            "helicopter",
            "bicycle",
            "phone",
            "robot",
            "machine",
            "motor",
            "truck",
            "bus",
            "tractor",
            "ship",
            "boat",
            "clock",
            "camera",
            "drill",
            "saw",
            "vacuum",
            "mehackit phone",
            "siren",
            "horn car",
            "rocket",
            "tram",
            "submarine",
            "scooter",
            "excavator",
            "quadrocopter",
            "skateboard",
            "walkie talkie",
            "xbox",
            "watch",
            "x ray",
        ],
    ),
    (
        "water",
        &[
            "water",
            "bubbles",
            "bubble",
            "drop",
            "ripples",
            "plunge",
            "rain",
            "sea",
            "splash water",
            "river",
            "waves",
            "wave",
            "sauna",
            "pour",
            "shower",
            "toilet",
        ],
    ),
    (
        "electronic",
        &[
            "elec",
            "electronic",
            "glitch",
            "laser",
            "beep",
            "beeps",
            "zap",
            "computer",
            "alien",
            "synth",
            "techno",
            "rave",
            "blip",
            "blup",
            "bong",
            "warp",
            "sweep",
            "fairydust",
            "whir",
            "whoop",
            "zoop",
            "spiral",
            "screech",
            "peculiar",
            "space",
            "ping",
            "plip",
            "twang",
            "twip",
            "tick",
            "buzz",
            "fuzz",
            "chroma",
            "matrix1000",
            "juno",
            "korg",
            "nord",
            "orion",
            "filter",
            "start",
            "stop",
            "electric",
        ],
    ),
    (
        "impacts and objects",
        &[
            "door",
            "pop",
            "rattle",
            "hit",
            "impact",
            "swoosh",
            "woosh",
            "whoosh",
            "swash",
            "explode",
            "explosion",
            "cineboom",
            "boom",
            "till",
            "balloon",
            "balloons",
            "button",
            "boot",
            "chalkboard",
            "glass",
            "paper",
            "zipper",
            "keys",
            "coin",
            "knock",
            "creak",
            "slam",
            "toy",
            "toys",
            "ball",
            "cork",
            "box",
            "book",
            "scissors",
            "hammer",
            "wind",
            "dice",
            "jar",
            "jug",
            "newspaper",
            "pen",
            "umbrella",
            "vase",
            "whirligig",
            "hockey",
            "shield",
            "kinder",
        ],
    ),
];

/// Lower-case words of a name: splits on `_ - . space`, camelCase and digit runs.
pub fn words(name: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut prev_lower = false;
    for ch in name.chars() {
        let digit_run = cur.chars().next().is_some_and(|c| c.is_ascii_digit());
        if ch.is_ascii_alphanumeric() {
            let boundary = (ch.is_ascii_uppercase() && prev_lower) || (ch.is_ascii_digit() != digit_run);
            if boundary && !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
            prev_lower = ch.is_ascii_lowercase();
            cur.push(ch.to_ascii_lowercase());
        } else {
            if !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
            prev_lower = false;
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// First category whose keyword occurs as a word sequence in `words`.
pub fn categorise(words: &[String]) -> Option<&'static str> {
    let joined = format!(" {} ", words.join(" "));
    RULES.iter().find(|(_, kws)| kws.iter().any(|k| joined.contains(&format!(" {k} ")))).map(|(c, _)| *c)
}

/// Words of a file stem that name the sound (prefix codes and numbers dropped).
fn label_words(stem: &str) -> Vec<String> {
    const CODES: &[&str] = &[
        "bd", "sn", "elec", "ambi", "guit", "perc", "drum", "misc", "loop", "glitch", "mehackit", "ee", "wav", "flac", "ogg", "mp", "h",
        "s", "l", "r", "lite",
    ];
    words(stem)
        .into_iter()
        .filter(|w| !CODES.contains(&w.as_str()) && w.len() > 1)
        // keep model numbers like 808/909, drop take numbers like 01
        .filter(|w| !w.chars().all(|c| c.is_ascii_digit()) || w.len() >= 3)
        .collect()
}

const MODIFIERS: &[&str] = &[
    "female",
    "male",
    "hard",
    "soft",
    "open",
    "opened",
    "closed",
    "short",
    "long",
    "low",
    "hi",
    "high",
    "mid",
    "heavy",
    "light",
    "big",
    "small",
    "fat",
    "dirty",
    "acoustic",
    "electric",
    "distorted",
    "muffled",
    "harsh",
    "slight",
    "medium",
    "deep",
    "dark",
    "little",
    "old",
    "baby",
];

/// `"a dog"`, `"an owl"`, `"crickets"`: the label with an indefinite article for captions.
pub fn with_article(label: &str) -> String {
    let first = label.chars().next().unwrap_or('x');
    let plural = label.ends_with('s') && !label.ends_with("ss");
    if plural {
        label.to_string()
    } else if "aeiou8".contains(first) {
        format!("an {label}")
    } else {
        format!("a {label}")
    }
}

/// A readable label: the name's words (modifiers first), with the category noun added when absent.
pub fn make_label(stem: &str, category: &str) -> String {
    let mut w: Vec<String> = Vec::new();
    for x in label_words(stem) {
        if !w.contains(&x) {
            w.push(x);
        }
    }
    let (mods, rest): (Vec<String>, Vec<String>) = w.into_iter().partition(|x| MODIFIERS.contains(&x.as_str()));
    let w: Vec<String> = mods.into_iter().chain(rest).collect();
    let cat_last = category.split(' ').next_back().unwrap_or(category);
    let text = w.join(" ");
    if text.is_empty() {
        category.to_string()
    } else if text.replace([' ', '-'], "").contains(&cat_last.replace('-', ""))
        || category.split(" ").any(|cw| cw.len() >= 3 && !["and", "sounds"].contains(&cw) && w.iter().any(|x| x == cw))
        || ["animal", "human sounds", "voice", "vehicles and machines", "water", "impacts and objects", "electronic"].contains(&category)
    {
        text
    } else {
        format!("{text} {}", CATEGORIES.iter().find(|c| c.0 == category).map_or(category, |c| c.0))
    }
}

/// Captions written from a clip's labels: several phrasings (SPEC.md §5's text prompts are
/// captions; the corpus has labels, so captions are templates over them).
pub fn captions(category: &str, label: &str) -> Vec<String> {
    let phrase = CATEGORIES.iter().find(|c| c.0 == category).map_or(category, |c| c.1);
    let a = with_article(label);
    let mut out = vec![label.to_string(), format!("the sound of {a}"), format!("a recording of {a}"), format!("{phrase}: {label}")];
    if !label.contains(category) {
        out.push(format!("{label}, {category}"));
    }
    out.dedup();
    out
}

fn is_audio(p: &Path) -> bool {
    matches!(
        p.extension().and_then(|e| e.to_str()).map(|e| e.to_ascii_lowercase()).as_deref(),
        Some("wav" | "flac" | "ogg" | "oga" | "mp3")
    )
}

/// Every audio file below `dir`, in sorted order.
pub(crate) fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else { return };
    let mut entries: Vec<_> = rd.flatten().map(|e| e.path()).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            walk(&p, out);
        } else if is_audio(&p) {
            out.push(p);
        }
    }
}

fn rel_to(data_dir: &Path, p: &Path) -> String {
    p.strip_prefix(data_dir).unwrap_or(p).to_string_lossy().replace('\\', "/")
}

fn item(
    data_dir: &Path,
    path: PathBuf,
    package: &str,
    licence: &str,
    name_words: Vec<String>,
    stem: &str,
    extra_tags: &[&str],
) -> Option<SourceItem> {
    let category = categorise(&name_words)?;
    let label = make_label(stem, category);
    let mut tags: Vec<String> = vec![category.to_string()];
    let extra = extra_tags.iter().filter(|t| !t.is_empty()).map(|t| t.to_lowercase());
    for w in extra.chain(label_words(stem)) {
        if !tags.contains(&w) {
            tags.push(w);
        }
    }
    let rel = rel_to(data_dir, &path);
    Some(SourceItem {
        group: rel.clone(),
        rel,
        path,
        package: package.into(),
        licence: licence.into(),
        category: category.into(),
        captions: captions(category, &label),
        label,
        tags,
    })
}

fn stem(p: &Path) -> String {
    p.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default()
}

/// Finds and labels every usable recording under `data_dir/deb/`. Files no rule matches are
/// returned in the second list (reported by `smg data build`, not silently dropped).
pub fn discover(data_dir: &Path) -> Result<(Vec<SourceItem>, Vec<String>)> {
    let deb = data_dir.join("deb");
    if !deb.is_dir() {
        return Err(DataError::Missing { what: "the fetched Debian packages".into(), path: deb });
    }
    let mut items = Vec::new();
    let mut unlabelled = Vec::new();
    let mut push = |it: Option<SourceItem>, p: &Path| match it {
        Some(i) => items.push(i),
        None => unlabelled.push(rel_to(data_dir, p)),
    };

    // sonic-pi-samples: prefix = category, rest = description.
    let mut files = Vec::new();
    walk(&deb.join("sonic-pi-samples/usr/share/sonic-pi/samples"), &mut files);
    for p in files {
        let s = stem(&p);
        let it = item(data_dir, p.clone(), "sonic-pi-samples", "CC0-1.0 (freesound.org, see package README)", words(&s), &s, &[]);
        push(it, &p);
    }

    // scratch: folder = category, file name = description.
    let mut files = Vec::new();
    walk(&deb.join("scratch/usr/share/scratch/Media/Sounds"), &mut files);
    for p in files {
        let s = stem(&p);
        let folder = p.parent().and_then(|d| d.file_name()).map(|f| f.to_string_lossy().into_owned()).unwrap_or_default();
        let mut w = words(&s);
        w.extend(words(&folder));
        let it = item(data_dir, p.clone(), "scratch", "CC-BY-SA-3.0 (Scratch media library)", w, &s, &[&folder]);
        push(it, &p);
    }

    // lmms-common: folders basses, beats, drums, effects, instruments, latin, misc, stringsnpads…
    let mut files = Vec::new();
    walk(&deb.join("lmms-common/usr/share/lmms/samples"), &mut files);
    for p in files {
        let folder = p.parent().and_then(|d| d.file_name()).map(|f| f.to_string_lossy().into_owned()).unwrap_or_default();
        if folder == "shapes" || folder == "waveforms" {
            continue;
        }
        let s = stem(&p);
        let mut w = words(&s);
        w.extend(words(&folder));
        let it = item(data_dir, p.clone(), "lmms-common", "GPL-2+", w, &s, &[&folder]);
        push(it, &p);
    }

    // qabcs-data: noises named by object; abc1.json gives a category for most.
    let qroot = deb.join("qabcs-data/usr/share/qabcs/abcs");
    let qcat = qabcs_categories(&qroot.join("en/abc1.json"));
    let mut files = Vec::new();
    walk(&qroot.join("all/noises"), &mut files);
    for p in files {
        let s = stem(&p);
        let file = p.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default();
        let group = qcat.get(&file).cloned().unwrap_or_default();
        let mut w = words(&s);
        w.extend(words(&group));
        let it = item(data_dir, p.clone(), "qabcs-data", "GPL-3+", w, &s, &[&group]);
        push(it, &p);
    }

    // hydrogen-drumkits: drumkit.xml maps each file to an instrument name.
    let kits = deb.join("hydrogen-drumkits/usr/share/hydrogen/data/drumkits");
    if let Ok(rd) = std::fs::read_dir(&kits) {
        let mut dirs: Vec<_> = rd.flatten().map(|e| e.path()).filter(|p| p.is_dir()).collect();
        dirs.sort();
        for kit in dirs {
            for (p, instrument, licence) in hydrogen_kit(&kit) {
                let mut w = words(&instrument);
                w.extend(words(&stem(&p)));
                let kit_name = kit.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default();
                let it = item(data_dir, p.clone(), "hydrogen-drumkits", &licence, w, &instrument, &["drum kit", &kit_name]);
                push(it, &p);
            }
        }
    }
    Ok((items, unlabelled))
}

/// The rendered music set (`scripts/render_music.py` wrote `music/render/sources.jsonl`):
/// category = genre or rhythm; tags = genre, instruments, meter, tempo bucket, mode.
pub fn discover_music(data_dir: &Path) -> Result<Vec<SourceItem>> {
    let list = data_dir.join("music/render/sources.jsonl");
    let text = std::fs::read_to_string(&list)
        .map_err(|_| DataError::Missing { what: "the rendered music (scripts/render_music.py)".into(), path: list.clone() })?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let bad = |d: String| DataError::Manifest { path: list.clone(), line: i + 1, detail: d };
        let v: serde_json::Value = serde_json::from_str(line).map_err(|e| bad(e.to_string()))?;
        let get = |k: &str| v[k].as_str().map(str::to_string).ok_or_else(|| bad(format!("missing \"{k}\"")));
        let (file, genre, meter, mode) = (get("file")?, get("genre")?, get("meter")?, get("mode")?);
        let instruments: Vec<String> =
            v["instruments"].as_array().into_iter().flatten().filter_map(|x| x.as_str().map(str::to_string)).collect();
        let tags: Vec<String> = v["tags"].as_array().into_iter().flatten().filter_map(|x| x.as_str().map(str::to_string)).collect();
        let tempo = v["tempo"].as_u64().unwrap_or(0);
        let bucket = tags.iter().find(|t| t.ends_with(" tempo")).cloned().unwrap_or_default();
        let inst = if instruments.is_empty() { "instruments".to_string() } else { join_words(&instruments) };
        let label = format!("{genre} on {inst}");
        let captions = vec![
            label.clone(),
            format!("{} {genre} played on {inst}", with_article(&bucket).replace(" tempo", "-tempo")),
            format!("{genre} music in {meter} at {tempo} beats per minute"),
            format!("{} {genre} tune with {inst}", with_article(&mode)),
        ];
        out.push(SourceItem {
            path: data_dir.join(&file),
            rel: file,
            group: get("source")?,
            package: if v["kind"] == "mma groove" { "mma (rendered)".into() } else { "music21 (rendered)".into() },
            licence: get("licence")?,
            category: genre,
            label,
            tags,
            captions,
        });
    }
    Ok(out)
}

fn join_words(xs: &[String]) -> String {
    match xs.len() {
        0 => String::new(),
        1 => xs[0].clone(),
        n => format!("{} and {}", xs[..n - 1].join(", "), xs[n - 1]),
    }
}

/// `noise file name -> group` ("animals", "instrument", "toys", "misc", …) from qabcs's abc1.json.
fn qabcs_categories(path: &Path) -> HashMap<String, String> {
    let mut map = HashMap::new();
    let Ok(text) = std::fs::read_to_string(path) else { return map };
    let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) else { return map };
    for letter in v["letters"].as_array().into_iter().flatten() {
        for (_, groups) in letter.as_object().into_iter().flatten() {
            for (group, entry) in groups.as_object().into_iter().flatten() {
                if let Some(noise) = entry.get("noises").and_then(|n| n.as_str()) {
                    map.entry(noise.to_string()).or_insert_with(|| group.clone());
                }
            }
        }
    }
    map
}

/// (file, instrument name, licence) for every layer of a Hydrogen kit.
fn hydrogen_kit(kit: &Path) -> Vec<(PathBuf, String, String)> {
    let xml_path = kit.join("drumkit.xml");
    let Ok(text) = std::fs::read_to_string(&xml_path) else { return Vec::new() };
    let Ok(doc) = roxmltree::Document::parse(&text) else { return Vec::new() };
    let root = doc.root_element();
    let child_text =
        |n: roxmltree::Node, tag: &str| n.children().find(|c| c.has_tag_name(tag)).and_then(|c| c.text()).unwrap_or("").trim().to_string();
    let licence = child_text(root, "license");
    let author = child_text(root, "author");
    let licence = format!("{} (kit by {})", if licence.is_empty() { "licence in the package's copyright file" } else { &licence }, author);
    let mut out = Vec::new();
    for inst in root.descendants().filter(|n| n.has_tag_name("instrument")) {
        let name = child_text(inst, "name");
        for f in inst.descendants().filter(|n| n.has_tag_name("filename")) {
            if let Some(file) = f.text() {
                let p = kit.join(file.trim());
                if p.is_file() && is_audio(&p) && !out.iter().any(|(q, _, _)| q == &p) {
                    out.push((p, name.clone(), licence.clone()));
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cat(name: &str) -> Option<&'static str> {
        categorise(&words(name))
    }

    #[test]
    fn words_split_camel_case_and_separators() {
        assert_eq!(words("Cough-female"), vec!["cough", "female"]);
        assert_eq!(words("drum_cymbal_open"), vec!["drum", "cymbal", "open"]);
        assert_eq!(words("MotorcyclePassing"), vec!["motorcycle", "passing"]);
        assert_eq!(words("hihat_closed01"), vec!["hihat", "closed", "01"]);
        assert_eq!(words("bd_808"), vec!["bd", "808"]);
    }

    #[test]
    fn keyword_rules_pick_sensible_categories() {
        assert_eq!(cat("bd_808"), Some("kick drum"));
        assert_eq!(cat("drum_bass_hard"), Some("kick drum"));
        assert_eq!(cat("bass_hard01"), Some("bass"));
        assert_eq!(cat("sn_dub"), Some("snare drum"));
        assert_eq!(cat("hihat_opened01"), Some("hi-hat"));
        assert_eq!(cat("drum_cymbal_closed"), Some("cymbal"));
        assert_eq!(cat("Dog1"), Some("animal"));
        assert_eq!(cat("Cough-male"), Some("human sounds"));
        assert_eq!(cat("loop_amen"), Some("drum loop"));
        assert_eq!(cat("tabla_ghe1"), Some("tabla"));
        assert_eq!(cat("vinyl_backspin"), Some("scratch and vinyl"));
        assert_eq!(cat("MotorcyclePassing"), Some("vehicles and machines"));
        assert_eq!(cat("church_organ01"), Some("keyboard"));
        assert_eq!(cat("qwertyuiop"), None);
    }

    #[test]
    fn labels_and_captions_read_well() {
        assert_eq!(make_label("bd_808", "kick drum"), "808 kick drum");
        assert_eq!(make_label("Cough-female", "human sounds"), "female cough");
        assert_eq!(make_label("hihat_closed01", "hi-hat"), "closed hihat");
        let c = captions("animal", "dog");
        assert!(c.len() >= 3, "{c:?}");
        assert!(c.contains(&"the sound of a dog".to_string()), "{c:?}");
        assert!(captions("animal", "crickets").contains(&"the sound of crickets".to_string()));
    }
}
