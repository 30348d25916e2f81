//! How long a clip sounds (the "sound lasting the clip, not a transient" check of the
//! generation evaluation, SPEC.md §10): per-frame loudness of a natural-log mel and the share
//! of frames within a given distance of the loudest one. A bark repeated through the clip
//! scores near 1; one click followed by silence scores 1/frames.

use crate::{invalid, Result};

/// dB per natural-log unit of magnitude: 20 / ln 10.
const DB_PER_NEPER: f64 = 8.685889638065037;

/// Loudness of each frame of a natural-log magnitude mel given as `n_mels` rows of `frames`
/// values (row-major): 20·log10 of the frame's mean magnitude over the bands.
pub fn frame_loudness_db(log_mel: &[f32], n_mels: usize) -> Result<Vec<f64>> {
    if n_mels == 0 || log_mel.is_empty() || !log_mel.len().is_multiple_of(n_mels) {
        return invalid(format!("a mel of {} values does not split into {n_mels} bands", log_mel.len()));
    }
    if let Some(i) = log_mel.iter().position(|v| !v.is_finite()) {
        return invalid(format!("mel value {i} is not finite ({})", log_mel[i]));
    }
    let frames = log_mel.len() / n_mels;
    Ok((0..frames)
        .map(|t| {
            let mean = (0..n_mels).map(|b| (log_mel[b * frames + t] as f64).exp()).sum::<f64>() / n_mels as f64;
            DB_PER_NEPER * mean.ln()
        })
        .collect())
}

/// Share of frames whose loudness is within `within_db` of the loudest frame, counting only
/// frames at least `within_db` above `floor_db` (the mel's log floor: `ln 1e-5` is −100 dB),
/// so a silent clip scores 0 rather than 1.
pub fn sustain(loudness_db: &[f64], within_db: f64, floor_db: f64) -> Result<f64> {
    let threshold = loud_threshold(loudness_db, within_db, floor_db)?;
    Ok(loudness_db.iter().filter(|&&l| l >= threshold).count() as f64 / loudness_db.len() as f64)
}

/// Loudness a frame needs to count as loud: within `within_db` of the loudest frame and
/// `within_db` above `floor_db`.
fn loud_threshold(loudness_db: &[f64], within_db: f64, floor_db: f64) -> Result<f64> {
    if loudness_db.is_empty() {
        return invalid("no frames");
    }
    if within_db.is_nan() || within_db <= 0.0 {
        return invalid(format!("within_db must be positive, not {within_db}"));
    }
    let peak = loudness_db.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    Ok((peak - within_db).max(floor_db + within_db))
}

/// Share of the clip from the first to the last frame within `within_db` of the loudest frame
/// (and `within_db` above `floor_db`), both included: near 1 for a sound that goes on through
/// the clip, pauses and all (a dog barking every half second), `1/frames` for one click; 0 for a
/// silent clip. Sustain counts the loud frames; span says how far apart the first and last are.
pub fn span(loudness_db: &[f64], within_db: f64, floor_db: f64) -> Result<f64> {
    let threshold = loud_threshold(loudness_db, within_db, floor_db)?;
    let loud = |l: &&f64| **l >= threshold;
    match (loudness_db.iter().position(|l| loud(&l)), loudness_db.iter().rposition(|l| loud(&l))) {
        (Some(a), Some(b)) => Ok((b - a + 1) as f64 / loudness_db.len() as f64),
        _ => Ok(0.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mel(frames: &[f32], n_mels: usize) -> Vec<f32> {
        (0..n_mels).flat_map(|_| frames.iter().cloned()).collect()
    }

    #[test]
    fn loudness_is_the_mean_magnitude_in_db() {
        // bands of magnitude 0.1 and 0.3 in one frame: mean 0.2 → 20·log10(0.2) = −13.98 dB
        let l = frame_loudness_db(&[(0.1f32).ln(), (0.3f32).ln()], 2).unwrap();
        assert!((l[0] - 20.0 * 0.2f64.log10()).abs() < 1e-4, "{l:?}");
    }

    #[test]
    fn a_click_then_silence_is_short_and_a_steady_sound_lasts() {
        let floor = (1e-5f32).ln();
        let mut click = vec![floor; 100];
        click[3] = 0.0;
        let l = frame_loudness_db(&mel(&click, 4), 4).unwrap();
        assert_eq!(sustain(&l, 20.0, -100.0).unwrap(), 0.01);
        let steady: Vec<f32> = (0..100).map(|t| -2.0 + 0.3 * ((t as f32) * 0.7).sin()).collect();
        let l = frame_loudness_db(&mel(&steady, 4), 4).unwrap();
        assert_eq!(sustain(&l, 20.0, -100.0).unwrap(), 1.0);
        // a silent clip (every frame at the floor) does not count as lasting
        let l = frame_loudness_db(&mel(&[floor; 50], 4), 4).unwrap();
        assert_eq!(sustain(&l, 20.0, -100.0).unwrap(), 0.0);
        assert_eq!(span(&l, 20.0, -100.0).unwrap(), 0.0);
    }

    #[test]
    fn repeated_events_span_the_clip_one_event_does_not() {
        let floor = (1e-5f32).ln();
        // Barks of 5 frames every 20 frames from frame 2: loud 25 of 100 frames, from 2 to 86.
        let barks: Vec<f32> = (0..100).map(|t| if t >= 2 && (t - 2) % 20 < 5 { 0.0 } else { floor }).collect();
        let l = frame_loudness_db(&mel(&barks, 4), 4).unwrap();
        assert_eq!(sustain(&l, 20.0, -100.0).unwrap(), 0.25);
        assert_eq!(span(&l, 20.0, -100.0).unwrap(), 0.85);
        let one: Vec<f32> = (0..100).map(|t| if (10..15).contains(&t) { 0.0 } else { floor }).collect();
        let l = frame_loudness_db(&mel(&one, 4), 4).unwrap();
        assert_eq!(span(&l, 20.0, -100.0).unwrap(), 0.05);
    }

    #[test]
    fn bad_input_is_an_error() {
        assert!(frame_loudness_db(&[0.0; 5], 2).is_err());
        assert!(frame_loudness_db(&[f32::NAN, 0.0], 2).is_err());
        assert!(sustain(&[], 20.0, -100.0).is_err());
        assert!(sustain(&[0.0], f64::NAN, -100.0).is_err());
        assert!(span(&[], 20.0, -100.0).is_err());
    }
}
