//! Accounts over real HTTP, on SQLite and PostgreSQL: sign-up hands out a token once, the token
//! authenticates `GET /v1/me`, bad input is answered with the JSON error naming its field, and
//! neither the token nor the email ever reaches a signal while the user shows up only as
//! `enduser.pseudo.id` (or not at all).

#![allow(clippy::unwrap_used)]

use crate::common::{Db, TestApp, on_both_backends, spawn_app_on};
use serde_json::{Value, json};
use telemetry::testkit::SpanKind;

on_both_backends!(
    sign_up_answers_201_with_the_account_and_a_token,
    the_token_authenticates_get_me,
    missing_malformed_or_unknown_tokens_get_401_token_invalid,
    an_invalid_email_is_rejected_with_422_naming_email,
    an_invalid_name_is_rejected_with_422_naming_name,
    missing_or_mistyped_fields_are_each_named,
    a_body_that_is_not_a_json_object_gets_the_json_error,
    a_taken_email_answers_409_whatever_its_case,
    neither_token_nor_email_reaches_any_signal_in_pseudonym_or_off_mode,
    the_me_server_span_carries_the_pseudonym_only_in_pseudonym_mode,
);

const EMAIL: &str = "ann.lee@example.com";

async fn sign_up(app: &TestApp, body: Value) -> reqwest::Response {
    app.client
        .post(app.url("/v1/users"))
        .json(&body)
        .send()
        .await
        .unwrap()
}

/// Signs up `email` and returns the 201 body.
async fn signed_up(app: &TestApp, email: &str) -> Value {
    let response = sign_up(app, json!({"email": email, "name": "Ann Lee"})).await;
    assert_eq!(response.status(), 201);
    response.json().await.unwrap()
}

async fn me(app: &TestApp, authorization: Option<&str>) -> reqwest::Response {
    let mut request = app.client.get(app.url("/v1/me"));
    if let Some(value) = authorization {
        request = request.header("authorization", value);
    }
    request.send().await.unwrap()
}

/// Asserts the design's error shape and returns the names of the fields it lists.
async fn error_fields(
    response: reqwest::Response,
    status: u16,
    kind: &str,
    code: &str,
) -> Vec<String> {
    assert_eq!(response.status(), status);
    assert_eq!(
        response.headers()["content-type"],
        "application/json",
        "every answer is JSON"
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["kind"], kind, "{body}");
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    body["error"]["fields"]
        .as_array()
        .map(|fields| {
            fields
                .iter()
                .map(|f| {
                    assert!(
                        f["message"].as_str().is_some_and(|m| !m.is_empty()),
                        "{body}"
                    );
                    f["field"].as_str().unwrap().to_owned()
                })
                .collect()
        })
        .unwrap_or_default()
}

async fn sign_up_answers_201_with_the_account_and_a_token(db: Db) {
    let app = spawn_app_on(db, &[]).await;
    let response = sign_up(
        &app,
        json!({"email": " Ann.Lee@Example.com ", "name": "  Ann Lee "}),
    )
    .await;
    assert_eq!(response.status(), 201);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let body: Value = response.json().await.unwrap();
    assert!(body["id"].as_i64().is_some_and(|id| id > 0), "{body}");
    assert_eq!(body["email"], EMAIL, "normalised to lower case");
    assert_eq!(body["name"], "Ann Lee", "trimmed");
    let token = body["token"].as_str().unwrap();
    assert!(token.starts_with("shop_"), "{token}");
    assert!(token.len() >= 5 + 43, "at least 32 random bytes: {token}");
    assert!(
        token[5..]
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
        "URL-safe: {token}"
    );

    let other = signed_up(&app, "bob@example.com").await;
    assert_ne!(other["token"], body["token"]);
    assert_ne!(other["id"], body["id"]);
}

async fn the_token_authenticates_get_me(db: Db) {
    let app = spawn_app_on(db, &[]).await;
    let account = signed_up(&app, EMAIL).await;
    let token = account["token"].as_str().unwrap();
    let response = me(&app, Some(&format!("Bearer {token}"))).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body,
        json!({"id": account["id"], "email": EMAIL, "name": "Ann Lee"}),
        "the caller, without any token"
    );
}

async fn missing_malformed_or_unknown_tokens_get_401_token_invalid(db: Db) {
    let app = spawn_app_on(db, &[]).await;
    let account = signed_up(&app, EMAIL).await;
    let token = account["token"].as_str().unwrap();
    let mut altered = token.to_owned();
    let last = if altered.ends_with('A') { "B" } else { "A" };
    altered.replace_range(altered.len() - 1.., last);
    let unknown = format!("shop_{}", "x".repeat(43));

    for authorization in [
        None,
        Some(String::new()),
        Some("Bearer".to_owned()),
        Some(format!("Basic {token}")),
        Some(token.to_owned()),
        Some("Bearer not-a-token".to_owned()),
        Some(format!("Bearer {unknown}")),
        Some(format!("Bearer {altered}")),
        Some(format!("Bearer {token}x")),
    ] {
        let response = me(&app, authorization.as_deref()).await;
        assert_eq!(
            response
                .headers()
                .get("www-authenticate")
                .map(|v| v.as_bytes()),
            Some(&b"Bearer"[..]),
            "{authorization:?}"
        );
        let fields = error_fields(response, 401, "unauthenticated", "auth.token_invalid").await;
        assert!(fields.is_empty());
    }
}

async fn an_invalid_email_is_rejected_with_422_naming_email(db: Db) {
    let app = spawn_app_on(db, &[]).await;
    for email in [
        "",
        "ann",
        "ann@",
        "@example.com",
        "ann@example",
        "ann@@example.com",
        "ann lee@example.com",
        "ann@exa_mple.com",
    ] {
        let response = sign_up(&app, json!({"email": email, "name": "Ann"})).await;
        let fields = error_fields(response, 422, "validation", "request.invalid_body").await;
        assert_eq!(fields, ["email"], "{email:?}");
    }
}

async fn an_invalid_name_is_rejected_with_422_naming_name(db: Db) {
    let app = spawn_app_on(db, &[]).await;
    for name in [
        String::new(),
        "   ".to_owned(),
        "x".repeat(101),
        "Ann\nLee".to_owned(),
    ] {
        let response = sign_up(&app, json!({"email": EMAIL, "name": name})).await;
        let fields = error_fields(response, 422, "validation", "request.invalid_body").await;
        assert_eq!(fields, ["name"], "{name:?}");
    }
    // 100 characters (not bytes) is the limit.
    let longest = "é".repeat(100);
    let response = sign_up(&app, json!({"email": EMAIL, "name": longest})).await;
    assert_eq!(response.status(), 201);
}

async fn missing_or_mistyped_fields_are_each_named(db: Db) {
    let app = spawn_app_on(db, &[]).await;
    for (body, expected) in [
        (json!({}), vec!["email", "name"]),
        (json!({"name": "Ann"}), vec!["email"]),
        (json!({"email": EMAIL}), vec!["name"]),
        (json!({"email": 42, "name": "Ann"}), vec!["email"]),
        (
            json!({"email": EMAIL, "name": {"first": "Ann"}}),
            vec!["name"],
        ),
        (json!({"email": null, "name": false}), vec!["email", "name"]),
    ] {
        let response = sign_up(&app, body.clone()).await;
        let fields = error_fields(response, 422, "validation", "request.invalid_body").await;
        assert_eq!(fields, expected, "{body}");
    }
}

async fn a_body_that_is_not_a_json_object_gets_the_json_error(db: Db) {
    let app = spawn_app_on(db, &[]).await;
    let post = |body: &'static str, content_type: &'static str| {
        app.client
            .post(app.url("/v1/users"))
            .header("content-type", content_type)
            .body(body)
            .send()
    };

    let malformed = post("{\"email\": ", "application/json").await.unwrap();
    error_fields(malformed, 400, "validation", "request.malformed_json").await;

    let not_json = post("email=a@b.io", "application/x-www-form-urlencoded")
        .await
        .unwrap();
    error_fields(
        not_json,
        415,
        "validation",
        "request.unsupported_media_type",
    )
    .await;

    let not_an_object = post("\"ann@example.com\"", "application/json")
        .await
        .unwrap();
    error_fields(not_an_object, 422, "validation", "request.invalid_body").await;

    // serde reads a struct from a JSON array too: the fields in order. Not here.
    let an_array = post("[\"ann@example.com\", \"Ann\"]", "application/json")
        .await
        .unwrap();
    let fields = error_fields(an_array, 422, "validation", "request.invalid_body").await;
    assert!(fields.is_empty(), "no single field is at fault: {fields:?}");
    let me = app.get("/v1/me").await;
    assert_eq!(me.status(), 401);

    let access: Vec<Value> = app
        .log_lines()
        .into_iter()
        .filter(|line| line["target"] == "access")
        .collect();
    assert_eq!(access.len(), 5, "{access:?}");
    for line in &access[..4] {
        assert_eq!(line["level"], "WARN", "{line}");
        assert_eq!(line["error.type"], "validation", "{line}");
    }
}

async fn a_taken_email_answers_409_whatever_its_case(db: Db) {
    let app = spawn_app_on(db, &[]).await;
    signed_up(&app, EMAIL).await;
    for email in [EMAIL, "ANN.LEE@EXAMPLE.COM", " Ann.Lee@example.com"] {
        let response = sign_up(&app, json!({"email": email, "name": "Someone Else"})).await;
        let fields = error_fields(response, 409, "conflict", "user.email_taken").await;
        assert_eq!(fields, ["email"], "{email}");
    }
    // Other addresses are still free.
    signed_up(&app, "ann.lee@example.org").await;
}

async fn neither_token_nor_email_reaches_any_signal_in_pseudonym_or_off_mode(db: Db) {
    for mode in ["pseudonym", "off"] {
        let app = spawn_app_on(db, &[("APP_PII_MODE", mode)]).await;
        let email = "zed.private@secret-domain.example";
        let account = signed_up(&app, email).await;
        let token = account["token"].as_str().unwrap().to_owned();
        assert_eq!(
            me(&app, Some(&format!("Bearer {token}"))).await.status(),
            200
        );
        let mut wrong = token.clone();
        wrong.replace_range(5..6, if wrong[5..6] == *"Q" { "R" } else { "Q" });
        assert_eq!(
            me(&app, Some(&format!("Bearer {wrong}"))).await.status(),
            401
        );
        let duplicate = sign_up(&app, json!({"email": email, "name": "Zed"})).await;
        assert_eq!(duplicate.status(), 409);
        let invalid = sign_up(&app, json!({"email": "zed.private@", "name": "Zed"})).await;
        assert_eq!(invalid.status(), 422);

        let stdout = app.telemetry.log_sink().captured();
        let receiver = app.receiver.clone();
        app.guard.shutdown().await;
        assert!(
            !receiver.spans().is_empty() && !receiver.logs().is_empty(),
            "{mode}: nothing exported"
        );
        let everything = format!("{stdout}\n{}", receiver.dump_all());
        for secret in [
            token.as_str(),
            &token[5..],
            wrong.as_str(),
            email,
            "zed.private",
        ] {
            assert!(!everything.contains(secret), "{mode}: {secret} leaked");
        }
    }
}

async fn the_me_server_span_carries_the_pseudonym_only_in_pseudonym_mode(db: Db) {
    for mode in ["pseudonym", "off"] {
        let app = spawn_app_on(db, &[("APP_PII_MODE", mode)]).await;
        let account = signed_up(&app, EMAIL).await;
        let user_id = account["id"].as_i64().unwrap().to_string();
        let token = account["token"].as_str().unwrap();
        assert_eq!(
            me(&app, Some(&format!("Bearer {token}"))).await.status(),
            200
        );
        let pseudonym = app.telemetry.pii().pseudonym(&user_id);
        let access = app
            .log_lines()
            .into_iter()
            .find(|line| line["target"] == "access" && line["route"] == "/v1/me")
            .unwrap();
        let receiver = app.receiver.clone();
        app.guard.shutdown().await;

        let spans = receiver.spans();
        let server = spans
            .iter()
            .find(|s| s.kind == SpanKind::Server && s.name == "GET /v1/me")
            .unwrap_or_else(|| panic!("no GET /v1/me server span among {spans:#?}"));
        assert!(server.attr("enduser.id").is_none(), "{mode}: raw user id");
        assert!(access.get("enduser.id").is_none(), "{mode}: {access}");
        match mode {
            "pseudonym" => {
                assert_eq!(
                    server.str_attr("enduser.pseudo.id"),
                    Some(pseudonym.as_str())
                );
                assert_eq!(access["enduser.pseudo.id"], pseudonym.as_str());
            }
            _ => {
                assert!(server.attr("enduser.pseudo.id").is_none(), "{server:#?}");
                assert!(access.get("enduser.pseudo.id").is_none(), "{access}");
            }
        }
    }
}
