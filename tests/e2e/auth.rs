//! API keys over real HTTP: scopes on every route, 401 versus 403, allowlists behind
//! proxies, rotation, revocation across replicas, expiry, brute force and rate limits.

use std::sync::Arc;
use std::time::{Duration, Instant};

use marketd_api::auth::{KEY_CACHE_TTL, Requirement, Requirements, TrustedProxies};
use marketd_domain::access::{AuditEvent, AuditFilter, Scope};
use marketd_testkit::{Kind, TestDb};
use serde_json::{Value, json};

use crate::helpers::{
    TestApp, bearer_client, both_backends, config, issue_key, seed_btc, spawn_app, spawn_app_on,
};

both_backends!(
    every_secured_route_enforces_its_scope,
    keys_are_managed_over_the_api,
    rotation_honours_the_grace_period,
    expired_keys_are_refused,
    rate_limits_carry_ietf_headers,
);

fn concrete(path: &str) -> String {
    path.replace("{symbol}", "BTC")
        .replace("{id}", "AAAAAAAAAAAA")
}

async fn call(
    client: &reqwest::Client,
    app: &TestApp,
    method: &reqwest::Method,
    path: &str,
) -> reqwest::Response {
    let mut request = client.request(method.clone(), app.url(&concrete(path)));
    if *method == reqwest::Method::POST {
        request = request.json(&json!({}));
    }
    request.send().await.unwrap()
}

/// The matrix comes from the served OpenAPI document, which the auth layer also enforces:
/// a new route is covered the moment it exists.
async fn every_secured_route_enforces_its_scope(app: &TestApp) {
    seed_btc(app.store.as_ref(), 10).await;
    let requirements = Requirements::from_openapi(&marketd_api::openapi()).unwrap();
    let mut secured = 0;
    for (method, path, requirement) in requirements.iter() {
        let method = reqwest::Method::from_bytes(method.as_str().as_bytes()).unwrap();
        let scope = match requirement {
            Requirement::Public => {
                assert!(
                    ["/healthz", "/readyz", "/metrics"].contains(&path),
                    "{method} {path} is public"
                );
                continue;
            }
            Requirement::AnyKey => None,
            Requirement::Scope(scope) => Some(scope),
        };
        secured += 1;
        let anon = call(&app.anon, app, &method, path).await;
        assert_eq!(anon.status(), 401, "{method} {path} without a key");
        assert_eq!(
            anon.headers()["www-authenticate"],
            "Bearer realm=\"marketd\""
        );
        let problem: Value = anon.json().await.unwrap();
        assert_eq!(problem["type"], "authentication_required");

        if let Some(scope) = scope {
            let others: Vec<Scope> = Scope::ALL.into_iter().filter(|s| *s != scope).collect();
            let key = issue_key(&app.auth, "lacks one scope", &others, |_| {}).await;
            let denied = call(&bearer_client(&key), app, &method, path).await;
            assert_eq!(denied.status(), 403, "{method} {path} without {scope}");
            assert!(
                denied.headers()["www-authenticate"]
                    .to_str()
                    .unwrap()
                    .contains("insufficient_scope")
            );
            let problem: Value = denied.json().await.unwrap();
            assert_eq!(problem["type"], "insufficient_scope");
            assert!(problem["detail"].as_str().unwrap().contains(scope.as_str()));
        }
        let granted: Vec<Scope> = scope.into_iter().collect();
        let key = issue_key(&app.auth, "holds the scope", &granted, |_| {}).await;
        let allowed = call(&bearer_client(&key), app, &method, path).await;
        assert!(
            ![401, 403].contains(&allowed.status().as_u16()),
            "{method} {path} with {scope:?}: {}",
            allowed.status()
        );
        assert!(
            allowed.headers().contains_key("ratelimit"),
            "{method} {path} has RateLimit"
        );
    }
    assert!(secured >= 12, "only {secured} secured operations found");
}

async fn keys_are_managed_over_the_api(app: &TestApp) {
    // Create: the key is in this response only, never cached.
    let created = app
        .client
        .post(app.url("/v1/admin/keys"))
        .json(
            &json!({"name": "dashboard", "scopes": ["prices:read"], "expires_in": "90d",
                      "allowed_cidrs": ["127.0.0.0/8", "::1"], "rate_limit_per_minute": 120}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    assert_eq!(created.headers()["cache-control"], "no-store");
    let body: Value = created.json().await.unwrap();
    let key = body["data"]["key"].as_str().unwrap().to_owned();
    let id = body["data"]["id"].as_str().unwrap().to_owned();
    assert!(key.starts_with(&format!("mkd_live_{id}_")));
    assert_eq!(
        body["data"]["allowed_cidrs"],
        json!(["127.0.0.0/8", "::1/128"])
    );
    assert_eq!(body["data"]["status"], "active");

    // The new key reads prices and sees itself; it cannot manage keys.
    let client = bearer_client(&key);
    assert_eq!(
        client
            .get(app.url("/v1/prices"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let me: Value = client
        .get(app.url("/v1/keys/self"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["data"]["id"], id.as_str());
    assert_eq!(me["data"]["rate_limit_per_minute"], 120);
    assert!(me["data"].get("key").is_none());
    let escalate = client
        .post(app.url("/v1/admin/keys"))
        .json(&json!({"name": "x", "scopes": ["keys:admin"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(escalate.status(), 403);

    // An admin holding only keys:admin cannot grant what it lacks.
    let narrow_admin = issue_key(&app.auth, "narrow admin", &[Scope::KeysAdmin], |_| {}).await;
    let refused = bearer_client(&narrow_admin)
        .post(app.url("/v1/admin/keys"))
        .json(&json!({"name": "x", "scopes": ["prices:read"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);
    let problem: Value = refused.json().await.unwrap();
    assert!(problem["detail"].as_str().unwrap().contains("prices:read"));

    // Bad bodies are problems naming the field.
    let bad = app
        .client
        .post(app.url("/v1/admin/keys"))
        .json(&json!({"name": "x", "scopes": ["prices:write"], "allowed_cidrs": ["10.0.0.0/33"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 422);
    let problem: Value = bad.json().await.unwrap();
    let fields: Vec<&str> = problem["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["scopes[0]", "allowed_cidrs[0]"]);
    let not_json = app
        .client
        .post(app.url("/v1/admin/keys"))
        .body("name=x")
        .send()
        .await
        .unwrap();
    assert_eq!(not_json.status(), 415);

    // List and show never carry a secret.
    let list = app
        .client
        .get(app.url("/v1/admin/keys?limit=1"))
        .send()
        .await
        .unwrap();
    assert_eq!(list.headers()["cache-control"], "no-store");
    let list: Value = list.json().await.unwrap();
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
    let cursor = list["next_cursor"].as_str().unwrap();
    let rest: Value = app
        .client
        .get(app.url(&format!("/v1/admin/keys?limit=100&cursor={cursor}")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(!list.to_string().contains("mkd_") && !rest.to_string().contains("mkd_"));
    let shown: Value = app
        .client
        .get(app.url(&format!("/v1/admin/keys/{id}")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(shown["data"]["name"], "dashboard");
    assert_eq!(
        app.client
            .get(app.url("/v1/admin/keys/nope"))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );

    // Revocation is immediate on this server.
    let revoked = app
        .client
        .delete(app.url(&format!("/v1/admin/keys/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 200);
    let last_view: Value = revoked.json().await.unwrap();
    assert_eq!(last_view["data"]["status"], "revoked");
    // Deleted, as far as the API goes: the key is no longer shown.
    assert_eq!(
        app.client
            .get(app.url(&format!("/v1/admin/keys/{id}")))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    let gone = client.get(app.url("/v1/prices")).send().await.unwrap();
    assert_eq!(gone.status(), 401);
    assert!(
        gone.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("invalid_token")
    );

    // The audit log has the lifecycle, by the admin key, and the failure.
    app.auth
        .flush(marketd_api::state::system_clock(), true)
        .await;
    let audit: Value = app
        .client
        .get(app.url(&format!("/v1/admin/audit?key_id={id}")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let events: Vec<&str> = audit["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert!(
        events.contains(&"key_created") && events.contains(&"key_revoked"),
        "{events:?}"
    );
    assert!(
        events.contains(&"auth_failed") && events.contains(&"scope_denied"),
        "{events:?}"
    );
    let bad_event = app
        .client
        .get(app.url("/v1/admin/audit?event=nope"))
        .send()
        .await
        .unwrap();
    assert_eq!(bad_event.status(), 422);
}

async fn rotation_honours_the_grace_period(app: &TestApp) {
    let old = issue_key(&app.auth, "rotating", &[Scope::PricesRead], |_| {}).await;
    let id = &old[9..21];
    let rotated = app
        .client
        .post(app.url(&format!("/v1/admin/keys/{id}/rotate")))
        .json(&json!({"grace_period_seconds": 2}))
        .send()
        .await
        .unwrap();
    assert_eq!(rotated.status(), 201);
    let body: Value = rotated.json().await.unwrap();
    let new = body["data"]["new_key"]["key"].as_str().unwrap().to_owned();
    assert_eq!(body["data"]["new_key"]["rotated_from"], id);
    assert_eq!(
        body["data"]["old_key"]["rotated_to"],
        body["data"]["new_key"]["id"]
    );
    // Inside the grace period both work.
    for key in [&old, &new] {
        assert_eq!(
            bearer_client(key)
                .get(app.url("/v1/prices"))
                .send()
                .await
                .unwrap()
                .status(),
            200
        );
    }
    let again = app
        .client
        .post(app.url(&format!("/v1/admin/keys/{id}/rotate")))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 409);
    tokio::time::sleep(Duration::from_millis(2_300)).await;
    let late = bearer_client(&old)
        .get(app.url("/v1/prices"))
        .send()
        .await
        .unwrap();
    assert_eq!(late.status(), 401);
    let problem: Value = late.json().await.unwrap();
    assert_eq!(problem["detail"], "the API key has expired");
    assert_eq!(
        bearer_client(&new)
            .get(app.url("/v1/prices"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    // A zero grace ends the old key at once.
    let new_id = &new[9..21];
    let body: Value = app
        .client
        .post(app.url(&format!("/v1/admin/keys/{new_id}/rotate")))
        .json(&json!({"grace_period_seconds": 0}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(body["data"]["new_key"]["key"].is_string());
    assert_eq!(
        bearer_client(&new)
            .get(app.url("/v1/prices"))
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    // No body at all: the default grace period of a day.
    let defaulted = app
        .client
        .post(app.url(&format!(
            "/v1/admin/keys/{}/rotate",
            body["data"]["new_key"]["id"].as_str().unwrap()
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(defaulted.status(), 201);
    let defaulted: Value = defaulted.json().await.unwrap();
    assert!(defaulted["data"]["old_key"]["expires_at"].is_string());
    let too_long = app
        .client
        .post(app.url(&format!("/v1/admin/keys/{new_id}/rotate")))
        .json(&json!({"grace_period_seconds": 604_801}))
        .send()
        .await
        .unwrap();
    assert_eq!(too_long.status(), 422);
}

async fn expired_keys_are_refused(app: &TestApp) {
    let now = marketd_api::state::system_clock();
    let key = issue_key(&app.auth, "short-lived", &[Scope::PricesRead], |spec| {
        spec.expires_at = Some(now + 1_000);
    })
    .await;
    assert_eq!(
        bearer_client(&key)
            .get(app.url("/v1/prices"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    let late = bearer_client(&key)
        .get(app.url("/v1/prices"))
        .send()
        .await
        .unwrap();
    assert_eq!(late.status(), 401);
    // The expiry is recorded once in the audit log by the sweep.
    app.auth
        .keyring
        .record_expiries(marketd_api::state::system_clock())
        .await;
    let expired = audit_of(app, AuditEvent::KeyExpired).await;
    assert_eq!(expired.len(), 1);
    assert_eq!(expired[0].key_id.as_deref(), Some(&key[9..21]));
}

async fn rate_limits_carry_ietf_headers(app: &TestApp) {
    let key = issue_key(&app.auth, "slow", &[Scope::PricesRead], |spec| {
        spec.rate_limit_per_minute = 2;
    })
    .await;
    let client = bearer_client(&key);
    let first = client.get(app.url("/v1/prices")).send().await.unwrap();
    assert_eq!(first.headers()["ratelimit-policy"], "\"minute\";q=2;w=60");
    assert_eq!(
        first.headers()["ratelimit"]
            .to_str()
            .unwrap()
            .split(';')
            .take(2)
            .collect::<Vec<_>>(),
        ["\"minute\"", "r=1"]
    );
    let _ = client.get(app.url("/v1/prices")).send().await.unwrap();
    let refused = client.get(app.url("/v1/prices")).send().await.unwrap();
    assert_eq!(refused.status(), 429);
    let retry_after: u64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry_after >= 1);
    let limit = refused.headers()["ratelimit"].to_str().unwrap().to_owned();
    let t: u64 = limit
        .strip_prefix("\"minute\";r=0;t=")
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        retry_after >= t,
        "Retry-After {retry_after} is earlier than t={t}"
    );
    let problem: Value = refused.json().await.unwrap();
    assert_eq!(problem["type"], "rate_limited");
    assert_eq!(problem["violated-policies"], json!(["minute"]));
    // Another key is unaffected.
    let other = issue_key(&app.auth, "other", &[Scope::PricesRead], |_| {}).await;
    assert_eq!(
        bearer_client(&other)
            .get(app.url("/v1/prices"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

/// Trusted proxy 127.0.0.1: the client is the right-most untrusted X-Forwarded-For hop.
async fn behind_proxy() -> TestApp {
    spawn_app_on(TestDb::sqlite(), |url| {
        let mut c = config(url);
        c.trusted_proxies = TrustedProxies::parse("127.0.0.1/32").unwrap();
        c
    })
    .await
    .unwrap()
}

async fn from(client: &reqwest::Client, app: &TestApp, xff: &str) -> u16 {
    client
        .get(app.url("/v1/prices"))
        .header("x-forwarded-for", xff)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allowlists_hold_against_forwarded_for_spoofing() {
    let app = behind_proxy().await;
    let key = issue_key(&app.auth, "office", &[Scope::PricesRead], |spec| {
        spec.allowed_cidrs = vec![
            "10.0.0.0/8".parse().unwrap(),
            "2001:db8::/32".parse().unwrap(),
        ];
    })
    .await;
    let client = bearer_client(&key);
    assert_eq!(from(&client, &app, "10.1.2.3").await, 200);
    assert_eq!(from(&client, &app, "2001:db8::42").await, 200);
    assert_eq!(from(&client, &app, "::ffff:10.9.9.9").await, 200);
    // The client prepends an allowed address; the proxy appended the real one.
    assert_eq!(from(&client, &app, "10.1.2.3, 203.0.113.5").await, 403);
    assert_eq!(from(&client, &app, "2001:db9::1").await, 403);
    let denied = client
        .get(app.url("/v1/prices"))
        .header("x-forwarded-for", "198.51.100.1")
        .send()
        .await
        .unwrap();
    let problem: Value = denied.json().await.unwrap();
    assert_eq!(problem["type"], "ip_not_allowed");
    // No proxy header: the socket peer, 127.0.0.1, is not allowed.
    assert_eq!(
        client
            .get(app.url("/v1/prices"))
            .send()
            .await
            .unwrap()
            .status(),
        403
    );

    // Without trusted proxies the header is ignored entirely.
    let direct = spawn_app(Kind::Sqlite).await.unwrap();
    let key = issue_key(&direct.auth, "office", &[Scope::PricesRead], |spec| {
        spec.allowed_cidrs = vec!["10.0.0.0/8".parse().unwrap()];
    })
    .await;
    assert_eq!(from(&bearer_client(&key), &direct, "10.1.2.3").await, 403);
    direct.stop().await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn brute_force_is_stopped_per_address_only() {
    let app = behind_proxy().await;
    let victim = issue_key(&app.auth, "victim", &[Scope::PricesRead], |spec| {
        spec.rate_limit_per_minute = 20;
    })
    .await;
    // Right id, wrong secret: a guess at the victim's key.
    let guess = marketd_domain::api_key::compose(
        marketd_domain::api_key::KeyEnvironment::Test,
        &victim[9..21],
        &"x".repeat(32),
    );
    let mut statuses = Vec::new();
    for _ in 0..15 {
        statuses.push(from(&bearer_client(&guess), &app, "203.0.113.66").await);
    }
    assert!(statuses[..9].iter().all(|s| *s == 401), "{statuses:?}");
    assert!(statuses[10..].iter().all(|s| *s == 429), "{statuses:?}");
    let blocked = bearer_client(&guess)
        .get(app.url("/v1/prices"))
        .header("x-forwarded-for", "203.0.113.66")
        .send()
        .await
        .unwrap();
    assert!(
        blocked.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
            >= 1
    );
    // Another address is unaffected, and the victim's quota is untouched.
    let fine = bearer_client(&victim)
        .get(app.url("/v1/prices"))
        .header("x-forwarded-for", "198.51.100.20")
        .send()
        .await
        .unwrap();
    assert_eq!(fine.status(), 200);
    assert!(
        fine.headers()["ratelimit"]
            .to_str()
            .unwrap()
            .starts_with("\"minute\";r=19;")
    );
    // A mistyped key fails on its checksum, before any lookup.
    let mut typo = victim.clone();
    typo.replace_range(30..31, if &victim[30..31] == "a" { "b" } else { "a" });
    assert_eq!(
        from(&bearer_client(&typo), &app, "198.51.100.21").await,
        401
    );
    app.auth
        .flush(marketd_api::state::system_clock(), true)
        .await;
    let failures = audit_of(&app, AuditEvent::AuthFailed).await;
    let guessed: u64 = failures
        .iter()
        .filter(|e| e.key_id.as_deref() == Some(&victim[9..21]))
        .map(|e| e.count)
        .sum();
    assert!(
        guessed >= 10,
        "failures against the victim are counted: {failures:?}"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_in_the_url_are_refused() {
    let app = spawn_app(Kind::Sqlite).await.unwrap();
    for query in [
        format!("api_key={}", app.admin_key),
        format!("symbols={}", app.admin_key),
        "token=abc".to_owned(),
    ] {
        let response = app
            .client
            .get(app.url(&format!("/v1/prices?{query}")))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400);
        let problem: Value = response.json().await.unwrap();
        assert_eq!(problem["type"], "credentials_in_url");
        assert!(!problem.to_string().contains(&app.admin_key));
    }
    app.stop().await;
}

/// Revocation through one replica reaches another sharing the database within the key
/// cache's lifetime.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocation_reaches_every_replica() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let url = db.url.clone();
    let a = spawn_app_on(db, config).await.unwrap();
    let b_running = marketd::server::start(&config(&url)).await.unwrap();
    let b_base = format!("http://{}", b_running.addr);
    let key = issue_key(&a.auth, "shared", &[Scope::PricesRead], |_| {}).await;
    let client = bearer_client(&key);
    let on_b = |client: &reqwest::Client| client.get(format!("{b_base}/v1/prices")).send();
    assert_eq!(
        on_b(&client).await.unwrap().status(),
        200,
        "B knows the key and caches it"
    );
    let revoked = a
        .client
        .delete(a.url(&format!("/v1/admin/keys/{}", &key[9..21])))
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 200);
    assert_eq!(
        client
            .get(a.url("/v1/prices"))
            .send()
            .await
            .unwrap()
            .status(),
        401,
        "A at once"
    );
    let began = Instant::now();
    loop {
        if on_b(&client).await.unwrap().status() == 401 {
            break;
        }
        assert!(
            began.elapsed() < KEY_CACHE_TTL + Duration::from_secs(3),
            "B still accepts a revoked key"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    b_running.shutdown.cancel();
    b_running.handle.await.unwrap().unwrap();
    a.stop().await;
}

/// A key used from outside its allowlist raises a security alert: logged, audited and
/// POSTed to the webhook with a Standard Webhooks signature.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn security_alerts_reach_the_webhook_signed() {
    use axum::http::HeaderMap;
    use base64::Engine;
    use hmac::{Hmac, Mac};

    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(HeaderMap, String)>();
    let receiver = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: String| {
            let tx = tx.clone();
            async move {
                let _ = tx.send((headers, body));
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, receiver).await });

    let secret_bytes = b"webhook-secret-for-tests-0123456";
    let secret = format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(secret_bytes)
    );
    let app = spawn_app_on(TestDb::sqlite(), |url| {
        let mut c = config(url);
        c.security_webhook = Some(marketd_api::alerts::WebhookConfig::new(
            hook.parse().unwrap(),
            marketd_api::alerts::WebhookSecret::parse(&secret).unwrap(),
        ));
        c
    })
    .await
    .unwrap();
    let key = issue_key(&app.auth, "fenced", &[Scope::PricesRead], |spec| {
        spec.allowed_cidrs = vec!["10.0.0.0/8".parse().unwrap()];
    })
    .await;
    let denied = bearer_client(&key)
        .get(app.url("/v1/prices"))
        .send()
        .await
        .unwrap();
    assert_eq!(denied.status(), 403);

    let (headers, body) = tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .unwrap()
        .unwrap();
    let id = headers["webhook-id"].to_str().unwrap();
    let timestamp = headers["webhook-timestamp"].to_str().unwrap();
    assert!(id.starts_with("msg_"));
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret_bytes).unwrap();
    mac.update(format!("{id}.{timestamp}.{body}").as_bytes());
    let expected = format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    );
    assert_eq!(headers["webhook-signature"].to_str().unwrap(), expected);
    let event: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(event["type"], "security.alert");
    assert_eq!(event["data"]["kind"], "ip_not_allowed");
    assert_eq!(event["data"]["key_id"], &key[9..21]);
    assert!(
        !body.contains(&key[22..54]),
        "the alert never carries the secret"
    );

    app.auth
        .flush(marketd_api::state::system_clock(), true)
        .await;
    let alerts = audit_of(&app, AuditEvent::SecurityAlert).await;
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0].reason.as_deref(), Some("ip_not_allowed"));
    app.stop().await;
}

/// Keys hashed under an older pepper keep working after the pepper is rotated, and are
/// re-hashed under the new one on first use.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pepper_rotation_keeps_keys_working() {
    let db = TestDb::sqlite();
    let url = db.url.clone();
    let store = marketd_storage::connect(&url, &Default::default())
        .await
        .unwrap();
    store.migrate().await.unwrap();
    let v1 = marketd_api::auth::Pepper::parse(crate::helpers::TEST_PEPPER).unwrap();
    let keyring = marketd_api::auth::Keyring::new(Arc::clone(&store), v1);
    let key =
        crate::helpers::issue_with(&keyring, "long-lived", &[Scope::PricesRead], |_| {}).await;
    assert_eq!(
        store
            .key(&key[9..21])
            .await
            .unwrap()
            .unwrap()
            .pepper_version,
        1
    );

    let mut rotated = config(&url);
    let old = crate::helpers::TEST_PEPPER.trim_start_matches("1:");
    rotated.key_pepper = Some(
        marketd_api::auth::Pepper::parse(&format!(
            "2:second-pepper-second-pepper-second-01,1:{old}"
        ))
        .unwrap(),
    );
    let second = marketd::server::start(&rotated).await.unwrap();
    let response = bearer_client(&key)
        .get(format!("http://{}/v1/prices", second.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let record = store.key(&key[9..21]).await.unwrap().unwrap();
    assert_eq!(
        record.pepper_version, 2,
        "re-hashed under the current pepper"
    );
    let again = bearer_client(&key)
        .get(format!("http://{}/v1/prices", second.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 200);
    second.shutdown.cancel();
    second.handle.await.unwrap().unwrap();
    store.close().await;
    drop(db);
}

/// Usage is counted in memory and written in batches; `/v1/keys/self` shows it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_is_counted_without_a_write_per_request() {
    let app = spawn_app(Kind::Sqlite).await.unwrap();
    let key = issue_key(&app.auth, "counted", &[Scope::PricesRead], |_| {}).await;
    let client = bearer_client(&key);
    for _ in 0..5 {
        assert_eq!(
            client
                .get(app.url("/v1/prices"))
                .send()
                .await
                .unwrap()
                .status(),
            200
        );
    }
    app.auth
        .flush(marketd_api::state::system_clock(), true)
        .await;
    let me: Value = client
        .get(app.url("/v1/keys/self"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(me["data"]["usage_count"].as_u64().unwrap() >= 5, "{me}");
    assert_eq!(me["data"]["last_used_ip"], "127.0.0.1");
    assert!(me["data"]["last_used_at"].is_string());
    app.stop().await;
}

/// Every audit entry of one kind, newest first.
async fn audit_of(app: &TestApp, event: AuditEvent) -> Vec<marketd_domain::access::AuditEntry> {
    let filter = AuditFilter {
        event: Some(event),
        ..Default::default()
    };
    app.store.audit(&filter, 1000).await.unwrap()
}
