// lead-alert: a Hookyard plugin in JavaScript. A lead from a form (JSON) becomes a Slack
// message for the sales channel; a lead without an email is dropped with a reason.
// Built into a WebAssembly component by build.mjs; the contract is plugin-sdk/wit/plugin.wit.
import { log, config, dropReason } from "hookyard:plugin/host@0.1.0";
import { get, set } from "hookyard:plugin/kv@0.1.0";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

// Called when the router loads the plugin: refuse a config it cannot use.
export function validate() {
  const settings = JSON.parse(config());
  if (settings.prefix !== undefined && typeof settings.prefix !== "string") {
    throw { message: "config.prefix must be a string" };
  }
}

export function handle(event) {
  const settings = JSON.parse(config());
  let lead;
  try {
    lead = JSON.parse(decoder.decode(event.body));
  } catch (e) {
    throw { message: `body is not JSON: ${e.message}` };
  }
  if (!lead.email) {
    dropReason("lead has no email");
    return [];
  }
  // Count leads per day in the plugin's own kv store.
  const day = new Date(Number(event.receivedAt)).toISOString().slice(0, 10);
  const previous = get(`leads:${day}`);
  const count = (previous ? Number(decoder.decode(previous)) : 0) + 1;
  const stored = set(`leads:${day}`, encoder.encode(String(count)), 7n * 24n * 3600n * 1000n);
  if (stored !== undefined && stored !== null && stored.tag === "err") {
    throw { message: `kv: ${stored.val}` };
  }
  log("info", `lead ${lead.email} (#${count} today)`);
  const who = lead.name ? `${lead.name} <${lead.email}>` : lead.email;
  const text = `${settings.prefix ?? "New lead"}: ${who}${lead.company ? ` from ${lead.company}` : ""} (#${count} today)`;
  return [
    {
      body: encoder.encode(JSON.stringify({ text })),
      headers: [],
      contentType: "application/json",
      destination: undefined,
      method: undefined,
      path: undefined,
    },
  ];
}
