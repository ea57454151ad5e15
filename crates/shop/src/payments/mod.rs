//! Payments: the payment provider the shop charges over HTTP, and its simulator.

pub mod simulator;
