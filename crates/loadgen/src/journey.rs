//! The steps of a journey as HTTP requests to the shop's API (`/v1/...`, bodies as
//! `/openapi.json` describes them), and what a journey keeps from the answers: the listed
//! products in stock, its account's token, its last checkout and order.

use std::borrow::Cow;
use std::io::Write as _;

use rand::Rng;
use rand::seq::IndexedRandom as _;
use serde::Deserialize;

use crate::scenario::{Action, Scenario};

/// Products the shop seeds (ids 1..=SEEDED_PRODUCTS); used when a journey listed none.
const SEEDED_PRODUCTS: i64 = 36;
/// Listing page size of `list_products` (three pages hold the seeded catalog).
const PAGE_SIZE: u32 = 12;
const CATEGORIES: [&str; 6] = ["coffee", "tea", "kitchen", "books", "garden", "stationery"];
const SORTS: [&str; 5] = ["id", "price", "-price", "name", "-name"];
/// A product id no seeded catalog has.
const UNKNOWN_PRODUCT: i64 = 999_999_999;
/// A well-formed token the shop never issued.
const BAD_TOKEN: &str = "shop_loadgen-never-issued-0000000000000000";

/// What a journey carries from one step to the next.
#[derive(Debug, Default)]
pub(crate) struct JourneyState {
    token: Option<String>,
    /// Listed products with stock, by id.
    in_stock: Vec<i64>,
    /// The last checkout's key and body, for `checkout_retry`.
    last_checkout: Option<(String, String)>,
    order_id: Option<i64>,
}

/// A request about to be sent.
#[derive(Debug)]
pub(crate) struct Planned<'a> {
    pub(crate) method: &'a str,
    pub(crate) path: Cow<'a, str>,
    body: Option<Cow<'a, str>>,
    token: Option<String>,
    idempotency_key: Option<String>,
}

/// Identifies the run's accounts (emails must be unique across runs on one database).
#[derive(Debug)]
pub(crate) struct Accounts {
    run: u32,
    next: std::sync::atomic::AtomicU64,
}

impl Accounts {
    pub(crate) fn new(run: u32) -> Self {
        Self {
            run,
            next: std::sync::atomic::AtomicU64::new(1),
        }
    }

    fn next_email(&self) -> String {
        let n = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        format!("lg-{:08x}-{n}@loadgen.example", self.run)
    }
}

/// The request of `action`, given what the journey has so far.
pub(crate) fn plan<'a>(
    action: Action,
    scenario: &'a Scenario,
    state: &mut JourneyState,
    accounts: &Accounts,
    rng: &mut impl Rng,
) -> Planned<'a> {
    let get = |path: String| Planned {
        method: "GET",
        path: Cow::Owned(path),
        body: None,
        token: None,
        idempotency_key: None,
    };
    match action {
        Action::ListProducts => get(format!(
            "/v1/products?page={}&per_page={PAGE_SIZE}",
            rng.random_range(1..=3)
        )),
        Action::FilterProducts => get(format!(
            "/v1/products?category={}&sort={}",
            CATEGORIES.choose(rng).unwrap_or(&"coffee"),
            SORTS.choose(rng).unwrap_or(&"id"),
        )),
        Action::GetProduct => {
            let id = state
                .in_stock
                .choose(rng)
                .copied()
                .unwrap_or_else(|| rng.random_range(1..=SEEDED_PRODUCTS));
            get(format!("/v1/products/{id}"))
        }
        Action::UnknownProduct => get(format!("/v1/products/{UNKNOWN_PRODUCT}")),
        Action::SignUp => Planned {
            method: "POST",
            path: Cow::Borrowed("/v1/users"),
            body: Some(Cow::Owned(format!(
                r#"{{"email":"{}","name":"Load Tester"}}"#,
                accounts.next_email()
            ))),
            token: None,
            idempotency_key: None,
        },
        Action::InvalidBody => Planned {
            method: "POST",
            path: Cow::Borrowed("/v1/users"),
            body: Some(Cow::Borrowed(r#"{"email":"not-an-email","name":""}"#)),
            token: None,
            idempotency_key: None,
        },
        Action::Me => Planned {
            token: state.token.clone(),
            ..get("/v1/me".into())
        },
        Action::BadToken => Planned {
            token: Some(BAD_TOKEN.to_owned()),
            ..get("/v1/me".into())
        },
        Action::Checkout => {
            let product = state
                .in_stock
                .choose(rng)
                .copied()
                .unwrap_or_else(|| rng.random_range(1..=SEEDED_PRODUCTS));
            let key = format!(
                "lg-{:016x}{:016x}",
                rng.random::<u64>(),
                rng.random::<u64>()
            );
            let body = format!(r#"{{"items":[{{"product_id":{product},"quantity":1}}]}}"#);
            state.last_checkout = Some((key.clone(), body.clone()));
            Planned {
                method: "POST",
                path: Cow::Borrowed("/v1/orders"),
                body: Some(Cow::Owned(body)),
                token: state.token.clone(),
                idempotency_key: Some(key),
            }
        }
        Action::CheckoutRetry => {
            let (key, body) = state.last_checkout.clone().unwrap_or_default();
            Planned {
                method: "POST",
                path: Cow::Borrowed("/v1/orders"),
                body: Some(Cow::Owned(body)),
                token: state.token.clone(),
                idempotency_key: Some(key),
            }
        }
        Action::OrderHistory => Planned {
            token: state.token.clone(),
            ..get("/v1/orders?page=1&per_page=20".into())
        },
        Action::GetOrder => Planned {
            token: state.token.clone(),
            ..get(format!("/v1/orders/{}", state.order_id.unwrap_or(0)))
        },
        Action::Custom(index) => {
            let request = &scenario.requests[index];
            Planned {
                method: &request.method,
                path: Cow::Borrowed(&request.path),
                body: request.body.as_deref().map(Cow::Borrowed),
                token: None,
                idempotency_key: None,
            }
        }
    }
}

impl Planned<'_> {
    /// Writes the complete HTTP/1.1 request into `out` (cleared first).
    pub(crate) fn write(
        &self,
        out: &mut Vec<u8>,
        authority: &str,
        prefix: &str,
        traceparent: &[u8],
    ) {
        out.clear();
        let _ = write!(
            out,
            "{} {prefix}{} HTTP/1.1\r\nhost: {authority}\r\n",
            self.method, self.path
        );
        out.extend_from_slice(b"user-agent: loadgen/");
        out.extend_from_slice(env!("CARGO_PKG_VERSION").as_bytes());
        out.extend_from_slice(b"\r\ntraceparent: ");
        out.extend_from_slice(traceparent);
        out.extend_from_slice(b"\r\n");
        if let Some(token) = &self.token {
            let _ = write!(out, "authorization: Bearer {token}\r\n");
        }
        if let Some(key) = &self.idempotency_key {
            let _ = write!(out, "idempotency-key: {key}\r\n");
        }
        match &self.body {
            Some(body) => {
                let _ = write!(
                    out,
                    "content-type: application/json\r\ncontent-length: {}\r\n\r\n",
                    body.len()
                );
                out.extend_from_slice(body.as_bytes());
            }
            None if self.method == "GET" || self.method == "HEAD" => out.extend_from_slice(b"\r\n"),
            None => out.extend_from_slice(b"content-length: 0\r\n\r\n"),
        }
    }

    pub(crate) fn is_head(&self) -> bool {
        self.method == "HEAD"
    }
}

#[derive(Deserialize)]
struct Listing {
    items: Vec<ListedProduct>,
}

#[derive(Deserialize)]
struct ListedProduct {
    id: i64,
    stock: i64,
}

#[derive(Deserialize)]
struct WithToken {
    token: String,
}

#[derive(Deserialize)]
struct WithId {
    id: i64,
}

/// Keeps what later steps need from a successful answer.
pub(crate) fn absorb(action: Action, status: u16, body: &[u8], state: &mut JourneyState) {
    match (action, status) {
        (Action::ListProducts | Action::FilterProducts, 200) => {
            if let Ok(listing) = serde_json::from_slice::<Listing>(body) {
                state
                    .in_stock
                    .retain(|id| !listing.items.iter().any(|p| p.id == *id));
                state
                    .in_stock
                    .extend(listing.items.iter().filter(|p| p.stock > 0).map(|p| p.id));
            }
        }
        (Action::SignUp, 201) => {
            if let Ok(account) = serde_json::from_slice::<WithToken>(body) {
                state.token = Some(account.token);
            }
        }
        (Action::Checkout | Action::CheckoutRetry, 201) => {
            if let Ok(order) = serde_json::from_slice::<WithId>(body) {
                state.order_id = Some(order.id);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use rand::SeedableRng;

    fn text(planned: &Planned<'_>) -> String {
        let mut out = Vec::new();
        planned.write(&mut out, "127.0.0.1:8080", "", b"00-tp");
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn a_checkout_and_its_retry_send_the_same_key_and_body_with_the_token() {
        let scenario = Scenario::default_scenario();
        let accounts = Accounts::new(1);
        let mut rng = rand::rngs::SmallRng::seed_from_u64(3);
        let mut state = JourneyState::default();
        let sign_up = plan(Action::SignUp, &scenario, &mut state, &accounts, &mut rng);
        assert!(text(&sign_up).contains(r#""email":"lg-00000001-1@loadgen.example""#));
        absorb(
            Action::SignUp,
            201,
            br#"{"id":1,"email":"x","name":"y","token":"shop_abc"}"#,
            &mut state,
        );
        absorb(
            Action::ListProducts,
            200,
            br#"{"items":[{"id":4,"stock":0},{"id":5,"stock":3}],"page":1,"per_page":12,"total":2}"#,
            &mut state,
        );
        let checkout = text(&plan(
            Action::Checkout,
            &scenario,
            &mut state,
            &accounts,
            &mut rng,
        ));
        let retry = text(&plan(
            Action::CheckoutRetry,
            &scenario,
            &mut state,
            &accounts,
            &mut rng,
        ));
        assert_eq!(checkout, retry);
        assert!(checkout.starts_with("POST /v1/orders HTTP/1.1\r\nhost: 127.0.0.1:8080\r\n"));
        assert!(checkout.contains("authorization: Bearer shop_abc\r\n"));
        assert!(checkout.contains("idempotency-key: lg-"));
        assert!(checkout.contains("traceparent: 00-tp\r\n"));
        assert!(
            checkout.ends_with(r#"{"items":[{"product_id":5,"quantity":1}]}"#),
            "{checkout}"
        );
        absorb(
            Action::Checkout,
            201,
            br#"{"id":77,"status":"paid"}"#,
            &mut state,
        );
        let order = text(&plan(
            Action::GetOrder,
            &scenario,
            &mut state,
            &accounts,
            &mut rng,
        ));
        assert!(order.starts_with("GET /v1/orders/77 HTTP/1.1\r\n"));
        assert!(order.ends_with("\r\n\r\n"));
    }

    #[test]
    fn bad_requests_are_bad_in_the_intended_way() {
        let scenario = Scenario::default_scenario();
        let accounts = Accounts::new(1);
        let mut rng = rand::rngs::SmallRng::seed_from_u64(3);
        let mut state = JourneyState::default();
        let unknown = text(&plan(
            Action::UnknownProduct,
            &scenario,
            &mut state,
            &accounts,
            &mut rng,
        ));
        assert!(unknown.starts_with("GET /v1/products/999999999 "));
        let invalid = text(&plan(
            Action::InvalidBody,
            &scenario,
            &mut state,
            &accounts,
            &mut rng,
        ));
        assert!(invalid.ends_with(r#"{"email":"not-an-email","name":""}"#));
        let bad = text(&plan(
            Action::BadToken,
            &scenario,
            &mut state,
            &accounts,
            &mut rng,
        ));
        assert!(bad.contains("authorization: Bearer shop_loadgen-never-issued"));
    }
}
