//! Test support: private mail servers, a real `ticketgate serve`, and mail helpers.
#![allow(dead_code)]

pub mod gateway;
pub mod mail;
pub mod mailstack;
