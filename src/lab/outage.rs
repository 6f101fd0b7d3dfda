//! What the client saw, computed from the records: pure functions, so the numbers the tests assert and the
//! benchmark prints are checked here on hand-made records.

use std::time::Duration;

use super::probe::ProbeRecord;
use super::sampler::HolderSample;

/// A run of failed requests as the client saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outage {
    /// Start of the last answered request before the failures (the first failure's start if none was).
    pub from: Duration,
    /// Start of the first answered request after them; `None`: nothing answered until the records end.
    pub until: Option<Duration>,
    /// Failed requests in the run.
    pub failed: usize,
    /// The node that answered at `until`.
    pub answered_by: Option<String>,
}

impl Outage {
    /// How long the client got no answer: from the last answer to the next one (`None` if it never came).
    pub fn duration(&self) -> Option<Duration> {
        self.until.map(|u| u.saturating_sub(self.from))
    }
}

/// The longest run of failed requests that ends at or after `event` (the outage a failover caused); `None`
/// when no request failed from `event` on.
pub fn outage_after(records: &[ProbeRecord], event: Duration) -> Option<Outage> {
    let mut best: Option<Outage> = None;
    let mut i = 0;
    while i < records.len() {
        if records[i].node().is_some() {
            i += 1;
            continue;
        }
        let start = i;
        while i < records.len() && records[i].node().is_none() {
            i += 1;
        }
        // records[start..i] failed; records[i], if any, answered.
        if records[i - 1].at < event {
            continue;
        }
        let from = if start > 0 { records[start - 1].at } else { records[start].at };
        let next = records.get(i);
        let run = Outage {
            from,
            until: next.map(|r| r.at),
            failed: i - start,
            answered_by: next.and_then(|r| r.node().map(String::from)),
        };
        let longer = match (&best, run.duration()) {
            (None, _) => true,
            (Some(b), None) => b.duration().is_some() || run.failed > b.failed,
            (Some(b), Some(d)) => b.duration().is_some_and(|bd| d > bd),
        };
        if longer {
            best = Some(run);
        }
    }
    best
}

/// How long after `event` the client first got `node`'s page.
pub fn first_answer_from(records: &[ProbeRecord], event: Duration, node: &str) -> Option<Duration> {
    records.iter().find(|r| r.at >= event && r.node() == Some(node)).map(|r| r.at - event)
}

/// Samples in which more than one node held the address.
pub fn double_holders(samples: &[HolderSample]) -> Vec<&HolderSample> {
    samples.iter().filter(|s| s.holders.len() > 1).collect()
}

/// (min, median, max) of `values`; `None` if empty. The median of an even count is the lower middle value.
pub fn summarize(values: &[Duration]) -> Option<(Duration, Duration, Duration)> {
    let mut v = values.to_vec();
    v.sort();
    Some((*v.first()?, v[(v.len() - 1) / 2], *v.last()?))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::lab::probe::Answer;

    /// Records every 10 ms from a pattern: 'a' = ha1 answered, 'b' = ha2, '.' = failed.
    fn records(pattern: &str) -> Vec<ProbeRecord> {
        pattern
            .chars()
            .zip(0u64..)
            .map(|(c, i)| ProbeRecord {
                at: Duration::from_millis(10 * i),
                answer: match c {
                    'a' => Answer::Node("ha1".into()),
                    'b' => Answer::Node("ha2".into()),
                    _ => Answer::Failed("timeout".into()),
                },
            })
            .collect()
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn outage_is_from_last_answer_to_next() {
        let r = records("aaa....bbb");
        let o = outage_after(&r, ms(25)).unwrap();
        assert_eq!((o.from, o.until, o.failed), (ms(20), Some(ms(70)), 4));
        assert_eq!(o.duration(), Some(ms(50)));
        assert_eq!(o.answered_by.as_deref(), Some("ha2"));
    }

    #[test]
    fn runs_before_the_event_do_not_count_and_the_longest_after_does() {
        let r = records("a........a.aa..a...b");
        let o = outage_after(&r, ms(100)).unwrap();
        assert_eq!((o.from, o.until, o.failed), (ms(150), Some(ms(190)), 3));
        assert_eq!(outage_after(&records("a....aaaa"), ms(60)), None);
    }

    #[test]
    fn no_answer_after_is_an_open_outage_and_beats_closed_ones() {
        let r = records("a..a....");
        let o = outage_after(&r, ms(0)).unwrap();
        assert_eq!((o.from, o.until, o.failed, o.duration()), (ms(30), None, 4, None));
        let first = outage_after(&records("...a"), ms(0)).unwrap();
        assert_eq!((first.from, first.duration()), (ms(0), Some(ms(30))));
    }

    #[test]
    fn first_answer_and_doubles_and_summary() {
        let r = records("aa..bb");
        assert_eq!(first_answer_from(&r, ms(10), "ha2"), Some(ms(30)));
        assert_eq!(first_answer_from(&r, ms(10), "ha3"), None);
        let s = |h: &[&str]| HolderSample { at: ms(0), holders: h.iter().map(|x| x.to_string()).collect() };
        let samples = [s(&["ha1"]), s(&["ha1", "ha2"]), s(&[])];
        assert_eq!(double_holders(&samples).len(), 1);
        assert_eq!(summarize(&[ms(3), ms(1), ms(2), ms(9)]), Some((ms(1), ms(2), ms(9))));
        assert_eq!(summarize(&[]), None);
    }
}
