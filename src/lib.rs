//! ticketgate: an email-driven ticket gateway for Italian municipalities.
//!
//! The flow of one email is visible in the modules: [`inbound`] fetches and stores it raw,
//! [`mail`] parses and routes it, [`intake`] makes the ticket in one transaction of the
//! [`store`] together with the outbox rows, and [`outbound`] sends them. [`app`] wires
//! it all into `ticketgate serve`; [`cli`] holds the operator commands.
#![forbid(unsafe_code)]

pub mod app;
pub mod attachments;
pub mod cli;
pub mod config;
pub mod digest;
pub mod domain;
pub mod health;
pub mod inbound;
pub mod intake;
pub mod mail;
pub mod outbound;
pub mod store;
pub mod systemd;
pub mod tickets;
pub mod web;
