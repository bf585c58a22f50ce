//! The one error type of the citizen pages: a handler returns `Result<Response, Error>` and
//! uses `?`; what the visitor sees for each failure is decided here.
//!
//! Pages that depend on the visitor (their language, the CSRF token, the site name) are
//! rendered when the error is made ([`Error::not_found`], [`Error::csrf_refused`], a form
//! re-rendered with its errors) and carried in the variant; an internal failure carries its
//! cause, which is logged and never shown: the visitor gets the same bare 500 as always.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::visitor::{message, Visitor};
use super::AppState;

/// Why a citizen page did not answer with what was asked for.
#[derive(Debug)]
pub enum Error {
    /// No such page, or not this citizen's (404, the same page either way).
    NotFound(Response),
    /// A form whose CSRF token does not belong to this visitor (403).
    CsrfRefused(Response),
    /// A form shown again with its errors (the page carries its own status: 422, 403, 401,
    /// 429).
    Form(Response),
    /// Anything else: logged with its cause, shown as a bare 500.
    Internal(anyhow::Error),
}

impl Error {
    /// The "no such case among yours" page.
    pub fn not_found(state: &AppState, v: &Visitor) -> Self {
        Self::NotFound(message(
            state,
            v,
            StatusCode::NOT_FOUND,
            v.t("Pagina non trovata", "Not found"),
            vec![v.t(
                "Tra le sue pratiche non ce n'è una con questo numero.",
                "There is no such case among yours.",
            )],
            Some((
                "/tickets".to_owned(),
                v.t("Le mie segnalazioni", "My reports"),
            )),
        ))
    }

    /// The "form expired" page of a form that cannot be shown again with what was typed.
    pub fn csrf_refused(state: &AppState, v: &Visitor) -> Self {
        Self::CsrfRefused(message(
            state,
            v,
            StatusCode::FORBIDDEN,
            v.t("Modulo scaduto", "Form expired"),
            vec![v.t(
                "Il modulo non è più valido (o i cookie sono disattivati). Torni indietro, ricarichi la pagina e riprovi.",
                "The form is no longer valid (or cookies are off). Go back, reload the page and try again.",
            )],
            None,
        ))
    }
}

impl<E: Into<anyhow::Error>> From<E> for Error {
    fn from(e: E) -> Self {
        Self::Internal(e.into())
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        match self {
            Self::NotFound(page) | Self::CsrfRefused(page) | Self::Form(page) => page,
            Self::Internal(e) => {
                tracing::error!(error = format!("{e:#}"), "citizen page failed");
                (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response()
            }
        }
    }
}
