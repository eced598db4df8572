//! `filter`: keeps or drops an event by conditions on its JSON body, set in `router.toml`.
//!
//! ```toml
//! [plugins.only-main-pushes]
//! path = "plugins/filter.wasm"
//! config = { conditions = [{ pointer = "/ref", equals = "refs/heads/main" }] }
//! ```
//!
//! Each condition names a JSON pointer (RFC 6901) and exactly one test: `equals` (any JSON
//! value), `one_of` (a list of values) or `exists` (true or false). By default every
//! condition must hold (`match = "all"`); `match = "any"` keeps an event if one holds.
//! A kept event passes on unchanged; a dropped one produces no output.

use hookyard_sdk::prelude::*;
use serde::Deserialize;

/// The plugin's configuration.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The tests to apply.
    pub conditions: Vec<Condition>,
    /// Whether all or any of the conditions must hold.
    #[serde(default, rename = "match")]
    pub mode: Match,
}

/// How conditions combine.
#[derive(Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Match {
    /// Every condition must hold.
    #[default]
    All,
    /// At least one condition must hold.
    Any,
}

/// One test on one JSON pointer.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Condition {
    /// Where to look, e.g. `/pull_request/base/ref`.
    pub pointer: String,
    /// The value must equal this.
    pub equals: Option<Value>,
    /// The value must equal one of these.
    pub one_of: Option<Vec<Value>>,
    /// The pointer must (true) or must not (false) resolve.
    pub exists: Option<bool>,
}

impl Condition {
    /// An ill-formed condition is an error naming it.
    fn check(&self) -> Result<()> {
        if !(self.pointer.is_empty() || self.pointer.starts_with('/')) {
            return Err(Error::new(format!(
                "condition pointer {:?} must be empty or start with '/'",
                self.pointer
            )));
        }
        match (&self.equals, &self.one_of, self.exists) {
            (Some(_), None, None) | (None, Some(_), None) | (None, None, Some(_)) => Ok(()),
            _ => Err(Error::new(format!(
                "condition on {:?} needs exactly one of equals, one_of, exists",
                self.pointer
            ))),
        }
    }

    /// Whether this condition holds for `found`, the value at its pointer (if any).
    fn holds_for(&self, found: Option<&Value>) -> bool {
        match (&self.equals, &self.one_of, self.exists) {
            (Some(want), _, _) => found == Some(want),
            (_, Some(set), _) => found.is_some_and(|v| set.contains(v)),
            (_, _, exists) => found.is_some() == exists.unwrap_or(true),
        }
    }
}

impl Config {
    /// Whether an event with this JSON body is kept. An ill-formed condition or a body that
    /// is not JSON is an error. The body is read once for all conditions, and only the values
    /// at their pointers are parsed (see [`hookyard_sdk::json::pointers`]).
    pub fn keeps(&self, doc: &[u8]) -> Result<bool> {
        for c in &self.conditions {
            c.check()?;
        }
        let pointers: Vec<&str> = self.conditions.iter().map(|c| c.pointer.as_str()).collect();
        let found = hookyard_sdk::json::pointers(doc, &pointers)?;
        let mut results = self
            .conditions
            .iter()
            .zip(&found)
            .map(|(c, v)| c.holds_for(v.as_ref()));
        Ok(match self.mode {
            Match::All => results.all(|ok| ok),
            Match::Any => results.any(|ok| ok),
        })
    }
}

#[plugin]
fn handle(event: Event) -> Result<Vec<Output>> {
    let config: Config = config()?;
    if !config.keeps(&event.body)? {
        return drop_event("conditions not met");
    }
    let content_type = event
        .header("content-type")
        .unwrap_or("application/json")
        .to_string();
    Ok(vec![Output::bytes(event.body, &content_type)])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(v: Value) -> Config {
        serde_json::from_value(v).expect("valid config")
    }

    fn doc(v: Value) -> Vec<u8> {
        serde_json::to_vec(&v).expect("json")
    }

    #[test]
    fn equals_keeps_only_matching_ref() {
        let c = config(json!({"conditions": [{"pointer": "/ref", "equals": "refs/heads/main"}]}));
        assert!(c.keeps(&doc(json!({"ref": "refs/heads/main"}))).unwrap());
        assert!(!c.keeps(&doc(json!({"ref": "refs/heads/dev"}))).unwrap());
        assert!(!c.keeps(&doc(json!({}))).unwrap());
    }

    #[test]
    fn one_of_and_exists_combine_with_any() {
        let c = config(json!({"match": "any", "conditions": [
            {"pointer": "/action", "one_of": ["opened", "reopened"]},
            {"pointer": "/forced", "exists": true}
        ]}));
        assert!(c.keeps(&doc(json!({"action": "reopened"}))).unwrap());
        assert!(c.keeps(&doc(json!({"forced": false}))).unwrap());
        assert!(!c.keeps(&doc(json!({"action": "closed"}))).unwrap());
    }

    #[test]
    fn condition_with_two_tests_is_an_error() {
        let c = config(json!({"conditions": [{"pointer": "/a", "equals": 1, "exists": true}]}));
        let err = c.keeps(&doc(json!({"a": 1}))).unwrap_err();
        assert!(err.message.contains("exactly one"), "{err}");
    }

    #[test]
    fn a_body_that_is_not_json_is_an_error_and_nested_pointers_resolve() {
        let c = config(
            json!({"conditions": [{"pointer": "/pull_request/base/ref", "equals": "main"}]}),
        );
        assert!(c.keeps(b"not json").is_err());
        assert!(
            c.keeps(&doc(
                json!({"big": "x".repeat(10_000), "pull_request": {"base": {"ref": "main"}}})
            ))
            .unwrap()
        );
        assert!(
            !c.keeps(&doc(json!({"pull_request": {"base": {"ref": "dev"}}})))
                .unwrap()
        );
    }

    #[test]
    fn unknown_config_key_is_rejected() {
        let err = serde_json::from_value::<Config>(json!({"conditions": [], "mach": "any"}));
        assert!(err.is_err());
    }
}
