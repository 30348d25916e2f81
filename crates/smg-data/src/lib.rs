//! The embedded default data of SpecMaskGIT-rs (ASSETS.md): real sound-event clips
//! from Debian packages, labelled, cut to a configuration's clip length, split by source
//! recording, listed in a JSON-lines manifest; and a loader with cached mels and seeded batches.

pub mod build;
pub mod error;
pub mod fill;
pub mod labels;
pub mod loader;
pub mod manifest;
pub mod medium;
pub mod split;
pub mod stats;

pub use build::{build_set, build_sound_corpus, set_dir, sound_corpus_dir, BuildReport, ClipConfig, Corpus, SetKind};
pub use error::{DataError, Result};
pub use loader::{batches, shuffled, Dataset, MelCache};
pub use manifest::{read_manifest, write_manifest, ClipRecord, Split};
