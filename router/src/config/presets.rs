//! Named providers as data: `verify = { scheme = "<name>", secret = "..." }` for every
//! provider whose scheme the table can say (an HMAC with header, algorithm, encoding and
//! signed content; a shared token; Basic; Svix underneath). Adding such a provider is adding
//! a row to [`PRESETS`] and its test. What a table cannot say (asymmetric keys, handshakes
//! that answer with a computed value, secrets learned at run time) is code in `verify`,
//! named here by [`Handshake`] and [`Check`].

use std::fmt;

use super::{HmacAlgorithm, SignatureEncoding};

/// One named provider.
pub struct Preset {
    /// The `scheme` name in `router.toml`.
    pub name: &'static str,
    /// The provider's own name, for listings and docs.
    pub title: &'static str,
    /// What the provider calls the secret in its dashboard, for error messages.
    pub secret_word: &'static str,
    /// How a request proves it comes from the provider.
    pub check: Check,
    /// Where the provider's delivery id is (for dedup).
    pub delivery_id: Locate,
    /// Where the provider's event type is.
    pub event_type: Locate,
    /// A request the provider sends to check the endpoint, answered by the router.
    pub handshake: Handshake,
}

impl fmt::Debug for Preset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name)
    }
}

impl PartialEq for Preset {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}

impl Eq for Preset {}

/// How a preset's requests are authenticated.
#[derive(Debug)]
pub enum Check {
    /// An HMAC described by the row.
    Hmac(HmacRule),
    /// The secret itself, compared in constant time, in `header` after `prefix`.
    Token {
        /// The header carrying it.
        header: &'static str,
        /// Text before the token.
        prefix: &'static str,
    },
    /// HTTP Basic credentials in the URL the provider calls (`username` is then required).
    Basic,
    /// Svix underneath: `svix-id`, `svix-timestamp`, `svix-signature` with a `whsec_` secret.
    Svix,
    /// Ed25519 over `{timestamp}{body}`; the secret is the application's hex public key.
    Ed25519 {
        /// The signature header (hex).
        signature: &'static str,
        /// The timestamp header (Unix seconds).
        timestamp: &'static str,
    },
    /// Hex HMAC-SHA256 of the body in `signature` after `prefix`, keyed with a secret the
    /// provider hands over in its first request (see [`Handshake::AsanaSecret`] and
    /// [`Handshake::NotionToken`]) and the router keeps in its store; a configured `secret`
    /// is used instead when the operator already has it.
    Learned {
        /// The signature header.
        signature: &'static str,
        /// Text before the hex tag.
        prefix: &'static str,
    },
    /// ECDSA P-256 with SHA-256 over `{timestamp}{body}`; the secret is the base64 DER
    /// public key; the signature is base64 DER.
    Ecdsa {
        /// The signature header.
        signature: &'static str,
        /// The timestamp header (Unix seconds).
        timestamp: &'static str,
    },
}

/// An HMAC scheme, as data.
#[derive(Debug)]
pub struct HmacRule {
    /// Headers that may carry a signature; a match in any of them is enough.
    pub headers: &'static [&'static str],
    /// The digest.
    pub algorithm: HmacAlgorithm,
    /// How the tag is written.
    pub encoding: SignatureEncoding,
    /// How signatures sit in the header.
    pub format: SigFormat,
    /// How the configured secret becomes the HMAC key.
    pub key: KeyForm,
    /// What is signed, in order.
    pub signed: &'static [Piece],
    /// The signed timestamp, if any, and how stale it may be.
    pub timestamp: Option<Stamp>,
}

impl HmacRule {
    /// Whether the signed content includes the public URL (the route then needs `public_url`).
    pub fn signs_url(&self) -> bool {
        self.signed.contains(&Piece::Url)
    }
}

/// How signatures are written in the signature header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SigFormat {
    /// `<prefix><tag>`.
    Single {
        /// Text before the tag, e.g. `sha256=`.
        prefix: &'static str,
    },
    /// Several `<prefix><tag>` separated by `separator` (PagerDuty's `v1=a,v1=b`).
    List {
        /// Text before each tag.
        prefix: &'static str,
        /// Between entries.
        separator: char,
    },
    /// `key=value` pairs separated by `separator`: the timestamp under one key, tags under
    /// another (Paddle's `ts=...;h1=...`, Calendly's `t=...,v1=...`).
    Pairs {
        /// Between pairs.
        separator: char,
        /// The key of the timestamp.
        timestamp: &'static str,
        /// The key of each tag.
        signature: &'static str,
    },
    /// The tag is a string in the JSON body at this pointer (Mailgun).
    BodyField(&'static str),
}

/// How the secret becomes the key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyForm {
    /// The secret's bytes as typed.
    Raw,
    /// The secret is base64; its decoded bytes are the key (Airtable's `macSecretBase64`).
    Base64,
}

/// A piece of the signed content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Piece {
    /// The raw body.
    Body,
    /// The timestamp text exactly as sent.
    Timestamp,
    /// A literal.
    Lit(&'static str),
    /// A request header's value.
    Header(&'static str),
    /// A string at a JSON pointer in the body.
    BodyField(&'static str),
    /// The public URL the provider called: `public_url` followed by the path and query.
    Url,
    /// The request method.
    Method,
}

/// Where a value is found in a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Locate {
    /// The provider does not send it.
    Nowhere,
    /// A request header.
    Header(&'static str),
    /// A JSON pointer into the body.
    Body(&'static str),
}

/// A signed timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    /// Where it is: a header, a body field, or (for [`SigFormat::Pairs`]) `Nowhere`, meaning
    /// the pair in the signature header.
    pub at: Locate,
    /// How it is written.
    pub format: TimeFormat,
    /// The provider's recommended tolerance in seconds (both ways), unless the route sets one.
    pub tolerance_secs: u64,
}

/// How a timestamp is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeFormat {
    /// Unix seconds.
    UnixSeconds,
    /// Unix milliseconds.
    UnixMillis,
    /// RFC 3339 (`2024-05-01T12:00:00Z`, fractions allowed).
    Rfc3339,
}

/// A provider's check of the endpoint, answered by the router and never journaled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handshake {
    /// None.
    None,
    /// Twitch: a signed `webhook_callback_verification` message gets its `challenge` as
    /// plain text.
    Twitch,
    /// Discord Interactions: a signed PING (`{"type":1}`) gets `{"type":1}`.
    DiscordPing,
    /// Discord Webhook Events: a signed PING (`{"type":0}`) gets `204`.
    DiscordEventsPing,
    /// X: `GET ?crc_token=T` gets `{"response_token":"sha256=" + base64(HMAC-SHA256(secret, T))}`.
    XCrc,
    /// Okta: an authenticated `GET` with `x-okta-verification-challenge: V` gets
    /// `{"verification":V}`.
    Okta,
    /// Trello and Intercom: a `HEAD` gets `200` when the webhook is created or saved.
    Head,
    /// WooCommerce: an unsigned form `webhook_id=<n>` ping, sent when a webhook is saved,
    /// gets `200`.
    WooPing,
    /// Asana: the first `POST` carries `X-Hook-Secret`, which is kept and echoed back; it is
    /// never replaced by a later request (an operator command forgets it).
    AsanaSecret,
    /// Notion: the subscription's first `POST` is `{"verification_token": T}`, unsigned; `T`
    /// is kept (never replaced) for the operator to paste into Notion, and signs what follows.
    NotionToken,
}

const fn hmac(
    headers: &'static [&'static str],
    algorithm: HmacAlgorithm,
    encoding: SignatureEncoding,
    format: SigFormat,
    signed: &'static [Piece],
    timestamp: Option<Stamp>,
) -> Check {
    Check::Hmac(HmacRule {
        headers,
        algorithm,
        encoding,
        format,
        key: KeyForm::Raw,
        signed,
        timestamp,
    })
}

use HmacAlgorithm::{Sha1, Sha256};
use Piece::{Body, Header, Lit, Timestamp};
use SignatureEncoding::{Base64, Hex};

const BODY: &[Piece] = &[Body];
const fn single(prefix: &'static str) -> SigFormat {
    SigFormat::Single { prefix }
}
const fn stamp(at: Locate, format: TimeFormat, tolerance_secs: u64) -> Option<Stamp> {
    Some(Stamp {
        at,
        format,
        tolerance_secs,
    })
}
const fn row(
    name: &'static str,
    title: &'static str,
    secret_word: &'static str,
    check: Check,
    delivery_id: Locate,
    event_type: Locate,
) -> Preset {
    Preset {
        name,
        title,
        secret_word,
        check,
        delivery_id,
        event_type,
        handshake: Handshake::None,
    }
}
const fn with_handshake(mut p: Preset, handshake: Handshake) -> Preset {
    p.handshake = handshake;
    p
}

/// Every named provider the table describes, by `scheme` name.
pub static PRESETS: &[Preset] = &[
    row(
        "gitlab",
        "GitLab",
        "Secret token",
        Check::Token {
            header: "x-gitlab-token",
            prefix: "",
        },
        Locate::Header("idempotency-key"),
        Locate::Header("x-gitlab-event"),
    ),
    row(
        "bitbucket",
        "Bitbucket Cloud",
        "Secret",
        hmac(
            &["x-hub-signature"],
            Sha256,
            Hex,
            single("sha256="),
            BODY,
            None,
        ),
        Locate::Header("x-request-uuid"),
        Locate::Header("x-event-key"),
    ),
    row(
        "linear",
        "Linear",
        "Signing secret",
        hmac(
            &["linear-signature"],
            Sha256,
            Hex,
            single(""),
            BODY,
            stamp(
                Locate::Body("/webhookTimestamp"),
                TimeFormat::UnixMillis,
                60,
            ),
        ),
        Locate::Header("linear-delivery"),
        Locate::Header("linear-event"),
    ),
    with_handshake(
        row(
            "intercom",
            "Intercom",
            "Client secret",
            hmac(&["x-hub-signature"], Sha1, Hex, single("sha1="), BODY, None),
            Locate::Body("/id"),
            Locate::Body("/topic"),
        ),
        Handshake::Head,
    ),
    row(
        "hubspot",
        "HubSpot (signature v3)",
        "Client secret",
        hmac(
            &["x-hubspot-signature-v3"],
            Sha256,
            Base64,
            single(""),
            &[Piece::Method, Piece::Url, Body, Timestamp],
            stamp(
                Locate::Header("x-hubspot-request-timestamp"),
                TimeFormat::UnixMillis,
                300,
            ),
        ),
        Locate::Nowhere,
        Locate::Body("/0/subscriptionType"),
    ),
    row(
        "mailgun",
        "Mailgun",
        "HTTP webhook signing key",
        hmac(
            &[],
            Sha256,
            Hex,
            SigFormat::BodyField("/signature/signature"),
            &[
                Piece::BodyField("/signature/timestamp"),
                Piece::BodyField("/signature/token"),
            ],
            stamp(
                Locate::Body("/signature/timestamp"),
                TimeFormat::UnixSeconds,
                900,
            ),
        ),
        Locate::Body("/signature/token"),
        Locate::Body("/event-data/event"),
    ),
    row(
        "square",
        "Square",
        "Signature key",
        hmac(
            &["x-square-hmacsha256-signature"],
            Sha256,
            Base64,
            single(""),
            &[Piece::Url, Body],
            None,
        ),
        Locate::Body("/event_id"),
        Locate::Body("/type"),
    ),
    row(
        "paddle",
        "Paddle Billing",
        "Secret key",
        hmac(
            &["paddle-signature"],
            Sha256,
            Hex,
            SigFormat::Pairs {
                separator: ';',
                timestamp: "ts",
                signature: "h1",
            },
            &[Timestamp, Lit(":"), Body],
            stamp(Locate::Nowhere, TimeFormat::UnixSeconds, 5),
        ),
        Locate::Body("/notification_id"),
        Locate::Body("/event_type"),
    ),
    row(
        "typeform",
        "Typeform",
        "Secret",
        hmac(
            &["typeform-signature"],
            Sha256,
            Base64,
            single("sha256="),
            BODY,
            None,
        ),
        Locate::Body("/event_id"),
        Locate::Body("/event_type"),
    ),
    row(
        "calendly",
        "Calendly",
        "Webhook signing key",
        hmac(
            &["calendly-webhook-signature"],
            Sha256,
            Hex,
            SigFormat::Pairs {
                separator: ',',
                timestamp: "t",
                signature: "v1",
            },
            &[Timestamp, Lit("."), Body],
            stamp(Locate::Nowhere, TimeFormat::UnixSeconds, 180),
        ),
        Locate::Nowhere,
        Locate::Body("/event"),
    ),
    row(
        "pagerduty",
        "PagerDuty (v3 webhooks)",
        "Secret",
        hmac(
            &["x-pagerduty-signature"],
            Sha256,
            Hex,
            SigFormat::List {
                prefix: "v1=",
                separator: ',',
            },
            BODY,
            None,
        ),
        Locate::Header("x-webhook-id"),
        Locate::Body("/event/event_type"),
    ),
    row(
        "sentry",
        "Sentry",
        "Client secret",
        hmac(
            &["sentry-hook-signature"],
            Sha256,
            Hex,
            single(""),
            BODY,
            None,
        ),
        Locate::Header("request-id"),
        Locate::Header("sentry-hook-resource"),
    ),
    row(
        "vercel",
        "Vercel",
        "Secret",
        hmac(&["x-vercel-signature"], Sha1, Hex, single(""), BODY, None),
        Locate::Body("/id"),
        Locate::Body("/type"),
    ),
    row(
        "zendesk",
        "Zendesk",
        "Signing secret",
        hmac(
            &["x-zendesk-webhook-signature"],
            Sha256,
            Base64,
            single(""),
            &[Timestamp, Body],
            stamp(
                Locate::Header("x-zendesk-webhook-signature-timestamp"),
                TimeFormat::Rfc3339,
                300,
            ),
        ),
        Locate::Header("x-zendesk-webhook-invocation-id"),
        Locate::Body("/type"),
    ),
    with_handshake(
        row(
            "woocommerce",
            "WooCommerce",
            "Secret",
            hmac(
                &["x-wc-webhook-signature"],
                Sha256,
                Base64,
                single(""),
                BODY,
                None,
            ),
            Locate::Header("x-wc-webhook-delivery-id"),
            Locate::Header("x-wc-webhook-topic"),
        ),
        Handshake::WooPing,
    ),
    row(
        "coinbase-commerce",
        "Coinbase Commerce",
        "Shared secret",
        hmac(
            &["x-cc-webhook-signature"],
            Sha256,
            Hex,
            single(""),
            BODY,
            None,
        ),
        Locate::Body("/event/id"),
        Locate::Body("/event/type"),
    ),
    row(
        "razorpay",
        "Razorpay",
        "Secret",
        hmac(
            &["x-razorpay-signature"],
            Sha256,
            Hex,
            single(""),
            BODY,
            None,
        ),
        Locate::Header("x-razorpay-event-id"),
        Locate::Body("/event"),
    ),
    row(
        "lemon-squeezy",
        "Lemon Squeezy",
        "Signing secret",
        hmac(&["x-signature"], Sha256, Hex, single(""), BODY, None),
        Locate::Nowhere,
        Locate::Header("x-event-name"),
    ),
    row(
        "airtable",
        "Airtable",
        "macSecretBase64",
        Check::Hmac(HmacRule {
            headers: &["x-airtable-content-mac"],
            algorithm: Sha256,
            encoding: Hex,
            format: single("hmac-sha256="),
            key: KeyForm::Base64,
            signed: BODY,
            timestamp: None,
        }),
        Locate::Nowhere,
        Locate::Nowhere,
    ),
    row(
        "docusign",
        "DocuSign Connect",
        "HMAC key",
        hmac(
            &[
                "x-docusign-signature-1",
                "x-docusign-signature-2",
                "x-docusign-signature-3",
                "x-docusign-signature-4",
                "x-docusign-signature-5",
            ],
            Sha256,
            Base64,
            single(""),
            BODY,
            None,
        ),
        Locate::Nowhere,
        Locate::Body("/event"),
    ),
    row(
        "box",
        "Box",
        "Primary Key",
        hmac(
            &["box-signature-primary", "box-signature-secondary"],
            Sha256,
            Base64,
            single(""),
            &[Body, Timestamp],
            stamp(
                Locate::Header("box-delivery-timestamp"),
                TimeFormat::Rfc3339,
                600,
            ),
        ),
        Locate::Header("box-delivery-id"),
        Locate::Body("/trigger"),
    ),
    row(
        "segment",
        "Segment",
        "Shared secret",
        hmac(&["x-signature"], Sha1, Hex, single(""), BODY, None),
        Locate::Body("/messageId"),
        Locate::Body("/type"),
    ),
    row(
        "webflow",
        "Webflow",
        "Client Secret",
        hmac(
            &["x-webflow-signature"],
            Sha256,
            Hex,
            single(""),
            &[Timestamp, Lit(":"), Body],
            stamp(
                Locate::Header("x-webflow-timestamp"),
                TimeFormat::UnixMillis,
                300,
            ),
        ),
        Locate::Nowhere,
        Locate::Body("/triggerType"),
    ),
    row(
        "clickup",
        "ClickUp",
        "webhook secret",
        hmac(&["x-signature"], Sha256, Hex, single(""), BODY, None),
        Locate::Nowhere,
        Locate::Body("/event"),
    ),
    with_handshake(
        row(
            "notion",
            "Notion",
            "verification token",
            Check::Learned {
                signature: "x-notion-signature",
                prefix: "sha256=",
            },
            Locate::Body("/id"),
            Locate::Body("/type"),
        ),
        Handshake::NotionToken,
    ),
    with_handshake(
        row(
            "asana",
            "Asana",
            "X-Hook-Secret",
            Check::Learned {
                signature: "x-hook-signature",
                prefix: "",
            },
            Locate::Nowhere,
            Locate::Body("/events/0/action"),
        ),
        Handshake::AsanaSecret,
    ),
    with_handshake(
        row(
            "trello",
            "Trello",
            "application Secret",
            hmac(
                &["x-trello-webhook"],
                Sha1,
                Base64,
                single(""),
                &[Body, Piece::Url],
                None,
            ),
            Locate::Body("/action/id"),
            Locate::Body("/action/type"),
        ),
        Handshake::Head,
    ),
    row(
        "postmark",
        "Postmark",
        "Basic auth password",
        Check::Basic,
        Locate::Nowhere,
        Locate::Body("/RecordType"),
    ),
    row(
        "clerk",
        "Clerk",
        "Signing Secret",
        Check::Svix,
        Locate::Header("svix-id"),
        Locate::Body("/type"),
    ),
    row(
        "resend",
        "Resend",
        "Signing Secret",
        Check::Svix,
        Locate::Header("svix-id"),
        Locate::Body("/type"),
    ),
    with_handshake(
        row(
            "twitch",
            "Twitch EventSub",
            "transport secret",
            hmac(
                &["twitch-eventsub-message-signature"],
                Sha256,
                Hex,
                single("sha256="),
                &[Header("twitch-eventsub-message-id"), Timestamp, Body],
                stamp(
                    Locate::Header("twitch-eventsub-message-timestamp"),
                    TimeFormat::Rfc3339,
                    600,
                ),
            ),
            Locate::Header("twitch-eventsub-message-id"),
            Locate::Header("twitch-eventsub-subscription-type"),
        ),
        Handshake::Twitch,
    ),
    with_handshake(
        row(
            "discord",
            "Discord Interactions",
            "Public Key",
            Check::Ed25519 {
                signature: "x-signature-ed25519",
                timestamp: "x-signature-timestamp",
            },
            Locate::Body("/id"),
            Locate::Body("/type"),
        ),
        Handshake::DiscordPing,
    ),
    with_handshake(
        row(
            "discord-events",
            "Discord Webhook Events",
            "Public Key",
            Check::Ed25519 {
                signature: "x-signature-ed25519",
                timestamp: "x-signature-timestamp",
            },
            Locate::Nowhere,
            Locate::Body("/event/type"),
        ),
        Handshake::DiscordEventsPing,
    ),
    row(
        "sendgrid",
        "SendGrid Event Webhook",
        "Verification Key",
        Check::Ecdsa {
            signature: "x-twilio-email-event-webhook-signature",
            timestamp: "x-twilio-email-event-webhook-timestamp",
        },
        Locate::Nowhere,
        Locate::Body("/0/event"),
    ),
    with_handshake(
        row(
            "x",
            "X (Account Activity API)",
            "API Key Secret",
            hmac(
                &["x-twitter-webhooks-signature"],
                Sha256,
                Base64,
                single("sha256="),
                BODY,
                None,
            ),
            Locate::Nowhere,
            Locate::Nowhere,
        ),
        Handshake::XCrc,
    ),
    with_handshake(
        row(
            "okta",
            "Okta Event Hooks",
            "Authentication secret",
            Check::Token {
                header: "authorization",
                prefix: "",
            },
            Locate::Body("/eventId"),
            Locate::Body("/data/events/0/eventType"),
        ),
        Handshake::Okta,
    ),
];

/// The preset called `name`.
pub fn preset(name: &str) -> Option<&'static Preset> {
    PRESETS.iter().find(|p| p.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preset_names_are_unique_kebab_case() {
        let mut seen = std::collections::HashSet::new();
        for p in PRESETS {
            assert!(seen.insert(p.name), "{} twice", p.name);
            assert!(
                p.name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'),
                "{}",
                p.name
            );
        }
    }

    #[test]
    fn every_hmac_row_is_complete() {
        for p in PRESETS {
            if let Check::Hmac(rule) = &p.check {
                let in_body = matches!(rule.format, SigFormat::BodyField(_));
                assert!(
                    in_body == rule.headers.is_empty(),
                    "{}: a signature header, or a body field, not both",
                    p.name
                );
                assert!(
                    rule.signed.len() <= 8,
                    "{}: at most 8 signed pieces",
                    p.name
                );
                assert!(
                    rule.signed.contains(&Body) || in_body,
                    "{}: the body must be signed",
                    p.name
                );
                let pairs = matches!(rule.format, SigFormat::Pairs { .. });
                if let Some(stamp) = rule.timestamp {
                    assert!(
                        rule.signed.contains(&Timestamp) || matches!(stamp.at, Locate::Body(_)),
                        "{}: a checked timestamp must be signed",
                        p.name
                    );
                    assert_eq!(
                        stamp.at == Locate::Nowhere,
                        pairs,
                        "{}: only a pairs header holds the timestamp itself",
                        p.name
                    );
                }
            }
        }
    }
}
