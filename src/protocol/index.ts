export {
  PROTOCOL_VERSION,
  FrameType,
  FRAME_HEADER_SIZE,
  MAX_MESSAGE_SIZE,
  DeviceLimits,
  DeviceCloseCode,
  AGENT_CONNECT_PATH,
  AGENT_ENROLL_PATH,
  AGENT_ASSERTION_TYPE,
  AGENT_ASSERTION_ALG,
  AgentHeaders,
  SSH_ALGORITHMS,
  encodeFrame,
  encodeCloseReason,
  decodeFrame,
  clampTerminalSize,
  agentEndpoints,
} from './device.ts';
export type { Frame, FrameErrorCode, DecodeResult, EnrollRequest, EnrollResponse, DeviceErrorBody } from './device.ts';
export { StreamMux, MuxStream, DeviceProtocolError } from './mux.ts';
export type { MuxSocket, StreamMuxOptions, DeviceProtocolErrorCode } from './mux.ts';
export { generateSshEd25519Key } from './ssh-keys.ts';
export { ssh2, ssh2NativeCrypto } from './ssh2.ts';
