/**
 * The shapes proto-loader hands us and takes from us for proto/ (keepCase,
 * enums as strings, longs as strings, defaults on, oneofs on). Incoming fields
 * are typed loosely on purpose: the request mapper must survive any of them
 * being absent or null.
 */

export interface HeaderValueMsg {
  key?: string | null;
  value?: string | null;
  raw_value?: Uint8Array | string | null;
}

export interface HttpRequestMsg {
  id?: string | null;
  method?: string | null;
  headers?: Record<string, string> | null;
  header_map?: { headers?: HeaderValueMsg[] | null } | null;
  path?: string | null;
  host?: string | null;
  scheme?: string | null;
}

export interface CheckRequestMsg {
  attributes?: {
    request?: { http?: HttpRequestMsg | null } | null;
    context_extensions?: Record<string, string> | null;
  } | null;
}

export type AppendAction = 'APPEND_IF_EXISTS_OR_ADD' | 'ADD_IF_ABSENT' | 'OVERWRITE_IF_EXISTS_OR_ADD' | 'OVERWRITE_IF_EXISTS';

export interface HeaderValueOptionMsg {
  readonly header: { readonly key: string; readonly value: string };
  readonly append_action: AppendAction;
}

/** google.protobuf.Struct as protobufjs' bundled definition names it. */
export interface StructMsg {
  readonly fields: Readonly<Record<string, { readonly stringValue: string }>>;
}

export interface OkHttpResponseMsg {
  readonly headers: readonly HeaderValueOptionMsg[];
  readonly headers_to_remove: readonly string[];
}

export interface DeniedHttpResponseMsg {
  /** An envoy.type.v3.StatusCode: the number encodes as the same varint as its name. */
  readonly status: { readonly code: number };
  readonly headers: readonly HeaderValueOptionMsg[];
  readonly body: string;
}

export type CheckResponseMsg =
  | {
      readonly status: { readonly code: number; readonly message: string };
      readonly ok_response: OkHttpResponseMsg;
      readonly dynamic_metadata: StructMsg;
    }
  | {
      readonly status: { readonly code: number; readonly message: string };
      readonly denied_response: DeniedHttpResponseMsg;
      readonly dynamic_metadata: StructMsg;
    };
