//! Scenarios: weighted user journeys, each a list of steps, read from a TOML file or the
//! built-in default (`default-scenario.toml`). Validated as a whole before anything is sent.

use std::collections::BTreeMap;
use std::time::Duration;

use rand::Rng;
use serde::Deserialize;

/// The built-in scenario, as TOML.
pub(crate) const DEFAULT_TOML: &str = include_str!("default-scenario.toml");

/// One built-in step: a request of the shop's API with what it needs and what it keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Action {
    /// `GET /v1/products?page=&per_page=12`: keeps the listed products and their stock.
    ListProducts,
    /// `GET /v1/products?category=&sort=`: a random category and order.
    FilterProducts,
    /// `GET /v1/products/{id}`: a listed product (any seeded one if none was listed).
    GetProduct,
    /// `POST /v1/users`: a fresh account; keeps its token.
    SignUp,
    /// `GET /v1/me` with the journey's token.
    Me,
    /// `POST /v1/orders` with a fresh `Idempotency-Key`: one unit of a listed product in stock.
    Checkout,
    /// The journey's last checkout again, same key and body: the shop replays its answer.
    CheckoutRetry,
    /// `GET /v1/orders` with the journey's token.
    OrderHistory,
    /// `GET /v1/orders/{id}` of the journey's last order.
    GetOrder,
    /// `GET /v1/products/{id}` of a product that does not exist (404).
    UnknownProduct,
    /// `POST /v1/users` with an invalid body (422).
    InvalidBody,
    /// `GET /v1/me` with a token the shop never issued (401).
    BadToken,
    /// A request of the scenario file's `[requests.NAME]` table (index into `requests`).
    Custom(usize),
}

impl Action {
    const BUILT_IN: [(&'static str, Action); 12] = [
        ("list_products", Action::ListProducts),
        ("filter_products", Action::FilterProducts),
        ("get_product", Action::GetProduct),
        ("sign_up", Action::SignUp),
        ("me", Action::Me),
        ("checkout", Action::Checkout),
        ("checkout_retry", Action::CheckoutRetry),
        ("order_history", Action::OrderHistory),
        ("get_order", Action::GetOrder),
        ("unknown_product", Action::UnknownProduct),
        ("invalid_body", Action::InvalidBody),
        ("bad_token", Action::BadToken),
    ];

    /// The route (method and the shop's route template) the step's request is counted under,
    /// and the statuses that mean it did what it should.
    fn route_and_expected(self) -> (&'static str, &'static [u16]) {
        match self {
            Action::ListProducts | Action::FilterProducts => ("GET /v1/products", &[200]),
            Action::GetProduct => ("GET /v1/products/{id}", &[200]),
            Action::UnknownProduct => ("GET /v1/products/{id}", &[404]),
            Action::SignUp => ("POST /v1/users", &[201]),
            Action::InvalidBody => ("POST /v1/users", &[422]),
            Action::Me => ("GET /v1/me", &[200]),
            Action::BadToken => ("GET /v1/me", &[401]),
            Action::Checkout | Action::CheckoutRetry => ("POST /v1/orders", &[201]),
            Action::OrderHistory => ("GET /v1/orders", &[200]),
            Action::GetOrder => ("GET /v1/orders/{id}", &[200]),
            Action::Custom(_) => ("", &[]),
        }
    }

    /// What an earlier step of the same journey must have produced.
    fn needs(self) -> Option<(Action, &'static str)> {
        match self {
            Action::Me | Action::Checkout | Action::OrderHistory => {
                Some((Action::SignUp, "a token"))
            }
            Action::CheckoutRetry | Action::GetOrder => Some((Action::Checkout, "an order")),
            _ => None,
        }
    }
}

/// A step of a journey, resolved.
#[derive(Debug, Clone)]
pub(crate) struct Step {
    pub(crate) action: Action,
    /// Index into [`Scenario::routes`].
    pub(crate) route: usize,
    /// Statuses that count as success; anything else is an error.
    pub(crate) expected: Vec<u16>,
}

/// A weighted journey.
#[derive(Debug, Clone)]
pub(crate) struct Journey {
    pub(crate) name: String,
    pub(crate) weight: u32,
    pub(crate) steps: Vec<Step>,
}

/// A request defined by the scenario file.
#[derive(Debug, Clone)]
pub(crate) struct CustomRequest {
    pub(crate) method: String,
    pub(crate) path: String,
    pub(crate) body: Option<String>,
}

/// A validated scenario.
#[derive(Debug, Clone)]
pub(crate) struct Scenario {
    pub(crate) journeys: Vec<Journey>,
    pub(crate) requests: Vec<CustomRequest>,
    /// Route labels (`METHOD /template`), in first-use order.
    pub(crate) routes: Vec<String>,
    pub(crate) think: Duration,
    total_weight: u32,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    think: Option<String>,
    #[serde(default)]
    journey: Vec<JourneyFile>,
    #[serde(default)]
    requests: BTreeMap<String, RequestFile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JourneyFile {
    name: String,
    weight: u32,
    steps: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RequestFile {
    method: Option<String>,
    path: String,
    body: Option<String>,
    expect: Option<Vec<u16>>,
    route: Option<String>,
}

impl Scenario {
    /// The built-in scenario.
    pub(crate) fn default_scenario() -> Self {
        match Self::parse(DEFAULT_TOML) {
            Ok(scenario) => scenario,
            // A unit test parses it: this cannot happen in a released binary.
            Err(error) => unreachable!("the built-in scenario is invalid: {error}"),
        }
    }

    /// Parses and validates a scenario file's text; the error names the problem.
    pub(crate) fn parse(text: &str) -> Result<Self, String> {
        let file: File = basic_toml::from_str(text).map_err(|e| e.to_string())?;
        let think = match &file.think {
            Some(raw) => crate::duration::parse(raw).map_err(|e| format!("think: {e}"))?,
            None => Duration::ZERO,
        };
        if file.journey.is_empty() {
            return Err("no [[journey]]: a scenario needs at least one".into());
        }
        let mut routes: Vec<String> = Vec::new();
        let mut route_index = |label: &str| match routes.iter().position(|r| r == label) {
            Some(index) => index,
            None => {
                routes.push(label.to_owned());
                routes.len() - 1
            }
        };
        let mut requests = Vec::new();
        let mut custom: BTreeMap<&str, (usize, usize, Vec<u16>)> = BTreeMap::new();
        for (name, request) in &file.requests {
            if Action::BUILT_IN
                .iter()
                .any(|(built_in, _)| built_in == name)
            {
                return Err(format!(
                    "[requests.{name}]: the name is a built-in step; choose another"
                ));
            }
            let method = request.method.as_deref().unwrap_or("GET").to_owned();
            if method.is_empty() || !method.bytes().all(|b| b.is_ascii_uppercase()) {
                return Err(format!(
                    "[requests.{name}]: method {method:?} is not an upper-case HTTP method"
                ));
            }
            let path_ok =
                request.path.starts_with('/') && request.path.bytes().all(|b| b.is_ascii_graphic());
            if !path_ok {
                return Err(format!(
                    "[requests.{name}]: path {:?} must start with / and hold no spaces or \
                     control characters",
                    request.path
                ));
            }
            let expected = request.expect.clone().unwrap_or_else(|| vec![200]);
            if expected.is_empty() || expected.iter().any(|s| !(100..=599).contains(s)) {
                return Err(format!(
                    "[requests.{name}]: expect must list statuses between 100 and 599"
                ));
            }
            let label = request
                .route
                .clone()
                .unwrap_or_else(|| format!("{method} {}", request.path));
            let route = route_index(&label);
            custom.insert(name, (requests.len(), route, expected));
            requests.push(CustomRequest {
                method,
                path: request.path.clone(),
                body: request.body.clone(),
            });
        }
        let mut journeys = Vec::new();
        let mut total_weight: u32 = 0;
        for journey in &file.journey {
            let name = &journey.name;
            if name.is_empty() || journeys.iter().any(|j: &Journey| &j.name == name) {
                return Err(format!(
                    "journey names must be unique and non-empty: {name:?}"
                ));
            }
            if journey.weight == 0 {
                return Err(format!("journey {name:?}: weight must be at least 1"));
            }
            total_weight = total_weight
                .checked_add(journey.weight)
                .ok_or_else(|| "the weights add up to more than 4294967295".to_owned())?;
            if journey.steps.is_empty() {
                return Err(format!("journey {name:?}: no steps"));
            }
            let mut steps: Vec<Step> = Vec::new();
            for step in &journey.steps {
                let resolved = if let Some((_, action)) = Action::BUILT_IN
                    .iter()
                    .find(|(built_in, _)| built_in == step)
                {
                    if let Some((needed, what)) = action.needs()
                        && !steps.iter().any(|s| s.action == needed)
                    {
                        let needed_name = Action::BUILT_IN
                            .iter()
                            .find(|(_, a)| *a == needed)
                            .map_or("", |(n, _)| n);
                        return Err(format!(
                            "journey {name:?}: step {step:?} needs {what}: put {needed_name:?} \
                             before it"
                        ));
                    }
                    let (label, expected) = action.route_and_expected();
                    Step {
                        action: *action,
                        route: route_index(label),
                        expected: expected.to_vec(),
                    }
                } else if let Some((index, route, expected)) = custom.get(step.as_str()) {
                    Step {
                        action: Action::Custom(*index),
                        route: *route,
                        expected: expected.clone(),
                    }
                } else {
                    let known: Vec<&str> = Action::BUILT_IN.iter().map(|(n, _)| *n).collect();
                    return Err(format!(
                        "journey {name:?}: unknown step {step:?} (built-in steps: {}; or define \
                         [requests.{step}])",
                        known.join(", ")
                    ));
                };
                steps.push(resolved);
            }
            journeys.push(Journey {
                name: name.clone(),
                weight: journey.weight,
                steps,
            });
        }
        Ok(Self {
            journeys,
            requests,
            routes,
            think,
            total_weight,
        })
    }

    /// A journey index drawn by weight.
    pub(crate) fn pick(&self, rng: &mut impl Rng) -> usize {
        let mut ticket = rng.random_range(0..self.total_weight);
        for (index, journey) in self.journeys.iter().enumerate() {
            if ticket < journey.weight {
                return index;
            }
            ticket -= journey.weight;
        }
        self.journeys.len() - 1
    }

    /// Requests per journey, averaged over the weights: `--rate` (requests/s) divided by this
    /// is the journey arrival rate.
    pub(crate) fn mean_requests_per_journey(&self) -> f64 {
        let total: f64 = self
            .journeys
            .iter()
            .map(|j| f64::from(j.weight) * j.steps.len() as f64)
            .sum();
        total / f64::from(self.total_weight)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn the_built_in_scenario_is_valid_and_covers_the_shop() {
        let scenario = Scenario::parse(DEFAULT_TOML).unwrap();
        assert_eq!(scenario.journeys.len(), 6);
        for route in [
            "GET /v1/products",
            "GET /v1/products/{id}",
            "POST /v1/users",
            "GET /v1/me",
            "POST /v1/orders",
            "GET /v1/orders",
            "GET /v1/orders/{id}",
        ] {
            assert!(scenario.routes.iter().any(|r| r == route), "{route}");
        }
        let mean = scenario.mean_requests_per_journey();
        assert!((mean - 3.95).abs() < 1e-9, "{mean}");
    }

    #[test]
    fn journeys_are_drawn_by_weight() {
        let scenario = Scenario::parse(
            "[[journey]]\nname = \"a\"\nweight = 3\nsteps = [\"list_products\"]\n\
             [[journey]]\nname = \"b\"\nweight = 1\nsteps = [\"bad_token\"]\n",
        )
        .unwrap();
        let mut rng = rand::rngs::SmallRng::seed_from_u64(7);
        let mut counts = [0u32; 2];
        for _ in 0..40_000 {
            counts[scenario.pick(&mut rng)] += 1;
        }
        let share = f64::from(counts[0]) / 40_000.0;
        assert!((share - 0.75).abs() < 0.02, "{share}");
    }

    #[test]
    fn custom_requests_get_their_own_route_and_expectations() {
        let scenario = Scenario::parse(
            "think = \"10ms\"\n[requests.home]\npath = \"/\"\n\
             [requests.make]\nmethod = \"POST\"\npath = \"/things\"\nbody = '{}'\nexpect = [201, 409]\nroute = \"POST /things\"\n\
             [[journey]]\nname = \"j\"\nweight = 1\nsteps = [\"home\", \"make\"]\n",
        )
        .unwrap();
        assert_eq!(scenario.think, Duration::from_millis(10));
        assert_eq!(scenario.routes, ["GET /", "POST /things"]);
        let steps = &scenario.journeys[0].steps;
        assert_eq!(steps[0].expected, [200]);
        assert_eq!(steps[1].expected, [201, 409]);
        assert_eq!(scenario.requests[1].body.as_deref(), Some("{}"));
    }

    #[test]
    fn invalid_scenarios_are_refused_naming_the_problem() {
        let journey =
            |steps: &str| format!("[[journey]]\nname = \"j\"\nweight = 1\nsteps = {steps}\n");
        let cases = [
            ("", "no [[journey]]"),
            (&journey("[\"fly\"]"), "unknown step \"fly\""),
            (&journey("[]"), "no steps"),
            (&journey("[\"checkout\"]"), "put \"sign_up\" before it"),
            (
                &journey("[\"sign_up\", \"get_order\"]"),
                "put \"checkout\" before it",
            ),
            (
                "[[journey]]\nname = \"j\"\nweight = 0\nsteps = [\"me\"]\n",
                "weight must be at least 1",
            ),
            (
                &format!("colour = 1\n{}", journey("[\"list_products\"]")),
                "unknown field",
            ),
            (
                &format!("think = \"soon\"\n{}", journey("[\"list_products\"]")),
                "think:",
            ),
            (
                &format!("[requests.x]\npath = \"no-slash\"\n{}", journey("[\"x\"]")),
                "must start with /",
            ),
            (
                &format!("[requests.me]\npath = \"/\"\n{}", journey("[\"me\"]")),
                "built-in step",
            ),
            ("[[journey]]\nname = ", "expected"),
        ];
        for (text, expected) in cases {
            let error = Scenario::parse(text).unwrap_err();
            assert!(error.contains(expected), "{text:?}: {error}");
        }
    }
}
