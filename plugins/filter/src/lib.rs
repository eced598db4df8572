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
    /// Whether this condition holds for `doc`; an ill-formed condition is an error.
    pub fn holds(&self, doc: &Value) -> Result<bool> {
        if !(self.pointer.is_empty() || self.pointer.starts_with('/')) {
            return Err(Error::new(format!(
                "condition pointer {:?} must be empty or start with '/'",
                self.pointer
            )));
        }
        let found = doc.pointer(&self.pointer);
        match (&self.equals, &self.one_of, self.exists) {
            (Some(want), None, None) => Ok(found == Some(want)),
            (None, Some(set), None) => Ok(found.is_some_and(|v| set.contains(v))),
            (None, None, Some(exists)) => Ok(found.is_some() == exists),
            _ => Err(Error::new(format!(
                "condition on {:?} needs exactly one of equals, one_of, exists",
                self.pointer
            ))),
        }
    }
}

impl Config {
    /// Whether an event with this JSON body is kept.
    pub fn keeps(&self, doc: &Value) -> Result<bool> {
        let mut results = self.conditions.iter().map(|c| c.holds(doc));
        match self.mode {
            Match::All => results.try_fold(true, |acc, r| r.map(|ok| acc && ok)),
            Match::Any => results.try_fold(false, |acc, r| r.map(|ok| acc || ok)),
        }
    }
}

#[plugin]
fn handle(event: Event) -> Result<Vec<Output>> {
    let config: Config = config()?;
    let doc: Value = event.json()?;
    if !config.keeps(&doc)? {
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

    #[test]
    fn equals_keeps_only_matching_ref() {
        let c = config(json!({"conditions": [{"pointer": "/ref", "equals": "refs/heads/main"}]}));
        assert!(c.keeps(&json!({"ref": "refs/heads/main"})).unwrap());
        assert!(!c.keeps(&json!({"ref": "refs/heads/dev"})).unwrap());
        assert!(!c.keeps(&json!({})).unwrap());
    }

    #[test]
    fn one_of_and_exists_combine_with_any() {
        let c = config(json!({"match": "any", "conditions": [
            {"pointer": "/action", "one_of": ["opened", "reopened"]},
            {"pointer": "/forced", "exists": true}
        ]}));
        assert!(c.keeps(&json!({"action": "reopened"})).unwrap());
        assert!(c.keeps(&json!({"forced": false})).unwrap());
        assert!(!c.keeps(&json!({"action": "closed"})).unwrap());
    }

    #[test]
    fn condition_with_two_tests_is_an_error() {
        let c = config(json!({"conditions": [{"pointer": "/a", "equals": 1, "exists": true}]}));
        let err = c.keeps(&json!({"a": 1})).unwrap_err();
        assert!(err.message.contains("exactly one"), "{err}");
    }

    #[test]
    fn unknown_config_key_is_rejected() {
        let err = serde_json::from_value::<Config>(json!({"conditions": [], "mach": "any"}));
        assert!(err.is_err());
    }
}
