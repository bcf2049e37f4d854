/**
 * The daemon's error envelope: one JSON line `{"code":…,"message":"<JSON>","data":null}`
 * whose message is itself JSON `{"message","error_type","args":null}`. dify-api
 * ignores the HTTP status on dispatch calls and parses each body line as this
 * envelope, so a deny must be exactly this — an empty body would be read as an
 * empty, successful result.
 */
export type EnvelopeType = 'PluginDaemonInternalServerError' | 'PluginDaemonBadRequestError';

export function envelope(code: -500 | -400, errorType: EnvelopeType, message: string): string {
  const inner = JSON.stringify({ message, error_type: errorType, args: null });
  return JSON.stringify({ code, message: inner, data: null }) + '\n';
}
