//! Statistical disclosure control for the commissioners' tables: no count from 1 to 4 is shown,
//! and no shown figure lets anyone work a hidden one out.
//!
//! A table is a list of cells and the additive relations between them that its readers know
//! ([`Line`]: the members of a line add up to its total, e.g. the months of a column add up to
//! its "all" row, the decline reasons of a row add up to its declined count). Primary
//! suppression hides every count from 1 to 4. A line with hidden cells would give them away if
//! it stood alone (one hidden member is its total minus the shown members) or if the hidden
//! cells' bounds left a single value (two hidden cells summing to 8 are 4 and 4), so
//! secondary suppression hides more cells of such a line, smallest non-zero first, until every
//! hidden cell of every line keeps at least two possible values under what a reader knows:
//! a hidden cell is never 0 (zeros are shown), a primary one is at most 4. Lines share cells,
//! so this repeats until nothing changes.
//!
//! The property tests at the bottom play the reader: they enumerate every assignment of the
//! hidden cells consistent with everything shown and check that none is pinned to one value.
//!
//! What this does not stop: differencing between two requests over
//! overlapping periods or scopes. Each table is safe on its own.

/// The smallest count shown; 1 to `SHOWN_FROM - 1` are hidden.
pub const SHOWN_FROM: u64 = 5;

/// Cells of a table whose members add up to its total (indices into the table's cells).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub members: Vec<usize>,
    pub total: usize,
}

/// Why a cell is hidden.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hidden {
    /// A count from 1 to 4.
    Small,
    /// Hidden so that a small count cannot be worked out from the others.
    Secondary,
}

/// Which cells to hide: `None` for shown, `Some(why)` for hidden, one per cell.
pub fn protect(values: &[u64], lines: &[Line]) -> Vec<Option<Hidden>> {
    let mut hidden: Vec<Option<Hidden>> = values
        .iter()
        .map(|&v| (v > 0 && v < SHOWN_FROM).then_some(Hidden::Small))
        .collect();
    while let Some(cell) = pinned(values, &hidden, lines) {
        // Widen the pinned cell's lines: hide the smallest shown non-zero cell among them; when
        // they have none left, the pin comes through a chain of lines, so widen the smallest
        // shown non-zero cell of any line that has a hidden cell.
        let smallest = |touching: &dyn Fn(&Line) -> bool| {
            lines
                .iter()
                .filter(|line| touching(line))
                .filter_map(|line| next_to_hide(values, &hidden, line))
                .min_by_key(|&c| (values[c], c))
        };
        let next =
            smallest(&|line| line.total == cell || line.members.contains(&cell)).or_else(|| {
                smallest(&|line| {
                    hidden[line.total].is_some()
                        || line.members.iter().any(|&m| hidden[m].is_some())
                })
            });
        match next {
            Some(next) => hidden[next] = Some(Hidden::Secondary),
            // Every non-zero cell of every such line is hidden: nothing left to widen.
            None => break,
        }
    }
    hidden
}

/// A hidden cell that a reader can pin to one value, if any. The reader knows the shown cells,
/// the lines, that hidden cells are never 0, and (more than we publish, to be safe) which hidden
/// cells are small (1..=4). Bounds are tightened line by line until nothing changes: interval
/// propagation, which finds what chains of lines give away, not only a single line.
fn pinned(values: &[u64], hidden: &[Option<Hidden>], lines: &[Line]) -> Option<usize> {
    const UNBOUNDED: i128 = 1 << 60;
    let mut bounds: Vec<(i128, i128)> = values
        .iter()
        .zip(hidden)
        .map(|(&v, h)| match h {
            None => (v as i128, v as i128),
            Some(Hidden::Small) => (1, (SHOWN_FROM - 1) as i128),
            Some(Hidden::Secondary) => (1, UNBOUNDED),
        })
        .collect();
    // Each pass either narrows a bound or ends; the bounds are integers within 0..2^60, and
    // in practice a few passes settle them. The cap only guards against pathological tables.
    for _ in 0..(4 * lines.len() + 16) {
        let mut changed = false;
        for line in lines {
            let cells: Vec<(usize, i128)> = line
                .members
                .iter()
                .map(|&m| (m, 1))
                .chain(std::iter::once((line.total, -1)))
                .collect();
            for &(cell, sign) in &cells {
                if hidden[cell].is_none() {
                    continue;
                }
                // sign·x = −Σ_{others} s·x_other
                let (mut lo_rest, mut hi_rest) = (0i128, 0i128);
                for &(other, s) in &cells {
                    if other == cell {
                        continue;
                    }
                    let (lo, hi) = bounds[other];
                    if s > 0 {
                        lo_rest += lo;
                        hi_rest += hi;
                    } else {
                        lo_rest -= hi;
                        hi_rest -= lo;
                    }
                }
                let (lo, hi) = if sign > 0 {
                    (-hi_rest, -lo_rest)
                } else {
                    (lo_rest, hi_rest)
                };
                let (own_lo, own_hi) = bounds[cell];
                let narrowed = (own_lo.max(lo), own_hi.min(hi));
                if narrowed.0 <= narrowed.1 && narrowed != (own_lo, own_hi) {
                    bounds[cell] = narrowed;
                    changed = true;
                }
            }
        }
        if !changed {
            break;
        }
    }
    (0..values.len()).find(|&c| hidden[c].is_some() && bounds[c].0 >= bounds[c].1)
}

/// The cell of `line` to hide next: the smallest non-zero shown member, else its total.
fn next_to_hide(values: &[u64], hidden: &[Option<Hidden>], line: &Line) -> Option<usize> {
    line.members
        .iter()
        .copied()
        .filter(|&c| hidden[c].is_none() && values[c] > 0)
        .min_by_key(|&c| (values[c], c))
        .or_else(|| (hidden[line.total].is_none() && values[line.total] > 0).then_some(line.total))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    /// A table of `rows` groups by `cols` measures with a total row; each column is a line.
    fn grid(rows: usize, cols: usize, values: &[u64]) -> (Vec<u64>, Vec<Line>) {
        let mut all = values.to_vec();
        let mut lines = Vec::new();
        for c in 0..cols {
            let members: Vec<usize> = (0..rows).map(|r| r * cols + c).collect();
            let total = all.len();
            all.push(members.iter().map(|&m| values[m]).sum());
            lines.push(Line { members, total });
        }
        (all, lines)
    }

    /// The reader: every value each hidden cell can take, over all assignments consistent with
    /// the shown cells and the lines. The reader is given more than we publish: which hidden
    /// cells are small (1..=4) and which secondary (1..=max), unless the table shows no figure
    /// at all; zeros are always shown. Cells a
    /// line forces are computed rather than tried, so only the table's free cells branch.
    pub(crate) fn possible_values(
        values: &[u64],
        lines: &[Line],
        hidden: &[Option<Hidden>],
        max: u64,
    ) -> Vec<BTreeSet<u64>> {
        let start: Vec<Option<u64>> = values
            .iter()
            .zip(hidden)
            .map(|(&v, h)| if h.is_some() { None } else { Some(v) })
            .collect();
        // When every non-zero cell is hidden, the table shows no figure at all and nothing tells
        // the small cells from the others: the reader knows only that they are not 0.
        let shows_a_figure = values
            .iter()
            .zip(hidden)
            .any(|(&v, h)| v > 0 && h.is_none());
        let limits: Vec<u64> = hidden
            .iter()
            .map(|h| match h {
                Some(Hidden::Small) if shows_a_figure => SHOWN_FROM - 1,
                _ => max,
            })
            .collect();
        let mut seen = vec![BTreeSet::new(); values.len()];
        solve(start, lines, &limits, &mut seen);
        seen
    }

    fn solve(
        mut cells: Vec<Option<u64>>,
        lines: &[Line],
        limits: &[u64],
        seen: &mut [BTreeSet<u64>],
    ) {
        // Propagate: a line with one unknown cell fixes it; a complete line must add up.
        loop {
            let mut progressed = false;
            for line in lines {
                let all: Vec<(usize, i128)> = line
                    .members
                    .iter()
                    .map(|&m| (m, 1))
                    .chain(std::iter::once((line.total, -1)))
                    .collect();
                let unknown: Vec<(usize, i128)> = all
                    .iter()
                    .copied()
                    .filter(|(c, _)| cells[*c].is_none())
                    .collect();
                let known: i128 = all
                    .iter()
                    .filter_map(|&(c, s)| cells[c].map(|v| s * v as i128))
                    .sum();
                match unknown.as_slice() {
                    [] if known != 0 => return,
                    [(cell, sign)] => {
                        let value = -known * sign;
                        if value < 1 || value > limits[*cell] as i128 {
                            return;
                        }
                        cells[*cell] = Some(value as u64);
                        progressed = true;
                    }
                    _ => {}
                }
            }
            if !progressed {
                break;
            }
        }
        match cells.iter().position(Option::is_none) {
            None => {
                for (c, v) in cells.iter().enumerate() {
                    if let Some(v) = v {
                        seen[c].insert(*v);
                    }
                }
            }
            Some(free) => {
                for v in 1..=limits[free] {
                    let mut next = cells.clone();
                    next[free] = Some(v);
                    solve(next, lines, limits, seen);
                }
            }
        }
    }

    fn assert_protected(values: &[u64], lines: &[Line]) {
        let hidden = protect(values, lines);
        for (c, &v) in values.iter().enumerate() {
            if v > 0 && v < SHOWN_FROM {
                assert!(hidden[c].is_some(), "cell {c} = {v} is shown");
            }
            if v == 0 {
                assert!(
                    hidden[c].is_none(),
                    "a zero is hidden: it would mark its line"
                );
            }
        }
        let max = values.iter().copied().max().unwrap_or(0) + 2;
        let possible = possible_values(values, lines, &hidden, max);
        for (c, h) in hidden.iter().enumerate() {
            if h.is_some() {
                assert!(
                    possible[c].len() >= 2,
                    "cell {c} (value {}) can be worked out: {:?}; values {values:?}, hidden {hidden:?}",
                    values[c],
                    possible[c]
                );
                assert!(possible[c].contains(&values[c]));
            }
        }
    }

    #[test]
    fn one_small_count_in_a_column_takes_a_second_cell_with_it() {
        let (values, lines) = grid(3, 1, &[3, 20, 30]);
        let hidden = protect(&values, &lines);
        assert_eq!(hidden[0], Some(Hidden::Small));
        assert_eq!(
            hidden[1],
            Some(Hidden::Secondary),
            "the smallest other member"
        );
        assert_eq!(hidden[2], None);
        assert_eq!(hidden[3], None, "the total stays");
        assert_protected(&values, &lines);
    }

    #[test]
    fn two_small_counts_that_add_up_to_eight_are_not_left_as_four_and_four() {
        let (values, lines) = grid(3, 1, &[4, 4, 30]);
        let hidden = protect(&values, &lines);
        assert!(hidden[2].is_some() || hidden[3].is_some(), "{hidden:?}");
        assert_protected(&values, &lines);
    }

    /// The reader is not toothless: with primary suppression alone it recovers the hidden cell.
    #[test]
    fn without_secondary_suppression_the_reader_recovers_a_small_count() {
        let (values, lines) = grid(3, 1, &[3, 20, 30]);
        let primary: Vec<Option<Hidden>> = values
            .iter()
            .map(|&v| (v > 0 && v < SHOWN_FROM).then_some(Hidden::Small))
            .collect();
        let possible = possible_values(&values, &lines, &primary, 60);
        assert_eq!(possible[0], BTreeSet::from([3]));
        // Two hidden cells adding up to 8, each small: 4 and 4.
        let (values, lines) = grid(3, 1, &[4, 4, 30]);
        let two = vec![Some(Hidden::Small), Some(Hidden::Small), None, None];
        let possible = possible_values(&values, &lines, &two, 60);
        assert_eq!(possible[0], BTreeSet::from([4]));
    }

    #[test]
    fn nothing_small_hides_nothing() {
        let (values, lines) = grid(2, 2, &[0, 5, 7, 0]);
        assert!(protect(&values, &lines).iter().all(Option::is_none));
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 400, .. ProptestConfig::default() })]

        /// Tables of up to 3 groups by 2 measures with a total row: no hidden cell can be
        /// recovered from the shown ones.
        #[test]
        fn no_hidden_cell_of_a_grid_can_be_recovered(
            rows in 1usize..=3,
            cols in 1usize..=2,
            cells in proptest::collection::vec(prop_oneof![3 => 0u64..=5, 1 => 5u64..=9], 6),
        ) {
            let (values, lines) = grid(rows, cols, &cells[..rows * cols]);
            assert_protected(&values, &lines);
        }

        /// A row whose breakdown (decline reasons) adds up to one of its cells, inside a column
        /// total: lines that share cells.
        #[test]
        fn no_hidden_cell_of_a_breakdown_can_be_recovered(
            reasons in proptest::collection::vec(prop_oneof![3 => 0u64..=4, 1 => 5u64..=8], 4),
        ) {
            // Two groups, each with two reasons; cell 0,1 = group A's reasons, 2,3 = group B's,
            // 4 = A declined, 5 = B declined, 6 = all declined; 7, 8 = the reasons' totals.
            let mut values = reasons.clone();
            values.push(reasons[0] + reasons[1]);
            values.push(reasons[2] + reasons[3]);
            values.push(values[4] + values[5]);
            values.push(reasons[0] + reasons[2]);
            values.push(reasons[1] + reasons[3]);
            let lines = vec![
                Line { members: vec![0, 1], total: 4 },
                Line { members: vec![2, 3], total: 5 },
                Line { members: vec![4, 5], total: 6 },
                Line { members: vec![0, 2], total: 7 },
                Line { members: vec![1, 3], total: 8 },
                Line { members: vec![7, 8], total: 6 },
            ];
            assert_protected(&values, &lines);
        }
    }
}
