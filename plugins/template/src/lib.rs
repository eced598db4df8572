//! `template`: reshape events into any JSON, emails or several outputs with MiniJinja
//! templates written in `router.toml`, no code.
//!
//! ```toml
//! [plugins.lead]
//! path = "plugins/dist/template.wasm"
//! [[plugins.lead.config.outputs]]
//! destination = "crm"                       # optional; else the route's `to`
//! when = "{{ body.email is defined }}"      # optional; the output is made when this renders true
//! method = "POST"                           # optional, with `path` and `headers`
//! path = "/crm/v3/objects/contacts/batch/upsert"
//! [plugins.lead.config.outputs.body]        # a tree: every string leaf is a template
//! inputs = [{ idProperty = "email", id = "{{ body.email }}", properties = { firstname = "{{ body.name }}" } }]
//! ```
//!
//! Templates see `body` (the parsed JSON, or the form fields of a form-encoded body),
//! `headers`, `event_type`, `route` and `id`. A leaf that is exactly one `{{ expression }}`
//! keeps the expression's type (a number stays a number); other leaves render to strings.
//! The tree is serialised as JSON, so values with quotes or newlines cannot break it.
//! Undefined variables are errors, and rendering has a fuel budget.

use std::collections::BTreeMap;

use hookyard_sdk::prelude::*;
use minijinja::{AutoEscape, Environment, ErrorKind, UndefinedBehavior};
use serde::Deserialize;

/// The plugin's configuration.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The outputs to make, in order.
    pub outputs: Vec<OutputSpec>,
    /// MiniJinja fuel per event (bounds loops and work in templates).
    #[serde(default = "default_fuel")]
    pub fuel: u64,
}

fn default_fuel() -> u64 {
    100_000
}

/// One output.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputSpec {
    /// Where it goes, instead of the route's `to`.
    pub destination: Option<String>,
    /// Made only when this renders to `true`.
    pub when: Option<String>,
    /// Default `application/json`; `application/vnd.hookyard.email+json` for an email.
    pub content_type: Option<String>,
    /// HTTP method for the destination.
    pub method: Option<String>,
    /// Appended to the destination's URL (a template).
    pub path: Option<String>,
    /// Extra request headers (values are templates).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// The body tree; every string leaf is a template.
    pub body: Value,
}

/// What templates see.
pub fn context(event: &Event) -> Value {
    let is_form = event
        .header("content-type")
        .is_some_and(|ct| ct.starts_with("application/x-www-form-urlencoded"));
    let body = if is_form {
        Value::Object(
            event
                .form()
                .into_iter()
                .map(|(k, v)| (k, Value::String(v)))
                .collect(),
        )
    } else {
        event
            .json::<Value>()
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&event.body).into_owned()))
    };
    let headers: serde_json::Map<String, Value> = event
        .headers
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    json!({
        "body": body,
        "headers": headers,
        "event_type": event.event_type,
        "route": event.route,
        "id": event.id,
    })
}

/// The content type of an email output, whose `html` leaf is escaped.
const EMAIL: &str = "application/vnd.hookyard.email+json";

/// The templates' environment. `html` escapes every value a template prints (for an email's
/// `html` leaf: a form field must not become markup); `|safe` opts a trusted value out.
fn environment(fuel: u64, html: bool) -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_fuel(Some(fuel));
    // `urlencode` keeps `/` and `.`, so an id of `../admin` would climb out of a path:
    // `path_segment` encodes both and refuses `.` and `..`.
    env.add_filter("path_segment", |value: minijinja::Value| {
        hookyard_sdk::path_segment(&value.to_string())
            .map_err(|e| minijinja::Error::new(ErrorKind::InvalidOperation, e.message))
    });
    if html {
        env.set_auto_escape_callback(|_| AutoEscape::Html);
    }
    env
}

/// The single expression of a leaf like `{{ body.total }}`, if that is all it is.
fn sole_expression(template: &str) -> Option<&str> {
    let inner = template.trim().strip_prefix("{{")?.strip_suffix("}}")?;
    (!inner.contains("{{") && !inner.contains("}}") && !inner.contains("{%"))
        .then_some(inner.trim())
}

/// MiniJinja's message, which names the position (`in <string>:LINE`).
fn describe(e: &minijinja::Error) -> String {
    e.to_string()
}

/// Renders one template leaf; `at` names it in errors.
fn render_leaf(env: &Environment<'_>, template: &str, ctx: &Value, at: &str) -> Result<Value> {
    let fail = |e: minijinja::Error| Error::new(format!("{at}: {}", describe(&e)));
    if let Some(expr) = sole_expression(template) {
        let value = env
            .compile_expression(expr)
            .map_err(fail)?
            .eval(ctx)
            .map_err(fail)?;
        if value.is_undefined() {
            return Err(Error::new(format!("{at}: undefined value in {expr:?}")));
        }
        return serde_json::to_value(&value).map_err(|e| Error::new(format!("{at}: {e}")));
    }
    env.render_str(template, ctx)
        .map(Value::String)
        .map_err(fail)
}

/// Renders every string leaf of `tree`.
fn render_tree(env: &Environment<'_>, tree: &Value, ctx: &Value, at: &str) -> Result<Value> {
    Ok(match tree {
        Value::String(t) => render_leaf(env, t, ctx, at)?,
        Value::Array(items) => Value::Array(
            items
                .iter()
                .enumerate()
                .map(|(i, v)| render_tree(env, v, ctx, &format!("{at}[{i}]")))
                .collect::<Result<_>>()?,
        ),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| Ok((k.clone(), render_tree(env, v, ctx, &format!("{at}.{k}"))?)))
                .collect::<Result<_>>()?,
        ),
        other => other.clone(),
    })
}

/// Makes the outputs `config` describes for `event`.
pub fn render(config: &Config, event: &Event) -> Result<Vec<Output>> {
    let ctx = context(event);
    let env = environment(config.fuel, false);
    let html_env = environment(config.fuel, true);
    let mut outputs = Vec::new();
    for (i, spec) in config.outputs.iter().enumerate() {
        let at = format!("output {}", i + 1);
        if let Some(when) = &spec.when {
            let fail = |e: minijinja::Error| Error::new(format!("{at}.when: {}", describe(&e)));
            let holds = match sole_expression(when) {
                Some(expr) => env
                    .compile_expression(expr)
                    .map_err(fail)?
                    .eval(&ctx)
                    .map_err(fail)?
                    .is_true(),
                None => env
                    .render_str(when, &ctx)
                    .map_err(fail)?
                    .trim()
                    .eq_ignore_ascii_case("true"),
            };
            if !holds {
                continue;
            }
        }
        let content_type = spec
            .content_type
            .clone()
            .unwrap_or_else(|| "application/json".into());
        let body = match (&spec.body, content_type == EMAIL) {
            // An email's `html` leaf always renders as escaped text, even when it is one
            // expression (which elsewhere keeps its type).
            (Value::Object(fields), true) => Value::Object(
                fields
                    .iter()
                    .map(|(k, v)| {
                        let place = format!("{at}.body.{k}");
                        let rendered = match (k.as_str(), v) {
                            ("html", Value::String(t)) => html_env
                                .render_str(t, &ctx)
                                .map(Value::String)
                                .map_err(|e| Error::new(format!("{place}: {}", describe(&e))))?,
                            _ => render_tree(&env, v, &ctx, &place)?,
                        };
                        Ok((k.clone(), rendered))
                    })
                    .collect::<Result<_>>()?,
            ),
            _ => render_tree(&env, &spec.body, &ctx, &format!("{at}.body"))?,
        };
        let mut out = Output::bytes(serde_json::to_vec(&body)?, &content_type);
        if let Some(d) = &spec.destination {
            out = out.to(d.clone());
        }
        if let Some(m) = &spec.method {
            out = out.method(m.clone());
        }
        if let Some(p) = &spec.path {
            let path = render_leaf(&env, p, &ctx, &format!("{at}.path"))?;
            out = out.path(
                path.as_str()
                    .map_or_else(|| path.to_string(), str::to_string),
            );
        }
        for (name, value) in &spec.headers {
            let v = env
                .render_str(value, &ctx)
                .map_err(|e| Error::new(format!("{at}.headers.{name}: {}", describe(&e))))?;
            out = out.header(name.clone(), v);
        }
        outputs.push(out);
    }
    Ok(outputs)
}

/// Parses the config and compiles every template, so `hookyard check` and a reload refuse a
/// broken one before any event meets it.
pub fn check(config: &Config) -> Result<()> {
    let env = environment(config.fuel, false);
    let compile = |t: &str, at: &str| -> Result<()> {
        let result = match sole_expression(t) {
            Some(expr) => env.compile_expression(expr).map(|_| ()),
            None => env.template_from_str(t).map(|_| ()),
        };
        result.map_err(|e| Error::new(format!("{at}: {}", describe(&e))))
    };
    fn leaves<'a>(tree: &'a Value, at: String, out: &mut Vec<(String, &'a str)>) {
        match tree {
            Value::String(s) => out.push((at, s)),
            Value::Array(items) => items
                .iter()
                .enumerate()
                .for_each(|(i, v)| leaves(v, format!("{at}[{i}]"), out)),
            Value::Object(map) => map
                .iter()
                .for_each(|(k, v)| leaves(v, format!("{at}.{k}"), out)),
            _ => {}
        }
    }
    for (i, spec) in config.outputs.iter().enumerate() {
        let at = format!("output {}", i + 1);
        let mut all = Vec::new();
        leaves(&spec.body, format!("{at}.body"), &mut all);
        for (place, t) in all {
            compile(t, &place)?;
        }
        if let Some(w) = &spec.when {
            compile(w, &format!("{at}.when"))?;
        }
        if let Some(p) = &spec.path {
            compile(p, &format!("{at}.path"))?;
        }
        for (name, v) in &spec.headers {
            compile(v, &format!("{at}.headers.{name}"))?;
        }
    }
    Ok(())
}

fn validate() -> Result<()> {
    check(&config()?)
}

#[plugin(validate = validate)]
fn handle(event: Event) -> Result<Vec<Output>> {
    let config: Config = config()?;
    let outputs = render(&config, &event)?;
    if outputs.is_empty() {
        return drop_event("no output's `when` held");
    }
    Ok(outputs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(v: Value) -> Config {
        serde_json::from_value(v).expect("config")
    }

    #[test]
    fn email_html_escapes_fields_unless_marked_safe_and_text_stays_plain() {
        let c = config(json!({"outputs": [{"content_type": EMAIL, "body": {
            "to": "{{ body.email }}",
            "subject": "Hello {{ body.name }}",
            "text": "Hello {{ body.name }}",
            "html": "<p>Hello {{ body.name }}</p>{{ '<hr>' | safe }}"
        }}, {"content_type": EMAIL, "body": {"to": "x@example.com", "subject": "s", "html": "{{ body.name }}"}}]}));
        let e = Event::new(
            r#"{"email":"ada@example.com","name":"<a href=https://evil.example>Reset</a>"}"#,
            &[("content-type", "application/json")],
            None,
        );
        let out = render(&c, &e).unwrap();
        let mail = out[0].body_json().unwrap();
        assert_eq!(
            mail["html"],
            "<p>Hello &lt;a href=https:&#x2f;&#x2f;evil.example&gt;Reset&lt;&#x2f;a&gt;</p><hr>"
        );
        assert_eq!(mail["text"], "Hello <a href=https://evil.example>Reset</a>");
        let sole = out[1].body_json().unwrap();
        assert!(
            sole["html"].as_str().unwrap().starts_with("&lt;a href"),
            "a sole expression is escaped too: {sole}"
        );
    }

    #[test]
    fn path_segment_keeps_an_id_inside_one_segment() {
        let c = config(
            json!({"outputs": [{"method": "DELETE", "path": "/contacts/{{ body.id | path_segment }}", "body": {}}]}),
        );
        let e = |id: &str| Event::new(json!({ "id": id }).to_string(), &[], None);
        let out = render(&c, &e("../../../admin/users/1")).unwrap();
        assert_eq!(
            out[0].path.as_deref(),
            Some("/contacts/%2E%2E%2F%2E%2E%2F%2E%2E%2Fadmin%2Fusers%2F1")
        );
        let err = render(&c, &e("..")).unwrap_err();
        assert!(err.message.contains("output 1.path"), "{err}");
        assert!(err.message.contains("cannot be a path segment"), "{err}");
    }

    #[test]
    fn leaves_render_with_types_kept_and_json_stays_valid() {
        let c = config(json!({"outputs": [{"body": {
            "inputs": [{"id": "{{ body.email }}", "properties": {"firstname": "{{ body.name }}", "score": "{{ body.score }}"}}],
            "note": "Lead from {{ body.name }}: {{ body.msg }}"
        }}]}));
        let e = Event::new(
            r#"{"email":"ada@example.com","name":"Ada \"Countess\"","score":42,"msg":"line1\nline2"}"#,
            &[("content-type", "application/json")],
            None,
        );
        let out = render(&c, &e).unwrap();
        let body = out[0].body_json().unwrap();
        assert_eq!(body["inputs"][0]["id"], "ada@example.com");
        assert_eq!(
            body["inputs"][0]["properties"]["score"], 42,
            "a sole expression keeps its type"
        );
        assert_eq!(body["note"], "Lead from Ada \"Countess\": line1\nline2");
    }

    #[test]
    fn when_filters_and_form_bodies_are_fields() {
        let c = config(json!({"outputs": [
            {"when": "{{ body.email is defined }}", "destination": "crm", "method": "PATCH", "path": "/contacts/{{ body.email | urlencode }}", "body": {"e": "{{ body.email }}"}},
            {"when": "{{ body.email is not defined }}", "body": {"missing": true}}
        ]}));
        let form = Event::new(
            "name=Ada&email=ada%40example.com",
            &[("content-type", "application/x-www-form-urlencoded")],
            None,
        );
        let out = render(&c, &form).unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].destination.as_deref(), Some("crm"));
        assert_eq!(out[0].method.as_deref(), Some("PATCH"));
        assert_eq!(out[0].path.as_deref(), Some("/contacts/ada%40example.com"));
        let none = Event::new(
            "name=Ada",
            &[("content-type", "application/x-www-form-urlencoded")],
            None,
        );
        assert_eq!(
            render(&c, &none).unwrap()[0].body_json().unwrap(),
            json!({"missing": true})
        );
    }

    #[test]
    fn check_finds_a_syntax_error_before_any_event() {
        let c = config(
            json!({"outputs": [{"body": {"ok": "{{ body.a }}", "list": ["x", "{% if %}"]}}]}),
        );
        let err = check(&c).unwrap_err().message;
        assert!(
            err.starts_with("output 1.body.list[1]: syntax error"),
            "{err}"
        );
        assert!(
            check(&config(
                json!({"outputs": [{"body": {"a": "{{ body.a | upper }}"}}]})
            ))
            .is_ok()
        );
    }

    #[test]
    fn undefined_variables_and_runaway_loops_are_errors_naming_the_place() {
        let c = config(json!({"outputs": [{"body": {"a": ["x", "{{ body.nope }}"]}}]}));
        let e = Event::new(r#"{}"#, &[], None);
        let err = render(&c, &e).unwrap_err().message;
        assert!(err.starts_with("output 1.body.a[1]: "), "{err}");
        assert!(err.contains("undefined"), "{err}");
        let c = config(
            json!({"fuel": 1000, "outputs": [{"body": {"a": "{% for i in range(100000) %}{{ i }}{% endfor %}"}}]}),
        );
        let err = render(&c, &e).unwrap_err().message;
        assert!(err.contains("fuel"), "{err}");
        let c = config(json!({"outputs": [{"body": {"a": "{{ body."}}]}));
        let err = render(&c, &e).unwrap_err().message;
        assert!(err.starts_with("output 1.body.a: syntax error"), "{err}");
    }
}
