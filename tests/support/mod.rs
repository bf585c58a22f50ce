//! Test support: private mail servers, a private PostgreSQL, a real `ticketgate serve`, and
//! mail helpers.
#![allow(dead_code)]

pub mod base64;
pub mod browser;
pub mod config;
pub mod gateway;
pub mod http;
pub mod local;
pub mod mail;
pub mod mailstack;
pub mod pec;
pub mod pki;
pub mod postgres;
pub mod web;
