//! A fresh database for the crate's unit tests that need PostgreSQL (the plan checks of
//! `read.rs`, `lists.rs` and `log_batch.rs`), test data for them, and reading plans back.

#![allow(clippy::expect_used, clippy::panic, reason = "tests: failing loudly is the point")]

use sqlx::{Connection, Executor, PgConnection};

/// A fresh database cloned from the migrated template of `scripts/pg.sh`, or `None`
/// (skip) without one, unless `MESSAGING_PG_REQUIRED=1` (then a failure).
pub(crate) async fn fresh_database() -> Option<String> {
    let vars = (std::env::var("MESSAGING_PG_URL"), std::env::var("MESSAGING_PG_TEMPLATE"));
    let (Ok(admin), Ok(template)) = vars else {
        if std::env::var("MESSAGING_PG_REQUIRED").is_ok_and(|v| v == "1") {
            panic!("MESSAGING_PG_REQUIRED=1 but no MESSAGING_PG_URL/MESSAGING_PG_TEMPLATE");
        }
        eprintln!("PostgreSQL test skipped: no MESSAGING_PG_URL (run ./scripts/test.sh)");
        return None;
    };
    let name = format!("case_{}", uuid::Uuid::now_v7().simple());
    let mut conn = PgConnection::connect(&admin).await.expect("admin connection");
    conn.execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name} TEMPLATE {template}")))
        .await
        .expect("create the database");
    let (base, _) = admin.rsplit_once('/').expect("a database in MESSAGING_PG_URL");
    Some(format!("{base}/{name}"))
}

/// The plan of `EXPLAIN {options} EXECUTE {name}({args})` of a statement prepared as
/// `name`, as text (one line per row of the answer).
pub(crate) async fn plan_of(
    conn: &mut PgConnection,
    options: &str,
    name: &str,
    args: &str,
) -> String {
    let lines: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "EXPLAIN {options} EXECUTE {name}({args})"
    )))
    .fetch_all(&mut *conn)
    .await
    .unwrap_or_else(|e| panic!("EXPLAIN EXECUTE {name}: {e}"));
    lines.join("\n")
}

/// The user with many conversations in [`BUSY`].
pub(crate) const ME_ID: &str = "00000000-0000-0000-0000-0000000000aa";

/// [`ME_ID`] as an SQL literal.
pub(crate) const ME: &str = "'00000000-0000-0000-0000-0000000000aa'";

/// A database where the planner has a choice: [`ME`] has 600 conversations (two of three
/// archived, every fourth with the context `mine`), the context `hot` 3,000 conversations
/// of other pairs, and 5,000 contexts one conversation each; every other user has a single
/// conversation (the shape in which `user_id = $1` looks as selective as the primary key).
/// One minute per conversation, so a page's last minute holds one row.
pub(crate) const BUSY: &str = "SET search_path TO messaging; \
    INSERT INTO conversations (id, user_lo, user_hi, context, created_at) \
      SELECT gen_random_uuid(), '00000000-0000-0000-0000-0000000000aa', gen_random_uuid(), \
             CASE WHEN g % 4 = 0 THEN 'mine' ELSE '' END, g * 60000 \
      FROM generate_series(1, 600) g; \
    INSERT INTO conversations (id, user_lo, user_hi, context, created_at) \
      SELECT gen_random_uuid(), gen_random_uuid(), gen_random_uuid(), 'hot', g * 60000 \
      FROM generate_series(1, 3000) g; \
    INSERT INTO conversations (id, user_lo, user_hi, context, created_at) \
      SELECT gen_random_uuid(), gen_random_uuid(), gen_random_uuid(), 'c' || g, g * 60000 \
      FROM generate_series(1, 5000) g; \
    INSERT INTO members (user_id, conversation_id, peer_id) \
      SELECT user_lo, id, user_hi FROM conversations \
      UNION ALL SELECT user_hi, id, user_lo FROM conversations; \
    INSERT INTO activity (user_id, conversation_id, at, context, archived) \
      SELECT user_lo, id, created_at, NULLIF(context, ''), \
             user_lo = '00000000-0000-0000-0000-0000000000aa' AND created_at / 60000 % 3 <> 0 \
      FROM conversations; \
    INSERT INTO activity (user_id, conversation_id, at) \
      SELECT user_hi, id, created_at FROM conversations; \
    ANALYZE";
