//! SRV priorities on the request path: only the lowest priority that still has an available
//! server the request has not tried takes traffic (RFC 2782), the others wait as backups. Pure.

use crate::balance::Candidate;

/// Marks every candidate of a priority above the lowest usable one as unavailable.
/// `priorities[i]` belongs to `candidates[i]`.
pub fn mask(priorities: impl Iterator<Item = u16> + Clone, candidates: &mut [Candidate]) {
    let lowest = priorities
        .clone()
        .zip(candidates.iter())
        .filter(|(_, c)| c.healthy && !c.excluded)
        .map(|(p, _)| p)
        .min();
    let Some(lowest) = lowest else { return };
    for (priority, candidate) in priorities.zip(candidates.iter_mut()) {
        if priority > lowest {
            candidate.healthy = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn candidate(healthy: bool, excluded: bool) -> Candidate {
        Candidate {
            weight: 1,
            in_flight: 0,
            healthy,
            excluded,
            full: false,
            ramp_tenths: 10,
        }
    }

    fn usable(candidates: &[Candidate]) -> Vec<bool> {
        candidates.iter().map(|c| c.healthy).collect()
    }

    #[test]
    fn only_the_lowest_usable_priority_takes_traffic() {
        let priorities = [10u16, 10, 20];
        let mut all_up = [
            candidate(true, false),
            candidate(true, false),
            candidate(true, false),
        ];
        mask(priorities.iter().copied(), &mut all_up);
        assert_eq!(usable(&all_up), [true, true, false]);

        let mut primaries_down = [
            candidate(false, false),
            candidate(false, false),
            candidate(true, false),
        ];
        mask(priorities.iter().copied(), &mut primaries_down);
        assert_eq!(usable(&primaries_down), [false, false, true]);

        // A retry that tried both primaries goes to the backup.
        let mut tried = [
            candidate(true, true),
            candidate(true, true),
            candidate(true, false),
        ];
        mask(priorities.iter().copied(), &mut tried);
        assert_eq!(usable(&tried), [true, true, true]);

        let mut none = [
            candidate(false, false),
            candidate(false, false),
            candidate(false, false),
        ];
        mask(priorities.iter().copied(), &mut none);
        assert_eq!(usable(&none), [false, false, false]);
    }
}
