//! `canary`'s decisions and verdict: at each step of a rollout, whether the canary's errors so far are worse
//! than the stable group's (roll back), too few to tell (go on), or no worse (go on, and promote after the last
//! step). Pure, table-tested.

use super::pct;

/// A group's answers so far: all of them, and those with a 5xx status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Answers {
    pub total: u64,
    pub errors: u64,
}

impl Answers {
    /// The share of 5xx, 0 with no answer.
    pub fn ratio(self) -> f64 {
        if self.total == 0 {
            0.0
        } else {
            self.errors as f64 / self.total as f64
        }
    }
}

/// Fewer canary answers than this decide nothing: at 5% of a short run the canary may see a handful.
pub const MIN_CANARY_ANSWERS: u64 = 20;

/// What one step of the rollout decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Worse than stable: take its weight back to 0.
    RollBack,
    /// Too few answers to tell: go on to the next weight.
    TooFew,
    /// No worse than stable: go on.
    Healthy,
}

impl Decision {
    pub fn label(self) -> &'static str {
        match self {
            Decision::RollBack => "roll back",
            Decision::TooFew => "too few answers, go on",
            Decision::Healthy => "healthy, go on",
        }
    }
}

/// The canary is worse when, with enough answers and at least three errors (one or two are noise), its 5xx
/// share is over twice the stable group's plus two points.
pub fn decide(canary: Answers, stable: Answers) -> Decision {
    if canary.total < MIN_CANARY_ANSWERS {
        return Decision::TooFew;
    }
    if canary.errors >= 3 && canary.ratio() > 2.0 * stable.ratio() + 0.02 {
        Decision::RollBack
    } else {
        Decision::Healthy
    }
}

/// One step of the rollout: the canary's weight (of 100), and both groups' answers so far.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub weight: u32,
    pub canary: Answers,
    pub stable: Answers,
    pub decision: Decision,
}

/// "promote" when the last step reached full weight healthy; "roll back" at the first step that decided so;
/// else that the rollout never had the answers to decide.
pub fn canary(steps: &[Step]) -> String {
    let said = |step: &Step| {
        format!(
            "the canary answered {} of its {} requests with 5xx, the stable group {} of {}",
            pct(step.canary.ratio()),
            step.canary.total,
            pct(step.stable.ratio()),
            step.stable.total
        )
    };
    if let Some(bad) = steps.iter().find(|s| s.decision == Decision::RollBack) {
        return format!(
            "Roll back, at {}% of the traffic: {}. Its weight went back to 0 and the rollout stopped there, \
             so only the users of the steps so far saw its errors.",
            bad.weight,
            said(bad)
        );
    }
    match steps.last() {
        Some(last) if last.weight >= 100 && last.decision == Decision::Healthy => format!(
            "Promote: at every step up to 100% {}, within the margin (twice stable's share plus two points).",
            said(last)
        ),
        Some(last) if last.decision == Decision::TooFew => format!(
            "No decision: the rollout ended at {}% without enough canary answers ({} of the {} needed).",
            last.weight, last.canary.total, MIN_CANARY_ANSWERS
        ),
        Some(last) => format!(
            "No decision yet: the canary was healthy up to {}% ({}), but the rollout ended before 100%.",
            last.weight,
            said(last)
        ),
        None => "no step ran, so there is nothing to decide".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answers(total: u64, errors: u64) -> Answers {
        Answers { total, errors }
    }

    #[test]
    fn decisions_need_enough_answers_and_a_clear_margin() {
        let cases = [
            // (canary, stable, decision)
            (answers(10, 5), answers(190, 0), Decision::TooFew),
            (answers(19, 19), answers(190, 0), Decision::TooFew),
            (answers(20, 6), answers(380, 0), Decision::RollBack),
            (answers(50, 2), answers(150, 0), Decision::Healthy),
            (answers(100, 3), answers(100, 1), Decision::Healthy),
            (answers(100, 10), answers(100, 5), Decision::Healthy),
            (answers(100, 13), answers(100, 5), Decision::RollBack),
            (answers(100, 0), answers(0, 0), Decision::Healthy),
        ];
        for (canary, stable, want) in cases {
            assert_eq!(decide(canary, stable), want, "{canary:?} vs {stable:?}");
        }
    }

    #[test]
    fn the_verdict_follows_the_first_roll_back_or_the_last_step() {
        let step = |weight, canary, stable, decision| Step {
            weight,
            canary,
            stable,
            decision,
        };
        let bad = [
            step(5, answers(9, 3), answers(190, 0), Decision::TooFew),
            step(25, answers(60, 18), answers(330, 0), Decision::RollBack),
        ];
        let text = canary(&bad);
        assert!(
            text.starts_with("Roll back, at 25% of the traffic: the canary answered 30% of its 60"),
            "{text}"
        );
        let good = [
            step(5, answers(10, 0), answers(190, 1), Decision::TooFew),
            step(25, answers(60, 0), answers(330, 1), Decision::Healthy),
            step(100, answers(260, 1), answers(330, 1), Decision::Healthy),
        ];
        assert!(
            canary(&good).starts_with("Promote: at every step up to 100%"),
            "{}",
            canary(&good)
        );
        assert!(canary(&good[..2]).starts_with("No decision yet"));
        assert!(canary(&good[..1]).starts_with("No decision: the rollout ended at 5%"));
        assert_eq!(canary(&[]), "no step ran, so there is nothing to decide");
    }
}
