//! SMTP destinations against a real SMTP server (Python's aiosmtpd, started by the test):
//! multipart text+HTML with a UTF-8 subject, a 451 retried with the same Message-ID, a 550
//! dead-lettered with the server's reply, header injection refused before anything is sent.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::support::*;

/// A running aiosmtpd server; each message it receives is a JSON file in `out`.
pub struct SmtpServer {
    pub port: u16,
    out: tempfile::TempDir,
    child: Child,
}

impl SmtpServer {
    pub fn start(replies: &str) -> SmtpServer {
        let port = free_port();
        let out = tempfile::tempdir().unwrap();
        let mut child = Command::new("python3")
            .arg(workspace().join("tests/smtp/server.py"))
            .args(["--port", &port.to_string(), "--replies", replies, "--out"])
            .arg(out.path())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start aiosmtpd (pip install -r tests/sdk/requirements.txt)");
        let mut ready = String::new();
        use std::io::BufRead;
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut ready)
            .unwrap();
        assert_eq!(ready.trim(), "ready", "the SMTP server did not start");
        SmtpServer { port, out, child }
    }

    pub fn messages(&self) -> Vec<serde_json::Value> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(self.out.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        files.sort();
        files
            .iter()
            .map(|f| serde_json::from_slice(&std::fs::read(f).unwrap()).unwrap())
            .collect()
    }

    pub async fn wait_for(&self, n: usize) -> Vec<serde_json::Value> {
        eventually(
            &format!("{n} message(s) at the SMTP server"),
            Duration::from_secs(30),
            || self.messages().len() >= n,
        )
        .await;
        self.messages()
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn config(smtp: &SmtpServer) -> String {
    format!(
        r#"{SERVER}
[plugins.mailer]
path = "{}"

[destinations.mail]
smtp = "smtp://127.0.0.1:{}"
from = "Hookyard <hooks@example.com>"
reply_to = "sales@example.com"
helo_name = "hooks.example.com"
retry = {{ schedule = ["100ms", "100ms", "100ms"] }}

[[routes]]
name = "in"
verify = {{ scheme = "none" }}
steps = ["mailer"]
to = ["mail"]
"#,
        plugin("misbehave").display(),
        smtp.port
    )
}

fn email(value: serde_json::Value) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({ "mode": "email", "email": value })).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_text_and_html_email_with_a_utf8_subject_arrives_whole() {
    let smtp = SmtpServer::start("");
    let router = Router::start(&config(&smtp)).expect("router starts");
    let body = email(serde_json::json!({
        "to": ["Ada Lovelace <ada@example.com>"],
        "cc": ["grace@example.com"],
        "subject": "Bienvenue, Zoë — ça marche ✓",
        "text": "Hello Ada,\nwelcome aboard.",
        "html": "<p>Hello <b>Ada</b>, welcome aboard.</p>",
        "headers": { "X-Campaign": "welcome" }
    }));
    assert_eq!(post(&router, "in", &[], &body).await.0, 202);
    let got = smtp.wait_for(1).await;
    let m = &got[0];
    assert_eq!(m["subject"], "Bienvenue, Zoë — ça marche ✓");
    let raw = m["raw"].as_str().unwrap();
    let subject_line = raw.lines().find(|l| l.starts_with("Subject:")).unwrap();
    assert!(
        subject_line.contains("=?utf-8?b?") && subject_line.is_ascii(),
        "not RFC 2047 encoded: {subject_line}"
    );
    assert_eq!(
        m["parts"],
        serde_json::json!(["multipart/alternative", "text/plain", "text/html"])
    );
    assert_eq!(
        m["text"].as_str().unwrap().replace("\r\n", "\n").trim_end(),
        "Hello Ada,\nwelcome aboard."
    );
    assert_eq!(
        m["html"].as_str().unwrap().trim_end(),
        "<p>Hello <b>Ada</b>, welcome aboard.</p>"
    );
    assert_eq!(m["from"], "Hookyard <hooks@example.com>");
    assert_eq!(m["reply_to"], "sales@example.com");
    assert_eq!(
        m["rcpt_tos"],
        serde_json::json!(["ada@example.com", "grace@example.com"])
    );
    assert!(m["raw"].as_str().unwrap().contains("X-Campaign: welcome"));
    let delivery: String = router
        .db()
        .query_row("SELECT id FROM deliveries", [], |r| r.get(0))
        .unwrap();
    assert_eq!(m["message_id"], format!("<{delivery}@hookyard>"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_451_is_retried_with_the_same_message_id_and_a_550_is_a_dead_letter() {
    let smtp = SmtpServer::start("451,250,550");
    let router = Router::start(&config(&smtp)).expect("router starts");
    let first =
        email(serde_json::json!({"to": ["ada@example.com"], "subject": "One", "text": "1"}));
    assert_eq!(post(&router, "in", &[], &first).await.0, 202);
    let got = smtp.wait_for(2).await;
    assert_eq!(
        (got[0]["code"].as_u64(), got[1]["code"].as_u64()),
        (Some(451), Some(250))
    );
    assert_eq!(
        got[0]["message_id"], got[1]["message_id"],
        "the Message-ID is stable across retries"
    );
    eventually("delivered", Duration::from_secs(10), || {
        router.count("SELECT COUNT(*) FROM deliveries WHERE status = 'delivered'") == 1
    })
    .await;

    let second =
        email(serde_json::json!({"to": ["nobody@example.com"], "subject": "Two", "text": "2"}));
    assert_eq!(post(&router, "in", &[], &second).await.0, 202);
    let reason = dead_letter_reason(&router).await;
    assert!(
        reason.contains("550") && reason.contains("Mailbox unavailable"),
        "{reason}"
    );
    assert_eq!(
        smtp.messages().len(),
        3,
        "a permanent failure is not retried"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn header_injection_and_non_email_outputs_never_reach_the_server() {
    let smtp = SmtpServer::start("");
    let router = Router::start(&config(&smtp)).expect("router starts");
    let injected = email(serde_json::json!({
        "to": ["Ada\r\nBcc: victim@example.com <ada@example.com>"],
        "subject": "Hi",
        "text": "x"
    }));
    assert_eq!(post(&router, "in", &[], &injected).await.0, 202);
    let reason = dead_letter_reason(&router).await;
    assert_eq!(reason, "refused: to contains a line break");
    let subject = email(
        serde_json::json!({"to": ["ada@example.com"], "subject": "Hi\nBcc: x@example.com", "text": "x"}),
    );
    assert_eq!(post(&router, "in", &[], &subject).await.0, 202);
    eventually("two dead letters", Duration::from_secs(10), || {
        router.count("SELECT COUNT(*) FROM deliveries WHERE status = 'dead'") == 2
    })
    .await;
    let not_email = br#"{"mode":"ok","text":"plain JSON"}"#;
    assert_eq!(post(&router, "in", &[], not_email).await.0, 202);
    eventually("three dead letters", Duration::from_secs(10), || {
        router.count("SELECT COUNT(*) FROM deliveries WHERE status = 'dead'") == 3
    })
    .await;
    let reasons: Vec<String> = {
        let db = router.db();
        let mut stmt = db
            .prepare("SELECT last_error FROM deliveries ORDER BY seq")
            .unwrap();
        stmt.query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    };
    assert_eq!(reasons[1], "refused: subject contains a line break");
    assert!(
        reasons[2].starts_with("not an email: content type \"application/json\""),
        "{}",
        reasons[2]
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        smtp.messages().is_empty(),
        "nothing reached the SMTP server"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn starttls_required_means_nothing_goes_out_in_plain_text() {
    // This server offers no STARTTLS; the destination requires it.
    let smtp = SmtpServer::start("");
    let config = config(&smtp).replace(
        "helo_name = \"hooks.example.com\"",
        "helo_name = \"hooks.example.com\"\ntls = \"starttls\"",
    );
    let router = Router::start(&config).expect("router starts");
    let body =
        email(serde_json::json!({"to": ["ada@example.com"], "subject": "Secret", "text": "x"}));
    assert_eq!(post(&router, "in", &[], &body).await.0, 202);
    let reason = dead_letter_reason(&router).await;
    assert!(reason.to_lowercase().contains("tls"), "{reason}");
    assert!(smtp.messages().is_empty(), "nothing was sent without TLS");
}
