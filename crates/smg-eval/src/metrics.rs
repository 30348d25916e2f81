//! Multi-label ranking metrics of the linear probe (SPEC.md §7): ROC-AUC and average precision
//! per label, macro-averaged, with the tie handling of scikit-learn's `roc_auc_score` (ties count
//! half, the trapezoid rule) and `average_precision_score` (Σ (Rₙ − Rₙ₋₁) Pₙ over distinct
//! thresholds).

use crate::{invalid, Result};

fn check(scores: &[f64], labels: &[bool]) -> Result<(usize, usize)> {
    if scores.len() != labels.len() || scores.is_empty() {
        return invalid(format!("{} scores but {} labels", scores.len(), labels.len()));
    }
    if let Some(i) = scores.iter().position(|s| !s.is_finite()) {
        return invalid(format!("score {i} is not finite ({})", scores[i]));
    }
    let pos = labels.iter().filter(|&&l| l).count();
    Ok((pos, labels.len() - pos))
}

/// Groups of tied scores in descending order: (positives, negatives) per distinct score.
fn tied_groups(scores: &[f64], labels: &[bool]) -> Vec<(usize, usize)> {
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    idx.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let mut groups: Vec<(usize, usize)> = vec![];
    let mut last = f64::NAN;
    for i in idx {
        if scores[i] != last {
            groups.push((0, 0));
            last = scores[i];
        }
        let g = groups.last_mut().expect("pushed above");
        if labels[i] {
            g.0 += 1
        } else {
            g.1 += 1
        }
    }
    groups
}

/// Area under the ROC curve of one label; `None` when the label has no positives or no negatives
/// (scikit-learn raises there).
pub fn roc_auc(scores: &[f64], labels: &[bool]) -> Result<Option<f64>> {
    let (p, n) = check(scores, labels)?;
    if p == 0 || n == 0 {
        return Ok(None);
    }
    let (mut tp, mut fp, mut area) = (0.0, 0.0, 0.0);
    for (gp, gn) in tied_groups(scores, labels) {
        let (tp2, fp2) = (tp + gp as f64, fp + gn as f64);
        area += (fp2 - fp) * (tp + tp2) / 2.0;
        (tp, fp) = (tp2, fp2);
    }
    Ok(Some(area / (p as f64 * n as f64)))
}

/// Average precision of one label; `None` when it has no positives.
pub fn average_precision(scores: &[f64], labels: &[bool]) -> Result<Option<f64>> {
    let (p, _) = check(scores, labels)?;
    if p == 0 {
        return Ok(None);
    }
    let (mut tp, mut seen, mut ap) = (0usize, 0usize, 0.0);
    for (gp, gn) in tied_groups(scores, labels) {
        tp += gp;
        seen += gp + gn;
        ap += gp as f64 / p as f64 * (tp as f64 / seen as f64);
    }
    Ok(Some(ap))
}

/// Macro scores over labels: `scores[i][l]`, `labels[i][l]`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct MacroScores {
    pub roc_auc: f64,
    pub average_precision: f64,
    /// Labels that had both positives and negatives (and so entered the averages).
    pub labels_used: usize,
    pub labels: usize,
}

/// Macro-averaged ROC-AUC and mAP, over the labels that have both classes in `labels`.
pub fn macro_scores(scores: &[Vec<f64>], labels: &[Vec<bool>]) -> Result<MacroScores> {
    if scores.len() != labels.len() || scores.is_empty() {
        return invalid(format!("{} score rows but {} label rows", scores.len(), labels.len()));
    }
    let l = labels[0].len();
    if scores.iter().chain(std::iter::empty()).any(|r| r.len() != l) || labels.iter().any(|r| r.len() != l) {
        return invalid(format!("every score and label row needs {l} entries"));
    }
    let (mut auc, mut ap, mut used) = (0.0, 0.0, 0);
    for j in 0..l {
        let s: Vec<f64> = scores.iter().map(|r| r[j]).collect();
        let y: Vec<bool> = labels.iter().map(|r| r[j]).collect();
        if let (Some(a), Some(p)) = (roc_auc(&s, &y)?, average_precision(&s, &y)?) {
            auc += a;
            ap += p;
            used += 1;
        }
    }
    if used == 0 {
        return invalid("no label has both positive and negative examples");
    }
    Ok(MacroScores { roc_auc: auc / used as f64, average_precision: ap / used as f64, labels_used: used, labels: l })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_computed_values_with_ties() {
        // scores 0.9(+) 0.8(-) 0.8(+) 0.1(-): pairs (+,-): (0.9,0.8)=1 (0.9,0.1)=1 (0.8,0.8)=.5 (0.8,0.1)=1
        let s = [0.9, 0.8, 0.8, 0.1];
        let y = [true, false, true, false];
        assert!((roc_auc(&s, &y).unwrap().unwrap() - 3.5 / 4.0).abs() < 1e-12);
        // AP: thresholds 0.9 -> R .5 P 1; 0.8 -> R 1 P 2/3
        assert!((average_precision(&s, &y).unwrap().unwrap() - (0.5 + 0.5 * 2.0 / 3.0)).abs() < 1e-12);
        assert_eq!(roc_auc(&s, &[true; 4]).unwrap(), None);
        assert!(roc_auc(&[f64::NAN], &[true]).is_err());
    }
}
