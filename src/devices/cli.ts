import type { Bus } from '../cluster/index.ts';
import type { Store } from '../store/index.ts';
import { DeviceService, type EnrollmentView } from './service.ts';
import { DeviceStore } from './store.ts';

/** What `portcullis devices …` needs from the admin CLI. */
export interface DevicesCliContext {
  store: Store;
  bus: Bus;
  /** The gateway's public URL (put in the enrollment command). */
  publicUrl: string;
  enrollmentTtlSeconds: number;
  print(text: string): void;
}

export class DevicesUsageError extends Error {
  override name = 'DevicesUsageError';
}

function enrollmentText(name: string, e: EnrollmentView): string {
  return [
    `Enroll "${name}" by running this on the device, as the user whose shell it should open`,
    `(the token works once, until ${e.expiresAt}):`,
    '',
    `  ${e.command}`,
    '',
  ].join('\n');
}

/**
 * `portcullis devices list|add|enroll|remove`. Works on the store directly; running
 * gateways hear of changes through the bus (with Redis), or at their next periodic
 * check of connected devices (within devices.lastSeenInterval).
 */
export async function runDevicesCommand(
  ctx: DevicesCliContext,
  action: string,
  args: readonly string[],
  options: { roles?: readonly string[] | undefined; json?: boolean | undefined },
): Promise<number> {
  const service = new DeviceService({
    store: new DeviceStore(ctx.store.db, ctx.store.secrets),
    bus: ctx.bus,
    publicUrl: () => ctx.publicUrl,
    now: Date.now,
    enrollmentTtlMs: ctx.enrollmentTtlSeconds * 1000,
  });
  const name = () => {
    if (args[0] === undefined) throw new DevicesUsageError(`devices ${action} needs a device name`);
    return args[0];
  };
  switch (action) {
    case 'list':
      for (const row of await service.list()) {
        const v = service.adminView(row);
        if (options.json) {
          const { online: _online, sessions: _sessions, ...stored } = v;
          ctx.print(JSON.stringify(stored));
          continue;
        }
        const state = v.disabled ? 'disabled' : v.enrolled ? `last seen ${v.lastSeenAt ?? 'never'}` : 'not enrolled';
        ctx.print(`${v.name}\t${v.id}\t${v.allowedRoles.join(',')}\t${v.hostname ?? '-'}\t${state}`);
      }
      return 0;
    case 'add': {
      const { row, enrollment } = await service.create({ name: name(), allowedRoles: options.roles });
      ctx.print(`created device ${row.name} (${row.id})\n${enrollmentText(row.name, enrollment)}`);
      return 0;
    }
    case 'enroll': {
      const device = await service.getByName(name());
      const { enrollment } = await service.newEnrollment(device.id);
      ctx.print(enrollmentText(device.name, enrollment));
      return 0;
    }
    case 'remove': {
      const device = await service.getByName(name());
      await service.remove(device.id);
      ctx.print(`removed device ${device.name}; its agent is refused from now on`);
      return 0;
    }
    default:
      throw new DevicesUsageError(`unknown action "${action}"`);
  }
}
