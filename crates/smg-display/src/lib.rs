//! Pictures and players (no model logic): [`plot`] draws spectrograms, waveforms, token grids
//! and line plots to PNG [`display::Figure`]s with an embedded font; [`display`] holds the
//! figure, an HTML `<audio>` player and an HTML page builder. Each shows inline when it is the
//! last expression of an evcxr notebook cell and each can be saved. The notebook prelude
//! re-exports this crate; the `smg` command line uses it for its plots.

pub mod display;
pub mod plot;
