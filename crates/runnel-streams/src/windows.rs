//! Window definitions.

use std::time::Duration;

/// Tumbling (advance = size) or hopping (advance < size) windows aligned to
/// the epoch: `[start, start + size)` with `start % advance == 0`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeWindows {
    pub size_ms: i64,
    pub advance_ms: i64,
    pub grace_ms: i64,
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl TimeWindows {
    /// Tumbling windows of `size` with no grace period.
    pub fn of(size: Duration) -> Self {
        let s = ms(size).max(1);
        TimeWindows {
            size_ms: s,
            advance_ms: s,
            grace_ms: 0,
        }
    }
    /// Hopping windows: a new window every `advance` (clamped to the size).
    pub fn advance_by(mut self, advance: Duration) -> Self {
        self.advance_ms = ms(advance).clamp(1, self.size_ms);
        self
    }
    /// Accept records up to `grace` of stream time after a window ends.
    pub fn grace(mut self, grace: Duration) -> Self {
        self.grace_ms = ms(grace).max(0);
        self
    }

    /// Starts of the windows containing `ts`, oldest first.
    pub fn starts_for(&self, ts: i64) -> Vec<i64> {
        let mut out = Vec::new();
        if ts < 0 {
            return out;
        }
        let mut s = ts - ts.rem_euclid(self.advance_ms);
        while s > ts - self.size_ms && s >= 0 {
            out.push(s);
            s -= self.advance_ms;
        }
        out.reverse();
        out
    }

    /// How long windows stay queryable: a day, or size + grace if longer.
    pub fn default_retention_ms(&self) -> i64 {
        (self.size_ms.saturating_add(self.grace_ms)).max(86_400_000)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tumbling_and_hopping() {
        let t = TimeWindows::of(Duration::from_millis(10));
        assert_eq!(t.starts_for(0), vec![0]);
        assert_eq!(t.starts_for(19), vec![10]);
        let h = t.advance_by(Duration::from_millis(5));
        assert_eq!(h.starts_for(12), vec![5, 10]);
        assert_eq!(h.starts_for(3), vec![0]);
        assert!(h.starts_for(-1).is_empty());
    }
}
