//! Model-based property tests: random sequences of every operation, by four users,
//! applied to a store through [`Messenger`](crate::Messenger) and to a reference model of docs/protocol.md,
//! compared after every step.
//!
//! # Why
//!
//! The conformance cases check each rule in a scenario someone thought of. Rules interact
//! (a retry while blocked, a read marker past a deleted message, a reaction on a message a
//! moderator removed, an archived conversation that gets a system message), and the
//! interactions are where stores drift apart. Here proptest draws sequences of ops
//! ([`ops`]), a plain in-memory model written from the protocol (`reference`, sharing no
//! code with `Messenger` or the memory store) says what each step must answer and what
//! everyone must then see, and the comparison (`check`) reads it all back through the
//! real messenger: the step's outcome (Ok or the error code) and reply; every
//! conversation's history as each user reads it (`not_found` for non-members); each
//! user's conversation list, archived and not, page by page (order, last message, unread
//! count, markers, `peer_*_at`, mute and archive); unread totals; search for words of the
//! vocabulary; and each user's `sync` from the start (kinds, positions, the objects in
//! their current state). Ids and times are the store's to choose: the model binds them
//! from the step that created them (`view` maps ids to the model's names), and every
//! later read must show the same values. A failing case is shrunk to a short sequence and
//! reported with it; keep that as a regression test in [`regressions`], which the macro
//! stamps into every store crate (replayed through [`replay`]).
//!
//! # Running it against a store
//!
//! ```ignore
//! async fn fresh() -> messaging_core::testkit::Fixture { /* a new, empty store */ }
//!
//! // One #[test] `model_based` (it builds its own runtime) running 16 cases, each on a
//! // fresh fixture, and one #[tokio::test] per sequence of `regressions`.
//! messaging_core::model_tests!(super::fresh, 16);
//! ```
//!
//! A factory returning `Option<Fixture>` skips the test on `None`, as for the
//! conformance macros. Cases are deterministic: the random generator has a fixed seed and
//! failures are not persisted to files, so CI draws the same sequences every run.
//!
//! # Longer runs
//!
//! - `MESSAGING_MODEL_CASES=<n>` runs `n` cases instead of the count the test gives;
//! - `MESSAGING_MODEL_SEED=<u64>` draws other sequences (the default seed is fixed);
//! - `MESSAGING_MODEL_OPS=<n>` allows up to `n` ops per case (default 40);
//! - `MESSAGING_MODEL_STATS=1` prints how often each op succeeded or failed with each
//!   code (run with `--nocapture`), to see that the drawn sequences reach every path.
//!
//! ```sh
//! MESSAGING_MODEL_CASES=5000 MESSAGING_MODEL_SEED=7 cargo test -p messaging-core --test model
//! ```

pub(crate) mod check;
pub(crate) mod driver;
pub mod ops;
pub(crate) mod reference;
pub mod regressions;
pub(crate) mod view;

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestError, TestRng, TestRunner};

use crate::id::{ConversationId, MessageId, UserId};
use crate::time::Timestamp;

use super::{Fixture, IntoFixture};
use driver::Unknown;
use ops::{Op, USERS};
use reference::Model;

/// The seed of the default run (any fixed value: it makes CI reproducible).
pub const DEFAULT_SEED: u64 = 0x6d65_7373_6167_6531;

/// The most ops a case has by default.
pub const DEFAULT_MAX_OPS: usize = 40;

fn env_number<T: std::str::FromStr>(name: &str) -> Option<T> {
    let value = std::env::var(name).ok()?;
    match value.trim().parse() {
        Ok(n) => Some(n),
        Err(_) => panic!("{name}={value:?} is not a number"),
    }
}

/// Runs `default_cases` cases (or `MESSAGING_MODEL_CASES`), each on a fresh fixture from
/// `factory`, on a runtime of its own; panics with the shrunk sequence on a mismatch.
/// A factory that returns `None` (a store not configured) skips the run.
pub fn check<F, Fut, X>(factory: F, default_cases: u32)
where
    F: Fn() -> Fut,
    Fut: Future<Output = X>,
    X: IntoFixture,
{
    let cases = env_number("MESSAGING_MODEL_CASES").unwrap_or(default_cases);
    let seed = env_number("MESSAGING_MODEL_SEED").unwrap_or(DEFAULT_SEED);
    let max_ops = env_number("MESSAGING_MODEL_OPS").unwrap_or(DEFAULT_MAX_OPS);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let config = Config {
        cases,
        failure_persistence: None,
        // Each shrink step runs a whole case on a fresh store: bound the search.
        max_shrink_iters: 512,
        ..Config::default()
    };
    let mut seed_bytes = [0_u8; 32];
    seed_bytes[..8].copy_from_slice(&seed.to_le_bytes());
    let mut runner =
        TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::ChaCha, &seed_bytes));
    let skipped = AtomicBool::new(false);
    let tally: Option<Tally> =
        std::env::var("MESSAGING_MODEL_STATS").is_ok_and(|v| v == "1").then(Tally::default);
    let result = runner.run(&ops::ops(max_ops), |ops| {
        if skipped.load(Ordering::Relaxed) {
            return Ok(());
        }
        runtime.block_on(async {
            let Some(fixture) = factory().await.into_fixture() else {
                skipped.store(true, Ordering::Relaxed);
                return Ok(());
            };
            Box::pin(run_case(&fixture, &ops, tally.as_ref())).await.map_err(TestCaseError::fail)
        })
    });
    if let Some(tally) = tally {
        let tally = tally.into_inner().unwrap_or_else(std::sync::PoisonError::into_inner);
        for ((kind, outcome), n) in tally {
            eprintln!("{kind:>14} {outcome:<12} {n}");
        }
    }
    match result {
        Ok(()) => {}
        Err(TestError::Fail(reason, ops)) => panic!(
            "the store and the model disagree (seed {seed}):\n{reason}\n\nthe shortest sequence found \
             ({} ops; replay it with testkit::model::replay):\n{ops:#?}",
            ops.len()
        ),
        Err(TestError::Abort(reason)) => panic!("the model-based run was aborted: {reason}"),
    }
}

/// Replays `ops` on `fixture`'s store and panics at the first step where the store and
/// the model disagree: the body of a regression test for a sequence [`check`] found.
pub async fn replay(fixture: &Fixture, ops: &[Op]) {
    if let Err(mismatch) = Box::pin(run_case(fixture, ops, None)).await {
        panic!("{mismatch}");
    }
}

/// How often each kind of op ended in each outcome over a run (`MESSAGING_MODEL_STATS=1`
/// prints it: a check that the ops reach their success paths, not only their errors).
type Tally = Mutex<BTreeMap<(&'static str, &'static str), u64>>;

/// One case: four fresh users, every op applied to both sides, compared after each.
async fn run_case(fixture: &Fixture, ops: &[Op], tally: Option<&Tally>) -> Result<(), String> {
    let m = fixture.messenger().await;
    let users: Vec<UserId> = (0..USERS).map(|_| UserId::new()).collect();
    let mut model = Model::new(users, Timestamp::now());
    let unknown = Unknown { conversation: ConversationId::new(), message: MessageId::new() };
    for (step, op) in ops.iter().enumerate() {
        let call = model.resolve(op);
        let expect = model.apply(&call);
        let actual = driver::run(&m, &model, &unknown, &call).await;
        if let Some(tally) = tally {
            let kind = format!("{op:?}").split([' ', '{']).next().map_or("?", |k| match k {
                "Open" => "open",
                "ServiceOpen" => "service open",
                "Send" => "send",
                "Post" => "post",
                "Edit" => "edit",
                "Delete" => "delete",
                "Moderate" => "moderate",
                "Read" => "read",
                "Delivered" => "delivered",
                "Block" => "block",
                "Unblock" => "unblock",
                "React" => "react",
                "Mute" => "mute",
                "Archive" => "archive",
                _ => "?",
            });
            let outcome = match (&expect, &actual) {
                (reference::Expect::Sent { created: false, .. }, Ok(_)) => "ok (retry)",
                _ => view::code(&actual),
            };
            *tally
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .entry((kind, outcome))
                .or_default() += 1;
        }
        let result = async {
            check::outcome(&expect, &actual)?;
            if let Ok(actual) = &actual {
                check::bind(&m, &mut model, &expect, actual).await?;
                check::reply(&model, &expect, actual)?;
            } else {
                check::bind(&m, &mut model, &expect, &driver::Actual::Unit).await?;
            }
            check::state(&m, &model).await
        };
        if let Err(mismatch) = Box::pin(result).await {
            return Err(format!("step {step} ({op:?}, resolved as {call:?}): {mismatch}"));
        }
    }
    Ok(())
}
