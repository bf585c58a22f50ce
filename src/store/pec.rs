//! PEC facts on messages: the provider's identificativo and certified time of an inbound
//! envelope, its signature check, and the certified delivery state of our outbound mail as
//! its receipts report it.

use sqlx::Row;

use super::{nul_free, Result, Store, Tx};

/// Certification facts of one inbound PEC message (envelope, anomaly or receipt).
#[derive(Debug, Clone)]
pub struct InboundPec<'a> {
    /// The provider's identificativo (the envelope's Message-ID).
    pub pec_id: Option<&'a str>,
    /// daticert.xml `data`, unix millis.
    pub certified_at: Option<i64>,
    /// `verified` | `not verified` | `not checked`.
    pub signature: &'a str,
    pub signature_detail: Option<&'a str>,
}

/// What a receipt says about one of our outbound messages.
#[derive(Debug, Clone)]
pub struct ReceiptEffect<'a> {
    /// The new certified state (`None`: the receipt changes no state, e.g. the 12-hour
    /// warning); `accettata` never replaces a later state (receipts can arrive out of order).
    pub state: Option<&'a str>,
    /// JSON object kept as the message's `pec_detail`.
    pub detail: &'a serde_json::Value,
    /// The identificativo the provider gave our message.
    pub pec_id: Option<&'a str>,
    pub certified_at: Option<i64>,
}

impl Store {
    pub async fn set_inbound_pec(tx: &mut Tx, message_id: i64, p: &InboundPec<'_>) -> Result<()> {
        sqlx::query(
            "UPDATE message SET pec_id = $1, certified_at = $2, signature = $3, \
             signature_detail = $4 WHERE message_id = $5",
        )
        .bind(p.pec_id.map(nul_free))
        .bind(p.certified_at)
        .bind(nul_free(p.signature))
        .bind(p.signature_detail.map(nul_free))
        .bind(message_id)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    /// Our outbound message that the provider identifies as `pec_id`.
    pub async fn outbound_by_pec_id(tx: &mut Tx, pec_id: &str) -> Result<Option<i64>> {
        let row = sqlx::query(
            "SELECT message_id FROM message WHERE pec_id = $1 AND direction = 'out' \
             ORDER BY message_id LIMIT 1",
        )
        .bind(nul_free(pec_id))
        .fetch_optional(&mut **tx)
        .await?;
        Ok(row.map(|r| r.try_get("message_id")).transpose()?)
    }

    /// Records a receipt's effect on our outbound message `message_id`.
    pub async fn apply_receipt(tx: &mut Tx, message_id: i64, e: &ReceiptEffect<'_>) -> Result<()> {
        sqlx::query(
            "UPDATE message SET \
             pec_state = CASE WHEN $1 IS NULL THEN pec_state \
                 WHEN $1 = 'accettata' AND pec_state IS NOT NULL THEN pec_state ELSE $1 END, \
             pec_detail = CASE WHEN $1 IS NULL THEN pec_detail \
                 WHEN $1 = 'accettata' AND pec_state IS NOT NULL THEN pec_detail ELSE $2 END, \
             pec_id = COALESCE(pec_id, $3), \
             certified_at = CASE WHEN $1 IS NULL THEN certified_at \
                 WHEN $1 = 'accettata' AND pec_state IS NOT NULL THEN certified_at ELSE $4 END \
             WHERE message_id = $5 AND direction = 'out'",
        )
        .bind(e.state.map(nul_free))
        .bind(e.detail.to_string())
        .bind(e.pec_id.map(nul_free))
        .bind(e.certified_at)
        .bind(message_id)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }
}
