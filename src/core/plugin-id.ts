/**
 * Plugin identity, exactly as the daemon validates it. A plugin id is
 * `author/name` (author optional); a unique identifier adds `:version@sha`.
 * Anything else is rejected before it can become a metric label or a map key.
 */
export type PluginId = string;

const PLUGIN_ID = /^(?:[a-z0-9_-]{1,64}\/)?[a-z0-9_-]{1,255}$/;
const UNIQUE_ID =
  /^(?:([a-z0-9_-]{1,64})\/)?([a-z0-9_-]{1,255}):([0-9]{1,4})(\.[0-9]{1,4}){1,3}(-\w{1,16})?@[a-f0-9]{32,64}$/;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** Upper bound on any id we look at; longer input is rejected without a regex run. */
const MAX_UNIQUE_ID_LENGTH = 64 + 1 + 255 + 1 + 4 * 4 + 3 + 17 + 1 + 64;

export function isPluginId(value: string): boolean {
  return value.length <= 320 && PLUGIN_ID.test(value);
}

/** `author/name:1.2.3@abc…` → `author/name`; undefined when the identifier is malformed. */
export function pluginIdFromUniqueId(value: string): PluginId | undefined {
  if (value.length > MAX_UNIQUE_ID_LENGTH || !UNIQUE_ID.test(value)) return undefined;
  return value.slice(0, value.indexOf(':'));
}

/** A UUID author marks a remote-debugging plugin, served by whichever pod the tunnel reached. */
export function isRemoteDebugPlugin(id: PluginId): boolean {
  const slash = id.indexOf('/');
  return slash > 0 && UUID.test(id.slice(0, slash));
}
