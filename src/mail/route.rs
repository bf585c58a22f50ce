//! Which areas a message is for: its recipients matched against the area addresses.
//!
//! To and Cc come first, in header order, because they say what the citizen meant;
//! X-Original-To / Delivered-To only fill in when no visible recipient matches (a Bcc to an
//! area, or a forward). `Delivered-To` alone is unreliable: Dovecot omits it when one message
//! is delivered to several recipients in one LMTP transaction (docs/design-notes.md, "Route
//! by To/Cc, not by Delivered-To").

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::TicketKind;

    fn routes() -> HashMap<String, AddressRoute> {
        let mut m = HashMap::new();
        for (addr, area, kind) in [
            ("lavori-pubblici@comune.test", "lavori-pubblici", None),
            (
                "reclami@comune.test",
                "lavori-pubblici",
                Some(TicketKind::Reclamo),
            ),
            ("ambiente@comune.test", "ambiente", None),
        ] {
            m.insert(
                addr.to_owned(),
                AddressRoute {
                    area: area.to_owned(),
                    kind,
                },
            );
        }
        m
    }

    fn parse(raw: &[u8]) -> InboundMail {
        crate::mail::parse::parse(raw).expect("fixture parses")
    }

    #[test]
    fn to_and_cc_give_two_areas_in_header_order_case_insensitively() {
        let mail = parse(include_bytes!("../../tests/fixtures/to-cc-two-areas.eml"));
        let areas: Vec<String> = route(&mail, &routes())
            .into_iter()
            .map(|a| a.area)
            .collect();
        assert_eq!(areas, vec!["lavori-pubblici", "ambiente"]);
    }

    #[test]
    fn x_original_to_routes_mail_whose_visible_recipients_are_not_areas() {
        let mail = parse(include_bytes!(
            "../../tests/fixtures/x-original-to-delivered-to.eml"
        ));
        let r = route(&mail, &routes());
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].area, "lavori-pubblici");
        assert_eq!(r[0].address, "lavori-pubblici@comune.test");
    }

    #[test]
    fn an_address_with_a_kind_carries_it_and_unknown_recipients_route_nowhere() {
        let mail = parse(b"From: a@x.test\r\nTo: Reclami <RECLAMI@comune.test>\r\n\r\nbody\r\n");
        let r = route(&mail, &routes());
        assert_eq!(r[0].route.kind, Some(TicketKind::Reclamo));
        let mail = parse(b"From: a@x.test\r\nTo: someone@else.test\r\n\r\nbody\r\n");
        assert!(route(&mail, &routes()).is_empty());
    }
}
