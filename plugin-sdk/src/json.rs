//! Reading a few values out of a large JSON body without parsing all of it.
//!
//! [`pointer`] follows an RFC 6901 JSON pointer through the raw text: at each level it skims
//! the object or array, skipping every other member without building it, and parses only the
//! value it ends on. A webhook payload of several kilobytes costs a scan instead of a tree of
//! allocations, which in the sandbox is most of a small plugin's time.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;
use serde_json::value::RawValue;

use crate::{Error, Result};

/// The value at `pointer` in the JSON document `doc` (`""` is the whole document), or `None`
/// when a step does not resolve. A document that is not JSON is an error; so is a pointer
/// that is neither empty nor starts with `/`.
pub fn pointer(doc: &[u8], pointer: &str) -> Result<Option<Value>> {
    Ok(pointers(doc, &[pointer])?.pop().flatten())
}

/// [`pointer`] for several pointers at once: the document is read once, however many
/// pointers start in it.
pub fn pointers(doc: &[u8], pointers: &[&str]) -> Result<Vec<Option<Value>>> {
    raw_pointers(doc, pointers)?
        .into_iter()
        .map(|raw| match raw {
            Some(raw) => Ok(Some(serde_json::from_str(raw.get())?)),
            None => Ok(None),
        })
        .collect()
}

/// [`pointers`], leaving each value found as raw JSON text.
pub fn raw_pointers<'a>(doc: &'a [u8], pointers: &[&str]) -> Result<Vec<Option<&'a RawValue>>> {
    let mut firsts: Vec<Cow<'_, str>> = Vec::new();
    for p in pointers {
        if !(p.is_empty() || p.starts_with('/')) {
            return Err(Error::new(format!(
                "JSON pointer {p:?} must be empty or start with '/'"
            )));
        }
        if let Some(first) = p.split('/').nth(1) {
            firsts.push(unescape(first));
        }
    }
    // One pass over the document: the whole of it as raw text when a pointer is empty,
    // and the top-level members (or elements) the pointers start with.
    let whole: Option<&'a RawValue> = if pointers.iter().any(|p| p.is_empty()) {
        Some(serde_json::from_slice(doc)?)
    } else {
        None
    };
    let mut de = serde_json::Deserializer::from_slice(doc);
    let tops = match doc.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'{') => de.deserialize_map(Members(&firsts))?,
        Some(b'[') => de.deserialize_seq(Elements(&firsts))?,
        _ => {
            de.deserialize_any(IgnoredAny)?;
            vec![None; firsts.len()]
        }
    };
    de.end()?;
    let mut found = Vec::with_capacity(pointers.len());
    let mut tops = tops.into_iter();
    for p in pointers {
        if p.is_empty() {
            found.push(whole);
            continue;
        }
        let top = tops.next().flatten();
        let rest = p.splitn(3, '/').nth(2);
        found.push(match (top, rest) {
            (Some(top), Some(rest)) => descend(top, rest)?,
            (top, None) => top,
            (None, Some(_)) => None,
        });
    }
    Ok(found)
}

/// Follows the tokens of `rest` (a pointer without its first token and slash) from `here`.
fn descend<'a>(mut here: &'a RawValue, rest: &str) -> Result<Option<&'a RawValue>> {
    for token in rest.split('/') {
        let token = unescape(token);
        let wanted = [token];
        let mut de = serde_json::Deserializer::from_str(here.get());
        let next = match here.get().as_bytes().first() {
            Some(b'{') => de.deserialize_map(Members(&wanted))?,
            Some(b'[') => de.deserialize_seq(Elements(&wanted))?,
            _ => vec![None],
        };
        match next.into_iter().next().flatten() {
            Some(raw) => here = raw,
            None => return Ok(None),
        }
    }
    Ok(Some(here))
}

/// `~1` is `/` and `~0` is `~` in a pointer token (in that order, per RFC 6901).
fn unescape(token: &str) -> Cow<'_, str> {
    if token.contains('~') {
        Cow::Owned(token.replace("~1", "/").replace("~0", "~"))
    } else {
        Cow::Borrowed(token)
    }
}

/// An array index token: digits, no leading zero.
fn index(token: &str) -> Option<usize> {
    if token.is_empty() || (token.len() > 1 && token.starts_with('0')) {
        return None;
    }
    token.parse().ok()
}

/// Finds the members with these keys in an object (the first of each), skipping the rest.
struct Members<'k, 't>(&'k [Cow<'t, str>]);

impl<'de> Visitor<'de> for Members<'_, '_> {
    type Value = Vec<Option<&'de RawValue>>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut found = vec![None; self.0.len()];
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            let wanted: Vec<usize> = (0..self.0.len())
                .filter(|&i| found[i].is_none() && self.0[i] == key)
                .collect();
            if wanted.is_empty() {
                map.next_value::<IgnoredAny>()?;
            } else {
                let raw = map.next_value::<&'de RawValue>()?;
                for i in wanted {
                    found[i] = Some(raw);
                }
            }
        }
        Ok(found)
    }
}

/// Finds the elements at these index tokens in an array, skipping the rest.
struct Elements<'k, 't>(&'k [Cow<'t, str>]);

impl<'de> Visitor<'de> for Elements<'_, '_> {
    type Value = Vec<Option<&'de RawValue>>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON array")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let indexes: Vec<Option<usize>> = self.0.iter().map(|t| index(t)).collect();
        let mut found = vec![None; self.0.len()];
        let mut i = 0;
        loop {
            let wanted = indexes.contains(&Some(i));
            let Some(raw) = seq.next_element_seed(RawOrSkip(wanted))? else {
                break;
            };
            if let Some(raw) = raw {
                for (slot, at) in found.iter_mut().zip(&indexes) {
                    if *at == Some(i) {
                        *slot = Some(raw);
                    }
                }
            }
            i += 1;
        }
        Ok(found)
    }
}

/// Borrows an element as raw text when wanted, skips it otherwise.
struct RawOrSkip(bool);

impl<'de> DeserializeSeed<'de> for RawOrSkip {
    type Value = Option<&'de RawValue>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        if self.0 {
            <&'de RawValue as de::Deserialize>::deserialize(d).map(Some)
        } else {
            <IgnoredAny as de::Deserialize>::deserialize(d).map(|_| None)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const DOC: &[u8] = br#"{"ref":"refs/heads/main","a/b":1,"m~n":2,"pusher":{"name":"octo"},
        "commits":[{"id":"c0"},{"id":"c1","tags":["x","y"]}],"empty":{},"n":null,
        "esc\"aped":"yes","ref2":"later"}"#;

    #[test]
    fn follows_members_and_indexes_like_serde_json_pointer() {
        let whole: Value = serde_json::from_slice(DOC).unwrap();
        for p in [
            "",
            "/ref",
            "/pusher/name",
            "/commits/1/id",
            "/commits/1/tags/0",
            "/a~1b",
            "/m~0n",
            "/empty",
            "/n",
            "/esc\"aped",
            "/commits/2",
            "/commits/01",
            "/commits/x",
            "/missing",
            "/ref/deeper",
            "/pusher/name/x",
        ] {
            assert_eq!(
                pointer(DOC, p).unwrap(),
                whole.pointer(p).cloned(),
                "pointer {p:?}"
            );
        }
        assert_eq!(pointer(DOC, "/n").unwrap(), Some(Value::Null));
        assert_eq!(
            pointer(DOC, "/commits/0").unwrap(),
            Some(json!({"id": "c0"}))
        );
    }

    #[test]
    fn several_pointers_read_in_one_pass_agree_with_one_at_a_time() {
        let ps = [
            "/ref",
            "/commits/1/id",
            "",
            "/missing",
            "/ref2",
            "/pusher/name",
            "/ref",
        ];
        let together = pointers(DOC, &ps).unwrap();
        for (p, got) in ps.iter().zip(together) {
            assert_eq!(got, pointer(DOC, p).unwrap(), "pointer {p:?}");
        }
        assert_eq!(
            pointers(br#"[10, 20]"#, &["/1", "/0", "/2"]).unwrap(),
            [Some(json!(20)), Some(json!(10)), None]
        );
        assert_eq!(pointers(b"7", &["", "/a"]).unwrap(), [Some(json!(7)), None]);
    }

    #[test]
    fn bad_documents_and_pointers_are_errors() {
        assert!(pointer(b"{not json", "/a").is_err());
        assert!(pointer(br#"{"a":1} trailing"#, "/a").is_err());
        let err = pointer(DOC, "ref").unwrap_err();
        assert!(
            err.message.contains("must be empty or start with '/'"),
            "{err}"
        );
    }
}

/// Any document a sender posts and any pointer a config names: never a panic, and on a JSON
/// document the same answer as `serde_json`'s own `Value::pointer`.
#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    fn json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            "[a-z/~\"\\\\ é]{0,6}".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 40, 5, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
                proptest::collection::btree_map("[a-c/~0-9]{0,3}", inner, 0..5)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn pointers_agree_with_serde_json(
            doc in json(),
            steps in proptest::collection::vec("[a-c/~0-9]{0,3}|0|1|2|~0|~1", 0..4),
        ) {
            let text = serde_json::to_vec_pretty(&doc).unwrap();
            let p: String = steps.iter().map(|s| format!("/{s}")).collect();
            prop_assert_eq!(pointer(&text, &p).unwrap(), doc.pointer(&p).cloned(), "{}", p);
        }

        #[test]
        fn any_bytes_and_pointer_never_panic(
            doc in proptest::collection::vec(any::<u8>(), 0..200),
            p in "[ -~]{0,12}",
        ) {
            let _ = pointers(&doc, &[&p, "/a", ""]);
        }
    }
}
