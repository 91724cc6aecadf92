//! How many levels of relations one request walks: a fixed depth, or one chosen per request
//! from the answer size the last answers predict, under any cap a failed deep query set.
//!
//! Why adaptive: each level saves a round trip, but the answer grows with the fan-out of every
//! level (50 roots of a dense franchise: about 0.4 MB at 2 levels, 1.6 MB at 3, 7.8 MB at 4).
//! One root can go 4 deep for a few hundred KB; a 50-id frontier of a dense franchise cannot.
//! So the depth is the deepest whose predicted answer stays under [`TARGET_ANSWER_BYTES`].

use std::sync::Mutex;

use super::query::{MAX_BATCH, MAX_WALK_LEVELS};
use super::response::AnswerShape;

/// How deep each request walks (`anilist.walk_levels`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WalkDepth {
    /// The deepest a request's predicted answer allows, up to [`MAX_WALK_LEVELS`].
    Auto,
    /// Always this many levels (1 to [`MAX_WALK_LEVELS`]): 1 is the walk of one level per
    /// round trip.
    Fixed(usize),
}

impl WalkDepth {
    /// The deepest this setting ever asks for.
    pub(crate) fn deepest(self) -> usize {
        match self {
            Self::Auto => MAX_WALK_LEVELS,
            Self::Fixed(levels) => levels.clamp(1, MAX_WALK_LEVELS),
        }
    }
}

/// The answer an automatic depth aims to stay under: half the 2 MB an answer should not pass,
/// since the ids of one frontier differ in fan-out (a 1.5 MB aim overshot to 2.02 MB on a
/// 478-anime franchise).
pub(crate) const TARGET_ANSWER_BYTES: f64 = 1_000_000.0;

/// `pending` ids shared evenly over the pages they need: all of them up to a page, and
/// beyond it no more requests than pages (52 → 26, 101 → 34).
fn even_share(pending: usize) -> usize {
    if pending <= MAX_BATCH {
        return pending.max(1);
    }
    pending.div_ceil(pending.div_ceil(MAX_BATCH))
}

/// Before any answer: the bytes of one media record in an answer (its fields and the edge
/// around it), and a pessimistic fan-out (a real hub has 65 edges, a typical anime a handful),
/// so a lone unknown root walks 3 levels, not 4, until an answer shows how its franchise
/// branches.
const PRIOR_BYTES_PER_RECORD: f64 = 300.0;
const PRIOR_FAN_OUT: f64 = 8.0;

/// What the answers so far taught.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Learnt {
    bytes_per_record: f64,
    fan_out: f64,
}

/// Picks each request's depth and learns from each answer's size and shape.
#[derive(Debug)]
pub(crate) struct DepthGauge {
    depth: WalkDepth,
    learnt: Mutex<Option<Learnt>>,
}

impl DepthGauge {
    pub(crate) fn new(depth: WalkDepth) -> Self {
        Self {
            depth,
            learnt: Mutex::new(None),
        }
    }

    pub(crate) fn setting(&self) -> WalkDepth {
        self.depth
    }

    fn learnt(&self) -> Learnt {
        self.learnt
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .unwrap_or(Learnt {
                bytes_per_record: PRIOR_BYTES_PER_RECORD,
                fan_out: PRIOR_FAN_OUT,
            })
    }

    /// The predicted answer for `ids` ids walked `levels` deep, in bytes: every id, its
    /// relations, theirs, … `levels` deep, each a record of the learnt size.
    pub(crate) fn predicted_bytes(&self, ids: usize, levels: usize) -> f64 {
        let Learnt {
            bytes_per_record,
            fan_out,
        } = self.learnt();
        let records: f64 = (0..=levels)
            .map(|d| fan_out.powi(i32::try_from(d).unwrap_or(i32::MAX)))
            .sum();
        ids.max(1) as f64 * records * bytes_per_record
    }

    /// The levels a request for `ids` ids walks: the setting, under `cap` (a depth every
    /// process was told to keep to); for `Auto`, the deepest predicted to stay under the
    /// target. Never less than 1.
    pub(crate) fn levels_for(&self, ids: usize, cap: Option<usize>) -> usize {
        let most = cap.map_or(self.depth.deepest(), |cap| cap.min(self.depth.deepest()));
        let most = most.max(1);
        match self.depth {
            WalkDepth::Fixed(_) => most,
            WalkDepth::Auto => (1..=most)
                .rev()
                .find(|&levels| self.predicted_bytes(ids, levels) <= TARGET_ANSWER_BYTES)
                .unwrap_or(1),
        }
    }

    /// How many of `pending` ids the next request carries: a page, unless sharing them evenly
    /// over the pages they need anyway lets each request walk a level deeper (52 ids as
    /// 26 + 26 at 3 levels rather than 50 + 2 at 2: the same requests, a round trip saved).
    pub(crate) fn batch_size(&self, pending: usize, cap: Option<usize>) -> usize {
        let page = pending.clamp(1, MAX_BATCH);
        let share = even_share(pending);
        if share < page && self.levels_for(share, cap) > self.levels_for(page, cap) {
            share
        } else {
            page
        }
    }

    /// An answer of this shape came back. A larger record or a wider fan-out than learnt
    /// counts in full at once (the next request must not overshoot); a smaller one moves the
    /// estimate halfway.
    pub(crate) fn observe(&self, shape: &AnswerShape) {
        if shape.records == 0 || shape.whole == 0 {
            return;
        }
        let seen = Learnt {
            bytes_per_record: shape.bytes as f64 / shape.records as f64,
            fan_out: shape.whole_edges as f64 / shape.whole as f64,
        };
        let mut learnt = self.learnt.lock().unwrap_or_else(|p| p.into_inner());
        let blend = |before: f64, now: f64| {
            if now >= before {
                now
            } else {
                (before + now) / 2.0
            }
        };
        *learnt = Some(match *learnt {
            None => seen,
            Some(before) => Learnt {
                bytes_per_record: blend(before.bytes_per_record, seen.bytes_per_record),
                fan_out: blend(before.fan_out, seen.fan_out),
            },
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(bytes: usize, records: usize, whole: usize, whole_edges: usize) -> AnswerShape {
        AnswerShape {
            bytes,
            records,
            whole,
            whole_edges,
        }
    }

    #[test]
    fn before_any_answer_a_lone_root_walks_three_levels_and_a_full_batch_one() {
        let gauge = DepthGauge::new(WalkDepth::Auto);
        // 1 id: 4 levels would be 4,681 records (1.4 MB), 3 levels 585 (0.18 MB).
        assert_eq!(gauge.levels_for(1, None), 3);
        // 50 ids: 2 levels would be 1.1 MB.
        assert_eq!(gauge.levels_for(50, None), 1);
        for ids in 1..=50 {
            let levels = gauge.levels_for(ids, None);
            assert!(gauge.predicted_bytes(ids, levels) <= TARGET_ANSWER_BYTES || levels == 1);
        }
    }

    #[test]
    fn a_cap_and_a_fixed_depth_bound_the_choice_and_one_level_always_remains() {
        let gauge = DepthGauge::new(WalkDepth::Auto);
        assert_eq!(gauge.levels_for(1, Some(1)), 1);
        assert_eq!(gauge.levels_for(1, Some(0)), 1);
        assert_eq!(gauge.levels_for(1, Some(2)), 2);
        let fixed = DepthGauge::new(WalkDepth::Fixed(3));
        assert_eq!(fixed.levels_for(50, None), 3);
        assert_eq!(fixed.levels_for(50, Some(1)), 1);
        assert_eq!(WalkDepth::Fixed(9).deepest(), MAX_WALK_LEVELS);
        // Even a huge predicted answer walks one level: that is what always works.
        let dense = DepthGauge::new(WalkDepth::Auto);
        dense.observe(&shape(100_000_000, 10, 1, 65));
        assert_eq!(dense.levels_for(50, None), 1);
    }

    #[test]
    fn answers_teach_the_record_size_and_fan_out_up_at_once_and_down_by_halves() {
        let gauge = DepthGauge::new(WalkDepth::Auto);
        // A sparse franchise: 250 B a record, 2 edges per whole record.
        gauge.observe(&shape(25_000, 100, 40, 80));
        assert_eq!(
            *gauge.learnt.lock().unwrap(),
            Some(Learnt {
                bytes_per_record: 250.0,
                fan_out: 2.0
            })
        );
        // 50 ids 4 deep: 31 records each, 0.39 MB.
        assert_eq!(gauge.levels_for(50, None), 4);
        // Smaller figures move halfway; larger ones count at once.
        gauge.observe(&shape(15_000, 100, 40, 40));
        assert_eq!(gauge.learnt().bytes_per_record, 200.0);
        assert_eq!(gauge.learnt().fan_out, 1.5);
        gauge.observe(&shape(40_000, 100, 10, 60));
        assert_eq!(gauge.learnt().bytes_per_record, 400.0);
        assert_eq!(gauge.learnt().fan_out, 6.0);
        // 50 ids at 6 edges a record: 2 levels are 43 records each, 0.86 MB; 3 are 5.2 MB.
        assert_eq!(gauge.levels_for(50, None), 2);
        // Nothing is learnt from an answer without records.
        gauge.observe(&shape(5, 0, 0, 0));
        assert_eq!(gauge.learnt().fan_out, 6.0);
    }

    #[test]
    fn ids_beyond_a_page_are_shared_evenly_only_when_that_walks_deeper() {
        assert_eq!(even_share(0), 1);
        assert_eq!(even_share(50), 50);
        assert_eq!(even_share(52), 26);
        assert_eq!(even_share(101), 34);
        for pending in 1..=500 {
            let share = even_share(pending);
            assert!(share <= MAX_BATCH);
            assert_eq!(
                pending.div_ceil(share),
                pending.div_ceil(MAX_BATCH),
                "{pending} ids: no more requests than pages"
            );
        }
        // 300 B records, 4 edges each: 50 ids reach 2 levels (1.6 MB at 3), 26 reach 3.
        let gauge = DepthGauge::new(WalkDepth::Auto);
        gauge.observe(&shape(30_000, 100, 25, 100));
        assert_eq!(gauge.levels_for(50, None), 2);
        assert_eq!(gauge.batch_size(52, None), 26);
        assert_eq!(gauge.batch_size(30, None), 30, "one page: never split");
        assert_eq!(gauge.batch_size(52, Some(1)), 50, "no deeper walk to win");
        let fixed = DepthGauge::new(WalkDepth::Fixed(1));
        assert_eq!(fixed.batch_size(52, None), 50);
    }
}
