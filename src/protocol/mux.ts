import { Duplex } from 'node:stream';
import {
  DeviceCloseCode,
  DeviceLimits,
  FrameType,
  decodeFrame,
  encodeCloseReason,
  encodeFrame,
} from './device.ts';

/** The part of a `ws` WebSocket the multiplexer needs; the owner keeps the event wiring. */
export interface MuxSocket {
  send(data: Buffer, cb?: (err?: Error) => void): void;
  readonly bufferedAmount: number;
  readonly readyState: number;
}

export type DeviceProtocolErrorCode =
  | 'STREAM_CLOSED_BY_PEER'
  | 'STREAM_LIMIT'
  | 'STREAM_RECEIVE_OVERFLOW'
  | 'CONNECTION_LOST'
  | 'MUX_CLOSED';

/** A stream or connection failure of the device protocol, with a stable code. */
export class DeviceProtocolError extends Error {
  readonly code: DeviceProtocolErrorCode;
  constructor(code: DeviceProtocolErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'DeviceProtocolError';
    this.code = code;
  }
}

export interface StreamMuxOptions {
  /** The agent accepts OPEN; the gateway opens streams and refuses OPEN from the agent. */
  role: 'agent' | 'gateway';
  socket: MuxSocket;
  /** Agent side: a stream the gateway opened. Attach consumers synchronously. */
  onStream?: (stream: MuxStream) => void;
  /** The connection broke the protocol; the owner must close the WebSocket with this code. */
  onProtocolError: (code: number, reason: string) => void;
  maxStreams?: number;
  maxPayload?: number;
  highWaterMark?: number;
  maxReceiveBuffer?: number;
  /** Reported as `remoteAddress` of every stream (ssh2 logs it; injected sockets have none). */
  remoteAddress?: string;
}

const WS_OPEN = 1;

/** What a stream needs from its multiplexer; kept off the public surface of StreamMux. */
interface StreamSink {
  sendData(id: number, data: Buffer, cb: () => void): void;
  sendClose(id: number, reason: string): void;
  forget(stream: MuxStream): void;
}

/**
 * One multiplexed stream as a Node Duplex, so it can be handed to ssh2 as a socket
 * (`server.injectSocket(stream)` / `client.connect({sock: stream})`).
 */
export class MuxStream extends Duplex {
  readonly id: number;
  readonly remoteAddress: string | undefined;
  /** Free for the owner to label the stream (ssh2 reports it as the connection's port). */
  remotePort: number | undefined;
  /** Why the stream closed, when the peer or the owner gave a reason. */
  closeReason: string | undefined;
  #sink: StreamSink;
  #maxReceiveBuffer: number;
  #closeSent = false;
  #peerClosed = false;

  constructor(sink: StreamSink, id: number, maxReceiveBuffer: number, remoteAddress: string | undefined) {
    super({ allowHalfOpen: false });
    this.id = id;
    this.#sink = sink;
    this.#maxReceiveBuffer = maxReceiveBuffer;
    this.remoteAddress = remoteAddress;
    this.remotePort = undefined;
    this.closeReason = undefined;
    // A stream error must never become an uncaught exception of the whole process; the
    // consumer (ssh2) attaches its own listener and sees every error too.
    this.on('error', noop);
  }

  /** Closes the stream, telling the peer why (the reason may be shown to a user). */
  closeWithReason(reason: string): void {
    if (this.destroyed) return;
    this.closeReason = reason;
    this.#sendClose(reason);
    this.destroy();
  }

  /** @internal Bytes from the peer. */
  receive(payload: Buffer): void {
    // After our CLOSE the peer may still have data in flight; it has nowhere to go.
    if (this.#peerClosed || this.#closeSent || this.destroyed) return;
    this.push(payload);
    if (this.readableLength > this.#maxReceiveBuffer) {
      const message = `stream ${this.id} receive buffer exceeded ${this.#maxReceiveBuffer} bytes`;
      this.#sendClose('receive buffer overflow');
      this.destroy(new DeviceProtocolError('STREAM_RECEIVE_OVERFLOW', message));
    }
  }

  /** @internal The peer sent CLOSE. */
  peerClose(reason: string): void {
    if (this.#peerClosed) return;
    this.#peerClosed = true;
    if (reason !== '') {
      this.closeReason = reason;
      this.destroy(new DeviceProtocolError('STREAM_CLOSED_BY_PEER', `stream closed by peer: ${reason}`));
      return;
    }
    this.push(null);
    // The consumer may not be reading; do not wait for 'end' to release the stream.
    setImmediate(() => this.destroy());
  }

  /** @internal The WebSocket under the stream is gone. */
  connectionLost(reason: string): void {
    if (this.destroyed) return;
    this.#peerClosed = true;
    this.closeReason = reason;
    this.destroy(new DeviceProtocolError('CONNECTION_LOST', `device connection lost: ${reason}`));
  }

  override _read(): void {
    // Data is pushed as frames arrive; flow control is the SSH channel window's job.
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, cb: (err?: Error | null) => void): void {
    if (this.#peerClosed) return cb();
    this.#sink.sendData(this.id, chunk, cb);
  }

  override _writev(chunks: Array<{ chunk: Buffer }>, cb: (err?: Error | null) => void): void {
    if (this.#peerClosed) return cb();
    // ssh2 writes one small packet per write; coalescing them saves frame overhead.
    const data = chunks.length === 1 ? chunks[0]!.chunk : Buffer.concat(chunks.map((c) => c.chunk));
    this.#sink.sendData(this.id, data, cb);
  }

  override _final(cb: (err?: Error | null) => void): void {
    this.#sendClose('');
    cb();
    // CLOSE ends both directions: nothing more will arrive.
    this.push(null);
    setImmediate(() => this.destroy());
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    this.#sendClose(err === null ? '' : 'stream error');
    this.#sink.forget(this);
    cb(err);
  }

  #sendClose(reason: string): void {
    if (this.#closeSent || this.#peerClosed) return;
    this.#closeSent = true;
    this.#sink.sendClose(this.id, reason);
  }
}

function noop(): void {}

function toBuffer(data: Buffer | ArrayBuffer | Buffer[]): Buffer {
  if (Buffer.isBuffer(data)) return data;
  if (Array.isArray(data)) return Buffer.concat(data);
  return Buffer.from(data);
}

/** Control characters in a peer's reason would end up in logs and on users' screens. */
function decodeReason(payload: Buffer): string {
  return payload.toString('utf8').replace(/[\u0000-\u001f\u007f]/g, ' ');
}

/**
 * Carries many streams over one WebSocket. The owner feeds it every message
 * (`handleMessage`) and tells it when the socket is gone (`connectionClosed`).
 */
export class StreamMux {
  readonly #role: 'agent' | 'gateway';
  readonly #socket: MuxSocket;
  readonly #onStream: ((stream: MuxStream) => void) | undefined;
  readonly #onProtocolError: (code: number, reason: string) => void;
  readonly #maxStreams: number;
  readonly #maxPayload: number;
  readonly #highWaterMark: number;
  readonly #maxReceiveBuffer: number;
  readonly #remoteAddress: string | undefined;
  readonly #streams = new Map<number, MuxStream>();
  readonly #sink: StreamSink;
  #nextId = 1;
  #closed = false;

  constructor(options: StreamMuxOptions) {
    this.#role = options.role;
    this.#socket = options.socket;
    this.#onStream = options.onStream;
    this.#onProtocolError = options.onProtocolError;
    this.#maxStreams = options.maxStreams ?? DeviceLimits.maxStreamsPerConnection;
    this.#maxPayload = options.maxPayload ?? DeviceLimits.maxFramePayload;
    this.#highWaterMark = options.highWaterMark ?? DeviceLimits.sendHighWaterMark;
    this.#maxReceiveBuffer = options.maxReceiveBuffer ?? DeviceLimits.maxStreamReceiveBuffer;
    this.#remoteAddress = options.remoteAddress;
    this.#sink = {
      sendData: (id, data, cb) => this.#sendData(id, data, cb),
      sendClose: (id, reason) => this.#sendFrame(FrameType.CLOSE, id, reason === '' ? undefined : encodeCloseReason(reason)),
      forget: (stream) => {
        if (this.#streams.get(stream.id) === stream) this.#streams.delete(stream.id);
      },
    };
  }

  /** Open streams right now. */
  get size(): number {
    return this.#streams.size;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Gateway side: opens a new stream towards the agent. */
  open(): MuxStream {
    if (this.#role !== 'gateway') throw new TypeError('only the gateway opens device streams');
    if (this.#closed || this.#socket.readyState !== WS_OPEN) {
      throw new DeviceProtocolError('MUX_CLOSED', 'the device connection is closed');
    }
    if (this.#streams.size >= this.#maxStreams) {
      throw new DeviceProtocolError('STREAM_LIMIT', `the device already has ${this.#maxStreams} open sessions`);
    }
    let id = this.#nextId;
    while (id === 0 || this.#streams.has(id)) id = (id + 1) >>> 0;
    this.#nextId = (id + 1) >>> 0;
    const stream = new MuxStream(this.#sink, id, this.#maxReceiveBuffer, this.#remoteAddress);
    this.#streams.set(id, stream);
    this.#sendFrame(FrameType.OPEN, id);
    return stream;
  }

  /** Feed every WebSocket message here (`ws.on('message', (d, bin) => mux.handleMessage(d, bin))`). */
  handleMessage(data: Buffer | ArrayBuffer | Buffer[], isBinary: boolean): void {
    if (this.#closed) return;
    if (!isBinary) {
      this.#fail(DeviceCloseCode.unsupportedData, 'text messages are not part of the device protocol');
      return;
    }
    const result = decodeFrame(toBuffer(data), this.#maxPayload);
    if (!result.ok) {
      if (result.code === 'FRAME_BAD_TYPE' && result.streamId !== undefined) {
        this.#refuseStream(result.streamId, result.message);
      } else if (result.code === 'FRAME_TOO_LARGE') {
        this.#fail(DeviceCloseCode.messageTooBig, result.message);
      } else {
        this.#fail(DeviceCloseCode.protocolError, result.message);
      }
      return;
    }
    const { type, streamId, payload } = result.frame;
    switch (type) {
      case FrameType.OPEN:
        this.#handleOpen(streamId);
        return;
      case FrameType.DATA: {
        const stream = this.#streams.get(streamId);
        if (stream === undefined) {
          // Late data for a stream we closed is normal; CLOSE again is idempotent on the peer.
          this.#sendFrame(FrameType.CLOSE, streamId, encodeCloseReason('unknown stream'));
          return;
        }
        if (payload.length > 0) stream.receive(payload);
        return;
      }
      case FrameType.CLOSE: {
        // Never answer CLOSE with CLOSE, or two confused peers would ping-pong forever.
        const stream = this.#streams.get(streamId);
        if (stream === undefined) return;
        this.#streams.delete(streamId);
        stream.peerClose(decodeReason(payload));
        return;
      }
    }
  }

  /** The WebSocket closed: every stream ends with a CONNECTION_LOST error carrying `reason`. */
  connectionClosed(reason: string): void {
    if (this.#closed) return;
    this.#closed = true;
    const streams = [...this.#streams.values()];
    this.#streams.clear();
    for (const stream of streams) stream.connectionLost(reason);
  }

  #handleOpen(id: number): void {
    if (this.#role !== 'agent') {
      this.#fail(DeviceCloseCode.protocolError, 'the agent may not open streams');
      return;
    }
    if (this.#streams.has(id)) {
      this.#fail(DeviceCloseCode.protocolError, `stream ${id} is already open`);
      return;
    }
    if (this.#streams.size >= this.#maxStreams) {
      this.#sendFrame(FrameType.CLOSE, id, encodeCloseReason(`stream limit reached (${this.#maxStreams} open sessions)`));
      return;
    }
    const stream = new MuxStream(this.#sink, id, this.#maxReceiveBuffer, this.#remoteAddress);
    this.#streams.set(id, stream);
    if (this.#onStream === undefined) {
      stream.closeWithReason('no stream handler');
      return;
    }
    this.#onStream(stream);
  }

  #refuseStream(id: number, reason: string): void {
    const stream = this.#streams.get(id);
    if (stream !== undefined) stream.closeWithReason(reason);
    else this.#sendFrame(FrameType.CLOSE, id, encodeCloseReason(reason));
  }

  #fail(code: number, reason: string): void {
    this.connectionClosed(reason);
    this.#onProtocolError(code, reason);
  }

  #sendFrame(type: FrameType, id: number, payload?: Buffer, cb?: () => void): boolean {
    if (this.#socket.readyState !== WS_OPEN) return false;
    this.#socket.send(encodeFrame(type, id, payload), cb);
    return true;
  }

  /**
   * Sends `data` as DATA frames and calls `cb` when the stream may write again: at once
   * while the WebSocket buffers less than the high-water mark, otherwise when the last
   * frame has been handed to the kernel (writes are ordered, so everything before it has
   * too). A producer that waits for `cb` therefore cannot grow memory without bound.
   */
  #sendData(id: number, data: Buffer, cb: () => void): void {
    if (this.#socket.readyState !== WS_OPEN || data.length === 0) return cb();
    let sent = false;
    let waiting = false;
    const onSent = () => {
      sent = true;
      if (waiting) {
        waiting = false;
        cb();
      }
    };
    const max = this.#maxPayload;
    for (let offset = 0; offset < data.length; offset += max) {
      const end = Math.min(offset + max, data.length);
      const slice = offset === 0 && end === data.length ? data : data.subarray(offset, end);
      this.#socket.send(encodeFrame(FrameType.DATA, id, slice), end === data.length ? onSent : undefined);
    }
    if (sent || this.#socket.bufferedAmount <= this.#highWaterMark) cb();
    else waiting = true;
  }
}
