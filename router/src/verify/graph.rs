//! Microsoft Graph change notifications: no signature header; each notification in the
//! body's `value` array carries the `clientState` the subscription was created with, which
//! is the shared secret. Creating a subscription first sends `POST ?validationToken=V`,
//! which must be answered with `V` as plain text within 10 seconds.

use super::{Request, Verified, VerifyError};

/// Checks the `clientState` of every notification in a Graph change-notification body.
pub struct Graph {
    secrets: Vec<Vec<u8>>,
}

impl std::fmt::Debug for Graph {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Graph")
            .field("secrets", &"<redacted>")
            .finish()
    }
}

#[derive(serde::Deserialize)]
struct Notifications {
    value: Vec<Notification>,
}

#[derive(serde::Deserialize)]
struct Notification {
    #[serde(rename = "clientState")]
    client_state: Option<String>,
}

/// The longest validation token echoed back.
const MAX_VALIDATION_TOKEN: usize = 1024;

impl Graph {
    /// With these client states (any of them may be the subscription's).
    pub fn new(secrets: Vec<Vec<u8>>) -> Graph {
        Graph { secrets }
    }

    /// Accepts a body whose every notification carries one of the client states.
    pub fn verify(&self, req: &Request<'_>) -> Result<Verified, VerifyError> {
        let body: Notifications =
            serde_json::from_slice(req.body).map_err(|_| VerifyError::BadBody)?;
        if body.value.is_empty() {
            return Err(VerifyError::BadBody);
        }
        for n in &body.value {
            let Some(state) = &n.client_state else {
                return Err(VerifyError::MissingCredentials);
            };
            if !super::credentials::any_equal(&self.secrets, state.as_bytes()) {
                return Err(VerifyError::BadCredentials);
            }
        }
        Ok(Verified::default())
    }

    /// The `validationToken` of a subscription-validation request, to be echoed as plain
    /// text. It proves nothing and reveals nothing (Graph made it up), so it is answered
    /// before any check; only tokens of printable characters and bounded length are echoed.
    pub fn validation_token(uri: &http::Uri) -> Option<String> {
        let token = form_urlencoded::parse(uri.query()?.as_bytes())
            .find(|(k, _)| k == "validationToken")?
            .1
            .into_owned();
        (token.len() <= MAX_VALIDATION_TOKEN && token.chars().all(|c| !c.is_control()))
            .then_some(token)
    }
}
