//! The store's futures can be spawned on a multi-threaded runtime (compile-time check).

use std::sync::Arc;

use messaging_core::{Limits, Messenger};
use messaging_store_pg::presence::PresenceOptions;
use messaging_store_pg::{PgOptions, PgStore};

fn spawnable<T: Send>(_: &T) {}

#[test]
fn constructors_are_send() {
    let connect = PgStore::connect("postgres://localhost/x", PgOptions::default());
    spawnable(&connect);
    drop(connect);
    let _ = |store: PgStore| {
        let fanout = store.fanout(16);
        let presence = async move { store.presence(fanout, PresenceOptions::default()).await };
        spawnable(&presence);
    };
    let _ = |store: PgStore| {
        let build = async move { Messenger::new(Arc::new(store)).await };
        spawnable(&build);
    };
    let _ = |store: PgStore| {
        let build = async move { store.messenger(Limits::default()).await };
        spawnable(&build);
    };
    let _ = |store: PgStore| {
        let close = async move { store.close().await };
        spawnable(&close);
    };
}
