import type { UserDirectory } from './directory.ts';
import { generatePassword } from './passwords.ts';
import { ROLE_ADMIN } from './principal.ts';

/**
 * First start: create `admin` with ROLE_ADMIN. The password comes from
 * PORTCULLIS_ADMIN_PASSWORD or is generated and returned so the caller prints it once.
 */
export async function ensureFirstAdmin(users: UserDirectory, password: string | undefined): Promise<{ created: boolean; password?: string; generated?: boolean }> {
  if ((await users.countUsers()) > 0) return { created: false };
  const chosen = password ?? generatePassword();
  try {
    await users.create({ name: 'admin', password: chosen, roles: [ROLE_ADMIN] });
  } catch (error) {
    // Another node created it at the same moment.
    if ((error as { code?: string }).code === 'user_exists') return { created: false };
    throw error;
  }
  return { created: true, password: chosen, generated: password === undefined };
}
