//! Window filling for the generator's training clips (SPEC.md §10, "sound lasting the clip"):
//! many recordings of ongoing sounds in the broad corpus are single events (one bark, one
//! spoken phrase, one bell strike) followed by zero padding, so a generator trained on them
//! answers "a dog barking" with one bark and silence. For categories whose captions describe an
//! ongoing activity, a short recording is repeated through the window with a seeded pause between
//! repetitions, as a barking dog or a talking man would sound. Only the generator's training rows
//! use this; the corpus on disk, the held-out splits and every other model see the clips as cut.

use crate::manifest::ClipRecord;
use crate::split::stable_hash;
use rand::{Rng, SeedableRng};

/// Categories whose captions describe something that goes on ("a dog barking", "a man speaking",
/// "an announcer speaking", bells, vehicles and machines, alarms, footsteps, weather and
/// ambiences). Impacts, drum hits, clicks, effects and single spoken words ("a word spoken
/// aloud") are one-shots by nature and are left as they are: filling the single words made the
/// generator answer "a word spoken aloud" with a string of words, which the judge no longer
/// took for the category (held-out accuracy 284 → 46 of 344 prompts).
pub const SUSTAINED: &[&str] = &[
    "alarm and alert",
    "animal",
    "announcer voice",
    "bells",
    "birds",
    "car and engine",
    "crowd and applause",
    "dog",
    "farm animals",
    "fire",
    "footsteps",
    "man speaking",
    "outdoor ambience",
    "rain",
    "vehicles and machines",
    "voice",
    "water",
    "wild animals",
    "wind",
    "woman speaking",
];

/// A clip is filled when its real audio covers less than this share of the window.
pub const FILL_BELOW: f64 = 0.6;

/// Shortest and longest pause between repetitions, in seconds.
pub const PAUSE_S: (f64, f64) = (0.15, 0.6);

/// Whether `category` describes an ongoing sound (see [`SUSTAINED`]).
pub fn is_sustained(category: &str) -> bool {
    SUSTAINED.contains(&category)
}

/// Whether the generator's training row for `r` is filled: a sustained category whose real audio
/// covers less than [`FILL_BELOW`] of the clip.
pub fn wants_fill(r: &ClipRecord) -> bool {
    is_sustained(&r.category) && (r.audio_samples as f64) < FILL_BELOW * r.samples as f64
}

/// Repeats `x[..real]` through `x.len()` samples with a pause of [`PAUSE_S`] (uniform, drawn from
/// `seed`) before each repetition; the last repetition is cut at the window's end with a 10 ms
/// fade-out. `real` is clamped to `x.len()`; an empty or silent event is returned unchanged.
pub fn fill_window(x: &[f32], real: usize, sample_rate: u32, seed: u64) -> Vec<f32> {
    let real = real.min(x.len());
    if real == 0 || x[..real].iter().all(|v| *v == 0.0) {
        return x.to_vec();
    }
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut out = x[..real].to_vec();
    while out.len() < x.len() {
        let pause = rng.random_range(PAUSE_S.0..PAUSE_S.1);
        out.resize(out.len() + (pause * sample_rate as f64) as usize, 0.0);
        out.extend_from_slice(&x[..real]);
    }
    if out.len() > x.len() {
        out.truncate(x.len());
        let fade = ((0.01 * sample_rate as f64) as usize).min(out.len());
        let n = out.len();
        for (k, v) in out[n - fade..].iter_mut().enumerate() {
            *v *= 1.0 - (k + 1) as f32 / fade as f32;
        }
    }
    out
}

/// The seed of a clip's pauses: a stable hash of its id, so every build fills it the same way.
pub fn fill_seed(r: &ClipRecord) -> u64 {
    stable_hash(&r.id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeats_the_event_with_pauses_in_range() {
        let sr = 1000;
        let mut x = vec![0.0f32; 3000];
        x[..200].iter_mut().for_each(|v| *v = 1.0);
        let y = fill_window(&x, 200, sr, 7);
        assert_eq!(y.len(), 3000);
        // Runs of ones are the event; runs of zeros between them are pauses of 150-600 samples.
        let mut runs = Vec::new();
        let mut start = 0;
        for i in 1..=y.len() {
            if i == y.len() || (y[i] != 0.0) != (y[start] != 0.0) {
                runs.push((y[start] != 0.0, i - start));
                start = i;
            }
        }
        let events = runs.iter().filter(|r| r.0).count();
        assert!(events >= 4, "{runs:?}");
        for (i, &(on, len)) in runs.iter().enumerate() {
            let last = i + 1 == runs.len();
            if on && !last {
                assert_eq!(len, 200);
            }
            if !on && !last {
                assert!((150..600).contains(&len), "pause {len}");
            }
        }
        assert_eq!(y, fill_window(&x, 200, sr, 7), "same seed, same clip");
        assert_ne!(y, fill_window(&x, 200, sr, 8));
    }

    #[test]
    fn leaves_silence_and_full_clips_alone() {
        let x = vec![0.0f32; 100];
        assert_eq!(fill_window(&x, 50, 1000, 1), x);
        let x: Vec<f32> = (0..100).map(|i| i as f32).collect();
        assert_eq!(fill_window(&x, 100, 1000, 1), x);
        assert_eq!(fill_window(&x, 500, 1000, 1), x);
    }

    #[test]
    fn only_short_clips_of_ongoing_categories_are_filled() {
        let mut r = ClipRecord {
            id: "pkg/a#0".into(),
            path: "a.wav".into(),
            set: "sound".into(),
            source: "a".into(),
            piece: 0,
            package: "pkg".into(),
            licence: String::new(),
            category: "man speaking".into(),
            label: String::new(),
            tags: Vec::new(),
            captions: Vec::new(),
            split: crate::manifest::Split::Train,
            sample_rate: 1000,
            samples: 1000,
            audio_samples: 300,
        };
        assert!(wants_fill(&r));
        r.audio_samples = 900;
        assert!(!wants_fill(&r));
        r.audio_samples = 300;
        r.category = "snare drum".into();
        assert!(!wants_fill(&r));
    }
}
