//! "Romeo & Juliet": 3,287 lines of dialogue sent one after another, alternating between
//! two users, each send waiting for its durable acknowledgement before the next. The
//! figure is the total wall time; published figures for Matrix homeservers on the same
//! exercise are Conduit 4.2 s and Synapse 1 min 46 s.
//!
//! The lines are generated, not the play's text: a fixed pseudo-random sequence of words
//! with line lengths spread like verse dialogue (mostly 20 to 60 characters, some short
//! interjections and some long speeches), the same on every run.

use std::time::Instant;

use serde_json::json;

use super::client::{Target, call};
use super::report::{Report, check, figure, parameters};
use super::server_info::describe;
use super::{Error, Run, fleet};

/// The play's number of lines.
pub const LINES: usize = 3_287;

const WORDS: &[&str] = &[
    "thou",
    "thee",
    "thy",
    "love",
    "night",
    "light",
    "fair",
    "sweet",
    "death",
    "name",
    "rose",
    "moon",
    "swear",
    "heaven",
    "lady",
    "sir",
    "good",
    "what",
    "shall",
    "will",
    "not",
    "now",
    "come",
    "go",
    "hence",
    "hath",
    "doth",
    "art",
    "be",
    "is",
    "the",
    "and",
    "my",
    "me",
    "it",
    "that",
    "with",
    "for",
    "this",
    "a",
    "to",
    "of",
    "in",
    "her",
    "his",
    "we",
    "our",
    "you",
    "nurse",
    "friar",
    "banished",
    "Verona",
    "Mantua",
    "Tybalt",
    "Romeo",
    "Juliet",
    "Capulet",
    "Montague",
    "poison",
    "dagger",
    "balcony",
    "window",
    "morning",
    "lark",
    "nightingale",
    "kiss",
    "lips",
    "hand",
    "heart",
    "eyes",
    "fortune",
    "stars",
    "grave",
    "tomb",
    "wherefore",
];

/// A small deterministic generator (xorshift64*), so every run sends the same text.
struct Dice(u64);

impl Dice {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % n.max(1) as u64).unwrap_or(0)
    }
}

/// The `n` lines of the exercise.
#[must_use]
pub fn lines(n: usize) -> Vec<String> {
    let mut dice = Dice(0x5eed_0fca_9e1e_7500);
    (0..n)
        .map(|_| {
            // Words per line: 1–3 one time in eight, 14–30 one in sixteen, else 4–11.
            let words = match dice.below(16) {
                0 | 1 => 1 + dice.below(3),
                2 => 14 + dice.below(17),
                _ => 4 + dice.below(8),
            };
            let mut line = String::new();
            for w in 0..words {
                if w > 0 {
                    line.push(' ');
                }
                line.push_str(WORDS[dice.below(WORDS.len())]);
            }
            line.push(['.', ',', '!', '?', ';'][dice.below(5)]);
            line
        })
        .collect()
}

/// Sends the lines and reports the wall time.
///
/// # Errors
/// When a connection, the conversation, or a send fails.
pub async fn run(target: &Target, run: &Run, count: usize) -> Result<Report, Error> {
    run.quiesce().await;
    let text = lines(count);
    let mean = text.iter().map(String::len).sum::<usize>() as f64 / text.len().max(1) as f64;
    let users = fleet::users(2);
    let fleet = fleet::open(target, &users, 2, 0).await?;
    let limits = fleet.hello.as_ref().map(|h| h.limits.clone()).unwrap_or_default();
    let [romeo, juliet] = <[_; 2]>::try_from(fleet.members).map_err(|_| {
        format!("could not connect both users: {}", fleet.first_error.unwrap_or_default())
    })?;
    let (mut romeo, mut juliet) = (romeo.socket, juliet.socket);
    let opened = call(&mut romeo, json!({"id": 0, "op": "open", "peer": users[1]})).await?;
    let conversation = opened["conversation"]["id"].clone();
    let cpu = run.cpu();
    let began = Instant::now();
    let mut acknowledged = 0_usize;
    for (n, line) in text.iter().enumerate() {
        let speaker = if n % 2 == 0 { &mut romeo } else { &mut juliet };
        let request =
            json!({"id": n + 1, "op": "send", "conversation_id": conversation, "body": line});
        let reply = call(speaker, request).await?;
        if reply["message"]["seq"].as_u64().is_some() {
            acknowledged += 1;
        }
    }
    let took = began.elapsed();
    let cpu = cpu.stop();
    Ok(Report {
        mode: "romeo",
        server: describe(target.addr, limits).await,
        parameters: parameters(json!({
            "lines": count,
            "mean_line_bytes": (mean * 10.0).round() / 10.0,
            "each send waits for its acknowledgement": true,
        })),
        figures: vec![
            figure("total wall time", (took.as_secs_f64() * 1000.0).round() / 1000.0, "s"),
            figure("per line", took.as_secs_f64() * 1e3 / count.max(1) as f64, "ms"),
        ],
        checks: vec![check(
            "every line acknowledged with its seq",
            acknowledged == count,
            format!("{acknowledged} of {count}"),
        )],
        bounded_by: "the round trip of one durable send at a time".into(),
        cpu,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lines_are_fixed_and_dialogue_like() {
        let text = lines(LINES);
        assert_eq!(text, lines(LINES));
        let mean = text.iter().map(String::len).sum::<usize>() / text.len();
        assert!((25..=60).contains(&mean), "mean line length {mean}");
        assert!(text.iter().all(|line| !line.trim().is_empty()));
    }
}
