/**
 * The device protocol: everything the gateway and the agent must agree on, and nothing
 * else. The agent is its own program and imports only this folder, so keep it free of
 * gateway code and of dependencies beyond Node's standard library.
 *
 * One WebSocket per agent (agent dials out) carries many streams. Each binary WebSocket
 * message is one frame:
 *
 *     [version u8 = 1][type u8][streamId u32 BE][payload]
 *
 * OPEN  (gateway → agent) starts stream `streamId`; payload reserved, ignored.
 * DATA  (both ways)       bytes of the stream (an SSH connection); payload non-empty.
 * CLOSE (both ways)       the stream is gone in both directions (a WebSocket stream has no
 *                         half-close; SSH carries its own EOF). Optional UTF-8 reason.
 *
 * An unknown version cannot be parsed further, so it ends the connection; an unknown type
 * ends only its stream. Text messages are not part of the protocol.
 */

export const PROTOCOL_VERSION = 1;

export const FrameType = {
  OPEN: 1,
  DATA: 2,
  CLOSE: 3,
} as const;
export type FrameType = (typeof FrameType)[keyof typeof FrameType];

export const FRAME_HEADER_SIZE = 6;

/** Every number a peer can push at us, in one place. */
export const DeviceLimits = {
  /** Largest frame payload (bytes). ssh2 writes packets of at most ~35 KiB, so this is slack, not a target. */
  maxFramePayload: 256 * 1024,
  /** Concurrent streams (terminal sessions) on one agent connection. */
  maxStreamsPerConnection: 64,
  /** CLOSE reason (bytes, UTF-8); longer reasons are truncated by the sender and refused by the receiver. */
  maxCloseReason: 256,
  /** Stop accepting writes on a stream while the WebSocket buffers more than this (bytes). */
  sendHighWaterMark: 1024 * 1024,
  /**
   * Bytes received for a stream but not yet read by its consumer. SSH channel windows
   * (2 MiB per channel in ssh2) bound honest peers well below this; beyond it the peer is
   * ignoring flow control and the stream is closed.
   */
  maxStreamReceiveBuffer: 8 * 1024 * 1024,
  /** Lifetime of the agent's connect assertion (seconds). */
  assertionTtlSeconds: 60,
  /** Terminal size bounds; anything outside is clamped. */
  minTerminalSize: 1,
  maxTerminalCols: 2000,
  maxTerminalRows: 1000,
} as const;

/** Largest WebSocket message either side accepts (give it to `ws` as `maxPayload`). */
export const MAX_MESSAGE_SIZE = FRAME_HEADER_SIZE + DeviceLimits.maxFramePayload;

export const AGENT_CONNECT_PATH = '/api/agent/connect';
export const AGENT_ENROLL_PATH = '/api/agent/enroll';

/** Request headers the agent sends with its WebSocket upgrade. */
export const AgentHeaders = {
  version: 'x-portcullis-agent-version',
  hostname: 'x-portcullis-hostname',
} as const;

/** JWT `typ` of the connect assertion, so no other JWT can be replayed as one (RFC 8725 §3.11). */
export const AGENT_ASSERTION_TYPE = 'portcullis-agent+jwt';
export const AGENT_ASSERTION_ALG = 'EdDSA';

/** WebSocket close codes the gateway and agent use on the agent connection. */
export const DeviceCloseCode = {
  normal: 1000,
  goingAway: 1001,
  protocolError: 1002,
  unsupportedData: 1003,
  policyViolation: 1008,
  messageTooBig: 1009,
  internalError: 1011,
  /** The device was disabled by an admin; the agent keeps retrying slowly. */
  deviceDisabled: 4000,
  /** The device was deleted; it must be enrolled again. */
  deviceDeleted: 4001,
  /** A newer connection of the same device took over. */
  replaced: 4002,
} as const;

/**
 * SSH algorithm preferences for both ends. AES-GCM runs in OpenSSL (fastest here, with
 * AES-NI); chacha20 needs ssh2's native binding to be competitive; ctr+etm is the
 * compatibility fallback.
 */
export const SSH_ALGORITHMS = {
  kex: ['curve25519-sha256', 'curve25519-sha256@libssh.org', 'ecdh-sha2-nistp256'],
  serverHostKey: ['ssh-ed25519'],
  cipher: ['aes128-gcm@openssh.com', 'aes256-gcm@openssh.com', 'chacha20-poly1305@openssh.com', 'aes128-ctr'],
  hmac: ['hmac-sha2-256-etm@openssh.com', 'hmac-sha2-256'],
  compress: ['none'],
};

/** `POST {server}/api/agent/enroll` request body. */
export interface EnrollRequest {
  token: string;
  /** Ed25519 public key as a JWK (`{kty: "OKP", crv: "Ed25519", x}`); verifies connect assertions. */
  identityKey: { kty: 'OKP'; crv: 'Ed25519'; x: string };
  /** OpenSSH public key line of the device's SSH host key; the gateway pins it. */
  hostKey: string;
  hostname: string;
  version: string;
}

/** `POST {server}/api/agent/enroll` success body. */
export interface EnrollResponse {
  deviceId: string;
  name: string;
  /** OpenSSH public key line of the key the gateway's SSH client authenticates with. */
  gatewayKey: string;
}

/** Error body of every gateway 4xx/5xx (also on a refused WebSocket upgrade). */
export interface DeviceErrorBody {
  error: string;
  message: string;
}

export interface Frame {
  type: FrameType;
  streamId: number;
  payload: Buffer;
}

export type FrameErrorCode = 'FRAME_TOO_SHORT' | 'FRAME_BAD_VERSION' | 'FRAME_BAD_TYPE' | 'FRAME_TOO_LARGE';

export type DecodeResult =
  | { ok: true; frame: Frame }
  | { ok: false; code: FrameErrorCode; message: string; streamId: number | undefined };

export function encodeFrame(type: FrameType, streamId: number, payload?: Buffer): Buffer {
  const len = payload === undefined ? 0 : payload.length;
  const buf = Buffer.allocUnsafe(FRAME_HEADER_SIZE + len);
  buf[0] = PROTOCOL_VERSION;
  buf[1] = type;
  buf.writeUInt32BE(streamId, 2);
  if (payload !== undefined && len > 0) payload.copy(buf, FRAME_HEADER_SIZE);
  return buf;
}

/** UTF-8 reason for CLOSE, cut at a character boundary to fit the limit. */
export function encodeCloseReason(reason: string): Buffer {
  let buf = Buffer.from(reason, 'utf8');
  if (buf.length <= DeviceLimits.maxCloseReason) return buf;
  buf = buf.subarray(0, DeviceLimits.maxCloseReason);
  // Drop a trailing partial UTF-8 sequence (continuation bytes are 10xxxxxx).
  let end = buf.length;
  while (end > 0 && (buf[end - 1]! & 0xc0) === 0x80) end--;
  if (end > 0 && buf[end - 1]! >= 0xc0) end--;
  return buf.subarray(0, end);
}

/** Parses one frame without throwing; the payload is a view into `buf`. */
export function decodeFrame(buf: Buffer, maxPayload: number = DeviceLimits.maxFramePayload): DecodeResult {
  if (buf.length < FRAME_HEADER_SIZE) {
    return { ok: false, code: 'FRAME_TOO_SHORT', message: `frame of ${buf.length} bytes is shorter than the ${FRAME_HEADER_SIZE}-byte header`, streamId: undefined };
  }
  const version = buf[0]!;
  if (version !== PROTOCOL_VERSION) {
    return { ok: false, code: 'FRAME_BAD_VERSION', message: `unsupported device protocol version ${version} (expected ${PROTOCOL_VERSION})`, streamId: undefined };
  }
  const type = buf[1]!;
  const streamId = buf.readUInt32BE(2);
  if (type !== FrameType.OPEN && type !== FrameType.DATA && type !== FrameType.CLOSE) {
    return { ok: false, code: 'FRAME_BAD_TYPE', message: `unknown frame type ${type}`, streamId };
  }
  const payloadLength = buf.length - FRAME_HEADER_SIZE;
  if (payloadLength > maxPayload) {
    return { ok: false, code: 'FRAME_TOO_LARGE', message: `frame payload of ${payloadLength} bytes exceeds the limit of ${maxPayload}`, streamId };
  }
  return { ok: true, frame: { type, streamId, payload: buf.subarray(FRAME_HEADER_SIZE) } };
}

/** Clamps a requested terminal size into the supported range; non-numbers become the minimum. */
export function clampTerminalSize(cols: unknown, rows: unknown): { cols: number; rows: number } {
  const clamp = (v: unknown, max: number) => {
    const n = typeof v === 'number' && Number.isFinite(v) ? Math.floor(v) : DeviceLimits.minTerminalSize;
    return Math.min(max, Math.max(DeviceLimits.minTerminalSize, n));
  };
  return { cols: clamp(cols, DeviceLimits.maxTerminalCols), rows: clamp(rows, DeviceLimits.maxTerminalRows) };
}

/**
 * The connect URL (ws/wss) and the assertion audience (http/https form of the same URL)
 * for a gateway base URL. A path prefix on the base URL is kept, so a gateway mounted
 * under `/portcullis/` works; the gateway builds the audience the same way from its
 * configured public URL.
 */
export function agentEndpoints(server: string): { connectUrl: string; audience: string; enrollUrl: string } {
  const base = new URL(server);
  if (base.protocol === 'ws:') base.protocol = 'http:';
  else if (base.protocol === 'wss:') base.protocol = 'https:';
  if (base.protocol !== 'http:' && base.protocol !== 'https:') {
    throw new TypeError(`server URL must be http(s) or ws(s), got ${base.protocol}`);
  }
  base.search = '';
  base.hash = '';
  if (!base.pathname.endsWith('/')) base.pathname += '/';
  const audience = new URL(AGENT_CONNECT_PATH.slice(1), base);
  const enroll = new URL(AGENT_ENROLL_PATH.slice(1), base);
  const connect = new URL(audience);
  connect.protocol = audience.protocol === 'https:' ? 'wss:' : 'ws:';
  return { connectUrl: connect.href, audience: audience.href, enrollUrl: enroll.href };
}
