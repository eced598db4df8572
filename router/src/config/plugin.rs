//! `[plugins.<name>]`: a wasm component, its grants and its budget.

use super::*;

/// `[plugins.<name>]`: one wasm component, the capabilities it is granted, and its budget.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginConfig {
    /// The `.wasm` component, relative to the config file.
    pub path: PathBuf,
    /// Handed to the plugin as JSON through the `config` import.
    #[serde(default = "empty_object")]
    pub config: serde_json::Value,
    /// Secrets the plugin may read by name (values may use `${VAR}`).
    #[serde(default)]
    pub secrets: BTreeMap<String, Secret>,
    /// Hosts (`api.example.com` or `host:port`) the plugin may fetch from; none by default.
    #[serde(default)]
    pub allow_http: Vec<String>,
    /// Longest one fetch may take.
    #[serde(default = "default_http_timeout")]
    pub http_timeout: Dur,
    /// Largest response body a fetch may return.
    #[serde(default = "default_http_max_response")]
    pub http_max_response: ByteSize,
    /// Most linear memory the plugin may grow to per event.
    #[serde(default = "default_plugin_memory")]
    pub memory: ByteSize,
    /// Longest the plugin may run per event, fetches included.
    #[serde(default = "default_plugin_timeout")]
    pub timeout: Dur,
    /// Most fuel (roughly, wasm instructions) the plugin may burn per event; unlimited if unset.
    pub fuel: Option<u64>,
    /// Most outputs per event.
    #[serde(default = "default_max_outputs")]
    pub max_outputs: usize,
    /// Most live keys in the plugin's kv namespace; writes that would add one more are
    /// refused (the plugin sees an error).
    #[serde(default = "default_kv_max_keys")]
    pub kv_max_keys: u64,
    /// Most output bytes per event (bodies, headers, paths, methods and content types).
    #[serde(default = "default_max_output_bytes")]
    pub max_output_bytes: ByteSize,
    /// A candidate version (`.wasm`) run beside this one on every event, its outputs
    /// compared and never delivered (see `hookyard shadow` and `GET /admin/shadow`).
    pub shadow: Option<PathBuf>,
    /// The candidate's config, if not the same as `config`.
    pub shadow_config: Option<serde_json::Value>,
}

impl PluginConfig {
    /// A config with every default, for running a plugin outside `router.toml`.
    pub fn with_defaults(path: PathBuf) -> PluginConfig {
        PluginConfig {
            path,
            config: empty_object(),
            secrets: BTreeMap::new(),
            allow_http: Vec::new(),
            http_timeout: default_http_timeout(),
            http_max_response: default_http_max_response(),
            memory: default_plugin_memory(),
            timeout: default_plugin_timeout(),
            fuel: None,
            max_outputs: default_max_outputs(),
            kv_max_keys: default_kv_max_keys(),
            shadow: None,
            shadow_config: None,
            max_output_bytes: default_max_output_bytes(),
        }
    }
}

fn default_http_timeout() -> Dur {
    Dur(Duration::from_secs(5))
}
fn default_http_max_response() -> ByteSize {
    ByteSize(1 << 20)
}
/// The default `kv_max_keys`.
pub const DEFAULT_KV_MAX_KEYS: u64 = 100_000;

fn default_kv_max_keys() -> u64 {
    DEFAULT_KV_MAX_KEYS
}
fn default_max_outputs() -> usize {
    100
}
fn default_max_output_bytes() -> ByteSize {
    ByteSize(1 << 20)
}

fn empty_object() -> serde_json::Value {
    serde_json::Value::Object(Default::default())
}
fn default_plugin_memory() -> ByteSize {
    ByteSize(32 * 1024 * 1024)
}
fn default_plugin_timeout() -> Dur {
    Dur(Duration::from_millis(250))
}
