//! `github-to-chat`: GitHub `push`, `pull_request` and `issues` events become a Slack
//! incoming-webhook message `{"text": ...}`; every other event is dropped.
//!
//! The transform itself is [`to_chat`], a plain function, so it can be tested and
//! benchmarked natively as well as inside the sandbox. It reads only the fields it uses into
//! small structs (serde skims the rest of a push payload), rather than the whole payload into
//! a `Value`.

use hookyard_sdk::prelude::*;
use std::fmt;
use std::marker::PhantomData;

use serde::Deserialize;
use serde::de::value::MapAccessDeserializer;
use serde::de::{self, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

/// Escapes the three characters Slack's mrkdwn reserves.
fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A field read as `T` when it has that shape and as absent otherwise, as
/// `Value::pointer(..).and_then(Value::as_str)` would read it: a payload with an odd field
/// still makes a message (with `?` there) instead of failing.
struct Lenient<T>(Option<T>);

impl<T> Default for Lenient<T> {
    fn default() -> Self {
        Lenient(None)
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Lenient<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> core::result::Result<Self, D::Error> {
        let raw: &'de RawValue = Deserialize::deserialize(d)?;
        Ok(Lenient(serde_json::from_str(raw.get()).ok()))
    }
}

impl Lenient<String> {
    fn text(&self) -> &str {
        self.0.as_deref().unwrap_or("?")
    }
}

/// An object-valued field read as `T` (a struct of lenient fields) in the same pass as the
/// rest of the payload; any other JSON value reads as absent.
struct Object<T>(Option<T>);

impl<T> Default for Object<T> {
    fn default() -> Self {
        Object(None)
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Object<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> core::result::Result<Self, D::Error> {
        d.deserialize_any(Shaped::<T, Object<T>>(PhantomData))
    }
}

/// An array-valued field read as a list of `T` in the same pass; any other value reads as
/// absent.
struct List<T>(Option<Vec<T>>);

impl<T> Default for List<T> {
    fn default() -> Self {
        List(None)
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for List<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> core::result::Result<Self, D::Error> {
        d.deserialize_any(Shaped::<T, List<T>>(PhantomData))
    }
}

/// Reads an object into [`Object`] or an array into [`List`], and skips anything else.
struct Shaped<T, S>(PhantomData<(T, S)>);

/// How [`Shaped`] builds its result from an object, an array, or neither.
trait Shape<T>: Default {
    fn from_map<'de, A: MapAccess<'de>>(map: A) -> core::result::Result<Self, A::Error>
    where
        T: Deserialize<'de>;
    fn from_seq<'de, A: SeqAccess<'de>>(seq: A) -> core::result::Result<Self, A::Error>
    where
        T: Deserialize<'de>;
}

impl<T> Shape<T> for Object<T> {
    fn from_map<'de, A: MapAccess<'de>>(map: A) -> core::result::Result<Self, A::Error>
    where
        T: Deserialize<'de>,
    {
        T::deserialize(MapAccessDeserializer::new(map)).map(|t| Object(Some(t)))
    }
    fn from_seq<'de, A: SeqAccess<'de>>(mut seq: A) -> core::result::Result<Self, A::Error>
    where
        T: Deserialize<'de>,
    {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Object(None))
    }
}

impl<T> Shape<T> for List<T> {
    fn from_map<'de, A: MapAccess<'de>>(mut map: A) -> core::result::Result<Self, A::Error>
    where
        T: Deserialize<'de>,
    {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(List(None))
    }
    fn from_seq<'de, A: SeqAccess<'de>>(mut seq: A) -> core::result::Result<Self, A::Error>
    where
        T: Deserialize<'de>,
    {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<T>()? {
            items.push(item);
        }
        Ok(List(Some(items)))
    }
}

impl<'de, T: Deserialize<'de>, S: Shape<T>> Visitor<'de> for Shaped<T, S> {
    type Value = S;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> core::result::Result<S, A::Error> {
        S::from_map(map)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> core::result::Result<S, A::Error> {
        S::from_seq(seq)
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> core::result::Result<S, E> {
        Ok(S::default())
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> core::result::Result<S, E> {
        Ok(S::default())
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> core::result::Result<S, E> {
        Ok(S::default())
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> core::result::Result<S, E> {
        Ok(S::default())
    }
    fn visit_str<E: de::Error>(self, _: &str) -> core::result::Result<S, E> {
        Ok(S::default())
    }
    fn visit_unit<E: de::Error>(self) -> core::result::Result<S, E> {
        Ok(S::default())
    }
    fn visit_none<E: de::Error>(self) -> core::result::Result<S, E> {
        Ok(S::default())
    }
}

/// The parts of a GitHub payload the messages use, read in one pass; serde skips everything
/// else without building it.
#[derive(Deserialize, Default)]
#[serde(default)]
struct Payload {
    #[serde(rename = "ref")]
    git_ref: Lenient<String>,
    compare: Lenient<String>,
    pusher: Object<Pusher>,
    repository: Object<Repository>,
    commits: List<Object<Commit>>,
    sender: Object<Sender>,
    action: Lenient<String>,
    pull_request: Object<Item>,
    issue: Object<Item>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Pusher {
    name: Lenient<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Repository {
    full_name: Lenient<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Commit {
    id: Lenient<String>,
    message: Lenient<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Sender {
    login: Lenient<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Item {
    number: Lenient<u64>,
    title: Lenient<String>,
    html_url: Lenient<String>,
}

fn name_of(pusher: &Object<Pusher>) -> &str {
    pusher.0.as_ref().map_or("?", |p| p.name.text())
}

/// Turns one GitHub event (its type and JSON body) into a Slack message, or `None` for
/// events it does not cover. A body that is not a JSON object is an error.
pub fn to_chat(event_type: &str, body: &[u8]) -> Result<Option<Value>> {
    let payload: Payload = serde_json::from_slice(body)?;
    let repo = esc(payload
        .repository
        .0
        .as_ref()
        .map_or("?", |r| r.full_name.text()));
    let text = match event_type {
        "push" => {
            let branch = payload.git_ref.text();
            let branch = esc(branch.strip_prefix("refs/heads/").unwrap_or(branch));
            let commits = payload.commits.0.as_deref().unwrap_or(&[]);
            let mut text = format!(
                "{} pushed {} commit{} to `{}` in <{}|{}>",
                esc(name_of(&payload.pusher)),
                commits.len(),
                if commits.len() == 1 { "" } else { "s" },
                branch,
                esc(payload.compare.text()),
                repo,
            );
            for commit in commits.iter().take(5) {
                let (id, message) = commit
                    .0
                    .as_ref()
                    .map_or(("?", "?"), |c| (c.id.text(), c.message.text()));
                let first_line = message.lines().next().unwrap_or("");
                let short: String = id.chars().take(7).collect();
                text.push_str(&format!("\n• `{short}` {}", esc(first_line)));
            }
            text
        }
        "pull_request" | "issues" => {
            let (item, noun) = if event_type == "issues" {
                (&payload.issue, "issue")
            } else {
                (&payload.pull_request, "pull request")
            };
            let Some(item) = &item.0 else {
                return Ok(None);
            };
            format!(
                "{} {} {} <{}|#{} {}> in {}",
                esc(payload.sender.0.as_ref().map_or("?", |s| s.login.text())),
                esc(payload.action.text()),
                noun,
                esc(item.html_url.text()),
                item.number.0.unwrap_or(0),
                esc(item.title.text()),
                repo,
            )
        }
        _ => return Ok(None),
    };
    Ok(Some(json!({ "text": text })))
}

#[plugin]
fn handle(event: Event) -> Result<Vec<Output>> {
    let Some(event_type) = event
        .event_type
        .clone()
        .or_else(|| event.header("x-github-event").map(str::to_string))
    else {
        return Err(Error::new("not a GitHub event: no X-GitHub-Event header"));
    };
    match to_chat(&event_type, &event.body)? {
        Some(message) => Ok(vec![Output::json(&message)?]),
        None => Ok(vec![]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_lists_commits_and_escapes_markup() {
        let payload = json!({
            "ref": "refs/heads/main",
            "compare": "https://github.com/o/r/compare/a...b",
            "pusher": {"name": "octo<cat>"},
            "repository": {"full_name": "o/r"},
            "commits": [{"id": "0123456789abcdef", "message": "fix & test\n\nbody"}]
        });
        let text = to_chat("push", &payload.to_string().into_bytes())
            .unwrap()
            .unwrap()["text"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(
            text.starts_with("octo&lt;cat&gt; pushed 1 commit to `main`"),
            "{text}"
        );
        assert!(text.contains("• `0123456` fix &amp; test"), "{text}");
    }

    #[test]
    fn pull_request_names_action_and_number() {
        let payload = json!({
            "action": "opened",
            "sender": {"login": "alice"},
            "repository": {"full_name": "o/r"},
            "pull_request": {"number": 7, "title": "Add x", "html_url": "https://github.com/o/r/pull/7"}
        });
        let text = to_chat("pull_request", &payload.to_string().into_bytes())
            .unwrap()
            .unwrap()["text"]
            .as_str()
            .unwrap()
            .to_string();
        assert_eq!(
            text,
            "alice opened pull request <https://github.com/o/r/pull/7|#7 Add x> in o/r"
        );
    }

    #[test]
    fn other_events_are_dropped() {
        assert!(to_chat("star", b"{}").unwrap().is_none());
        assert!(
            to_chat("pull_request", b"{}").unwrap().is_none(),
            "no pull_request"
        );
        assert!(to_chat("push", b"not json").is_err());
    }

    #[test]
    fn odd_fields_read_as_question_marks_and_the_real_example_reads_whole() {
        let odd = json!({"ref": 5, "pusher": "x", "commits": [{"id": 1}, "y"], "repository": {}});
        let text = to_chat("push", &odd.to_string().into_bytes())
            .unwrap()
            .unwrap()["text"]
            .as_str()
            .unwrap()
            .to_string();
        assert_eq!(text, "? pushed 2 commits to `?` in <?|?>\n• `?` ?\n• `?` ?");
        let example = include_bytes!("../../../examples/github-push.json");
        let text = to_chat("push", example).unwrap().unwrap()["text"]
            .as_str()
            .unwrap()
            .to_string();
        let payload: Value = serde_json::from_slice(example).unwrap();
        assert!(
            text.starts_with(&format!(
                "{} pushed {} commit",
                payload["pusher"]["name"].as_str().unwrap(),
                payload["commits"].as_array().unwrap().len()
            )),
            "{text}"
        );
        assert!(
            text.contains(payload["repository"]["full_name"].as_str().unwrap()),
            "{text}"
        );
    }
}
