//! Reading a few values out of a large JSON body without parsing all of it.
//!
//! [`pointer`] follows an RFC 6901 JSON pointer through the raw text: at each level it skims
//! the object or array, skipping every other member without building it, and parses only the
//! value it ends on. A webhook payload of several kilobytes costs a scan instead of a tree of
//! allocations, which in the sandbox is most of a small plugin's time.
//!
//! Skimming checks structure, not every token: strings must end, brackets must match, members
//! must be `"key": value` separated by commas, and nothing may follow the document. A value
//! the pointers reach is parsed in full (an invalid one is an error); a malformed number or
//! literal inside a skipped member is not noticed, as with simdjson's On-Demand API. That is
//! what makes the scan cheaper than a validating parse: the `filter` plugin on a 7.8 KB push
//! costs about a third less in the sandbox (`cargo bench -p hookyard --bench pipeline -- 7.8`).
//!
//! The scan also stops as soon as every pointer has its value: what follows is not read, so
//! it is not checked either (again as with On-Demand). A condition on a push's `ref`, its
//! first member, then costs the few bytes up to it instead of the whole payload. A pointer
//! that does not resolve is only known to be absent at the end, so the document is then read
//! (and its structure checked) to the end.

use std::borrow::Cow;
use std::ops::ControlFlow;

use serde::de::IgnoredAny;
use serde_json::Value;
use serde_json::value::RawValue;

use crate::{Error, Result};

/// The value at `pointer` in the JSON document `doc` (`""` is the whole document), or `None`
/// when a step does not resolve. A document whose structure is broken before the value (or,
/// when the pointer does not resolve, anywhere) is an error; so is a pointer that is neither
/// empty nor starts with `/`.
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
    let mut values: Vec<Option<&'a RawValue>> = vec![None; pointers.len()];
    let mut left = pointers.len();
    // Stopped or read to the end, `values` holds what there is.
    let _ = scan(doc, pointers, |i, value| {
        values[i] = Some(value);
        left -= 1;
        Ok(if left == 0 {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        })
    })?;
    Ok(values)
}

/// Reads the document once and hands each pointer's value to `seen` as the scan reaches it:
/// `seen(i, value)` for `pointers[i]`, in the order the values stand in the document (the
/// whole document, for `""`, first). A pointer that does not resolve is never handed over.
/// When `seen` answers [`ControlFlow::Break`] the scan stops there and the rest of the
/// document is not read; this is how a caller that has its answer (the first condition of
/// several that holds, say) skips the rest of a large body. Returns whether `seen` stopped
/// the scan. Structure up to where the scan stopped is checked as in [`pointer`]; an error
/// from `seen` ends the scan with that error.
pub fn scan<'a>(
    doc: &'a [u8],
    pointers: &[&str],
    mut seen: impl FnMut(usize, &'a RawValue) -> Result<ControlFlow<()>>,
) -> Result<ControlFlow<()>> {
    let mut paths: Vec<Vec<Cow<'_, str>>> = Vec::with_capacity(pointers.len());
    for p in pointers {
        if !(p.is_empty() || p.starts_with('/')) {
            return Err(Error::new(format!(
                "JSON pointer {p:?} must be empty or start with '/'"
            )));
        }
        paths.push(p.split('/').skip(1).map(unescape).collect());
    }
    // The whole document, when a pointer is empty, is parsed in full before anything else.
    if pointers.iter().any(|p| p.is_empty()) {
        let whole: &'a RawValue = serde_json::from_slice(doc)?;
        for i in (0..paths.len()).filter(|&i| paths[i].is_empty()) {
            if seen(i, whole)?.is_break() {
                return Ok(ControlFlow::Break(()));
            }
        }
    }
    // Every other pointer is followed down as the scan passes the members it names.
    let start = skim::ws(doc, 0);
    match doc.get(start) {
        Some(b'{' | b'[') => {
            let following: Vec<usize> =
                (0..paths.len()).filter(|&i| !paths[i].is_empty()).collect();
            // Only the value a pointer ends on is parsed in full; the containers on the way
            // are skimmed.
            let mut reached = |i: usize, text: &'a [u8]| -> Result<ControlFlow<()>> {
                seen(i, serde_json::from_slice::<&'a RawValue>(text)?)
            };
            match follow(doc, start, 0, &following, &paths, &mut reached)? {
                Scan::Stopped => Ok(ControlFlow::Break(())),
                Scan::End(end) if skim::ws(doc, end) == doc.len() => Ok(ControlFlow::Continue(())),
                Scan::End(end) => Err(skim::invalid(end, "trailing characters after the document")),
            }
        }
        _ => {
            serde_json::from_slice::<IgnoredAny>(doc)?;
            Ok(ControlFlow::Continue(()))
        }
    }
}

/// How far a skim went.
enum Scan {
    /// The container ends just before this index.
    End(usize),
    /// The caller had what it needed; the rest of the document was not read.
    Stopped,
}

/// Skims the object or array at `doc[open]`, following the pointers in `following` (indexes
/// into `paths`, each at token `depth`): the first member (or element) a token names is
/// taken, then either handed to `reached` (the pointer's last token) or followed into (the
/// pointer goes deeper), in the same pass. Returns where the container ends, or stops as soon
/// as `reached` says so.
fn follow<'a>(
    doc: &'a [u8],
    open: usize,
    depth: usize,
    following: &[usize],
    paths: &[Vec<Cow<'_, str>>],
    reached: &mut dyn FnMut(usize, &'a [u8]) -> Result<ControlFlow<()>>,
) -> Result<Scan> {
    let object = doc.get(open) == Some(&b'{');
    let close = if object { b'}' } else { b']' };
    let mut taken = vec![false; following.len()];
    let mut at = skim::ws(doc, open + 1);
    if doc.get(at) == Some(&close) {
        return Ok(Scan::End(at + 1));
    }
    let mut n = 0usize;
    loop {
        let key = if object {
            if doc.get(at) != Some(&b'"') {
                return Err(skim::invalid(at, "expected a member name"));
            }
            let key_end = skim::string_end(doc, at)?;
            let key = Key(&doc[at..key_end]);
            at = skim::ws(doc, key_end);
            if doc.get(at) != Some(&b':') {
                return Err(skim::invalid(at, "expected ':'"));
            }
            at = skim::ws(doc, at + 1);
            Some(key)
        } else {
            None
        };
        let mut here: Vec<usize> = Vec::new();
        let mut deeper: Vec<usize> = Vec::new();
        for (k, &i) in following.iter().enumerate() {
            let token = &paths[i][depth];
            let names = match &key {
                Some(key) => key.is(token),
                None => index(token) == Some(n),
            };
            if taken[k] || !names {
                continue;
            }
            taken[k] = true;
            if paths[i].len() == depth + 1 {
                here.push(i);
            } else {
                deeper.push(i);
            }
        }
        let end = match doc.get(at) {
            Some(b'{' | b'[') if !deeper.is_empty() => {
                match follow(doc, at, depth + 1, &deeper, paths, reached)? {
                    Scan::End(end) => end,
                    Scan::Stopped => return Ok(Scan::Stopped),
                }
            }
            _ => skim::value_end(doc, at)?,
        };
        for i in here {
            if reached(i, &doc[at..end])?.is_break() {
                return Ok(Scan::Stopped);
            }
        }
        n += 1;
        at = skim::ws(doc, end);
        match doc.get(at) {
            Some(b',') => at = skim::ws(doc, at + 1),
            Some(b) if *b == close => return Ok(Scan::End(at + 1)),
            _ => {
                return Err(skim::invalid(
                    at,
                    "expected ',' or the end of the container",
                ));
            }
        }
    }
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

/// A member name as it stands in the text, quotes included.
struct Key<'a>(&'a [u8]);

impl Key<'_> {
    /// Whether the name is `token`; a name with escapes is decoded first.
    fn is(&self, token: &str) -> bool {
        let inner = &self.0[1..self.0.len() - 1];
        if !inner.contains(&b'\\') {
            return inner == token.as_bytes();
        }
        serde_json::from_slice::<Cow<'_, str>>(self.0).is_ok_and(|name| name == token)
    }
}

/// Where JSON values end, found without parsing them.
mod skim {
    use crate::Error;

    /// An error naming the byte offset and what was wrong there.
    pub(super) fn invalid(at: usize, what: &str) -> Error {
        Error::new(format!("invalid JSON at byte {at}: {what}"))
    }

    /// The first index at or after `i` that is not JSON whitespace.
    pub(super) fn ws(doc: &[u8], mut i: usize) -> usize {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = doc.get(i) {
            i += 1;
        }
        i
    }

    const LOW: u64 = 0x0101_0101_0101_0101;

    /// The bytes of `x` equal to `b`, each marked by its top bit (the classic zero-byte test
    /// on `x ^ b...b`). Only the lowest mark is sure to be exact, which is all [`find`] uses.
    fn marks(x: u64, b: u8) -> u64 {
        let y = x ^ (LOW * b as u64);
        y.wrapping_sub(LOW) & !y & (LOW << 7)
    }

    /// The first index at or after `j` whose byte `marked` marks, eight bytes at a time; or
    /// where fewer than eight bytes are left, for the caller to go on byte by byte.
    fn find(doc: &[u8], mut j: usize, marked: impl Fn(u64) -> u64) -> usize {
        while let Some(bytes) = j.checked_add(8).and_then(|end| doc.get(j..end)) {
            let Ok(bytes) = <[u8; 8]>::try_from(bytes) else {
                break;
            };
            let m = marked(u64::from_le_bytes(bytes));
            if m != 0 {
                return j + (m.trailing_zeros() / 8) as usize;
            }
            j += 8;
        }
        j
    }

    /// `doc[i]` is `"`: the index just past the closing quote. String contents are most of a
    /// payload, so they are passed eight bytes at a time up to a quote or backslash.
    pub(super) fn string_end(doc: &[u8], i: usize) -> Result<usize, Error> {
        let mut j = i + 1;
        loop {
            j = find(doc, j, |x| marks(x, b'"') | marks(x, b'\\'));
            match doc.get(j) {
                Some(b'"') => return Ok(j + 1),
                Some(b'\\') => j += 2,
                Some(_) => j += 1,
                None => return Err(invalid(i, "unterminated string")),
            }
        }
    }

    /// `doc[i]` starts a value: the index just past it.
    pub(super) fn value_end(doc: &[u8], i: usize) -> Result<usize, Error> {
        match doc.get(i) {
            Some(b'"') => string_end(doc, i),
            Some(b'{' | b'[') => container_end(doc, i),
            Some(b'}' | b']' | b',' | b':') | None => Err(invalid(i, "expected a value")),
            Some(_) => {
                let mut j = i + 1;
                while let Some(b) = doc.get(j) {
                    if matches!(b, b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r') {
                        break;
                    }
                    j += 1;
                }
                Ok(j)
            }
        }
    }

    /// `doc[i]` opens an object or array: the index just past its matching close. Between
    /// strings only brackets matter, so runs of other bytes are passed eight at a time.
    fn container_end(doc: &[u8], i: usize) -> Result<usize, Error> {
        let mut open: Vec<u8> = Vec::with_capacity(16);
        let mut j = i;
        loop {
            // `| 0x20` maps `[` onto `{` and `]` onto `}`, and no other byte onto either.
            j = find(doc, j, |x| {
                let folded = x | (LOW * 0x20);
                marks(x, b'"') | marks(folded, b'{') | marks(folded, b'}')
            });
            match doc.get(j) {
                None => return Err(invalid(i, "unterminated object or array")),
                Some(b'"') => {
                    j = string_end(doc, j)?;
                    continue;
                }
                Some(b'{') => open.push(b'}'),
                Some(b'[') => open.push(b']'),
                Some(&b @ (b'}' | b']')) => {
                    if open.pop() != Some(b) {
                        return Err(invalid(j, "mismatched bracket"));
                    }
                    if open.is_empty() {
                        return Ok(j + 1);
                    }
                }
                Some(_) => {}
            }
            j += 1;
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
    fn pointers_into_one_subtree_and_repeated_names_take_the_first_member() {
        let doc = br#"{"a":{"b":[1,{"c":2}],"d":3},"a":{"d":4},"e":[{"f":5},{"f":6}]}"#;
        assert_eq!(
            pointers(doc, &["/a/d", "/a", "/a/b/1/c", "/e/1/f", "/e/0", "/a/b/2"]).unwrap(),
            [
                Some(json!(3)),
                Some(json!({"b": [1, {"c": 2}], "d": 3})),
                Some(json!(2)),
                Some(json!(6)),
                Some(json!({"f": 5})),
                None,
            ]
        );
    }

    #[test]
    fn skipped_members_are_checked_for_structure_not_every_token() {
        // Structure is checked up to the value a pointer needs...
        for bad in [
            &br#"{"b":[1,2},"a":1}"#[..],
            br#"{"b":"open,"a":1}"#,
            br#"{"b" 2,"a":1}"#,
            br#"{"b":2 "a":1}"#,
            br#"{"b":{"c":[}]},"a":1}"#,
            br#"[1,2"#,
        ] {
            assert!(
                pointer(bad, "/a").is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        // ...and, for a pointer that does not resolve, to the end of the document.
        for bad in [
            &br#"{"a":1,"b":[1,2}"#[..],
            br#"{"a":1,"b":"open}"#,
            br#"{"a":1 "b":2}"#,
            br#"{"a":{"c":1},"b":{"c":[}]}}"#,
        ] {
            assert!(
                pointers(bad, &["/a", "/missing"]).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
            assert!(
                pointer(bad, "/a/missing").is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        // ...a value the pointer reaches is parsed in full...
        assert!(pointer(br#"{"a":tru,"b":2}"#, "/a").is_err());
        // ...and a malformed literal in a skipped member is not looked at.
        assert_eq!(
            pointer(br#"{"b":tru,"a":[1,{"x":"\\"}]}"#, "/a/1/x").unwrap(),
            Some(json!("\\"))
        );
    }

    #[test]
    fn the_scan_stops_once_every_pointer_has_its_value() {
        // Nothing after the last value needed is read: not even a broken tail.
        let doc = br#"{"ref":"refs/heads/main","pusher":{"name":"octo","x":[}"#;
        assert_eq!(
            pointers(doc, &["/pusher/name", "/ref"]).unwrap(),
            [Some(json!("octo")), Some(json!("refs/heads/main"))]
        );
        assert_eq!(
            pointer(br#"{"a":1} trailing"#, "/a").unwrap(),
            Some(json!(1))
        );
        // A container a pointer ends on is read to its end, and checked.
        assert!(pointers(br#"{"p":{"n":1,"x":[}}"#, &["/p/n", "/p"]).is_err());
        // The whole document (`""`) is always parsed in full.
        assert!(pointers(br#"{"a":1,"b":[}"#, &["/a", ""]).is_err());
    }

    #[test]
    fn scan_hands_over_values_in_document_order_until_told_to_stop() {
        let doc = br#"{"a":1,"b":{"c":2},"d":3,"broken":[}"#;
        let mut seen = Vec::new();
        let stopped = scan(doc, &["/d", "/b/c", "/a", "/missing"], |i, v| {
            seen.push((i, v.get().to_string()));
            Ok(if i == 0 {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            })
        })
        .unwrap();
        assert!(stopped.is_break());
        assert_eq!(
            seen,
            [
                (2, "1".to_string()),
                (1, "2".to_string()),
                (0, "3".to_string())
            ]
        );
        // Never told to stop, the scan reads to the end and finds the broken tail.
        assert!(scan(doc, &["/a"], |_, _| Ok(ControlFlow::Continue(()))).is_err());
        // An error from the caller ends the scan with that error.
        let err = scan(doc, &["/a"], |_, _| Err(Error::new("no thanks"))).unwrap_err();
        assert_eq!(err.message, "no thanks");
    }

    #[test]
    fn bad_documents_and_pointers_are_errors() {
        assert!(pointer(b"{not json", "/a").is_err());
        assert!(pointer(br#"{"a":1} trailing"#, "/b").is_err());
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
            let p: String = steps.iter().map(|s| format!("/{s}")).collect();
            for text in [serde_json::to_vec_pretty(&doc).unwrap(), serde_json::to_vec(&doc).unwrap()] {
                prop_assert_eq!(pointer(&text, &p).unwrap(), doc.pointer(&p).cloned(), "{}", p);
            }
        }

        #[test]
        fn several_pointers_at_once_agree_with_serde_json(
            doc in json(),
            paths in proptest::collection::vec(
                proptest::collection::vec("[a-c/~0-9]{0,3}|0|1|2|~0|~1", 0..4),
                1..5,
            ),
        ) {
            let text = serde_json::to_vec(&doc).unwrap();
            let ps: Vec<String> = paths
                .iter()
                .map(|steps| steps.iter().map(|s| format!("/{s}")).collect())
                .collect();
            let refs: Vec<&str> = ps.iter().map(String::as_str).collect();
            let got = pointers(&text, &refs).unwrap();
            for (p, got) in ps.iter().zip(got) {
                prop_assert_eq!(got, doc.pointer(p).cloned(), "{}", p);
            }
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
