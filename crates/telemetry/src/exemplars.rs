//! Exemplars: the trace behind a metric point, kept by the library because the OpenTelemetry
//! Rust SDK (0.33) records none.
//!
//! Each bound series of `http.server.request.duration` keeps one slot per bucket, each
//! `app.errors` series one slot. A finished request whose SERVER span is sampled and exported
//! offers its trace id, span id, value and end time to the slot of its bucket; the slot takes
//! it when its previous exemplar is at least [`MIN_INTERVAL_MS`] old (one atomic load and a
//! compare for a request that is turned away, a compare-and-swap and an uncontended lock for
//! one that is taken). So a slot holds the latest exemplar, at most one per second: a latency
//! bucket that fills slowly (the slow requests) keeps its own, recent exemplar. Unsampled
//! requests, and requests with span export off (the exemplar would point at a trace nobody
//! stored), cost one branch.
//!
//! `/metrics` in the OpenMetrics format shows each slot's exemplar after its sample
//! (`crate::prometheus`); the Prometheus text format has no exemplars.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use opentelemetry::KeyValue;
use opentelemetry::trace::{SpanId, TraceId};

use crate::trace_context::{span_id_hex, trace_id_hex};

/// A slot takes a new exemplar only when its current one is at least this old.
pub(crate) const MIN_INTERVAL_MS: u64 = 1_000;

/// The span a measurement belongs to: offered only for sampled, exported SERVER spans.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SpanRef {
    pub(crate) trace_id: TraceId,
    pub(crate) span_id: SpanId,
}

/// One kept exemplar.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Exemplar {
    pub(crate) trace_id: TraceId,
    pub(crate) span_id: SpanId,
    pub(crate) value: f64,
    /// Unix time of the measurement, in milliseconds.
    pub(crate) time_ms: u64,
}

impl Exemplar {
    /// The OpenMetrics exemplar suffix: ` # {trace_id="…",span_id="…"} value timestamp`.
    pub(crate) fn write_openmetrics(&self, out: &mut String) {
        out.push_str(" # {trace_id=\"");
        out.push_str(std::str::from_utf8(&trace_id_hex(self.trace_id)).unwrap_or_default());
        out.push_str("\",span_id=\"");
        out.push_str(std::str::from_utf8(&span_id_hex(self.span_id)).unwrap_or_default());
        out.push_str("\"} ");
        out.push_str(&format!(
            "{} {}.{:03}",
            self.value,
            self.time_ms / 1000,
            self.time_ms % 1000
        ));
    }
}

/// The latest exemplar of one bucket or one counter series, rate-limited.
#[derive(Debug, Default)]
pub(crate) struct Slot {
    /// When the kept exemplar was taken (Unix ms); 0 = never.
    taken_ms: AtomicU64,
    exemplar: Mutex<Option<Exemplar>>,
}

impl Slot {
    /// Keeps `span`'s measurement unless this slot took one less than [`MIN_INTERVAL_MS`] ago.
    pub(crate) fn offer(&self, span: SpanRef, value: f64, at: SystemTime) {
        let now = at
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let taken = self.taken_ms.load(Ordering::Relaxed);
        if now < taken.saturating_add(MIN_INTERVAL_MS) && taken != 0 {
            return;
        }
        if self
            .taken_ms
            .compare_exchange(taken, now.max(1), Ordering::Relaxed, Ordering::Relaxed)
            .is_err()
        {
            return; // another request took this slot just now
        }
        // Only the winner of the swap writes; a scrape reading the slot is the only contender.
        if let Ok(mut slot) = self.exemplar.try_lock() {
            *slot = Some(Exemplar {
                trace_id: span.trace_id,
                span_id: span.span_id,
                value,
                time_ms: now,
            });
        }
    }

    pub(crate) fn get(&self) -> Option<Exemplar> {
        *self.exemplar.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The slots of one histogram series: one per bucket (the last one is `+Inf`).
#[derive(Debug)]
pub(crate) struct HistogramSlots {
    bounds: &'static [f64],
    buckets: Box<[Slot]>,
}

impl HistogramSlots {
    pub(crate) fn new(bounds: &'static [f64]) -> Self {
        Self {
            bounds,
            buckets: (0..=bounds.len()).map(|_| Slot::default()).collect(),
        }
    }

    /// Offers a measurement to the slot of its bucket (upper bounds inclusive, as the SDK counts).
    pub(crate) fn offer(&self, span: SpanRef, value: f64, at: SystemTime) {
        let index = self.bounds.partition_point(|bound| *bound < value);
        if let Some(slot) = self.buckets.get(index) {
            slot.offer(span, value, at);
        }
    }

    /// The exemplar of bucket `index`.
    pub(crate) fn bucket(&self, index: usize) -> Option<Exemplar> {
        self.buckets.get(index).and_then(Slot::get)
    }
}

/// The slots of a series, by kind of instrument.
#[derive(Debug, Clone)]
pub(crate) enum SeriesSlots {
    Histogram(Arc<HistogramSlots>),
    Counter(Arc<Slot>),
}

/// A series' attributes in a canonical, comparable form (sorted by key, values as text).
pub(crate) type SeriesKey = Vec<(String, String)>;

pub(crate) fn series_key<'a>(attributes: impl Iterator<Item = &'a KeyValue>) -> SeriesKey {
    let mut key: SeriesKey = attributes
        .map(|kv| (kv.key.as_str().to_owned(), kv.value.as_str().into_owned()))
        .collect();
    key.sort();
    key
}

/// Every series that keeps exemplars, by metric name, for `/metrics` to find by attributes.
/// Written when a series is first bound (rare), read by scrapes.
#[derive(Debug, Default)]
pub(crate) struct ExemplarRegistry {
    series: RwLock<HashMap<&'static str, HashMap<SeriesKey, SeriesSlots>>>,
}

impl ExemplarRegistry {
    pub(crate) fn register(
        &self,
        metric: &'static str,
        attributes: &[KeyValue],
        slots: SeriesSlots,
    ) {
        self.series
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(metric)
            .or_default()
            .insert(series_key(attributes.iter()), slots);
    }

    /// The slots of `metric`'s series with these attributes.
    pub(crate) fn find<'a>(
        &self,
        metric: &str,
        attributes: impl Iterator<Item = &'a KeyValue>,
    ) -> Option<SeriesSlots> {
        let series = self.series.read().unwrap_or_else(PoisonError::into_inner);
        series.get(metric)?.get(&series_key(attributes)).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn span(n: u8) -> SpanRef {
        SpanRef {
            trace_id: TraceId::from_bytes([n; 16]),
            span_id: SpanId::from_bytes([n; 8]),
        }
    }

    #[test]
    fn a_slot_keeps_at_most_one_exemplar_per_interval() {
        let slot = Slot::default();
        let t0 = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        slot.offer(span(1), 0.5, t0);
        slot.offer(span(2), 0.6, t0 + Duration::from_millis(999));
        assert_eq!(slot.get().map(|e| e.trace_id), Some(span(1).trace_id));
        slot.offer(span(3), 0.7, t0 + Duration::from_millis(1000));
        let kept = slot.get().unwrap_or_else(|| unreachable!());
        assert_eq!(kept.trace_id, span(3).trace_id);
        assert_eq!(kept.value, 0.7);
        assert_eq!(kept.time_ms, 1_700_000_001_000);
    }

    #[test]
    fn a_measurement_lands_in_the_bucket_the_sdk_counts_it_in() {
        static BOUNDS: [f64; 3] = [0.1, 0.2, 0.5];
        let slots = HistogramSlots::new(&BOUNDS);
        let t0 = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        slots.offer(span(1), 0.2, t0); // le="0.2" is inclusive
        slots.offer(span(2), 7.0, t0); // +Inf
        assert!(slots.bucket(0).is_none());
        assert_eq!(slots.bucket(1).map(|e| e.value), Some(0.2));
        assert!(slots.bucket(2).is_none());
        assert_eq!(slots.bucket(3).map(|e| e.value), Some(7.0));
    }

    #[test]
    fn the_openmetrics_suffix_names_the_trace_and_the_span() {
        let exemplar = Exemplar {
            trace_id: TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736")
                .unwrap_or(TraceId::INVALID),
            span_id: SpanId::from_hex("00f067aa0ba902b7").unwrap_or(SpanId::INVALID),
            value: 0.067,
            time_ms: 1_700_000_000_123,
        };
        let mut out = String::new();
        exemplar.write_openmetrics(&mut out);
        assert_eq!(
            out,
            " # {trace_id=\"4bf92f3577b34da6a3ce929d0e0e4736\",span_id=\"00f067aa0ba902b7\"} 0.067 1700000000.123"
        );
    }

    #[test]
    fn series_are_found_by_their_attributes_in_any_order() {
        let registry = ExemplarRegistry::default();
        let slot = Arc::new(Slot::default());
        registry.register(
            "m",
            &[KeyValue::new("b", 2), KeyValue::new("a", "x")],
            SeriesSlots::Counter(Arc::clone(&slot)),
        );
        let found = registry.find("m", [KeyValue::new("a", "x"), KeyValue::new("b", 2)].iter());
        assert!(matches!(found, Some(SeriesSlots::Counter(s)) if Arc::ptr_eq(&s, &slot)));
        assert!(
            registry
                .find("m", [KeyValue::new("a", "x")].iter())
                .is_none()
        );
        assert!(
            registry
                .find("other", [KeyValue::new("a", "x")].iter())
                .is_none()
        );
    }
}
