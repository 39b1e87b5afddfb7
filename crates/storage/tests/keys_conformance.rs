//! The key and audit half of the Store specification, run against SQLite and Postgres.

#![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

use std::sync::Arc;

use marketd_domain::access::{
    AuditEntry, AuditEvent, AuditFilter, KeyRecord, KeyUsage, Scope, Scopes,
};
use marketd_domain::api_key::KeyEnvironment;
use marketd_storage::{Store, StoreError};

marketd_testkit::store_suite!(
    keys_round_trip_every_field,
    duplicate_key_ids_conflict,
    keys_page_by_id,
    revocation_is_recorded_once,
    rotation_caps_expiry_and_links_both_keys,
    rotation_refuses_revoked_or_rotated_keys,
    usage_accumulates_and_never_moves_back,
    expiry_is_recorded_once,
    audit_filters_and_pages_newest_first,
    rehash_replaces_the_hash,
);

fn key(id: &str) -> KeyRecord {
    KeyRecord {
        id: id.to_owned(),
        environment: KeyEnvironment::Live,
        name: format!("key {id}"),
        scopes: [Scope::PricesRead, Scope::SignalsRead]
            .into_iter()
            .collect(),
        allowed_cidrs: vec![],
        rate_limit_per_minute: 600,
        created_at: 1_000,
        expires_at: None,
        revoked_at: None,
        rotated_from: None,
        rotated_to: None,
        last_used_at: None,
        last_used_ip: None,
        usage_count: 0,
        pepper_version: 1,
        secret_hash: [7; 32],
    }
}

fn created(id: &str, at: i64) -> AuditEntry {
    let mut entry = AuditEntry::new(AuditEvent::KeyCreated, at);
    entry.key_id = Some(id.to_owned());
    entry
}

async fn all_audit(store: &Arc<dyn Store>) -> Vec<AuditEntry> {
    store.audit(&AuditFilter::default(), 1000).await.unwrap()
}

async fn keys_round_trip_every_field(store: Arc<dyn Store>) {
    let mut full = key("AAAAAAAAAAA1");
    full.environment = KeyEnvironment::Test;
    full.scopes = Scopes::all();
    full.allowed_cidrs = vec![
        "10.0.0.0/8".parse().unwrap(),
        "2001:db8::/32".parse().unwrap(),
    ];
    full.expires_at = Some(9_000);
    full.rotated_from = Some("AAAAAAAAAAA0".into());
    full.secret_hash = std::array::from_fn(|i| u8::try_from(i).unwrap());
    full.pepper_version = 3;
    store
        .insert_key(&full, &created(&full.id, 1_000))
        .await
        .unwrap();

    assert_eq!(store.key(&full.id).await.unwrap(), Some(full.clone()));
    assert_eq!(store.key("AAAAAAAAAAA9").await.unwrap(), None);
    assert_eq!(store.count_keys().await.unwrap(), 1);
    let audit = all_audit(&store).await;
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0].event, AuditEvent::KeyCreated);
    assert_eq!(audit[0].key_id.as_deref(), Some(full.id.as_str()));
}

async fn duplicate_key_ids_conflict(store: Arc<dyn Store>) {
    let first = key("AAAAAAAAAAA1");
    store
        .insert_key(&first, &created(&first.id, 1))
        .await
        .unwrap();
    let err = store
        .insert_key(&first, &created(&first.id, 2))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict), "{err:?}");
    // The failed insert left no audit entry behind.
    assert_eq!(all_audit(&store).await.len(), 1);
}

async fn keys_page_by_id(store: Arc<dyn Store>) {
    for id in ["CCCCCCCCCCCC", "AAAAAAAAAAAA", "BBBBBBBBBBBB"] {
        store.insert_key(&key(id), &created(id, 1)).await.unwrap();
    }
    let first = store.keys(None, 2).await.unwrap();
    let ids: Vec<_> = first.iter().map(|k| k.id.as_str()).collect();
    assert_eq!(ids, ["AAAAAAAAAAAA", "BBBBBBBBBBBB"]);
    let rest = store.keys(Some("BBBBBBBBBBBB"), 2).await.unwrap();
    assert_eq!(rest.len(), 1);
    assert_eq!(rest[0].id, "CCCCCCCCCCCC");
}

async fn revocation_is_recorded_once(store: Arc<dyn Store>) {
    let k = key("AAAAAAAAAAA1");
    store.insert_key(&k, &created(&k.id, 1)).await.unwrap();
    let mut revoked = AuditEntry::new(AuditEvent::KeyRevoked, 50);
    revoked.key_id = Some(k.id.clone());
    let after = store
        .revoke_key(&k.id, 50, &revoked)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(after.revoked_at, Some(50));
    let again = store
        .revoke_key(&k.id, 60, &revoked)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        again.revoked_at,
        Some(50),
        "the first revocation time stays"
    );
    assert!(
        store
            .revoke_key("AAAAAAAAAAA9", 60, &revoked)
            .await
            .unwrap()
            .is_none()
    );
    let events: Vec<_> = all_audit(&store).await.iter().map(|e| e.event).collect();
    assert_eq!(events, [AuditEvent::KeyRevoked, AuditEvent::KeyCreated]);
}

async fn rotation_caps_expiry_and_links_both_keys(store: Arc<dyn Store>) {
    let mut old = key("AAAAAAAAAAA1");
    old.expires_at = Some(10_000);
    store.insert_key(&old, &created(&old.id, 1)).await.unwrap();
    let mut new = key("AAAAAAAAAAA2");
    new.rotated_from = Some(old.id.clone());
    let mut rotated = AuditEntry::new(AuditEvent::KeyRotated, 100);
    rotated.key_id = Some(old.id.clone());
    let after = store
        .rotate_key(&old.id, 5_000, &new, &rotated)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(after.expires_at, Some(5_000));
    assert_eq!(after.rotated_to.as_deref(), Some("AAAAAAAAAAA2"));
    assert_eq!(store.key(&new.id).await.unwrap(), Some(new.clone()));

    // A grace period longer than the remaining life keeps the earlier expiry.
    let mut short = key("BBBBBBBBBBB1");
    short.expires_at = Some(2_000);
    store
        .insert_key(&short, &created(&short.id, 1))
        .await
        .unwrap();
    let successor = key("BBBBBBBBBBB2");
    let after = store
        .rotate_key(&short.id, 50_000, &successor, &rotated)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(after.expires_at, Some(2_000));
}

async fn rotation_refuses_revoked_or_rotated_keys(store: Arc<dyn Store>) {
    let old = key("AAAAAAAAAAA1");
    store.insert_key(&old, &created(&old.id, 1)).await.unwrap();
    let rotated = AuditEntry::new(AuditEvent::KeyRotated, 100);
    store
        .rotate_key(&old.id, 500, &key("AAAAAAAAAAA2"), &rotated)
        .await
        .unwrap()
        .unwrap();
    // Rotated once already: a second successor is refused and nothing is inserted.
    assert!(
        store
            .rotate_key(&old.id, 500, &key("AAAAAAAAAAA3"), &rotated)
            .await
            .unwrap()
            .is_none()
    );
    assert!(store.key("AAAAAAAAAAA3").await.unwrap().is_none());

    let gone = key("BBBBBBBBBBB1");
    store
        .insert_key(&gone, &created(&gone.id, 1))
        .await
        .unwrap();
    store
        .revoke_key(&gone.id, 10, &AuditEntry::new(AuditEvent::KeyRevoked, 10))
        .await
        .unwrap();
    assert!(
        store
            .rotate_key(&gone.id, 500, &key("BBBBBBBBBBB2"), &rotated)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .rotate_key("ZZZZZZZZZZZZ", 500, &key("BBBBBBBBBBB3"), &rotated)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(store.count_keys().await.unwrap(), 3);
}

async fn usage_accumulates_and_never_moves_back(store: Arc<dyn Store>) {
    let k = key("AAAAAAAAAAA1");
    store.insert_key(&k, &created(&k.id, 1)).await.unwrap();
    let usage = |at: i64, ip: &str, count: u64| KeyUsage {
        id: k.id.clone(),
        last_used_at: at,
        last_used_ip: ip.parse().unwrap(),
        count,
    };
    store
        .record_key_usage(&[usage(2_000, "10.0.0.1", 5)])
        .await
        .unwrap();
    // A replica flushing older usage adds its count but not its older time or address.
    store
        .record_key_usage(&[usage(1_500, "10.0.0.2", 3), usage(9, "::1", 1)])
        .await
        .unwrap();
    let unknown = KeyUsage {
        id: "ZZZZZZZZZZZZ".into(),
        ..usage(3_000, "10.0.0.3", 1)
    };
    store.record_key_usage(&[unknown]).await.unwrap();
    let after = store.key(&k.id).await.unwrap().unwrap();
    assert_eq!(after.usage_count, 9);
    assert_eq!(after.last_used_at, Some(2_000));
    assert_eq!(after.last_used_ip, Some("10.0.0.1".parse().unwrap()));
    store
        .record_key_usage(&[usage(4_000, "2001:db8::7", 1)])
        .await
        .unwrap();
    let after = store.key(&k.id).await.unwrap().unwrap();
    assert_eq!(after.last_used_ip, Some("2001:db8::7".parse().unwrap()));
    assert_eq!(after.usage_count, 10);
}

async fn expiry_is_recorded_once(store: Arc<dyn Store>) {
    let mut soon = key("AAAAAAAAAAA1");
    soon.expires_at = Some(100);
    let mut later = key("AAAAAAAAAAA2");
    later.expires_at = Some(10_000);
    let mut revoked = key("AAAAAAAAAAA3");
    revoked.expires_at = Some(50);
    revoked.revoked_at = Some(10);
    for k in [&soon, &later, &revoked, &key("AAAAAAAAAAA4")] {
        store.insert_key(k, &created(&k.id, 1)).await.unwrap();
    }
    assert!(store.record_expired_keys(99).await.unwrap().is_empty());
    assert_eq!(
        store.record_expired_keys(200).await.unwrap(),
        ["AAAAAAAAAAA1"]
    );
    assert!(store.record_expired_keys(300).await.unwrap().is_empty());
    let expired = store
        .audit(
            &AuditFilter {
                event: Some(AuditEvent::KeyExpired),
                ..Default::default()
            },
            10,
        )
        .await
        .unwrap();
    assert_eq!(expired.len(), 1);
    assert_eq!(expired[0].at, 100);
    assert_eq!(expired[0].key_id.as_deref(), Some("AAAAAAAAAAA1"));
}

async fn audit_filters_and_pages_newest_first(store: Arc<dyn Store>) {
    let mut entries = Vec::new();
    for i in 0..10_i64 {
        let event = if i % 2 == 0 {
            AuditEvent::AuthFailed
        } else {
            AuditEvent::RateLimited
        };
        let mut entry = AuditEntry::new(event, i * 1_000);
        entry.key_id = Some(
            if i < 5 {
                "AAAAAAAAAAAA"
            } else {
                "BBBBBBBBBBBB"
            }
            .into(),
        );
        entry.ip = Some(
            if i % 3 == 0 {
                "2001:db8::1"
            } else {
                "192.0.2.1"
            }
            .parse()
            .unwrap(),
        );
        entry.reason = Some(format!("reason {i}"));
        entry.count = u64::try_from(i).unwrap() + 1;
        entries.push(entry);
    }
    store.append_audit(&entries).await.unwrap();
    store.append_audit(&[]).await.unwrap();

    let all = all_audit(&store).await;
    assert_eq!(all.len(), 10);
    assert!(all.windows(2).all(|w| w[0].id > w[1].id), "newest first");
    assert_eq!(all[0].at, 9_000);
    assert_eq!(all[0].count, 10);
    assert_eq!(all[0].ip, Some("2001:db8::1".parse().unwrap()));

    let by_key = AuditFilter {
        key_id: Some("AAAAAAAAAAAA".into()),
        ..Default::default()
    };
    assert_eq!(store.audit(&by_key, 100).await.unwrap().len(), 5);
    let by_event = AuditFilter {
        event: Some(AuditEvent::RateLimited),
        ..Default::default()
    };
    assert!(
        store
            .audit(&by_event, 100)
            .await
            .unwrap()
            .iter()
            .all(|e| e.event == AuditEvent::RateLimited)
    );
    let window = AuditFilter {
        start: Some(2_000),
        end: Some(5_000),
        ..Default::default()
    };
    let ats: Vec<_> = store
        .audit(&window, 100)
        .await
        .unwrap()
        .iter()
        .map(|e| e.at)
        .collect();
    assert_eq!(ats, [4_000, 3_000, 2_000]);

    // Paging by id visits every entry once.
    let mut seen = Vec::new();
    let mut filter = AuditFilter::default();
    loop {
        let page = store.audit(&filter, 3).await.unwrap();
        let Some(last) = page.last() else { break };
        filter.before_id = Some(last.id);
        seen.extend(page.iter().map(|e| e.at));
    }
    seen.sort_unstable();
    assert_eq!(seen, (0..10).map(|i| i * 1_000).collect::<Vec<_>>());
}

async fn rehash_replaces_the_hash(store: Arc<dyn Store>) {
    let k = key("AAAAAAAAAAA1");
    store.insert_key(&k, &created(&k.id, 1)).await.unwrap();
    store.rehash_key(&k.id, 2, &[9; 32]).await.unwrap();
    let after = store.key(&k.id).await.unwrap().unwrap();
    assert_eq!((after.pepper_version, after.secret_hash), (2, [9; 32]));
}
