//! Running the load: worker tasks (one connection each) taking open-model arrivals or looping
//! as closed-model users, until the duration is over, the request budget is spent or Ctrl-C.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use rand::SeedableRng as _;
use rand::rngs::SmallRng;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::cli::{Limit, Model};
use crate::http1::Connection;
use crate::journey::{self, Accounts, JourneyState};
use crate::scenario::Scenario;
use crate::schedule::Arrivals;
use crate::stats::{Outcome, Record, Stats};
use crate::target::Target;
use crate::trace::{Exporter, JourneyTrace, trace_id_of};

/// Open-model sleeps end this much before the due time (tokio's timer fires up to ~1 ms
/// late); latency is measured from the earlier of due time and send time, so an early send
/// measures the plain service time and the timer never adds its lateness to a latency.
const TIMER_SLACK: Duration = Duration::from_millis(1);
/// After Ctrl-C, in-flight requests get this long before the summary is printed without them.
const INTERRUPT_GRACE: Duration = Duration::from_secs(2);

/// Everything a run needs, fixed before it starts.
#[derive(Debug)]
pub(crate) struct Plan {
    pub(crate) target: Target,
    pub(crate) address: SocketAddr,
    pub(crate) scenario: Scenario,
    pub(crate) model: Model,
    pub(crate) limit: Limit,
    pub(crate) think: Duration,
    pub(crate) timeout: Duration,
    pub(crate) exporter: Option<Exporter>,
}

impl Plan {
    /// Journeys per second of the open model (its `--rate` is in requests per second).
    pub(crate) fn journey_rate(&self) -> Option<f64> {
        match self.model {
            Model::Open { rate, .. } => Some(rate / self.scenario.mean_requests_per_journey()),
            Model::Closed { .. } => None,
        }
    }

    pub(crate) fn connections(&self) -> usize {
        match self.model {
            Model::Open { connections, .. } => connections,
            Model::Closed { users } => users,
        }
    }
}

/// The state the workers share while running.
#[derive(Debug)]
pub(crate) struct Run {
    pub(crate) plan: Plan,
    pub(crate) stats: Stats,
    pub(crate) started: Instant,
    end: Option<Instant>,
    stop: AtomicBool,
    next_arrival: AtomicU64,
    tickets: AtomicU64,
    accounts: Accounts,
    arrivals: Option<Arrivals>,
}

/// How a run ended.
#[derive(Debug)]
pub(crate) struct Finished {
    pub(crate) elapsed: Duration,
    pub(crate) interrupted: bool,
    /// Open model: arrivals due before the end that no connection was free to start.
    pub(crate) dropped: u64,
}

impl Run {
    pub(crate) fn new(plan: Plan) -> Arc<Self> {
        let started = Instant::now();
        let end = match plan.limit {
            Limit::Duration(duration) => Some(started + duration),
            Limit::Requests(_) => None,
        };
        let tickets = match plan.limit {
            Limit::Requests(n) => n,
            Limit::Duration(_) => u64::MAX,
        };
        let arrivals = match (plan.model, plan.journey_rate()) {
            (Model::Open { ramp, .. }, Some(rate)) => Some(Arrivals::new(rate, ramp)),
            _ => None,
        };
        let stats = Stats::new(plan.scenario.routes.len(), plan.scenario.journeys.len());
        Arc::new(Self {
            plan,
            stats,
            started,
            end,
            stop: AtomicBool::new(false),
            next_arrival: AtomicU64::new(0),
            tickets: AtomicU64::new(tickets),
            accounts: Accounts::new(rand::random()),
            arrivals,
        })
    }

    /// Runs every worker to the end; `interrupt` resolving (Ctrl-C) stops early.
    pub(crate) async fn execute(
        self: &Arc<Self>,
        interrupt: impl std::future::Future<Output = ()>,
    ) -> Finished {
        let mut workers = JoinSet::new();
        for _ in 0..self.plan.connections() {
            let run = Arc::clone(self);
            workers.spawn(async move { run.worker().await });
        }
        let mut interrupted = false;
        tokio::select! {
            () = async { while workers.join_next().await.is_some() {} } => {}
            () = interrupt => {
                interrupted = true;
                self.stop.store(true, Ordering::SeqCst);
            }
        }
        let stopped_at = Instant::now();
        if interrupted {
            let _ = tokio::time::timeout(INTERRUPT_GRACE, async {
                while workers.join_next().await.is_some() {}
            })
            .await;
            workers.abort_all();
        }
        let mut elapsed = stopped_at.saturating_duration_since(self.started);
        // The open model's last arrival is due just before the end: the run covered the whole
        // duration even when its last answer came a little earlier.
        if let (Limit::Duration(duration), false) = (self.plan.limit, interrupted) {
            elapsed = elapsed.max(duration);
        }
        let dropped = match (&self.arrivals, self.plan.limit) {
            (Some(arrivals), Limit::Duration(duration)) => {
                let due = arrivals.due_before(elapsed.min(duration));
                let started: u64 = self.stats.journeys().iter().sum();
                due.saturating_sub(started)
            }
            _ => 0,
        };
        Finished {
            elapsed,
            interrupted,
            dropped,
        }
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed) || self.end.is_some_and(|end| Instant::now() >= end)
    }

    /// Takes one request from the budget of `--requests`; `false` when it is spent.
    fn take_ticket(&self) -> bool {
        let taken = self
            .tickets
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| {
                left.checked_sub(1)
            })
            .is_ok();
        if !taken {
            self.stop.store(true, Ordering::Relaxed);
        }
        taken
    }

    async fn worker(self: Arc<Self>) {
        let mut connection = Connection::new(self.plan.address);
        let mut rng = SmallRng::from_rng(&mut rand::rng());
        let mut buffer = Vec::with_capacity(1024);
        loop {
            if self.stopped() {
                return;
            }
            let due = match &self.arrivals {
                Some(arrivals) => {
                    let index = self.next_arrival.fetch_add(1, Ordering::Relaxed);
                    let due = self.started + arrivals.due(index);
                    if self.end.is_some_and(|end| due >= end) {
                        return;
                    }
                    if let Some(wake) = due.checked_sub(TIMER_SLACK)
                        && wake > Instant::now()
                    {
                        tokio::time::sleep_until(wake).await;
                    }
                    if self.stop.load(Ordering::Relaxed) {
                        return;
                    }
                    Some(due)
                }
                None => None,
            };
            let journey = self.plan.scenario.pick(&mut rng);
            self.journey(journey, due, &mut connection, &mut buffer, &mut rng)
                .await;
        }
    }

    async fn journey(
        &self,
        index: usize,
        due: Option<Instant>,
        connection: &mut Connection,
        buffer: &mut Vec<u8>,
        rng: &mut SmallRng,
    ) {
        let scenario = &self.plan.scenario;
        let journey = &scenario.journeys[index];
        let exporter = self.plan.exporter.as_ref();
        // Started (counted, traced) when its first request is sent.
        let mut trace: Option<JourneyTrace> = None;
        let mut state = JourneyState::default();
        let mut scheduled = due;
        for (position, step) in journey.steps.iter().enumerate() {
            if position > 0 && !self.plan.think.is_zero() {
                let at = Instant::now() + self.plan.think;
                if self.arrivals.is_some() {
                    scheduled = Some(at);
                    tokio::time::sleep_until(at.checked_sub(TIMER_SLACK).unwrap_or(at)).await;
                } else {
                    tokio::time::sleep_until(at).await;
                }
            }
            if self.stopped() || !self.take_ticket() {
                break;
            }
            let trace = match &mut trace {
                Some(trace) => &*trace,
                None => {
                    let lag = due.map(|due| {
                        Instant::now().saturating_duration_since(due).as_micros() as u64
                    });
                    self.stats.journey_started(index, lag);
                    &*trace.insert(JourneyTrace::start(exporter, &journey.name, rng))
                }
            };
            let planned = journey::plan(step.action, scenario, &mut state, &self.accounts, rng);
            let route = &scenario.routes[step.route];
            let template = route.split_once(' ').map_or(route.as_str(), |(_, t)| t);
            let span = trace.request(
                exporter,
                span_method(planned.method),
                template,
                &planned.path,
                rng,
            );
            planned.write(
                buffer,
                &self.plan.target.authority,
                &self.plan.target.prefix,
                &span.traceparent,
            );
            let head_only = planned.is_head();
            drop(planned);
            let sent = Instant::now();
            let start = scheduled.map_or(sent, |scheduled| scheduled.min(sent));
            scheduled = None;
            let result = connection.send(buffer, head_only, self.plan.timeout).await;
            let latency_micros = start.elapsed().as_micros() as u64;
            let failed = match result {
                Ok(response) => {
                    let error = !step.expected.contains(&response.status);
                    let server_trace = response.traceparent.and_then(trace_id_of);
                    self.stats.record(&Record {
                        route: step.route,
                        latency_micros,
                        outcome: Outcome::Status(response.status),
                        error,
                        trace_id: server_trace.unwrap_or(trace.trace_id),
                        request_id: response.request_id,
                    });
                    if response.replayed {
                        self.stats.replayed.fetch_add(1, Ordering::Relaxed);
                    }
                    if !error {
                        journey::absorb(step.action, response.status, response.body, &mut state);
                    }
                    span.end(Ok(response.status));
                    error
                }
                Err(failure) => {
                    self.stats.record(&Record {
                        route: step.route,
                        latency_micros,
                        outcome: Outcome::Failed(failure),
                        error: true,
                        trace_id: trace.trace_id,
                        request_id: None,
                    });
                    span.end(Err(failure.as_str()));
                    true
                }
            };
            // A user whose step failed gives up the journey (later steps depend on it).
            if failed {
                break;
            }
        }
        if let Some(trace) = trace {
            trace.end();
        }
    }
}

fn span_method(method: &str) -> &'static str {
    match method {
        "GET" => "GET",
        "POST" => "POST",
        "PUT" => "PUT",
        "DELETE" => "DELETE",
        "PATCH" => "PATCH",
        "HEAD" => "HEAD",
        "OPTIONS" => "OPTIONS",
        _ => "HTTP",
    }
}
