//! F5: output fees in integer pence, never floating point.
//!
//! A milestone's fee is `price × share% × output share%`, computed exactly as
//! the integer `price × share × output_share` (a whole number of
//! ten-thousandths of a penny) and then rounded ONCE, half up, to whole
//! pence: `(n + 5_000) / 10_000`. Each milestone is rounded on its own, so a
//! schedule's total is the sum of its rounded milestone fees; statements and
//! accruals only ever add those rounded fees, so every total equals the sum
//! of its lines exactly.

/// Ten-thousandths: percent × percent.
const SCALE: i128 = 10_000;

/// The output fee of one milestone, in pence, or `None` if an input is
/// negative or the result does not fit (the schedule loader keeps inputs far
/// inside the range, so `None` means a bug, reported rather than wrapped).
pub fn milestone_fee_pence(price_pence: i64, share_percent: i64, output_share_percent: i64) -> Option<i64> {
    if price_pence < 0 || share_percent < 0 || output_share_percent < 0 {
        return None;
    }
    let exact = i128::from(price_pence) * i128::from(share_percent) * i128::from(output_share_percent);
    i64::try_from((exact + SCALE / 2) / SCALE).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f5_started_is_twenty_percent_of_price_times_sixty_percent_output_share() {
        // £1,200.00 × 20% × 60% = £144.00
        assert_eq!(milestone_fee_pence(120_000, 20, 60), Some(14_400));
        // £1,200.00 × 15% × 60% = £108.00
        assert_eq!(milestone_fee_pence(120_000, 15, 60), Some(10_800));
    }

    #[test]
    fn f5_fees_round_half_up_to_whole_pence_once() {
        // 1,050p × 15% × 60% = 94.5p -> 95p
        assert_eq!(milestone_fee_pence(1_050, 15, 60), Some(95));
        // 99,999p × 15% × 60% = 8,999.91p -> 9,000p
        assert_eq!(milestone_fee_pence(99_999, 15, 60), Some(9_000));
        // 1,049p × 15% × 60% = 94.41p -> 94p
        assert_eq!(milestone_fee_pence(1_049, 15, 60), Some(94));
    }

    #[test]
    fn f5_a_zero_share_or_price_pays_nothing_and_negatives_are_refused() {
        assert_eq!(milestone_fee_pence(120_000, 0, 60), Some(0));
        assert_eq!(milestone_fee_pence(0, 20, 60), Some(0));
        assert_eq!(milestone_fee_pence(-1, 20, 60), None);
        assert_eq!(milestone_fee_pence(i64::MAX, 100, 200), None, "too big for i64");
    }

    #[test]
    fn f5_a_standard_schedule_pays_the_whole_output_share_when_nothing_rounds() {
        let shares = [20, 15, 15, 15, 15, 20];
        let total: i64 = shares.iter().map(|s| milestone_fee_pence(120_000, *s, 60).expect("fee")).sum();
        assert_eq!(total, 72_000, "60% of £1,200.00");
    }
}
