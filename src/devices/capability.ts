import { AGENT_CONNECT_PATH, generateSshEd25519Key } from '../protocol/index.ts';
import type { CapabilityContext } from '../server/index.ts';
import { RedisBus } from '../cluster/index.ts';
import { AgentHub } from './agents.ts';
import { ClusterDevices, RELAY_PATH } from './cluster.ts';
import { registerDeviceApi, registerEnrollRoute } from './routes.ts';
import { DEVICES_CHANGED, DeviceService } from './service.ts';
import { DeviceStore, type DeviceRow } from './store.ts';
import { TerminalHub } from './terminals.ts';

/** Live counts of one gateway's device runtime (for health checks and leak tests). */
export interface DeviceRuntimeStats {
  /** Agents connected to this node. */
  agents: number;
  /** Open streams over all agent connections (one per terminal being set up or open). */
  streams: number;
  /** Browser terminals open on this node. */
  terminals: number;
  /** Terminals whose device output is paused because their browser is not keeping up. */
  pausedOutputs: number;
}

const runtimes = new WeakMap<CapabilityContext, () => DeviceRuntimeStats>();

/** The device runtime's counts for a gateway, given the context its capabilities received. */
export function deviceRuntimeStats(ctx: CapabilityContext): DeviceRuntimeStats | undefined {
  return runtimes.get(ctx)?.();
}

/**
 * SPEC §7: the device registry, agent enrollment and connections, the admin and user
 * APIs, and the browser terminal (an SSH session to the device over its agent's
 * WebSocket).
 */
export async function devicesCapability(ctx: CapabilityContext): Promise<void> {
  const options = ctx.config.devices;
  const logger = ctx.logger.child({ capability: 'devices' });
  const store = new DeviceStore(ctx.store.db, ctx.store.secrets);
  // The gateway's SSH client identity, the same on every node: agents accept only it.
  const gatewayKey = await store.gatewayKey(() => generateSshEd25519Key('portcullis-gateway'));

  // With Redis, agents connected to other nodes are reachable through them (SPEC §9).
  const cluster =
    ctx.bus instanceof RedisBus
      ? new ClusterDevices({
          redis: ctx.bus.redis,
          bus: ctx.bus,
          secrets: ctx.store.secrets,
          url: () => ctx.config.cluster.advertiseUrl ?? ctx.listeningUrl(),
          logger,
          ttlMs: Math.max(3 * options.pingInterval, 30_000),
          now: ctx.now,
        })
      : undefined;

  let terminals: TerminalHub | undefined;
  const apply = (id: string, row: DeviceRow | undefined) => {
    terminals?.deviceChanged(id, row);
    agents.apply(id, row);
  };
  const agents = new AgentHub({
    store,
    logger,
    now: ctx.now,
    publicUrl: ctx.publicUrl,
    clockSkewSeconds: options.clockSkew,
    pingIntervalMs: options.pingInterval,
    lastSeenIntervalMs: options.lastSeenInterval * 1000,
    onStale: apply,
    presence: cluster,
  });
  terminals = new TerminalHub({
    agents,
    store,
    logger,
    clientKey: gatewayKey.private,
    remoteLink: cluster ? (id, user) => cluster.remoteLink(id, user) : undefined,
    principalOf: (name) => ctx.users.principalOf(name),
    limits: {
      handshakeTimeoutMs: options.handshakeTimeout,
      outputHighWaterMark: options.outputHighWaterMark,
      maxPendingInput: options.maxMessageBytes,
      maxMessageBytes: options.maxMessageBytes,
      maxSessionsPerDevice: options.maxSessionsPerDevice,
      maxSessionsPerUser: options.maxSessionsPerUser,
      idleTimeoutMs: options.idleTimeout * 1000,
      pingIntervalMs: options.pingInterval,
    },
  });
  const hub = terminals;
  const service = new DeviceService({
    store,
    bus: ctx.bus,
    publicUrl: ctx.publicUrl,
    now: ctx.now,
    enrollmentTtlMs: options.enrollmentTtl * 1000,
    gatewayPublicKey: () => gatewayKey.public,
    presence: {
      isOnline: (id) => agents.isOnline(id) || (cluster?.isOnlineElsewhere(id) ?? false),
      sessionCount: (id) => hub.countForDevice(id),
      apply,
    },
  });

  const unsubscribe = ctx.bus.subscribe((message) => {
    switch (message.type) {
      case 'session-ended':
        hub.sessionEnded(message.sessionId, message.reason);
        return;
      case 'user-ended':
        hub.userEnded(message.userName, message.reason);
        return;
      case 'user-changed':
        void hub.recheckUsers(new Set([message.userName])).catch((err: unknown) => logger.warn({ err }, 're-checking terminals failed'));
        return;
      case 'custom': {
        if (message.channel === 'groups-changed') {
          void hub.recheckUsers(undefined).catch((err: unknown) => logger.warn({ err }, 're-checking terminals failed'));
        } else if (message.channel === DEVICES_CHANGED) {
          // Another node (or the CLI) changed a device: act on its current record.
          const id = (message.payload as { id?: unknown } | null)?.id;
          if (typeof id === 'string') void store.get(id).then((row) => apply(id, row), (err: unknown) => logger.warn({ err }, 'reading a changed device failed'));
        }
        return;
      }
      default:
        return;
    }
  });

  registerEnrollRoute(ctx.publicRoutes, service);
  registerDeviceApi(ctx.routes, service);
  ctx.upgrades.add(AGENT_CONNECT_PATH, (req, socket, head) => agents.handleUpgrade(req, socket, head), { authenticate: false });
  if (cluster) {
    ctx.upgrades.add(RELAY_PATH, (req, socket, head, _auth, params) => cluster.handleRelay(req, socket, head, params.id!, agents.get(params.id!)), {
      authenticate: false,
    });
  }
  ctx.upgrades.add('/api/devices/:id/terminal', (req, socket, head, auth, params) => hub.handleUpgrade(req, socket, head, auth, params.id!));

  runtimes.set(ctx, () => ({ agents: agents.size, streams: agents.streams(), terminals: hub.size, pausedOutputs: hub.pausedOutputs() }));
  ctx.onClose(async (reason) => {
    unsubscribe();
    // Terminals first, so each is told why before its device connection goes.
    await hub.close(reason);
    await agents.close(reason);
    await cluster?.close();
  });
}
