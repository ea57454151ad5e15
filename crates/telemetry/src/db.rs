//! Database client spans and `db.client.operation.duration`, per the database semantic
//! conventions. sqlx emits no spans; wrap each query in [`DbOperation::run`].
//!
//! Only the operation, the collection and a low-cardinality summary are recorded — never the
//! statement's bound values.

use std::future::Future;
use std::time::Instant;

use opentelemetry::metrics::Histogram;
use opentelemetry::trace::{Span as _, SpanKind, Status, TraceContextExt as _, Tracer as _};
use opentelemetry::{Context as OtelContext, KeyValue};

use crate::instance::Telemetry;
use crate::semconv::{
    DB_CLIENT_OPERATION_DURATION, DB_COLLECTION_NAME, DB_OPERATION_NAME, DB_QUERY_SUMMARY,
    DB_SYSTEM_NAME, ERROR_TYPE, SERVER_ADDRESS, SERVER_PORT,
};

/// Bucket boundaries of `db.client.operation.duration` (semconv advice).
pub const DB_DURATION_BOUNDARIES: [f64; 14] = [
    0.001, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0,
];

/// The database instruments of one telemetry instance.
#[derive(Debug, Clone)]
pub struct DbInstruments {
    telemetry: Telemetry,
    system: &'static str,
    /// `server.address` and `server.port` of the database, when it has a server.
    server: Option<(std::sync::Arc<str>, Option<u16>)>,
    duration: Histogram<f64>,
}

impl DbInstruments {
    /// Instruments for a database of `system` (`db.system.name`: `sqlite`, `postgresql`, …).
    pub fn new(telemetry: &Telemetry, system: &'static str) -> Self {
        let duration = telemetry
            .meter()
            .f64_histogram(DB_CLIENT_OPERATION_DURATION)
            .with_unit("s")
            .with_description("Duration of database client operations.")
            .with_boundaries(DB_DURATION_BOUNDARIES.to_vec())
            .build();
        Self {
            telemetry: telemetry.clone(),
            system,
            server: None,
            duration,
        }
    }

    /// The database server's host (`server.address`) and port (`server.port`, recommended
    /// when it is not the system's default), recorded on every span; for a client/server
    /// database such as PostgreSQL (an embedded SQLite has none).
    pub fn with_server(mut self, address: &str, port: Option<u16>) -> Self {
        self.server = Some((std::sync::Arc::from(address), port));
        self
    }

    /// Describes one operation: `operation` (`SELECT`, `INSERT`, …) on `collection` (a table).
    pub fn operation(&self, operation: &'static str, collection: &'static str) -> DbOperation<'_> {
        DbOperation {
            instruments: self,
            operation,
            collection: Some(collection),
        }
    }

    /// Describes a statement on no particular table (`BEGIN`, `COMMIT`, `SELECT 1`, …): its
    /// span and metric carry `db.operation.name` and no `db.collection.name`.
    pub fn statement(&self, operation: &'static str) -> DbOperation<'_> {
        DbOperation {
            instruments: self,
            operation,
            collection: None,
        }
    }
}

/// One database operation about to run.
#[derive(Debug)]
pub struct DbOperation<'a> {
    instruments: &'a DbInstruments,
    operation: &'static str,
    collection: Option<&'static str>,
}

impl DbOperation<'_> {
    /// Runs `query` inside a CLIENT span (child of the current `tracing` span, else of the
    /// current request's span) and records its
    /// duration. An `Err` sets `error.type` (from `classify`) and the span status.
    pub async fn run<T, E, F>(self, query: F, classify: impl Fn(&E) -> &'static str) -> Result<T, E>
    where
        F: Future<Output = Result<T, E>>,
    {
        let telemetry = &self.instruments.telemetry;
        let summary: std::borrow::Cow<'static, str> = match self.collection {
            Some(collection) => {
                let mut s = String::with_capacity(self.operation.len() + 1 + collection.len());
                s.push_str(self.operation);
                s.push(' ');
                s.push_str(collection);
                s.into()
            }
            None => self.operation.into(),
        };
        let mut attributes = Vec::with_capacity(6);
        attributes.push(KeyValue::new(DB_SYSTEM_NAME, self.instruments.system));
        attributes.push(KeyValue::new(DB_OPERATION_NAME, self.operation));
        if let Some(collection) = self.collection {
            attributes.push(KeyValue::new(DB_COLLECTION_NAME, collection));
        }
        attributes.push(KeyValue::new(DB_QUERY_SUMMARY, summary.clone()));
        if let Some((address, port)) = &self.instruments.server {
            attributes.push(KeyValue::new(
                SERVER_ADDRESS,
                std::sync::Arc::clone(address),
            ));
            if let Some(port) = port {
                attributes.push(KeyValue::new(SERVER_PORT, i64::from(*port)));
            }
        }
        let parent = match crate::tracing_spans::current_span_context() {
            Some(parent) => OtelContext::new().with_remote_span_context(parent),
            None => OtelContext::new(),
        };
        let mut span = telemetry
            .tracer()
            .span_builder(summary)
            .with_kind(SpanKind::Client)
            .with_attributes(attributes)
            .start_with_context(telemetry.tracer(), &parent);
        let started = Instant::now();
        let result = query.await;
        let seconds = started.elapsed().as_secs_f64();
        let mut metric_attributes = Vec::with_capacity(4);
        metric_attributes.push(KeyValue::new(DB_SYSTEM_NAME, self.instruments.system));
        metric_attributes.push(KeyValue::new(DB_OPERATION_NAME, self.operation));
        if let Some(collection) = self.collection {
            metric_attributes.push(KeyValue::new(DB_COLLECTION_NAME, collection));
        }
        if let Err(error) = &result {
            let kind = classify(error);
            metric_attributes.push(KeyValue::new(ERROR_TYPE, kind));
            span.set_attribute(KeyValue::new(ERROR_TYPE, kind));
            span.set_status(Status::error(kind));
        }
        self.instruments
            .duration
            .record(seconds, &metric_attributes);
        span.end();
        result
    }
}
