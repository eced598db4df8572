//! `github-to-chat`: GitHub `push`, `pull_request` and `issues` events become a Slack
//! incoming-webhook message `{"text": ...}`; every other event is dropped.
//!
//! The transform itself is [`to_chat`], a plain function, so it can be tested and
//! benchmarked natively as well as inside the sandbox.

use hookyard_sdk::prelude::*;

/// Escapes the three characters Slack's mrkdwn reserves.
fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn str_at<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or("?")
}

/// Turns one GitHub event into a Slack message, or `None` for events it does not cover.
pub fn to_chat(event_type: &str, payload: &Value) -> Option<Value> {
    let repo = esc(str_at(payload, "/repository/full_name"));
    let text = match event_type {
        "push" => {
            let branch = str_at(payload, "/ref");
            let branch = esc(branch.strip_prefix("refs/heads/").unwrap_or(branch));
            let commits = payload["commits"].as_array().map_or(&[][..], Vec::as_slice);
            let mut text = format!(
                "{} pushed {} commit{} to `{}` in <{}|{}>",
                esc(str_at(payload, "/pusher/name")),
                commits.len(),
                if commits.len() == 1 { "" } else { "s" },
                branch,
                esc(str_at(payload, "/compare")),
                repo,
            );
            for commit in commits.iter().take(5) {
                let id = str_at(commit, "/id");
                let first_line = str_at(commit, "/message").lines().next().unwrap_or("");
                text.push_str(&format!(
                    "\n• `{}` {}",
                    &id[..id.len().min(7)],
                    esc(first_line)
                ));
            }
            text
        }
        "pull_request" | "issues" => {
            let (key, noun) = if event_type == "issues" {
                ("issue", "issue")
            } else {
                ("pull_request", "pull request")
            };
            let item = payload.get(key)?;
            format!(
                "{} {} {} <{}|#{} {}> in {}",
                esc(str_at(payload, "/sender/login")),
                esc(str_at(payload, "/action")),
                noun,
                esc(str_at(item, "/html_url")),
                item["number"].as_u64().unwrap_or(0),
                esc(str_at(item, "/title")),
                repo,
            )
        }
        _ => return None,
    };
    Some(json!({ "text": text }))
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
    let payload: Value = event.json()?;
    match to_chat(&event_type, &payload) {
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
        let text = to_chat("push", &payload).unwrap()["text"]
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
        let text = to_chat("pull_request", &payload).unwrap()["text"]
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
        assert!(to_chat("star", &json!({})).is_none());
    }
}
