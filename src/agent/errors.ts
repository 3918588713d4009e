/**
 * The agent's error catalogue. The agent is its own program and does not share the
 * gateway's error classes; every failure it reports to an operator has a stable code.
 */
export type AgentErrorCode =
  /** A command-line option or `AgentOptions` field is wrong. */
  | 'AGENT_BAD_OPTION'
  /** No credentials in the state directory and no enrollment token given. */
  | 'AGENT_NOT_ENROLLED'
  /** `--enroll` given but the state directory already holds a device. */
  | 'AGENT_ALREADY_ENROLLED'
  /** The state directory or a credential file is readable or writable by others. */
  | 'AGENT_STATE_INSECURE'
  /** The state files are unreadable or malformed. */
  | 'AGENT_STATE_INVALID'
  /** The gateway refused the enrollment (expired, used or unknown token...). */
  | 'AGENT_ENROLL_REJECTED'
  /** The gateway could not be reached or answered something unusable. */
  | 'AGENT_ENROLL_FAILED';

export class AgentError extends Error {
  readonly code: AgentErrorCode;
  /** HTTP status of the gateway's answer, when there was one. */
  readonly status: number | undefined;
  /** The gateway's own error code (`{"error": ...}`), when it sent one. */
  readonly gatewayCode: string | undefined;

  constructor(code: AgentErrorCode, message: string, options?: { cause?: unknown; status?: number; gatewayCode?: string }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'AgentError';
    this.code = code;
    this.status = options?.status;
    this.gatewayCode = options?.gatewayCode;
  }
}
