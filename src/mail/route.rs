//! Which areas a message is for: its recipients matched against the area addresses.
//!
//! To and Cc come first, in header order, because they say what the citizen meant;
//! X-Original-To / Delivered-To only fill in when no visible recipient matches (a Bcc to an
//! area, or a forward). `Delivered-To` alone is unreliable: Dovecot omits it when one message
//! is delivered to several recipients in one LMTP transaction (STACK.md).

use std::collections::HashMap;

use crate::config::AddressRoute;
use crate::mail::parse::InboundMail;

/// One matched area, with the address that matched and its default kind.
#[derive(Debug, Clone, PartialEq)]
pub struct RoutedArea {
    pub area: String,
    pub address: String,
    pub route: AddressRoute,
}

impl PartialEq for AddressRoute {
    fn eq(&self, other: &Self) -> bool {
        self.area == other.area && self.kind == other.kind
    }
}

/// Areas the message is addressed to, first match first, each area once.
pub fn route(mail: &InboundMail, routes: &HashMap<String, AddressRoute>) -> Vec<RoutedArea> {
    let visible = mail
        .to
        .iter()
        .chain(mail.cc.iter())
        .map(|m| m.address.as_str());
    let mut out = collect(visible, routes);
    if out.is_empty() {
        out = collect(mail.original_recipients.iter().map(|s| s.as_str()), routes);
    }
    out
}

fn collect<'a>(
    addresses: impl Iterator<Item = &'a str>,
    routes: &HashMap<String, AddressRoute>,
) -> Vec<RoutedArea> {
    let mut out: Vec<RoutedArea> = Vec::new();
    for addr in addresses {
        let addr = addr.trim().to_lowercase();
        if let Some(r) = routes.get(&addr) {
            if !out.iter().any(|o| o.area == r.area) {
                out.push(RoutedArea {
                    area: r.area.clone(),
                    address: addr,
                    route: r.clone(),
                });
            }
        }
    }
    out
}
