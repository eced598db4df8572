//! What every scheme checks, in words: the list `hookyard providers` prints and the table at
//! the top of docs/providers.md (a test keeps the two the same). Presets are described from
//! their rows in the table, so a new row is listed without more code.

use crate::config::{
    Check, Handshake, HmacAlgorithm, KeyForm, Locate, PRESETS, Piece, Preset, SigFormat,
    SignatureEncoding, Stamp, TimeFormat,
};

/// One scheme, described.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The `scheme` name.
    pub scheme: String,
    /// Who sends such requests.
    pub provider: String,
    /// What proves a request authentic.
    pub proof: String,
    /// What the proof covers.
    pub signed: String,
    /// What stops an old request being replayed.
    pub replay: String,
    /// Where the delivery id (for dedup) is.
    pub delivery_id: String,
    /// The endpoint check the router answers itself.
    pub handshake: String,
    /// The `verify` keys a route must set, in the provider's words where it has them.
    pub keys: String,
}

/// An entry from its cells, in [`Entry`]'s field order.
fn entry(cells: [&str; 8]) -> Entry {
    let [
        scheme,
        provider,
        proof,
        signed,
        replay,
        delivery_id,
        handshake,
        keys,
    ] = cells;
    Entry {
        scheme: scheme.into(),
        provider: provider.into(),
        proof: proof.into(),
        signed: signed.into(),
        replay: replay.into(),
        delivery_id: delivery_id.into(),
        handshake: handshake.into(),
        keys: keys.into(),
    }
}

/// The built-in schemes (their code is in this module's siblings), then every preset.
pub fn entries() -> Vec<Entry> {
    let mut all = vec![
        entry([
            "github",
            "GitHub",
            "HMAC-SHA256 hex in `X-Hub-Signature-256` (`sha256=`)",
            "`{body}`",
            "dedup",
            "`X-GitHub-Delivery`",
            "-",
            "`secret` (Secret)",
        ]),
        entry([
            "stripe",
            "Stripe",
            "HMAC-SHA256 hex `v1` in `Stripe-Signature`",
            "`{t}.{body}`",
            "timestamp ±5m, dedup",
            "`/id`",
            "-",
            "`secret` (Signing secret, `whsec_...`)",
        ]),
        entry([
            "shopify",
            "Shopify",
            "HMAC-SHA256 base64 in `X-Shopify-Hmac-Sha256`",
            "`{body}`",
            "dedup",
            "`X-Shopify-Webhook-Id`",
            "-",
            "`secret` (API secret key)",
        ]),
        entry([
            "slack",
            "Slack",
            "HMAC-SHA256 hex in `X-Slack-Signature` (`v0=`)",
            "`v0:{timestamp}:{body}`",
            "timestamp ±5m, dedup",
            "`/event_id`",
            "`url_verification` answered",
            "`secret` (Signing Secret)",
        ]),
        entry([
            "meta",
            "Meta (WhatsApp, Instagram, Messenger)",
            "HMAC-SHA256 hex in `X-Hub-Signature-256` (`sha256=`)",
            "`{body}`",
            "-",
            "-",
            "`GET ?hub.challenge` answered when `hub.verify_token` matches",
            "`secret` (App Secret), `verify_token` (Verify Token)",
        ]),
        entry([
            "zoom",
            "Zoom",
            "HMAC-SHA256 hex in `x-zm-signature` (`v0=`)",
            "`v0:{timestamp}:{body}`",
            "timestamp ±5m",
            "-",
            "`endpoint.url_validation` answered",
            "`secret` (Secret Token)",
        ]),
        entry([
            "microsoft-graph",
            "Microsoft Graph",
            "`clientState` in every notification",
            "-",
            "-",
            "-",
            "`?validationToken=` echoed",
            "`secret` (clientState)",
        ]),
        entry([
            "dropbox",
            "Dropbox",
            "HMAC-SHA256 hex in `X-Dropbox-Signature`",
            "`{body}`",
            "-",
            "-",
            "`GET ?challenge=` echoed",
            "`secret` (App secret)",
        ]),
        entry([
            "twilio",
            "Twilio",
            "HMAC-SHA1 base64 in `X-Twilio-Signature`",
            "`{url}` + sorted form fields, or `bodySHA256`",
            "dedup",
            "`I-Twilio-Idempotency-Token`",
            "-",
            "`secret` (Auth Token), `public_url`",
        ]),
        entry([
            "standard-webhooks",
            "Standard Webhooks senders",
            "HMAC-SHA256 base64 `v1,` in `webhook-signature`",
            "`{id}.{timestamp}.{body}`",
            "timestamp ±5m, dedup",
            "`webhook-id`",
            "-",
            "`secret` (`whsec_...`)",
        ]),
        entry([
            "svix",
            "Svix senders",
            "HMAC-SHA256 base64 `v1,` in `svix-signature`",
            "`{id}.{timestamp}.{body}`",
            "timestamp ±5m, dedup",
            "`svix-id`",
            "-",
            "`secret` (Signing Secret, `whsec_...`)",
        ]),
        entry([
            "hmac",
            "any HMAC sender",
            "HMAC (SHA-1/256/512, hex/base64) in `header`",
            "`signed_content` (default `{body}`)",
            "timestamp if `timestamp_header`",
            "`dedup`",
            "-",
            "`secret`, `header`",
        ]),
        entry([
            "token",
            "any sender with a shared token",
            "the secret in `header` or `query`",
            "-",
            "-",
            "`dedup`",
            "-",
            "`secret`, `header` or `query`",
        ]),
        entry([
            "basic",
            "any sender with Basic auth",
            "HTTP Basic",
            "-",
            "-",
            "`dedup`",
            "-",
            "`secret` (password), `username`",
        ]),
    ];
    all.extend(PRESETS.iter().map(describe));
    all
}

fn code(s: &str) -> String {
    format!("`{s}`")
}

fn algorithm(a: HmacAlgorithm) -> &'static str {
    match a {
        HmacAlgorithm::Sha1 => "HMAC-SHA1",
        HmacAlgorithm::Sha256 => "HMAC-SHA256",
        HmacAlgorithm::Sha512 => "HMAC-SHA512",
    }
}

fn locate(at: Locate) -> String {
    match at {
        Locate::Nowhere => "-".into(),
        Locate::Header(h) => code(h),
        Locate::Body(p) => code(p),
    }
}

/// A preset's row, in words.
pub fn describe(p: &Preset) -> Entry {
    let secret = format!("`secret` ({})", p.secret_word);
    let (proof, signed, replay, keys) = match &p.check {
        Check::Hmac(rule) => {
            let encoding = match rule.encoding {
                SignatureEncoding::Hex => "hex",
                SignatureEncoding::Base64 => "base64",
            };
            let place = match rule.format {
                SigFormat::Single { prefix: "" } => {
                    format!("in {}", headers(rule.headers))
                }
                SigFormat::Single { prefix } | SigFormat::List { prefix, .. } => {
                    format!("in {} (`{prefix}`)", headers(rule.headers))
                }
                SigFormat::Pairs { signature, .. } => {
                    format!("`{signature}=` in {}", headers(rule.headers))
                }
                SigFormat::BodyField(pointer) => format!("at `{pointer}` in the body"),
            };
            let key = match rule.key {
                KeyForm::Raw => "",
                KeyForm::Base64 => ", base64 key",
            };
            let signed = rule
                .signed
                .iter()
                .map(|piece| match piece {
                    Piece::Body => "{body}".to_string(),
                    Piece::Timestamp => "{timestamp}".to_string(),
                    Piece::Lit(s) => s.to_string(),
                    Piece::Header(h) => format!("{{{h}}}"),
                    Piece::BodyField(f) => format!("{{{f}}}"),
                    Piece::Url => "{url}".to_string(),
                    Piece::Method => "{method}".to_string(),
                })
                .collect::<String>();
            let mut keys = secret.clone();
            if rule.signs_url() {
                keys.push_str(", `public_url`");
            }
            (
                format!("{} {encoding} {place}{key}", algorithm(rule.algorithm)),
                code(&signed),
                rule.timestamp.map(stamp),
                keys,
            )
        }
        Check::Token { header, prefix } => (
            if prefix.is_empty() {
                format!("the secret in `{header}`")
            } else {
                format!("the secret in `{header}` after `{prefix}`")
            },
            "-".into(),
            None,
            secret,
        ),
        Check::Basic => (
            "HTTP Basic".into(),
            "-".into(),
            None,
            format!("{secret}, `username`"),
        ),
        Check::Learned { signature, prefix } => (
            if prefix.is_empty() {
                format!("HMAC-SHA256 hex in `{signature}`, secret from the handshake")
            } else {
                format!("HMAC-SHA256 hex in `{signature}` (`{prefix}`), secret from the handshake")
            },
            code("{body}"),
            None,
            "none: learned (or `secret`)".into(),
        ),
        Check::Svix => (
            "Svix: HMAC-SHA256 base64 `v1,` in `svix-signature`".into(),
            code("{svix-id}.{timestamp}.{body}"),
            Some("timestamp ±5m".into()),
            secret,
        ),
        Check::Ed25519 {
            signature,
            timestamp,
        } => (
            format!("Ed25519 hex in `{signature}`"),
            code(&format!("{{{timestamp}}}{{body}}")),
            Some("timestamp ±5m".into()),
            secret,
        ),
        Check::Ecdsa {
            signature,
            timestamp,
        } => (
            format!("ECDSA P-256 base64 in `{signature}`"),
            code(&format!("{{{timestamp}}}{{body}}")),
            Some("timestamp ±5m".into()),
            secret,
        ),
    };
    let dedup = p.delivery_id != Locate::Nowhere;
    let replay = match (replay, dedup) {
        (Some(t), true) => format!("{t}, dedup"),
        (Some(t), false) => t,
        (None, true) => "dedup".into(),
        (None, false) => "-".into(),
    };
    Entry {
        scheme: p.name.into(),
        provider: p.title.into(),
        proof,
        signed,
        replay,
        delivery_id: locate(p.delivery_id),
        handshake: handshake(p.handshake).into(),
        keys,
    }
}

fn headers(names: &[&str]) -> String {
    match names {
        [one] => code(one),
        [first, .., last] => format!("`{first}` ... `{last}`"),
        [] => "-".into(),
    }
}

fn stamp(s: Stamp) -> String {
    let format = match s.format {
        TimeFormat::UnixSeconds => "s",
        TimeFormat::UnixMillis => "ms",
        TimeFormat::Rfc3339 => "RFC 3339",
    };
    let tolerance = humantime::format_duration(std::time::Duration::from_secs(s.tolerance_secs));
    format!("timestamp ±{tolerance} ({format})")
}

fn handshake(h: Handshake) -> &'static str {
    match h {
        Handshake::None => "-",
        Handshake::Twitch => "`webhook_callback_verification` answered",
        Handshake::DiscordPing => "PING `{\"type\":1}` answered",
        Handshake::DiscordEventsPing => "PING `{\"type\":0}` answered `204`",
        Handshake::XCrc => "`GET ?crc_token=` answered",
        Handshake::Okta => "`GET` verification answered",
        Handshake::Head => "`HEAD` answered",
        Handshake::WooPing => "`webhook_id=` ping answered",
        Handshake::AsanaSecret => "`X-Hook-Secret` kept and echoed",
        Handshake::NotionToken => "`verification_token` kept",
    }
}

/// The list as a Markdown table (docs/providers.md holds exactly this).
pub fn markdown() -> String {
    let mut out = String::from(
        "| scheme | provider | proof | signed | replay protection | delivery id | handshake | keys |\n\
         | --- | --- | --- | --- | --- | --- | --- | --- |\n",
    );
    for e in entries() {
        let cells = [
            code(&e.scheme),
            e.provider,
            e.proof,
            e.signed,
            e.replay,
            e.delivery_id,
            e.handshake,
            e.keys,
        ];
        out.push_str("| ");
        out.push_str(&cells.map(|c| c.replace('|', "\\|")).join(" | "));
        out.push_str(" |\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_scheme_is_listed_once() {
        let listed: Vec<String> = entries().into_iter().map(|e| e.scheme).collect();
        let mut names: Vec<&str> = crate::config::Scheme::names()
            .filter(|n| *n != "none")
            .collect();
        names.sort();
        let mut sorted = listed.clone();
        sorted.sort();
        assert_eq!(sorted, names);
    }

    #[test]
    fn docs_providers_md_holds_the_current_table() {
        let docs = include_str!("../../../docs/providers.md");
        assert!(
            docs.contains(&markdown()),
            "docs/providers.md is out of date: paste the output of `hookyard providers --markdown`"
        );
    }
}
