//! The broad corpus `sound-medium`: the small corpus's five packages plus the packages of
//! `scripts/assets-medium.lock` (speech, game and desktop sound sets, ambiences, music), labelled
//! with finer categories than the small corpus (dog, rain, explosion, a man speaking, …) so that
//! no category dominates. Each package has path rules (music folders, voice folders, folders to
//! skip) checked before the keyword table; the keyword table sees the words of the file's path
//! below the package's sound folder.

use crate::error::Result;
use crate::labels::{captions, categorise, discover, make_label, words, SourceItem};
use std::path::{Path, PathBuf};

/// Categories only the broad corpus has, with the noun phrase captions use and their keywords
/// (checked before the small corpus's rules; first match wins).
pub const FINE: &[(&str, &str, &[&str])] = &[
    ("dog", "a dog barking", &["dog", "dogs", "bark", "barking", "puppy", "woof"]),
    ("cat", "a cat meowing", &["cat", "cats", "meow", "kitten", "purr"]),
    (
        "farm animals",
        "a farm animal",
        &[
            "cow",
            "cows",
            "cattle",
            "ox",
            "sheep",
            "goat",
            "pig",
            "pigs",
            "horse",
            "horses",
            "donkey",
            "chicken",
            "chickens",
            "hen",
            "rooster",
            "farm animal",
            "moo",
            "neigh",
            "camel",
        ],
    ),
    (
        "birds",
        "birds singing",
        &[
            "bird", "birds", "bird1", "bird2", "bird3", "bird4", "bird5", "bird6", "owl", "crow", "duck", "seagull", "gull", "parrot",
            "cuckoo", "pigeon", "sparrow", "flamingo", "peacock", "eagle", "hawk", "chirp", "tweet",
        ],
    ),
    ("insects", "insects buzzing", &["cricket", "crickets", "crickets1", "bee", "bees", "mosquito", "insect", "insects", "cicada", "fly"]),
    (
        "wild animals",
        "a wild animal",
        &[
            "wolf", "lion", "tiger", "bear", "elephant", "monkey", "stag", "deer", "moose", "coyote", "frog", "snake", "whale", "seal",
            "boar", "hyena", "fox", "yeti",
        ],
    ),
    ("rain", "rain falling", &["rain", "raining", "drizzle", "rainstorm"]),
    ("thunder", "thunder rumbling", &["thunder", "thunderstorm", "lightning"]),
    ("wind", "wind blowing", &["wind", "windy", "gust", "blizzard", "howling"]),
    ("fire", "a fire burning", &["fire", "flame", "flames", "burning", "embers", "campfire", "torch", "flamethrower", "blowtorch"]),
    (
        "explosion",
        "an explosion",
        &[
            "explosion",
            "explosions",
            "explons",
            "explode",
            "exploding",
            "blast",
            "bomb",
            "dynamite",
            "firecracker",
            "boom",
            "kaboom",
            "grenade",
            "nuke",
        ],
    ),
    (
        "gunshot",
        "a gunshot",
        &[
            "gun", "guns", "gunshot", "shoot", "shot", "pistol", "rifle", "musket", "shotgun", "minigun", "bullet", "bullets", "ricochet",
            "ricoche1", "ricoche2", "ricoche3", "cannon",
        ],
    ),
    (
        "metal clang",
        "metal clanging",
        &["sword", "swords", "swordhit", "clang", "anvil", "blade", "metal", "clash", "goldping", "ironping"],
    ),
    (
        "whoosh",
        "a whoosh",
        &[
            "whoosh", "swoosh", "swish", "swing", "throw", "woosh", "flyby", "slide", "sliding", "skid", "arrowfly", "bow", "jav",
            "javelin", "pike", "spear",
        ],
    ),
    (
        "rustling and harvesting",
        "rustling leaves and crops",
        &["gather", "gathering", "foraging", "farming", "harvest", "rustle", "rustling", "leaves"],
    ),
    ("footsteps", "footsteps", &["footstep", "footsteps", "steps", "step", "walk", "walking", "singlesteps", "running"]),
    ("crowd and applause", "a crowd", &["applause", "cheer", "cheering", "crowd", "audience", "tavern", "taverns", "inn", "biginn"]),
    ("laughter", "someone laughing", &["laugh", "laughing", "laughter", "giggle", "laughs"]),
    ("glass", "glass breaking", &["glass", "shatter", "icecrash", "crystallo"]),
    ("door", "a door", &["door", "doors", "gate", "creak", "knock", "knocking"]),
    ("clock", "a clock ticking", &["clock", "tick", "ticking", "tock", "minetick"]),
    ("telephone", "a telephone ringing", &["phone", "telephone", "ringing", "dial", "busy"]),
    (
        "woodwork",
        "wood being sawn and chopped",
        &["saw", "sawing", "woodcutting", "woodcutter", "chop", "chopping", "tree falling", "lumber", "lumbering", "axe", "carpenter"],
    ),
    (
        "stonework and mining",
        "stone and metal being worked",
        &[
            "hammer",
            "hammering",
            "stonecutter",
            "stonemason",
            "stone",
            "mine",
            "mining",
            "pickaxe",
            "pickhammer",
            "dig",
            "digging",
            "smith",
            "smiths",
            "forge",
            "stonegrind",
            "drill",
        ],
    ),
    (
        "car and engine",
        "a car passing",
        &["car", "cars", "engine", "motor", "truck", "motorcycle", "traffic", "tank", "vehicle", "tractor"],
    ),
    ("aircraft", "an aircraft flying", &["aircraft", "airplane", "plane", "rcplane", "helicopter", "jet", "jetpack", "rocket"]),
    (
        "alarm and alert",
        "an alarm",
        &["alarm", "alarms", "alert", "alertmid", "warning", "error", "siren", "countdown", "hurry", "attack alarm", "under attack"],
    ),
    (
        "interface click",
        "an interface click",
        &[
            "menu",
            "click",
            "button",
            "cancel",
            "ok",
            "select",
            "selected",
            "switch",
            "pause",
            "skip",
            "message",
            "dialog",
            "notification",
            "login",
            "logout",
            "device",
            "complete",
            "beep",
        ],
    ),
    (
        "coins and pickups",
        "a coin being collected",
        &["coin", "coins", "pickup", "pickup1", "pickup2", "pickup3", "collect", "powerup", "bonus", "treasure"],
    ),
];

/// Categories set by path rules only (speech, music, ambience), with their caption phrase.
pub const FIXED: &[(&str, &str)] = &[
    ("woman speaking", "a woman speaking"),
    ("man speaking", "a man speaking"),
    ("spoken word", "a word spoken aloud"),
    ("character voice", "a cartoon voice"),
    ("announcer voice", "an announcer speaking"),
    ("game music", "music"),
    ("cartoon effects", "a cartoon sound effect"),
    ("outdoor ambience", "an outdoor ambience"),
];

/// Where a fine category's recordings go when it has fewer than [`MIN_SOURCES`] of them (too
/// few for a split of their own); their labels and captions keep the fine name ("a dog barking").
const PARENT: &[(&str, &str)] = &[
    ("dog", "animal"),
    ("cat", "animal"),
    ("insects", "animal"),
    ("laughter", "human sounds"),
    ("clock", "impacts and objects"),
    ("glass", "impacts and objects"),
    ("door", "impacts and objects"),
    ("coins and pickups", "cartoon effects"),
    ("telephone", "alarm and alert"),
    ("thunder", "rain"),
    ("aircraft", "vehicles and machines"),
];

/// Fewest source recordings a fine category needs to stand alone.
pub const MIN_SOURCES: usize = 12;

/// What a path rule does with the files whose path contains its fragment.
#[derive(Debug, Clone, Copy)]
enum Rule {
    Skip,
    /// Fixed category and label; `{dir}` in the label is the file's folder name (a language code
    /// becomes the language's name).
    Fixed(&'static str, &'static str),
    /// `male`/`female` in the file name picks a man or a woman speaking; label from the folder.
    Speaker(&'static str),
}

struct Source {
    package: &'static str,
    /// The sound folder under `deb/<package>/`.
    root: &'static str,
    licence: &'static str,
    rules: &'static [(&'static str, Rule)],
    /// Category and label of files no rule or keyword matches (`None`: reported unused).
    fallback: Option<(&'static str, &'static str)>,
}

const CARTOON: Option<(&str, &str)> = Some(("cartoon effects", "cartoon game sound effect"));

const SOURCES: &[Source] = &[
    Source {
        package: "supertuxkart-data",
        root: "usr/share/games/supertuxkart/data",
        licence: "CC-BY-SA-3.0 / CC-BY-SA-4.0 / CC0 (SuperTuxKart data)",
        rules: &[
            ("music/", Rule::Fixed("game music", "game music")),
            ("speech", Rule::Fixed("character voice", "cartoon villain voice")),
            ("library/", Rule::Skip),
        ],
        fallback: None,
    },
    Source {
        package: "asterisk-core-sounds-en-wav",
        root: "usr/share/asterisk/sounds/en_US_f_Allison",
        licence: "CC-BY-SA-3.0 (Asterisk core sounds, Allison Smith)",
        rules: &[
            ("silence/", Rule::Skip),
            ("beep", Rule::Skip),
            ("tone", Rule::Skip),
            ("", Rule::Fixed("woman speaking", "woman speaking on the telephone")),
        ],
        fallback: None,
    },
    Source {
        package: "ktuberling-data",
        root: "usr/share/ktuberling/sounds",
        licence: "GPL-2+ (KTuberling sounds)",
        rules: &[("", Rule::Fixed("spoken word", "word spoken in {dir}"))],
        fallback: None,
    },
    Source {
        package: "hedgewars-data",
        root: "usr/share/games/hedgewars/Data",
        licence: "GPL-2 (Hedgewars data)",
        rules: &[("music/", Rule::Fixed("game music", "game music")), ("voices/", Rule::Fixed("character voice", "cartoon {dir} voice"))],
        fallback: CARTOON,
    },
    Source {
        package: "warmux-data",
        root: "usr/share/games/warmux",
        licence: "GPL-2+ (Warmux data)",
        rules: &[
            ("music/", Rule::Fixed("game music", "game music")),
            ("voices/", Rule::Fixed("character voice", "cartoon character voice")),
        ],
        fallback: CARTOON,
    },
    Source {
        package: "widelands-data",
        root: "usr/share/games/widelands/data",
        licence: "GPL-2+ / CC-BY-SA-3.0 (Widelands data)",
        rules: &[("music/", Rule::Fixed("game music", "game music")), ("message", Rule::Skip), ("lobby", Rule::Skip)],
        fallback: None,
    },
    Source {
        package: "0ad-data",
        root: "usr/share/games/0ad/mods/public/public.zip.audio/audio",
        licence: "CC-BY-SA-3.0 (0 A.D. art)",
        rules: &[
            ("music/", Rule::Fixed("game music", "game music")),
            ("voice/", Rule::Speaker("speaking {dir}")),
            ("interface/select", Rule::Skip),
            ("interface/complete", Rule::Skip),
            ("ambient/dayscape", Rule::Fixed("outdoor ambience", "countryside daytime ambience")),
        ],
        fallback: None,
    },
    Source {
        package: "supertux-data",
        root: "usr/share/games/supertux2",
        licence: "GPL-2+ / GPL-3+ / CC-BY-SA (SuperTux data)",
        rules: &[("music/", Rule::Fixed("game music", "game music")), ("speech/", Rule::Fixed("character voice", "cartoon penguin voice"))],
        fallback: CARTOON,
    },
    Source {
        package: "freedroidrpg-data",
        root: "usr/share/freedroidrpg/data",
        licence: "GPL-2+ (FreedroidRPG data)",
        rules: &[
            ("music/", Rule::Fixed("game music", "game music")),
            ("titles/", Rule::Skip),
            ("voice_samples/", Rule::Fixed("character voice", "robot voice")),
            ("tux_ingame_comments/", Rule::Fixed("character voice", "cartoon penguin voice")),
            ("bot_sounds/", Rule::Fixed("character voice", "robot voice")),
        ],
        fallback: CARTOON,
    },
    Source {
        package: "warzone2100-data",
        root: "usr/share/games/warzone2100",
        licence: "GPL-2+ (Warzone 2100 data)",
        rules: &[
            ("music/", Rule::Fixed("game music", "game music")),
            ("memressp/", Rule::Fixed("announcer voice", "announcer reading a status message")),
            ("taunts/", Rule::Fixed("character voice", "soldier shouting a taunt")),
            ("weapons/bld", Rule::Skip),
            ("weapons/build", Rule::Skip),
            ("weapons/weld", Rule::Skip),
            ("weapons/", Rule::Fixed("gunshot", "cannon and gun fire")),
            ("tutorial/", Rule::Fixed("announcer voice", "instructor explaining a game")),
            ("sequenceaudio/", Rule::Fixed("announcer voice", "narrator reading a briefing")),
            ("extra/", Rule::Fixed("announcer voice", "radio operator reporting")),
            ("nexus/", Rule::Fixed("announcer voice", "synthetic voice announcing")),
            ("vtoltalk/", Rule::Fixed("announcer voice", "pilot talking on the radio")),
            ("trnsppil/", Rule::Fixed("announcer voice", "pilot talking on the radio")),
            ("coltive/", Rule::Fixed("announcer voice", "radio operator reporting")),
            ("proxmessages/", Rule::Fixed("announcer voice", "radio operator reporting")),
            ("countdown/", Rule::Fixed("announcer voice", "announcer counting down")),
        ],
        fallback: None,
    },
    Source {
        package: "frozen-bubble-data",
        root: "usr/share/games/frozen-bubble/snd",
        licence: "GPL-2 (Frozen Bubble data)",
        rules: &[("zik", Rule::Fixed("game music", "game music"))],
        fallback: CARTOON,
    },
    Source {
        package: "extremetuxracer-data",
        root: "usr/share/games/etr",
        licence: "GPL-2+ (Extreme Tux Racer data)",
        rules: &[("music/", Rule::Fixed("game music", "game music"))],
        fallback: CARTOON,
    },
    Source {
        package: "sound-theme-freedesktop",
        root: "usr/share/sounds/freedesktop/stereo",
        licence: "GPL-2+ / CC-BY-SA-3.0 (freedesktop sound theme)",
        rules: &[("audio-test", Rule::Skip), ("audio-channel", Rule::Fixed("spoken word", "voice naming a loudspeaker"))],
        fallback: None,
    },
    Source {
        package: "pinball-data",
        root: "usr/share/games/pinball",
        licence: "GPL-2 (Emilia Pinball data)",
        rules: &[(".ogg", Rule::Fixed("game music", "pinball game music"))],
        fallback: CARTOON,
    },
    // Dog recordings from packages otherwise left out: only their barks are taken, so that "a
    // dog barking" has recordings of its own (13 with the small corpus's three) instead of
    // three single barks folded into "animal".
    Source {
        package: "lugaru-data",
        root: "usr/share/games/lugaru/Sounds",
        licence: "CC-BY-SA-3.0 (Lugaru data)",
        rules: &[
            ("barkgrowl", Rule::Fixed("dog", "dog barking and growling")),
            ("bark", Rule::Fixed("dog", "dog barking")),
            ("", Rule::Skip),
        ],
        fallback: None,
    },
    Source {
        package: "scorched3d-data",
        root: "usr/share/games/scorched3d/data/globalmods/apoc/data/wav/misc",
        licence: "CC-BY-SA-3.0 (Scorched3D Apocalypse mod)",
        rules: &[("dog", Rule::Fixed("dog", "dog barking")), ("", Rule::Skip)],
        fallback: None,
    },
    Source {
        package: "trophy-data",
        root: "usr/share/games/trophy/sounds",
        licence: "GPL-2 (Trophy data)",
        rules: &[("dog", Rule::Fixed("dog", "dog barking")), ("", Rule::Skip)],
        fallback: None,
    },
    Source {
        package: "etw-data",
        root: "usr/share/games/etw/snd",
        licence: "GPL-2+ (Eat The Whistle data)",
        rules: &[("dog", Rule::Fixed("dog", "dog barking")), ("", Rule::Skip)],
        fallback: None,
    },
    Source {
        package: "mate-media-common",
        root: "usr/share/sounds/mate/default/alerts",
        licence: "GPL-2+ (MATE sound theme)",
        rules: &[("bark", Rule::Fixed("dog", "dog barking alert")), ("", Rule::Skip)],
        fallback: None,
    },
];

/// Names of the packages the broad corpus adds to the small corpus's.
pub fn added_packages() -> Vec<&'static str> {
    SOURCES.iter().map(|s| s.package).collect()
}

/// The caption phrase of any category of either corpus.
pub fn phrase(category: &str) -> Option<&'static str> {
    FINE.iter().find(|c| c.0 == category).map(|c| c.1).or_else(|| FIXED.iter().find(|c| c.0 == category).map(|c| c.1))
}

/// First fine category whose keyword occurs as a word sequence in `words`.
pub fn categorise_fine(words: &[String]) -> Option<&'static str> {
    let joined = format!(" {} ", words.join(" "));
    FINE.iter().find(|(_, _, kws)| kws.iter().any(|k| joined.contains(&format!(" {k} ")))).map(|(c, _, _)| *c)
}

fn language(code: &str) -> String {
    const NAMES: &[(&str, &str)] = &[
        ("ca", "Catalan"),
        ("da", "Danish"),
        ("de", "German"),
        ("el", "Greek"),
        ("en", "English"),
        ("es", "Spanish"),
        ("fr", "French"),
        ("fi", "Finnish"),
        ("ga", "Irish"),
        ("gl", "Galician"),
        ("it", "Italian"),
        ("lt", "Lithuanian"),
        ("nds", "Low German"),
        ("nl", "Dutch"),
        ("nn", "Norwegian"),
        ("pa", "Punjabi"),
        ("pt", "Portuguese"),
        ("ro", "Romanian"),
        ("ru", "Russian"),
        ("sl", "Slovenian"),
        ("sr", "Serbian"),
        ("sv", "Swedish"),
        ("uk", "Ukrainian"),
        ("wa", "Walloon"),
        ("zh", "Chinese"),
        ("latin", "Latin"),
        ("greek", "Ancient Greek"),
        ("persian", "Old Persian"),
        ("napatan", "Meroitic"),
        ("global", "an ancient language"),
    ];
    let code = code.split('@').next().unwrap_or(code);
    NAMES.iter().find(|n| n.0 == code).map_or_else(|| code.replace(['_', '-'], " "), |n| n.1.to_string())
}

/// Captions for the broad corpus: the small corpus's templates with this corpus's phrases.
fn fine_captions(category: &str, label: &str) -> Vec<String> {
    let mut out = captions(category, label);
    if let Some(p) = phrase(category) {
        let generic = format!("{category}: {label}");
        for c in out.iter_mut().filter(|c| **c == generic) {
            *c = format!("{p}: {label}");
        }
        if !out.iter().any(|c| c == p) {
            out.insert(0, p.to_string());
        }
    }
    out.dedup();
    out
}

fn fine_item(rel: String, path: PathBuf, package: &str, licence: &str, category: &str, label: String, tags: Vec<String>) -> SourceItem {
    let mut t = vec![category.to_string()];
    for w in tags {
        if !t.contains(&w) && !w.is_empty() {
            t.push(w);
        }
    }
    SourceItem {
        group: rel.clone(),
        rel,
        path,
        package: package.into(),
        licence: licence.into(),
        category: category.into(),
        captions: fine_captions(category, &label),
        label,
        tags: t,
    }
}

/// The label for a keyword-matched file: its name's words with the category noun.
fn keyword_label(stem: &str, category: &str) -> String {
    let label = make_label(stem, category);
    let has_category = category.split(' ').any(|w| w.len() > 3 && label.contains(w));
    if has_category || label.split(' ').count() > 3 || label == category {
        label
    } else {
        format!("{label} ({category})")
    }
}

/// Labels one file of a broad-corpus package; `None` when skipped or unmatched (`Err(rel)`).
fn label_file(data_dir: &Path, src: &Source, root: &Path, p: PathBuf) -> std::result::Result<Option<SourceItem>, String> {
    let below = p.strip_prefix(root).unwrap_or(&p).to_string_lossy().replace('\\', "/");
    let rel = p.strip_prefix(data_dir).unwrap_or(&p).to_string_lossy().replace('\\', "/");
    let lower = below.to_lowercase();
    let stem = p.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    let dir = p.parent().and_then(|d| d.file_name()).map(|f| f.to_string_lossy().into_owned()).unwrap_or_default();
    let path_words = words(&below.rsplit_once('.').map_or(below.as_str(), |(a, _)| a).replace('/', " "));
    for (frag, rule) in src.rules {
        if !lower.contains(&frag.to_lowercase()) {
            continue;
        }
        let fill = |l: &str| l.replace("{dir}", &language(&dir.to_lowercase()));
        let item = match *rule {
            Rule::Skip => return Ok(None),
            Rule::Fixed(cat, label) => {
                fine_item(rel, p, src.package, src.licence, cat, fill(label), vec![dir.to_lowercase(), stem.to_lowercase()])
            }
            Rule::Speaker(label) => {
                let w = words(&stem);
                let (cat, who) = if w.iter().any(|x| x == "female") { ("woman speaking", "woman") } else { ("man speaking", "man") };
                let civ = below.split('/').nth(1).unwrap_or("");
                let label = format!("{who} {}", label.replace("{dir}", &language(civ)));
                fine_item(rel, p, src.package, src.licence, cat, label, vec![civ.to_string()])
            }
        };
        return Ok(Some(item));
    }
    let (cat, label) = match categorise_fine(&path_words).or_else(|| categorise(&path_words)) {
        Some(cat) => (cat, keyword_label(&stem, cat)),
        None => match src.fallback {
            Some((cat, label)) => (cat, label.to_string()),
            None => return Err(rel),
        },
    };
    let tags = path_words.iter().filter(|w| w.len() > 2 && !w.chars().all(|c| c.is_ascii_digit())).cloned().collect();
    Ok(Some(fine_item(rel, p, src.package, src.licence, cat, label, tags)))
}

/// Finds and labels every recording of the broad corpus: the small corpus's packages with their
/// categories refined by [`FINE`], then every package of [`SOURCES`] that has been fetched.
/// Returns the items, the unmatched files and the packages that are missing.
pub fn discover_medium(data_dir: &Path) -> Result<(Vec<SourceItem>, Vec<String>, Vec<&'static str>)> {
    let (small, mut unlabelled) = discover(data_dir)?;
    let mut items: Vec<SourceItem> = small
        .into_iter()
        .map(|mut it| {
            let mut w = words(it.rel.rsplit('/').next().unwrap_or(""));
            w.extend(it.tags.iter().flat_map(|t| words(t)));
            if let Some(cat) = categorise_fine(&w) {
                if cat != it.category {
                    let stem = Path::new(&it.rel).file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
                    let label = keyword_label(&stem, cat);
                    it = fine_item(it.rel.clone(), it.path.clone(), &it.package, &it.licence, cat, label, it.tags.clone());
                }
            }
            it
        })
        .collect();
    let mut missing = Vec::new();
    for src in SOURCES {
        let root = data_dir.join("deb").join(src.package).join(src.root);
        if !root.is_dir() {
            missing.push(src.package);
            continue;
        }
        let mut files = Vec::new();
        crate::labels::walk(&root, &mut files);
        for p in files {
            match label_file(data_dir, src, &root, p) {
                Ok(Some(it)) => items.push(it),
                Ok(None) => {}
                Err(rel) => unlabelled.push(rel),
            }
        }
    }
    fold_rare(&mut items);
    Ok((items, unlabelled, missing))
}

/// Moves the recordings of fine categories with fewer than [`MIN_SOURCES`] into their parent.
fn fold_rare(items: &mut [SourceItem]) {
    let count = |items: &[SourceItem], c: &str| items.iter().filter(|it| it.category == c).count();
    for (child, parent) in PARENT {
        if count(items, child) >= MIN_SOURCES {
            continue;
        }
        for it in items.iter_mut().filter(|it| it.category == *child) {
            let mut captions = fine_captions(parent, &it.label);
            if let Some(p) = phrase(child) {
                captions.insert(0, p.to_string());
            }
            it.captions = captions;
            it.category = parent.to_string();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fine(name: &str) -> Option<&'static str> {
        categorise_fine(&words(name))
    }

    #[test]
    fn fine_rules_pick_sensible_categories() {
        assert_eq!(fine("ambient/weather/rain_11"), Some("rain"));
        assert_eq!(fine("actor/fauna/animal/horse_death1"), Some("farm animals"));
        assert_eq!(fine("animals/crickets1_00"), Some("insects"));
        assert_eq!(fine("Dog1"), Some("dog"));
        assert_eq!(fine("weapons/explosion9"), Some("explosion"));
        assert_eq!(fine("attack/weapon/Musket_1"), Some("gunshot"));
        assert_eq!(fine("atlanteans/saw/sawing_02"), Some("woodwork"));
        assert_eq!(fine("phone-incoming-call"), Some("telephone"));
        assert_eq!(fine("bd_808"), None);
    }

    #[test]
    fn languages_and_captions_read_well() {
        assert_eq!(language("fr"), "French");
        assert_eq!(language("napatan"), "Meroitic");
        let c = fine_captions("dog", "dog barking");
        assert!(c.contains(&"a dog barking".to_string()), "{c:?}");
        assert!(c.contains(&"the sound of a dog barking".to_string()), "{c:?}");
        let c = fine_captions("man speaking", "man speaking Latin");
        assert!(c.contains(&"a man speaking".to_string()), "{c:?}");
    }

    #[test]
    fn dog_only_packages_take_their_barks_and_nothing_else() {
        let src = SOURCES.iter().find(|s| s.package == "lugaru-data").unwrap();
        let data = Path::new("/data");
        let root = data.join("deb").join(src.package).join(src.root);
        let it = label_file(data, src, &root, root.join("BarkGrowl.ogg")).unwrap().unwrap();
        assert_eq!((it.category.as_str(), it.label.as_str()), ("dog", "dog barking and growling"));
        assert!(it.captions.contains(&"a dog barking".to_string()), "{:?}", it.captions);
        assert_eq!(label_file(data, src, &root, root.join("Bark2.ogg")).unwrap().unwrap().category, "dog");
        for other in ["Fire.ogg", "Hawk.ogg", "Music1Snow.ogg"] {
            assert!(label_file(data, src, &root, root.join(other)).unwrap().is_none(), "{other} is taken");
        }
    }

    #[test]
    fn every_category_has_a_phrase() {
        for (c, _, _) in FINE {
            assert!(phrase(c).is_some(), "{c}");
        }
        for (c, _) in FIXED {
            assert!(phrase(c).is_some(), "{c}");
        }
    }
}
