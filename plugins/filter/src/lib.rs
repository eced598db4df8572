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
use std::ops::ControlFlow;

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
    /// Whether an event with this JSON body is kept. An ill-formed condition is an error, and
    /// so is a body whose structure is broken before the answer is known. The body is read
    /// once for all conditions and only until the answer is known: with `match = "any"` up to
    /// the first value that meets its condition, with `"all"` up to the first that fails. A
    /// condition on a value the body does not have is decided at the end. Only the values at
    /// the conditions' pointers are parsed (see [`hookyard_sdk::json::scan`]).
    pub fn keeps(&self, doc: &[u8]) -> Result<bool> {
        for c in &self.conditions {
            c.check()?;
        }
        let pointers: Vec<&str> = self.conditions.iter().map(|c| c.pointer.as_str()).collect();
        // A value that meets its condition decides `any`; one that fails decides `all`.
        let decisive = self.mode == Match::Any;
        let mut reached = vec![false; self.conditions.len()];
        let stopped = hookyard_sdk::json::scan(doc, &pointers, |i, raw| {
            reached[i] = true;
            let value: Value = serde_json::from_str(raw.get())?;
            Ok(if self.conditions[i].holds_for(Some(&value)) == decisive {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            })
        })?;
        if stopped.is_break() {
            return Ok(decisive);
        }
        // Every value the body has was undecisive; what is left are the absent ones.
        let mut absent = self
            .conditions
            .iter()
            .zip(&reached)
            .filter(|(_, reached)| !**reached)
            .map(|(c, _)| c.holds_for(None));
        Ok(match self.mode {
            Match::All => absent.all(|ok| ok),
            Match::Any => absent.any(|ok| ok),
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
    fn the_body_is_read_only_until_the_answer_is_known() {
        // The demo's `main-or-pr`.
        let any = config(json!({"match": "any", "conditions": [
            {"pointer": "/ref", "one_of": ["refs/heads/main", "refs/heads/master"]},
            {"pointer": "/pull_request", "exists": true},
        ]}));
        let all = config(json!({"conditions": [
            {"pointer": "/ref", "equals": "refs/heads/main"},
            {"pointer": "/forced", "exists": false},
        ]}));
        // (config, body, kept; None for an error). A body with `[}` is broken there: only a
        // scan that reads that far reports it.
        let cases: [(&Config, &[u8], Option<bool>); 7] = [
            // `any`: a push to main is kept on its first member; broken after it, still kept.
            (&any, br#"{"ref":"refs/heads/main","c":[}"#, Some(true)),
            // Another branch needs the whole body, to know `/pull_request` is absent.
            (&any, br#"{"ref":"refs/heads/dev","c":[}"#, None),
            (&any, br#"{"ref":"refs/heads/dev","c":[]}"#, Some(false)),
            // `all`: the first condition that fails decides.
            (&all, br#"{"ref":"refs/heads/dev","c":[}"#, Some(false)),
            (&all, br#"{"ref":"refs/heads/main","c":[}"#, None),
            (
                &all,
                br#"{"ref":"refs/heads/main","forced":1}"#,
                Some(false),
            ),
            // Broken before the answer is known: an error, whichever way it would have gone.
            (&any, br#"{"c":[},"ref":"refs/heads/main"}"#, None),
        ];
        for (config, body, kept) in cases {
            assert_eq!(
                config.keeps(body).ok(),
                kept,
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn unknown_config_key_is_rejected() {
        let err = serde_json::from_value::<Config>(json!({"conditions": [], "mach": "any"}));
        assert!(err.is_err());
    }
}
