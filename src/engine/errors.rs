//! The errors of a scan, at most [`MAX_ERRORS_PER_INPUT`] told per input, the rest counted: one broken file of
//! 20,000 bad blocks is 10 lines and a count, not 20,000 lines (nor 20,000 strings held in memory).

use super::InputError;
use std::collections::HashMap;

/// Errors told per input; the ones at the lowest offsets are kept, so every run tells the same ones.
pub const MAX_ERRORS_PER_INPUT: usize = 10;

/// Errors gathered by one worker (or merged from all), per input.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct ErrorLog {
    by_input: HashMap<String, Kept>,
}

#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
struct Kept {
    /// The errors with the lowest offsets, in order.
    first: Vec<InputError>,
    /// Errors seen in all.
    seen: u64,
}

/// Where an error is: the offset a reader's message starts with (`at offset N: ...`), then the message.
fn order(e: &InputError) -> (u64, &str) {
    let offset = e
        .message
        .strip_prefix("at offset ")
        .and_then(|m| m.split(':').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    (offset, &e.message)
}

impl ErrorLog {
    pub fn push(&mut self, e: InputError) {
        let kept = self.by_input.entry(e.name.clone()).or_default();
        kept.seen += 1;
        let at = kept.first.partition_point(|k| order(k) <= order(&e));
        if at < MAX_ERRORS_PER_INPUT {
            kept.first.insert(at, e);
            kept.first.truncate(MAX_ERRORS_PER_INPUT);
        }
    }

    /// Add another log's errors: the lowest of both are kept, all are counted.
    pub fn merge(&mut self, other: ErrorLog) {
        for (name, k) in other.by_input {
            let seen = k.seen - k.first.len() as u64;
            for e in k.first {
                self.push(e);
            }
            self.by_input.entry(name).or_default().seen += seen;
        }
    }

    /// The errors to tell, by input name, each input's followed by how many more there were.
    pub fn into_list(self) -> Vec<InputError> {
        let mut inputs: Vec<(String, Kept)> = self.by_input.into_iter().collect();
        inputs.sort_by(|a, b| a.0.cmp(&b.0));
        let mut out = Vec::new();
        for (name, k) in inputs {
            let more = k.seen - k.first.len() as u64;
            out.extend(k.first);
            if more > 0 {
                out.push(InputError {
                    name,
                    message: format!("{more} more errors in this input not shown"),
                });
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(name: &str, offset: u64) -> InputError {
        InputError {
            name: name.into(),
            message: format!("at offset {offset}: bad"),
        }
    }

    #[test]
    fn the_lowest_offsets_are_told_and_the_rest_counted_whatever_the_order() {
        let mut a = ErrorLog::default();
        let mut b = ErrorLog::default();
        for i in (0..500).rev() {
            if i % 2 == 0 { &mut a } else { &mut b }.push(err("x", i * 100));
        }
        a.push(err("y", 7));
        a.merge(b);
        let list = a.into_list();
        assert_eq!(list.len(), MAX_ERRORS_PER_INPUT + 2);
        for (i, e) in list.iter().take(MAX_ERRORS_PER_INPUT).enumerate() {
            assert_eq!(e.message, format!("at offset {}: bad", i * 100));
        }
        assert_eq!(
            list[MAX_ERRORS_PER_INPUT].message,
            "490 more errors in this input not shown"
        );
        assert_eq!(list.last().unwrap().name, "y");
    }
}
